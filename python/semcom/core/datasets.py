"""Dataset specs used by apps and the image source (GNU Radio-free).

    sample         the 32 CIFAR-10 test images shipped with the module (offline demo)
    cifar10        CIFAR-10 test set: ../shared/data (or $SEMCOM_DATA) when present, else
                   torchvision's download into ~/.cache/semcom
    mnist          MNIST test set, likewise
    npz:PATH       an .npz with `images` (N, H, W, C) uint8
    folder:PATH    every .png/.jpg/.jpeg/.bmp in a folder (sorted by name), all one size
    NAME           a named set of core.data (cifar10_test, cifar10_train_batch1, ...)
"""

import functools
from pathlib import Path

import numpy as np

from .data import DataError, ImageSet, NAMED_SETS, default_data_dir, load_images

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_cifar10.npz"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _torchvision(name: str) -> ImageSet:
    import torchvision
    root = Path.home() / ".cache" / "semcom"
    cls = {"cifar10": torchvision.datasets.CIFAR10, "mnist": torchvision.datasets.MNIST}[name]
    try:
        ds = cls(root=str(root), train=False, download=True)
    except Exception as exc:
        raise DataError(f"dataset {name!r}: not in {default_data_dir()} and the torchvision "
                        f"download failed ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    images = np.asarray(ds.data)
    if images.ndim == 3:
        images = images[..., None]
    return ImageSet(images=images.astype(np.uint8), labels=np.asarray(ds.targets),
                    files=[f"torchvision:{name}"])


def _folder(path: Path) -> ImageSet:
    from PIL import Image
    if not path.is_dir():
        raise DataError(f"folder:{path}: not a directory")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"folder:{path}: no {'/'.join(IMAGE_SUFFIXES)} files")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                arr = np.asarray(im.convert("L" if im.mode in ("L", "1", "I;16") else "RGB"))
        except OSError as exc:
            raise DataError(f"{f}: not a readable image ({exc})") from None
        images.append(arr[..., None] if arr.ndim == 2 else arr)
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"folder:{path}: images differ in size {sorted(shapes)}")
    return ImageSet(images=np.stack(images), labels=None, files=[str(f) for f in files])


def load_dataset(spec: str) -> ImageSet:
    """The images of a spec. Read once per process and shared (a sweep builds a flowgraph per
    operating point, each with its image sources): callers must not modify the arrays."""
    return _load_dataset(str(spec).strip())


@functools.lru_cache(maxsize=4)
def _load_dataset(spec: str) -> ImageSet:
    if spec == "sample":
        return load_images(f"npz:{SAMPLE}")
    if spec in ("cifar10", "mnist"):
        stem = f"{spec}_test"
        if (default_data_dir() / f"{stem}.npz").is_file():
            return load_images(stem)
        return _torchvision(spec)
    if spec.startswith("folder:"):
        return _folder(Path(spec[len("folder:"):]))
    if spec.startswith("npz:") or spec.split("[")[0] in NAMED_SETS or spec.endswith(".npz"):
        return load_images(spec)
    raise DataError(f"unknown dataset {spec!r} (expected sample, cifar10, mnist, npz:PATH, "
                    f"folder:PATH or one of {sorted(NAMED_SETS)})")
