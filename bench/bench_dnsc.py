#!/usr/bin/env python3
"""Latent-Diff DNSC benchmark (issue 14; spec ../shared/papers/dnsc.md section 6, E1): PSNR, SSIM,
latent MSE, NFE and seconds per image of the `dnsc` receiver's variants beside its controls
(Gaussian shrinkage, the fitted Gaussian's posterior mean, no de-noiser) and the DeepJSCC
links (SNR-adaptive `mmse` and `lmmse`, and DeepJSCC trained at one SNR, 10 and 20 dB, where
shipped), on CIFAR-10 test images; and the start-step sweep (PSNR against a fixed start K at
each SNR, ancestral DDPM, genie SNR: the paper's Figs. 6-7 mechanism).

  .venv/bin/python bench/bench_dnsc.py --images 500 --json runs/dnsc/bench.json \\
      --markdown docs/results_dnsc.md --plot docs/figures/dnsc_start_sweep.png

Every row of one scheme family sees the same sent latents and channel draw per (channel, SNR)
(one seeded draw; the VAE link and the DeepJSCC links draw with the same seed). Seconds per
image: the receiver alone, this machine.
"""

import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gnuradio.semcom.core import metrics
from gnuradio.semcom.core.cli import ArgumentParser, run_main
from gnuradio.semcom.core.data import to_tensor
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.models import checkpoint_for, jscc_fixed_snr_name, jscc_model_name, vae_name
from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.diffusion import dnsc
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.link_sim import equalized_batch

# row -> (link, registered scheme, options); link "vae" sends the KL-VAE latent (dnsc's
# transmitter), "jscc" the SNR-adaptive DeepJSCC user model, "jscc@S" DeepJSCC trained at S dB.
ROWS = {
    "dnsc": ("vae", "dnsc", {}),                                          # the paper's: matched t*, ancestral DDPM
    "dnsc (genie SNR)": ("vae", "dnsc", {"snr": "genie"}),
    "dnsc tweedie": ("vae", "dnsc", {"sampler": "tweedie"}),              # the prior's posterior mean
    "dnsc unipc-10": ("vae", "dnsc", {"sampler": "unipc", "steps": 10}),
    "dnsc fixed K=30": ("vae", "dnsc", {"start": "fixed", "k_fixed": 30, "snr": "genie"}),
    "gaussian shrinkage": ("vae", "dnsc", {"prior": "gaussian", "sampler": "tweedie"}),
    "fitted gaussian": ("vae", "dnsc", {"prior": "gaussian-full", "sampler": "tweedie"}),
    "no de-noiser": ("vae", "dnsc", {"denoise": "off"}),
    "deepjscc (mmse)": ("jscc", "mmse", {}),
    "deepjscc (lmmse)": ("jscc", "lmmse", {}),
    "deepjscc@10": ("jscc@10", "mmse", {}),
    "deepjscc@20": ("jscc@20", "mmse", {}),
}
SWEEP_K = (0, 5, 10, 15, 20, 30, 45, 60, 90, 130, 180, 260, 370)


def fixed_snr_model(snr_db: int) -> str:
    """DeepJSCC trained at one SNR (apps/train_jscc.py --snr-min S --snr-max S), AWGN."""
    return jscc_fixed_snr_name("awgn", 512, snr_db)


def link_model(link, channel, vae):
    if link == "vae":
        return vae
    if link == "jscc":
        return jscc_model_name("user", channel, 512)
    return fixed_snr_model(int(link.split("@")[1]))


def available(name):
    try:
        checkpoint_for(name)
        return True
    except CheckpointError:
        return False


def run_row(backend, scheme, obs, options, chunk):
    """(images, latents, nfe per image, seconds per image) of a scheme's receiver."""
    import dataclasses
    images, latents, nfe, t0 = [], [], 0.0, time.perf_counter()
    for n, start in enumerate(range(0, obs.n, chunk)):
        part = dataclasses.replace(obs.take(slice(start, start + chunk)), options=options, seed=obs.seed + n)
        res = backend.receive(scheme, part)
        images.append(res.images)
        latents.append(res.latents)
        nfe += res.nfe * part.n
    return (np.concatenate(images), np.concatenate(latents), nfe / obs.n, (time.perf_counter() - t0) / obs.n)


def score(images, latents, x, ref):
    m = metrics.image_metrics(to_tensor(images), to_tensor(ref), with_lpips=False)
    return {"psnr_db": metrics.mean_or_none(m["psnr_db"]), "ssim": metrics.mean_or_none(m["ssim"]),
            "latent_mse_db": metrics.db_mean(metrics.latent_mse_db(torch.from_numpy(latents), x).tolist())}


def bench(args, backend, images):
    rows = []
    links = {}
    points = [(c, s) for c in args.channels for s in args.snr]
    for channel, snr in tqdm(points, disable=args.no_progress, desc="operating points"):
        for name in args.rows:
            link, scheme, options = ROWS[name]
            if link.startswith("jscc@") and channel != "awgn":
                continue   # the paper's single-SNR baselines: AWGN models, AWGN rows
            model = link_model(link, channel, args.vae)
            if not available(model):
                print(f"bench_dnsc: {name}: no checkpoint {model}, row left out", file=sys.stderr)
                continue
            key = (link, channel, snr)
            if key not in links:
                gen = torch.Generator().manual_seed(args.seed)
                links[key] = equalized_batch(backend, images, images, channel, snr, math.inf, model, model, 1, gen,
                                             scheme="dnsc" if link == "vae" else "mmse")
            x, obs = links[key]
            out, lat, nfe, sec = run_row(backend, scheme, obs, options, args.chunk)
            row = {"row": name, "channel": channel, "snr_db": snr, "images": len(images), "nfe": nfe,
                   "s_per_image": sec, "options": options, "model": model}
            row.update(score(out, lat, x, images))
            rows.append(row)
        links = {k: v for k, v in links.items() if k[1:] == (channel, snr)}
    return rows


def sweep(args, backend, images):
    rows = []
    for channel, snr in tqdm([(c, s) for c in args.sweep_channels for s in args.snr], disable=args.no_progress,
                             desc="start-step sweep"):
        gen = torch.Generator().manual_seed(args.seed)
        model = args.vae
        x, obs = equalized_batch(backend, images, images, channel, snr, math.inf, model, model, 1, gen, scheme="dnsc")
        for k in args.sweep_k:
            options = {"denoise": "off"} if k == 0 else {"start": "fixed", "k_fixed": k, "snr": "genie"}
            out, lat, nfe, sec = run_row(backend, "dnsc", obs, options, args.chunk)
            row = {"channel": channel, "snr_db": snr, "k": k, "images": len(images), "nfe": nfe, "s_per_image": sec}
            row.update(score(out, lat, x, images))
            rows.append(row)
    return rows


def matched_t(snr_db):
    from gnuradio.semcom.diffusion.schedule import VPSchedule
    return dnsc.start_step(VPSchedule.linear(), 10 ** (-snr_db / 10)) + 1   # NFE of ancestral DDPM from t*


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def markdown(result):
    lines = [f"Command: `{result['command']}`", "",
             f"{result['images']} images ({result['data']}), seed {result['seed']}, {result['machine']}.", ""]
    for channel in result["channels"]:
        lines += [f"### {channel.upper()}", "",
                  "| receiver | " + " | ".join(f"{s:g} dB" for s in result["snr"]) + " | NFE at " +
                  " / ".join(f"{s:g}" for s in result["snr"]) + " dB | s/image (max) |",
                  "|---|" + "---|" * len(result["snr"]) + "---|---|"]
        for name in result["rows_order"]:
            got = {r["snr_db"]: r for r in result["rows"] if r["row"] == name and r["channel"] == channel}
            if not got:
                continue
            cells = [f"{fmt(got[s]['psnr_db'], '.2f')} / {fmt(got[s]['ssim'], '.3f')} / "
                     f"{fmt(got[s]['latent_mse_db'], '.1f')}" if s in got else "-" for s in result["snr"]]
            nfe = " / ".join(f"{got[s]['nfe']:.0f}" if s in got else "-" for s in result["snr"])
            sec = max(r["s_per_image"] for r in got.values())
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {nfe} | {sec:.3f} |")
        lines += ["", "Cells: PSNR (dB) / SSIM / latent MSE (dB, relative to the sent latent's power).", ""]
    if result.get("sweep"):
        lines += ["### Start-step sweep (ancestral DDPM from a fixed K, genie SNR; K = 0: no de-noiser)", "",
                  "| channel | SNR | t*+1 | " + " | ".join(f"K={k}" for k in result["sweep_k"]) + " | best K |",
                  "|---|---|---|" + "---|" * len(result["sweep_k"]) + "---|"]
        for channel in sorted({r["channel"] for r in result["sweep"]}):
            for snr in result["snr"]:
                got = {r["k"]: r for r in result["sweep"] if r["channel"] == channel and r["snr_db"] == snr}
                if not got:
                    continue
                best = max(got.values(), key=lambda r: r["psnr_db"])["k"]
                lines.append(f"| {channel} | {snr:g} dB | {matched_t(snr)} | " +
                             " | ".join(fmt(got[k]["psnr_db"], ".2f") if k in got else "-" for k in result["sweep_k"])
                             + f" | {best} |")
        lines.append("")
    return "\n".join(lines)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len({r["channel"] for r in result["sweep"]}), figsize=(11, 4), squeeze=False)
    for ax, channel in zip(axes[0], sorted({r["channel"] for r in result["sweep"]})):
        for snr in result["snr"]:
            got = sorted((r["k"], r["psnr_db"]) for r in result["sweep"] if r["channel"] == channel and r["snr_db"] == snr)
            if not got:
                continue
            line, = ax.plot([max(k, 1) for k, _ in got], [p for _, p in got], marker="o", label=f"{snr:g} dB")
            ax.axvline(matched_t(snr), color=line.get_color(), linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("start step K (K = 0, no de-noiser, drawn at 1; dotted: the matched t*)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"dnsc start-step sweep, {channel.upper()}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def float_list(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected a comma list of numbers, got {text!r}") from None


def main():
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=500, help="the first N CIFAR-10 test images")
    ap.add_argument("--vae", default=vae_name("cifar10", 512),
                    help="the KL-VAE (shipped name or path; its prior and Gaussian beside it)")
    ap.add_argument("--snr", default="0,5,10,15,20")
    ap.add_argument("--channels", default="awgn,rayleigh")
    ap.add_argument("--rows", default=",".join(ROWS), help="rows to run (names as in the table)")
    ap.add_argument("--sweep-channels", default="awgn", help="channels of the start-step sweep ('' = none)")
    ap.add_argument("--sweep-k", default=",".join(map(str, SWEEP_K)))
    ap.add_argument("--sweep-images", type=int, default=0, help="images of the sweep (0: --images)")
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default="")
    ap.add_argument("--markdown", default="", help="write the tables here (a fragment for docs/results_dnsc.md)")
    ap.add_argument("--plot", default="", help="the sweep's plot (PNG)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    args.snr = float_list(args.snr)
    args.channels = [c for c in args.channels.split(",") if c]
    args.sweep_channels = [c for c in args.sweep_channels.split(",") if c]
    args.sweep_k = [int(k) for k in float_list(args.sweep_k)]
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown or args.images < 1 or args.chunk < 1 or any(c not in ("awgn", "rayleigh")
                                                          for c in args.channels + args.sweep_channels):
        ap.error(f"unknown rows {unknown}" if unknown else "need --images, --chunk >= 1 and channels awgn/rayleigh")
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = LocalBackend()
    data = load_dataset("cifar10_test")
    images = data.images[:args.images]
    t0 = time.time()
    result = {"command": "python bench/bench_dnsc.py " + shlex.join(sys.argv[1:]), "images": len(images),
              "data": f"cifar10_test[:{len(images)}]", "seed": args.seed, "snr": args.snr,
              "channels": args.channels, "rows_order": args.rows, "sweep_k": args.sweep_k,
              "machine": f"{torch.get_num_threads()} torch threads, {backend.device}"}
    result["rows"] = bench(args, backend, images)
    result["sweep"] = sweep(args, backend, images[:args.sweep_images or len(images)]) if args.sweep_channels else []
    result["wall_time_s"] = round(time.time() - t0, 1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    text = markdown(result)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.plot and result["sweep"]:
        plot(result, args.plot)
    print(text)
    return 0


if __name__ == "__main__":
    run_main(main)
