"""Start a reverse diffusion from the observation at the step whose noise level matches the
channel (CDDM's idea), for one chain of the Lemma-1 observation xhat = A x + B i + C e.

Per symbol, dividing by the chain's own coefficient gives the chain's latent plus noise:
    x~ = xhat / (s_x a) = x_u + n,   var(n) per real dimension v = (s_i^2 |b|^2 + c^2) / (s_x^2 |a|^2)
(for the interference chain swap the roles of a and b). x_t / sqrt(abar_t) = x_0 + noise of
variance (1 - abar_t) / abar_t, so the start step t* is the one where that equals v*, the
median v over the image's symbols (a Rayleigh channel makes v differ per symbol; AWGN does
not). Each image has its own t*, so its start step does not depend on the batch it came in:
`by_step` groups a batch's images by start step for the samplers. Symbols
with v < v* get extra Gaussian noise up to v*; symbols with v > v* (deep fades) are scaled by
sqrt((m + v*) / (m + v)), m the data's mean square (1 for unit-variance latents: `power`), so
that their variance matches x_0 + N(0, v*) instead of swamping the network with a huge value.
The start point is x_t* = sqrt(abar_t*) x~'.
"""

import torch

from ..core.mapping import complex_to_real, real_to_complex
from .guidance import LinearObservation
from .schedule import VPSchedule


def chain_noise(obs: LinearObservation, chain: str):
    """(own coefficient * scale, per-symbol noise variance v) for chain "x" or "i"."""
    own, other = (obs.scale_x * obs.a, obs.scale_i * obs.b)
    if chain == "i":
        own, other = other, own
    elif chain != "x":
        raise ValueError(f"chain must be 'x' or 'i', got {chain!r}")
    power = own.abs().square()
    v = (other.abs().square() + obs.c.square()) / power.clamp_min(1e-30)
    return own, torch.where(power > 0, v, torch.full_like(v, float("inf")))


def matched_steps(obs: LinearObservation, schedule: VPSchedule, chain: str = "x") -> list:
    """t* of each image: the step whose noise matches the median of `chain`'s per-symbol noise
    in that image."""
    _, v = chain_noise(obs, chain)
    return [schedule.step_for_noise(float(m)) for m in v.median(dim=-1).values]


def by_step(steps: list):
    """[(t, index tensor of the images starting at t)], latest step first."""
    steps = torch.as_tensor(steps)
    return [(int(t), (steps == t).nonzero()[:, 0]) for t in steps.unique().flip(0)]


def matched_start(obs: LinearObservation, xhat: torch.Tensor, schedule: VPSchedule, t: int,
                  chain: str = "x", generator: torch.Generator = None, power=1.0) -> torch.Tensor:
    """The start point of `chain` at step t from the observation (see the module docstring).
    `power`: the data's mean square per real dimension, a number or one per image (N,): 1 for
    unit-variance latents; a deep-faded symbol is shrunk by sqrt((power + v*) / (power + v))."""
    abar = schedule.alphas_cumprod[t].item()
    v_star = (1.0 - abar) / abar
    own, v = chain_noise(obs, chain)
    m = torch.as_tensor(power, dtype=v.dtype, device=v.device)
    m = m[:, None] if m.ndim else m
    zt = real_to_complex(xhat) / torch.where(own.abs() > 0, own, torch.ones_like(own))
    noise = torch.randn(xhat.shape, generator=generator, dtype=xhat.dtype).to(xhat.device)
    fill = complex_to_real(zt) + torch.cat([(v_star - v).clamp_min(0).sqrt()] * 2, -1) * noise
    shrink = torch.cat([((m + v_star) / (m + v)).sqrt()] * 2, -1)
    # No observation of this chain at all (coefficient 0): a draw from x_0 + N(0, v*) instead.
    blind = torch.cat([(m + v_star).sqrt().expand_as(v)] * 2, -1) * noise
    v2 = torch.cat([v, v], -1)
    x = torch.where(v2 <= v_star, fill, torch.where(torch.isinf(v2), blind, shrink * complex_to_real(zt)))
    return abar ** 0.5 * x
