"""ICDM's joint sampler: signal and interference chains run together by UniPC, guided by
the likelihood of the equalized observation (guidance.py).

The predictor of each chain uses the guided eps; the corrector uses the unguided eps (as in
the ICDM paper) unless `guided_corrector` is set. The chains start from x_T, i_T at step
`start` given by the caller (the paper: N(0, I) at T-1; matched_start.py gives the start
from the observation). Everything is in diffusion space (unit-variance latents); the
physical latents are scale_x * x and scale_i * i.

`guidance` picks how the likelihood gradient is computed: "gaussian" (ICDM's surrogate, no
backpropagation), or the ablations "pigdm", "dps" (autograd through both networks) and
"projection" (see guidance.py).
"""

from typing import Callable, Optional

import torch

from .guidance import (GUIDANCE_KINDS, LinearObservation, covariance_guidance, dps_objective,
                       gaussian_guidance, gaussian_log_likelihood, guided_eps, projection_guidance)
from .samplers import UniPC
from .schedule import VPSchedule


def guidance_terms(kind, eps_x, eps_i, obs, xhat, schedule, x, i, t, abar):
    """(eps_x, eps_i, grad_x, grad_i) at (x, i, t) for one guidance kind."""
    if kind in ("gaussian", "projection"):
        ex, ei = eps_x(x, t), eps_i(i, t)
        fn = gaussian_guidance if kind == "gaussian" else projection_guidance
        return (ex, ei) + fn(obs, xhat, schedule.tweedie_x0(x, t, ex), schedule.tweedie_x0(i, t, ei), abar)
    if kind == "covariance":
        if obs.cov_x is None or obs.cov_i is None:
            raise ValueError("covariance guidance needs the priors' covariances (obs.cov_x, obs.cov_i)")
        ex, ei = eps_x(x, t), eps_i(i, t)
        return (ex, ei) + covariance_guidance(obs, xhat, schedule.tweedie_x0(x, t, ex),
                                              schedule.tweedie_x0(i, t, ei), abar)
    with torch.enable_grad():  # pigdm and dps differentiate through the networks
        xg, ig = x.detach().requires_grad_(True), i.detach().requires_grad_(True)
        ex, ei = eps_x(xg, t), eps_i(ig, t)
        x0, i0 = schedule.tweedie_x0(xg, t, ex), schedule.tweedie_x0(ig, t, ei)
        if kind == "pigdm":
            objective = gaussian_log_likelihood(obs, xhat, x0, i0, abar)
        else:
            objective = dps_objective(obs, xhat, x0, i0)
        gx, gi = torch.autograd.grad(objective.sum(), (xg, ig))
    return ex.detach(), ei.detach(), gx, gi


def icdm_sample(eps_x: Callable, eps_i: Callable, obs: LinearObservation, xhat: torch.Tensor,
                schedule: VPSchedule, x_T: torch.Tensor, i_T: torch.Tensor, steps: int = 20,
                order: int = 2, variant: str = "bh2", zeta_x: float = 1.0, zeta_i: float = 1.0,
                guided_corrector: bool = False, guidance: str = "gaussian", start: Optional[int] = None):
    """(x0, i0) estimates after `steps` joint steps from `start` (default T-1); eps_x(x, t),
    eps_i(i, t) are the priors' noise predictions. NFE = 2 * steps (one evaluation of each
    prior per step; pigdm and dps also backpropagate through both)."""
    if guidance not in GUIDANCE_KINDS:
        raise ValueError(f"guidance must be one of {', '.join(GUIDANCE_KINDS)}, got {guidance!r}")
    timesteps = schedule.timesteps(steps, start)
    ux, ui = (UniPC(schedule, timesteps, order, variant) for _ in range(2))
    x, i = x_T, i_T
    for t in timesteps:
        abar = schedule.alphas_cumprod[t].item()
        ex, ei, gx, gi = guidance_terms(guidance, eps_x, eps_i, obs, xhat, schedule, x, i, t, abar)
        gex, gei = guided_eps(ex, gx, abar, zeta_x), guided_eps(ei, gi, abar, zeta_i)
        x = ux.step(x, gex if guided_corrector else ex, gex)
        i = ui.step(i, gei if guided_corrector else ei, gei)
    return x, i
