"""Image datasets from .npz files (GNU Radio-free, numpy + torch).

An .npz holds `images` (N, H, W, C) uint8 in [0, 255] and optionally `labels` (N,).
Named sets resolve against a data directory (default: $SEMCOM_DATA, else ../shared/data
next to the repository, i.e. the development copies):

    cifar10_train   batches 1+2+3 (30,000)        cifar10_train_batch{1,2,3} (10,000 each)
    cifar10_test    official test set (10,000)    mnist_train / mnist_test

A spec is either a name above, `npz:PATH`, or a path ending in `.npz`. A `+` joins specs
(`cifar10_train_batch1+cifar10_train_batch2`), and `[a:b]` after a spec takes a slice
(`cifar10_test[:1000]`).
"""

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch


class DataError(ValueError):
    """A data file is missing or does not hold images in the expected layout."""


# Named sets: name -> file stems, concatenated in this order.
NAMED_SETS = {
    "cifar10_train": ("cifar10_train_batch1", "cifar10_train_batch2", "cifar10_train_batch3"),
    "cifar10_train_batch1": ("cifar10_train_batch1",),
    "cifar10_train_batch2": ("cifar10_train_batch2",),
    "cifar10_train_batch3": ("cifar10_train_batch3",),
    "cifar10_test": ("cifar10_test",),
    "mnist_train": ("mnist_train",),
    "mnist_test": ("mnist_test",),
    "fashion_mnist_test": ("fashion_mnist_test",),
}


def default_data_dir() -> Path:
    """$SEMCOM_DATA if set, else the development copies in ../shared/data beside the
    repository: found from the source tree, or from a venv inside the repository."""
    env = os.environ.get("SEMCOM_DATA")
    if env:
        return Path(env)
    # <repo>/python/semcom/core/data.py, or <repo>/.venv/lib/.../gnuradio/semcom/core/data.py
    candidates = [Path(__file__).resolve().parents[3].parent / "shared" / "data",
                  Path(sys.prefix).resolve().parent.parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[1]  # named in the error: beside the repository that holds the venv


@dataclass
class ImageSet:
    images: np.ndarray            # (N, H, W, C) uint8
    labels: Optional[np.ndarray]  # (N,) int64 or None
    files: List[str]              # the .npz files read, in order

    def __len__(self):
        return len(self.images)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, h, w, c = self.images.shape
        return (c, h, w)

    def tensor(self, start: int = 0, stop: Optional[int] = None) -> torch.Tensor:
        """Float NCHW tensor in [0, 1] of images[start:stop]."""
        return to_tensor(self.images[start:stop])


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC (or HWC) -> float32 NCHW (or CHW) in [0, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(f"images must be uint8, got {images.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return t.movedim(-1, -3).contiguous()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float NCHW in [0, 1] -> uint8 NHWC (rounded, clipped)."""
    t = images.detach().clamp(0, 1).mul(255.0).round().to(torch.uint8)
    return t.movedim(-3, -1).contiguous().numpy()


def load_npz(path: Union[str, Path]) -> ImageSet:
    """Read one .npz with `images` (N, H, W, C) uint8 and optional `labels` (N,)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        with np.load(path, allow_pickle=False) as d:
            if "images" not in d.files:
                raise DataError(f"{path}: no 'images' array (has {sorted(d.files)})")
            images = d["images"]
            labels = d["labels"] if "labels" in d.files else None
    except DataError:
        raise
    except Exception as exc:  # zip/format errors
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    if images.dtype != np.uint8:
        raise DataError(f"{path}: 'images' must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or min(images.shape[1:3]) < 1:
        raise DataError(f"{path}: 'images' must be (N, H, W, C) with C in (1, 3), "
                        f"got shape {images.shape}")
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64)
        if labels.shape != (images.shape[0],):
            raise DataError(f"{path}: 'labels' shape {labels.shape} does not match "
                            f"{images.shape[0]} images")
    return ImageSet(images=images, labels=labels, files=[str(path)])


_SLICE = re.compile(r"^(?P<base>.*?)\[(?P<a>-?\d*):(?P<b>-?\d*)\]$")


def _resolve(spec: str, data_dir: Path) -> Tuple[List[Path], slice]:
    spec = spec.strip()
    sl = slice(None)
    m = _SLICE.match(spec)
    if m:
        spec = m.group("base")
        sl = slice(int(m.group("a")) if m.group("a") else None,
                   int(m.group("b")) if m.group("b") else None)
    if spec.startswith("npz:"):
        return [Path(spec[4:])], sl
    if spec.endswith(".npz"):
        return [Path(spec)], sl
    if spec in NAMED_SETS:
        return [data_dir / f"{stem}.npz" for stem in NAMED_SETS[spec]], sl
    raise DataError(f"unknown dataset {spec!r}: expected one of {sorted(NAMED_SETS)}, "
                    "'npz:PATH' or a path ending in .npz")


def load_images(spec: Union[str, Sequence[str]], data_dir: Optional[Union[str, Path]] = None
                ) -> ImageSet:
    """Load a named set, `npz:PATH`, a .npz path, or several joined by '+' (or a list)."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    specs = spec.split("+") if isinstance(spec, str) else list(spec)
    if not specs or any(not s.strip() for s in specs):
        raise DataError(f"malformed dataset spec {spec!r}")
    parts = []
    for s in specs:
        paths, sl = _resolve(s, data_dir)
        sets = [load_npz(p) for p in paths]
        part = _concat(sets) if len(sets) > 1 else sets[0]
        if sl != slice(None):
            part = ImageSet(part.images[sl],
                            None if part.labels is None else part.labels[sl], part.files)
        parts.append(part)
    out = _concat(parts) if len(parts) > 1 else parts[0]
    if len(out) == 0:
        raise DataError(f"dataset {spec!r} is empty")
    return out


def load_checked_sets(specs: dict, data_dir=None, image_shape=None, labelled: bool = False) -> dict:
    """{role: ImageSet} of a training app's sets ({role: spec}); one DataError naming the role
    for a set that does not load, is not of `image_shape` (H, W, C), or (`labelled`) has no labels."""
    out = {}
    for role, spec in specs.items():
        s = load_images(spec, data_dir)
        if labelled and s.labels is None:
            raise DataError(f"the {role} set {spec!r} has no labels")
        if image_shape is not None and tuple(s.images.shape[1:]) != tuple(image_shape):
            raise DataError(f"the {role} images ({spec}) are {s.images.shape[1:]}, expected {tuple(image_shape)}")
        out[role] = s
    return out


def _concat(sets: List[ImageSet]) -> ImageSet:
    shapes = {s.images.shape[1:] for s in sets}
    if len(shapes) != 1:
        raise DataError(f"cannot join image sets of different shapes {sorted(shapes)} "
                        f"({[f for s in sets for f in s.files]})")
    labels = None
    if all(s.labels is not None for s in sets):
        labels = np.concatenate([s.labels for s in sets])
    return ImageSet(images=np.concatenate([s.images for s in sets]), labels=labels,
                    files=[f for s in sets for f in s.files])
