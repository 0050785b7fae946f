"""A small diffusion transformer (DiT) over a JSCC latent, for the ICDM priors.

The latent x (N, 2k) = [Re z; Im z] of the power-normalised symbols is the encoder's feature
map flattened channel-major, (C, H, W) with C = 2k / (H W); each spatial position is one
token of C values. Timestep conditioning by adaLN-Zero (Peebles & Xie, 2023), a learned
positional embedding, eps prediction. Small enough to train on two CPU cores.

A prior may have a Gaussian base (`DiTConfig.base`, apps/train_prior.py --base gaussian):
    eps(x_t, t) = eps_G(x_t, t) + r_theta(x_t, t),
eps_G the exact noise prediction of the full-covariance Gaussian fitted to the same training
latents (diffusion/gaussian.py, a "gaussian-fit" checkpoint) and r_theta the DiT, whose output
layer starts at zero: at initialisation the prior IS the fitted Gaussian, and training can only
add what the Gaussian misses. The base is not copied into the prior's weights: the config names
it (`{"kind": "gaussian-fit", "name": ..., "weights_sha256": ..., "scale": ...}`) and the loader
loads that fit (beside the prior, else the shipped one) and refuses it when its SHA-256 is not
the one the prior was trained on. Priors without a base are the plain DiT, as before.
"""

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

# core never imports diffusion; this module registers its checkpoint kind with core's loader,
# which imports it on demand when it meets a "dit-prior" sidecar.
from ..core.checkpoint import CHECKPOINT_DIR, CheckpointError, load_checkpoint, register_kind, save_checkpoint
from .gaussian import KIND as GAUSSIAN_KIND
from .gaussian import gaussian_eps
from .schedule import VPSchedule

BASE_FIELDS = ("kind", "name", "weights_sha256", "scale")


@dataclass
class DiTConfig:
    latent_dim: int = 1024     # 2k
    grid: int = 8              # H = W of the latent map (32x32 images -> 8x8)
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    # The Gaussian base (None: a plain DiT): {"kind": "gaussian-fit", "name": checkpoint stem,
    # "weights_sha256": of its weights, "scale": physical latent = scale * diffusion latent}
    base: Optional[dict] = None

    def __post_init__(self):
        if self.base is not None:
            check_base(self.base)
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

    def forward(self, h, c, padding=None):
        """`padding` (N, M) bool: True where a token is padding (attended by none)."""
        s1, b1, g1, s2, b2, g2 = self.ada(c)[:, None].chunk(6, dim=-1)
        y = self.norm1(h) * (1 + s1) + b1
        h = h + g1 * self.attn(y, y, y, key_padding_mask=padding, need_weights=False)[0]
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
        residual = self.residual(x_t, t)
        if self.cfg.base is None:
            return residual
        return self.base_eps(x_t, t) + residual

    def residual(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's output r_theta(x_t, t) (the whole eps of a prior without a base)."""
        c = self.t_mlp(timestep_embedding(t, self.cfg.width).to(x_t.dtype))
        h = self.embed(self.to_tokens(x_t)) + self.pos
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.out_ada(c)[:, None].chunk(2, dim=-1)
        return self.from_tokens(self.out(self.norm(h) * (1 + scale) + shift))

    def residual_tokens(self, x_t: torch.Tensor, t: torch.Tensor, index: torch.Tensor,
                        valid: torch.Tensor) -> torch.Tensor:
        """The network's output on a subset of tokens only, attending among themselves: `index`
        (N, M) long, the tokens of each image (rows padded where `valid` (N, M) is False);
        returns (N, M, token_dim), zeros at padding. The other tokens are never computed: the
        cost is that of an M-token sequence (JSCNA-AD's masked reverse process)."""
        n = x_t.shape[0]
        if index.shape != valid.shape or index.ndim != 2 or index.shape[0] != n:
            raise ValueError(f"index and valid must be (N, M) of one shape, got {tuple(index.shape)}, {tuple(valid.shape)}")
        if not bool(valid.any(1).all()):
            raise ValueError("every image needs at least one valid token")
        index = torch.where(valid, index, torch.zeros_like(index))
        c = self.t_mlp(timestep_embedding(t, self.cfg.width).to(x_t.dtype))
        tokens = self.to_tokens(x_t).gather(1, index[..., None].expand(-1, -1, self.cfg.token_dim))
        h = self.embed(tokens) + self.pos[0][index]
        for block in self.blocks:
            h = block(h, c, ~valid)
        shift, scale = self.out_ada(c)[:, None].chunk(2, dim=-1)
        return torch.where(valid[..., None], self.out(self.norm(h) * (1 + scale) + shift), 0.0)

    # ---- the Gaussian base
    @property
    def base_attached(self) -> bool:
        return hasattr(self, "base_vectors")

    def attach_base(self, fit, schedule: VPSchedule):
        """Attach the fitted Gaussian `fit` (diffusion.gaussian.FittedGaussian, physical domain)
        and the noise schedule the prior runs on; its eigendecomposition is kept (float64,
        non-persistent buffers: not part of the prior's weights, moved by .to(device)). The
        loader does this from the config; training does it by hand."""
        if self.cfg.base is None:
            raise ValueError("this prior has no Gaussian base (DiTConfig.base is None)")
        if fit.cfg.dim != self.cfg.latent_dim:
            raise ValueError(f"Gaussian base of dimension {fit.cfg.dim} for a prior of dimension {self.cfg.latent_dim}")
        values, vectors = fit.eigh()
        device = self.pos.device
        self.register_buffer("base_mean", fit.mean.double().to(device), persistent=False)
        self.register_buffer("base_values", values.double().to(device), persistent=False)
        self.register_buffer("base_vectors", vectors.double().to(device), persistent=False)
        self.register_buffer("base_abar", schedule.alphas_cumprod.double().to(device), persistent=False)
        return self

    def base_eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """The Gaussian base's exact eps at steps t (a number or (N,)): computed exactly as
        FittedGaussian.eps computes it (one step for the batch -> the very same numbers)."""
        if not self.base_attached:
            raise RuntimeError("the prior's Gaussian base is not attached: load the prior with "
                               "load_prior/load_checkpoint, or call attach_base(fit, schedule)")
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        scale = float(self.cfg.base["scale"])
        if t.numel() and bool((t == t[0]).all()):
            abar = self.base_abar[int(t[0])].item()   # as the gaussian-full prior option does
        else:
            abar = self.base_abar[t.long()]
        return gaussian_eps(x_t, abar, scale, self.base_mean, self.base_values, self.base_vectors)


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


def check_base(base) -> dict:
    """A DiTConfig.base, checked: ValueError naming what is wrong."""
    if not isinstance(base, dict) or set(base) != set(BASE_FIELDS):
        raise ValueError(f"base must be an object with exactly the fields {list(BASE_FIELDS)}, got {base!r}")
    if base["kind"] != GAUSSIAN_KIND:
        raise ValueError(f"base kind must be {GAUSSIAN_KIND!r}, got {base['kind']!r}")
    name = base["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise ValueError(f"base name must be a checkpoint name (no directory), got {name!r}")
    sha = base["weights_sha256"]
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError(f"base weights_sha256 must be 64 hex digits, got {sha!r}")
    scale = base["scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"base scale must be a finite number > 0, got {scale!r}")
    return base


def gaussian_base(name: str, path, scale: float) -> dict:
    """The DiTConfig.base naming the fitted Gaussian checkpoint at `path` (its stem `name`)."""
    from ..core.checkpoint import read_sidecar
    doc = read_sidecar(path, GAUSSIAN_KIND)
    return check_base({"kind": GAUSSIAN_KIND, "name": name, "weights_sha256": doc["weights_sha256"],
                       "scale": float(scale)})


def base_path(name: str, beside) -> Path:
    """Where the Gaussian base `name` of a prior stored at `beside` (its weights file) is: beside
    the prior if there, else among the shipped checkpoints."""
    for directory in (Path(beside).parent, CHECKPOINT_DIR):
        if (directory / f"{name}.safetensors").is_file():
            return directory / name
    return CHECKPOINT_DIR / name


def _link(model: LatentDiT, cfg: DiTConfig, doc: dict, weights: Path):
    """After loading: attach the Gaussian base the config names, refusing a fit whose SHA-256
    is not the one the prior was trained on (one CheckpointError)."""
    if cfg.base is None:
        return
    name, want = cfg.base["name"], cfg.base["weights_sha256"]
    path = base_path(name, weights)
    sidecar = Path(weights).with_suffix(".json")
    command = (doc.get("provenance") or {}).get("training_command", "apps/train_prior.py")
    try:
        fit, _, fit_doc = load_checkpoint(path, GAUSSIAN_KIND)
    except CheckpointError as exc:
        raise CheckpointError(f"{sidecar}: cannot load the prior's Gaussian base {name!r} ({exc})") from None
    if fit_doc["weights_sha256"] != want:
        raise CheckpointError(
            f"{sidecar}: the prior's Gaussian base {path}.safetensors has SHA-256 {fit_doc['weights_sha256']}, "
            f"not the {want} the prior was trained on (the fit was redone since); retrain the prior "
            f"(`{command}`) or restore that fit")
    model.attach_base(fit, schedule_from_data(doc["schedule"]))


register_kind(PRIOR_KIND, LatentDiT, _parse_config, config_to_dict=asdict, describe=_describe,
              check_schedule=schedule_from_data, link=_link)


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
