"""The latents a diffusion prior learns, and its held-out eps-loss beside its fitted Gaussian.

Shared by apps/train_prior.py (training latents, the per-epoch monitor, the final held-out
evaluation recorded in the checkpoint) and apps/eval_prior.py (the same evaluation, rerun by
hand, of any prior against any others on the same draws).

The held-out evaluation (`held_out_eps_losses`) scores every model on the SAME draws: the same
latents (held-out images through the prior's encoder, with the interferer's Rayleigh gain drawn
once from the seed), and for each of `draws` passes the same steps t ~ U{0..T-1} and the same
noise eps per latent. Per image the squared error is averaged over dimensions and passes; the
losses are the means over images, and a difference between two models is the mean of the
per-image paired differences with its standard error (std / sqrt(images)), the images being
independent.
"""

import math
from typing import Callable, Dict, Optional

import numpy as np
import torch

# The held-out images of the final evaluation: disjoint from the per-epoch monitor
# (cifar10_test[:500]), from the receivers' tests and benches' first images, and from training.
EVAL_IMAGES = "cifar10_test[5000:10000]"
MONITOR_IMAGES = "cifar10_test[:500]"
TRAIN_IMAGES = {"user": "cifar10_train_batch1+cifar10_train_batch2", "interferer": "cifar10_train_batch3"}


def encode_symbols(backend, encoder: str, spec: str, snr_db: float, max_images: int = 0):
    """(complex symbols (N, k) of the images `spec` through `encoder` told `snr_db`,
    power-normalised per image; N)."""
    from ..core.data import load_images
    from ..core.mapping import to_symbols
    images = load_images(spec).images
    if max_images:
        images = images[:max_images]
    out = [backend.encode(encoder, images[i:i + 500], snr_db) for i in range(0, len(images), 500)]
    z, _ = to_symbols(torch.from_numpy(np.concatenate(out)))
    return z, len(images)


def unit_latents(z: torch.Tensor, role: str, channel: str, generator: torch.Generator) -> torch.Tensor:
    """Real unit-variance form of the latents a prior learns: the user's z as sent (the
    receiver knows h), the interferer's g u with its unknown gain folded in (g = 1 for AWGN,
    CN(0, 1) per symbol for Rayleigh, drawn from `generator`)."""
    from ..core.mapping import LATENT_SCALE, complex_to_real
    if role == "interferer" and channel == "rayleigh":
        z = z * torch.randn(z.shape, dtype=z.dtype, generator=generator)
    return complex_to_real(z) / LATENT_SCALE  # the scale the receivers undo


def eval_latents(backend, encoder: str, spec: str, snr_db: float, role: str, channel: str, seed: int):
    """The held-out latents of the final evaluation: `spec` through `encoder`, in unit form, the
    interferer's Rayleigh gain drawn from seed + 1000 (apart from the draws of t and eps)."""
    z, _ = encode_symbols(backend, encoder, spec, snr_db)
    return unit_latents(z, role, channel, torch.Generator().manual_seed(int(seed) + 1000))


def gaussian_eps_fn(fit, schedule) -> Callable:
    """eps(x_t, t) of a fitted Gaussian (physical domain) on unit-variance diffusion latents."""
    from ..core.mapping import LATENT_SCALE
    from .gaussian import gaussian_eps
    values, vectors = fit.eigh()
    abar = schedule.alphas_cumprod.double()

    def eps(x_t, t):
        return gaussian_eps(x_t, abar[torch.as_tensor(t).long()], LATENT_SCALE, fit.mean, values, vectors)
    return eps


@torch.no_grad()
def held_out_eps_losses(models: Dict[str, Callable], x0: torch.Tensor, schedule, draws: int = 4,
                        seed: int = 0, chunk: int = 250, t_max: int = None) -> Dict[str, np.ndarray]:
    """{name: per-image eps-loss (N,) float64} of each eps(x_t, t) in `models` on the latents
    x0 (N, D), every model on the same draws: `draws` passes, each drawing per latent a step t
    and noise eps from one generator seeded `seed` (so the draws depend on seed and x0's
    shape only); t ~ U{0..t_max-1} (default: every step of the schedule)."""
    g = torch.Generator().manual_seed(int(seed))
    n = x0.shape[0]
    sums = {name: torch.zeros(n, dtype=torch.float64) for name in models}
    for _ in range(int(draws)):
        t = torch.randint(0, t_max or schedule.num_steps, (n,), generator=g)
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        x_t = schedule.q_sample(x0, t, eps)
        for s in range(0, n, chunk):
            sl = slice(s, s + chunk)
            for name, fn in models.items():
                err = (fn(x_t[sl], t[sl]).double() - eps[sl].double()).square().mean(1)
                sums[name][sl] += err
    return {name: (v / draws).numpy() for name, v in sums.items()}


def summarize(losses: Dict[str, np.ndarray], reference: str) -> dict:
    """Mean loss of each model with its standard error, and each model's paired difference from
    `reference` (model - reference; negative = better than the reference) with its SE."""
    n = len(losses[reference])
    out = {"images": int(n), "reference": reference, "models": {}}
    for name, v in losses.items():
        d = v - losses[reference]
        out["models"][name] = {"loss": float(v.mean()), "loss_se": float(v.std(ddof=1) / math.sqrt(n)),
                               "minus_reference": float(d.mean()),
                               "minus_reference_se": float(d.std(ddof=1) / math.sqrt(n))}
    return out


def evaluate_prior(prior_eps: Callable, gaussian_eps: Callable, x0: torch.Tensor, schedule, *,
                   draws: int, seed: int, others: Optional[Dict[str, Callable]] = None, t_max: int = None) -> dict:
    """The record a prior's provenance keeps: its held-out loss, its Gaussian's on the same
    draws, their difference (prior - Gaussian) with its SE, and any `others` on the same draws."""
    models = {"prior": prior_eps, "gaussian": gaussian_eps}
    models.update(others or {})
    s = summarize(held_out_eps_losses(models, x0, schedule, draws, seed, t_max=t_max), "gaussian")
    p, gs = s["models"]["prior"], s["models"]["gaussian"]
    return {"loss_prior": p["loss"], "loss_prior_se": p["loss_se"],
            "loss_gaussian": gs["loss"], "loss_gaussian_se": gs["loss_se"],
            "difference": p["minus_reference"], "difference_se": p["minus_reference_se"],
            "others": {k: v for k, v in s["models"].items() if k not in ("prior", "gaussian")},
            "images": s["images"], "draws": int(draws), "seed": int(seed),
            "method": f"per image: squared eps error averaged over dimensions and draws (t ~ U{{0..{(t_max or schedule.num_steps) - 1}}}, "
                      "eps ~ N(0, I), the same for every model); mean over images; SE = std/sqrt(images) "
                      "of the per-image values (differences paired per image)"}
