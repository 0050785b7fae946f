#!/usr/bin/env python3
"""Held-out eps-loss of a diffusion prior beside its fitted Gaussian, on the same draws.

Latents of held-out CIFAR-10 test images (default cifar10_test[5000:10000], disjoint from the
training images and from the per-epoch monitor cifar10_test[:500]) through the prior's encoder
(its provenance names it), in the unit form the prior learns (the interferer's Rayleigh gain
folded in, drawn from --seed + 1000). Every model sees the same latents, steps t and noise
(diffusion/prior_eval.py); the losses are means over images with standard errors, and each
difference from the Gaussian is paired per image.

  .venv/bin/python apps/eval_prior.py --prior prior_user_awgn_k512
  .venv/bin/python apps/eval_prior.py --prior prior_user_awgn_k512 --compare old=runs/old/prior_user_awgn_k512
  .venv/bin/python apps/eval_prior.py --prior prior_user_awgn_k512 --write   # record it in the sidecar

The Gaussian is the prior's base when it has one, else gauss_<role>_<channel>_k<k>. Prints
one JSON object; --write stores it as provenance.held_out_eval of the prior's sidecar (the
weights, and so their SHA-256, are untouched).
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from gnuradio.semcom.core.checkpoint import checkpoint_paths, load_checkpoint, read_json_object, write_sidecar
from gnuradio.semcom.core.cli import ArgumentParser, run_main
from gnuradio.semcom.core.models import gaussian_name
from gnuradio.semcom.diffusion.dit import PRIOR_KIND, base_path, schedule_from_data
from gnuradio.semcom.diffusion.gaussian import KIND as GAUSSIAN_KIND
from gnuradio.semcom.diffusion.prior_eval import EVAL_IMAGES, eval_latents, evaluate_prior, gaussian_eps_fn
from gnuradio.semcom.inference.local import LocalBackend


def resolve(name):
    """A checkpoint name (shipped) or path -> path without extension."""
    return checkpoint_paths(name)[0].with_suffix("")


def main(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", required=True, help="the prior (shipped name or path)")
    ap.add_argument("--compare", action="append", default=[], metavar="[LABEL=]PRIOR",
                    help="another prior scored on the same draws (repeatable)")
    ap.add_argument("--gaussian", default="", help="the Gaussian (default: the prior's base, else "
                    "gauss_<role>_<channel>_k<k>)")
    ap.add_argument("--images", default=EVAL_IMAGES, help=f"held-out images (default {EVAL_IMAGES})")
    ap.add_argument("--draws", type=int, default=4, help="draws (t, eps) per latent (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", action="store_true",
                    help="record the result in the prior's sidecar provenance (give --prior as a path, e.g. "
                         "python/semcom/checkpoints/NAME, to record it in the source tree; a bare shipped name "
                         "resolves to the installed copy)")
    args = ap.parse_args(argv)
    if args.draws < 1:
        ap.error("--draws must be >= 1")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    path = resolve(args.prior)
    model, cfg, doc = load_checkpoint(path, PRIOR_KIND)
    meta = doc["provenance"]
    role, channel, k = meta["role"], meta["channel"], cfg.latent_dim // 2
    schedule = schedule_from_data(doc["schedule"])
    if args.gaussian:
        gpath = resolve(args.gaussian)
    elif cfg.base is not None:
        gpath = base_path(cfg.base["name"], path.with_suffix(".safetensors"))
    else:
        gpath = resolve(gaussian_name(role, channel, k))
    fit, _, _ = load_checkpoint(gpath, GAUSSIAN_KIND)
    others = {}
    for item in args.compare:
        label, sep, name = item.partition("=")
        label, name = (label, name) if sep else (Path(item).name, item)
        other, _, odoc = load_checkpoint(resolve(name), PRIOR_KIND)
        if odoc["schedule"] != doc["schedule"] or other.cfg.latent_dim != cfg.latent_dim:
            ap.error(f"--compare {item}: another schedule or latent size than the prior's")
        others[label] = other
    x = eval_latents(LocalBackend("cpu"), meta["encoder"], args.images, meta.get("encoder_snr_db", 20.0),
                     role, channel, args.seed)
    result = evaluate_prior(model, gaussian_eps_fn(fit, schedule), x, schedule, draws=args.draws,
                            seed=args.seed, others=others)
    command = "python apps/eval_prior.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = dict(result, spec=args.images, gaussian=gpath.name, command=command,
                  wall_time_s=round(time.time() - t0, 1))
    print(json.dumps(result, indent=2))
    if args.write:
        sidecar = checkpoint_paths(path)[1]
        full = read_json_object(sidecar)
        full["provenance"]["held_out_eval"] = result
        write_sidecar(sidecar, full)
        print(f"recorded in {sidecar}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
