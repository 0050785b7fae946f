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
             progress: Optional[callable] = None, receiver_options: Optional[dict] = None) -> BatchResult:
    rec = check_receiver(receiver, receiver_options)
    gen = torch.Generator().manual_seed(seed)
    n = len(images)
    interferer_images = images[::-1]
    out, lat, kept, errors, nfe = [], [], [], [], []
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        try:
            received, latent_db, batch_nfe = _one_batch(
                backend, images[sl], np.ascontiguousarray(interferer_images[sl]), channel_type, snr_db,
                sinr_db, user_model, interferer_model, rec, receiver_options, coherence_len, gen)
        except BackendError as exc:  # e.g. a dead server: these images are lost, the sweep goes on
            errors.append(f"images {sl.start}-{sl.stop - 1}: {exc}")
        else:
            out.append(received)
            lat += latent_db
            nfe.append(batch_nfe)
            kept.append(np.arange(sl.start, sl.stop))
        if progress:
            progress(sl.stop - sl.start)
    shape = (0,) + tuple(images.shape[1:])
    return BatchResult(received=np.concatenate(out) if out else np.zeros(shape, np.uint8),
                       kept=np.concatenate(kept) if kept else np.zeros(0, int), latent_mse_db=lat,
                       seconds=time.perf_counter() - t0, nfe=max(nfe, default=0), errors=errors)


def equalized_batch(backend, images, interferer_images, channel_type, snr_db, sinr_db, user_model,
                    interferer_model, coherence_len=1, generator=None):
    """Encode, power-normalise, send through the channel, MMSE-equalize: (x, xhat, ctx) with
    x the sent latents and xhat the equalized ones (real (N, 2k)), ctx their LinkContext
    (no receiver options; seed drawn from `generator`)."""
    s = torch.from_numpy(backend.encode(user_model, images, snr_db))
    z, _ = to_symbols(s)
    u = None
    if not math.isinf(sinr_db):
        u, _ = to_symbols(torch.from_numpy(backend.encode(interferer_model, interferer_images, snr_db)))
    ch = transmit(z, u, snr_db, sinr_db, channel_type, coherence_len, generator=generator)
    zhat, w = mmse_equalize(ch.y, ch.h, ch.powers.signal_power, ch.powers.noise_var)
    # The receiver's own draws get a seed from the link's generator: reproducible per run.
    ctx = LinkContext(w=w, h=ch.h, powers=ch.powers, snr_db=snr_db, sinr_db=sinr_db, channel_type=channel_type,
                      seed=int(torch.randint(2 ** 31 - 1, (1,), generator=generator)))
    return complex_to_real(z), complex_to_real(zhat).float(), ctx


def _one_batch(backend, images, interferer_images, channel_type, snr_db, sinr_db, user_model,
               interferer_model, rec, options, coherence_len, gen):
    x, xhat, ctx = equalized_batch(backend, images, interferer_images, channel_type, snr_db, sinr_db,
                                   user_model, interferer_model, coherence_len, gen)
    ctx.options = options or {}
    latent = backend.receive(rec.name, xhat.numpy(), ctx)
    latent_db = metrics.latent_mse_db(torch.from_numpy(latent), x).tolist()
    return backend.decode(user_model, latent, snr_db), latent_db, ctx.nfe
