#!/usr/bin/env python3
"""Train the module's small CIFAR-10 classifier (nets/classifier.py) and save it.

It serves the offline semantic metrics (core/semantic.py: `accuracy`, `label_accuracy`,
`feature_dist`, `frechet_dist`, module-specific proxies, never LPIPS or FID) and JSCNA-AD's
patch importance. One seeded command:

  .venv/bin/python apps/train_classifier.py --epochs 15 --seed 0 --threads 1 --no-progress \\
      --out python/semcom/checkpoints/classifier_cifar10

writes OUT.safetensors + OUT.json (kind "classifier": config; provenance: command, data, epochs,
steps, wall time, per-epoch log and the test accuracy on all 10 000 CIFAR-10 test images).

Data: training CIFAR-10 train batches 1-3 (30 000 images; labels are used here only); per-epoch
monitor cifar10_test[1000:2000] (reported, never used to pick a model: the last epoch is
shipped); final accuracy on cifar10_test (10 000). Augmentation: random crops of the 4-pixel
reflect-padded image and horizontal flips. Loss: cross-entropy with label smoothing 0.1.
AdamW (weight decay on weights, not on norms, biases or embeddings), linear warm-up then cosine
decay to 0.05 x lr.

Resumable (core/resume.py, as the other training apps): after each epoch OUT.resume.* are
written atomically; --resume continues from the last finished epoch with the very weights of an
uninterrupted run; --stop-after N ends this session after N epochs. A run is never started over
existing resume files without --resume, nor resumed with other arguments (only --threads,
--no-progress, --resume and --stop-after may differ). The resume files are deleted when the
model is saved.
"""

import argparse
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gnuradio.semcom.core.cli import ArgumentParser, check_out_path, run_main
from gnuradio.semcom.core.data import DataError, load_checked_sets, to_tensor
from gnuradio.semcom.core.lr_schedule import epoch_schedule
from gnuradio.semcom.core.resume import Run, check_resume
from gnuradio.semcom.nets import classifier as cls_net

TRAIN_DATA = "cifar10_train_batch1+cifar10_train_batch2+cifar10_train_batch3"
MONITOR_DATA = "cifar10_test[1000:2000]"
EVAL_DATA = "cifar10_test"
SESSION_ARGS = ("resume", "stop_after", "threads", "no_progress")
MIN_LR_RATIO = 0.05
LABEL_SMOOTHING = 0.1
CROP_PAD = 4
EVAL_BATCH = 500


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output path without extension (OUT.safetensors, OUT.json)")
    ap.add_argument("--train-data", default=TRAIN_DATA, help=f"labelled training images (default {TRAIN_DATA})")
    ap.add_argument("--monitor-data", default=MONITOR_DATA, help=f"per-epoch monitor (default {MONITOR_DATA})")
    ap.add_argument("--eval-data", default=EVAL_DATA, help=f"final test accuracy (default {EVAL_DATA})")
    ap.add_argument("--data-dir", default=None, help="folder of the named .npz sets (default $SEMCOM_DATA "
                    "or ../shared/data)")
    ap.add_argument("--max-images", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--depth", type=int, default=2, help="transformer blocks")
    ap.add_argument("--max-steps-per-epoch", type=int, default=0, help="cap steps per epoch (0: full epochs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--resume", action="store_true", help="continue from OUT.resume.* (the last finished epoch)")
    ap.add_argument("--stop-after", type=int, default=0, metavar="N",
                    help="end this session after N more epochs, keeping the resume files (0: train to the end)")
    args = ap.parse_args(argv)
    for name in ("epochs", "batch_size", "depth", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("max_images", "warmup_steps", "max_steps_per_epoch", "stop_after"):
        if getattr(args, name) < 0:
            ap.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("lr", "weight_decay"):
        v = getattr(args, name)
        if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
            ap.error(f"--{name.replace('_', '-')} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, got {v}")
    check_out_path(ap, args.out)
    return args


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop of the reflect-padded batch (one offset per image) and random flips."""
    n, _, h, w = x.shape
    padded = F.pad(x, (CROP_PAD,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * CROP_PAD + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * CROP_PAD + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


@torch.no_grad()
def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    hits = 0
    for i in range(0, len(images), EVAL_BATCH):
        hits += int((model(to_tensor(images[i:i + EVAL_BATCH])).argmax(1).numpy() == labels[i:i + EVAL_BATCH]).sum())
    return hits / len(images)


def parameter_groups(model, weight_decay):
    """Weight decay on conv/linear weights only (not norms, biases, class token, positions)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and name not in ("cls", "pos") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def main(argv=None):
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = "python apps/train_classifier.py " + shlex.join(argv)
    run_args = {k: v for k, v in vars(args).items() if k not in SESSION_ARGS}
    check_resume(args.out, run_args, args.resume)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        sets = load_checked_sets({"training": args.train_data, "monitor": args.monitor_data, "eval": args.eval_data},
                                 args.data_dir, (32, 32, 3), labelled=True)
    except DataError as exc:
        print(f"train_classifier: error: {exc} (the classifier takes labelled 32x32x3 CIFAR-10 images)",
              file=sys.stderr)
        return 2
    train_set, monitor_set, eval_set = sets["training"], sets["monitor"], sets["eval"]
    images = train_set.images[:args.max_images] if args.max_images else train_set.images
    labels = train_set.labels[:len(images)]
    n = len(images)
    cfg = cls_net.ClassifierConfig(depth=args.depth)
    model = cls_net.SemanticClassifier(cfg)
    opt = torch.optim.AdamW(parameter_groups(model, args.weight_decay), lr=args.lr)
    steps_per_epoch, total, sched = epoch_schedule(opt, n, args.batch_size, args.epochs, args.warmup_steps,
                                                   MIN_LR_RATIO, args.max_steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)

    run = Run(args.out, command, run_args, args.resume, model, opt, sched, {"generator": gen},
              {"epoch": [], "loss": [], "train_accuracy": [], "monitor_accuracy": [], "seconds": []})
    history, log = run.history, run.log
    if run.first == 1:
        log(f"train_classifier: {command}")
        log(f"  config {cfg.to_dict()}: {cls_net.count_parameters(model):,} parameters; train {args.train_data} "
            f"({n} images), {steps_per_epoch} steps/epoch x {args.epochs}; monitor {args.monitor_data}")
    last = args.epochs if not args.stop_after else min(args.epochs, run.first - 1 + args.stop_after)
    bar = tqdm(total=total, initial=run.step, disable=args.no_progress, unit="step")
    for epoch in range(run.first, last + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum, hits, seen, t_epoch = 0.0, 0, 0, time.time()
        for s in range(steps_per_epoch):
            index = np.sort(perm[s * args.batch_size:(s + 1) * args.batch_size].numpy())
            x = augment(to_tensor(images[index]), gen)
            y = torch.from_numpy(labels[index])
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run.step += 1
            loss_sum += loss.item()
            hits += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.update(1)
        monitor = accuracy(model, monitor_set.images, monitor_set.labels)
        history["epoch"].append(epoch)
        history["loss"].append(loss_sum / steps_per_epoch)
        history["train_accuracy"].append(hits / seen)
        history["monitor_accuracy"].append(monitor)
        history["seconds"].append(round(time.time() - t_epoch, 1))
        log(f"epoch {epoch}/{args.epochs}  loss {history['loss'][-1]:.4f}  train accuracy {hits / seen:.4f} "
            f"(augmented)  monitor accuracy {monitor:.4f}  {history['seconds'][-1]:.0f} s (total {run.wall:.0f} s)")
        run.epoch_done(epoch, args.epochs)
    bar.close()
    if last < args.epochs:
        print(f"stopped after epoch {last} of {args.epochs}; continue with --resume", file=sys.stderr, flush=True)
        return 0
    test_accuracy = accuracy(model, eval_set.images, eval_set.labels)
    log(f"test accuracy on {args.eval_data} ({len(eval_set)} images): {test_accuracy:.4f}")
    provenance = {
        "training_command": command,
        "arguments": vars(args),
        "train_data": {"spec": args.train_data, "files": [Path(f).name for f in train_set.files], "images": n},
        "monitor_data": {"spec": args.monitor_data, "images": len(monitor_set),
                         "use": "per-epoch monitor only; the last epoch is shipped"},
        "training": {"epochs": args.epochs, "steps": run.step, "steps_per_epoch": steps_per_epoch,
                     "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
                     "optimizer": "AdamW", "loss": f"cross-entropy, label smoothing {LABEL_SMOOTHING}",
                     "schedule": f"linear warm-up {args.warmup_steps} steps, cosine to {MIN_LR_RATIO:g} x lr",
                     "augmentation": f"random {CROP_PAD}-pixel reflect-pad crops, horizontal flips",
                     "seed": args.seed, "threads": args.threads, "wall_time_s": round(run.wall, 1),
                     "sessions": run.all_sessions(last)},
        "test_accuracy": {"value": test_accuracy, "spec": args.eval_data, "images": len(eval_set)},
        "history": history,
        "log": run.lines,
        "software": {"python": platform.python_version(), "torch": torch.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    run.finish(lambda: cls_net.save_classifier(args.out, model, provenance), lambda: cls_net.load_classifier(args.out))
    return 0


if __name__ == "__main__":
    run_main(main, "the resume files of the last finished epoch are kept (continue with --resume)")
