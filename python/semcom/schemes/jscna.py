"""jscna-ad: JSCNA-AD in the shared KL-VAE's latent (Liang and Li; spec ../shared/papers/jscna_ad.md,
§5.1 "JSCNA-latent"). The transmitter pre-compensates the channel so that its noise arrives white
and uniform, i.e. exactly one diffusion step; the receiver starts the latent prior there and
spends more reverse steps on the patches the classifier's attention marks as important.

    transmit: images --VAE encoder--> s (N, 2k) --to_symbols--> nu (N, k), unit power;
              precoding=tx: x = c nu / h where |h|^2 >= g_th, else 0 (truncated inversion,
              c^2 = P / E1(g_th), core/precoding.py; needs the fading: genie CSIT in simulation,
              or a stale or noisy estimate h_hat, link_sim's csit_delay / csit_error);
              side information: each image's latent rms (16 bits, as dnsc) and the erasures (a
              k-bit map; free under genie CSIT, where the receiver's own h gives the same map)
    receive:  every kept symbol arrives as c nu + n: one noise level, snr / E1(g_th); the erased
              ones carry nothing (with h_hat != h a kept one arrives as (h / h_hat) c nu + n, which
              the receiver, trusting the inversion, does not know) -> the matched start state x_t*
              (diffusion/matched_start.py: exact forward state, erased entries drawn from the
              prior's marginal) -> one full prior pass at t* -> the VAE-decoded Tweedie image ->
              the classifier's attention (eq. 10) -> steps S_j in [S_min, S_max] per latent cell
              (eq. 11) -> the masked DDIM reverse process on the DiT's active tokens only
              (diffusion/jscna.py) -> x rms -> VAE decoder

noise_add=topup diffuses the latent at the transmitter so that the channel completes exactly
t_target (the spec's reading R1, an ablation); noise_add=ddim inverts it deterministically to
s_ddim with the prior (reading R2; the receiver treats that noise as Gaussian, extra tx_nfe).
precoding=rx is the control: no inversion, the MMSE-equalised symbols with per-symbol noise and
the median-variance start step (CDDM's rule, as dnsc). Patches are the 8x8 latent cells (= the
classifier's 4x4-pixel patches = the DiT's tokens). Result.nfe counts network work in
full-image passes (token evaluations / 64); extra has the full-image NFE (S_max), the patch-NFE
(mean S_j) and the token evaluations.
"""

import math

import numpy as np
import torch

from ..core.mapping import LATENT_SCALE
from ..core.models import classifier_name, vae_gaussian_name, vae_name, vae_prior_name
from . import register
from .base import Option, Result, Scheme, Transmission, TxContext
from .dnsc import SIDE_INFO_BITS, _finite_positive, decode_latent, send_latent, side_info_rms

NO_RMS = "jscna-ad needs each image's latent rms as side information ('rms': a finite number > 0, from its transmitter)"
PAPER_FIXED_START = 150   # the paper's ablation: start at t = 150 and take 150 DDPM steps, whatever the SNR


class JSCNAAD(Scheme):
    name = "jscna-ad"
    family = "vae"
    needs_csit = True   # precoding=tx inverts the channel the symbols will see
    no_rms = NO_RMS
    description = ("JSCNA-AD in the KL-VAE latent: truncated channel inversion at the transmitter, matched "
                   "start step, attention-driven per-patch reverse steps on the latent prior, VAE decoder")
    options = (
        Option("precoding", "tx", "tx: truncated channel inversion at the transmitter (needs CSIT); block: the "
               "same done by the jscna_precoder block after the encoder (GNU Radio; set at both ends); rx: none, "
               "the receiver's MMSE equalisation and median-variance start (the control)",
               choices=("tx", "block", "rx")),
        Option("g_th", 0.0, "truncation threshold on |h|^2 (0: the SNR's Gaussian-optimal value, "
               "core/precoding.threshold_for_snr)", minimum=0.0),
        Option("adaptive", "on", "on: S_j in [s_min, s_max] per patch; off: s_max steps for every patch",
               choices=("on", "off")),
        Option("importance", "attention", "attention: the classifier's attention on the one-step estimate at "
               "the receiver; random: the same step counts on randomly chosen patches (the control)",
               choices=("attention", "random")),
        Option("s_max", 20, "DDIM steps of the most important patch", minimum=1),
        Option("s_min", 0, "DDIM steps of the least important patch (0: ceil(s_max / 4), the spec's)", minimum=0),
        Option("start", "matched", "matched: t* of the channel's noise; fixed150: the paper's ablation, t = 150 "
               "and 150 ancestral steps whatever the SNR", choices=("matched", "fixed150")),
        Option("noise_add", "none", "none: send the latent itself; topup: the transmitter diffuses it to s with "
               "abar_s = abar(t_target) (1 + 1 / snr_eff), so the channel completes exactly t_target (reading R1 "
               "of the spec; it pins the effective SNR and destroys information); ddim: deterministic DDIM "
               "inversion to s_ddim with the prior at the transmitter (reading R2)",
               choices=("none", "topup", "ddim")),
        Option("t_target", 150, "the total step of noise_add=topup", minimum=1),
        Option("s_ddim", 28, "the step noise_add=ddim inverts to (28: the matched step of 20 dB)", minimum=1),
        Option("tx_steps", 4, "network calls of noise_add=ddim's inversion at the transmitter", minimum=1),
    )

    def csit_needed(self, options=None, channel_type=None) -> bool:
        return self.option_values(options, channel_type)["precoding"] == "tx" and channel_type != "awgn"

    def default_model(self, channel_type, k, image_shape=None):
        return vae_name("cifar10", k or 512)

    def checkpoints(self, channel_type, k, model="", image_shape=None):
        vae = model or self.default_model(channel_type, k, image_shape)
        return [vae] if not k else [vae, vae_prior_name(vae), vae_gaussian_name(vae), classifier_name("cifar10")]

    def symbols_per_image(self, models, tx, image_shape):
        return models.info(tx.model or self.default_model(tx.channel_type, None, image_shape))["k"]

    def max_nfe(self, given=None, channel_type=None):
        opt = self.option_values(given, channel_type)
        return PAPER_FIXED_START + 1 if opt["start"] == "fixed150" else opt["s_max"]

    def max_tx_nfe(self, given=None, channel_type=None):
        opt = self.option_values(given, channel_type)
        return min(opt["tx_steps"], opt["s_ddim"]) if opt["noise_add"] == "ddim" else 0   # ddim_inversion's calls

    def check_side_info(self, side_info, options=None):
        if not _finite_positive((side_info or {}).get("rms")):
            raise ValueError(self.no_rms)
        if "erased" in side_info and not _is_mask(side_info["erased"]):
            raise ValueError(f"{self.name} side information 'erased' must be the transmitter's erasure bitmap as a hex "
                             "string (numpy packbits, big-endian bit order)")

    # ---------------------------------------------------------------- transmitter
    def transmit(self, models, images, tx: TxContext) -> Transmission:
        from ..core.precoding import truncated_inversion
        opt = self.option_values(tx.options, tx.channel_type)
        vae = tx.model or self.default_model(tx.channel_type, None, images.shape[1:])
        nu, side = self._source(models, vae, images, tx)
        if opt["precoding"] == "tx":   # ("block": the jscna_precoder block inverts downstream)
            if tx.csi is None and tx.channel_type != "awgn":
                raise ValueError("jscna-ad precoding=tx inverts the channel at the transmitter and needs its CSI "
                                 "(the batch engine hands it the channel's draw; over the air only block fading "
                                 "with feedback gives it): use precoding=rx without CSIT")
        if opt["noise_add"] == "topup":   # x_s = sqrt(abar_s) nu + sqrt(1 - abar_s) eps, unit power kept
            abar_s = self._topup_abar(models.prior_schedule(vae_prior_name(vae)), opt, tx.snr_db, tx.channel_type)
            g = torch.Generator().manual_seed(tx.seed)
            eps = torch.complex(torch.randn(nu.shape, generator=g), torch.randn(nu.shape, generator=g)) / math.sqrt(2)
            nu = abar_s ** 0.5 * nu + (1 - abar_s) ** 0.5 * eps.to(nu.dtype)
        elif opt["noise_add"] == "ddim":   # x_s = DDIM-inversion(x_0 -> s): the prior's own noise, deterministic
            nu = self._ddim_invert(models, vae, nu, opt)
        bits = SIDE_INFO_BITS
        if opt["precoding"] == "tx":
            h = tx.csi if tx.csi is not None else torch.ones_like(nu)
            nu, kept, _ = truncated_inversion(nu, h.to(nu.dtype), self._g_th(opt, tx.snr_db), 1.0, tx.channel_type)
            if tx.channel_type == "rayleigh":   # the erasures, signalled (module docstring)
                for d, erased in zip(side, (~kept).numpy()):
                    d["erased"] = pack_mask(erased)
                bits += 0 if tx.csi_source == "genie" else nu.shape[1]
        return Transmission(math.sqrt(tx.power) * nu, side, bits)

    def _source(self, models, vae, images, tx):
        """(unit-power symbols (N, k), side information with each image's rms): the VAE latent."""
        if models.info(vae).get("role") != "autoencoder":
            raise ValueError(f"jscna-ad sends a KL-VAE's latent (e.g. {self.default_model(tx.channel_type, None)}); "
                             f"{vae} is a JSCC model")
        return send_latent(models, vae, images, tx.snr_db, 1.0)

    def _topup_abar(self, schedule, opt, snr_db, channel_type) -> float:
        """abar_s of noise_add=topup, known at both ends from the SNR and the options: the channel's
        noise 1 / snr_eff then completes exactly t_target, abar_s = abar(t_target) (1 + 1 / snr_eff),
        or 1 (nothing added) where the channel alone brings more noise than t_target."""
        from ..core.precoding import exp1
        if not 1 <= opt["t_target"] < schedule.num_steps:
            raise ValueError(f"scheme 'jscna-ad' option t_target = {opt['t_target']}: the prior has "
                             f"{schedule.num_steps} steps")
        snr = 10 ** (float(snr_db) / 10)
        if opt["precoding"] != "rx" and channel_type == "rayleigh":
            snr /= exp1(self._g_th(opt, snr_db))
        return min(1.0, schedule.alphas_cumprod[opt["t_target"]].item() * (1 + 1 / snr))

    @staticmethod
    def _ddim_invert(models, vae, nu, opt):
        from ..core.mapping import complex_to_real, real_to_complex
        from ..diffusion.jscna import ddim_inversion
        from .deepjscc import network_eps
        prior = models.prior(vae_prior_name(vae))
        schedule = models.prior_schedule(vae_prior_name(vae))
        if not opt["s_ddim"] < schedule.num_steps:
            raise ValueError(f"scheme 'jscna-ad' option s_ddim = {opt['s_ddim']}: the prior has {schedule.num_steps} steps")
        device = next(prior.parameters()).device
        x0 = complex_to_real(nu).to(device) / LATENT_SCALE   # the prior's unit-variance domain
        xs = ddim_inversion(network_eps(prior), x0, schedule, opt["s_ddim"], opt["tx_steps"])
        return real_to_complex(LATENT_SCALE * xs.float().cpu()).to(nu.dtype)

    def _sent_abar(self, schedule, opt, snr_db, channel_type) -> float:
        """abar_s of the state the transmitter sent: 1 (noise_add=none), the top-up's, or
        abar(s_ddim) for the DDIM inversion (whose deterministic noise the receiver treats as
        Gaussian, as the spec's matched start does)."""
        if opt["noise_add"] == "topup":
            return self._topup_abar(schedule, opt, snr_db, channel_type)
        if opt["noise_add"] == "ddim":
            return schedule.alphas_cumprod[opt["s_ddim"]].item()
        return 1.0

    @staticmethod
    def _g_th(opt, snr_db) -> float:
        from ..core.precoding import threshold_for_snr
        return opt["g_th"] or threshold_for_snr(float(snr_db))

    # ---------------------------------------------------------------- receiver
    def receive(self, models, obs) -> Result:
        from ..diffusion import dnsc, jscna
        from ..diffusion.matched_start import by_step
        from .deepjscc import network_eps
        opt = self.receiver_options(obs)
        vae = obs.model or self.default_model(obs.channel_type, obs.k)
        rms = side_info_rms(obs, self.no_rms)
        prior = models.prior(vae_prior_name(vae))
        schedule = models.prior_schedule(vae_prior_name(vae))
        gen = torch.Generator().manual_seed(obs.seed)
        x, starts, extra = self.start_state(obs, opt, schedule, gen)
        eps = network_eps(prior)
        if opt["start"] == "fixed150":
            out = dnsc.ddpm_ancestral(eps, x, schedule, starts, gen)
            extra.update(full_image_nfe=PAPER_FIXED_START + 1.0, patch_nfe=PAPER_FIXED_START + 1.0)
            return decode_latent(models, vae, LATENT_SCALE * out, rms, obs, PAPER_FIXED_START + 1.0, extra)
        out = torch.empty_like(x)
        tokens_per_image, full, patch, evaluations = prior.cfg.tokens, [], [], torch.zeros(obs.n)
        for t, idx in by_step(starts):
            timesteps = schedule.timesteps(opt["s_max"], t)
            first = eps(x[idx], t)                    # every token at t*: the importance's estimate
            steps = self._steps(models, vae, opt, schedule, x[idx], first, t, rms[idx], len(timesteps), gen,
                                tokens_per_image)
            x0, count = jscna.adaptive_ddim(self._eps_tokens(prior), prior.to_tokens(x[idx]), schedule, timesteps,
                                            steps, first_eps=prior.to_tokens(first))
            out[idx] = prior.from_tokens(x0)
            evaluations[idx] = (count.float() + tokens_per_image).cpu()   # + the first, full pass
            full += [len(timesteps)] * len(idx)
            patch += steps.float().mean(1).tolist()
        extra.update(full_image_nfe=float(np.mean(full)), patch_nfe=float(np.mean(patch)),
                     token_evaluations=float(evaluations.mean()))
        return decode_latent(models, vae, LATENT_SCALE * out, rms, obs, float(evaluations.mean()) / tokens_per_image,
                             extra)

    # -- parts
    def receiver_options(self, obs) -> dict:
        """The options with s_min resolved (0: ceil(s_max / 4)); ValueError if s_min > s_max."""
        opt = self.option_values(obs.options, obs.channel_type)
        opt["s_min"] = opt["s_min"] or math.ceil(opt["s_max"] / 4)
        if opt["s_min"] > opt["s_max"]:
            raise ValueError(f"scheme '{self.name}': s_min = {opt['s_min']} exceeds s_max = {opt['s_max']}")
        return opt

    def start_state(self, obs, opt, schedule, gen, t_limit=None):
        """(x_t* (N, 2k) in the prior's domain, each image's start step, extra columns): the
        matched forward state of what arrived (diffusion/matched_start.py). precoding=tx: c on
        every kept symbol, nothing on an erased one (the receiver knows which from h and g_th,
        as the transmitter did), so every kept symbol has the noise 1 / snr_eff; rx: the
        equalised symbols' per-symbol noise and the median-variance step. `t_limit`: a prior
        trained on t < t_limit only; an image noisier than that starts at t_limit - 1, its
        observation shrunk as a deep-faded symbol's (extra: clamped_fraction)."""
        from dataclasses import replace
        from ..core.precoding import inversion_gain
        from ..diffusion import dnsc
        from ..diffusion.matched_start import by_step, chain_noise, matched_start
        from .deepjscc import lemma1_observation
        extra = {}   # (the side information's size is the transmitter's count: Transmission.side_info_bits)
        if opt["precoding"] in ("tx", "block"):
            if obs.channel_type == "awgn":
                h_eff = torch.ones_like(obs.h)
            else:
                g_th = self._g_th(opt, obs.snr_db)
                kept = self._kept(obs, g_th)
                h_eff = torch.where(kept, inversion_gain(g_th), 0.0).to(obs.h.dtype)
                extra.update(g_th=g_th, erased_fraction=float((~kept).float().mean()))
            lin = lemma1_observation(replace(obs, h=h_eff))
        else:
            lin = lemma1_observation(obs)
        if opt["noise_add"] != "none":
            # what was sent is sqrt(abar_s) x + sqrt(1 - abar_s) eps: a smaller own coefficient and
            # the transmitter's noise added to the channel's, per real dimension |own|^2 (1 - abar_s)
            abar_s = self._sent_abar(schedule, opt, obs.snr_db, obs.channel_type)
            extra[f"{opt['noise_add']}_abar_s"] = abar_s
            if opt["noise_add"] == "ddim":
                extra["tx_nfe"] = float(min(opt["tx_steps"], opt["s_ddim"]))   # ddim_inversion's network calls
            own2 = (lin.scale_x * lin.a).abs().square()
            lin = replace(lin, a=lin.a * abar_s ** 0.5, c=(lin.c.square() + own2 * (1 - abar_s)).sqrt().to(lin.c.dtype))
        lin = self._prior_domain(lin, obs)
        _, v = chain_noise(lin, "x")
        if opt["start"] == "fixed150":
            starts = [PAPER_FIXED_START] * obs.n
        elif (opt["noise_add"] == "topup" and extra["topup_abar_s"] < 1 and opt["precoding"] != "rx"
              and obs.powers.interference_power == 0):   # one noise level, t_target by construction
            starts = [opt["t_target"]] * obs.n
        else:   # tx: the kept symbols' noise (all equal; erased ones are inf); rx: CDDM's median rule
            kept_v = torch.where(torch.isinf(v), torch.full_like(v, float("nan")), v)
            starts = [dnsc.start_step(schedule, float(m)) if math.isfinite(m) else schedule.num_steps - 1
                      for m in kept_v.nanmedian(-1).values.tolist()]
        if t_limit is not None:
            extra["clamped_fraction"] = float(np.mean([t >= t_limit for t in starts]))
            starts = [min(t, t_limit - 1) for t in starts]
        xhat = obs.xhat.to(obs.zhat.device)
        x = torch.empty_like(xhat)
        power = self._data_power(obs)
        for t, idx in by_step(starts):
            x[idx] = matched_start(lin.take(idx), xhat[idx], schedule, t, "x", gen,
                                   power[idx.to(power.device)] if torch.is_tensor(power) else power)
        extra["start_step"] = float(np.mean(starts))
        return x, starts, extra

    @staticmethod
    def _prior_domain(lin, obs):
        """The observation of the prior's own variable: the unit-variance latent (lin as is)."""
        return lin

    @staticmethod
    def _data_power(obs):
        """The prior variable's mean square per real dimension: 1 (unit-variance latents)."""
        return 1.0

    @staticmethod
    def _kept(obs, g_th) -> torch.Tensor:
        """(N, k) bool: the symbols the transmitter did not erase. Signalled in the side
        information where the transmitter inverted the channel; else (the jscna_precoder block,
        which tags them in the stream) the receiver's h and g_th give them, as they gave them the
        transmitter under genie CSIT."""
        masks = [d.get("erased") for d in obs.side_info] if len(obs.side_info) == obs.n else []
        if not masks or any(m is None for m in masks):
            return obs.h.abs().square() >= g_th
        erased = torch.from_numpy(np.stack([unpack_mask(m, obs.k) for m in masks]))
        return ~erased.to(obs.h.device)

    def _steps(self, models, vae, opt, schedule, x, first_eps, t, rms, s_max, gen, tokens) -> torch.Tensor:
        """S_j (N, tokens) for the images starting at t: uniform s_max, or eq. 11 on the importance
        of the classifier's attention on the Tweedie estimate's image (random: those counts on
        randomly permuted patches)."""
        from ..core.data import to_tensor
        from ..diffusion import jscna
        n = x.shape[0]
        if opt["adaptive"] == "off":
            return torch.full((n, tokens), s_max, dtype=torch.long)
        images = self._estimate_images(models, vae, schedule.tweedie_x0(x, t, first_eps), rms)
        classifier = models.model(classifier_name("cifar10"), "classifier")
        device = next(classifier.parameters()).device
        attention = classifier.forward_features(to_tensor(images).to(device))["attention_weights"]
        importance = jscna.patch_importance(attention.float().cpu())
        if importance.shape[1] != tokens:
            raise ValueError(f"the classifier has {importance.shape[1]} patches, the prior {tokens} tokens")
        steps = jscna.allocate_steps(importance, min(opt["s_min"], s_max), s_max)
        if opt["importance"] == "random":
            perm = torch.stack([torch.randperm(tokens, generator=gen) for _ in range(n)])
            steps = steps.gather(1, perm)
        return steps

    @staticmethod
    def _estimate_images(models, vae, x0, rms) -> np.ndarray:
        """uint8 images (N, H, W, C) of prior-domain estimates x0: the VAE decoder's."""
        return models.decode(vae, (LATENT_SCALE * x0.float().cpu() * rms[:, None]).numpy(), 0.0)

    @staticmethod
    def _eps_tokens(prior):
        """eps of the active tokens only: the Gaussian base in closed form (all tokens, no network)
        plus the DiT's residual computed on the active tokens alone."""
        from ..diffusion import jscna

        def eps_tokens(x_tokens, t, active):
            out = torch.zeros_like(x_tokens)
            # an image whose every patch is done takes no network call; the others go in groups of
            # similar active counts, so that little work is spent on padding
            for rows in jscna.token_groups(active.sum(1)):
                x = prior.from_tokens(x_tokens[rows])
                tt = torch.full((x.shape[0],), int(t), device=x.device)
                index, valid = jscna.active_index(active[rows])
                residual = prior.residual_tokens(x, tt, index, valid)
                part = torch.zeros_like(x_tokens[rows]).scatter(1, index[..., None].expand_as(residual), residual)
                if prior.cfg.base is not None:
                    part = part + prior.to_tokens(prior.base_eps(x, tt))
                out[rows] = part
            return out
        return eps_tokens


def pack_mask(mask) -> str:
    """A boolean vector as hex (numpy packbits, big-endian bits, zero-padded to whole bytes)."""
    return np.packbits(np.asarray(mask, bool)).tobytes().hex()


def unpack_mask(text: str, k: int) -> np.ndarray:
    """pack_mask's inverse: (k,) bool; ValueError for a string of the wrong length or not hex."""
    if not _is_mask(text) or len(text) != 2 * math.ceil(k / 8):
        raise ValueError(f"jscna-ad: an erasure bitmap of {k} symbols is {2 * math.ceil(k / 8)} hex digits")
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), np.uint8))[:k].astype(bool)


def _is_mask(text) -> bool:
    try:
        return isinstance(text, str) and len(text) > 0 and len(bytes.fromhex(text)) * 2 == len(text)
    except ValueError:
        return False


register(JSCNAAD())
