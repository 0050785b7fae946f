"""icdm and its ablations: ICDM's receiver on the DeepJSCC link. Two diffusion priors (the
user's latents, the interference) sampled jointly by UniPC with likelihood guidance on the
Lemma-1 observation (diffusion/icdm.py): "icdm" with ICDM's Gaussian surrogate, and the
ablations "icdm-pigdm", "icdm-dps" (autograd through both priors) and "icdm-projection"
(least-norm projection onto the observation instead of a likelihood)."""

import torch

from ..core.mapping import LATENT_SCALE
from ..core.models import gaussian_name
from . import register
from .base import Option
from .deepjscc import DeepJSCCScheme, diffusion_setup, sampler_options


class ICDM(DeepJSCCScheme):
    priors = ("user", "interferer")

    def __init__(self, name, guidance, description, zeta, per_channel=None):
        self.name, self.guidance, self.description = name, guidance, description
        self.autograd = guidance in ("pigdm", "dps")  # backpropagates through both priors (about twice the cost)
        self.options = sampler_options(steps=20, zeta=(zeta, per_channel or {}), start=True)
        if guidance == "gaussian":  # ICDM's own surrogate, or one that follows the priors' covariance
            self.options += (Option("surrogate", "isotropic", "isotropic: ICDM's (1 - abar) I posterior "
                                    "covariance; prior-covariance: each chain's from its fitted Gaussian "
                                    "(exact for Gaussian priors; one 2k x 2k solve per image and step)",
                                    choices=("isotropic", "prior-covariance")),)

    def clean(self, obs, models):
        from ..diffusion.icdm import icdm_sample
        from ..diffusion.matched_start import matched_start, matched_step
        d = diffusion_setup(self, obs, models)
        opt, lin, xhat, gen, schedule = d.opt, d.lin, d.xhat, d.generator, d.schedule
        guidance = self.guidance
        if opt.get("surrogate") == "prior-covariance":
            from ..diffusion.gaussian import KIND
            fits = [models.model(gaussian_name(role, obs.channel_type, obs.k), KIND) for role in self.priors]
            lin.cov_x, lin.cov_i = (f.cov.double() / LATENT_SCALE ** 2 for f in fits)  # diffusion units
            guidance = "covariance"
        if opt["start"] == "noise":
            start = schedule.num_steps - 1
            x_T = torch.randn(xhat.shape, generator=gen).to(xhat.device)
            i_T = torch.randn(xhat.shape, generator=gen).to(xhat.device)
        else:
            start = matched_step(lin, schedule, "x")
            x_T = matched_start(lin, xhat, schedule, start, "x", gen)
            i_T = matched_start(lin, xhat, schedule, start, "i", gen)
        x0, _ = icdm_sample(d.eps["user"], d.eps["interferer"], lin, xhat, schedule, x_T, i_T, opt["steps"],
                            opt["order"], opt["variant"], opt["zeta_x"], opt["zeta_i"], opt["guided_corrector"],
                            guidance, start)
        return LATENT_SCALE * x0, d.networks * len(schedule.timesteps(opt["steps"], start))


# Guidance weights tuned on 96 CIFAR-10 training images at SNR 20 dB, SINR 0 dB, per channel
# type for icdm (the optima differ), on Rayleigh for the ablations (bench/bench_icdm.py
# --tune; the grids and their results: docs/results_icdm.md).
register(ICDM("icdm", "gaussian", "two diffusion priors (signal, interference) sampled jointly by UniPC "
              "with Gaussian-surrogate likelihood guidance", (1.0, 2.0),
              {"awgn": (2.0, 0.5), "rayleigh": (1.0, 2.0)}))
register(ICDM("icdm-pigdm", "pigdm", "ICDM ablation: PiGDM guidance (autograd through the priors)", (1.0, 1.0)))
register(ICDM("icdm-dps", "dps", "ICDM ablation: DPS guidance (autograd, residual-normalised)", (3.0, 3.0)))
register(ICDM("icdm-projection", "projection",
              "ICDM ablation: least-norm projection onto the observation instead of a likelihood", (2.0, 2.0)))
