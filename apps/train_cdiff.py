#!/usr/bin/env python3
"""Train a CDiff system (nets/cdiff.py, diffusion/cdiff.py; ../shared/papers/cdiff.md) and save it:
`--system cdiff` the semantic encoder with the conditional diffusion decoder, `ae` the same
encoder with the mirrored decoder (the matched autoencoder baseline), `vae` the variational
encoder with the mirrored decoder. Encoder and decoder are trained jointly with the channel in
the loop. One seeded command per shipped system:

  .venv/bin/python apps/train_cdiff.py --system cdiff --epochs 8 --seed 0 --no-progress \\
      --out python/semcom/checkpoints/cdiff_awgn_k512

writes OUT.safetensors + OUT.json (kind "cdiff" with its schedule, or "cdiff-autoencoder":
config; provenance: command, data, epochs, steps, wall time, the per-epoch log and monitor).
The shipped weights are the per-step EMA of the trained ones (decay min(--ema, (1 + step) /
(10 + step)): the usual warm-up, so no trace of the random start survives; spec §5.7).

Data: CIFAR-10 train batches 1+2 (20 000 images, the DeepJSCC user's and the KL-VAE's), pixels
in [-1, 1], random horizontal flips; the monitor after each epoch scores cifar10_test[1000:1064]
at SNR 10 dB (cdiff: a 10-step DDIM sample, cheap; the benchmark runs the full chain); the
benches use the first 1000 test images, which no training or monitor touches.

Channel: per-image SNR ~ U[--snr-min, --snr-max] dB (paper: -10..10), P = 1 per symbol per
image; AWGN, or Rayleigh (i.i.d. per symbol) MMSE-equalised with known h and SNR, optionally
with the reliability plane (--reliability, a departure from the paper). Stochastic soft masking
(spec §2) unless --no-mask. --ks 256,512 trains one head per k on a shared trunk (the paper's
adaptive-CBR encoder; a random head per step); the default is the one head k = 512.

Schedule (cdiff): T = --steps, beta linear --beta-start..--beta-end, w_t = t/T (CPU default
T = 100, 2e-4..0.019; the paper's 200, 1e-4..0.0095). U-Net width --dim (16: CPU; 32: paper).

Resumable as the other training apps (core/resume.py): OUT.resume.* after every epoch, --resume
continues with the very weights of an uninterrupted run, --stop-after N ends this session after
N epochs; a run is never started over resume files without --resume, nor resumed with other
arguments (only --threads, --no-progress, --resume, --stop-after may differ).
"""

import argparse
import copy
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gnuradio.semcom.core.cli import ArgumentParser, check_out_path, run_main
from gnuradio.semcom.core.data import DataError, load_checked_sets, to_tensor
from gnuradio.semcom.core.lr_schedule import epoch_schedule
from gnuradio.semcom.core.metrics import psnr
from gnuradio.semcom.core.resume import Run, check_resume, ema_update
from gnuradio.semcom.diffusion.cdiff import CDiffSchedule
from gnuradio.semcom.nets import cdiff as nets

TRAIN_DATA = "cifar10_train_batch1+cifar10_train_batch2"
MONITOR_DATA = "cifar10_test[1000:1064]"
SESSION_ARGS = ("resume", "stop_after", "threads", "no_progress")
MIN_LR_RATIO = 0.05
MONITOR_SNR_DB = 10.0
MONITOR_STEPS = 10


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=nets.SYSTEMS, required=True)
    ap.add_argument("--out", required=True, help="output path without extension (OUT.safetensors, OUT.json)")
    ap.add_argument("--channel", choices=("awgn", "rayleigh"), default="awgn")
    ap.add_argument("--ks", default="512", help="comma list of symbol counts, one encoder head each (CBR = k/3072)")
    ap.add_argument("--reliability", action="store_true", help="cdiff on Rayleigh: add the reliability plane")
    ap.add_argument("--no-mask", action="store_true", help="no stochastic soft masking")
    ap.add_argument("--train-data", default=TRAIN_DATA)
    ap.add_argument("--monitor-data", default=MONITOR_DATA)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--max-images", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--grad-clip", type=float, default=1.0, help="global gradient-norm clip (0: off)")
    ap.add_argument("--ema", type=float, default=0.999, help="per-step EMA decay of the shipped weights")
    ap.add_argument("--snr-min", type=float, default=-10.0)
    ap.add_argument("--snr-max", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=100, help="cdiff: diffusion steps T")
    ap.add_argument("--beta-start", type=float, default=2e-4)
    ap.add_argument("--beta-end", type=float, default=0.019)
    ap.add_argument("--dim", type=int, default=16, help="cdiff: U-Net base width (16 CPU, 32 paper)")
    ap.add_argument("--max-steps-per-epoch", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--stop-after", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)
    try:
        args.ks = [int(v) for v in args.ks.split(",") if v.strip()]
    except ValueError:
        ap.error(f"--ks: expected a comma list of integers, got {args.ks!r}")
    for name in ("epochs", "batch_size", "threads", "steps", "dim"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("max_images", "warmup_steps", "max_steps_per_epoch", "stop_after"):
        if getattr(args, name) < 0:
            ap.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("lr", "grad_clip", "snr_min", "snr_max", "beta_start", "beta_end"):
        if not math.isfinite(getattr(args, name)):
            ap.error(f"--{name.replace('_', '-')} must be finite")
    if not args.lr > 0 or args.grad_clip < 0 or not 0 <= args.ema < 1 or args.snr_min > args.snr_max:
        ap.error("need --lr > 0, --grad-clip >= 0, 0 <= --ema < 1 and --snr-min <= --snr-max")
    check_out_path(ap, args.out)
    return args


def build(args):
    encoder = nets.EncoderConfig(ks=tuple(args.ks), variational=args.system == "vae")
    unet = (nets.UNetConfig(dim=args.dim, in_channels=6 + int(args.reliability)) if args.system == "cdiff" else None)
    cfg = nets.SystemConfig(system=args.system, encoder=encoder, unet=unet, channel=args.channel,
                            reliability=args.reliability)
    schedule = (CDiffSchedule.linear(args.steps, args.beta_start, args.beta_end) if args.system == "cdiff" else None)
    return cfg, schedule


@torch.no_grad()
def monitor(model, schedule, images: np.ndarray, k: int, seed: int) -> float:
    """Mean PSNR (dB, images in [0, 1]) at MONITOR_SNR_DB, AWGN or the model's channel, a fixed draw."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x = to_tensor(images) * 2 - 1
    reals = model.encoder(x, k)
    reals = nets.power_normalise(reals[0] if isinstance(reals, tuple) else reals)
    received, rel = nets.channel_reals(reals, torch.full((len(x),), MONITOR_SNR_DB), model.cfg.channel, gen)
    out = nets.decode(model, schedule, received, rel, steps=MONITOR_STEPS, sampler="ddim", generator=gen)
    return float(psnr((out + 1) / 2, (x + 1) / 2).mean())


def main(argv=None):
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = "python apps/train_cdiff.py " + shlex.join(argv)
    run_args = {k: v for k, v in vars(args).items() if k not in SESSION_ARGS}
    try:
        cfg, schedule = build(args)
    except ValueError as exc:
        print(f"train_cdiff: error: {exc}", file=sys.stderr)
        return 2
    check_resume(args.out, run_args, args.resume)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        sets = load_checked_sets({"training": args.train_data, "monitor": args.monitor_data}, args.data_dir,
                                 (32, 32, 3))
    except DataError as exc:
        print(f"train_cdiff: error: {exc} (CDiff takes 32x32x3 images)", file=sys.stderr)
        return 2
    train_set, monitor_set = sets["training"], sets["monitor"]
    images = train_set.images[:args.max_images] if args.max_images else train_set.images
    n = len(images)

    model = nets.CDiffSystem(cfg)
    ema = copy.deepcopy(model).requires_grad_(False)
    trainee = torch.nn.ModuleDict({"model": model, "ema": ema})
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch, total, sched = epoch_schedule(opt, n, args.batch_size, args.epochs, args.warmup_steps,
                                                   MIN_LR_RATIO, args.max_steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)

    run = Run(args.out, command, run_args, args.resume, trainee, opt, sched, {"generator": gen},
              {"epoch": [], "mse": [], "kl": [], "monitor_psnr_db": [], "seconds": []})
    history, log = run.history, run.log
    if run.first == 1:
        log(f"train_cdiff: {command}")
        log(f"  {cfg.system}: encoder {nets.count_parameters(model.encoder):,} + decoder "
            f"{nets.count_parameters(model.decoder):,} parameters; k {args.ks} (CBR "
            f"{', '.join(f'{k / 3072:.4f}' for k in args.ks)}); {args.channel}, SNR U[{args.snr_min:g}, {args.snr_max:g}] dB; "
            f"train {args.train_data} ({n} images), {steps_per_epoch} steps/epoch x {args.epochs}")
    last = args.epochs if not args.stop_after else min(args.epochs, run.first - 1 + args.stop_after)
    bar = tqdm(total=total, initial=run.step, disable=args.no_progress, unit="step")
    for epoch in range(run.first, last + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums, kl_sum, t_epoch = 0.0, 0.0, time.time()
        for s in range(steps_per_epoch):
            index = np.sort(perm[s * args.batch_size:(s + 1) * args.batch_size].numpy())
            x = to_tensor(images[index]) * 2 - 1
            flip = torch.rand(len(x), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            snr = args.snr_min + (args.snr_max - args.snr_min) * torch.rand(len(x), generator=gen)
            k = args.ks[int(torch.randint(len(args.ks), (1,), generator=gen))]
            loss, stats = nets.system_loss(model, schedule, x, snr, k, not args.no_mask, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
            sched.step()
            ema_update(ema, model, run.step, args.ema)
            run.step += 1
            sums += stats["mse"]
            kl_sum += stats["kl"] or 0.0
            bar.update(1)
        mon = monitor(ema, schedule, monitor_set.images, max(args.ks), args.seed)
        history["epoch"].append(epoch)
        history["mse"].append(sums / steps_per_epoch)
        history["kl"].append(kl_sum / steps_per_epoch if args.system == "vae" else None)
        history["monitor_psnr_db"].append(mon)
        history["seconds"].append(round(time.time() - t_epoch, 1))
        log(f"epoch {epoch}/{args.epochs}  mse {history['mse'][-1]:.5f}"
            + (f"  kl {history['kl'][-1]:.4f}" if args.system == "vae" else "")
            + f"  monitor (EMA, {MONITOR_SNR_DB:g} dB{', 10-step DDIM' if schedule else ''}) {mon:.2f} dB  "
              f"{history['seconds'][-1]:.0f} s (total {run.wall:.0f} s)")
        run.epoch_done(epoch, args.epochs)
    bar.close()
    if last < args.epochs:
        print(f"stopped after epoch {last} of {args.epochs}; continue with --resume", file=sys.stderr, flush=True)
        return 0
    provenance = {
        "training_command": command,
        "arguments": vars(args),
        "train_data": {"spec": args.train_data, "files": [Path(f).name for f in train_set.files], "images": n},
        "monitor_data": {"spec": args.monitor_data, "images": len(monitor_set),
                         "use": f"per-epoch PSNR at {MONITOR_SNR_DB:g} dB; the last epoch is shipped"},
        "training": {"epochs": args.epochs, "steps": run.step, "steps_per_epoch": steps_per_epoch,
                     "batch_size": args.batch_size, "lr": args.lr, "optimizer": "Adam",
                     "schedule": f"linear warm-up {args.warmup_steps} steps, cosine to {MIN_LR_RATIO:g} x lr",
                     "grad_clip": args.grad_clip, "ema_decay": f"min({args.ema}, (1 + step) / (10 + step))",
                     "shipped_weights": "EMA",
                     "loss": {"cdiff": "x0 MSE at t ~ U{1..T} (eq. 6)", "ae": "reconstruction MSE",
                              "vae": "reconstruction MSE + mean-per-element KL (equal weights)"}[args.system],
                     "channel": f"{args.channel}, SNR ~ U[{args.snr_min:g}, {args.snr_max:g}] dB per image",
                     "masking": None if args.no_mask else "soft: rho ~ U[0.5, 1], dropped x U(0, 0.2), P = 1",
                     "augmentation": "random horizontal flip", "seed": args.seed, "threads": args.threads,
                     "wall_time_s": round(run.wall, 1), "sessions": run.all_sessions(last)},
        "history": history,
        "log": run.lines,
        "software": {"python": platform.python_version(), "torch": torch.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    schedule_doc = (nets.schedule_dict(args.steps, args.beta_start, args.beta_end) if args.system == "cdiff" else None)
    run.finish(lambda: nets.save_system(args.out, ema, provenance, schedule_doc), lambda: nets.load_system(args.out))
    return 0


if __name__ == "__main__":
    run_main(main, "the resume files of the last finished epoch are kept (continue with --resume)")
