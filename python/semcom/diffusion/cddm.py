"""CDDM's receiver (Wu et al., 2023; Latent-Diff DNSC): a signal prior only, started from the
equalized observation at the step whose noise matches the channel's effective noise, with
the interference treated as noise, then run unguided to x_0 by UniPC."""

from typing import Callable

import torch

from .guidance import LinearObservation
from .matched_start import by_step, matched_start, matched_steps
from .samplers import UniPC
from .schedule import VPSchedule


def cddm_sample(eps_x: Callable, obs: LinearObservation, xhat: torch.Tensor, schedule: VPSchedule,
                steps: int = 10, order: int = 2, variant: str = "bh2",
                generator: torch.Generator = None):
    """(the x_0 estimates (diffusion space), each image's start step t*); an image costs
    min(steps, t* + 1) evaluations."""
    starts = matched_steps(obs, schedule, "x")
    out = torch.empty_like(xhat)
    for t_star, idx in by_step(starts):
        x = matched_start(obs.take(idx), xhat[idx], schedule, t_star, "x", generator)
        out[idx] = UniPC(schedule, schedule.timesteps(steps, t_star), order, variant).sample(eps_x, x)
    return out, starts
