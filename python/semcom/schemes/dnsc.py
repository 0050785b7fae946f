"""dnsc: Latent-Diff DNSC (Xu et al.; spec ../shared/papers/dnsc.md). A KL-VAE's latent is sent;
the receiver estimates the noise, maps the received latent onto the diffusion state of that
noise level and runs one channel-free latent prior's reverse chain from there, then decodes.

    transmit: images --VAE encoder--> s (N, 2k) --to_symbols(P)--> z (N, k);  side information:
              each image's latent rms (float16, 16 bits: the per-image scale eq. 2 removes)
    receive:  zhat --/ own coefficient--> r = u + n (u: unit mean square per real dimension)
              --noise variance (estimated or genie)--> t*, x_t* (diffusion/dnsc.py)
              --reverse chain (ddpm | ddim | unipc | tweedie)--> u^ --x rms--> s^ --VAE decoder--> images

The maths is in diffusion/dnsc.py (estimator, start step, samplers) and
diffusion/matched_start.py (the noise top-up, the per-symbol rule on i.i.d. fading).
"""

import math

import numpy as np
import torch

from ..core.mapping import LATENT_SCALE, complex_to_real, to_symbols
from ..core.models import vae_gaussian_name, vae_name, vae_prior_name
from . import register
from .base import Option, Result, Scheme, Transmission, TxContext

SIDE_INFO_BITS = 16            # the latent rms as a float16
# The rms of norm=average: the latent has unit variance per real dimension on the training set
# (and a mean of 0.03 of its std), so mean|s_c|^2 = 2 there.
AVERAGE_RMS = math.sqrt(2.0)
NO_RMS = ("dnsc needs each image's latent rms as side information ('rms': a finite number > 0, from its "
          "transmitter), or the option norm=average")


class DNSC(Scheme):
    name = "dnsc"
    family = "vae"
    description = ("Latent-Diff DNSC: KL-VAE latent, SNR estimate, latent diffusion de-noiser from the "
                   "matched step, VAE decoder")
    options = (
        Option("sampler", "ddpm", "ddpm: ancestral from t* (the paper's, NFE = t*+1); ddim/unipc: `steps` "
               "steps from t*; tweedie: the prior's posterior mean at t* (1 NFE)",
               choices=("ddpm", "ddim", "unipc", "tweedie")),
        Option("steps", 10, "ddim/unipc steps", minimum=1),
        Option("start", "matched", "matched: t*(SNR), the first step with at least the channel's noise; "
               "fixed: k_fixed whatever the SNR (the paper's ablation)", choices=("matched", "fixed")),
        Option("k_fixed", 30, "the start step of start=fixed (the paper's best: 30)", minimum=0),
        Option("snr", "estimated", "estimated: the PHY's pilot estimate when the observation has one, "
               "else the blind moment estimator; genie: the true noise variance",
               choices=("estimated", "genie")),
        Option("prior", "dit", "dit: the shipped latent prior; gaussian: unit Gaussian (shrinkage); "
               "gaussian-full: the Gaussian fitted to the same latents (no network)",
               choices=("dit", "gaussian", "gaussian-full")),
        Option("denoise", "on", "off: decode the received latent r (zero-forced) directly, the paper's "
               "'without de-noiser'", choices=("on", "off")),
        Option("norm", "side-info", "side-info: each image's latent rms travels with it (16 bits); "
               "average: the training set's rms for every image", choices=("side-info", "average")),
    )

    def default_model(self, channel_type, k, image_shape=None):
        return vae_name("cifar10", k or 512)

    def checkpoints(self, channel_type, k, model="", image_shape=None):
        vae = model or self.default_model(channel_type, k, image_shape)
        return [vae] if not k else [vae, vae_prior_name(vae), vae_gaussian_name(vae)]

    def symbols_per_image(self, models, tx, image_shape):
        return models.info(tx.model or self.default_model(tx.channel_type, None, image_shape))["k"]

    def max_nfe(self, given=None, channel_type=None):
        opt = self.option_values(given, channel_type)
        if opt["denoise"] == "off" or opt["prior"] != "dit":
            return 0
        ddpm = opt["k_fixed"] + 1 if opt["start"] == "fixed" else 1000   # t* + 1 <= T
        return {"tweedie": 1, "ddim": opt["steps"], "unipc": opt["steps"]}.get(opt["sampler"], ddpm)

    def transmit(self, models, images, tx: TxContext) -> Transmission:
        vae = tx.model or self.default_model(tx.channel_type, None, images.shape[1:])
        if models.info(vae).get("role") != "autoencoder":
            raise ValueError(f"dnsc sends a KL-VAE's latent (e.g. {self.default_model(tx.channel_type, None)}); "
                             f"{vae} is a JSCC model")
        z, side = send_latent(models, vae, images, tx.snr_db, tx.power)
        return Transmission(z, side, SIDE_INFO_BITS)

    def receive(self, models, obs) -> Result:
        from ..diffusion import dnsc
        from ..diffusion.guidance import LinearObservation
        from ..diffusion.matched_start import by_step, chain_noise, matched_start
        from ..diffusion.schedule import VPSchedule
        from .deepjscc import lemma1_observation
        opt = self.option_values(obs.options, obs.channel_type)
        vae = obs.model or self.default_model(obs.channel_type, obs.k)
        rms = self._rms(obs, opt)
        p = obs.powers
        # The noise the de-noiser must remove: the genie's (noise and interference), the PHY's
        # estimate, or the blind moment estimator's per image (interference counted as noise).
        estimator = "genie"
        lin = lemma1_observation(obs)
        if opt["snr"] == "estimated" and obs.snr_source != "estimated":
            estimator = "blind"
            w = obs.w
            safe = torch.where(w.abs() > 0, w, torch.ones_like(w))
            y = torch.where(w.abs() > 0, obs.zhat / safe, torch.zeros_like(obs.zhat))
            sigma2 = dnsc.blind_noise_var(y, obs.h, p.signal_power)
            c = w.abs() * (sigma2[:, None] / 2.0).sqrt()
            lin = LinearObservation(lin.a, torch.zeros_like(lin.b), c.to(lin.c.dtype), LATENT_SCALE, LATENT_SCALE)
        elif opt["snr"] == "estimated":
            estimator = "phy"   # obs.powers are the PHY's pilot estimates
        own, v = chain_noise(lin, "x")
        v_image = v.median(-1).values
        xhat = obs.xhat
        zero_forced = complex_to_real(obs.zhat / torch.where(own.abs() > 0, own, torch.ones_like(own)))
        extra = {"snr_estimator": estimator, "snr_est_db": _db(1.0 / v_image.clamp_min(1e-12)),
                 "side_info_bits": SIDE_INFO_BITS if opt["norm"] == "side-info" else 0}
        if opt["denoise"] == "off":
            return decode_latent(models, vae, LATENT_SCALE * zero_forced, rms, obs, 0, extra)
        schedule = (models.prior_schedule(vae_prior_name(vae)) if opt["prior"] == "dit"
                    else VPSchedule.linear())
        eps = self._eps(models, vae, opt["prior"], schedule)
        gen = torch.Generator().manual_seed(obs.seed)
        if opt["start"] == "fixed":
            starts = [min(opt["k_fixed"], schedule.num_steps - 1)] * obs.n
        else:
            starts = [dnsc.start_step(schedule, float(m)) for m in v_image]
        out, nfe = torch.empty_like(xhat), 0.0
        for t, idx in by_step(starts):   # each image's state at its own start step
            out[idx] = matched_start(lin.take(idx), xhat[idx], schedule, t, "x", gen)
        if opt["sampler"] == "ddpm":     # one batch, images joining at their steps
            out = dnsc.ddpm_ancestral(eps, out, schedule, starts, gen)
            nfe = float(sum(t + 1 for t in starts))
        else:
            for t, idx in by_step(starts):
                out[idx], n = dnsc.reverse_chain(eps, out[idx], schedule, t, opt["sampler"], opt["steps"],
                                                 generator=gen)
                nfe += n * len(idx)
        extra["start_step"] = float(np.mean(starts))
        networks = opt["prior"] == "dit"
        return decode_latent(models, vae, LATENT_SCALE * out, rms, obs, nfe / obs.n if networks else 0, extra)

    def check_side_info(self, side_info, options=None):
        if self.option_values(options)["norm"] == "side-info" and not _finite_positive((side_info or {}).get("rms")):
            raise ValueError(NO_RMS)

    # -- parts
    @staticmethod
    def _rms(obs, opt) -> torch.Tensor:
        if opt["norm"] == "average":
            return torch.full((obs.n,), AVERAGE_RMS)
        return side_info_rms(obs, NO_RMS)

    @staticmethod
    def _eps(models, vae, prior, schedule):
        from .deepjscc import fitted_eps, network_eps, unit_gaussian_eps
        if prior == "gaussian":
            return unit_gaussian_eps(schedule)
        if prior == "gaussian-full":
            from ..diffusion.gaussian import KIND
            return fitted_eps(models.model(vae_gaussian_name(vae), KIND), schedule)
        return network_eps(models.prior(vae_prior_name(vae)))



# The KL-VAE link's two ends, shared by the schemes that send its latent (dnsc, jscna-ad).
def send_latent(models, vae, images, snr_db, power):
    """(symbols (N, k) of mean power `power`, side information: each image's latent rms as a
    float16) of the VAE's latents of `images`."""
    s = torch.from_numpy(models.encode(vae, images, float(snr_db)))
    z, _ = to_symbols(s, power)
    rms = s.square().mean(-1).mul(2).sqrt()   # sqrt(mean |s_c|^2) of the complex pairs
    return z, [{"rms": float(np.float16(r))} for r in rms.tolist()]


def side_info_rms(obs, missing: str) -> torch.Tensor:
    """(N,) the images' latent rms from their side information; ValueError(`missing`) otherwise."""
    if len(obs.side_info) != obs.n or not all(_finite_positive(d.get("rms")) for d in obs.side_info):
        raise ValueError(missing)
    return torch.tensor([float(d["rms"]) for d in obs.side_info], dtype=torch.float32)


def decode_latent(models, vae, unit, rms, obs, nfe, extra) -> Result:
    """unit: the de-noised latents at unit power per symbol (real form, the sent symbols'
    domain); the decoder gets them at each image's own scale."""
    unit = unit.float().cpu()
    latents = (unit * rms[:, None]).numpy()
    images = models.decode(vae, latents, float(obs.snr_db))
    return Result(images=images, latents=unit.numpy(), nfe=nfe, extra=extra)


def _finite_positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _db(x: torch.Tensor) -> float:
    return float(10 * torch.log10(x).mean())


register(DNSC())
