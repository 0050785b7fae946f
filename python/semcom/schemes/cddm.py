"""cddm: CDDM's receiver (the baseline in ICDM) on the DeepJSCC link: the user's diffusion
prior only, started at the step whose noise level matches the effective noise (interference
treated as noise), run unguided by UniPC to x_0 (diffusion/cddm.py)."""

import torch

from ..core.mapping import LATENT_SCALE
from . import register
from .deepjscc import DeepJSCCScheme, chain_priors, lemma1_observation, prior_eps, prior_schedule, sampler_options


class CDDM(DeepJSCCScheme):
    name = "cddm"
    description = ("signal diffusion prior from the step matching the effective noise "
                   "(interference as noise), unguided UniPC to x_0")
    priors = ("user",)
    # steps tuned on CIFAR-10 training images (bench/bench_icdm.py --tune; docs/results_icdm.md)
    options = sampler_options(steps=5)

    def clean(self, obs, models):
        from ..diffusion.cddm import cddm_sample
        from ..diffusion.matched_start import matched_step
        opt = self.option_values(obs.options, obs.channel_type)
        kinds = chain_priors(opt, self.priors)
        schedule, lin, xhat = prior_schedule(models, obs, kinds), lemma1_observation(obs), obs.xhat
        gen = torch.Generator().manual_seed(obs.seed)
        eps_x = prior_eps(models, "user", obs, kinds["user"], schedule)
        x0 = cddm_sample(eps_x, lin, xhat, schedule, opt["steps"], opt["order"], opt["variant"], gen)
        # network evaluations: those of a DiT chain (a Gaussian's eps is closed form)
        steps_run = min(opt["steps"], matched_step(lin, schedule, "x") + 1)
        return LATENT_SCALE * x0, steps_run if kinds["user"] == "dit" else 0


register(CDDM())
