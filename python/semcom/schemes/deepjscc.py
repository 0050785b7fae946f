"""The DeepJSCC family: one transmitter (JSCC encoder, power-normalised complex map) and
receivers that clean the equalized latent before the same JSCC decoder.

    transmit: images --encoder(snr)--> s (N, 2k) --to_symbols(P)--> z (N, k)
    receive:  zhat (MMSE-equalized) --clean()--> latents (N, 2k) --decoder(snr)--> images

A member scheme only says how it cleans (`clean(obs, models) -> (latents, nfe)`) and which
diffusion priors it needs (`priors`: roles "user", "interferer"); this module also holds the
glue between the link and the diffusion core (semcom.diffusion): the Lemma-1 observation,
the priors' eps functions and their training schedule.
"""

from dataclasses import dataclass

import torch

from ..core.equalizer import lemma1
from ..core.mapping import LATENT_SCALE, to_symbols
from ..core.models import default_k, default_models, gaussian_name, prior_name
from .base import Observation, Option, Result, Scheme, Transmission, TxContext

MNIST_SHAPE = (28, 28, 1)


class DeepJSCCScheme(Scheme):
    family = "deepjscc"
    priors: tuple = ()   # roles of the diffusion priors it needs ("user", "interferer")

    def default_model(self, channel_type, k, image_shape=None):
        """The shipped user JSCC model for the channel and k (28x28 grey where k is the
        shipped grey models' k and no image shape says otherwise)."""
        if image_shape is None:
            image_shape = MNIST_SHAPE if k == default_k(MNIST_SHAPE) else (32, 32, 3)
        return default_models(channel_type, k or default_k(image_shape), image_shape)[0]

    def prior_names(self, channel_type, k) -> list:
        return [prior_name(role, channel_type, k) for role in self.priors]

    def checkpoints(self, channel_type, k, model="", image_shape=None):
        """The JSCC model, and for the receiver (`k` given) the diffusion priors and the fitted
        Gaussians of the same roles (the `gaussian-full` prior option)."""
        model = model or self.default_model(channel_type, k, image_shape)
        if not k:  # the transmitter's: the model alone
            return [model]
        return [model] + self.prior_names(channel_type, k) + fit_names(self.priors, channel_type, k)

    def symbols_per_image(self, models, tx, image_shape):
        return models.info(tx.model or self.default_model(tx.channel_type, None, image_shape))["k"]

    def max_nfe(self, given=None, channel_type=None):
        """Each sampler step evaluates each prior once (fewer steps run where the start step
        is early); 0 without priors."""
        return len(self.priors) * int(self.option_values(given, channel_type).get("steps", 0))

    def transmit(self, models, images, tx: TxContext) -> Transmission:
        model = tx.model or self.default_model(tx.channel_type, None, images.shape[1:])
        s = torch.from_numpy(models.encode(model, images, float(tx.snr_db)))
        z, _ = to_symbols(s, tx.power)
        return Transmission(z)

    def receive(self, models, obs: Observation) -> Result:
        latents, nfe = self.clean(obs, models)
        latents = latents.float().cpu().numpy()
        images = models.decode(obs.model or self.default_model(obs.channel_type, obs.k), latents, float(obs.snr_db))
        return Result(images=images, latents=latents, nfe=nfe)

    def clean(self, obs: Observation, models):
        """(latents (N, 2k) for the decoder, network evaluations per image)."""
        raise NotImplementedError


# ---------------------------------------------------------------- diffusion glue
@dataclass
class DiffusionSetup:
    """What a diffusion receiver of the family starts from: its resolved options, each
    chain's prior kind and eps function, the schedule, the Lemma-1 observation, the equalized
    latents and the generator of its own draws (seeded by the observation)."""
    opt: dict
    kinds: dict
    eps: dict
    schedule: object
    lin: object
    xhat: torch.Tensor
    generator: torch.Generator

    @property
    def networks(self) -> int:
        """Chains whose prior is a network (a Gaussian's eps is closed form): NFE per step."""
        return sum(kind == "dit" for kind in self.kinds.values())

    def nfe(self, starts) -> float:
        """Network evaluations per image, averaged over the batch, for images started at
        steps `starts` (each runs min(steps, t* + 1) steps)."""
        steps = [len(self.schedule.timesteps(self.opt["steps"], t)) for t in starts]
        return self.networks * sum(steps) / max(1, len(steps))


def diffusion_setup(scheme, obs: Observation, models) -> DiffusionSetup:
    opt = scheme.option_values(obs.options, obs.channel_type)
    kinds = chain_priors(opt, scheme.priors)
    schedule = prior_schedule(models, obs, kinds)
    eps = {role: prior_eps(models, role, obs, kind, schedule) for role, kind in kinds.items()}
    return DiffusionSetup(opt, kinds, eps, schedule, lemma1_observation(obs), obs.xhat,
                          torch.Generator().manual_seed(obs.seed))


def lemma1_observation(obs: Observation, device=None):
    """The Lemma-1 model xhat = A x + B i + C e of an observation, on unit-variance diffusion
    latents (physical = LATENT_SCALE * diffusion), for the diffusion core."""
    from ..diffusion.guidance import LinearObservation
    p, dev = obs.powers, device or obs.zhat.device
    l1 = lemma1(obs.w.to(dev), obs.h.to(dev), p.signal_power, p.interference_power, p.noise_var)
    return LinearObservation(l1.a, l1.b, l1.c, LATENT_SCALE, LATENT_SCALE)


def fit_names(roles, channel_type, k) -> list:
    """The fitted Gaussians `fitted_prior` may load for these roles: each role's own, and for a
    Rayleigh interferer the interferer's as sent (AWGN), which block fading folds."""
    names = [gaussian_name(role, channel_type, k) for role in roles]
    if channel_type == "rayleigh" and "interferer" in roles:
        names.append(gaussian_name("interferer", "awgn", k))
    return names


def fitted_prior(models, role, obs: Observation):
    """The full-covariance Gaussian of a chain's latents as the receiver sees them (physical
    domain): the shipped fit of the role and channel; for an interferer under Rayleigh block
    fading (obs.coherence > 1) its AWGN fit with the block-constant gain folded in
    (diffusion.gaussian.fold_fading; the shipped Rayleigh fit is the i.i.d. case), computed
    once per loaded fit and coherence."""
    from ..diffusion.gaussian import KIND
    if role == "interferer" and obs.channel_type == "rayleigh" and obs.coherence > 1:
        return models.model(gaussian_name(role, "awgn", obs.k), KIND).faded(obs.coherence)
    return models.model(gaussian_name(role, obs.channel_type, obs.k), KIND)


def chain_gaussian(models, role, obs: Observation, kind: str):
    """The Gaussian a chain's prior is or starts from (physical domain), for the surrogate's
    covariance and the posterior-mean start: white latents of unit power per symbol for a
    `gaussian-unit` prior, else the fitted one (`fitted_prior`; a DiT prior's base)."""
    if kind == "gaussian-unit":
        from ..diffusion.gaussian import FittedGaussian, GaussianConfig
        white = FittedGaussian(GaussianConfig(2 * obs.k)).to(obs.zhat.device)
        white.cov.mul_(LATENT_SCALE ** 2)
        return white
    return fitted_prior(models, role, obs)


PRIOR_KINDS = ("dit", "gaussian-unit", "gaussian-full")
CHAINS = {"user": "x", "interferer": "i"}


def chain_priors(opt: dict, roles) -> dict:
    """{role: prior kind} from the options: `prior_x` / `prior_i` where set, else `prior`
    ("dit" or "gaussian", the unit Gaussian) for both chains."""
    both = "dit" if opt["prior"] == "dit" else "gaussian-unit"
    return {role: opt.get(f"prior_{CHAINS[role]}", "as-prior").replace("as-prior", both) for role in roles}


def prior_schedule(models, obs: Observation, kinds: dict):
    """The noise schedule the chains run on: the one the shipped DiT priors in use were trained
    with (read from their checkpoints; they must agree), else the linear VP schedule (the
    Gaussian priors are exact at any schedule)."""
    from ..diffusion.schedule import VPSchedule
    roles = [role for role, kind in kinds.items() if kind == "dit"]
    if not roles:
        return VPSchedule.linear()
    schedules = [models.prior_schedule(prior_name(role, obs.channel_type, obs.k)) for role in roles]
    if any(not torch.equal(s.alphas_cumprod, schedules[0].alphas_cumprod) for s in schedules[1:]):
        raise ValueError(f"the priors of {', '.join(roles)} were trained with different noise schedules")
    return schedules[0]


def prior_eps(models, role, obs: Observation, kind, schedule):
    """The eps function of a chain's prior: the shipped DiT ("dit"); the exact eps of a unit
    Gaussian ("gaussian-unit", sigma_t x_t); or the exact eps of the full-covariance Gaussian
    fitted to the same training latents ("gaussian-full", gauss_<role>_<channel>_k<k>: the
    control a learned prior must beat)."""
    if kind == "gaussian-unit":
        return unit_gaussian_eps(schedule)
    if kind == "gaussian-full":
        return fitted_eps(fitted_prior(models, role, obs), schedule)
    return network_eps(models.prior(prior_name(role, obs.channel_type, obs.k)))


def unit_gaussian_eps(schedule):
    """The exact eps of a unit Gaussian prior on diffusion latents: sigma_t x_t."""
    return lambda x, t: schedule.sigma(t).item() * x


def fitted_eps(fitted, schedule):
    """The exact eps of a fitted Gaussian (physical domain) on diffusion latents."""
    return lambda x, t: fitted.eps(x, schedule.alphas_cumprod[t].item(), LATENT_SCALE)


def network_eps(model):
    """eps(x, t) of a DiT prior: one step t for the whole batch."""
    return lambda x, t: model(x, torch.full((x.shape[0],), int(t), device=x.device))


START_KINDS = ("noise", "observation", "posterior-mean")


# Options every diffusion receiver of the family has.
def sampler_options(steps, zeta=None, start=None, guided_corrector=False):
    """The options of a diffusion receiver: steps and sampler, each chain's prior, and with
    `zeta` the guidance weights ((zeta_x, zeta_i), {channel type: pair}), with `start` (its
    default, one of START_KINDS) the start and whether the corrector is guided."""
    out = [Option("steps", steps, "sampler steps (network evaluations per prior)", minimum=1),
           Option("order", 2, "UniPC order", minimum=1),
           Option("variant", "bh2", "UniPC variant", choices=("bh1", "bh2")),
           Option("prior", "dit", "dit: the shipped priors; gaussian: unit Gaussians (no network)",
                  choices=("dit", "gaussian")),
           Option("prior_x", "as-prior", "the signal chain's prior: dit, gaussian-unit, gaussian-full (the "
                  "fitted full-covariance Gaussian), or as `prior`", choices=("as-prior",) + PRIOR_KINDS)]
    if zeta is not None:
        out.append(Option("prior_i", "as-prior", "the interference chain's prior (as prior_x)",
                          choices=("as-prior",) + PRIOR_KINDS))
        (zx, zi), per_channel = zeta
        out += [Option("zeta_x", zx, "guidance weight of the signal chain",
                       channel_defaults=tuple((c, v[0]) for c, v in per_channel.items())),
                Option("zeta_i", zi, "guidance weight of the interference chain",
                       channel_defaults=tuple((c, v[1]) for c, v in per_channel.items()))]
    if start:
        out.append(Option("start", start, "observation: from the observation at each image's matched "
                          "step; noise: from N(0, I) at T-1; posterior-mean: deterministically from the mean "
                          "of both chains under the priors' Gaussians (the fitted ones: lmmse-full's estimate) "
                          "at the matched step",
                          choices=START_KINDS))
    if guided_corrector is not None and start:
        out.append(Option("guided_corrector", guided_corrector, "the corrector uses the guided eps too"))
    return tuple(out)
