"""The learning-rate schedule the training apps share (GNU Radio-free): linear warm-up, then
cosine decay to a floor."""

import math


def warmup_cosine_lr(step: int, total: int, warmup: int, lr: float, min_ratio: float) -> float:
    """The learning rate at `step` of `total`: linear from lr / warmup to lr over `warmup`
    steps, then cosine from lr to lr * min_ratio at `total` (held there after)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    lo = lr * min_ratio
    return lo + 0.5 * (lr - lo) * (1.0 + math.cos(math.pi * min(1.0, t)))
