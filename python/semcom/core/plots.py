"""Figures written by apps and sinks: sample grids and metric-vs-SNR plots (matplotlib Agg).

Every writer goes through core/files.py (a temporary file and an atomic rename), so an
interrupted run never leaves a half-written file behind; files get the permissions the umask
gives a plain open() (0644 usually), not mkstemp's private 0600. `write_text_atomic` is
re-exported here for the callers that import it from this module.
"""

import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .files import atomic_path, write_text_atomic  # noqa: F401  (re-exported: apps import it from here)


def _atomic_savefig(fig, path: Path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")


def save_image_grid(rows: Sequence[Tuple[str, np.ndarray]], path, max_images: int = 8):
    """One row per (label, uint8 images (N, H, W, C)); the first max_images columns."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(max_images, min(len(images) for _, images in rows))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n + 1.6, 1.35 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            _show(axes[r][c], images[c])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    _atomic_savefig(fig, path)
    plt.close(fig)


def sinr_label(sinr_db: float) -> str:
    """A legend or panel label for an SINR in dB (inf: no interferer)."""
    return "no interferer" if math.isinf(sinr_db) else f"SINR {sinr_db:g} dB"


def save_metric_plot(curves: Dict[str, Tuple[List[float], List[float]]], path, ylabel: str, title: str):
    """Lines of metric vs SNR: {label: (snr_db list, values)}, in the dict's order (give it
    in the order the legend should read, e.g. SINR ascending)."""
    save_metric_panels({"": curves}, path, ylabel, title)


def save_metric_panels(panels: Dict[str, Dict[str, Tuple[List[float], List[float]]]], path, ylabel: str,
                       title: str, xlabel: str = "SNR (dB)", logx: bool = False, logy: bool = False):
    """One panel per {panel title: {line label: (x list, values)}} (x: SNR in dB unless
    `xlabel` says otherwise), side by side with a shared y axis; each line in x order, None
    values left out. More than 10 lines: 20 colours and varied markers, one legend beside the
    panels (the same label keeps its style in every panel)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(label for curves in panels.values() for label in curves))
    many = len(labels) > 10
    style = {label: (dict(color=plt.get_cmap("tab20")(i % 20), marker="osD^v<>p*h"[i % 10]) if many
                     else dict(marker="o")) for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(panels), figsize=(0.4 + 4.8 * len(panels) + (2.2 if many else 0), 3.6),
                             squeeze=False, sharey=True)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for label, (x, y) in curves.items():
            pts = sorted((a, b) for a, b in zip(x, y) if b is not None)  # SNRs may come in any order
            if pts:
                ax.plot(*zip(*pts), label=label, **style[label])
        ax.set_xlabel(xlabel)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_title(panel, fontsize=9)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0] and not many:
            ax.legend(fontsize=7)
    if many:
        handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
        axes[0][-1].legend([handles[label] for label in labels if label in handles],
                           [label for label in labels if label in handles], fontsize=7,
                           loc="center left", bbox_to_anchor=(1.02, 0.5))
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=9) if len(panels) > 1 else axes[0][0].set_title(title, fontsize=9)
    fig.tight_layout()
    _atomic_savefig(fig, path)
    plt.close(fig)


def save_receiver_grid(blocks: Sequence[Tuple[str, np.ndarray, Dict[str, np.ndarray]]], path):
    """Receivers side by side: columns "sent" then one per receiver (labelled on top); rows
    in blocks of (label, originals uint8 (n, H, W, C), {receiver: received (n, H, W, C)}),
    the block's label beside its first row (e.g. its operating point)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["sent"] + list(blocks[0][2])
    rows = [(label if i == 0 else "", [originals[i]] + [rx[c][i] for c in columns[1:]])
            for label, originals, rx in blocks for i in range(len(originals))]
    cell, label_w, title_h = 1.1, 1.2, 0.3  # inches: square cells, so no gaps between columns
    width, height = label_w + cell * len(columns), title_h + cell * len(rows)
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=label_w / width, right=1, bottom=0, top=1 - title_h / height,
                        wspace=0.05, hspace=0.05)
    for r, (label, images) in enumerate(rows):
        for c, img in enumerate(images):
            ax = axes[r][c]
            _show(ax, img)
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    _atomic_savefig(fig, path)
    plt.close(fig)


def _show(ax, img):
    grey = img.shape[-1] == 1
    ax.imshow(img[..., 0] if grey else img, cmap="gray" if grey else None, vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
