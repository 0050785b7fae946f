"""The batch engine: the whole image link vectorised in torch, for large sweeps.

Same maths as the GNU Radio chain (a scheme's transmitter -> channel -> MMSE -> the scheme's
receiver), same interferer convention (the other JSCC model sending the dataset walked
backwards), one seeded torch.Generator for the channel draws. Schemes run in the backend
(in-process or the inference server) through their one wire form.
"""

import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..core import metrics
from ..core.backend import BackendError
from ..core.channel import apply_channel, draw_channel, link_powers
from ..core.equalizer import mmse_equalize
from ..core.mapping import complex_to_real, to_symbols


@dataclass
class BatchResult:
    received: np.ndarray            # uint8 (M, H, W, C): the images not lost
    kept: np.ndarray                # their indices in the input (M,)
    latent_mse_db: list             # per kept image (empty where the scheme has no latents)
    seconds: float
    nfe: float                      # network evaluations per image, mean over the images received
    errors: list                    # one message per lost batch
    extra: dict                     # the scheme's extra columns, of its last batch
    symbols_per_image: int          # complex channel uses per image the scheme sent (0: none sent)


@torch.no_grad()
def simulate(backend, images: np.ndarray, channel_type: str, snr_db: float, sinr_db: float,
             user_model: str, interferer_model: str, receiver: str = "mmse",
             coherence_len: int = 1, seed: int = 0, batch_size: int = 256,
             progress: Optional[callable] = None, receiver_options: Optional[dict] = None) -> BatchResult:
    """Send `images` with the scheme `receiver` (its transmitter and receiver) at one
    operating point; the batches whose backend call fails are lost and counted."""
    from . import check
    check(receiver, receiver_options, channel_type)
    gen = torch.Generator().manual_seed(seed)
    n = len(images)
    interferer_images = images[::-1]
    out, lat, kept, errors, nfe, extra, k = [], [], [], [], [], {}, 0
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        try:
            x, obs = equalized_batch(backend, images[sl], np.ascontiguousarray(interferer_images[sl]), channel_type,
                                     snr_db, sinr_db, user_model, interferer_model, coherence_len, gen, receiver,
                                     tx_seed=(seed * 1_000_003 + sl.start) % 2 ** 31)
            obs.options, k = dict(receiver_options or {}), obs.k
            result = backend.receive(receiver, obs)
        except BackendError as exc:  # e.g. a dead server: these images are lost, the sweep goes on
            errors.append(f"images {sl.start}-{sl.stop - 1}: {exc}")
        else:
            out.append(result.images)
            if result.latents is not None:
                lat += metrics.latent_mse_db(torch.from_numpy(result.latents), x).tolist()
            nfe.append(result.nfe * (sl.stop - sl.start))
            extra = result.extra
            kept.append(np.arange(sl.start, sl.stop))
        if progress:
            progress(sl.stop - sl.start)
    shape = (0,) + tuple(images.shape[1:])
    return BatchResult(received=np.concatenate(out) if out else np.zeros(shape, np.uint8),
                       kept=np.concatenate(kept) if kept else np.zeros(0, int), latent_mse_db=lat,
                       seconds=time.perf_counter() - t0, nfe=sum(nfe) / max(1, sum(len(i) for i in kept)), errors=errors, extra=extra,
                       symbols_per_image=k)


def equalized_batch(backend, images, interferer_images, channel_type, snr_db, sinr_db, user_model,
                    interferer_model, coherence_len=1, generator=None, scheme="mmse", tx_seed=0):
    """Transmit with `scheme`, send through the channel, MMSE-equalize: (x, obs) with x the
    sent symbols in real form (N, 2k) and obs the schemes.Observation of the receiver (no
    options; its seed drawn from `generator`). A scheme that needs CSI at the transmitter is
    handed the fading the channel will apply (genie CSIT): the channel is drawn first. The
    draws (h, g, n, then the receiver's seed) come from `generator` in the same order either
    way, so the transmitter's needs change no other draw."""
    from . import get
    from .base import Observation, TxContext
    tx = TxContext(snr_db, channel_type, user_model, seed=tx_seed)
    draw = None
    sender = get(scheme)
    if sender.needs_csit:
        k = sender.symbols_per_image(backend, tx, images.shape[1:])
        draw = draw_channel((len(images), k), channel_type, coherence_len, generator)
        tx.csi, tx.csi_source = draw.h, "genie"
    sent = backend.transmit(scheme, images, tx)
    z = sent.symbols
    u = None
    if not math.isinf(sinr_db):
        u, _ = to_symbols(torch.from_numpy(backend.encode(interferer_model, interferer_images, snr_db)))
    if draw is None:
        draw = draw_channel(z.shape, channel_type, coherence_len, generator, z.dtype)
    ch = apply_channel(z, u, draw, link_powers(snr_db, sinr_db))
    zhat, w = mmse_equalize(ch.y, ch.h, ch.powers.signal_power, ch.powers.noise_var)
    # The receiver's own draws get a seed from the link's generator: reproducible per run.
    obs = Observation(zhat=zhat, w=w, h=ch.h, powers=ch.powers, snr_db=snr_db, sinr_db=sinr_db,
                      channel_type=channel_type, coherence=coherence_len, model=user_model, side_info=sent.side_info,
                      seed=int(torch.randint(2 ** 31 - 1, (1,), generator=generator)))
    return complex_to_real(z), obs
