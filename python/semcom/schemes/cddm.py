"""cddm: CDDM's receiver (the baseline in ICDM) on the DeepJSCC link: the user's diffusion
prior only, started at the step whose noise level matches the effective noise (interference
treated as noise), run unguided by UniPC to x_0 (diffusion/cddm.py)."""

from ..core.mapping import LATENT_SCALE
from . import register
from .deepjscc import DeepJSCCScheme, diffusion_setup, sampler_options


class CDDM(DeepJSCCScheme):
    name = "cddm"
    description = ("signal diffusion prior from the step matching the effective noise "
                   "(interference as noise), unguided UniPC to x_0")
    priors = ("user",)
    # steps tuned on CIFAR-10 training images (bench/bench_icdm.py --tune; docs/results_icdm.md)
    options = sampler_options(steps=5)

    def clean(self, obs, models):
        from ..diffusion.cddm import cddm_sample
        d = diffusion_setup(self, obs, models)
        x0, starts = cddm_sample(d.eps["user"], d.lin, d.xhat, d.schedule, d.opt["steps"], d.opt["order"],
                                 d.opt["variant"], d.generator)
        return LATENT_SCALE * x0, d.nfe(starts)


register(CDDM())
