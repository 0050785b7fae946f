"""Flat-fading channel with an interfering user: y = sqrt(Ps) h z + sqrt(Pi) g u + n.

SNR = Ps / sigma^2 and SINR = Ps / (Pi + sigma^2), both in dB; SINR = inf means no
interferer. h, g = 1 for AWGN; CN(0, 1) for Rayleigh, i.i.d. per symbol
(coherence 1) or held for `coherence` consecutive symbols of each row.
The C++ block fading_interference_channel_cc implements the same statistics.
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch

CHANNEL_TYPES = ("awgn", "rayleigh")


def parse_db(value) -> float:
    """A dB value from a number or a string ('10', '-5', 'inf'); NaN and -inf are errors."""
    try:
        db = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a dB value: {value!r} (expected a number or 'inf')") from None
    if math.isnan(db) or db == -math.inf:
        raise ValueError(f"not a dB value: {value!r} (expected a number or 'inf')")
    return db


def parse_db_list(text: str):
    """'0,10,inf' -> [0.0, 10.0, inf]; an empty or malformed list is an error."""
    items = [t.strip() for t in str(text).split(",")]
    if not items or any(not t for t in items):
        raise ValueError(f"malformed dB list {text!r} (expected e.g. '0,10,20' or 'inf')")
    return [parse_db(t) for t in items]


@dataclass(frozen=True)
class LinkPowers:
    signal_power: float        # Ps
    noise_var: float           # sigma^2
    interference_power: float  # Pi


def link_powers(snr_db, sinr_db=math.inf, signal_power: float = 1.0) -> LinkPowers:
    """Convert SNR and SINR (dB) to (Ps, sigma^2, Pi)."""
    snr_db, sinr_db = parse_db(snr_db), parse_db(sinr_db)
    if not (signal_power > 0 and math.isfinite(signal_power)):
        raise ValueError(f"signal power must be finite and > 0, got {signal_power}")
    if not math.isinf(sinr_db) and sinr_db > snr_db:
        raise ValueError(f"SINR ({sinr_db} dB) cannot exceed SNR ({snr_db} dB)")
    noise_var = 0.0 if math.isinf(snr_db) else signal_power * 10.0 ** (-snr_db / 10.0)
    if math.isinf(sinr_db):
        interference_power = 0.0
    else:
        interference_power = max(0.0, signal_power * 10.0 ** (-sinr_db / 10.0) - noise_var)
    return LinkPowers(signal_power, noise_var, interference_power)


def fading(shape, channel_type: str, coherence: int = 1,
           generator: Optional[torch.Generator] = None, dtype=torch.complex64) -> torch.Tensor:
    """Fading coefficients of the given shape; blocks of `coherence` along the last axis."""
    if channel_type not in CHANNEL_TYPES:
        raise ValueError(f"unknown channel type {channel_type!r} (expected one of {CHANNEL_TYPES})")
    if int(coherence) != coherence or coherence < 1:
        raise ValueError(f"coherence length must be an integer >= 1, got {coherence}")
    shape = tuple(shape)
    if channel_type == "awgn":
        return torch.ones(shape, dtype=dtype)
    n = shape[-1]
    n_blocks = -(-n // coherence)
    draws = torch.randn(*shape[:-1], n_blocks, dtype=dtype, generator=generator)  # CN(0, 1)
    return draws.repeat_interleave(coherence, dim=-1)[..., :n]


@dataclass
class ChannelOutput:
    y: torch.Tensor  # received symbols
    h: torch.Tensor  # user's channel (known to the receiver)
    g: torch.Tensor  # interferer's channel (unknown to the receiver)
    n: torch.Tensor  # noise
    powers: LinkPowers


def transmit(z: torch.Tensor, u: Optional[torch.Tensor], snr_db, sinr_db=math.inf,
             channel_type: str = "awgn", coherence: int = 1, signal_power: float = 1.0,
             generator: Optional[torch.Generator] = None) -> ChannelOutput:
    """Pass unit-power symbols z (and interferer symbols u) through the channel."""
    z = torch.as_tensor(z)
    if not z.is_complex():
        raise TypeError(f"symbols must be complex, got {z.dtype}")
    p = link_powers(snr_db, sinr_db, signal_power)
    if u is None:
        if p.interference_power > 0:
            raise ValueError("an interferer signal u is needed when SINR < SNR")
        u = torch.zeros_like(z)
    elif u.shape != z.shape:
        raise ValueError(f"interferer shape {tuple(u.shape)} != signal shape {tuple(z.shape)}")
    h = fading(z.shape, channel_type, coherence, generator, z.dtype)
    g = fading(z.shape, channel_type, coherence, generator, z.dtype)
    n = torch.randn(z.shape, dtype=z.dtype, generator=generator) * math.sqrt(p.noise_var)
    y = math.sqrt(p.signal_power) * h * z + math.sqrt(p.interference_power) * g * u + n
    return ChannelOutput(y=y, h=h, g=g, n=n, powers=p)
