"""Flat-fading channel with an interfering user: y = sqrt(Ps) h z + sqrt(Pi) g u + n.

SNR = Ps / sigma^2 and SINR = Ps / (Pi + sigma^2), both in dB; SINR = inf means no
interferer. h, g = 1 for AWGN; CN(0, 1) for Rayleigh, i.i.d. per symbol
(coherence 1) or held for `coherence` consecutive symbols of each row.
The C++ block fading_interference_channel_cc implements the same statistics.

A channel use is a draw and an application:
  draw_channel(shape, ...) -> ChannelDraw(h, g, n): the random state, with UNIT noise
      n ~ CN(0, 1), so a draw does not depend on SNR/SINR (one draw serves any operating
      point, and a transmitter can be handed h before the powers are fixed);
  apply_channel(z, u, draw, powers) -> ChannelOutput: y = sqrt(Ps) h z + sqrt(Pi) g u
      + sigma n.
transmit() is the two in a row and gives bit-identical results to the single function it
replaces (draw order h, g, n from the same generator). csit() models what a transmitter
knows of h (genie, delayed by whole coherence blocks, and/or with estimation error).
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


def check_coherence(coherence) -> int:
    """A coherence length (symbols per fading block), checked: an integer >= 1, or ValueError."""
    if isinstance(coherence, bool) or int(coherence) != coherence or coherence < 1:
        raise ValueError(f"coherence length must be an integer >= 1, got {coherence}")
    return int(coherence)


def fading(shape, channel_type: str, coherence: int = 1,
           generator: Optional[torch.Generator] = None, dtype=torch.complex64) -> torch.Tensor:
    """Fading coefficients of the given shape; blocks of `coherence` along the last axis."""
    if channel_type not in CHANNEL_TYPES:
        raise ValueError(f"unknown channel type {channel_type!r} (expected one of {CHANNEL_TYPES})")
    check_coherence(coherence)
    shape = tuple(shape)
    if channel_type == "awgn":
        return torch.ones(shape, dtype=dtype)
    n = shape[-1]
    n_blocks = -(-n // coherence)
    draws = torch.randn(*shape[:-1], n_blocks, dtype=dtype, generator=generator)  # CN(0, 1)
    return draws.repeat_interleave(coherence, dim=-1)[..., :n]


@dataclass
class ChannelDraw:
    """The random state of one channel use; all of the same shape as the symbols."""
    h: torch.Tensor  # user's fading
    g: torch.Tensor  # interferer's fading
    n: torch.Tensor  # UNIT-variance noise CN(0, 1); apply_channel scales it by sigma


@dataclass
class ChannelOutput:
    y: torch.Tensor  # received symbols
    h: torch.Tensor  # user's channel (known to the receiver)
    g: torch.Tensor  # interferer's channel (unknown to the receiver)
    n: torch.Tensor  # noise (scaled: CN(0, sigma^2))
    powers: LinkPowers


def draw_channel(shape, channel_type: str = "awgn", coherence: int = 1,
                 generator: Optional[torch.Generator] = None,
                 dtype=torch.complex64) -> ChannelDraw:
    """Draw h, g (blocks of `coherence` along the last axis of `shape`) and unit noise n, in
    that order from `generator` (AWGN fading takes no draws)."""
    shape = tuple(shape)
    h = fading(shape, channel_type, coherence, generator, dtype)
    g = fading(shape, channel_type, coherence, generator, dtype)
    n = torch.randn(shape, dtype=dtype, generator=generator)  # CN(0, 1)
    return ChannelDraw(h=h, g=g, n=n)


def apply_channel(z: torch.Tensor, u: Optional[torch.Tensor], draw: ChannelDraw,
                  powers: LinkPowers) -> ChannelOutput:
    """y = sqrt(Ps) h z + sqrt(Pi) g u + sigma n for a draw (h may be the one a precoder
    was given: the transmitter pre-compensates with draw.h or csit(draw.h, ...))."""
    z = torch.as_tensor(z)
    if not z.is_complex():
        raise TypeError(f"symbols must be complex, got {z.dtype}")
    p = powers
    if u is None:
        if p.interference_power > 0:
            raise ValueError("an interferer signal u is needed when SINR < SNR")
        u = torch.zeros_like(z)
    elif u.shape != z.shape:
        raise ValueError(f"interferer shape {tuple(u.shape)} != signal shape {tuple(z.shape)}")
    for name in ("h", "g", "n"):
        if getattr(draw, name).shape != z.shape:
            raise ValueError(f"draw.{name} shape {tuple(getattr(draw, name).shape)} != "
                             f"signal shape {tuple(z.shape)}")
    h, g = draw.h, draw.g
    n = draw.n * math.sqrt(p.noise_var)
    y = math.sqrt(p.signal_power) * h * z + math.sqrt(p.interference_power) * g * u + n
    return ChannelOutput(y=y, h=h, g=g, n=n, powers=p)


def transmit(z: torch.Tensor, u: Optional[torch.Tensor], snr_db, sinr_db=math.inf,
             channel_type: str = "awgn", coherence: int = 1, signal_power: float = 1.0,
             generator: Optional[torch.Generator] = None) -> ChannelOutput:
    """Pass unit-power symbols z (and interferer symbols u) through the channel:
    draw_channel then apply_channel (same draws, same bits as before the split)."""
    z = torch.as_tensor(z)
    if not z.is_complex():
        raise TypeError(f"symbols must be complex, got {z.dtype}")
    p = link_powers(snr_db, sinr_db, signal_power)
    # Argument errors come before any draw, so a refused call leaves the generator as it was.
    if u is None:
        if p.interference_power > 0:
            raise ValueError("an interferer signal u is needed when SINR < SNR")
    elif u.shape != z.shape:
        raise ValueError(f"interferer shape {tuple(u.shape)} != signal shape {tuple(z.shape)}")
    draw = draw_channel(z.shape, channel_type, coherence, generator, z.dtype)
    return apply_channel(z, u, draw, p)


def csit(h: torch.Tensor, delay_blocks: int = 0, error_var: float = 0.0, coherence: int = 1,
         generator: Optional[torch.Generator] = None, channel_type: str = "rayleigh") -> torch.Tensor:
    """The user's fading as the transmitter knows it (CSIT), same shape as h.

    h: the fading the channel applies (e.g. draw_channel(...).h), time along the last axis
    in blocks of `coherence` counted from each row's start (as fading() makes them).

    - delay_blocks = d >= 0: the transmitter knows the fading of d coherence blocks earlier,
      h_d[t] = h[t - d*coherence] (feedback delay). For the first d blocks of each row
      the fading before the start is unknown to this function: it is drawn from the prior
      of `channel_type` (independent CN(0, 1) per block for "rayleigh", 1 for "awgn"), i.e.
      a stale estimate that tells nothing about the block. (With this module's i.i.d. block
      fading any d >= 1 thus gives CSIT independent of h; d = 0 is the genie.)
    - error_var = e in [0, 1]: Gauss-Markov estimation error, h_hat = sqrt(1-e) h_d +
      sqrt(e) w, w ~ CN(0, 1) independent, one w per coherence block (one estimate per block).
      For unit-variance Gaussian h, E|h_hat|^2 = 1 and E[h_hat* h] = sqrt(1-e); the model is
      symmetric: h = sqrt(1-e) h_hat + sqrt(e) w' with w' independent of h_hat.

    delay_blocks = 0 and error_var = 0 return h itself (a copy): the genie CSIT of simulation.
    Draw order from `generator`: the prior of the first d blocks, then w.
    """
    if int(delay_blocks) != delay_blocks or delay_blocks < 0:
        raise ValueError(f"delay must be an integer number of blocks >= 0, got {delay_blocks}")
    check_coherence(coherence)
    if not (0.0 <= error_var <= 1.0):
        raise ValueError(f"error variance must be in [0, 1], got {error_var}")
    if channel_type not in CHANNEL_TYPES:
        raise ValueError(f"unknown channel type {channel_type!r} (expected one of {CHANNEL_TYPES})")
    h = torch.as_tensor(h)
    if not h.is_complex():
        raise TypeError(f"fading must be complex, got {h.dtype}")
    delay_blocks, coherence = int(delay_blocks), int(coherence)
    h_hat = h.clone()
    shift = delay_blocks * coherence
    if delay_blocks > 0:
        n = h.shape[-1]
        head = min(shift, n)
        prior = fading(h.shape[:-1] + (head,), channel_type, coherence, generator, h.dtype)
        h_hat[..., :head] = prior.to(h.device)
        if shift < n:
            h_hat[..., shift:] = h[..., :n - shift]
    if error_var > 0:
        w = fading(h.shape, "rayleigh", coherence, generator, h.dtype).to(h.device)
        h_hat = math.sqrt(1.0 - error_var) * h_hat + math.sqrt(error_var) * w
    return h_hat
