"""Receiver registry: the latent clean-up between MMSE equalizer and JSCC decoder.

A receiver maps the equalized latents xhat (N, 2k), in the power-normalised symbol domain,
to the latents handed to the decoder, given a LinkContext (per-symbol MMSE weights w and
CSI h, the powers, SNR/SINR). Later receivers (cddm, icdm, ...) register here; run_link
and the blocks look them up by name.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch

from .channel import LinkPowers


@dataclass
class LinkContext:
    w: torch.Tensor            # (N, k) complex MMSE weights applied
    h: torch.Tensor            # (N, k) complex CSI
    powers: LinkPowers
    snr_db: float
    sinr_db: float


@dataclass
class Receiver:
    name: str
    fn: Callable[[torch.Tensor, LinkContext], torch.Tensor]
    nfe: int = 0               # network evaluations per image
    engines: tuple = ("batch", "gnuradio")
    description: str = ""


RECEIVERS: Dict[str, Receiver] = {}


def register_receiver(receiver: Receiver):
    if receiver.name in RECEIVERS:
        raise ValueError(f"receiver {receiver.name!r} is already registered")
    RECEIVERS[receiver.name] = receiver


def check_receiver(name: str, engine: Optional[str] = None) -> Receiver:
    if name not in RECEIVERS:
        raise ValueError(f"unknown receiver {name!r} (available: {', '.join(sorted(RECEIVERS))})")
    r = RECEIVERS[name]
    if engine is not None and engine not in r.engines:
        raise ValueError(f"receiver {name!r} does not run in the {engine} engine yet")
    return r


register_receiver(Receiver("mmse", lambda xhat, ctx: xhat, nfe=0,
                           description="MMSE equalizer only; the decoder gets the equalized latent"))
