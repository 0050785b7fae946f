#!/usr/bin/env python3
"""Train the KL-VAE whose latent the `dnsc` and JSCNA-AD schemes send (nets/kl_vae.py), and save it.

No channel in the loop (the paper's stage 1): MSE + KL + (from --adv-start-epoch) the hinge
PatchGAN loss with the adaptive weight. One seeded command:

  .venv/bin/python apps/train_vae.py --epochs 16 --seed 0 --threads 1 --no-progress \\
      --out python/semcom/checkpoints/vae_cifar10_k512

writes OUT.safetensors + OUT.json (kind "kl-vae": config; the latent scale is a tensor of the
weights; provenance: command, data, epochs, steps, wall time, per-epoch log, the latent
statistics the scale came from, and the held-out PSNR/SSIM of encode -> decode, no channel).

Data (disjoint): training CIFAR-10 train batches 1+2 (20 000 images, the DeepJSCC user's, so the
two systems it is compared with saw the same images; batch 3 stays the interferer's); per-epoch
monitor cifar10_test[1000:1500]; final held-out evaluation cifar10_test[5000:10000]. Neither
touches the first 1000 test images the benches score. Random horizontal flips.

The latent scale: after the last epoch, 1 / std of the encoder means over the (unflipped)
training images; encode() then gives unit-variance latents.

Optimisation: Adam, one parameter group for the autoencoder (betas 0.9, 0.999) and one for the
discriminator (betas 0.5, 0.9, as taming's); each update fills the gradients of one group only
(Adam skips parameters without a gradient), so this is two optimizers in one object, which
core/resume.py saves whole. Linear warm-up, then cosine decay to 0.05 x lr, over all steps.

Resumable (core/resume.py, as apps/train_jscc.py and apps/train_prior.py): after each epoch
OUT.resume.safetensors (autoencoder, discriminator and Adam tensors) and OUT.resume.json (epoch,
step, RNG states, scheduler, history, log, arguments) are written atomically; --resume continues
from the last finished epoch with the very weights of an uninterrupted run; --stop-after N ends
this session after N epochs. A run is never started over existing resume files without --resume,
nor resumed with other arguments (only --threads, --no-progress, --log-every, --resume and
--stop-after may differ). The resume files are deleted when the model is saved.
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
from tqdm import tqdm

from gnuradio.semcom.core.cli import ArgumentParser, check_out_path, run_main
from gnuradio.semcom.core.data import DataError, load_images, to_tensor, to_uint8
from gnuradio.semcom.core.lr_schedule import epoch_schedule
from gnuradio.semcom.core.metrics import psnr, ssim
from gnuradio.semcom.core.resume import check_resume, load_resume, resume_paths, save_resume
from gnuradio.semcom.nets import kl_vae

TRAIN_DATA = "cifar10_train_batch1+cifar10_train_batch2"
MONITOR_DATA = "cifar10_test[1000:1500]"
EVAL_DATA = "cifar10_test[5000:10000]"
# Arguments that may differ between a run and its resumption (they do not change the result).
SESSION_ARGS = ("resume", "stop_after", "threads", "no_progress", "log_every")
MIN_LR_RATIO = 0.05
EVAL_BATCH = 250


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output path without extension (OUT.safetensors, OUT.json)")
    ap.add_argument("--train-data", default=TRAIN_DATA, help=f"training images (default {TRAIN_DATA})")
    ap.add_argument("--monitor-data", default=MONITOR_DATA,
                    help=f"held-out images of the per-epoch monitor (default {MONITOR_DATA})")
    ap.add_argument("--eval-data", default=EVAL_DATA,
                    help=f"held-out images of the final PSNR/SSIM (default {EVAL_DATA})")
    ap.add_argument("--data-dir", default=None, help="folder of the named .npz sets (default $SEMCOM_DATA "
                    "or ../shared/data)")
    ap.add_argument("--max-images", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of both parameter groups")
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--latent-channels", type=int, default=16,
                    help="latent channels at H/4 x W/4 (16: 1024 reals = 512 complex symbols for 32x32)")
    ap.add_argument("--width", type=int, default=64, help="autoencoder channels at H/2")
    ap.add_argument("--width-low", type=int, default=96, help="autoencoder channels at H/4")
    ap.add_argument("--res-blocks", type=int, default=1, help="residual blocks per stage")
    ap.add_argument("--groups", type=int, default=16, help="GroupNorm groups (divides both widths)")
    ap.add_argument("--no-attention", action="store_true", help="no self-attention block")
    ap.add_argument("--kl-weight", type=float, default=1e-5, help="weight of the KL term (sum over the latent)")
    ap.add_argument("--no-adv", action="store_true", help="no discriminator: MSE + KL only")
    ap.add_argument("--adv-weight", type=float, default=0.1, help="adversarial weight (times the adaptive weight)")
    ap.add_argument("--adv-start-epoch", type=int, default=0,
                    help="first epoch with the discriminator on (0: the epoch after half of --epochs)")
    ap.add_argument("--disc-width", type=int, default=32, help="discriminator channels of its first layer")
    ap.add_argument("--max-steps-per-epoch", type=int, default=0, help="cap steps per epoch (0: full epochs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--log-every", type=int, default=0, metavar="N",
                    help="also log the running losses every N steps (0: once per epoch)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT.resume.* (the last finished epoch)")
    ap.add_argument("--stop-after", type=int, default=0, metavar="N",
                    help="end this session after N more epochs, keeping the resume files (0: train to the end)")
    args = ap.parse_args(argv)
    for name in ("epochs", "batch_size", "latent_channels", "width", "width_low", "groups", "disc_width", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("max_images", "warmup_steps", "res_blocks", "adv_start_epoch", "max_steps_per_epoch",
                 "stop_after", "log_every"):
        if getattr(args, name) < 0:
            ap.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("lr", "kl_weight", "adv_weight"):
        v = getattr(args, name)
        if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
            ap.error(f"--{name.replace('_', '-')} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, got {v}")
    if args.adv_start_epoch > args.epochs:
        ap.error(f"--adv-start-epoch ({args.adv_start_epoch}) is after the last epoch ({args.epochs})")
    check_out_path(ap, args.out)
    return args


def adv_start(args) -> int:
    """The first epoch with the discriminator on (None: never)."""
    if args.no_adv:
        return None
    return args.adv_start_epoch or args.epochs // 2 + 1


@torch.no_grad()
def reconstruction_quality(vae: kl_vae.KLVAE, images: np.ndarray, scaled: bool) -> dict:
    """Mean per-image PSNR (dB) and SSIM of the 8-bit reconstructions of uint8 NHWC `images`
    (no channel): through encode/decode when the scale is set (`scaled`), else from the encoder
    means directly (the same images, the scale cancels)."""
    vae.eval()
    psnrs, ssims = [], []
    for i in range(0, len(images), EVAL_BATCH):
        x = to_tensor(images[i:i + EVAL_BATCH])
        if scaled:
            rec = vae.decode(vae.encode(x))
        else:
            rec = vae.reconstruct_raw(vae.moments(x)[0]).clamp(0, 1)
        rec8 = to_tensor(to_uint8(rec))
        psnrs.append(psnr(rec8, x))
        ssims.append(ssim(rec8, x))
    return {"psnr_db": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean()),
            "images": int(len(images))}


def main(argv=None):
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = "python apps/train_vae.py " + shlex.join(argv)
    run_args = {k: v for k, v in vars(args).items() if k not in SESSION_ARGS}
    check_resume(args.out, run_args, args.resume)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    try:
        train_set = load_images(args.train_data, args.data_dir)
        monitor_set = load_images(args.monitor_data, args.data_dir)
        eval_set = load_images(args.eval_data, args.data_dir)
    except DataError as exc:
        print(f"train_vae: error: {exc}", file=sys.stderr)
        return 2
    train_images = train_set.images[:args.max_images] if args.max_images else train_set.images
    n, h, w, c = train_images.shape
    for name, s in (("monitor", monitor_set), ("eval", eval_set)):
        if s.images.shape[1:] != train_images.shape[1:]:
            print(f"train_vae: error: {name} images {s.images.shape[1:]} differ from the training images "
                  f"{train_images.shape[1:]}", file=sys.stderr)
            return 2
    if h != w:
        print(f"train_vae: error: the KL-VAE takes square images, got {h}x{w}", file=sys.stderr)
        return 2
    try:
        cfg = kl_vae.KLVAEConfig(image_size=h, image_channels=c, latent_channels=args.latent_channels,
                                 width=args.width, width_low=args.width_low, res_blocks=args.res_blocks,
                                 groups=args.groups, attention=not args.no_attention)
        disc_cfg = kl_vae.DiscriminatorConfig(image_channels=c, width=args.disc_width)
    except ValueError as exc:
        print(f"train_vae: error: {exc}", file=sys.stderr)
        return 2

    # The discriminator is built from its own seed, so the autoencoder's start (and, before the
    # delayed start, its whole trajectory) does not depend on whether there is one.
    vae = kl_vae.KLVAE(cfg)
    parts = {"vae": vae}
    start = adv_start(args)
    if start is not None:
        with torch.random.fork_rng():
            torch.manual_seed(args.seed + 1)
            parts["disc"] = kl_vae.PatchDiscriminator(disc_cfg)
    trainee = torch.nn.ModuleDict(parts)  # what the resume files hold
    groups = [{"params": list(vae.parameters()), "betas": (0.9, 0.999)}]
    if "disc" in parts:
        groups.append({"params": list(parts["disc"].parameters()), "betas": (0.5, 0.9)})
    opt = torch.optim.Adam(groups, lr=args.lr)
    steps_per_epoch, total, sched = epoch_schedule(opt, n, args.batch_size, args.epochs, args.warmup_steps,
                                                   MIN_LR_RATIO, args.max_steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)  # batch order, flips, reparameterisation noise
    weights = kl_vae.LossWeights(kl=args.kl_weight, adversarial=args.adv_weight)

    history = {"epoch": [], "rec": [], "kl": [], "train_psnr_db": [], "gen": [], "disc": [],
               "adaptive_weight": [], "monitor_psnr_db": [], "monitor_ssim": [], "seconds": []}
    first, step, elapsed, sessions, log_lines = 1, 0, 0.0, [], []
    if args.resume:
        doc = load_resume(args.out, trainee, opt, sched, {"generator": gen})
        first, step, elapsed = doc["epoch"] + 1, doc["step"], doc["elapsed_s"]
        history, sessions, log_lines = doc["history"], doc["sessions"], doc["log"]
        print(f"resuming {args.out} after epoch {doc['epoch']} (step {step})", file=sys.stderr, flush=True)

    def log(line):
        log_lines.append(line)
        print(line, file=sys.stderr, flush=True)

    if first == 1:
        log(f"train_vae: {command}")
        log(f"  config {cfg.to_dict()}: {kl_vae.count_parameters(vae):,} parameters, latent {cfg.latent_shape} = "
            f"k {cfg.k} complex symbols, CBR {cfg.cbr:.4f}; discriminator "
            + (f"{kl_vae.count_parameters(parts['disc']):,} parameters from epoch {start}" if start else "off"))
        log(f"  train {args.train_data} ({n} images), {steps_per_epoch} steps/epoch x {args.epochs}; "
            f"monitor {args.monitor_data} ({len(monitor_set)}), eval {args.eval_data} ({len(eval_set)})")

    t_session = time.time()
    last = args.epochs if not args.stop_after else min(args.epochs, first - 1 + args.stop_after)
    bar = tqdm(total=total, initial=step, disable=args.no_progress, unit="step")
    disc_params = list(parts["disc"].parameters()) if "disc" in parts else []
    for epoch in range(first, last + 1):
        adversarial = start is not None and epoch >= start
        vae.train()
        perm = torch.randperm(n, generator=gen)
        sums = {"rec": 0.0, "kl": 0.0, "mse": 0.0, "gen": 0.0, "disc": 0.0, "adaptive_weight": 0.0}
        t_epoch = time.time()
        for s in range(steps_per_epoch):
            index = perm[s * args.batch_size:(s + 1) * args.batch_size].numpy()
            x = to_tensor(train_images[np.sort(index)])
            flip = torch.rand(len(x), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            # the autoencoder's update: its group's gradients only
            loss, rec, stats = kl_vae.autoencoder_loss(vae, x, weights, parts["disc"] if adversarial else None, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for p in disc_params:
                p.grad = None
            opt.step()
            if adversarial:  # the discriminator's update on the same batch
                opt.zero_grad(set_to_none=True)
                d_loss = kl_vae.discriminator_loss(parts["disc"], x, rec)
                d_loss.backward()
                opt.step()
                stats["disc"] = d_loss.item()
            sched.step()
            step += 1
            for key in sums:
                sums[key] += stats.get(key, 0.0)
            bar.update(1)
            if args.log_every and (s + 1) % args.log_every == 0:
                print(f"  epoch {epoch} step {s + 1}/{steps_per_epoch}: mse {sums['mse'] / (s + 1):.5f}  "
                      f"kl {sums['kl'] / (s + 1):.1f}" + (f"  gen {sums['gen'] / (s + 1):+.3f}  disc "
                      f"{sums['disc'] / (s + 1):.3f}  lambda {sums['adaptive_weight'] / (s + 1):.3g}"
                      if adversarial else "") + f"  {time.time() - t_epoch:.0f} s", file=sys.stderr, flush=True)
        means = {k: v / steps_per_epoch for k, v in sums.items()}
        monitor = reconstruction_quality(vae, monitor_set.images, scaled=False)
        history["epoch"].append(epoch)
        history["rec"].append(means["rec"])
        history["kl"].append(means["kl"])
        history["train_psnr_db"].append(-10 * math.log10(max(means["mse"], 1e-20)))
        history["gen"].append(means["gen"] if adversarial else None)
        history["disc"].append(means["disc"] if adversarial else None)
        history["adaptive_weight"].append(means["adaptive_weight"] if adversarial else None)
        history["monitor_psnr_db"].append(monitor["psnr_db"])
        history["monitor_ssim"].append(monitor["ssim"])
        history["seconds"].append(round(time.time() - t_epoch, 1))
        wall = elapsed + time.time() - t_session
        log(f"epoch {epoch}/{args.epochs}  train mse {means['mse']:.5f} ({history['train_psnr_db'][-1]:.2f} dB)  "
            f"kl {means['kl']:.1f}" + (f"  gen {means['gen']:+.3f}  disc {means['disc']:.3f}  "
                                       f"lambda {means['adaptive_weight']:.3g}" if adversarial else "")
            + f"  monitor {monitor['psnr_db']:.2f} dB / SSIM {monitor['ssim']:.4f}  "
              f"{history['seconds'][-1]:.0f} s (total {wall:.0f} s)")
        if epoch < args.epochs:
            save_resume(args.out, trainee, opt,
                        {"epoch": epoch, "step": step, "elapsed_s": wall, "history": history, "log": log_lines,
                         "sessions": sessions + [{"command": command, "epochs": [first, epoch]}],
                         "args": run_args},
                        sched=sched, generators={"generator": gen})
    bar.close()
    if last < args.epochs:
        print(f"stopped after epoch {last} of {args.epochs}; continue with --resume", file=sys.stderr, flush=True)
        return 0
    sessions = sessions + [{"command": command, "epochs": [first, last]}]
    train_wall = elapsed + time.time() - t_session

    # The latent scale, on the unflipped training images; then the held-out ceiling (no channel).
    t1 = time.time()
    scale = kl_vae.calibrate_latent_scale(
        vae, (to_tensor(train_images[i:i + EVAL_BATCH]) for i in range(0, n, EVAL_BATCH)))
    held_out = reconstruction_quality(vae, eval_set.images, scaled=True)
    log(f"latent scale {scale['scale']:.5f} (encoder means: mean {scale['mean']:+.4f}, std {scale['std']:.4f} over "
        f"{n} training images); held-out {args.eval_data}: PSNR {held_out['psnr_db']:.2f} dB, "
        f"SSIM {held_out['ssim']:.4f} ({time.time() - t1:.0f} s)")

    provenance = {
        "training_command": command,
        "arguments": vars(args),
        "train_data": {"spec": args.train_data, "files": [Path(f).name for f in train_set.files], "images": n},
        "monitor_data": {"spec": args.monitor_data, "images": len(monitor_set), "use": "per-epoch monitor"},
        "training": {"epochs": args.epochs, "steps": step, "steps_per_epoch": steps_per_epoch,
                     "batch_size": args.batch_size, "lr": args.lr,
                     "schedule": f"linear warm-up {args.warmup_steps} steps, cosine to {MIN_LR_RATIO:g} x lr",
                     "optimizer": "Adam: autoencoder betas (0.9, 0.999), discriminator betas (0.5, 0.9)",
                     "losses": "sum-over-pixels squared error + kl_weight x KL (sum over the latent) + "
                               "[from adv_start_epoch] adv_weight x adaptive weight x hinge generator loss",
                     "kl_weight": args.kl_weight,
                     "adversarial": None if start is None else {
                         "weight": args.adv_weight, "start_epoch": start, "loss": "hinge",
                         "adaptive_weight": "|grad L_rec| / (|grad L_G| + 1e-4) at decoder.out.weight, "
                                            "clamped to [0, 1e4]",
                         "discriminator": {"config": vars(disc_cfg),
                                           "parameters": kl_vae.count_parameters(parts["disc"]),
                                           "shipped": False}},
                     "augmentation": "random horizontal flip", "seed": args.seed, "threads": args.threads,
                     "wall_time_s": round(train_wall, 1), "sessions": sessions},
        "latent_scale": {"value": scale["scale"], "encoder_mean_mean": scale["mean"],
                         "encoder_mean_std": scale["std"], "elements": scale["elements"],
                         "data": args.train_data + (f"[:{args.max_images}]" if args.max_images else ""),
                         "rule": "1 / std of every element of the encoder means over the training images"},
        "held_out": dict(held_out, spec=args.eval_data,
                         note="mean per-image PSNR and SSIM of 8-bit encode -> decode reconstructions, no channel"),
        "history": history,
        "log": log_lines,
        "software": {"python": platform.python_version(), "torch": torch.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    weights_path, sidecar = kl_vae.save_vae(args.out, vae, provenance)
    kl_vae.load_vae(args.out)  # what we ship must load
    for path in resume_paths(args.out):
        path.unlink(missing_ok=True)
    print(f"saved {weights_path} ({weights_path.stat().st_size / 1e6:.2f} MB) and {sidecar}; "
          f"training {train_wall:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main, "the resume files of the last finished epoch are kept (continue with --resume)")
