"""lmmse: the DeepJSCC link with an interference-aware linear MMSE receiver.

The receiver knows the SINR, so the per-symbol weight counts the interference power too:
w_l = sqrt(Ps) h* / (Ps |h|^2 + Pi + sigma^2). The observation holds zhat = w y for the
weights w the equalizer actually applied (the batch engine's, the C++ block's with its own
noise variance, or over the air one from estimates), so the scheme applies w_l / w to zhat:
w_l y wherever w != 0 (where w = 0, h = 0 and w_l = 0 too). For white, unit-power Gaussian
latents this is the linear estimate of least mean-square error given y; the latents are not
white, and the linear control with fitted covariances is `lmmse-full` (issue 12). It is the
linear baseline every diffusion gain is also reported against.
"""

import math

import torch

from ..core.mapping import complex_to_real
from . import register
from .deepjscc import DeepJSCCScheme


def lmmse_weights(h: torch.Tensor, signal_power: float, noise_var: float, interference_power: float):
    """w_l = sqrt(Ps) h* / (Ps|h|^2 + Pi + sigma^2), per symbol."""
    return math.sqrt(signal_power) * h.conj() / (signal_power * h.abs().square() + interference_power + noise_var)


class LMMSE(DeepJSCCScheme):
    name = "lmmse"
    description = "interference-aware linear MMSE (w uses Ps|h|^2 + Pi + sigma^2; the receiver knows the SINR)"

    def clean(self, obs, models):
        p = obs.powers
        w_l = lmmse_weights(obs.h.to(obs.zhat.device), p.signal_power, p.noise_var, p.interference_power)
        w = obs.w.to(obs.zhat.device)
        ratio = torch.where(w.abs() > 0, w_l / torch.where(w.abs() > 0, w, torch.ones_like(w)), torch.zeros_like(w))
        return complex_to_real(ratio * obs.zhat).float(), 0


register(LMMSE())
