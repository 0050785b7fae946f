#!/usr/bin/env python3
"""How the offline semantic proxies (core/semantic.py) respond to known degradations: additive
pixel noise and Gaussian blur at several strengths, beside PSNR and SSIM, on the first N
CIFAR-10 test images. A calibration table for reading `accuracy` / `feature_dist` /
`frechet_dist` in run_link rows (docs/metrics.md).

    .venv/bin/python bench/bench_semantic.py --images 500
"""

import argparse

import numpy as np
import torch

from gnuradio.semcom.core import metrics
from gnuradio.semcom.core.data import load_images, to_tensor


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma == 0:
        return x
    r = max(1, int(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = load_images(f"cifar10_test[0:{args.images}]")
    x = to_tensor(data.images)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(args.seed))
    rows = [("clean", x)]
    rows += [(f"noise std {s:g}", (x + s * noise).clamp(0, 1)) for s in (0.03, 0.1, 0.2)]
    rows += [(f"blur sigma {s:g} px", blur(x, s)) for s in (0.5, 1.0, 1.5)]
    print(f"{len(x)} images of cifar10_test; proxies from the shipped classifier (module-specific, not LPIPS/FID)")
    print("| degradation | PSNR (dB) | SSIM | accuracy | label_accuracy | feature_dist | frechet_dist |")
    print("|---|---|---|---|---|---|---|")
    for name, y in rows:
        y = to_tensor(np.round(y.numpy().transpose(0, 2, 3, 1) * 255).astype(np.uint8))   # 8-bit, as received images
        m = metrics.image_metrics(y, x, with_lpips=False, labels=data.labels)
        psnr = metrics.mean_or_none([v for v in m["psnr_db"] if v < 100])
        print(f"| {name} | {'inf' if psnr is None else format(psnr, '.2f')} | {np.mean(m['ssim']):.3f} | "
              f"{np.mean(m['accuracy']):.3f} | {np.mean(m['label_accuracy']):.3f} | {np.mean(m['feature_dist']):.3f} | "
              f"{m['frechet_dist']:.2f} |")


if __name__ == "__main__":
    main()
