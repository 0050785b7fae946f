#!/usr/bin/env python3
"""Train one ICDM latent prior (a small DiT, eps prediction, VP linear schedule) and save it.

The training latents are real JSCC latents: CIFAR-10 training images through a shipped
encoder (told --encoder-snr), power-normalised per image (mean|z|^2 = 1), in real form
[Re z; Im z], scaled to unit variance per real dimension (x sqrt 2). The interference prior
learns i = g u with the interferer's unknown channel gain folded in: g = 1 for AWGN,
g ~ CN(0, 1) per symbol (drawn afresh each epoch) for Rayleigh. The user prior learns the
latents as sent (the receiver knows and equalizes h).

--base gaussian (the default): eps(x_t, t) = eps_G(x_t, t) + r(x_t, t), eps_G the exact eps
of the full-covariance Gaussian fitted to the same training latents (the shipped
gauss_<role>_<channel>_k<k>, apps/fit_gaussian.py) and r the DiT with its output layer at
zero, so training starts AT the fitted Gaussian. --base none: the plain DiT (how the priors
before were trained). --init-from PRIOR starts the DiT from an existing prior's weights (its
output layer zeroed again, so the start is still the Gaussian).

  .venv/bin/python apps/train_prior.py --role user --channel awgn --k 512 --epochs 6 --seed 0 \\
      --threads 1 --out python/semcom/checkpoints/prior_user_awgn_k512

writes OUT.safetensors + OUT.json (kind "dit-prior": config with the Gaussian base named and
its SHA-256, the noise schedule as data, and provenance: command, data, epochs, steps, wall
time, losses, and the held-out eps-loss of the prior beside its Gaussian on the same draws on
latents of cifar10_test[5000:10000] - diffusion/prior_eval.py, rerun by apps/eval_prior.py).

Resumable (core/resume.py, shared with apps/train_jscc.py): after each epoch
OUT.resume.safetensors (model and optimizer tensors) and OUT.resume.json (epoch, step, RNG
states, scheduler, history, arguments) are written atomically; --resume continues from the
last finished epoch with the same result as an uninterrupted run; --stop-after N ends this
session after N epochs (resume files kept). The resume files are deleted when the prior is
saved.
"""

import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gnuradio.semcom.core.checkpoint import checkpoint_paths, load_checkpoint
from gnuradio.semcom.core.cli import ArgumentParser, run_main
from gnuradio.semcom.core.mapping import LATENT_SCALE
from gnuradio.semcom.core.models import gaussian_name, jscc_model_for
from gnuradio.semcom.core.resume import check_resume, load_resume, resume_paths, save_resume
from gnuradio.semcom.diffusion.dit import (LINEAR_SCHEDULE, PRIOR_KIND, DiTConfig, LatentDiT, base_path,
                                           eps_loss, gaussian_base, save_prior, schedule_from_data)
from gnuradio.semcom.diffusion.gaussian import KIND as GAUSSIAN_KIND
from gnuradio.semcom.diffusion.prior_eval import (EVAL_IMAGES, MONITOR_IMAGES, TRAIN_IMAGES, encode_symbols,
                                                  eval_latents, evaluate_prior, gaussian_eps_fn, unit_latents)
from gnuradio.semcom.inference.local import LocalBackend

TRAIN = TRAIN_IMAGES
HELD_OUT = MONITOR_IMAGES
# Arguments that may differ between a run and its resumption (they do not change the result).
SESSION_ARGS = ("resume", "stop_after", "threads", "no_progress")


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=("user", "interferer"), required=True)
    ap.add_argument("--channel", choices=("awgn", "rayleigh"), default="awgn")
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--base", choices=("gaussian", "none"), default="gaussian",
                    help="gaussian (default): eps = the fitted Gaussian's exact eps (gauss_<role>_<channel>_k<k>) "
                         "+ a DiT residual started at zero; none: the plain DiT (the priors before)")
    ap.add_argument("--gaussian", default="", help="the Gaussian base's checkpoint (default: the shipped "
                    "gauss_<role>_<channel>_k<k>)")
    ap.add_argument("--init-from", default="", metavar="CHECKPOINT",
                    help="start the DiT from this prior's weights (its output layer zeroed again)")
    ap.add_argument("--encoder", default="", metavar="CHECKPOINT",
                    help="the autoencoder whose latents the prior learns: a JSCC model or a KL-VAE (dnsc's "
                         "de-noiser: --encoder vae_cifar10_k512 --gaussian ...gauss_vae_cifar10_k512), a shipped "
                         "name or a path without extension (default: the role's shipped JSCC model)")
    ap.add_argument("--encoder-snr", type=float, default=20.0, help="SNR (dB) the encoder is told")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--max-images", type=int, default=0, help="use only the first N training images")
    ap.add_argument("--monitor-images", default=MONITOR_IMAGES,
                    help=f"held-out images of the per-epoch monitor (default {MONITOR_IMAGES})")
    ap.add_argument("--eval-images", default=EVAL_IMAGES,
                    help=f"held-out images of the final evaluation against the Gaussian (default {EVAL_IMAGES})")
    ap.add_argument("--eval-draws", type=int, default=4, help="draws (t, eps) per held-out latent (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true", help="continue from OUT.resume.* (the last finished epoch)")
    ap.add_argument("--stop-after", type=int, default=0, metavar="N",
                    help="end this session after N more epochs, keeping the resume files (0: train to the end)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if min(args.epochs, args.batch_size, args.k, args.width, args.depth, args.eval_draws) < 1 or args.lr <= 0:
        ap.error("--epochs, --batch-size, --k, --width, --depth, --eval-draws must be >= 1 and --lr > 0")
    if args.stop_after < 0:
        ap.error("--stop-after must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    command = "python apps/train_prior.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    run_args = {k: v for k, v in vars(args).items() if k not in SESSION_ARGS}
    check_resume(args.out, run_args, args.resume)

    schedule = schedule_from_data(LINEAR_SCHEDULE)  # recorded as data in the checkpoint
    base, fit = None, None
    if args.base == "gaussian" and args.encoder and not args.gaussian:
        raise SystemExit("train_prior: --encoder needs --gaussian (the Gaussian fitted to that encoder's "
                         "latents, apps/fit_gaussian.py --encoder) or --base none")
    if args.base == "gaussian":
        gname = args.gaussian or gaussian_name(args.role, args.channel, args.k)
        gpath = checkpoint_paths(gname)[0].with_suffix("") if args.gaussian else base_path(gname, args.out)
        fit, _, _ = load_checkpoint(gpath, GAUSSIAN_KIND)
        base = gaussian_base(Path(gpath).name, gpath, LATENT_SCALE)

    encoder = args.encoder or jscc_model_for(args.role, args.channel, args.k)  # the interferer's is AWGN-trained
    backend = LocalBackend("cpu")
    z_train, n_train = encode_symbols(backend, encoder, TRAIN[args.role], args.encoder_snr, args.max_images)
    z_test, n_test = encode_symbols(backend, encoder, args.monitor_images, args.encoder_snr)
    if z_train.shape[1] != args.k:
        raise SystemExit(f"train_prior: {encoder} sends {z_train.shape[1]} symbols per image, not --k {args.k}")
    test_x = unit_latents(z_test, args.role, args.channel, torch.Generator().manual_seed(12345))
    grid = 8  # 32x32 images: the encoder's 8x8 latent map
    cfg = DiTConfig(latent_dim=2 * args.k, grid=grid, width=args.width, depth=args.depth, heads=4, base=base)
    model = LatentDiT(cfg)
    if args.init_from:
        init, _, _ = load_checkpoint(args.init_from, PRIOR_KIND)
        state = {k: v for k, v in init.state_dict().items()}
        for layer in ("out", "out_ada"):  # the output layer starts at zero again
            state[f"{layer}.weight"] = torch.zeros_like(state[f"{layer}.weight"])
            state[f"{layer}.bias"] = torch.zeros_like(state[f"{layer}.bias"])
        model.load_state_dict(state)
    if fit is not None:
        model.attach_base(fit, schedule)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    steps_per_epoch = max(1, n_train // args.batch_size)
    total = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.05)
    history = {"epoch": [], "train_loss": [], "held_out_loss": []}
    first, step, elapsed, sessions = 1, 0, 0.0, []
    if args.resume:
        doc = load_resume(args.out, model, opt, sched, {"generator": gen})
        first, step, elapsed, history, sessions = (doc["epoch"] + 1, doc["step"], doc["elapsed_s"],
                                                   doc["history"], doc["sessions"])
        print(f"resuming {args.out} after epoch {doc['epoch']} (step {step})", file=sys.stderr, flush=True)
    # The Gaussian's loss on the monitor's very draws: the bar the prior must get under.
    monitor_gaussian = None
    if fit is not None:
        monitor_gaussian = eps_loss(model.base_eps, schedule, test_x, torch.Generator().manual_seed(7)).item()
    t_session = time.time()
    bar = tqdm(total=total, initial=step, disable=args.no_progress, unit="step")
    last = args.epochs if not args.stop_after else min(args.epochs, first - 1 + args.stop_after)
    for epoch in range(first, last + 1):
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
            step += 1
            bar.update(1)
        model.eval()
        with torch.no_grad():
            held = eps_loss(model, schedule, test_x, torch.Generator().manual_seed(7)).item()
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(losses)))
        history["held_out_loss"].append(held)
        wall = elapsed + time.time() - t_session
        versus = f" (Gaussian {monitor_gaussian:.4f})" if monitor_gaussian is not None else ""
        print(f"epoch {epoch}/{args.epochs}  train loss {np.mean(losses):.4f}  held-out loss {held:.4f}{versus}  "
              f"{wall:.0f} s", file=sys.stderr, flush=True)
        if epoch < args.epochs:
            save_resume(args.out, model, opt,
                        {"epoch": epoch, "step": step, "elapsed_s": wall, "history": history,
                         "sessions": sessions + [{"command": command, "epochs": [first, epoch]}], "args": run_args},
                        sched=sched, generators={"generator": gen})
    bar.close()
    if last < args.epochs:
        print(f"stopped after epoch {last} of {args.epochs}; continue with --resume", file=sys.stderr)
        return 0
    sessions = sessions + [{"command": command, "epochs": [first, last]}]
    train_wall = elapsed + time.time() - t_session

    meta = {"training_command": command,
            "role": args.role, "channel": args.channel, "k": args.k, "encoder": encoder,
            "encoder_snr_db": args.encoder_snr, "latent_scale": "x_u = sqrt(2) [Re z; Im z], mean|z|^2 = 1",
            "gain_folded": ("g ~ CN(0, 1) per symbol, redrawn each epoch" if args.role == "interferer"
                            and args.channel == "rayleigh" else "none (g = 1)"),
            "parameterisation": ("eps = fitted Gaussian's exact eps + DiT residual (output layer zero-initialised)"
                                 if base else "eps = DiT"),
            "init_from": args.init_from or None,
            "train_data": {"spec": TRAIN[args.role], "images": n_train},
            "held_out": {"spec": args.monitor_images, "images": n_test, "use": "per-epoch monitor"},
            "epochs": args.epochs, "steps": total,
            "batch_size": args.batch_size, "lr": args.lr, "optimizer": "AdamW, one-cycle", "seed": args.seed,
            "threads": args.threads, "sessions": sessions,
            "wall_time_s": round(train_wall, 1), "history": history,
            "final_held_out_loss": history["held_out_loss"][-1],
            "monitor_gaussian_loss": monitor_gaussian}
    if fit is not None:
        t1 = time.time()
        x_eval = eval_latents(backend, encoder, args.eval_images, args.encoder_snr, args.role, args.channel, args.seed)
        result = evaluate_prior(model, gaussian_eps_fn(fit, schedule), x_eval, schedule,
                                draws=args.eval_draws, seed=args.seed)
        meta["held_out_eval"] = dict(result, spec=args.eval_images, gaussian=base["name"],
                                     command=f"python apps/eval_prior.py --prior {args.out} --images "
                                             f"{shlex.quote(args.eval_images)} --draws {args.eval_draws} --seed {args.seed}",
                                     wall_time_s=round(time.time() - t1, 1))
        print(f"held-out ({args.eval_images}, {args.eval_draws} draws): prior {result['loss_prior']:.5f}, "
              f"Gaussian {result['loss_gaussian']:.5f}, difference {result['difference']:+.5f} "
              f"+- {result['difference_se']:.5f}", file=sys.stderr)
    weights, sidecar = save_prior(args.out, model, meta, schedule=LINEAR_SCHEDULE)
    for path in resume_paths(args.out):
        path.unlink(missing_ok=True)
    print(f"saved {weights} and {sidecar}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
