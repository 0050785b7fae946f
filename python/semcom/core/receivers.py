"""Receiver registry: the latent clean-up between MMSE equalizer and JSCC decoder.

A receiver maps the equalized latents xhat (N, 2k), in the power-normalised symbol domain,
to the latents handed to the decoder, given a LinkContext (per-symbol MMSE weights w and
CSI h, the powers, SNR/SINR, channel type, the receiver's options and a seed). run_link,
the blocks and the inference server look receivers up here by name.

Registered: "mmse" (nothing more), and the diffusion receivers on the one diffusion core
(semcom.diffusion): "cddm" (signal prior from the matched step, interference as noise),
"icdm" (two priors, Gaussian-surrogate guidance) and its ablations "icdm-pigdm",
"icdm-dps", "icdm-projection" (same sampler, other guidance gradients).
"""

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch

from .channel import LinkPowers
from .equalizer import lemma1


@dataclass
class LinkContext:
    w: torch.Tensor            # (N, k) complex MMSE weights applied
    h: torch.Tensor            # (N, k) complex CSI
    powers: LinkPowers
    snr_db: float
    sinr_db: float
    channel_type: str = "awgn"  # picks the diffusion priors
    options: dict = field(default_factory=dict)  # receiver options (Receiver.defaults overrides)
    seed: int = 0              # the receiver's own random draws (initial noise)
    nfe: int = 0               # set by the receiver: network evaluations per image it used


@dataclass
class Receiver:
    name: str
    fn: Callable[[torch.Tensor, LinkContext, dict], torch.Tensor]  # (xhat, ctx, options) -> latents
    description: str = ""
    defaults: dict = field(default_factory=dict)
    priors: tuple = ()         # roles of the shipped diffusion priors it needs ("user", "interferer")
    choices: dict = field(default_factory=dict)  # option -> allowed values
    channel_defaults: dict = field(default_factory=dict)  # channel type -> defaults that differ there
    minimums: dict = field(default_factory=dict)  # option -> smallest allowed value

    def check_priors(self, channel_type: str, k: int):
        """CheckpointError naming the file if a prior this receiver needs is not shipped."""
        from .models import prior_for
        for role in self.priors:
            prior_for(role, channel_type, k)

    def prior_names(self, channel_type: str, k: int) -> list:
        """The names of the diffusion priors it needs there (to check against a server's list)."""
        from .models import prior_name
        return [prior_name(role, channel_type, k) for role in self.priors]

    def max_nfe(self, given: Optional[dict] = None, channel_type: Optional[str] = None) -> int:
        """The most network evaluations per image these options can cost: each sampler step
        evaluates each prior once (fewer steps run where the start step is early); 0 for
        receivers without a network. ValueError as for options()."""
        return len(self.priors) * int(self.options(given, channel_type).get("steps", 0))

    def options(self, given: Optional[dict] = None, channel_type: Optional[str] = None) -> dict:
        """The defaults (those of `channel_type` where they differ) with `given` applied;
        unknown names or wrong types raise ValueError."""
        out = dict(self.defaults, **self.channel_defaults.get(channel_type, {}))
        for key, value in (given or {}).items():
            if key not in out:
                known = ", ".join(sorted(out)) or "none"
                raise ValueError(f"receiver {self.name!r} has no option {key!r} (options: {known})")
            out[key] = _coerce(self.name, key, value, out[key])
        for key, allowed in self.choices.items():
            if out[key] not in allowed:
                raise ValueError(f"receiver {self.name!r} option {key!r} must be one of "
                                 f"{', '.join(map(str, allowed))}, got {out[key]!r}")
        for key, low in self.minimums.items():
            if out[key] < low:
                raise ValueError(f"receiver {self.name!r} option {key!r} must be >= {low}, got {out[key]}")
        return out

    def __call__(self, xhat: torch.Tensor, ctx: LinkContext) -> torch.Tensor:
        return self.fn(xhat, ctx, self.options(ctx.options, ctx.channel_type))


def _coerce(receiver, key, value, default):
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("0", "1", "true", "false", "yes", "no"):
                return value.lower() in ("1", "true", "yes")
            if isinstance(value, bool):
                return value
            raise ValueError
        if kind is int and (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        out = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"receiver {receiver!r} option {key!r} must be a {kind.__name__}, got {value!r}") from None
    if isinstance(out, float) and not math.isfinite(out):
        raise ValueError(f"receiver {receiver!r} option {key!r} must be finite, got {value!r}")
    return out


RECEIVERS: Dict[str, Receiver] = {}


def register_receiver(receiver: Receiver):
    if receiver.name in RECEIVERS:
        raise ValueError(f"receiver {receiver.name!r} is already registered")
    RECEIVERS[receiver.name] = receiver


def check_receiver(name: str, options: Optional[dict] = None) -> Receiver:
    """The receiver called `name`, after checking `options` against it (ValueError otherwise)."""
    if name not in RECEIVERS:
        raise ValueError(f"unknown receiver {name!r} (available: {', '.join(sorted(RECEIVERS))})")
    RECEIVERS[name].options(options)
    return RECEIVERS[name]


def parse_options(text: str) -> dict:
    """"steps=20,zeta_x=0.5" -> {"steps": "20", "zeta_x": "0.5"} (values typed by the receiver)."""
    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"receiver option {part!r} is not NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


register_receiver(Receiver("mmse", lambda xhat, ctx, opt: xhat,
                           description="MMSE equalizer only; the decoder gets the equalized latent"))


# ---------------------------------------------------------------- diffusion receivers
# Latents are power-normalised per image (mean |z|^2 = 1), so each real dimension has
# variance 1/2; the priors run on unit-variance latents: physical = LATENT_SCALE * diffusion.
LATENT_SCALE = 1.0 / math.sqrt(2.0)


@functools.lru_cache(maxsize=None)
def _prior(role: str, channel_type: str, k: int, device: str):
    from ..diffusion.dit import load_prior
    from .models import prior_for
    model, _ = load_prior(prior_for(role, channel_type, k))
    return model.requires_grad_(False).to(device)  # ΠGDM/DPS differentiate w.r.t. inputs only


def _eps_fn(model):
    def eps(x, t):
        return model(x, torch.full((x.shape[0],), int(t), device=x.device))
    return eps


def _prior_eps(role, ctx, k, device, kind, schedule):
    """The eps function of a prior: the shipped DiT ("dit"), or the exact eps of a unit
    Gaussian ("gaussian", sigma_t x_t: a baseline that shows what the learned prior adds)."""
    if kind == "gaussian":
        return lambda x, t: schedule.sigma(t).item() * x
    return _eps_fn(_prior(role, ctx.channel_type, k, device))


def _schedule():
    from ..diffusion.schedule import VPSchedule
    return VPSchedule.linear()  # the priors' training schedule (apps/train_prior.py)


def _observation(xhat, ctx):
    from ..diffusion.guidance import LinearObservation
    p = ctx.powers
    l1 = lemma1(ctx.w.to(xhat.device), ctx.h.to(xhat.device), p.signal_power, p.interference_power, p.noise_var)
    return LinearObservation(l1.a, l1.b, l1.c, LATENT_SCALE, LATENT_SCALE)


def _cddm(xhat, ctx, opt):
    from ..diffusion.cddm import cddm_sample
    from ..diffusion.matched_start import matched_step
    k = xhat.shape[1] // 2
    schedule, obs = _schedule(), _observation(xhat, ctx)
    gen = torch.Generator().manual_seed(ctx.seed)
    eps_x = _prior_eps("user", ctx, k, str(xhat.device), opt["prior"], schedule)
    x0 = cddm_sample(eps_x, obs, xhat, schedule, opt["steps"], opt["order"], opt["variant"], gen)
    ctx.nfe = min(opt["steps"], matched_step(obs, schedule, "x") + 1)
    return LATENT_SCALE * x0


def _icdm(guidance):
    def run(xhat, ctx, opt):
        from ..diffusion.icdm import icdm_sample
        from ..diffusion.matched_start import matched_start, matched_step
        k = xhat.shape[1] // 2
        schedule, obs = _schedule(), _observation(xhat, ctx)
        gen = torch.Generator().manual_seed(ctx.seed)
        dev = str(xhat.device)
        eps_x = _prior_eps("user", ctx, k, dev, opt["prior"], schedule)
        eps_i = _prior_eps("interferer", ctx, k, dev, opt["prior"], schedule)
        if opt["start"] == "noise":
            start = schedule.num_steps - 1
            x_T = torch.randn(xhat.shape, generator=gen).to(xhat.device)
            i_T = torch.randn(xhat.shape, generator=gen).to(xhat.device)
        else:
            start = matched_step(obs, schedule, "x")
            x_T = matched_start(obs, xhat, schedule, start, "x", gen)
            i_T = matched_start(obs, xhat, schedule, start, "i", gen)
        x0, _ = icdm_sample(eps_x, eps_i, obs, xhat, schedule, x_T, i_T, opt["steps"], opt["order"],
                            opt["variant"], opt["zeta_x"], opt["zeta_i"], opt["guided_corrector"],
                            guidance, start)
        ctx.nfe = 2 * len(schedule.timesteps(opt["steps"], start))
        return LATENT_SCALE * x0
    return run


# Defaults tuned on 96 CIFAR-10 training images at SNR 20 dB, SINR 0 dB, per channel type
# for icdm's zeta (the optima differ), on Rayleigh for the ablations (bench/bench_icdm.py
# --tune; the grids and their results: docs/results_icdm.md).
CDDM_DEFAULTS = {"steps": 5, "order": 2, "variant": "bh2", "prior": "dit"}
ICDM_DEFAULTS = {"steps": 20, "order": 2, "variant": "bh2", "zeta_x": 1.0, "zeta_i": 2.0,
                 "start": "observation", "guided_corrector": False, "prior": "dit"}
ICDM_CHANNEL_DEFAULTS = {"awgn": {"zeta_x": 2.0, "zeta_i": 0.5}, "rayleigh": {"zeta_x": 1.0, "zeta_i": 2.0}}
ICDM_ABLATION_DEFAULTS = {
    "pigdm": dict(ICDM_DEFAULTS, zeta_x=1.0, zeta_i=1.0),
    "dps": dict(ICDM_DEFAULTS, zeta_x=3.0, zeta_i=3.0),
    "projection": dict(ICDM_DEFAULTS, zeta_x=2.0, zeta_i=2.0),
}
CHOICES = {"variant": ("bh1", "bh2"), "prior": ("dit", "gaussian")}
ICDM_CHOICES = dict(CHOICES, start=("noise", "observation"))
MINIMUMS = {"steps": 1, "order": 1}

register_receiver(Receiver(
    "cddm", _cddm, defaults=CDDM_DEFAULTS, priors=("user",), choices=CHOICES, minimums=MINIMUMS,
    description="signal diffusion prior from the step matching the effective noise "
                "(interference as noise), unguided UniPC to x_0"))
register_receiver(Receiver(
    "icdm", _icdm("gaussian"), defaults=ICDM_DEFAULTS, priors=("user", "interferer"), choices=ICDM_CHOICES,
    minimums=MINIMUMS,
    channel_defaults=ICDM_CHANNEL_DEFAULTS,
    description="two diffusion priors (signal, interference) sampled jointly by UniPC with "
                "Gaussian-surrogate likelihood guidance"))
for _kind, _what in (("pigdm", "PiGDM guidance (autograd through the priors)"),
                     ("dps", "DPS guidance (autograd, residual-normalised)"),
                     ("projection", "least-norm projection onto the observation instead of a likelihood")):
    register_receiver(Receiver(f"icdm-{_kind}", _icdm(_kind), defaults=ICDM_ABLATION_DEFAULTS[_kind],
                               priors=("user", "interferer"), choices=ICDM_CHOICES, minimums=MINIMUMS,
                               description=f"ICDM ablation: {_what}"))
