"""Image and latent quality metrics (GNU Radio-free).

All image metrics take float tensors (N, C, H, W) in [0, 1] and return one value per image.
- PSNR (dB), peak 1.
- SSIM and MS-SSIM from pytorch-msssim (the maintained implementation, 11x11 Gaussian window);
  MS-SSIM needs each side > 160 px with that window, so smaller images get None.
- LPIPS (AlexNet) from the `lpips` package. Its backbone weights come from torchvision's
  download cache; offline without them, LPIPS is None and one warning is logged.
- Offline semantic proxies from the shipped CIFAR-10 classifier (core/semantic.py): `accuracy`
  (top-1 agreement with the sent image), `label_accuracy`, `feature_dist` (LPIPS's form in the
  classifier's features) and `frechet_dist` (one value per set): module-specific, never LPIPS
  or FID; None for images that are not 3x32x32.
- Latent MSE (dB): 10 log10(mean (xhat - x)^2 / mean x^2) per image, in the power-normalised
  symbol domain ([Re z; Im z]), i.e. E|zhat - z|^2 / P.
"""

import logging
import math
import threading
from typing import Optional

import torch

log = logging.getLogger("semcom.metrics")

MS_SSIM_MIN_SIDE = 161  # pytorch-msssim: side > (win_size - 1) * 2**4 with win_size 11


def _check(x: torch.Tensor, ref: torch.Tensor):
    if x.shape != ref.shape or x.ndim != 4:
        raise ValueError(f"need two (N, C, H, W) batches of one shape, got {tuple(x.shape)} "
                         f"and {tuple(ref.shape)}")


def psnr(x: torch.Tensor, ref: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """PSNR (dB) of each image, peak `max_val` (float32 (N,); computed in float64). The one
    PSNR of the module: jscc.psnr_per_image (training's evaluation) is this function."""
    _check(x, ref)
    mse = (x.double() - ref.double()).square().flatten(1).mean(1)
    return (10 * torch.log10(float(max_val) ** 2 / mse.clamp_min(1e-20))).float()


def ssim(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    from pytorch_msssim import ssim as _ssim
    _check(x, ref)
    return _ssim(x.float(), ref.float(), data_range=1.0, size_average=False)


def ms_ssim(x: torch.Tensor, ref: torch.Tensor) -> Optional[torch.Tensor]:
    from pytorch_msssim import ms_ssim as _ms_ssim
    _check(x, ref)
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return None
    return _ms_ssim(x.float(), ref.float(), data_range=1.0, size_average=False)


class LazyNet:
    """A network loaded once per process, on first use, by `load()`; None (and one warning
    naming `what`) from then on when loading raised one of `expected`. Thread-safe."""

    def __init__(self, load, what: str, expected=(Exception,)):
        self._load, self._what, self._expected = load, what, tuple(expected)
        self._lock = threading.Lock()
        self._net = None
        self._failed = False

    def net(self, device):
        with self._lock:
            if self._net is None and not self._failed:
                try:
                    self._net = self._load()
                except self._expected as exc:
                    self._failed = True
                    log.warning("%s unavailable, reported as null (%s: %s)", self._what,
                                type(exc).__name__, str(exc).splitlines()[0][:200])
            return None if self._net is None else self._net.to(device)


def _load_lpips():
    import contextlib
    import io
    import warnings

    import lpips
    # torchvision's deprecation warnings and download chatter are not ours to show; the one
    # warning of LazyNet says what happened (offline: torchvision cannot fetch the backbone).
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net="alex", verbose=False).eval()


_LPIPS = LazyNet(_load_lpips, "LPIPS")


@torch.no_grad()
def lpips(x: torch.Tensor, ref: torch.Tensor) -> Optional[torch.Tensor]:
    _check(x, ref)
    net = _LPIPS.net(x.device)
    if net is None:
        return None
    if x.shape[1] == 1:  # grey: LPIPS expects RGB
        x, ref = x.repeat(1, 3, 1, 1), ref.repeat(1, 3, 1, 1)
    return net(x.float() * 2 - 1, ref.float() * 2 - 1, normalize=False).flatten()


def latent_mse_db(xhat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if xhat.shape != x.shape:
        raise ValueError(f"latent shapes differ: {tuple(xhat.shape)} vs {tuple(x.shape)}")
    x, xhat = x.reshape(x.shape[0], -1).double(), xhat.reshape(x.shape[0], -1).double()
    nmse = (xhat - x).square().mean(1) / x.square().mean(1).clamp_min(1e-20)
    return (10 * torch.log10(nmse.clamp_min(1e-20))).float()


def image_metrics(x: torch.Tensor, ref: torch.Tensor, with_lpips: bool = True,
                  with_semantic: bool = True, labels=None) -> dict:
    """Per-image metrics of a batch as lists (None where a metric does not apply), and the
    batch's `frechet_dist` (one float: a set metric). `labels` (N,) of the sent images, where
    known, give `label_accuracy`."""
    out = {"psnr_db": psnr(x, ref).tolist(), "ssim": ssim(x, ref).tolist()}
    m = ms_ssim(x, ref)
    out["ms_ssim"] = None if m is None else m.tolist()
    lp = lpips(x, ref) if with_lpips else None
    out["lpips"] = None if lp is None else lp.tolist()
    if with_semantic:
        from . import semantic
        out.update(semantic.semantic_metrics(x, ref, labels))
    else:
        out.update({key: None for key in SEMANTIC_KEYS})
    return out


SEMANTIC_KEYS = ("accuracy", "label_accuracy", "feature_dist", "frechet_dist")
# What a row or summary reports as the mean over its images (frechet_dist is already one value).
MEAN_KEYS = ("psnr_db", "ssim", "ms_ssim", "lpips", "accuracy", "label_accuracy", "feature_dist")


def mean_or_none(values):
    """Mean of a list, None for None/empty (JSON null)."""
    if values is None or len(values) == 0:
        return None
    return float(sum(values) / len(values))


def db_mean(values_db):
    """Mean of dB values taken in the linear domain (for latent MSE over images)."""
    if not values_db:
        return None
    return 10 * math.log10(sum(10 ** (v / 10) for v in values_db) / len(values_db))
