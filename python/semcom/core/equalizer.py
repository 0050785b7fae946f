"""MMSE equalization and its real-valued model (ICDM Lemma 1).

w = sqrt(Ps) conj(h) / (Ps |h|^2 + sigma^2),  zhat = w y.

With x = [Re z; Im z], i = [Re(g u); Im(g u)] (interference, unknown gain folded in)
and e ~ N(0, I):  xhat = A x + B i + C e, where per symbol
    A = real form of a = sqrt(Ps) w h       (= Ps|h|^2 / (Ps|h|^2 + sigma^2) for MMSE: diagonal)
    B = real form of b = sqrt(Pi) w         (a 2x2 rotation-scaling block)
    C = |w| sigma / sqrt(2)                 (diagonal)
The real form of a complex coefficient c = cr + j ci is [[cr, -ci], [ci, cr]], acting on
(Re, Im) of the same symbol; the noise direction is e = (w/|w|) n / (sigma/sqrt 2), which is
N(0, I) because n is circularly symmetric. Any w is valid: A, B, C follow the w applied.
"""

import math
from dataclasses import dataclass

import torch

from .channel import link_powers
from .mapping import complex_to_real, real_to_complex


def mmse_weights(h: torch.Tensor, signal_power: float, noise_var: float) -> torch.Tensor:
    if not (signal_power > 0 and math.isfinite(signal_power)):
        raise ValueError(f"signal power must be finite and > 0, got {signal_power}")
    if not (noise_var >= 0 and math.isfinite(noise_var)):
        raise ValueError(f"noise variance must be finite and >= 0, got {noise_var}")
    return math.sqrt(signal_power) * h.conj() / (signal_power * h.abs().square() + noise_var)


def mmse_equalize(y: torch.Tensor, h: torch.Tensor, signal_power: float, noise_var: float):
    """Return (zhat, w), the equalized symbols and the per-symbol weights."""
    w = mmse_weights(h, signal_power, noise_var)
    return w * y, w


@dataclass
class Lemma1:
    """Per-symbol coefficients of xhat = A x + B i + C e (complex a, b; real c)."""
    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor

    def apply(self, x: torch.Tensor, i: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """A x + B i + C e on real vectors (..., 2k)."""
        return (complex_to_real(self.a * real_to_complex(x))
                + complex_to_real(self.b * real_to_complex(i))
                + torch.cat([self.c, self.c], dim=-1) * e)

    def noise_variance(self) -> torch.Tensor:
        """Variance of the equalized noise per real dimension, C^2, shape (..., 2k)."""
        return torch.cat([self.c, self.c], dim=-1).square()


def lemma1(w: torch.Tensor, h: torch.Tensor, signal_power: float,
           interference_power: float, noise_var: float) -> Lemma1:
    """A, B, C of Lemma 1 for the weights w actually applied."""
    return Lemma1(a=math.sqrt(signal_power) * w * h,
                  b=math.sqrt(interference_power) * w,
                  c=w.abs() * math.sqrt(noise_var / 2.0))


def noise_direction(w: torch.Tensor, n: torch.Tensor, noise_var: float) -> torch.Tensor:
    """The standard-normal e (real form) with C e = real form of w n, for known draws."""
    return complex_to_real(w / w.abs() * n / math.sqrt(noise_var / 2.0))


def mmse_symbol_error(channel_type: str, snr_db, sinr_db=math.inf, signal_power: float = 1.0) -> float:
    """Closed-form E|zhat - z|^2 of the MMSE equalizer for unit-power symbols.

    The equalizer knows sigma^2 but not the interferer, so with a = Ps|h|^2/(Ps|h|^2+sigma^2)
    and |w|^2 = a/(Ps|h|^2+sigma^2): E_h[(1 - a)^2 + |w|^2 (sigma^2 + Pi)], with h = 1 for AWGN
    and |h|^2 ~ Exp(1) for Rayleigh (integrated numerically).
    """
    p = link_powers(snr_db, sinr_db, signal_power)

    def error(gain2):
        denom = p.signal_power * gain2 + p.noise_var
        a = p.signal_power * gain2 / denom
        return (1 - a) ** 2 + a / denom * (p.noise_var + p.interference_power)

    if channel_type == "awgn":
        return error(1.0)
    if channel_type != "rayleigh":
        raise ValueError(f"unknown channel type {channel_type!r}")
    from scipy.integrate import quad  # only needed here
    value, _ = quad(lambda x: error(x) * math.exp(-x), 0, math.inf, limit=200)
    return value
