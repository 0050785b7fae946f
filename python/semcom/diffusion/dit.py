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


PRIOR_FORMAT = "semcom-prior/1"


def save_prior(path, model: LatentDiT, meta: dict):
    """NAME.safetensors + NAME.json (config, provenance); no pickle."""
    from pathlib import Path

    from safetensors.torch import save_file

    from ..core.checkpoint import checkpoint_paths
    weights, sidecar = checkpoint_paths(Path(path))
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights))
    doc = {"format": PRIOR_FORMAT, "config": asdict(model.cfg), "weights_file": weights.name,
           "parameters": sum(p.numel() for p in model.parameters()), "meta": meta}
    sidecar.write_text(json.dumps(doc, indent=1) + "\n")
    return weights, sidecar


def load_prior(path):
    """(model in eval mode, sidecar dict); one CheckpointError naming the file otherwise."""
    from pathlib import Path

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..core.checkpoint import CheckpointError, checkpoint_paths
    weights, sidecar = checkpoint_paths(Path(path))
    for f in (weights, sidecar):
        if not f.is_file():
            raise CheckpointError(f"{f}: prior checkpoint file not found")
    try:
        doc = json.loads(sidecar.read_text())
        if doc.get("format") != PRIOR_FORMAT:
            raise ValueError(f"format {doc.get('format')!r} is not {PRIOR_FORMAT!r}")
        cfg = DiTConfig(**doc["config"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{sidecar}: not a prior sidecar ({exc})") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: truncated or corrupt safetensors file ({exc})") from None
    model = LatentDiT(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights}: weights do not match the config ({str(exc).splitlines()[0]})") from None
    return model.eval(), doc
