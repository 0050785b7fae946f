"""ICDM's joint sampler: signal and interference chains run together by UniPC, guided by
the Gaussian-prior likelihood of the equalized observation (guidance.py).

The predictor of each chain uses the guided eps; the corrector uses the unguided eps (as in
the ICDM paper) unless `guided_corrector` is set. Starts from x_T, i_T given by the caller
(the paper: N(0, I)). Everything is in diffusion space (unit-variance latents); the
physical latents are scale_x * x and scale_i * i.
"""

from typing import Callable

import torch

from .guidance import LinearObservation, gaussian_guidance, guided_eps
from .samplers import UniPC
from .schedule import VPSchedule


def icdm_sample(eps_x: Callable, eps_i: Callable, obs: LinearObservation, xhat: torch.Tensor,
                schedule: VPSchedule, x_T: torch.Tensor, i_T: torch.Tensor, steps: int = 20,
                order: int = 2, variant: str = "bh2", zeta_x: float = 1.0, zeta_i: float = 1.0,
                guided_corrector: bool = False):
    """(x0, i0) estimates after `steps` joint steps from T-1; eps_x(x, t), eps_i(i, t) are the
    priors' noise predictions. NFE = 2 * steps (one evaluation of each prior per step)."""
    timesteps = schedule.timesteps(steps)
    ux, ui = (UniPC(schedule, timesteps, order, variant) for _ in range(2))
    x, i = x_T, i_T
    for t in timesteps:
        ex, ei = eps_x(x, t), eps_i(i, t)
        abar = schedule.alphas_cumprod[t].item()
        gx, gi = gaussian_guidance(obs, xhat, schedule.tweedie_x0(x, t, ex), schedule.tweedie_x0(i, t, ei), abar)
        gex, gei = guided_eps(ex, gx, abar, zeta_x), guided_eps(ei, gi, abar, zeta_i)
        x = ux.step(x, gex if guided_corrector else ex, gex)
        i = ui.step(i, gei if guided_corrector else ei, gei)
    return x, i
