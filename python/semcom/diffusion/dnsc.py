"""Latent-Diff DNSC's receiver maths (Xu et al.; spec: ../shared/papers/dnsc.md sections 2 and 5):
one unconditional prior, trained without any channel, cleans a received latent at any SNR.

The latent u is normalised per image to unit mean square per real dimension (the transmitter's
power normalisation, eq. 2). After equalisation the receiver holds r = u + n with per-dimension
noise variance v (1/snr on AWGN). Because x_t / sqrt(abar_t) = x_0 + N(0, (1 - abar_t)/abar_t),
the received latent IS a forward diffusion state once scaled:

    abar* = 1 / (1 + v)       (= snr / (1 + snr))        sqrt(abar*) r = sqrt(abar*) u + sqrt(1 - abar*) eps

On the discrete grid the start step is the first one with at least that much noise,
t* = min{t : abar_t <= abar*}, and a top-up of variance abar_t* (v_t* - v) makes the state
exact (v_t* = (1 - abar_t*)/abar_t*): diffusion.matched_start does both, and on i.i.d. fading
(v differs per symbol) takes v* as the median and scales the deep fades (CDDM's rule).

The SNR comes from the blind moment estimator: the transmitted block has power exactly P per
image, so E mean|y|^2 = P mean|h|^2 + sigma^2 and sigma^2 = mean|y|^2 - P mean|h|^2 has
variance (2 P sigma^2 + sigma^4) / k on AWGN (k symbols).

Reverse chains from t* (none calls a network: `eps_fn(x, t)` is the caller's):
    ddpm     ancestral DDPM, every step t*..0 (the paper's Alg. 2; NFE = t* + 1)
    ddim     DDIM (eta = 0) in `steps` steps
    unipc    UniPC in `steps` steps
    tweedie  E[x_0 | x_t*] in one evaluation: the posterior mean under the prior (the MMSE
             estimate; with a unit Gaussian prior exactly the shrinkage abar* r)
"""

import math
from typing import Callable, Optional

import torch

from .samplers import UniPC, ddim_step
from .schedule import VPSchedule

SAMPLERS = ("ddpm", "ddim", "unipc", "tweedie")
MIN_NOISE_VAR = 1e-6   # the blind estimator's floor (relative to P): a noiseless block is not 0


def blind_noise_var(y: torch.Tensor, h: torch.Tensor, power: float, floor: float = MIN_NOISE_VAR,
                    iterations: int = 3) -> torch.Tensor:
    """sigma^2 per image (N,) from received symbols y (N, k) = h z + n with mean|z|^2 = power
    per image: the moment estimate mean(|y|^2 - power |h|^2), floored at floor * power.

    With a constant |h| (AWGN) that is exact in expectation with variance (2 P sigma^2 +
    sigma^4)/k. Under fading the per-symbol terms |h_i|^2 (|z_i|^2 - P) do not cancel, an
    error of about P std(|h|^2)/sqrt(k) whatever the SNR (it floors many images at high SNR),
    so the terms are weighted by 1/E[|y_i|^2]^2 = 1/(P |h_i|^2 + sigma^2)^2 (their inverse
    variance for Gaussian z, which leans on the deep fades, where y is almost all noise),
    refined `iterations` times from the unweighted estimate. Equal |h| gives equal weights:
    the AWGN estimate is unchanged."""
    if y.ndim != 2 or h.shape != y.shape:
        raise ValueError(f"need y and h of one shape (N, k), got {tuple(y.shape)} and {tuple(h.shape)}")
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    gain = power * h.abs().square()
    term = y.abs().square() - gain
    est = term.mean(-1).clamp_min(floor * power)
    if bool((gain.amax(-1) > gain.amin(-1) * (1 + 1e-6)).any()):
        for _ in range(int(iterations)):
            weight = (gain + est[:, None]).pow(-2)
            est = ((weight * term).sum(-1) / weight.sum(-1)).clamp_min(floor * power)
    return est


def blind_noise_var_std(noise_var: float, power: float, k: int) -> float:
    """The estimator's standard deviation on AWGN, sqrt((2 P sigma^2 + sigma^4) / k) (before the floor)."""
    return math.sqrt((2 * power * noise_var + noise_var ** 2) / k)


def start_step(schedule: VPSchedule, noise_var: float) -> int:
    """t* = min{t : abar_t <= 1 / (1 + v)}: the first step with at least noise variance v
    (relative to a unit-variance x_0); T - 1 where even that has less."""
    if not noise_var >= 0:
        raise ValueError(f"noise variance must be >= 0, got {noise_var}")
    target = 1.0 / (1.0 + noise_var)
    below = (schedule.alphas_cumprod <= target).nonzero()
    return int(below[0]) if len(below) else schedule.num_steps - 1


def step_noise_var(schedule: VPSchedule, t: int) -> float:
    """(1 - abar_t) / abar_t: the noise variance of x_t / sqrt(abar_t) around x_0."""
    abar = schedule.alphas_cumprod[t].item()
    return (1.0 - abar) / abar


def reverse_chain(eps_fn: Callable, x: torch.Tensor, schedule: VPSchedule, t_start: int, sampler: str,
                  steps: int = 10, order: int = 2, variant: str = "bh2",
                  generator: Optional[torch.Generator] = None):
    """(x_0 estimate, network evaluations) of the reverse chain from x at step t_start."""
    if sampler == "tweedie":
        return schedule.tweedie_x0(x, t_start, eps_fn(x, t_start)), 1
    if sampler == "ddpm":
        return ddpm_ancestral(eps_fn, x, schedule, t_start, generator), t_start + 1
    timesteps = schedule.timesteps(steps, t_start)
    if sampler == "unipc":
        return UniPC(schedule, timesteps, order, variant).sample(eps_fn, x), len(timesteps)
    if sampler == "ddim":
        for i, t in enumerate(timesteps):
            x = ddim_step(schedule, x, eps_fn(x, t), t, timesteps[i + 1] if i + 1 < len(timesteps) else None)
        return x, len(timesteps)
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")


def ddpm_ancestral(eps_fn: Callable, x: torch.Tensor, schedule: VPSchedule, t_start,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Ancestral DDPM to x_0 (Ho et al. Alg. 2 with sigma_t^2 = the posterior variance
    beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t); the paper's Alg. 2, typos fixed):
    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t y, y = 0 at the last step.

    t_start: one step for every row of x, or one per row (each row of x is its state at its
    own step): one batch runs from the latest start, a row joining when the chain reaches its
    step, so N images with different starts cost max(t_start) + 1 evaluations of at most N rows,
    not one chain per start. The noise is drawn for every row at every step (a row's draws do
    not depend on which others are active)."""
    starts = torch.as_tensor(t_start).reshape(-1).long()
    if starts.numel() == 1:
        starts = starts.expand(x.shape[0])
    if starts.numel() != x.shape[0] or (starts < 0).any() or (starts >= schedule.num_steps).any():
        raise ValueError(f"need one start step in [0, {schedule.num_steps}) for each of the {x.shape[0]} rows")
    x = x.clone()
    abar = schedule.alphas_cumprod
    for t in range(int(starts.max()), -1, -1):
        abar_t = abar[t].item()
        abar_prev = abar[t - 1].item() if t > 0 else 1.0
        alpha_t = abar_t / abar_prev
        beta_t = 1.0 - alpha_t
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) if t > 0 else None
        active = (starts >= t).nonzero()[:, 0].to(x.device)
        rows = x if len(active) == len(x) else x[active]
        rows = (rows - beta_t / math.sqrt(1.0 - abar_t) * eps_fn(rows, t)) / math.sqrt(alpha_t)
        if noise is not None:
            var = beta_t * (1.0 - abar_prev) / (1.0 - abar_t)
            rows = rows + math.sqrt(var) * (noise if len(active) == len(x) else noise[active])
        x[active] = rows
    return x
