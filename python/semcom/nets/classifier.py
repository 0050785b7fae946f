"""The module's small CIFAR-10 classifier (GNU Radio-free, torch only): one network serves the
offline semantic metrics (core/semantic.py: agreement accuracy, a feature distance and a
Fréchet distance in its features, all labelled as module-specific proxies, never LPIPS or FID)
and the patch importance of JSCNA-AD (its class token's self-attention over the 8x8 patches).

    images (N, 3, 32, 32) in [0, 1] -> logits (N, 10)

Architecture: a hybrid ViT. A convolutional stem (conv-BN-GELU stages at 32x32, 16x16 and
8x8; early convolutions make a transformer trainable on 30 000 images in minutes on a CPU)
turns the image into 8x8 = 64 patch tokens, one per 4x4 pixel patch (the KL-VAE latent's grid:
the same patch a latent token covers), plus a class token and learned position embeddings;
then pre-norm transformer blocks (multi-head self-attention + MLP) and a linear head on the
class token.

What the metrics read (`forward_features`):
- `maps`: the stem's three activation maps and the patch tokens after each block as (N, C, 8, 8)
  maps: the layers of the LPIPS-style feature distance;
- `embedding`: the class token after the final LayerNorm (N, dim): the Fréchet features;
- `attention`: the last block's class-token attention over the 64 patches, mean over heads
  (N, 8, 8), each map summing to 1 (the class token's attention to itself is dropped and the
  rest renormalised); `attention_weights`: that block's whole attention (N, heads, 65, 65), from
  which diffusion/jscna.py's `patch_importance` takes JSCNA-AD's importance (spec eq. 10).

Inputs are checked (a wrong shape or range is one ValueError, not a broadcast); the CIFAR-10
per-channel mean/std normalisation is part of the model.

The checkpoint kind is "classifier" (core/checkpoint.py loads it; `load_classifier` is the
shortcut).
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Dict, Tuple

import torch
import torch.nn as nn

from ..core.checkpoint import load_checkpoint, register_kind, save_checkpoint

KIND = "classifier"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 32
    image_channels: int = 3
    classes: int = 10
    stem_widths: Tuple[int, int, int] = (32, 64, 128)  # at H, H/2, H/4; the last is the token dim
    depth: int = 2         # transformer blocks
    heads: int = 4
    mlp_ratio: int = 2
    dropout: float = 0.1   # before the head (training only)

    def __post_init__(self):
        if self.image_size % 4 or self.image_size < 8:
            raise ValueError(f"image_size must be a multiple of 4 and >= 8, got {self.image_size}")
        if len(self.stem_widths) != 3 or min(self.stem_widths) < 1:
            raise ValueError(f"stem_widths must be three positive widths, got {self.stem_widths}")
        if self.stem_widths[-1] % self.heads:
            raise ValueError(f"the token dim {self.stem_widths[-1]} must be divisible by heads {self.heads}")
        for name in ("image_channels", "depth", "heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.classes < 2:
            raise ValueError(f"classes must be >= 2, got {self.classes}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def dim(self) -> int:
        return self.stem_widths[-1]

    @property
    def grid(self) -> int:
        return self.image_size // 4

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stem_widths"] = list(self.stem_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        if not isinstance(d, dict):
            raise TypeError("config must be an object")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        d = dict(d)
        if "stem_widths" in d:
            d["stem_widths"] = tuple(int(w) for w in d["stem_widths"])
        return cls(**d)


def _conv(c_in, c_out, stride):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.GELU())


class Block(nn.Module):
    """Pre-norm transformer block; `forward` also returns the attention weights (N, heads, T, T)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.norm2(x)), attn


class SemanticClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        w1, w2, w3 = cfg.stem_widths
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN[:cfg.image_channels]
                                                  if cfg.image_channels == 3 else [0.5] * cfg.image_channels)
                             .view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD[:cfg.image_channels]
                                                 if cfg.image_channels == 3 else [0.25] * cfg.image_channels)
                             .view(1, -1, 1, 1))
        self.stem = nn.ModuleList([_conv(cfg.image_channels, w1, 1),
                                   nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2, 1)),
                                   _conv(w2, w3, 2)])
        self.cls = nn.Parameter(torch.zeros(1, 1, w3))
        self.pos = nn.Parameter(torch.randn(1, cfg.grid ** 2 + 1, w3) * 0.02)
        self.blocks = nn.ModuleList([Block(w3, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(w3)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(w3, cfg.classes)

    def _check(self, images: torch.Tensor):
        c, s = self.cfg.image_channels, self.cfg.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (c, s, s):
            raise ValueError(f"the classifier takes (N, {c}, {s}, {s}) images, got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"the classifier takes float images in [0, 1], got dtype {images.dtype}")

    def forward_features(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        self._check(images)
        h = (images - self.mean) / self.std
        maps = []
        for stage in self.stem:
            h = stage(h)
            maps.append(h)
        n, d, g, _ = h.shape
        x = torch.cat([self.cls.expand(n, -1, -1), h.flatten(2).transpose(1, 2)], 1) + self.pos
        attn = None
        for block in self.blocks:
            x, attn = block(x)
            maps.append(x[:, 1:].transpose(1, 2).reshape(n, d, g, g))
        cls_attn = attn[:, :, 0, 1:].mean(1)  # class token -> patches, mean over heads
        cls_attn = cls_attn / cls_attn.sum(-1, keepdim=True)
        return {"maps": maps, "embedding": self.norm(x[:, 0]), "attention": cls_attn.reshape(n, g, g),
                "attention_weights": attn}

    def logits_from(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.drop(features["embedding"]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from(self.forward_features(images))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_classifier(path, model: SemanticClassifier, provenance: dict):
    return save_checkpoint(path, model, model.cfg, provenance, kind=KIND)


def load_classifier(path):
    """(model in eval mode, sidecar dict) of a "classifier" checkpoint (NAME, a path or a shipped
    name); one CheckpointError naming the file for anything wrong, a missing file included."""
    model, _, doc = load_checkpoint(path, KIND)
    return model, doc


register_kind(KIND, SemanticClassifier, ClassifierConfig.from_dict,
              describe=lambda cfg: {"image_shape": [cfg.image_channels, cfg.image_size, cfg.image_size]})
