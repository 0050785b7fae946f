"""mmse: the DeepJSCC link with the MMSE equalizer only (interference-unaware, as in ICDM's
baseline): the decoder gets the equalized latent."""

from . import register
from .deepjscc import DeepJSCCScheme


class MMSE(DeepJSCCScheme):
    name = "mmse"
    description = "MMSE equalizer only; the decoder gets the equalized latent"

    def clean(self, obs, models):
        return obs.xhat, 0


register(MMSE())
