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
from ..core.channel import apply_channel, csit, draw_channel, link_powers
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
    extra: dict                     # the scheme's extra columns: numbers as the mean over the images received
                                    # (weighted by batch), others as in the last batch
    symbols_per_image: int          # complex channel uses per image the scheme sent (0: none sent)
    snr_est_db: list = None         # the OFDM PHY's per-image SNR and SINR (with phy; else None)
    sinr_est_db: list = None


@torch.no_grad()
def simulate(backend, images: np.ndarray, channel_type: str, snr_db: float, sinr_db: float,
             user_model: str, interferer_model: str, receiver: str = "mmse",
             coherence_len: int = 1, seed: int = 0, batch_size: int = 256,
             progress: Optional[callable] = None, receiver_options: Optional[dict] = None,
             phy=None, csit_delay: int = 0, csit_error: float = 0.0) -> BatchResult:
    """Send `images` with the scheme `receiver` (its transmitter and receiver) at one
    operating point; the batches whose backend call fails are lost and counted. `phy`: None
    (symbols straight through the channel) or an OfdmLink (the OFDM frame in numpy, with
    genie or estimated CSI: phy/link.py). csit_delay (coherence blocks) and csit_error (an
    estimation error variance) spoil the CSI a transmitter that needs it gets (core/channel.csit;
    0 and 0: the genie)."""
    from . import check
    check(receiver, receiver_options, channel_type)
    if (csit_delay or csit_error) and phy is not None:
        raise ValueError("stale or noisy CSIT is a model of the symbol channel (phy=None)")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(images)
    interferer_images = images[::-1]
    out, lat, kept, errors, nfe, extras, k = [], [], [], [], [], [], 0
    snr_est, sinr_est = [], []
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        try:
            args = (backend, images[sl], np.ascontiguousarray(interferer_images[sl]), channel_type, snr_db, sinr_db,
                    user_model, interferer_model)
            tx_seed = (seed * 1_000_003 + sl.start) % 2 ** 31
            received = np.arange(sl.stop - sl.start)
            if phy is None:
                x, obs = equalized_batch(*args, coherence_len, gen, receiver, tx_seed=tx_seed,
                                         options=receiver_options, csit_delay=csit_delay, csit_error=csit_error)
                obs.options, k = dict(receiver_options or {}), obs.k
                result = backend.receive(receiver, obs)
            else:
                x, result, frames, received = ofdm_batch(*args, phy, rng, gen, receiver, receiver_options, tx_seed)
                k = x.shape[1] // 2          # x: the received images' symbols only
                snr_est += [f.snr_db for f in frames]
                sinr_est += [f.sinr_db for f in frames]
                if len(received) < sl.stop - sl.start:
                    errors.append(f"images {sl.start}-{sl.stop - 1}: {sl.stop - sl.start - len(received)} frame "
                                  "header(s) failed their CRC")
        except BackendError as exc:  # e.g. a dead server: these images are lost, the sweep goes on
            errors.append(f"images {sl.start}-{sl.stop - 1}: {exc}")
        else:
            out.append(result.images)
            if result.latents is not None:
                lat += metrics.latent_mse_db(torch.from_numpy(result.latents), x).tolist()
            nfe.append(result.nfe * len(received))
            extras.append((len(received), result.extra))
            kept.append(np.arange(sl.start, sl.stop)[received])
        if progress:
            progress(sl.stop - sl.start)
    shape = (0,) + tuple(images.shape[1:])
    return BatchResult(received=np.concatenate(out) if out else np.zeros(shape, np.uint8),
                       kept=np.concatenate(kept) if kept else np.zeros(0, int), latent_mse_db=lat,
                       seconds=time.perf_counter() - t0, nfe=sum(nfe) / max(1, sum(len(i) for i in kept)), errors=errors,
                       extra=pool_extras(extras),
                       symbols_per_image=k, snr_est_db=snr_est if phy else None,
                       sinr_est_db=sinr_est if phy else None)


def csit_seed(tx_seed: int) -> int:
    """The seed of a batch's CSIT estimation noise: apart from every batch's tx_seed (< 2^31)."""
    return 2 ** 31 + int(tx_seed)


def pool_extras(extras) -> dict:
    """The batches' extra columns as one: a number present in every batch as the mean over
    the images (e.g. digital's success_rate), anything else as in the last batch."""
    if not extras:
        return {}
    out = dict(extras[-1][1])
    total = sum(n for n, _ in extras)
    for key, value in out.items():
        if total and isinstance(value, (int, float)) and not isinstance(value, bool) and all(
                isinstance(e.get(key), (int, float)) for _, e in extras):
            out[key] = sum(n * float(e[key]) for n, e in extras) / total
    return out


def interferer_symbols(backend, interferer_model, interferer_images, snr_db, sinr_db):
    """The interfering JSCC user's power-normalised symbols (N, k), or None without one (SINR inf)."""
    if math.isinf(sinr_db):
        return None
    return to_symbols(torch.from_numpy(backend.encode(interferer_model, interferer_images, snr_db)))[0]


def check_interferer_length(u, z, interferer_model, scheme):
    """ValueError unless the interferer sends as many symbols per image as the scheme."""
    if u is not None and u.shape[-1] != z.shape[-1]:
        raise ValueError(f"the interferer {interferer_model} sends {u.shape[-1]} symbols per image, scheme "
                         f"{scheme!r} {z.shape[-1]}: give an interferer model of k = {z.shape[-1]} or no "
                         "interferer (SINR inf)")


def equalized_batch(backend, images, interferer_images, channel_type, snr_db, sinr_db, user_model,
                    interferer_model, coherence_len=1, generator=None, scheme="mmse", tx_seed=0, options=None,
                    csit_delay=0, csit_error=0.0):
    """Transmit with `scheme`, send through the channel, MMSE-equalize: (x, obs) with x the
    sent symbols in real form (N, 2k) and obs the schemes.Observation of the receiver (no
    options; its seed drawn from `generator`); the transmitter gets the scheme's `options` (a
    scheme whose transmitter has options, e.g. how many symbols to send). A scheme that needs CSI at the transmitter is
    handed the fading the channel will apply (genie CSIT): the channel is drawn first; or, with
    csit_delay > 0 or csit_error > 0, core/channel.csit's stale or noisy version of it (drawn
    from its own generator, csit_seed(tx_seed): the channel is the same draw as the genie's). The
    draws (h, g, n, then the receiver's seed) come from `generator` in the same order either
    way, so the transmitter's needs change no other draw."""
    from . import get
    from .base import Observation, TxContext
    tx = TxContext(snr_db, channel_type, user_model, seed=tx_seed, options=dict(options or {}), sinr_db=sinr_db)
    draw = None
    sender = get(scheme)
    if sender.csit_needed(tx.options, channel_type):
        k = sender.symbols_per_image(backend, tx, images.shape[1:])
        draw = draw_channel((len(images), k), channel_type, coherence_len, generator)
        tx.csi, tx.csi_source = draw.h, "genie"
        if csit_delay or csit_error:
            tx.csi = csit(draw.h, csit_delay, csit_error, coherence_len, torch.Generator().manual_seed(csit_seed(tx_seed)),
                          channel_type)
            tx.csi_source = "estimated"
    elif csit_delay or csit_error:
        raise ValueError(f"scheme {scheme!r} does not use CSI at the transmitter (with these options, on "
                         f"{channel_type}): stale or noisy CSIT would change nothing")
    sent = backend.transmit(scheme, images, tx)
    z = sent.symbols
    u = interferer_symbols(backend, interferer_model, interferer_images, snr_db, sinr_db)
    check_interferer_length(u, z, interferer_model, scheme)
    if draw is None:
        draw = draw_channel(z.shape, channel_type, coherence_len, generator, z.dtype)
    ch = apply_channel(z, u, draw, link_powers(snr_db, sinr_db))
    zhat, w = mmse_equalize(ch.y, ch.h, ch.powers.signal_power, ch.powers.noise_var)
    # The receiver's own draws get a seed from the link's generator: reproducible per run.
    obs = Observation(zhat=zhat, w=w, h=ch.h, powers=ch.powers, snr_db=snr_db, sinr_db=sinr_db,
                      channel_type=channel_type, coherence=coherence_len, model=user_model, side_info=sent.side_info,
                      seed=int(torch.randint(2 ** 31 - 1, (1,), generator=generator)))
    return complex_to_real(z), obs


@dataclass(frozen=True)
class OfdmLink:
    """The OFDM PHY in the batch engine: its channel (phy/link.py OfdmChannel) and the CSI the
    receivers get ("estimated": the PHY's estimates; "genie": the truth)."""
    channel: object
    csi: str = "estimated"


# Estimated SNR and SINR are rounded to this step (dB) so images with nearly the same
# estimates share one receiver call; the receivers see the rounded values throughout.
ESTIMATE_STEP_DB = 0.1


def ofdm_batch(backend, images, interferer_images, channel_type, snr_db, sinr_db, user_model, interferer_model,
               phy: OfdmLink, rng, generator, scheme, receiver_options, tx_seed):
    """Transmit, send each image's symbols in an OFDM frame (phy/link.py), and run the
    scheme's receiver on what the PHY hands on: (x, Result, the PHY's PayloadEstimate per
    image, the indices of the images received), all of the received images in input order
    (a frame whose header fails its CRC loses its image).
    The PHY's per-image SNR and SINR become the receiver's operating point (rounded to
    ESTIMATE_STEP_DB; one receiver call per distinct pair)."""
    from ..phy.header import scheme_id
    from ..phy.link import send_frames
    from . import get
    from .base import Observation, Result, TxContext
    if get(scheme).csit_needed(receiver_options, channel_type):
        raise ValueError(f"scheme {scheme!r} needs CSI at the transmitter, which the OFDM link does not feed back yet")
    sent = backend.transmit(scheme, images, TxContext(snr_db, channel_type, user_model, seed=tx_seed,
                                                             options=dict(receiver_options or {}), sinr_db=sinr_db))
    z = sent.symbols
    u = interferer_symbols(backend, interferer_model, interferer_images, snr_db, sinr_db)
    check_interferer_length(u, z, interferer_model, scheme)
    frames = send_frames(z.numpy(), None if u is None else u.numpy(), snr_db, sinr_db, phy.channel, phy.csi, rng, scheme_id(scheme))
    received = np.array([i for i, f in enumerate(frames) if f is not None], int)
    z, frames = z[received], [frames[i] for i in received]
    sent_side = [sent.side_info[i] for i in received] if sent.side_info else []
    if not frames:
        return complex_to_real(z), Result(images=np.zeros((0,) + images.shape[1:], np.uint8)), [], received
    step = ESTIMATE_STEP_DB
    keys = [(round(p.snr_db / step) * step, round(min(p.sinr_db, p.snr_db) / step) * step) for p in frames]
    images_out, latents, nfe, extra = [None] * len(frames), [None] * len(frames), 0.0, {}
    for key in sorted(set(keys)):
        idx = [i for i, kk in enumerate(keys) if kk == key]
        powers = link_powers(key[0], key[1] if key[1] < key[0] else math.inf)
        y = torch.from_numpy(np.stack([frames[i].y for i in idx]))
        h = torch.from_numpy(np.stack([frames[i].h for i in idx]))
        zhat, w = mmse_equalize(y, h, powers.signal_power, powers.noise_var)
        side = [sent_side[i] for i in idx] if sent_side else []
        obs = Observation(zhat=zhat, w=w, h=h, powers=powers, snr_db=key[0], sinr_db=key[1] if key[1] < key[0]
                          else math.inf, channel_type=channel_type, model=user_model, side_info=side,
                          options=dict(receiver_options or {}), csi_source=phy.csi,
                          snr_source="estimated" if phy.csi == "estimated" else "given",
                          seed=int(torch.randint(2 ** 31 - 1, (1,), generator=generator)))
        result = backend.receive(scheme, obs)
        for j, i in enumerate(idx):
            images_out[i] = result.images[j]
            latents[i] = None if result.latents is None else result.latents[j]
        nfe += result.nfe * len(idx)
        extra = result.extra
    lat = None if any(v is None for v in latents) else np.stack(latents)
    result = Result(images=np.stack(images_out), latents=lat, nfe=nfe / len(frames), extra=extra)
    return complex_to_real(z), result, frames, received
