"""lmmse-full: the DeepJSCC link with the linear MMSE receiver that knows the latents'
statistics: the exact posterior mean E[x | xhat] under full-covariance Gaussians fitted to
training latents of the user and of the interference with its gain folded in
(apps/fit_gaussian.py; checkpoints gauss_<role>_<channel>_k<k>), on the Lemma-1 observation
xhat = A x + B i + C e of the weights actually applied (diffusion/gaussian.py).

It is the strongest simple control of a learned prior: a diffusion receiver's gain counts
beside it. No network runs (NFE 0); each image costs one 2k x 2k solve.
"""

from ..core.models import ROLES
from . import register
from .deepjscc import DeepJSCCScheme, fit_names, fitted_prior, lemma1_observation


class LMMSEFull(DeepJSCCScheme):
    name = "lmmse-full"
    description = ("linear MMSE with full-covariance Gaussians fitted to training latents of the user and "
                   "of the interference (their exact posterior mean)")

    def checkpoints(self, channel_type, k, model="", image_shape=None):
        return super().checkpoints(channel_type, k, model, image_shape) + \
            (fit_names(ROLES, channel_type, k) if k else [])

    def clean(self, obs, models):
        from ..diffusion.gaussian import posterior_mean
        lin = lemma1_observation(obs)  # its a, b, c are the physical ones (the scales stand apart)
        user, interference = (fitted_prior(models, role, obs) for role in ROLES)
        return posterior_mean(obs.xhat, lin.a, lin.b, lin.c, user, interference).float(), 0


register(LMMSEFull())
