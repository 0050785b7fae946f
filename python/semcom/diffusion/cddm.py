"""CDDM's receiver (Wu et al., 2023; Latent-Diff DNSC): a signal prior only, started from the
equalized observation at the step whose noise matches the channel's effective noise, with
the interference treated as noise, then run unguided to x_0 by UniPC."""

from typing import Callable

import torch

from .guidance import LinearObservation
from .matched_start import matched_start, matched_step
from .samplers import UniPC
from .schedule import VPSchedule


def cddm_sample(eps_x: Callable, obs: LinearObservation, xhat: torch.Tensor, schedule: VPSchedule,
                steps: int = 10, order: int = 2, variant: str = "bh2",
                generator: torch.Generator = None) -> torch.Tensor:
    """The x_0 estimate (diffusion space); NFE = min(steps, t* + 1)."""
    t_star = matched_step(obs, schedule, "x")
    x = matched_start(obs, xhat, schedule, t_star, "x", generator)
    return UniPC(schedule, schedule.timesteps(steps, t_star), order, variant).sample(eps_x, x)
