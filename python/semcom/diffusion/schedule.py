"""Variance-preserving (VP) noise schedules: x_t = alpha_t x_0 + sigma_t eps,
alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), log-SNR lambda_t = log(alpha_t / sigma_t)."""

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class VPSchedule:
    alphas_cumprod: torch.Tensor  # (T,) float64, decreasing from ~1

    @classmethod
    def linear(cls, steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "VPSchedule":
        """DDPM's linear betas (diffusers' "linear")."""
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        return cls(torch.cumprod(1 - betas, 0))

    @classmethod
    def cosine(cls, steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "VPSchedule":
        """Nichol & Dhariwal's cosine schedule (diffusers' "squaredcos_cap_v2")."""
        f = lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - f((i + 1) / steps) / f(i / steps), max_beta) for i in range(steps)],
                             dtype=torch.float64)
        return cls(torch.cumprod(1 - betas, 0))

    @property
    def num_steps(self) -> int:
        return len(self.alphas_cumprod)

    def alpha(self, t) -> torch.Tensor:
        return self.alphas_cumprod[t].sqrt()

    def sigma(self, t) -> torch.Tensor:
        return (1 - self.alphas_cumprod[t]).sqrt()

    def log_snr(self, t) -> torch.Tensor:
        return 0.5 * (self.alphas_cumprod[t].log() - (1 - self.alphas_cumprod[t]).log())

    def q_sample(self, x0: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """x_t = alpha_t x_0 + sigma_t eps (t an int or a (N,) tensor of steps)."""
        a, s = self._per_sample(self.alpha(t), x0), self._per_sample(self.sigma(t), x0)
        return a * x0 + s * eps

    def tweedie_x0(self, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] from an eps prediction: (x_t - sigma_t eps) / alpha_t."""
        a, s = self._per_sample(self.alpha(t), x_t), self._per_sample(self.sigma(t), x_t)
        return (x_t - s * eps) / a

    def step_for_noise(self, noise_var: float) -> int:
        """The step whose x_t / alpha_t = x_0 + (sigma_t/alpha_t) eps has noise variance
        `noise_var` (per dimension, relative to a unit-variance x_0): (1 - abar)/abar = noise_var."""
        if not noise_var >= 0:
            raise ValueError(f"noise variance must be >= 0, got {noise_var}")
        target = 1.0 / (1.0 + noise_var)
        return int(torch.argmin((self.alphas_cumprod - target).abs()))

    def timesteps(self, steps: int, start: int = None) -> list:
        """`steps` distinct integer steps from `start` (default T-1) down towards 0, evenly
        spaced, as diffusers' "linspace" spacing does for start = T-1; at most start + 1."""
        start = self.num_steps - 1 if start is None else int(start)
        if not 0 <= start < self.num_steps or steps < 1:
            raise ValueError(f"need 1 <= steps and 0 <= start < {self.num_steps}")
        if steps >= start + 1:  # every step (evenly spaced rounding would repeat some)
            return list(range(start, -1, -1))
        ts = np.linspace(0, start, steps + 1).round()[::-1][:-1].astype(np.int64)
        return [int(t) for t in ts]

    @staticmethod
    def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        v = v.to(like.device, like.dtype)
        return v.reshape(v.shape + (1,) * (like.ndim - v.ndim)) if v.ndim else v
