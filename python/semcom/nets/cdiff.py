"""CDiff's networks (GNU Radio-free, torch only; ../shared/papers/cdiff.md §3):

- `SemanticEncoder`: the paper's CIFAR encoder, 4 x (3x3 conv + BatchNorm + ReLU) with 64, 128,
  256, 256 channels (strides 1, 2, 2, 2: 32x32 -> 4x4), flattened, then one linear head per
  CBR (a shared trunk, the paper's adaptive-CBR encoder) giving 2 k reals; `symbols` maps them
  to k complex symbols at exactly P = 1 per symbol per image (the spec's fix of the paper's
  "unit l2-norm").
- `MirroredDecoder`: the matched autoencoder's decoder (the `cdiff-ae` baseline): linear 2k ->
  256x4x4, transposed 4x4 stride-2 convs 256 -> 256 -> 128 -> 64 (with BatchNorm + ReLU), 3x3
  conv to 3, tanh.
- `ConditionalUNet`: the conditional x0-predictor of CDiff's decoder, the paper's Appendix C
  design written for this module: a 7x7 stem, per resolution two ConvNeXt-style blocks
  (depthwise 7x7, the time embedding added, GroupNorm(1) + two 3x3 convs with GELU, a learned
  residual) and a pre-norm linear-attention residual, 4x4 stride-2 down-sampling; a bottleneck
  with full multi-head attention; the mirrored up path with skip concatenation; a final block
  and a 1x1 conv. Input: concat(x_t, condition) (3 + 3 channels; + 1 with the reliability
  plane). dim 16 (the CPU size, ~4 M parameters) by default; dim 32 is the paper's (GPU).

Condition layout (spec §1): the 2k received reals [Re y; Im y] fill the first 2k pixels of a
zeros (3, 32, 32) tensor in C-order (k = 512: exactly plane 0); `condition_image` builds it.
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.checkpoint import load_checkpoint, register_kind, save_checkpoint

IMAGE_SHAPE = (3, 32, 32)


def _check_config_fields(cls, d):
    if not isinstance(d, dict):
        raise TypeError("config must be an object")
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown config fields {sorted(unknown)}")


# --------------------------------------------------------------------------- the encoder

@dataclass(frozen=True)
class EncoderConfig:
    ks: Tuple[int, ...] = (512,)          # complex symbols per image, one head each
    widths: Tuple[int, ...] = (32, 64, 128, 32)   # CPU size; the paper's (64, 128, 256, 256)
    variational: bool = False             # the `cdiff-vae` baseline: (mu, log var) heads

    def __post_init__(self):
        if not self.ks or any(k < 1 or 2 * k > 3 * 32 * 32 for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"ks must be distinct symbol counts in 1..1536, got {self.ks}")
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ValueError(f"widths must be four positive widths, got {self.widths}")

    def to_dict(self):
        return {"ks": list(self.ks), "widths": list(self.widths), "variational": self.variational}

    @classmethod
    def from_dict(cls, d):
        _check_config_fields(cls, d)
        d = dict(d)
        for key in ("ks", "widths"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        return cls(**d)


class SemanticEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.cfg = cfg
        layers, c = [], IMAGE_SHAPE[0]
        for width, stride in zip(cfg.widths, (1, 2, 2, 2)):
            layers += [nn.Conv2d(c, width, 3, stride, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        feat = c * 4 * 4
        out = 2 if cfg.variational else 1
        self.heads = nn.ModuleDict({str(k): nn.Linear(feat, out * 2 * k) for k in cfg.ks})

    def _head(self, k: int):
        if str(k) not in self.heads:
            raise ValueError(f"this encoder has heads for k in {list(self.cfg.ks)}, not {k}")
        return self.heads[str(k)]

    def forward(self, images: torch.Tensor, k: Optional[int] = None):
        """images (N, 3, 32, 32) in [-1, 1] -> raw head output (N, 2k) (or (mu, log var))."""
        if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"the CDiff encoder takes (N, 3, 32, 32) images, got {tuple(images.shape)}")
        k = max(self.cfg.ks) if k is None else int(k)
        h = self._head(k)(self.trunk(images))
        if self.cfg.variational:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar.clamp(-30, 20)
        return h


def power_normalise(reals: torch.Tensor) -> torch.Tensor:
    """(N, 2k) reals [Re; Im] -> the same with mean |z|^2 = 1 over each image's k symbols."""
    k = reals.shape[1] // 2
    return reals * (k / reals.square().sum(1, keepdim=True).clamp_min(1e-12)).sqrt()


def soft_mask(reals: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The spec's stochastic masking (§2): keep ratio rho ~ U[0.5, 1] per image, each complex
    symbol kept with probability rho, a dropped one scaled by u ~ U(0, 0.2); then P = 1 again."""
    n, two_k = reals.shape
    k = two_k // 2
    rho = 0.5 + 0.5 * torch.rand(n, 1, generator=generator)
    keep = torch.rand(n, k, generator=generator) < rho
    scale = torch.where(keep, torch.ones(n, k), 0.2 * torch.rand(n, k, generator=generator)).to(reals)
    return power_normalise(reals * torch.cat([scale, scale], 1))


def condition_image(reals: torch.Tensor, shape: Sequence[int] = IMAGE_SHAPE) -> torch.Tensor:
    """(N, 2k) received reals -> (N, C, H, W): zero-padded to C*H*W, reshaped in C-order."""
    n, m = reals.shape
    size = int(torch.tensor(shape).prod())
    if m > size:
        raise ValueError(f"{m} reals do not fit a {tuple(shape)} condition")
    return F.pad(reals, (0, size - m)).reshape(n, *shape)


# --------------------------------------------------------------------------- the AE's decoder

@dataclass(frozen=True)
class AEDecoderConfig:
    k: int = 512
    widths: Tuple[int, ...] = EncoderConfig.widths   # the encoder's, mirrored

    def __post_init__(self):
        if not 1 <= self.k <= 1536:
            raise ValueError(f"k must be in 1..1536, got {self.k}")


class MirroredDecoder(nn.Module):
    """Linear 2k -> widths[3] x 4 x 4, transposed 4x4 stride-2 convs widths[3] -> widths[2] ->
    widths[1] -> widths[0] (BatchNorm + ReLU), a 3x3 conv to 3 channels, tanh (the paper's
    widths give its 256 -> 256 -> 128 -> 64)."""

    def __init__(self, cfg: AEDecoderConfig = AEDecoderConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.fc = nn.Linear(2 * cfg.k, w[3] * 4 * 4)
        ups, c = [], w[3]
        for width in (w[2], w[1], w[0]):
            ups += [nn.ConvTranspose2d(c, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        self.net = nn.Sequential(*ups, nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh())

    def forward(self, reals: torch.Tensor) -> torch.Tensor:
        """(N, 2k') received reals (k' <= k: zero-padded, as the CBR sweep sends fewer) -> images in [-1, 1]."""
        if reals.shape[1] < 2 * self.cfg.k:
            reals = F.pad(reals, (0, 2 * self.cfg.k - reals.shape[1]))
        return self.net(self.fc(reals).view(-1, self.cfg.widths[3], 4, 4))


# --------------------------------------------------------------------------- the conditional U-Net

@dataclass(frozen=True)
class UNetConfig:
    dim: int = 16
    mults: Tuple[int, ...] = (1, 2, 4, 4)   # CPU size; the paper's (1, 2, 4, 8) with dim 32
    in_channels: int = 6          # x_t (3) + condition (3) [+ 1 reliability plane]
    out_channels: int = 3
    heads: int = 4
    head_dim: int = 32
    convnext_mult: int = 2

    def __post_init__(self):
        if self.dim < 3 or not self.mults or min(self.mults) < 1:
            raise ValueError(f"need dim >= 3 and positive mults, got {self.dim}, {self.mults}")
        if 32 % (2 ** (len(self.mults) - 1)):
            raise ValueError(f"{len(self.mults)} resolutions do not divide 32x32")
        for name in ("in_channels", "out_channels", "heads", "head_dim", "convnext_mult"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    def to_dict(self):
        d = asdict(self)
        d["mults"] = list(self.mults)
        return d

    @classmethod
    def from_dict(cls, d):
        _check_config_fields(cls, d)
        d = dict(d)
        if "mults" in d:
            d["mults"] = tuple(int(v) for v in d["mults"])
        return cls(**d)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (N,) -> (N, dim), periods up to 10 000."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / max(1, half - 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], 1)
    return F.pad(emb, (0, dim % 2))


class ConvNeXtBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int, mult: int):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 7, padding=3, groups=c_in)
        self.time = nn.Sequential(nn.GELU(), nn.Linear(time_dim, c_in))
        self.body = nn.Sequential(nn.GroupNorm(1, c_in), nn.Conv2d(c_in, c_out * mult, 3, padding=1), nn.GELU(),
                                  nn.GroupNorm(1, c_out * mult), nn.Conv2d(c_out * mult, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, temb):
        h = self.depthwise(x) + self.time(temb)[:, :, None, None]
        return self.body(h) + self.skip(x)


class _Attention(nn.Module):
    """Pre-norm (GroupNorm(1)) residual attention; linear (softmax over keys' positions, then
    queries' features: O(HW)) or full multi-head softmax attention."""

    def __init__(self, channels: int, heads: int, head_dim: int, linear: bool):
        super().__init__()
        self.heads, self.head_dim, self.linear = heads, head_dim, linear
        inner = heads * head_dim
        self.norm = nn.GroupNorm(1, channels)
        self.qkv = nn.Conv2d(channels, 3 * inner, 1, bias=False)
        self.out = nn.Sequential(nn.Conv2d(inner, channels, 1), nn.GroupNorm(1, channels) if linear else nn.Identity())

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(n, 3, self.heads, self.head_dim, h * w).unbind(1)
        scale = self.head_dim ** -0.5
        if self.linear:
            q, k = q.softmax(dim=-2) * scale, k.softmax(dim=-1)
            context = torch.einsum("nhdp,nhep->nhde", k, v)
            o = torch.einsum("nhde,nhdp->nhep", context, q)
        else:
            attn = torch.einsum("nhdp,nhdq->nhpq", q * scale, k).softmax(dim=-1)
            o = torch.einsum("nhpq,nhdq->nhdp", attn, v)
        return x + self.out(o.reshape(n, -1, h, w))


class ConditionalUNet(nn.Module):
    def __init__(self, cfg: UNetConfig = UNetConfig()):
        super().__init__()
        self.cfg = cfg
        init_dim = cfg.dim // 3 * 2
        time_dim = 4 * cfg.dim
        dims = [init_dim] + [cfg.dim * m for m in cfg.mults]
        self.stem = nn.Conv2d(cfg.in_channels, init_dim, 7, padding=3)
        self.time = nn.Sequential(nn.Linear(cfg.dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))
        blk = lambda a, b: ConvNeXtBlock(a, b, time_dim, cfg.convnext_mult)
        att = lambda c, linear=True: _Attention(c, cfg.heads, cfg.head_dim, linear)
        last = len(cfg.mults) - 1
        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            self.down.append(nn.ModuleList([blk(a, b), blk(b, b), att(b),
                                            nn.Conv2d(b, b, 4, 2, 1) if i < last else nn.Identity()]))
        mid = dims[-1]
        self.mid = nn.ModuleList([blk(mid, mid), att(mid, linear=False), blk(mid, mid)])
        self.up = nn.ModuleList()
        for i, (a, b) in reversed(list(enumerate(zip(dims[:-1], dims[1:])))):
            out = max(a, cfg.dim)   # the first stage's output keeps `dim` channels (init_dim < dim)
            self.up.append(nn.ModuleList([blk(2 * b, out), blk(out, out), att(out),
                                          nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                        nn.Conv2d(out, out, 3, padding=1)) if i > 0 else nn.Identity()]))
        self.final = blk(cfg.dim, cfg.dim)
        self.out = nn.Conv2d(cfg.dim, cfg.out_channels, 1)
        self._dims = dims

    def forward(self, x_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 estimate from x_t (N, 3, H, W), the condition planes (N, in-3, H, W), steps t (N,)."""
        h = self.stem(torch.cat([x_t, cond], 1))
        temb = self.time(timestep_embedding(t, self.cfg.dim))
        skips = []
        for b1, b2, attn, down in self.down:
            h = attn(b2(b1(h, temb), temb))
            skips.append(h)
            h = down(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb)), temb)
        for b1, b2, attn, up in self.up:
            h = attn(b2(b1(torch.cat([h, skips.pop()], 1), temb), temb))
            h = up(h)
        return self.out(self.final(h, temb))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- whole systems

SYSTEMS = ("cdiff", "ae", "vae")


@dataclass(frozen=True)
class SystemConfig:
    """One trained system: the encoder and its decoder. `cdiff`: the conditional U-Net (kind
    "cdiff", with its CDiff schedule); `ae`: the mirrored decoder; `vae`: the variational encoder
    and the mirrored decoder (kind "cdiff-autoencoder", no schedule). `channel` is what it was
    trained through (awgn, or rayleigh MMSE-equalised); `reliability` adds the per-symbol
    reliability plane to the U-Net's condition (a departure from the paper, Rayleigh only)."""
    system: str = "cdiff"
    encoder: EncoderConfig = EncoderConfig()
    unet: Optional[UNetConfig] = UNetConfig()
    channel: str = "awgn"
    reliability: bool = False

    def __post_init__(self):
        if self.system not in SYSTEMS:
            raise ValueError(f"system must be one of {SYSTEMS}, got {self.system!r}")
        if self.channel not in ("awgn", "rayleigh"):
            raise ValueError(f"channel must be awgn or rayleigh, got {self.channel!r}")
        if (self.system == "cdiff") != (self.unet is not None):
            raise ValueError("a cdiff system has a U-Net config; ae and vae have none")
        if self.encoder.variational != (self.system == "vae"):
            raise ValueError("the encoder is variational exactly for the vae system")
        if self.system == "cdiff" and self.unet.in_channels != 6 + int(self.reliability):
            raise ValueError(f"the U-Net takes 6 input channels (+1 with reliability), got {self.unet.in_channels}")
        if self.reliability and (self.system != "cdiff" or self.channel != "rayleigh"):
            raise ValueError("the reliability plane is a cdiff option on Rayleigh only")

    @property
    def k(self) -> int:
        return max(self.encoder.ks)

    # what the inference backend's info() reads of an autoencoder's config
    image_shape = IMAGE_SHAPE
    role = "autoencoder"

    @property
    def cbr(self) -> float:
        return self.k / (3 * 32 * 32)

    @property
    def channel_type(self) -> str:
        return self.channel

    def to_dict(self):
        return {"system": self.system, "encoder": self.encoder.to_dict(),
                "unet": None if self.unet is None else self.unet.to_dict(),
                "channel": self.channel, "reliability": self.reliability}

    @classmethod
    def from_dict(cls, d):
        _check_config_fields(cls, d)
        d = dict(d)
        d["encoder"] = EncoderConfig.from_dict(d.get("encoder", {}))
        d["unet"] = None if d.get("unet") is None else UNetConfig.from_dict(d["unet"])
        return cls(**d)


class CDiffSystem(nn.Module):
    def __init__(self, cfg: SystemConfig = SystemConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = SemanticEncoder(cfg.encoder)
        self.decoder = (ConditionalUNet(cfg.unet) if cfg.system == "cdiff"
                        else MirroredDecoder(AEDecoderConfig(cfg.k, cfg.encoder.widths)))


def check_cdiff_schedule(schedule: dict):
    """The sidecar's schedule of a "cdiff" checkpoint: {"type": "cdiff-linear", "num_steps",
    "beta_start", "beta_end", "w": "t/T"} (diffusion/cdiff.py builds it, checking every delta)."""
    from ..diffusion.cdiff import CDiffSchedule
    if not isinstance(schedule, dict) or schedule.get("type") != "cdiff-linear" or schedule.get("w") != "t/T":
        raise ValueError(f"expected a cdiff-linear schedule with w = t/T, got {schedule!r}")
    return CDiffSchedule.linear(int(schedule["num_steps"]), float(schedule["beta_start"]), float(schedule["beta_end"]))


def schedule_dict(steps: int, beta_start: float, beta_end: float) -> dict:
    return {"type": "cdiff-linear", "num_steps": int(steps), "beta_start": float(beta_start),
            "beta_end": float(beta_end), "w": "t/T"}


def _describe(cfg: SystemConfig) -> dict:
    return {"k": cfg.k, "cbr": cfg.k / (3 * 32 * 32), "channel": cfg.channel, "image_shape": list(IMAGE_SHAPE)}


KIND = "cdiff"
KIND_AUTOENCODER = "cdiff-autoencoder"
register_kind(KIND, CDiffSystem, SystemConfig.from_dict, describe=_describe, check_schedule=check_cdiff_schedule)
register_kind(KIND_AUTOENCODER, CDiffSystem, SystemConfig.from_dict, describe=_describe)


def save_system(path, model: CDiffSystem, provenance: dict, schedule: Optional[dict] = None):
    kind = KIND if model.cfg.system == "cdiff" else KIND_AUTOENCODER
    return save_checkpoint(path, model, model.cfg, provenance, kind=kind, schedule=schedule)


def load_system(path):
    """(CDiffSystem in eval mode, its CDiffSchedule or None, sidecar dict) of a "cdiff" or
    "cdiff-autoencoder" checkpoint; one CheckpointError naming the file for anything wrong."""
    model, _, doc = load_checkpoint(path)
    if doc["kind"] not in (KIND, KIND_AUTOENCODER):
        from ..core.checkpoint import CheckpointError
        raise CheckpointError(f"{path}: a {doc['kind']!r} checkpoint, not a CDiff system")
    schedule = check_cdiff_schedule(doc["schedule"]) if doc["kind"] == KIND else None
    return model, schedule, doc


# --------------------------------------------------------------------------- training pieces

def channel_reals(reals: torch.Tensor, snr_db: torch.Tensor, channel: str,
                  generator: Optional[torch.Generator] = None):
    """Pass unit-power [Re; Im] reals (N, 2k) through the training channel at a per-image SNR
    (N,) dB: AWGN y = z + n, n ~ CN(0, sigma^2), sigma^2 = 10^(-SNR/10); Rayleigh h ~ CN(0, 1)
    per symbol, then the MMSE equaliser with known h and sigma^2 (spec §5.9). Returns (received
    reals (N, 2k), reliability (N, k) = |h|^2 / (|h|^2 + sigma^2) in [0, 1], or None on AWGN)."""
    n, two_k = reals.shape
    k = two_k // 2
    var = (10 ** (-snr_db.to(reals) / 10)).view(n, 1)
    noise = torch.randn(n, two_k, generator=generator).to(reals) * (var / 2).sqrt()
    if channel == "awgn":
        return reals + noise, None
    if channel != "rayleigh":
        raise ValueError(f"channel must be awgn or rayleigh, got {channel!r}")
    h = torch.randn(n, two_k, generator=generator).to(reals) * 0.5 ** 0.5
    hr, hi = h[:, :k], h[:, k:]
    zr, zi = reals[:, :k], reals[:, k:]
    yr = hr * zr - hi * zi + noise[:, :k]
    yi = hr * zi + hi * zr + noise[:, k:]
    gain = hr.square() + hi.square()
    denom = gain + var
    eq = torch.cat([(hr * yr + hi * yi) / denom, (hr * yi - hi * yr) / denom], 1)   # conj(h) y / (|h|^2 + s2)
    return eq, gain / denom


def condition_planes(received: torch.Tensor, reliability: Optional[torch.Tensor], with_reliability: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(y_tilde (N, 3, 32, 32): the bridge's end point, cond: the U-Net's condition planes)."""
    y = condition_image(received)
    if not with_reliability:
        return y, y
    if reliability is None:
        raise ValueError("this model takes the reliability plane: Rayleigh with known h and SNR")
    # each symbol's reliability at the pixels of its Re and Im parts (one plane: k <= 512)
    rel = condition_image(torch.cat([reliability, reliability], 1), (1, 32, 32))
    return y, torch.cat([y, rel], 1)


def system_loss(model: CDiffSystem, schedule, x0: torch.Tensor, snr_db: torch.Tensor, k: int,
                mask: bool, generator: Optional[torch.Generator] = None):
    """The training loss of one batch of images x0 in [-1, 1] (the encoder and decoder jointly,
    channel in the loop): cdiff the x0-MSE of eq. 6 at t ~ U{1..T}; ae the reconstruction MSE;
    vae the reconstruction MSE + the mean-per-element KL (equal weights, spec §3). Returns
    (loss, {"mse": ..., "kl": ...})."""
    cfg = model.cfg
    if cfg.system == "vae":
        mu, logvar = model.encoder(x0, k)
        reals = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator).to(mu)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).mean()
    else:
        reals, kl = model.encoder(x0, k), None
    reals = soft_mask(reals, generator) if mask else power_normalise(reals)
    received, reliability = channel_reals(reals, snr_db, cfg.channel, generator)
    if cfg.system == "cdiff":
        y, cond = condition_planes(received, reliability, cfg.reliability)
        t = torch.randint(1, schedule.num_steps + 1, (len(x0),), generator=generator)
        eps = torch.randn(x0.shape, generator=generator).to(x0)
        x_t = schedule.q_sample(x0, y, t, eps)
        mse = (model.decoder(x_t, cond, t) - x0).square().mean()
    else:
        mse = (model.decoder(received) - x0).square().mean()
    loss = mse if kl is None else mse + kl
    return loss, {"mse": mse.item(), "kl": None if kl is None else kl.item()}


@torch.no_grad()
def decode(model: CDiffSystem, schedule, received: torch.Tensor, reliability: Optional[torch.Tensor] = None,
           steps: Optional[int] = None, sampler: str = "ddpm", generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Received reals (N, 2k') -> images in [-1, 1]: the AE/VAE decoder, or CDiff's reverse chain
    (`steps` of T, "ddpm" or "ddim"; NFE = steps)."""
    if model.cfg.system != "cdiff":
        return model.decoder(received).clamp(-1, 1)
    from ..diffusion.cdiff import sample
    y, cond = condition_planes(received, reliability, model.cfg.reliability)
    extra = cond[:, 3:]

    def predict(x_t, y_, t):
        return model.decoder(x_t, torch.cat([y_, extra], 1), torch.full((len(x_t),), t, dtype=torch.long,
                                                                         device=x_t.device))

    return sample(schedule, predict, y, steps, sampler, generator).clamp(-1, 1)


@torch.no_grad()
def encode_images(model: CDiffSystem, x: torch.Tensor, k: Optional[int] = None) -> torch.Tensor:
    """Images in [0, 1] (N, 3, 32, 32) -> the encoder's reals (N, 2k) of head k (default the
    largest), before power normalisation; the VAE sends its mean."""
    out = model.encoder(x * 2 - 1, k)
    return out[0] if isinstance(out, tuple) else out
