"""Channel pre-compensation at the transmitter (GNU Radio-free): JSCNA-AD's truncated channel
inversion under a long-term power constraint (spec ../shared/papers/jscna_ad.md §2, §5.4).

For per-symbol Rayleigh fading h_i ~ CN(0, 1), gain g_i = |h_i|^2, and unit-power symbols nu:

    x_i = c nu_i / h_i   if g_i >= g_th,   else 0 (erased, signalled to the receiver)
    E|x|^2 = c^2 E[1/g; g >= g_th] = c^2 E1(g_th)  =>  c^2 = P / E1(g_th)

(E1 the exponential integral; plain inversion, g_th = 0, would need E[1/g] = infinity.) Every
kept symbol then arrives as y_i = c nu_i + n_i: the same noise on every symbol, an effective SNR
snr / E1(g_th), a fraction 1 - exp(-g_th) erased. On AWGN (h = 1) nothing is erased and c = sqrt(P).

The threshold shrinks with the SNR: `threshold_for_snr` interpolates the Gaussian-source optimal
values of the spec (0.40 / 0.22 / 0.08 / 0.01 at 0 / 4 / 10 / 20 dB) linearly in log g_th over
SNR dB, held flat outside that range.
"""

import math
from typing import Tuple

import numpy as np
import torch

# (SNR dB, g_th): the spec's Gaussian-optimal thresholds (§2 table, §5.4)
THRESHOLDS = ((0.0, 0.40), (4.0, 0.22), (10.0, 0.08), (20.0, 0.01))


def exp1(x: float) -> float:
    """The exponential integral E1(x) = int_x^inf e^-g / g dg, x > 0."""
    from scipy.special import exp1 as _exp1
    if not x > 0:
        raise ValueError(f"E1 needs x > 0, got {x}")
    return float(_exp1(x))


def threshold_for_snr(snr_db: float) -> float:
    """The truncation threshold g_th for an SNR (dB): the spec's values, log-linear in between."""
    if not math.isfinite(snr_db):
        raise ValueError(f"SNR must be finite, got {snr_db}")
    snrs = [s for s, _ in THRESHOLDS]
    logs = [math.log(g) for _, g in THRESHOLDS]
    return math.exp(float(np.interp(snr_db, snrs, logs)))


def inversion_gain(g_th: float, power: float = 1.0) -> float:
    """c with c^2 = P / E1(g_th): the gain that meets the long-term power constraint."""
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    return math.sqrt(power / exp1(g_th))


def effective_snr_db(snr_db: float, g_th: float) -> float:
    """The SNR of every kept symbol after truncated inversion (unit-power symbols, P = 1 per
    symbol on average): snr / E1(g_th)."""
    return snr_db - 10 * math.log10(exp1(g_th))


def truncated_inversion(symbols: torch.Tensor, h: torch.Tensor, g_th: float,
                        power: float = 1.0, channel_type: str = "rayleigh") -> Tuple[torch.Tensor, torch.Tensor, float]:
    """(x (N, k) complex to send, kept (N, k) bool, c): x = c nu / h where |h|^2 >= g_th, else 0.
    `symbols` nu have unit mean power per image; on AWGN every symbol is kept and x = sqrt(P) nu."""
    if symbols.shape != h.shape or not symbols.is_complex():
        raise ValueError(f"need complex symbols and CSI of one shape, got {tuple(symbols.shape)} and {tuple(h.shape)}")
    if channel_type == "awgn":
        return math.sqrt(power) * symbols, torch.ones(symbols.shape, dtype=torch.bool), math.sqrt(power)
    if channel_type != "rayleigh":
        raise ValueError(f"channel_type must be awgn or rayleigh, got {channel_type!r}")
    c = inversion_gain(g_th, power)
    kept = h.abs().square() >= g_th
    safe = torch.where(kept, h, torch.ones_like(h))
    x = torch.where(kept, c * symbols / safe, torch.zeros_like(symbols))
    return x, kept, c
