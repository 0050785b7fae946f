#!/usr/bin/env python3
"""JSCNA-AD benchmark (issue 16; spec ../shared/papers/jscna_ad.md section 6, E1): PSNR, SSIM, the
classifier-agreement proxy `accuracy`, ms per image, NFE (full-image passes of network work),
full-image NFE and patch-NFE of the `jscna-ad` rows beside their controls and DeepJSCC at the
same CBR (k = 512), on CIFAR-10 test images; and the (P ...) rows of `jscna-ad-pixel`, the paper's
pixel-space form at CBR 1/2 (k = 1536), beside DeepJSCC trained at k = 1536 only.

  .venv/bin/python bench/bench_jscna.py --images 500 --json runs/jscna/bench.json \\
      --markdown runs/jscna/bench.md [--figure runs/jscna/psnr.png] [--rows pixel]

Rows (the spec's letters): (a) jscna-ad, (b) uniform S_max, (c) uniform at (a)'s mean step count
(equal compute; rounded), (d) random importance, (e) the paper's fixed-150 ablation, (f) no
pre-compensation (receiver-side equalisation), (g) the transmitter's noise top-up to t = 150,
(h) DeepJSCC mmse and lmmse, (i) the latent prior's strongest simple control: the
posterior mean under the Gaussian fitted to the same VAE latents (dnsc's gaussian-full Tweedie
step, no network, no precoding), (j) the transmitter's deterministic DDIM inversion to s = 28
(reading R2), (k) (Rayleigh only) the transmitter inverts a noisy estimate
h_hat = sqrt(1 - e) h + sqrt(e) w of the fading (core/channel.csit) and signals its erasures.
Every row at one operating point sees the same channel draw (one seed); the Rayleigh fading is
i.i.d. per symbol and the transmitter gets it (genie CSIT) except in (k).
(P a), (P b), (P c), (P d), (P f) as (a), (b), (c), (d), (f) in pixel space; (P) crop off: the U-Net on the whole
image at every step (the exact masked process; (P a) runs it on a crop around the active
patches); (P i) the pixel prior's strongest simple control: the posterior mean of the start state
under the prior's own fitted stationary Gaussian (its Wiener filter, no network); (P) one Tweedie
step: the trained prior's own one-pass posterior-mean estimate at t* (s_max = 1); (P h) DeepJSCC
at k = 1536 (mmse, lmmse).
Milliseconds per image: the receiver alone, this machine, one batch of --batch images (TX NFE:
the transmitter's network calls per image, (j) only).
"""

import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gnuradio.semcom.core import metrics
from gnuradio.semcom.core.cli import ArgumentParser, name_list, run_main
from gnuradio.semcom.core.data import to_tensor
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.models import jscc_model_name, pixel_prior_name, vae_name
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.link_sim import equalized_batch, pool_extras

# row -> (scheme, options); "equal" marks (c), whose s_max is (a)'s network work: its mean step
# count (the DiT's token evaluations), or for (P c) the U-Net's passes over (P a)'s crops (nfe)
ROWS = {
    "(a) jscna-ad": ("jscna-ad", {}),
    "(b) uniform S_max": ("jscna-ad", {"adaptive": "off"}),
    "(c) uniform at equal compute": ("jscna-ad", {"adaptive": "off", "equal": True}),
    "(d) random importance": ("jscna-ad", {"importance": "random"}),
    "(e) paper: fixed 150": ("jscna-ad", {"start": "fixed150"}),
    "(f) no precoding (rx)": ("jscna-ad", {"precoding": "rx"}),
    "(g) noise top-up to 150": ("jscna-ad", {"noise_add": "topup"}),
    "(h) deepjscc mmse": ("mmse", {}),
    "(h) deepjscc lmmse": ("lmmse", {}),
    # the latent prior's strongest simple control: the posterior mean under the Gaussian fitted to the
    # same VAE latents (no network), on the unprecoded, MMSE-equalised latent with the true SNR
    "(i) fitted Gaussian (no network)": ("dnsc", {"prior": "gaussian-full", "sampler": "tweedie", "snr": "genie"}),
    # beyond the spec's list: reading R2 of the transmitter's noise, and CSIT that is not the genie's
    "(j) DDIM inversion to 28": ("jscna-ad", {"noise_add": "ddim"}),
    "(k) noisy CSIT e=0.05": ("jscna-ad", {"csit_error": 0.05}),
    "(k) noisy CSIT e=0.2": ("jscna-ad", {"csit_error": 0.2}),
    # jscna-ad-pixel, the paper's own form: the image itself at CBR 1/2 (k = 1536), beside DeepJSCC at k = 1536
    "(P a) jscna-ad-pixel": ("jscna-ad-pixel", {}),
    "(P b) pixel uniform S_max": ("jscna-ad-pixel", {"adaptive": "off"}),
    "(P c) pixel uniform at equal compute": ("jscna-ad-pixel", {"adaptive": "off", "equal": True}),
    "(P d) pixel random importance": ("jscna-ad-pixel", {"importance": "random"}),
    "(P f) pixel no precoding (rx)": ("jscna-ad-pixel", {"precoding": "rx"}),
    "(P) pixel whole-image network (crop off)": ("jscna-ad-pixel", {"crop": "off"}),
    "(P i) pixel fitted Gaussian (Wiener)": ("jscna-ad-pixel", {"prior": "gaussian"}),
    "(P) pixel prior: one Tweedie step": ("jscna-ad-pixel", {"adaptive": "off", "s_max": 1}),
    "(P h) deepjscc k=1536 mmse": ("mmse", {"k": 1536}),
    "(P h) deepjscc k=1536 lmmse": ("lmmse", {"k": 1536}),
}
LATENT_ROWS = [name for name in ROWS if not name.startswith("(P")]
ROW_SETS = {"latent": LATENT_ROWS, "pixel": [name for name in ROWS if name.startswith("(P")], "all": list(ROWS)}
KEYS = ("psnr_db", "ssim", "accuracy", "feature_dist")
TX_OPTIONS = ("precoding", "g_th", "noise_add", "t_target", "s_ddim", "tx_steps")   # what jscna-ad's transmitter reads


def run_row(backend, scheme, obs, options, batch):
    import dataclasses
    backend.receive(scheme, dataclasses.replace(obs.take(slice(0, 1)), options=options))   # warm-up: loads, caches
    images, nfe, extra, t0 = [], 0.0, [], time.perf_counter()
    for n, start in enumerate(range(0, obs.n, batch)):
        part = dataclasses.replace(obs.take(slice(start, start + batch)), options=options, seed=obs.seed + n)
        res = backend.receive(scheme, part)
        images.append(res.images)
        nfe += res.nfe * part.n
        extra.append((part.n, res.extra))
    ms = (time.perf_counter() - t0) / obs.n * 1000
    pooled = pool_extras(extra)   # the image-weighted means over the batches
    return np.concatenate(images), {"nfe": nfe / obs.n, "ms_per_image": ms, **{
        key: pooled.get(key) for key in ("full_image_nfe", "patch_nfe", "start_step", "tx_nfe")}}


def bench(args, backend, images):
    rows = []
    points = [("rayleigh", 4.0)] * args.paper_point + [(c, s) for c in args.channels for s in args.snr
                                                      if (c, s) != ("rayleigh", 4.0)]
    vae = vae_name("cifar10", 512)
    for channel, snr in tqdm(points, disable=args.no_progress, desc="operating points"):
        links = {}
        a_patch = {}   # scheme -> its (a) row's mean step count
        for name in args.rows:
            scheme, options = ROWS[name]
            options = dict(options)
            if options.pop("equal", False):
                if scheme not in a_patch:
                    continue
                options["s_max"] = max(1, round(a_patch[scheme]))
            csit_error = options.pop("csit_error", 0.0)
            if csit_error and channel == "awgn":   # nothing to estimate
                continue
            k = options.pop("k", 1536 if scheme == "jscna-ad-pixel" else 512)
            model = (vae if scheme in ("jscna-ad", "dnsc") else pixel_prior_name("cifar10")
                     if scheme == "jscna-ad-pixel" else jscc_model_name("user", channel, k))
            # one transmission per what the transmitter does (its precoding and noise adding)
            # every option the transmitter reads (the defaults' values are implied by their absence)
            key = (scheme, model, csit_error) + tuple(sorted((k, v) for k, v in options.items() if k in TX_OPTIONS))
            if key not in links:
                gen = torch.Generator().manual_seed(args.seed)
                links[key] = equalized_batch(backend, images, images, channel, snr, math.inf, model, model, 1, gen,
                                             scheme=scheme, options=options, csit_error=csit_error)[1]
            out, row = run_row(backend, scheme, links[key], options, args.batch)
            if csit_error:
                options["csit_error"] = csit_error
            if name == "(a) jscna-ad":
                a_patch[scheme] = row["patch_nfe"]   # the DiT computes exactly the active tokens
            elif name == "(P a) jscna-ad-pixel":
                a_patch[scheme] = row["nfe"]         # the U-Net's crops hold more than the active patches
            m = metrics.image_metrics(to_tensor(out), to_tensor(images), with_lpips=False)
            row.update({k: metrics.mean_or_none(m[k]) for k in KEYS})
            rows.append(dict(row, row=name, channel=channel, snr_db=snr, options=options, cbr=k / 3072,
                             images=len(images)))
    return rows


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def markdown(result):
    lines = [f"Command: `{result['command']}`", "",
             f"{result['images']} images ({result['data']}), seed {result['seed']}, {result['machine']}.", ""]
    for channel, snr in dict.fromkeys((r["channel"], r["snr_db"]) for r in result["rows"]):
        lines += [f"### {channel.upper()} {snr:g} dB", "",
                  "| row | CBR | PSNR (dB) | SSIM | accuracy | ms/image | NFE | full-image NFE | patch-NFE | t* | TX NFE |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["rows"]:
            if (r["channel"], r["snr_db"]) == (channel, snr):
                lines.append(f"| {r['row']} | 1/{round(1 / r['cbr'])} | {fmt(r['psnr_db'], '.2f')} | {fmt(r['ssim'], '.3f')} | "
                             f"{fmt(r['accuracy'], '.2f')} | {r['ms_per_image']:.1f} | {r['nfe']:.1f} | "
                             f"{fmt(r['full_image_nfe'], '.0f')} | {fmt(r['patch_nfe'], '.1f')} | "
                             f"{fmt(r['start_step'], '.0f')} | {fmt(r.get('tx_nfe'), '.0f')} |")
        lines.append("")
    return "\n".join(lines)


def figure(result, path):
    """PSNR vs SNR, one panel per channel, one line per row (each at its CBR)."""
    from gnuradio.semcom.core.plots import save_metric_panels
    panels = {}
    for r in result["rows"]:
        line = panels.setdefault(f"{r['channel'].upper()}", {}).setdefault(f"{r['row']} (CBR 1/{round(1 / r['cbr'])})", ([], []))
        line[0].append(r["snr_db"])
        line[1].append(r["psnr_db"])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_metric_panels(panels, path, "PSNR (dB)", f"bench_jscna, {result['images']} images")


def parse_args(argv=None):
    from gnuradio.semcom.core.channel import parse_db_list
    ap = ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--data", default="cifar10_test")
    ap.add_argument("--rows", default="latent", help=f"latent (the rows (a)-(k), the default), pixel (the (P ...) "
                    f"rows: jscna-ad-pixel's, CBR 1/2), all, or comma-separated, of: {', '.join(ROWS)}")
    ap.add_argument("--channels", default="awgn,rayleigh")
    ap.add_argument("--snr", type=parse_db_list, default=parse_db_list("0,5,10,15,20"),
                    help="the sweep's SNRs (Rayleigh 4 dB, the paper's Table I point, always runs first)")
    ap.add_argument("--paper-point", action=__import__("argparse").BooleanOptionalAction, default=True,
                    help="run Rayleigh 4 dB (the paper's Table I point) first (--no-paper-point: only the sweep)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--figure", help="PSNR vs SNR per channel, a line per row (PNG)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    args.rows = ROW_SETS.get(args.rows) or name_list(ap, "--rows", args.rows, list(ROWS))
    args.channels = name_list(ap, "--channels", args.channels, ("awgn", "rayleigh"))
    if args.images < 1 or args.batch < 1:
        ap.error("--images and --batch must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    images = load_dataset(args.data).images[:args.images]
    result = {"command": "python bench/bench_jscna.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "data": f"{args.data}[:{len(images)}]", "images": len(images), "seed": args.seed,
              "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU"}
    t0 = time.time()
    result["rows"] = bench(args, LocalBackend("cpu"), images)
    result["wall_s"] = round(time.time() - t0, 1)
    text = markdown(result)
    print(text)
    for path, content in ((args.json, json.dumps(result, indent=1) + "\n"), (args.markdown, text + "\n")):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
    if args.figure:
        figure(result, args.figure)
    return 0


if __name__ == "__main__":
    run_main(main)
