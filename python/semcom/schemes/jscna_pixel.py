"""jscna-ad-pixel: JSCNA-AD in pixel space, the paper's own form (spec ../shared/papers/jscna_ad.md
§5.1 "JSCNA-pixel"): the image itself goes over the air at CBR 1/2 (3072 pixels in [-1, 1] ->
k = 1536 complex symbols), so it is compared only with a DeepJSCC trained at k = 1536.

    transmit: pixels s (N, 3072) --to_symbols--> nu (N, 1536) of unit power, each image's rms
              (sqrt(mean |s_c|^2), 16 bits) as side information, as jscna-ad's latent rms;
              precoding as jscna-ad (truncated inversion with genie or estimated CSIT, the
              erasures signalled; block; rx)
    receive:  jscna-ad's matched start state, in the pixel prior's own units (x = rms s_unit /
              sqrt 2: the noise per pixel is the unit-domain noise times rms^2 / 2, so each image
              has its own start step t*); erased pixels are drawn from the prior's Gaussian
              marginal at t*; one full pass at t*; the classifier's attention on the Tweedie
              image (no decoder: it is the image) -> S_j on the classifier's 64 4x4 patches ->
              the masked DDIM reverse process (diffusion/jscna.py) -> pixels

The prior (diffusion/pixel_prior.py, apps/train_pixel_prior.py) is a U-Net on a fitted
stationary Gaussian. A convolutional network cannot take a token subset as jscna-ad's DiT does:
crop=on runs it on the smallest square crop (16, 24 or 32 pixels) holding the active patches and
a one-patch margin (a real saving, an approximation: the crop's borders are zero-padded);
crop=off runs it on the whole image and reads the active patches (the exact masked process, no
saving). prior=gaussian is the control: the fitted Gaussian's posterior mean of the start state
(one Tweedie step with its exact eps; the Wiener filter of what arrived where that state is an
exact forward state: tx/block or AWGN, no interferer), no network. The U-Net serves t < t_max
(400): a noisier image starts at t_max - 1, shrunk (jscna-ad's start_state t_limit).
The noise-adding ablations (topup, ddim) are measured in the latent form only.
"""


import numpy as np
import torch

from ..core.models import classifier_name, pixel_prior_name
from . import register
from .base import Option, Result
from .dnsc import side_info_rms
from .jscna import PAPER_FIXED_START, JSCNAAD

NO_RMS = "jscna-ad-pixel needs each image's pixel rms as side information ('rms': a finite number > 0, from its transmitter)"
KIND = "pixel-prior"


class JSCNAADPixel(JSCNAAD):
    name = "jscna-ad-pixel"
    family = "pixel"
    description = ("JSCNA-AD in pixel space (CBR 1/2): the image itself with truncated channel inversion at the "
                   "transmitter, matched start step, attention-driven per-patch reverse steps on a pixel prior")
    train_apps = "apps/train_pixel_prior.py or apps/train_classifier.py"
    no_rms = NO_RMS
    options = tuple(o for o in JSCNAAD.options if o.name not in ("noise_add", "t_target", "s_ddim", "tx_steps")) + (
        Option("noise_add", "none", "none only: the noise-adding ablations are jscna-ad's (latent)", choices=("none",)),
        Option("prior", "unet", "unet: the trained pixel prior; gaussian: the fitted stationary Gaussian's "
               "posterior mean at t* (the Wiener filter; no network, the control)", choices=("unet", "gaussian")),
        Option("crop", "on", "on: the U-Net runs on a square crop around the active patches (a real saving, "
               "approximate at the crop's borders); off: on the whole image (exact)", choices=("on", "off")),
    )
    comparison_series = ()   # CBR 1/2: not on the k = 512 table (bench/bench_jscna.py's pixel rows)

    def default_model(self, channel_type, k, image_shape=None):
        return pixel_prior_name("cifar10")

    def checkpoints(self, channel_type, k, model="", image_shape=None):
        prior = model or self.default_model(channel_type, k, image_shape)
        return [prior] if not k else [prior, classifier_name("cifar10")]

    def symbols_per_image(self, models, tx, image_shape):
        h, w, c = image_shape
        return h * w * c // 2

    def max_tx_nfe(self, given=None, channel_type=None):
        return 0

    def check_model(self, channel_type, k, model="", image_shape=None):
        if image_shape is not None and tuple(image_shape) != (32, 32, 3):
            raise ValueError(f"jscna-ad-pixel's prior is of 32x32x3 images, got {tuple(image_shape)}")
        if k and k != 1536:
            raise ValueError(f"jscna-ad-pixel sends 3072 pixels as k = 1536 symbols, not k = {k}")

    # ---------------------------------------------------------------- transmitter
    def _source(self, models, prior, images, tx):
        from ..core.mapping import to_symbols
        if tuple(images.shape[1:]) != (32, 32, 3):
            raise ValueError(f"jscna-ad-pixel sends 32x32x3 images, got {tuple(images.shape[1:])}")
        if models.info(prior).get("role") != "pixels":
            raise ValueError(f"jscna-ad-pixel sends the pixels with a pixel prior (e.g. {self.default_model(None, None)}) "
                             f"at the receiver; {prior} is not one")
        s = torch.from_numpy(models.encode(prior, images, float(tx.snr_db)))   # [-1, 1], channel-major
        z, _ = to_symbols(s, 1.0)
        rms = s.square().mean(-1).mul(2).sqrt()   # sqrt(mean |s_c|^2) of the complex pairs
        return z, [{"rms": float(np.float16(r))} for r in rms.tolist()]

    # ---------------------------------------------------------------- receiver
    def receive(self, models, obs) -> Result:
        from ..diffusion import dnsc, jscna
        from ..diffusion.dit import schedule_from_data
        from .deepjscc import network_eps
        opt = self.receiver_options(obs)
        name = obs.model or self.default_model(obs.channel_type, obs.k)
        prior = models.model(name, KIND)
        schedule = schedule_from_data(models.sidecar(name, KIND)["schedule"])
        gen = torch.Generator().manual_seed(obs.seed)
        # the Gaussian's closed form serves any step; the network only those it was trained on
        x, starts, extra = self.start_state(obs, opt, schedule, gen,
                                            None if opt["prior"] == "gaussian" else prior.cfg.t_max)
        device = prior.base_mean.device
        x = self._fill_erased(prior, obs, opt, x, starts, schedule, gen).to(device)
        t0 = torch.tensor(starts)   # (on the CPU, as the schedule; the prior moves what it needs)
        if opt["prior"] == "gaussian":   # E[x0 | x_t*] of the fitted Gaussian: its Wiener filter
            out = schedule.tweedie_x0(x, t0, prior.base_eps(x, t0))
            extra.update(full_image_nfe=0.0, patch_nfe=0.0)
            return self._result(out, 0.0, extra)
        eps = network_eps(prior)
        if opt["start"] == "fixed150":
            out = dnsc.ddpm_ancestral(eps, x, schedule, starts, gen)
            extra.update(full_image_nfe=PAPER_FIXED_START + 1.0, patch_nfe=PAPER_FIXED_START + 1.0)
            return self._result(out, PAPER_FIXED_START + 1.0, extra)
        # every image from its own start step (its rms sets its noise), all in one batch
        grids = [schedule.timesteps(opt["s_max"], t) for t in starts]
        first = prior(x, t0)                           # the whole image at t*: the importance's estimate
        lengths = torch.tensor([len(g) for g in grids])
        steps = torch.empty(obs.n, prior.cfg.tokens, dtype=torch.long)
        for length in lengths.unique().tolist():   # S_j in [S_min, the image's grid length], as jscna-ad's
            idx = (lengths == length).nonzero()[:, 0]
            steps[idx] = self._steps(models, name, opt, schedule, x[idx], first[idx], t0[idx], None, length, gen,
                                     prior.cfg.tokens).cpu()
        counter = {"pixels": torch.zeros(obs.n)}
        x0, count = jscna.adaptive_ddim(self._pixel_eps(prior, opt["crop"], counter), prior.to_tokens(x),
                                        schedule, grids, steps, first_eps=prior.to_tokens(first))
        c, h, w = prior.cfg.image_shape
        nfe = counter["pixels"] / (h * w) + 1   # whole-image passes, the first included
        extra.update(full_image_nfe=float(lengths.float().mean()),
                     patch_nfe=float(steps.float().mean()),
                     token_evaluations=float((count.float().cpu() + prior.cfg.tokens).mean()))
        return self._result(prior.from_tokens(x0), float(nfe.mean()), extra)

    @staticmethod
    def _result(x, nfe, extra) -> Result:
        from ..diffusion.pixel_prior import from_pixels
        return Result(images=from_pixels(x), latents=None, nfe=nfe, extra=extra)

    # -- parts
    def _prior_domain(self, lin, obs):
        """The observation of the pixels themselves, s = rms [Re z; Im z] (z the unit-power
        symbols, to_symbols): lin's coefficient of [Re z; Im z] (its diffusion variable is that
        divided by LATENT_SCALE, with the coefficient scale_x a) divided by each image's rms, so
        the noise per pixel is the symbols' times rms^2."""
        from dataclasses import replace
        from ..core.mapping import LATENT_SCALE
        rms = side_info_rms(obs, self.no_rms).to(lin.a.device).to(lin.a.real.dtype)
        return replace(lin, a=lin.a * (lin.scale_x / LATENT_SCALE) / rms[:, None], scale_x=1.0)

    def _data_power(self, obs):
        """Each image's mean square per pixel, rms^2 / 2 (rms: of the complex pairs)."""
        return side_info_rms(obs, self.no_rms).square() / 2

    def _fill_erased(self, prior, obs, opt, x, starts, schedule, gen):
        """The erased pixels (precoding=tx/block on Rayleigh), which matched_start drew from a
        unit Gaussian, redrawn from the prior's Gaussian marginal at t*: sqrt(abar) mu_j +
        sqrt(abar var_j + 1 - abar) n."""
        if opt["precoding"] not in ("tx", "block") or obs.channel_type == "awgn":
            return x
        erased = ~self._kept(obs, self._g_th(opt, obs.snr_db))
        erased = torch.cat([erased, erased], 1).to(x.device)
        var = prior.base_variance().to(x.device, x.dtype)
        mean = prior.base_mean.to(x.device, x.dtype)
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        abar = schedule.alphas_cumprod.to(x.dtype)[torch.as_tensor(starts)].to(x.device)[:, None]
        draw = abar.sqrt() * mean + (abar * var + 1 - abar).sqrt() * noise
        return torch.where(erased, draw, x)

    @staticmethod
    def _estimate_images(models, prior, x0, rms) -> np.ndarray:
        from ..diffusion.pixel_prior import from_pixels
        return from_pixels(x0)   # the estimate is the image: no decoder

    @staticmethod
    def _pixel_eps(prior, crop, counter):
        """eps of the active patches: the Gaussian base everywhere (closed form) plus the U-Net's
        residual, on a crop around them (crop=on) or on the whole image (crop=off: the only
        crop side allowed is the image's); `counter["pixels"]` adds up the pixels the network
        ran on per image."""
        from ..diffusion.pixel_prior import crop_eps
        c, h, w = prior.cfg.image_shape
        sides = {} if crop == "on" else {"sides": (max(h, w),)}

        def eps_tokens(x_tokens, t, active):
            out, pixels = crop_eps(prior, prior.from_tokens(x_tokens), t, active, **sides)
            counter["pixels"] += pixels.cpu()
            return out
        return eps_tokens


register(JSCNAADPixel())
