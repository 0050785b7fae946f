#!/usr/bin/env python3
"""Train one ICDM latent prior (a small DiT, eps prediction, VP linear schedule) and save it.

The training latents are real JSCC latents: CIFAR-10 training images through a shipped
encoder (told --encoder-snr), power-normalised per image (mean|z|^2 = 1), in real form
[Re z; Im z], scaled to unit variance per real dimension (x sqrt 2). The interference prior
learns i = g u with the interferer's unknown channel gain folded in: g = 1 for AWGN,
g ~ CN(0, 1) per symbol (drawn afresh each epoch) for Rayleigh. The user prior learns the
latents as sent (the receiver knows and equalizes h).

  .venv/bin/python apps/train_prior.py --role user --channel awgn --k 512 --epochs 60 --seed 0 \\
      --out python/semcom/checkpoints/prior_user_awgn_k512

writes OUT.safetensors + OUT.json (kind "dit-prior": config, the noise schedule as data, and
provenance: command, data, epochs, steps, wall time, losses).
"""

import shlex
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from gnuradio.semcom.core.data import load_images
from gnuradio.semcom.core.mapping import complex_to_real, to_symbols
from gnuradio.semcom.core.mapping import LATENT_SCALE
from gnuradio.semcom.core.models import jscc_model_for
from gnuradio.semcom.diffusion.dit import (LINEAR_SCHEDULE, DiTConfig, LatentDiT, eps_loss, save_prior,
                                           schedule_from_data)
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.core.cli import ArgumentParser, run_main

TRAIN = {"user": "cifar10_train_batch1+cifar10_train_batch2", "interferer": "cifar10_train_batch3"}
HELD_OUT = "cifar10_test[:500]"


def latents(backend, model, spec, snr_db, max_images):
    images = load_images(spec).images
    if max_images:
        images = images[:max_images]
    out = [backend.encode(model, images[i:i + 500], snr_db) for i in range(0, len(images), 500)]
    z, _ = to_symbols(torch.from_numpy(np.concatenate(out)))
    return z, len(images)


def unit_latents(z, role, channel, generator):
    """Real unit-variance form of the latents a prior learns: the user's z as sent (the
    receiver knows h), the interferer's g u with its unknown gain folded in (g = 1 for AWGN,
    CN(0, 1) per symbol for Rayleigh)."""
    if role == "interferer" and channel == "rayleigh":
        z = z * torch.randn(z.shape, dtype=z.dtype, generator=generator)
    return complex_to_real(z) / LATENT_SCALE  # the scale the receivers undo


def main(argv=None):
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--role", choices=("user", "interferer"), required=True)
    ap.add_argument("--channel", choices=("awgn", "rayleigh"), default="awgn")
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--encoder-snr", type=float, default=20.0, help="SNR (dB) the encoder is told")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--max-images", type=int, default=0, help="use only the first N training images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if min(args.epochs, args.batch_size, args.k, args.width, args.depth) < 1 or args.lr <= 0:
        ap.error("--epochs, --batch-size, --k, --width, --depth must be >= 1 and --lr > 0")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)

    encoder = jscc_model_for(args.role, args.channel, args.k)  # the interferer's is AWGN-trained
    backend = LocalBackend("cpu")
    t0 = time.time()
    z_train, n_train = latents(backend, encoder, TRAIN[args.role], args.encoder_snr, args.max_images)
    z_test, n_test = latents(backend, encoder, HELD_OUT, args.encoder_snr, 0)
    test_x = unit_latents(z_test, args.role, args.channel, torch.Generator().manual_seed(12345))
    grid = 8  # 32x32 images: the encoder's 8x8 latent map
    cfg = DiTConfig(latent_dim=2 * args.k, grid=grid, width=args.width, depth=args.depth, heads=4)
    model = LatentDiT(cfg)
    schedule = schedule_from_data(LINEAR_SCHEDULE)  # recorded as data in the checkpoint
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    steps_per_epoch = max(1, n_train // args.batch_size)
    total = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.05)
    history = {"epoch": [], "train_loss": [], "held_out_loss": []}
    bar = tqdm(total=total, disable=args.no_progress, unit="step")
    for epoch in range(1, args.epochs + 1):
        model.train()
        x = unit_latents(z_train, args.role, args.channel, gen)
        perm = torch.randperm(n_train, generator=gen)
        losses = []
        for s in range(steps_per_epoch):
            loss = eps_loss(model, schedule, x[perm[s * args.batch_size:(s + 1) * args.batch_size]], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
        model.eval()
        with torch.no_grad():
            held = eps_loss(model, schedule, test_x, torch.Generator().manual_seed(7)).item()
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(losses)))
        history["held_out_loss"].append(held)
        print(f"epoch {epoch}/{args.epochs}  train loss {np.mean(losses):.4f}  held-out loss {held:.4f}  "
              f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    bar.close()
    meta = {"training_command": "python apps/train_prior.py " + shlex.join(sys.argv[1:] if argv is None else argv),
            "role": args.role, "channel": args.channel, "k": args.k, "encoder": encoder,
            "encoder_snr_db": args.encoder_snr, "latent_scale": "x_u = sqrt(2) [Re z; Im z], mean|z|^2 = 1",
            "gain_folded": ("g ~ CN(0, 1) per symbol, redrawn each epoch" if args.role == "interferer"
                            and args.channel == "rayleigh" else "none (g = 1)"),
            "train_data": {"spec": TRAIN[args.role], "images": n_train}, "held_out": {"spec": HELD_OUT, "images": n_test},
            "epochs": args.epochs, "steps": total,
            "batch_size": args.batch_size, "lr": args.lr, "optimizer": "AdamW, one-cycle", "seed": args.seed,
            "wall_time_s": round(time.time() - t0, 1), "history": history,
            "final_held_out_loss": history["held_out_loss"][-1]}
    weights, sidecar = save_prior(args.out, model, meta, schedule=LINEAR_SCHEDULE)
    print(f"saved {weights} and {sidecar}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
