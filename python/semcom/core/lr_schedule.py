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


def epoch_schedule(opt, images: int, batch_size: int, epochs: int, warmup: int, min_ratio: float,
                   max_steps_per_epoch: int = 0):
    """(steps per epoch, total steps, a LambdaLR of warmup_cosine_lr over them) for a training
    run of `epochs` over `images` in batches of `batch_size` (capped per epoch when
    max_steps_per_epoch > 0)."""
    import torch
    steps = max(1, images // batch_size)
    if max_steps_per_epoch:
        steps = min(steps, max_steps_per_epoch)
    total = epochs * steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine_lr(s, total, warmup, 1.0, min_ratio))
    return steps, total, sched
