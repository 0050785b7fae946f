"""lmmse: the DeepJSCC link with an interference-aware linear MMSE receiver.

The receiver knows the SINR, so the per-symbol weight counts the interference power too:
w_l = sqrt(Ps) h* / (Ps |h|^2 + Pi + sigma^2). Both w_l and the MMSE equalizer's
w = sqrt(Ps) h* / (Ps |h|^2 + sigma^2) are along h*, so w_l y = r w y with the real ratio
r = (Ps |h|^2 + sigma^2) / (Ps |h|^2 + Pi + sigma^2): the scheme rescales the equalized
symbols. For unit-power Gaussian latents this is the linear estimate of least mean-square
error given y; it is the linear baseline every diffusion gain is also reported against.
"""

import torch

from ..core.mapping import complex_to_real
from . import register
from .deepjscc import DeepJSCCScheme


def lmmse_ratio(h: torch.Tensor, signal_power: float, noise_var: float, interference_power: float):
    """r = (Ps|h|^2 + sigma^2) / (Ps|h|^2 + Pi + sigma^2), per symbol: w_lmmse = r w_mmse."""
    gain = signal_power * h.abs().square()
    return (gain + noise_var) / (gain + interference_power + noise_var)


class LMMSE(DeepJSCCScheme):
    name = "lmmse"
    description = "interference-aware linear MMSE (w uses Ps|h|^2 + Pi + sigma^2; the receiver knows the SINR)"

    def clean(self, obs, models):
        p = obs.powers
        r = lmmse_ratio(obs.h.to(obs.zhat.device), p.signal_power, p.noise_var, p.interference_power)
        return complex_to_real(r * obs.zhat).float(), 0


register(LMMSE())
