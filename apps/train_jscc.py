#!/usr/bin/env python3
#
# Copyright 2026 gr-semcom authors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Train one deep-JSCC model of gr-semcom with the channel in the loop and save it.

One command per shipped model, e.g.

    .venv/bin/python apps/train_jscc.py --model user --channel awgn --k 512 \\
        --epochs 24 --seed 0 --no-progress --out python/semcom/checkpoints/jscc_user_awgn_k512

writes OUT.safetensors + OUT.json (config, CBR, exact command, data files, epochs, steps,
wall time, seed, per-epoch log and the final test PSNR at SNR 0/5/10/15/20 dB on the first
1000 test images). Default data splits (disjoint, so the two users send different images):
    user       CIFAR-10 train batches 1+2 (20,000 images)
    interferer CIFAR-10 train batch 3     (10,000 images)
    --dataset mnist: MNIST train images 0-29,999 (user) / 30,000-59,999 (interferer);
               the held-out set is then mnist_test.
Training SNR ~ U[--snr-min, --snr-max] dB per image, P = 1 per image, no interferer.
--width/--kernel/--res-blocks/--activation/--upsample/--output override the role's
architecture (core/jscc.py user_config / interferer_config).

Resumable (core/resume.py, as apps/train_prior.py): after each epoch OUT.resume.safetensors
(model and Adam tensors) and OUT.resume.json (epoch, step, the data and channel generators'
states, history, log, arguments) are written atomically; --resume continues from the last
finished epoch with the very weights of an uninterrupted run; --stop-after N ends this session
after N epochs (resume files kept). A run is never started over existing resume files without
--resume, nor resumed with other arguments (only --threads, --no-progress, --resume and
--stop-after may differ). The resume files are deleted when the model is saved.
"""

import argparse
import math
import os
import platform
import shlex
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def import_core():
    """(jscc, checkpoint, data, resume) from the source tree if present, else gnuradio.semcom.core.

    The source package's __init__ loads the compiled GNU Radio extension; the core modules
    need none of it, so 'semcom' is registered as a bare package pointing at
    <repo>/python/semcom and only semcom.core.* is imported.
    """
    src = REPO / "python" / "semcom"
    if (src / "core" / "jscc.py").is_file():
        if "semcom" not in sys.modules:
            pkg = types.ModuleType("semcom")
            pkg.__path__ = [str(src)]
            sys.modules["semcom"] = pkg
        from semcom.core import checkpoint, data, jscc, resume
    else:  # installed module
        from gnuradio.semcom.core import checkpoint, data, jscc, resume
    return jscc, checkpoint, data, resume


DEFAULT_TRAIN = {
    ("cifar10", "user"): "cifar10_train_batch1+cifar10_train_batch2",
    ("cifar10", "interferer"): "cifar10_train_batch3",
    ("mnist", "user"): "mnist_train[:30000]",
    ("mnist", "interferer"): "mnist_train[30000:]",
}
DEFAULT_TEST = {"cifar10": "cifar10_test", "mnist": "mnist_test"}
FINAL_SNRS = (0.0, 5.0, 10.0, 15.0, 20.0)
# Arguments that may differ between a run and its resumption (they do not change the result).
SESSION_ARGS = ("resume", "stop_after", "threads", "no_progress")


def int_at_least(minimum):
    """An argparse type: an integer >= minimum."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {v}")
        return v
    return parse


positive_int, nonneg_int = int_at_least(1), int_at_least(0)


def finite_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def positive_float(text):
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return v


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("user", "interferer"), required=True,
                   help="architecture: the user's model or the (different) interferer's")
    p.add_argument("--channel", choices=("awgn", "rayleigh"), required=True,
                   help="channel in the training loop (Rayleigh: i.i.d. per symbol)")
    p.add_argument("--k", type=positive_int, required=True,
                   help="complex channel symbols per image (CBR = k / (C*H*W))")
    p.add_argument("--out", required=True,
                   help="output path without extension (writes OUT.safetensors, OUT.json)")
    p.add_argument("--dataset", choices=("cifar10", "mnist"), default="cifar10",
                   help="image family: 32x32 RGB CIFAR-10 or 28x28 grey MNIST")
    p.add_argument("--train-data", default=None,
                   help="training set spec (names, npz:PATH, '+' joins, [a:b] slices); "
                        "default: the role's split, see --help text")
    p.add_argument("--test-data", default=None, help="held-out set spec (default: *_test)")
    p.add_argument("--data-dir", default=None,
                   help="directory of the named .npz sets (default $SEMCOM_DATA or "
                        "<repo>/../shared/data)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=2e-3)
    p.add_argument("--grad-clip", type=finite_float, default=0.0,
                   help="clip the global gradient norm to this value (0 = off)")
    p.add_argument("--warmup-steps", type=nonneg_int, default=200)
    p.add_argument("--snr-min", type=finite_float, default=0.0)
    p.add_argument("--snr-max", type=finite_float, default=20.0)
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--width", type=positive_int, default=None, help="override feature width")
    p.add_argument("--kernel", type=positive_int, default=None, help="override kernel size")
    p.add_argument("--res-blocks", type=nonneg_int, default=None, help="override res blocks")
    p.add_argument("--activation", choices=("prelu", "gelu", "relu"), default=None,
                   help="override the activation (user: prelu, interferer: gelu)")
    p.add_argument("--upsample", choices=("pixelshuffle", "convtranspose"), default=None,
                   help="override the decoder's upsampling (user: pixelshuffle, "
                        "interferer: convtranspose)")
    p.add_argument("--output", choices=("sigmoid", "clamp"), default=None,
                   help="decoder output: sigmoid (default) or a straight-through clamp "
                        "(use for MNIST, where a sigmoid can get stuck outputting black)")
    p.add_argument("--eval-images", type=positive_int, default=500,
                   help="held-out images for the per-epoch PSNR at 10 dB (first N)")
    p.add_argument("--final-images", type=positive_int, default=1000,
                   help="held-out images for the final PSNR table (first N)")
    p.add_argument("--max-steps-per-epoch", type=nonneg_int, default=0,
                   help="cap steps per epoch (0 = full epochs; for smoke tests)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT.resume.* (the last finished epoch)")
    p.add_argument("--stop-after", type=nonneg_int, default=0, metavar="N",
                   help="end this session after N more epochs, keeping the resume files "
                        "(0: train to the end)")
    args = p.parse_args(argv)
    if args.snr_min > args.snr_max:
        p.error(f"--snr-min ({args.snr_min}) exceeds --snr-max ({args.snr_max})")
    if args.grad_clip < 0:
        p.error(f"--grad-clip must be >= 0, got {args.grad_clip}")
    if args.kernel is not None and args.kernel % 2 == 0:
        p.error(f"--kernel must be odd, got {args.kernel}")
    out = Path(args.out)
    if out.suffix in (".safetensors", ".json"):
        p.error(f"--out is a path WITHOUT extension, got {args.out!r}")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        p.error(f"--out directory {parent} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        p.error(f"cannot create --out directory {parent}: {exc.strerror}")
    if not os.access(parent, os.W_OK):
        p.error(f"--out directory {parent} is not writable")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    jscc, checkpoint, data, resume = import_core()
    import torch

    run_args = {k: v for k, v in vars(args).items() if k not in SESSION_ARGS}
    try:
        resume.check_resume(args.out, run_args, args.resume)
    except checkpoint.CheckpointError as exc:
        print(f"train_jscc: error: {exc}", file=sys.stderr)
        return 2

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_spec = args.train_data or DEFAULT_TRAIN[(args.dataset, args.model)]
    test_spec = args.test_data or DEFAULT_TEST[args.dataset]
    try:
        train_set = data.load_images(train_spec, args.data_dir)
        test_set = data.load_images(test_spec, args.data_dir)
    except data.DataError as exc:
        print(f"train_jscc: error: {exc}", file=sys.stderr)
        return 2
    image_shape = train_set.shape
    if test_set.shape != image_shape:
        print(f"train_jscc: error: test images {test_set.shape} differ from training images "
              f"{image_shape}", file=sys.stderr)
        return 2

    overrides = {k: v for k, v in (("width", args.width), ("kernel", args.kernel),
                                   ("res_blocks", args.res_blocks),
                                   ("activation", args.activation),
                                   ("upsample", args.upsample),
                                   ("output", args.output)) if v is not None}
    make = jscc.user_config if args.model == "user" else jscc.interferer_config
    try:
        cfg = make(args.k, args.channel, image_shape=image_shape, **overrides)
    except ValueError as exc:
        print(f"train_jscc: error: {exc}", file=sys.stderr)
        return 2
    model = jscc.build_model(cfg)
    settings = jscc.TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        warmup_steps=args.warmup_steps, grad_clip=args.grad_clip,
        snr_min=args.snr_min, snr_max=args.snr_max,
        seed=args.seed, flip=args.dataset == "cifar10", eval_snr=10.0,
        max_steps_per_epoch=args.max_steps_per_epoch)

    command = "python apps/train_jscc.py " + shlex.join(argv)
    print(f"train_jscc: {command}", flush=True)
    print(f"  model {args.model}: {cfg.to_json()}", flush=True)
    print(f"  k={cfg.k} CBR={cfg.cbr:.5f} (1/{1 / cfg.cbr:g}), "
          f"{jscc.count_parameters(model):,} parameters; train {train_spec} "
          f"({len(train_set)} images), test {test_spec} (first {args.eval_images} per epoch, "
          f"first {args.final_images} at the end)", flush=True)

    eval_images = test_set.tensor(0, args.eval_images)
    log_lines, sessions = [], []
    state = jscc.start_training(model, settings)
    if args.resume:
        try:
            doc = resume.load_resume(args.out, model, state.optimizer, generators=state.generators)
        except checkpoint.CheckpointError as exc:
            print(f"train_jscc: error: {exc}", file=sys.stderr)
            return 2
        state.epoch, state.step, state.elapsed_s = doc["epoch"], doc["step"], doc["elapsed_s"]
        state.history, log_lines, sessions = doc["history"], doc["log"], doc["sessions"]
        print(f"  resuming {args.out} after epoch {state.epoch} (step {state.step})", flush=True)
    first = state.epoch + 1

    def log(line):
        log_lines.append(line)
        print(line, flush=True)

    def save_resume(st):
        if st.epoch < args.epochs:
            resume.save_resume(args.out, model, st.optimizer,
                               {"epoch": st.epoch, "step": st.step, "elapsed_s": st.elapsed_s,
                                "history": st.history, "log": log_lines,
                                "sessions": sessions + [{"command": command,
                                                         "epochs": [first, st.epoch]}],
                                "args": run_args},
                               generators=st.generators)

    history = jscc.train(model, train_set.images, eval_images, settings, log=log,
                         progress=not args.no_progress, state=state, on_epoch=save_resume,
                         stop_after=args.stop_after)
    if state.epoch < args.epochs:
        print(f"stopped after epoch {state.epoch} of {args.epochs}; continue with --resume",
              flush=True)
        return 0
    sessions = sessions + [{"command": command, "epochs": [first, state.epoch]}]
    train_time = history["wall_time_s"]

    final_images = test_set.tensor(0, args.final_images)
    final = {}
    for snr in FINAL_SNRS:
        final[f"{snr:g}"] = round(jscc.evaluate_psnr(model, final_images, snr,
                                                     seed=args.seed + 4), 3)
    log(f"final test PSNR (first {len(final_images)} of {test_spec}, {args.channel}): "
        + ", ".join(f"{s} dB -> {v:.2f}" for s, v in final.items()))

    meta = {
        "training_command": command,
        "arguments": vars(args),
        "train_data": {"spec": train_spec, "files": [Path(f).name for f in train_set.files],
                       "images": len(train_set)},
        "test_data": {"spec": test_spec, "files": [Path(f).name for f in test_set.files],
                      "per_epoch_images": len(eval_images),
                      "final_images": len(final_images)},
        "training": {"epochs": args.epochs, "steps": history["steps"],
                     "batch_size": args.batch_size, "lr": args.lr,
                     "schedule": f"linear warm-up {args.warmup_steps} steps, cosine to "
                                 f"{settings.min_lr_ratio:g} x lr",
                     "optimizer": "Adam", "loss": "MSE", "grad_clip": args.grad_clip,
                     "snr_db_range": [args.snr_min, args.snr_max],
                     "channel": args.channel, "power": 1.0, "interferer": None,
                     "decoder_input": "MMSE-equalized symbols in the unit-power domain "
                                      "([Re; Im] of w*y, not divided by the TX scale)",
                     "augmentation": "random horizontal flip" if settings.flip else None,
                     "seed": args.seed, "threads": args.threads,
                     "wall_time_s": round(train_time, 1), "sessions": sessions},
        "test_psnr_db": final,
        "test_psnr_note": "mean per-image PSNR of 8-bit decoded images, first "
                          f"{len(final_images)} of {test_spec}, channel seed {args.seed + 4}",
        "history": {k: history[k] for k in ("epoch", "loss", "test_psnr_db", "seconds")},
        "log": log_lines,
        "software": {"python": platform.python_version(), "torch": torch.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    weights, sidecar = checkpoint.save_checkpoint(args.out, model, cfg, meta)
    # round trip: what we ship must load
    checkpoint.load_checkpoint(args.out)
    for path in resume.resume_paths(args.out):
        path.unlink(missing_ok=True)
    size = weights.stat().st_size / 1e6
    print(f"saved {weights} ({size:.2f} MB) and {sidecar}; training {train_time:.0f} s",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
