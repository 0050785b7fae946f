"""The batch engine: the whole image link vectorised in torch, for large sweeps.

Same maths as the GNU Radio chain (encoder -> per-image power normalisation -> channel ->
MMSE -> receiver -> decoder), same interferer convention (the other JSCC model sending the
dataset walked backwards), one seeded torch.Generator for the channel draws.
"""

import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from . import metrics
from .channel import transmit
from .data import to_tensor, to_uint8
from .equalizer import mmse_equalize
from .mapping import complex_to_real, real_to_complex, to_symbols
from .receivers import LinkContext, check_receiver


@dataclass
class BatchResult:
    received: np.ndarray            # uint8 (N, H, W, C)
    latent_mse_db: list             # per image
    seconds: float
    nfe: int


@torch.no_grad()
def simulate(backend, images: np.ndarray, channel_type: str, snr_db: float, sinr_db: float,
             user_model: str, interferer_model: str, receiver: str = "mmse",
             coherence_len: int = 1, seed: int = 0, batch_size: int = 256,
             progress: Optional[callable] = None) -> BatchResult:
    rec = check_receiver(receiver, engine="batch")
    gen = torch.Generator().manual_seed(seed)
    n = len(images)
    interferer_images = images[::-1]
    out, lat = [], []
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        s = torch.from_numpy(backend.encode(user_model, images[sl], snr_db))
        z, _ = to_symbols(s)
        u = None
        if not math.isinf(sinr_db):
            su = torch.from_numpy(backend.encode(interferer_model, np.ascontiguousarray(interferer_images[sl]), snr_db))
            u, _ = to_symbols(su)
        ch = transmit(z, u, snr_db, sinr_db, channel_type, coherence_len, generator=gen)
        zhat, w = mmse_equalize(ch.y, ch.h, ch.powers.signal_power, ch.powers.noise_var)
        xhat = complex_to_real(zhat)
        ctx = LinkContext(w=w, h=ch.h, powers=ch.powers, snr_db=snr_db, sinr_db=sinr_db)
        latent = rec.fn(xhat, ctx)
        lat += metrics.latent_mse_db(latent, complex_to_real(z)).tolist()
        out.append(backend.decode(user_model, latent.float().numpy(), snr_db))
        if progress:
            progress(sl.stop - sl.start)
    return BatchResult(received=np.concatenate(out), latent_mse_db=lat,
                       seconds=time.perf_counter() - t0, nfe=rec.nfe)
