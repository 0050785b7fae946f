"""Reverse-process samplers on a VPSchedule. None of them calls a network: each step takes
the model's eps prediction at the current point, so guidance is added by the caller.

UniPC (Zhao et al., 2023, data-prediction form, B(h) = h for "bh1" or e^h - 1 for "bh2"):
at every step the corrector UniC refines the current point with the model output just
computed there (no extra evaluation), then the predictor UniP moves to the next step with
order min(k, steps done + 1), and lower orders in the last steps. The final target is the
clean signal (sigma = 0). Orders and update rules follow the UniPC paper; unguided results
match diffusers' UniPCMultistepScheduler (tested as an oracle).
"""

import math
from typing import Callable, List, Optional

import torch

from .schedule import VPSchedule


def ddim_step(schedule: VPSchedule, x_t, eps, t: int, t_prev: Optional[int], eta: float = 0.0,
              generator: Optional[torch.Generator] = None):
    """One DDIM step t -> t_prev (None: to x_0); eta = 1 is DDPM's ancestral step. With eta = 0
    the step may also go up (t_prev > t): DDIM inversion."""
    x0 = schedule.tweedie_x0(x_t, t, eps)
    if t_prev is None:
        return x0
    a_prev, s_prev = schedule.alpha(t_prev).item(), schedule.sigma(t_prev).item()
    abar_t, abar_prev = schedule.alphas_cumprod[t].item(), schedule.alphas_cumprod[t_prev].item()
    std = eta * math.sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)) if eta else 0.0
    direction = math.sqrt(max(s_prev ** 2 - std ** 2, 0.0)) * eps
    noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype) * std if std > 0 else 0
    return a_prev * x0 + direction + noise


class UniPC:
    """A UniPC multistep predictor-corrector over the steps `timesteps` (descending).

    Use step(x, eps_corrector, eps_predictor) once per entry of `timesteps`, with the model's
    eps at x for that step; it returns the point at the next step (after the last one: the
    x_0 estimate). eps_predictor defaults to eps_corrector (unguided).
    """

    def __init__(self, schedule: VPSchedule, timesteps: List[int], order: int = 2,
                 variant: str = "bh2", lower_order_final: bool = True, use_corrector: bool = True):
        if variant not in ("bh1", "bh2"):
            raise ValueError(f"variant must be 'bh1' or 'bh2', got {variant!r}")
        if order < 1 or not timesteps or list(timesteps) != sorted(timesteps, reverse=True):
            raise ValueError("need order >= 1 and descending, non-empty timesteps")
        self.schedule, self.timesteps = schedule, [int(t) for t in timesteps]
        self.order, self.variant = int(order), variant
        self.lower_order_final, self.use_corrector = lower_order_final, use_corrector
        ab = schedule.alphas_cumprod
        # alpha, sigma, lambda at each step and at the clean end (alpha 1, sigma 0, lambda inf)
        self.alphas = [ab[t].sqrt().item() for t in self.timesteps] + [1.0]
        self.sigmas = [(1 - ab[t]).sqrt().item() for t in self.timesteps] + [0.0]
        self.lambdas = [math.log(a) - math.log(s) for a, s in zip(self.alphas[:-1], self.sigmas[:-1])] + [math.inf]
        self.reset()

    def reset(self):
        self.index = 0
        self.history = []        # x_0 predictions at the steps done, newest last
        self.last_sample = None  # the point the last predictor started from
        self.last_order = 0

    def _coefficients(self, s0: int, t: int, order: int):
        """h-dependent terms and the rho coefficients for a move from step s0 to step t."""
        lam_s0, lam_t = self.lambdas[s0], self.lambdas[t]
        h = lam_t - lam_s0
        hh = -h  # data prediction
        h_phi_1 = math.expm1(hh)
        b_h = hh if self.variant == "bh1" else math.expm1(hh)
        rks = [(self.lambdas[s0 - i] - lam_s0) / h for i in range(1, order)] + [1.0]
        h_phi_k, fact, b = h_phi_1 / hh - 1, 1, []
        for i in range(1, order + 1):
            b.append(h_phi_k * fact / b_h)
            fact *= i + 1
            h_phi_k = h_phi_k / hh - 1 / fact
        R = torch.tensor([[r ** (i - 1) for r in rks] for i in range(1, order + 1)], dtype=torch.float64)
        b = torch.tensor(b, dtype=torch.float64)
        return h_phi_1, b_h, rks[:-1], R, b

    def _update(self, x, s0: int, t: int, order: int, model_t=None):
        """Predictor (model_t None) or corrector (model_t = x_0 prediction at step t)."""
        m0 = self.history[-1]
        h_phi_1, b_h, rks, R, b = self._coefficients(s0, t, order)
        d1s = [(self.history[-(i + 1)] - m0) / r for i, r in enumerate(rks, start=1)]
        if model_t is None:
            rhos = [0.5] if order == 2 else (torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist() if d1s else [])
        else:
            rhos = [0.5] if order == 1 else torch.linalg.solve(R, b).tolist()
        x_t = (self.sigmas[t] / self.sigmas[s0]) * x - self.alphas[t] * h_phi_1 * m0
        if not d1s and model_t is None:
            # First order: no correction term. (Skipping it also avoids bh1's B(h) = -inf
            # times 0 on the last step to sigma = 0, where diffusers returns NaN.)
            return x_t
        res = sum(r * d for r, d in zip(rhos, d1s)) if d1s else 0
        if model_t is not None:
            res = res + rhos[-1] * (model_t - m0)
        return x_t - self.alphas[t] * b_h * res

    def step(self, x, eps_corrector, eps_predictor=None):
        i = self.index
        if i >= len(self.timesteps):
            raise RuntimeError("UniPC: every step is done; reset() to sample again")
        t = self.timesteps[i]
        # x_0 predictions at the point the model saw (before the corrector moves it)
        x0_corr = self.schedule.tweedie_x0(x, t, eps_corrector)
        x0_pred = x0_corr if eps_predictor is None else self.schedule.tweedie_x0(x, t, eps_predictor)
        if self.use_corrector and self.last_sample is not None:
            x = self._update(self.last_sample, i - 1, i, self.last_order, model_t=x0_corr)
        self.history = (self.history + [x0_pred])[-self.order:]
        order = min(self.order, len(self.timesteps) - i) if self.lower_order_final else self.order
        order = min(order, i + 1)  # warm-up: lower orders while the history fills
        if i == len(self.timesteps) - 1:
            order = 1  # to sigma = 0 (lambda = inf) only the first-order update is defined
        self.last_sample, self.last_order = x, order
        self.index += 1
        return self._update(x, i, i + 1, order)

    def sample(self, eps_fn: Callable, x, guidance: Optional[Callable] = None):
        """Run every step: eps_fn(x, t) -> eps; guidance(x, t, eps) -> guided eps for the
        predictor (None: unguided). Returns the x_0 estimate."""
        self.reset()
        for t in self.timesteps:
            eps = eps_fn(x, t)
            x = self.step(x, eps, None if guidance is None else guidance(x, t, eps))
        return x
