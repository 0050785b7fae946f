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
from .backend import BackendError
from .channel import transmit
from .equalizer import mmse_equalize
from .mapping import complex_to_real, to_symbols
from .receivers import LinkContext, check_receiver


@dataclass
class BatchResult:
    received: np.ndarray            # uint8 (M, H, W, C): the images not lost
    kept: np.ndarray                # their indices in the input (M,)
    latent_mse_db: list             # per kept image
    seconds: float
    nfe: int
    errors: list                    # one message per lost batch


@torch.no_grad()
def simulate(backend, images: np.ndarray, channel_type: str, snr_db: float, sinr_db: float,
             user_model: str, interferer_model: str, receiver: str = "mmse",
             coherence_len: int = 1, seed: int = 0, batch_size: int = 256,
             progress: Optional[callable] = None) -> BatchResult:
    rec = check_receiver(receiver, engine="batch")
    gen = torch.Generator().manual_seed(seed)
    n = len(images)
    interferer_images = images[::-1]
    out, lat, kept, errors = [], [], [], []
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        try:
            received, latent_db = _one_batch(backend, images[sl], np.ascontiguousarray(interferer_images[sl]),
                                             channel_type, snr_db, sinr_db, user_model, interferer_model,
                                             rec, coherence_len, gen)
        except BackendError as exc:  # e.g. a dead server: these images are lost, the sweep goes on
            errors.append(f"images {sl.start}-{sl.stop - 1}: {exc}")
        else:
            out.append(received)
            lat += latent_db
            kept.append(np.arange(sl.start, sl.stop))
        if progress:
            progress(sl.stop - sl.start)
    shape = (0,) + tuple(images.shape[1:])
    return BatchResult(received=np.concatenate(out) if out else np.zeros(shape, np.uint8),
                       kept=np.concatenate(kept) if kept else np.zeros(0, int), latent_mse_db=lat,
                       seconds=time.perf_counter() - t0, nfe=rec.nfe, errors=errors)


def _one_batch(backend, images, interferer_images, channel_type, snr_db, sinr_db, user_model,
               interferer_model, rec, coherence_len, gen):
    s = torch.from_numpy(backend.encode(user_model, images, snr_db))
    z, _ = to_symbols(s)
    u = None
    if not math.isinf(sinr_db):
        u, _ = to_symbols(torch.from_numpy(backend.encode(interferer_model, interferer_images, snr_db)))
    ch = transmit(z, u, snr_db, sinr_db, channel_type, coherence_len, generator=gen)
    zhat, w = mmse_equalize(ch.y, ch.h, ch.powers.signal_power, ch.powers.noise_var)
    ctx = LinkContext(w=w, h=ch.h, powers=ch.powers, snr_db=snr_db, sinr_db=sinr_db)
    latent = rec.fn(complex_to_real(zhat), ctx)
    latent_db = metrics.latent_mse_db(latent, complex_to_real(z)).tolist()
    return backend.decode(user_model, latent.float().numpy(), snr_db), latent_db
