"""A small diffusion transformer (DiT) over a JSCC latent, for the ICDM priors.

The latent x (N, 2k) = [Re z; Im z] of the power-normalised symbols is the encoder's feature
map flattened channel-major, (C, H, W) with C = 2k / (H W); each spatial position is one
token of C values. Timestep conditioning by adaLN-Zero (Peebles & Xie, 2023), a learned
positional embedding, eps prediction. Small enough to train on two CPU cores.
"""

import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

# core never imports diffusion; this module registers its checkpoint kind with core's loader,
# which imports it on demand when it meets a "dit-prior" sidecar.
from ..core.checkpoint import load_checkpoint, register_kind, save_checkpoint
from .schedule import VPSchedule


@dataclass
class DiTConfig:
    latent_dim: int = 1024     # 2k
    grid: int = 8              # H = W of the latent map (32x32 images -> 8x8)
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0

    def __post_init__(self):
        if self.grid < 1 or self.latent_dim % (self.grid * self.grid):
            raise ValueError(f"latent_dim {self.latent_dim} is not a multiple of grid^2 = {self.grid ** 2}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")

    @property
    def tokens(self) -> int:
        return self.grid * self.grid

    @property
    def token_dim(self) -> int:
        return self.latent_dim // self.tokens

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class DiTBlock(nn.Module):
    def __init__(self, width, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)  # adaLN-Zero: every block starts as the identity
        nn.init.zeros_(self.ada.bias)

    def forward(self, h, c):
        s1, b1, g1, s2, b2, g2 = self.ada(c)[:, None].chunk(6, dim=-1)
        y = self.norm1(h) * (1 + s1) + b1
        h = h + g1 * self.attn(y, y, y, need_weights=False)[0]
        y = self.norm2(h) * (1 + s2) + b2
        return h + g2 * self.mlp(y)


class LatentDiT(nn.Module):
    """eps_theta(x_t, t) for latents x_t of shape (N, latent_dim)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.token_dim, cfg.width)
        self.pos = nn.Parameter(torch.zeros(1, cfg.tokens, cfg.width))
        nn.init.normal_(self.pos, std=0.02)
        self.t_mlp = nn.Sequential(nn.Linear(cfg.width, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
        self.blocks = nn.ModuleList(DiTBlock(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.out_ada = nn.Linear(cfg.width, 2 * cfg.width)
        self.out = nn.Linear(cfg.width, cfg.token_dim)
        for layer in (self.out_ada, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def to_tokens(self, x):   # (N, C*H*W) channel-major -> (N, H*W, C)
        n = x.shape[0]
        return x.reshape(n, self.cfg.token_dim, self.cfg.tokens).transpose(1, 2)

    def from_tokens(self, h):
        return h.transpose(1, 2).reshape(h.shape[0], -1)

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        if x_t.ndim != 2 or x_t.shape[1] != self.cfg.latent_dim:
            raise ValueError(f"expected latents (N, {self.cfg.latent_dim}), got {tuple(x_t.shape)}")
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        c = self.t_mlp(timestep_embedding(t, self.cfg.width).to(x_t.dtype))
        h = self.embed(self.to_tokens(x_t)) + self.pos
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.out_ada(c)[:, None].chunk(2, dim=-1)
        return self.from_tokens(self.out(self.norm(h) * (1 + scale) + shift))


def eps_loss(model: LatentDiT, schedule, x0: torch.Tensor, generator=None) -> torch.Tensor:
    """The eps-prediction loss at uniformly drawn steps: E ||eps - eps_theta(x_t, t)||^2."""
    t = torch.randint(0, schedule.num_steps, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    x_t = schedule.q_sample(x0, t, eps)
    return (model(x_t, t) - eps).square().mean()


# ------------------------------------------------------------------ checkpoints
# A prior is a checkpoint of kind "dit-prior" in the module's one format (core/checkpoint.py):
# config = DiTConfig, schedule = the noise schedule it was trained with, as data.

PRIOR_KIND = "dit-prior"
# How every shipped prior was trained (apps/train_prior.py): DDPM's linear betas.
LINEAR_SCHEDULE = {"type": "vp-linear", "beta_start": 1e-4, "beta_end": 0.02, "num_steps": 1000}
_SCHEDULE_FIELDS = {"vp-linear": ("beta_start", "beta_end", "num_steps"),
                    "vp-cosine": ("s", "max_beta", "num_steps")}


def schedule_from_data(data: dict) -> VPSchedule:
    """The VPSchedule a checkpoint's "schedule" field describes: {"type": "vp-linear",
    "beta_start", "beta_end", "num_steps"} (VPSchedule.linear) or {"type": "vp-cosine", "s",
    "max_beta", "num_steps"} (VPSchedule.cosine). ValueError for anything else."""
    if not isinstance(data, dict):
        raise ValueError(f"a noise schedule is an object with a 'type', got {data!r}")
    kind = data.get("type")
    if kind not in _SCHEDULE_FIELDS:
        raise ValueError(f"unknown noise schedule type {kind!r} (known: {', '.join(_SCHEDULE_FIELDS)})")
    want = set(_SCHEDULE_FIELDS[kind]) | {"type"}
    if set(data) != want:
        raise ValueError(f"a {kind!r} schedule has exactly the fields {sorted(want)}, got {sorted(data)}")
    steps = data["num_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {steps!r}")
    values = {f: data[f] for f in _SCHEDULE_FIELDS[kind] if f != "num_steps"}
    for f, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{f} must be a finite number >= 0, got {v!r}")
    if kind == "vp-linear":
        if not 0 < values["beta_start"] <= values["beta_end"] < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {values}")
        return VPSchedule.linear(steps, float(values["beta_start"]), float(values["beta_end"]))
    if not 0 < values["max_beta"] < 1:
        raise ValueError(f"need 0 < max_beta < 1, got {values['max_beta']}")
    return VPSchedule.cosine(steps, float(values["s"]), float(values["max_beta"]))


def _parse_config(d: dict) -> DiTConfig:
    if not isinstance(d, dict):
        raise ValueError(f"config must be a JSON object, got {type(d).__name__}")
    return DiTConfig(**d)


def _describe(cfg: DiTConfig) -> dict:
    return {"k": cfg.latent_dim // 2}


register_kind(PRIOR_KIND, LatentDiT, _parse_config, config_to_dict=asdict, describe=_describe,
              check_schedule=schedule_from_data)


def save_prior(path, model: LatentDiT, meta: dict, schedule: dict = None):
    """NAME.safetensors + NAME.json of kind "dit-prior" (config, schedule as data - default
    LINEAR_SCHEDULE - and provenance `meta`); no pickle, both written atomically."""
    info = {key: meta[key] for key in ("role", "channel") if key in (meta or {})}
    return save_checkpoint(path, model, model.cfg, meta, kind=PRIOR_KIND,
                           schedule=dict(LINEAR_SCHEDULE) if schedule is None else schedule, info=info)


def load_prior(path):
    """(model in eval mode, sidecar dict); one CheckpointError naming the file otherwise. The
    schedule it was trained with: schedule_from_data(doc["schedule"])."""
    model, _, doc = load_checkpoint(path, PRIOR_KIND)
    return model, doc
