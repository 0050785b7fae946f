"""Figures written by apps and sinks: sample grids and metric-vs-SNR plots (matplotlib Agg).

Every writer goes through a temporary file and an atomic rename, so an interrupted run
never leaves a half-written file behind.
"""

import os
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np


def _atomic_savefig(fig, path: Path):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_image_grid(rows: Sequence[Tuple[str, np.ndarray]], path, max_images: int = 8):
    """One row per (label, uint8 images (N, H, W, C)); the first max_images columns."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(max_images, min(len(images) for _, images in rows))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n + 1.6, 1.35 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            img = images[c]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                      vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    _atomic_savefig(fig, path)
    plt.close(fig)


def save_metric_plot(curves: Dict[str, Tuple[List[float], List[float]]], path, ylabel: str, title: str):
    """Lines of metric vs SNR: {label: (snr_db list, values)}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for label, (x, y) in sorted(curves.items()):
        pts = [(a, b) for a, b in zip(x, y) if b is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _atomic_savefig(fig, path)
    plt.close(fig)


def write_text_atomic(path, text: str):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
