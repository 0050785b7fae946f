"""cdiff, cdiff-ae, cdiff-vae: CDiff (Letafati et al.; spec ../shared/papers/cdiff.md) and the two
baselines the paper compares it with, on the same semantic encoder architecture.

    transmit: images --CNN encoder (one head per k)--> reals (N, 2k) --to_symbols(P)--> z (N, k);
              option k: send only the first k' symbols, renormalised (the CBR sweep);
              option encoder: another CDiff-family system's encoder transmits (unmatched encoders)
    receive:  AWGN: y = zhat / w (the link's MMSE scalar undone: CDiff knows neither SNR nor CSI);
              Rayleigh: the MMSE-equalised zhat (what the Rayleigh models were trained on)
              cdiff:     zero-pad + reshape to 3x32x32 -> the conditional reverse diffusion
                         (T = 100 steps, or `steps` evenly spaced; ancestral "ddpm" or "ddim")
              cdiff-ae:  the mirrored decoder;  cdiff-vae: the VAE's decoder

The maths is in diffusion/cdiff.py, the networks in nets/cdiff.py. Receiving fewer than the
model's k symbols zero-pads the rest (the decoder was trained with soft masking).
"""

import math

import torch

from ..core.data import to_tensor, to_uint8
from ..core.mapping import complex_to_real, to_symbols
from ..core.models import CDIFF_SYSTEMS, cdiff_name, cdiff_system, checkpoint_for
from . import register
from .base import Option, Result, Scheme, Transmission, TxContext

DEFAULT_K = 512
MAX_T = 200   # the longest chain steps=0 runs (the paper's T; the shipped system has 100): the NFE bound

COMMON_OPTIONS = (
    Option("k", 0, "symbols sent per image: 0 = the model's k; fewer = the encoder's head of that k, else the "
           "first k of its largest head, renormalised (the CBR sweep)", minimum=0),
    Option("encoder", "", "a CDiff-family system (cdiff, cdiff-ae or cdiff-vae checkpoint) whose encoder "
           "transmits instead of the decoder's own: the unmatched-encoder experiment; empty = matched"),
)


def received_reals(obs):
    """(received reals (N, 2k) in the sent symbols' unit-power domain, reliability (N, k) or None)
    of an observation: on AWGN the link's MMSE scalar is undone, y / sqrt(P) = z + n / sqrt(P)
    (the paper's receiver has neither SNR nor CSI); on Rayleigh the MMSE-equalised
    zhat = w y, w = sqrt(P) h* / (P |h|^2 + s2), already estimates z, and each symbol's
    reliability is P |h|^2 / (P |h|^2 + s2 + interference)."""
    p = obs.powers
    if obs.channel_type == "awgn":
        w = obs.w.to(obs.zhat.device)
        nonzero = w.abs() > 0
        y = torch.where(nonzero, obs.zhat / torch.where(nonzero, w, torch.ones_like(w)), torch.zeros_like(obs.zhat))
        return complex_to_real(y / math.sqrt(p.signal_power)).float(), None
    gain = p.signal_power * obs.h.to(obs.zhat.device).abs().square()
    return complex_to_real(obs.zhat).float(), (gain / (gain + p.noise_var + p.interference_power)).float()


def pad_symbols(received: torch.Tensor, reliability, k: int):
    """[Re; Im] reals (N, 2k') of k' symbols -> (N, 2k) of k symbols, the missing ones zero (and
    their reliability 0): the layout of k symbols whose last k - k' were not sent."""
    n, two = received.shape
    fill = k - two // 2
    zeros = received.new_zeros(n, fill)
    out = torch.cat([received[:, :two // 2], zeros, received[:, two // 2:], zeros], 1)
    return out, None if reliability is None else torch.cat([reliability, reliability.new_zeros(n, fill)], 1)


class _CDiffFamily(Scheme):
    system = ""
    family = "cdiff"
    needs_csit = False
    train_apps = "apps/train_cdiff.py"
    takes_fewer_symbols = True
    model_options = ("encoder",)

    @property
    def kind(self) -> str:
        return CDIFF_SYSTEMS[self.system]

    def default_model(self, channel_type, k, image_shape=None):
        # one system serves every k up to its own (fewer symbols are zero-padded): k picks no model
        return cdiff_name(self.system, channel_type, DEFAULT_K)

    def checkpoints(self, channel_type, k, model="", image_shape=None):
        return [model or self.default_model(channel_type, k, image_shape)]

    def symbols_per_image(self, models, tx, image_shape):
        return self._sent_k(models, tx.model or self.default_model(tx.channel_type, None, image_shape),
                            self.option_values(tx.options, tx.channel_type))

    def _system(self, models, name):
        model = models.model(name, self.kind)
        if model.cfg.system != self.system:
            raise ValueError(f"{name} is a CDiff {model.cfg.system!r} system, scheme {self.name!r} needs {self.system!r}")
        return model

    def _sent_k(self, models, name, opt) -> int:
        k_model = self._system(models, name).cfg.k
        if opt["k"] > k_model:
            raise ValueError(f"scheme {self.name!r} option k = {opt['k']}: the model {name} sends at most {k_model}")
        return opt["k"] or k_model

    def _encoder_system(self, models, name: str):
        """The system whose encoder transmits for option encoder=NAME (any CDiff-family kind)."""
        return models.model(name, CDIFF_SYSTEMS[cdiff_system(name)])

    def check_model(self, channel_type, k, model="", image_shape=None):
        """Another system's checkpoint, or more symbols than it takes, fail when a block is made."""
        from ..core.checkpoint import CheckpointError, read_sidecar
        name = model or self.default_model(channel_type, k, image_shape)
        if cdiff_system(name) != self.system:
            raise ValueError(f"{name} is a CDiff {cdiff_system(name)!r} system, scheme {self.name!r} "
                             f"needs {self.system!r}")
        k_model = read_sidecar(checkpoint_for(name))["k"]
        if k and k > k_model:
            raise CheckpointError(f"{name} takes at most {k_model} symbols per image, not {k}")

    def transmit(self, models, images, tx: TxContext) -> Transmission:
        name = tx.model or self.default_model(tx.channel_type, None, images.shape[1:])
        opt = self.option_values(tx.options, tx.channel_type)
        self._system(models, name)
        if tuple(images.shape[1:]) != (32, 32, 3):
            raise ValueError(f"{name} takes 32x32 RGB images, got {tuple(images.shape[1:])}")
        k = self._sent_k(models, name, opt)
        sender = self._encoder_system(models, opt["encoder"]) if opt["encoder"] else self._system(models, name)
        if sender.cfg.k < k:
            raise ValueError(f"scheme {self.name!r} option encoder = {opt['encoder']}: it sends at most "
                             f"{sender.cfg.k} symbols, the decoder takes {k}")
        from ..nets.cdiff import encode_images
        head = k if str(k) in sender.encoder.heads else None   # a head of that k, else the first k of the largest
        reals = encode_images(sender, to_tensor(images).to(models.device), head).float().cpu()
        kk = reals.shape[1] // 2
        reals = torch.cat([reals[:, :k], reals[:, kk:kk + k]], 1)
        z, _ = to_symbols(reals, tx.power)
        return Transmission(z)

    def receive(self, models, obs) -> Result:
        opt = self.option_values(obs.options, obs.channel_type)
        name = obs.model or self.default_model(obs.channel_type, None)
        model = self._system(models, name)
        if obs.k > model.cfg.k:
            raise ValueError(f"{name} takes at most {model.cfg.k} symbols per image, got {obs.k}")
        received, reliability = received_reals(obs)
        if obs.k < model.cfg.k and str(obs.k) not in model.encoder.heads:
            # the first k' symbols of the largest head: the rest zero in the symbol domain, so each
            # real and imaginary part sits where the decoder was trained to find it
            received, reliability = pad_symbols(received, reliability, model.cfg.k)
        images, nfe = self._decode(models, name, model, received.to(models.device), reliability, opt, obs.seed)
        return Result(images=images, nfe=nfe, extra={"k_received": obs.k})

    def _decode(self, models, name, model, received, reliability, opt, seed):
        raise NotImplementedError


class CDiff(_CDiffFamily):
    name = "cdiff"
    system = "cdiff"
    description = ("CDiff: semantic CNN encoder, conditional diffusion decoder on the zero-padded received "
                   "latent (no SNR, no CSI at the receiver)")
    options = (
        Option("steps", 0, "reverse steps (NFE): 0 = all T of the model's schedule; fewer = the fast sampler",
               minimum=0),
        Option("sampler", "ddpm", "ddpm: the paper's ancestral posterior steps (skipping ahead when steps < T); "
               "ddim: deterministic on the same process", choices=("ddpm", "ddim")),
    ) + COMMON_OPTIONS

    def max_nfe(self, given=None, channel_type=None):
        opt = self.option_values(given, channel_type)
        return opt["steps"] or MAX_T

    def _decode(self, models, name, model, received, reliability, opt, seed):
        from ..nets.cdiff import check_cdiff_schedule, decode
        schedule = check_cdiff_schedule(models.sidecar(name, self.kind)["schedule"])
        if not opt["steps"] and schedule.num_steps > MAX_T:
            raise ValueError(f"{name} has T = {schedule.num_steps}, more than the {MAX_T} scheme 'cdiff' runs by "
                             "default: give the option steps")
        steps = opt["steps"] or schedule.num_steps
        if steps > schedule.num_steps:
            raise ValueError(f"scheme 'cdiff' option steps = {steps}: {name} has T = {schedule.num_steps}")
        gen = torch.Generator(device=received.device).manual_seed(seed)
        if reliability is None and model.cfg.reliability:
            raise ValueError(f"{name} takes the reliability plane (Rayleigh with known h and SNR)")
        rel = reliability.to(received.device) if model.cfg.reliability else None
        x = decode(model, schedule, received, rel, steps, opt["sampler"], gen)
        return to_uint8(((x + 1) / 2).cpu()), float(steps)


class CDiffAE(_CDiffFamily):
    name = "cdiff-ae"
    system = "ae"
    description = "CDiff's matched autoencoder baseline: the same encoder, a mirrored CNN decoder"
    options = COMMON_OPTIONS

    def _decode(self, models, name, model, received, reliability, opt, seed):
        from ..nets.cdiff import decode
        return to_uint8(((decode(model, None, received) + 1) / 2).cpu()), 0.0


class CDiffVAE(CDiffAE):
    name = "cdiff-vae"
    system = "vae"
    description = "CDiff's VAE baseline: a variational encoder (its mean is sent) and a mirrored decoder"


register(CDiff())
register(CDiffAE())
register(CDiffVAE())
