"""KL-regularised autoencoder (the latent-diffusion "KL-VAE") whose latent is sent over the link
(GNU Radio-free, torch only). A shared part: the `dnsc` scheme and JSCNA-AD both send its latent
and train their latent priors on it.

    images (N, 3, 32, 32) in [0, 1] --encode--> latent (N, 16, 8, 8), unit variance
    latent --decode--> images (N, 3, 32, 32) in [0, 1]

1024 reals per image = 512 complex channel symbols: CBR 1/6, the DeepJSCC link's budget.

Architecture (a CPU-sized form of the paper's Table I stack, ../shared/papers/dnsc.md §5.1):
- encoder: 5x5 stride-2 stem (16x16), residual blocks, a stride-2 conv (8x8), residual block,
  self-attention, residual block, GroupNorm + SiLU + 3x3 conv to 2 x 16 channels (mu, log var);
- decoder: the mirror, with PixelShuffle upsampling; its last layer is `decoder.out` (a 3x3 conv,
  the layer the adaptive adversarial weight is measured at);
- discriminator (training only, not shipped): a 3-layer PatchGAN giving 8x8 logits.

Losses (spec §2, LDM/taming's recipe; per image, averaged over the batch):
    L_rec  = sum over pixels (x_rec - x)^2                           (paper eq. 6)
    L_reg  = 1/2 sum over latent elements (mu^2 + var - 1 - log var) (eq. 8, closed form)
    L_G    = -mean D(x_rec)                                          (hinge generator loss)
    L_D    = 1/2 (mean relu(1 - D(x)) + mean relu(1 + D(x_rec)))     (hinge discriminator loss)
    L_AE   = L_rec + kl_weight L_reg + [adversarial on] adv_weight lambda L_G
    lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_G|| + 1e-4), clamped to [0, 1e4], no grad;
G_L the decoder's last layer. "Adversarial on" from a start epoch (the delayed start).

The latent scale (LDM's `scale_factor`): after training, 1 / std of the encoder means over the
training set, stored in the checkpoint as the buffer `latent_scale`; `encode` multiplies by it
and `decode` divides by it, so the latents the channel and the priors see have unit variance.
A model whose scale was never calibrated (0) refuses to encode, rather than send latents of an
unknown scale.

The checkpoint kind is "kl-vae" (core/checkpoint.py loads it; `load_vae` is the shortcut).
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Iterable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.checkpoint import CheckpointError, load_checkpoint, register_kind, save_checkpoint

KIND = "kl-vae"
DOWNSAMPLING = 4            # two stride-2 stages: 32x32 images -> 8x8 latents
ADAPTIVE_WEIGHT_EPS = 1e-4  # taming's delta in lambda = |g_rec| / (|g_G| + delta)
ADAPTIVE_WEIGHT_MAX = 1e4   # taming's clamp: a vanishing GAN gradient must not explode lambda


class VAEInputError(ValueError):
    """Images or latents of the wrong shape, type or range for this autoencoder."""


# --------------------------------------------------------------------------- config

@dataclass(frozen=True)
class KLVAEConfig:
    image_size: int = 32        # square images, side divisible by DOWNSAMPLING
    image_channels: int = 3
    latent_channels: int = 16   # 16 x 8 x 8 = 1024 reals = 512 complex symbols for 32x32
    width: int = 64             # channels at H/2
    width_low: int = 96         # channels at H/4 (the latent resolution)
    res_blocks: int = 1         # residual blocks per resolution (each side of the attention)
    attention: bool = True      # one self-attention block at the latent resolution
    groups: int = 16            # GroupNorm groups (divides both widths)

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type is bool or f.name == "attention":
                if not isinstance(v, bool):
                    raise ValueError(f"{f.name} must be true or false, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int) or v < (0 if f.name == "res_blocks" else 1):
                raise ValueError(f"{f.name} must be an integer >= {0 if f.name == 'res_blocks' else 1}, got {v!r}")
        if self.image_size % DOWNSAMPLING:
            raise ValueError(f"image_size must be divisible by {DOWNSAMPLING}, got {self.image_size}")
        if self.width % self.groups or self.width_low % self.groups:
            raise ValueError(f"groups ({self.groups}) must divide width ({self.width}) and "
                             f"width_low ({self.width_low})")

    @property
    def latent_shape(self) -> Tuple[int, int, int]:
        side = self.image_size // DOWNSAMPLING
        return (self.latent_channels, side, side)

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return (self.image_channels, self.image_size, self.image_size)

    @property
    def latent_dim(self) -> int:
        c, h, w = self.latent_shape
        return c * h * w

    @property
    def k(self) -> int:
        """Complex channel symbols per image (the latent's reals in pairs)."""
        return self.latent_dim // 2

    @property
    def cbr(self) -> float:
        c, h, w = self.image_shape
        return self.k / (c * h * w)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "KLVAEConfig":
        if not isinstance(d, dict):
            raise ValueError(f"config must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown config field(s) {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class DiscriminatorConfig:
    image_channels: int = 3
    width: int = 32             # channels of the first layer (doubled once)

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{f.name} must be an integer >= 1, got {v!r}")


# --------------------------------------------------------------------------- building blocks

class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a skip (a 1x1 conv where the width changes)."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the spatial positions (the paper's "Non-Local" block)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # (n, hw, hw)
        out = (v @ attn.transpose(1, 2)).reshape(n, c, h, w)
        return x + self.proj(out)


def _middle(cfg: KLVAEConfig) -> nn.Sequential:
    """Residual blocks, attention, residual blocks at the latent resolution."""
    c, g = cfg.width_low, cfg.groups
    layers = [ResBlock(c, c, g) for _ in range(cfg.res_blocks)]
    if cfg.attention:
        layers.append(SelfAttention(c, g))
    layers += [ResBlock(c, c, g) for _ in range(cfg.res_blocks)]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    def __init__(self, cfg: KLVAEConfig):
        super().__init__()
        g = cfg.groups
        self.stem = nn.Conv2d(cfg.image_channels, cfg.width, 5, stride=2, padding=2)  # H/2
        self.high = nn.Sequential(*[ResBlock(cfg.width, cfg.width, g) for _ in range(cfg.res_blocks)])
        self.down = nn.Conv2d(cfg.width, cfg.width_low, 3, stride=2, padding=1)      # H/4
        self.middle = _middle(cfg)
        self.norm = nn.GroupNorm(g, cfg.width_low)
        self.out = nn.Conv2d(cfg.width_low, 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x):
        h = self.middle(self.down(self.high(self.stem(x))))
        mu, logvar = self.out(F.silu(self.norm(h))).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    def __init__(self, cfg: KLVAEConfig):
        super().__init__()
        g = cfg.groups
        self.stem = nn.Conv2d(cfg.latent_channels, cfg.width_low, 3, padding=1)
        self.middle = _middle(cfg)
        self.up1 = nn.Sequential(nn.Conv2d(cfg.width_low, 4 * cfg.width, 3, padding=1), nn.PixelShuffle(2))  # H/2
        self.high = nn.Sequential(*[ResBlock(cfg.width, cfg.width, g) for _ in range(cfg.res_blocks)])
        self.up2 = nn.Sequential(nn.Conv2d(cfg.width, 4 * cfg.width, 3, padding=1), nn.PixelShuffle(2))      # H
        self.norm = nn.GroupNorm(g, cfg.width)
        self.out = nn.Conv2d(cfg.width, cfg.image_channels, 3, padding=1)

    def forward(self, z):
        h = self.high(self.up1(self.middle(self.stem(z))))
        return self.out(F.silu(self.norm(self.up2(h))))


class PatchDiscriminator(nn.Module):
    """A 3-layer PatchGAN: one logit per 4x4-pixel patch region (8x8 logits for 32x32 images)."""

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.net = nn.Sequential(
            nn.Conv2d(cfg.image_channels, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(8 if w % 4 == 0 else 1, 2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 1, 3, padding=1))

    def forward(self, images):
        return self.net(images * 2 - 1)  # judged in [-1, 1], like the autoencoder's own domain


# --------------------------------------------------------------------------- the autoencoder

class KLVAE(nn.Module):
    """Encoder + decoder. Images are float (N, C, H, W) in [0, 1]; internally in [-1, 1].

    forward(x)            -> (reconstruction, mu, logvar), training: z sampled, unclamped output
    encode(images)        -> mu * latent_scale, unit variance (needs a calibrated scale)
    decode(latent)        -> images in [0, 1] (latent divided by the scale first)
    """

    def __init__(self, cfg: KLVAEConfig = KLVAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # 0 = not calibrated; set by calibrate_latent_scale after training, shipped in the weights
        self.register_buffer("latent_scale", torch.zeros(()))

    # -- input checks: one clear error for a wrong batch
    def _check_images(self, images: torch.Tensor):
        want = self.cfg.image_shape
        if not torch.is_tensor(images) or not images.is_floating_point():
            raise VAEInputError(f"images must be a float tensor (N, {want[0]}, {want[1]}, {want[2]}) in [0, 1], "
                                f"got {type(images).__name__}{'' if not torch.is_tensor(images) else ' ' + str(images.dtype)}")
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise VAEInputError(f"this autoencoder takes images (N, {want[0]}, {want[1]}, {want[2]}), "
                                f"got {tuple(images.shape)}")

    def _check_latent(self, latent: torch.Tensor):
        want = self.cfg.latent_shape
        if not torch.is_tensor(latent) or not latent.is_floating_point() or latent.ndim != 4 \
                or tuple(latent.shape[1:]) != want:
            shape = tuple(latent.shape) if torch.is_tensor(latent) else type(latent).__name__
            raise VAEInputError(f"this autoencoder decodes float latents (N, {want[0]}, {want[1]}, {want[2]}), "
                                f"got {shape}")

    # -- training path
    def moments(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of the unscaled latent, each (N, *latent_shape)."""
        self._check_images(images)
        return self.encoder(images * 2 - 1)

    def reconstruct_raw(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's unclamped output in the [0, 1] image domain (the training target)."""
        return (self.decoder(z) + 1) / 2

    def forward(self, images: torch.Tensor, generator: Optional[torch.Generator] = None):
        mu, logvar = self.moments(images)
        z = reparameterise(mu, logvar, generator)
        return self.reconstruct_raw(z), mu, logvar

    # -- the link's API
    @property
    def calibrated(self) -> bool:
        return bool(self.latent_scale.item() > 0)

    def _require_scale(self):
        if not self.calibrated:
            raise VAEInputError("the latent scale is not calibrated (calibrate_latent_scale after training); "
                                "a shipped checkpoint always has it")

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-variance latents (N, *latent_shape): the encoder's mean times the latent scale."""
        self._require_scale()
        mu, _ = self.moments(images)
        return mu * self.latent_scale

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] from unit-variance latents."""
        self._require_scale()
        self._check_latent(latent)
        return self.reconstruct_raw(latent / self.latent_scale).clamp(0, 1)

    @property
    def last_decoder_layer(self) -> torch.Tensor:
        """G_L of the adaptive adversarial weight: the decoder's output conv weight."""
        return self.decoder.out.weight


# --------------------------------------------------------------------------- losses

def reparameterise(mu: torch.Tensor, logvar: torch.Tensor,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """z = mu + sigma eps, eps ~ N(0, I) (from `generator` when given, for reproducible runs)."""
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, var) || N(0, 1)) per image: 1/2 sum (mu^2 + var - 1 - log var) over the latent."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def reconstruction_loss(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Squared error per image summed over pixels (paper eq. 6), (N,)."""
    return (reconstruction - images).square().flatten(1).sum(1)


def hinge_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """1/2 (E relu(1 - D(x)) + E relu(1 + D(x_rec))): zero once real logits >= 1 and fake <= -1."""
    return 0.5 * (F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean())


def hinge_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """-E D(x_rec): the autoencoder pushes its reconstructions' logits up."""
    return -logits_fake.mean()


def adaptive_adversarial_weight(rec_loss: torch.Tensor, gen_loss: torch.Tensor,
                                last_layer: torch.Tensor) -> torch.Tensor:
    """lambda = ||d rec_loss / d G_L|| / (||d gen_loss / d G_L|| + 1e-4), clamped to [0, 1e4] and
    detached: the GAN gradient at the decoder's last layer is scaled to the reconstruction's."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gen = torch.autograd.grad(gen_loss, last_layer, retain_graph=True)[0]
    weight = g_rec.norm() / (g_gen.norm() + ADAPTIVE_WEIGHT_EPS)
    return weight.clamp(0.0, ADAPTIVE_WEIGHT_MAX).detach()


@dataclass(frozen=True)
class LossWeights:
    kl: float = 1e-5            # spec §5.2 (LDM uses 1e-6; a larger one shrinks the latent scale)
    adversarial: float = 0.1    # times the adaptive weight lambda, once the discriminator is on


def autoencoder_loss(model: KLVAE, images: torch.Tensor, weights: LossWeights,
                     discriminator: Optional[nn.Module] = None,
                     generator: Optional[torch.Generator] = None):
    """(scalar loss of the encoder/decoder step, the reconstruction (detached), stats dict).
    With a discriminator the hinge generator loss joins with the adaptive weight; without one
    (before the delayed start, or --no-adv) it is MSE + KL only."""
    reconstruction, mu, logvar = model(images, generator)
    rec = reconstruction_loss(reconstruction, images).mean()
    kl = kl_divergence(mu, logvar).mean()
    loss = rec + weights.kl * kl
    stats = {"rec": rec.item(), "kl": kl.item(),
             "mse": rec.item() / images[0].numel()}
    if discriminator is not None:
        gen = hinge_generator_loss(discriminator(reconstruction))
        lam = adaptive_adversarial_weight(rec, gen, model.last_decoder_layer)
        loss = loss + weights.adversarial * lam * gen
        stats.update(gen=gen.item(), adaptive_weight=lam.item())
    return loss, reconstruction.detach(), stats


def discriminator_loss(discriminator: nn.Module, images: torch.Tensor, reconstruction: torch.Tensor):
    """Hinge loss of the discriminator on real images and (detached) reconstructions."""
    return hinge_discriminator_loss(discriminator(images), discriminator(reconstruction.detach()))


# --------------------------------------------------------------------------- the latent scale

@torch.no_grad()
def latent_statistics(model: KLVAE, batches: Iterable[torch.Tensor]) -> dict:
    """Mean and standard deviation of every element of the encoder means over the batches
    (float64 sums; images in [0, 1])."""
    total, total_sq, count = 0.0, 0.0, 0
    for images in batches:
        mu, _ = model.moments(images)
        mu = mu.double()
        total += mu.sum().item()
        total_sq += mu.square().sum().item()
        count += mu.numel()
    if count == 0:
        raise ValueError("no images to compute the latent statistics on")
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    return {"mean": mean, "std": math.sqrt(var), "elements": count}


def calibrate_latent_scale(model: KLVAE, batches: Iterable[torch.Tensor]) -> dict:
    """Set model.latent_scale = 1 / std of the encoder means over `batches` (the training set),
    so that encode() gives unit-variance latents there; returns the statistics."""
    was_training = model.training
    model.eval()
    stats = latent_statistics(model, batches)
    model.train(was_training)
    if not stats["std"] > 0:
        raise ValueError("the encoder's latents have zero variance; cannot scale them")
    model.latent_scale.fill_(1.0 / stats["std"])
    return dict(stats, scale=1.0 / stats["std"])


# --------------------------------------------------------------------------- checkpoints

def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _describe(cfg: KLVAEConfig) -> dict:
    return {"k": cfg.k, "cbr": cfg.cbr, "image_shape": [cfg.image_size, cfg.image_size, cfg.image_channels]}


register_kind(KIND, KLVAE, KLVAEConfig.from_dict, config_to_dict=KLVAEConfig.to_dict, describe=_describe)


def save_vae(path, model: KLVAE, provenance: dict):
    """NAME.safetensors + NAME.json of kind "kl-vae"; refuses a model without its latent scale."""
    if not model.calibrated:
        raise VAEInputError("refusing to save a KL-VAE whose latent scale is not calibrated")
    return save_checkpoint(path, model, model.cfg, provenance, kind=KIND)


def load_vae(path) -> Tuple[KLVAE, dict]:
    """(model in eval mode, sidecar dict) of a "kl-vae" checkpoint (NAME, a path, or a shipped
    name); one CheckpointError naming the file for anything wrong, a missing file included."""
    model, _, doc = load_checkpoint(path, KIND)
    if not model.calibrated:
        raise CheckpointError(f"{path}: the KL-VAE's latent_scale is 0 (never calibrated)")
    return model, doc
