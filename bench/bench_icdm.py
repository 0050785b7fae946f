#!/usr/bin/env python3
"""ICDM benchmark and tuning: latent MSE, PSNR, SSIM, LPIPS, NFE and seconds per image of the
diffusion receivers against both linear baselines (mmse, and the interference-aware lmmse),
on CIFAR-10 with the shipped JSCC models and priors.

  # tables for docs/results_icdm.md (CIFAR-10 test):
  .venv/bin/python bench/bench_icdm.py --images 512 --json runs/icdm.json --markdown docs/results_icdm.md
  # a page from several runs (e.g. one per channel, run in parallel) and the tuning:
  .venv/bin/python bench/bench_icdm.py --render runs/a.json,runs/b.json,runs/tune.json --markdown docs/results_icdm.md
  # tuning of the receivers' defaults (CIFAR-10 *training* images, never the test set):
  .venv/bin/python bench/bench_icdm.py --tune --images 256 --json runs/tune_icdm.json

Every receiver sees the same equalized latents per (channel, SINR) (one seeded channel draw).
Seconds per image are wall time on this machine for the receiver alone (no JSCC coding).
"""

import dataclasses
import itertools
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gnuradio.semcom.core import metrics
from gnuradio.semcom.core.data import to_tensor
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom import schemes
from gnuradio.semcom.core.models import default_models
from gnuradio.semcom.schemes.link_sim import equalized_batch
from gnuradio.semcom.inference import get_backend
from gnuradio.semcom.core.cli import ArgumentParser, run_main

# The registry's DeepJSCC family (every scheme that cleans the equalized latent), the linear
# ones first (no priors), then by the priors they run; each variant after its base scheme.
FAMILY = sorted((n for n in schemes.names() if schemes.get(n).family == "deepjscc"),
                key=lambda n: (len(schemes.get(n).priors), n))
# Not registered receivers: a registered one with options (what the learned priors add).
# icdm-pm*: the Bayes-consistent configuration: from the posterior mean under the fitted
# Gaussians (lmmse-full's estimate) at each image's matched step, the surrogate exact for
# Gaussian priors at zeta 1, the corrector guided too; with both fitted Gaussians as priors it
# is lmmse-full exactly, so each learned prior's contribution is what it changes from there.
BAYES = {"start": "posterior-mean", "surrogate": "prior-covariance", "zeta_x": 1.0, "zeta_i": 1.0,
         "guided_corrector": True}
# ICDM as in the paper: the observation start, the isotropic surrogate, the guidance weights
# tuned per channel type on training images (the tables below): icdm before issue 12.
PAPER = {"start": "observation", "surrogate": "isotropic", "guided_corrector": False,
         "zeta_x": {"awgn": 2.0, "rayleigh": 1.0}, "zeta_i": {"awgn": 0.5, "rayleigh": 2.0}}
VARIANTS = {"icdm-gaussian": ("icdm", dict(PAPER, prior="gaussian")),
            # the paper's sampler on the fitted full-covariance Gaussians: with exact Gaussian priors,
            # what its likelihood surrogate gives beside their exact posterior mean (lmmse-full)
            "icdm-gaussian-full": ("icdm", dict(PAPER, prior_x="gaussian-full", prior_i="gaussian-full")),
            "icdm-pm": ("icdm", BAYES),
            "icdm-pm-xdit": ("icdm", dict(BAYES, prior_i="gaussian-full")),   # the learned signal prior alone
            "icdm-pm-idit": ("icdm", dict(BAYES, prior_x="gaussian-full")),   # the learned interference prior alone
            "icdm-pm-gaussian-full": ("icdm", dict(BAYES, prior_x="gaussian-full", prior_i="gaussian-full")),
            "icdm-paper": ("icdm", PAPER)}


def variant(name, channel):
    """(registered scheme, options) of a receiver row on a channel ("rayleigh@L" counts as
    Rayleigh): options given per channel type as {type: value} are resolved here."""
    base, options = VARIANTS.get(name, (name, {}))
    return base, variant_options(options, channel)


def variant_options(options, channel):
    """Options with those given per channel type ({type: value}) resolved for `channel`."""
    kind = channel_spec(channel)[0]
    return {k: (v[kind] if isinstance(v, dict) else v) for k, v in options.items()}
RECEIVER_ORDER = tuple(FAMILY) + tuple(VARIANTS)
BASELINES = ("mmse", "lmmse", "lmmse-full")  # the linear receivers every gain is reported against
# autograd through the priors (PiGDM, DPS guidance): run on --slow-images
SLOW = tuple(n for n in FAMILY if getattr(schemes.get(n), "autograd", False))
TRAIN_SPEC = "cifar10_train_batch3"  # training images (both priors' data lie in cifar10_train)


def channel_spec(text):
    """"awgn", "rayleigh" (i.i.d. per symbol) or "rayleigh@L" (block fading, L symbols per
    coherence block) -> (channel type, coherence)."""
    channel, _, coherence = text.partition("@")
    if channel not in ("awgn", "rayleigh") or (coherence and (channel != "rayleigh" or not coherence.isdigit()
                                                              or int(coherence) < 1)):
        raise ValueError(f"a channel is awgn, rayleigh or rayleigh@L (L >= 1 symbols per block), got {text!r}")
    return channel, int(coherence or 1)


def prepare(backend, images, channel, snr, sinr, k, seed):
    channel, coherence = channel_spec(channel)
    user, interferer = default_models(channel, k, images.shape[1:])
    gen = torch.Generator().manual_seed(seed)
    x, obs = equalized_batch(backend, images, np.ascontiguousarray(images[::-1]), channel, snr, sinr,
                             user, interferer, coherence, gen)
    return user, x, obs.xhat, obs


def run_receiver(backend, name, obs, options, chunk=256):
    """(latents, nfe per image, seconds per image) of a DeepJSCC-family scheme's clean-up (the
    receiver alone, no decoding) in chunks of `chunk` images."""
    out, nfe, t0 = [], 0, time.perf_counter()
    for n, start in enumerate(range(0, obs.n, chunk)):
        c = dataclasses.replace(obs.take(slice(start, start + chunk)), options=options, seed=obs.seed + n)
        with torch.no_grad():
            latents, nfe = schemes.get(name).clean(c, backend)
        out.append(latents)
    return torch.cat(out), nfe, (time.perf_counter() - t0) / obs.n


def score(backend, user, latents, x, images, snr, with_images=True):
    row = {"latent_mse_db": metrics.db_mean(metrics.latent_mse_db(latents, x).tolist())}
    if with_images:
        rx = backend.decode(user, latents.float().numpy(), snr)
        m = metrics.image_metrics(to_tensor(rx), to_tensor(images), with_lpips=True)
        row.update({key: metrics.mean_or_none(m.get(key)) for key in ("psnr_db", "ssim", "lpips")})
    return row


def fmt(v, spec):
    return "null" if v is None else format(v, spec)


# ---------------------------------------------------------------- tuning (training images)
def tune(args, backend, images):
    grids = {
        "cddm": [{"steps": s} for s in (5, 10, 20)],
        "icdm": [{"start": st, "zeta_x": zx, "zeta_i": zi}
                 for st, zx, zi in itertools.product(("noise", "observation"), (0.5, 1.0, 2.0), (0.5, 1.0, 2.0))],
    }
    for kind in ("pigdm", "dps", "projection"):
        zetas = (0.1, 0.3, 1.0, 3.0) if kind == "dps" else (0.5, 1.0, 2.0)
        grids[f"icdm-{kind}"] = [{"start": st, "zeta_x": z, "zeta_i": z}
                                 for st, z in itertools.product(("noise", "observation"), zetas)]
    points = [(c, s) for c in args.channels for s in args.tune_sinr]
    prepared = {p: prepare(backend, images, p[0], args.snr, p[1], args.k, args.seed) for p in points}
    results = {}
    total = sum(len(g) for g in grids.values()) * len(points)
    bar = tqdm(total=total, unit="run", file=sys.stderr, disable=args.no_progress)
    for name in (r for r in RECEIVER_ORDER if r in grids and r in args.receivers):
        results[name] = []
        for options in grids[name]:
            per = {}
            for (c, s), (user, x, xhat, ctx) in prepared.items():
                bar.set_description(f"{name} {options} {c} SINR {s:g}")
                lat, nfe, sec = run_receiver(backend, name, ctx, options)
                per[f"{c}/{s:g}"] = score(backend, user, lat, x, images, args.snr, with_images=False)["latent_mse_db"]
                bar.update(1)
            results[name].append({"options": options, "latent_mse_db": per, "mean_db": float(np.mean(list(per.values())))})
    bar.close()
    # a diverged run (NaN/inf latents) never wins
    best = {n: min(rs, key=lambda r: r["mean_db"] if math.isfinite(r["mean_db"]) else math.inf)
            for n, rs in results.items()}
    mmse = {f"{c}/{s:g}": score(backend, u, xh, x, images, args.snr, False)["latent_mse_db"]
            for (c, s), (u, x, xh, _) in prepared.items()}
    doc = {"command": "bench/bench_icdm.py " + shlex.join(sys.argv[1:]), "data": f"{TRAIN_SPEC}[:{len(images)}]",
           "snr_db": args.snr, "sinr_db": args.tune_sinr, "mmse_latent_mse_db": mmse, "best": best, "grid": results}
    for n, b in best.items():
        print(f"{n:16s} best {b['options']}  mean latent MSE {b['mean_db']:.2f} dB  {b['latent_mse_db']}")
    print(f"{'mmse':16s} {mmse}")
    return doc


# ---------------------------------------------------------------- benchmark (test images)
def bench(args, backend, images):
    rows, sweep = [], []
    points = [(c, s) for c in args.channels for s in args.sinr]
    bar = tqdm(total=len(points) * len(args.receivers), unit="run", file=sys.stderr, disable=args.no_progress)
    for c, s in points:
        user, x, xhat, ctx = prepare(backend, images, c, args.snr, s, args.k, args.seed)
        linear = {}  # images -> latent MSE (dB) of mmse, lmmse, lmmse-full on the first that many: once per point

        def baselines(n):
            if n not in linear:
                latents = [xhat[:n]] + [run_receiver(backend, b, ctx.take(slice(0, n)), {})[0] for b in BASELINES[1:]]
                linear[n] = tuple(score(backend, user, lat, x[:n], images[:n], args.snr, False)["latent_mse_db"]
                                  for lat in latents)
            return linear[n]

        for name in args.receivers:
            bar.set_description(f"{name} {c} SINR {s:g}")
            n = min(len(images), args.slow_images) if name in SLOW else len(images)
            base, options = variant(name, c)
            lat, nfe, sec = run_receiver(backend, base, ctx.take(slice(0, n)), options)
            mmse_db, lmmse_db, full_db = baselines(n)
            r = score(backend, user, lat, x[:n], images[:n], args.snr)
            rows.append(dict(receiver=name, channel=c, sinr_db=s, images=n, nfe=nfe, s_per_image=sec,
                             gain_db=mmse_db - r["latent_mse_db"], gain_lmmse_db=lmmse_db - r["latent_mse_db"],
                             gain_lmmse_full_db=full_db - r["latent_mse_db"], **r))
            bar.update(1)
            print(json.dumps(rows[-1]), flush=True)
    bar.close()
    if args.nfe_sweep:
        c, s = args.nfe_point
        user, x, xhat, ctx = prepare(backend, images, c, args.snr, s, args.k, args.seed)
        for steps in args.nfe_sweep:
            n = len(images) if steps <= 100 else min(len(images), args.images_1000)
            lat, nfe, sec = run_receiver(backend, "icdm", ctx.take(slice(0, n)), {"steps": steps})
            lat_mmse = score(backend, user, xhat[:n], x[:n], images[:n], args.snr, False)["latent_mse_db"]
            r = score(backend, user, lat, x[:n], images[:n], args.snr, False)
            sweep.append(dict(channel=c, sinr_db=s, steps=steps, nfe=nfe, images=n, latent_mse_db=r["latent_mse_db"],
                              gain_db=lat_mmse - r["latent_mse_db"], s_per_image=sec))
            print(json.dumps(sweep[-1]), flush=True)
    return rows, sweep


# ---------------------------------------------------------------- the paper's sampling question
def sampling(args, backend, images):
    """From ICDM's noise start: latent MSE against NFE (1 step = the one-step Tweedie estimate
    E[x_0 | x_T, xhat] under the guided score), a single sample against the mean of several
    (different seeds), for ICDM's own configuration and the exact surrogate at zeta 1; then the
    posterior-mean start; each beside lmmse-full on the same images."""
    rows = []
    configs = {"icdm (paper: isotropic surrogate, tuned zeta)": dict(PAPER, start="noise"),
               "icdm, exact surrogate, zeta 1": dict(BAYES, start="noise"),
               "icdm-pm (posterior-mean start)": BAYES}
    for point in args.sampling:
        c, s = point
        user, x, xhat, ctx = prepare(backend, images, c, args.snr, s, args.k, args.seed)
        n = min(len(images), args.sampling_images)
        ctx, x = ctx.take(slice(0, n)), x[:n]
        full = score(backend, user, run_receiver(backend, "lmmse-full", ctx, {})[0], x, images[:n], args.snr, False)
        bar = tqdm(total=len(configs) * len(args.sampling_steps) + 2 * args.sampling_draws, unit="run",
                   file=sys.stderr, disable=args.no_progress, desc=f"sampling {c} SINR {s:g}")

        def row(config, steps, draws, lat, nfe, sec):
            r = score(backend, user, lat, x, images[:n], args.snr, False)
            rows.append(dict(channel=c, sinr_db=s, images=n, config=config, steps=steps, draws=draws, nfe=nfe * draws,
                             s_per_image=sec * draws, latent_mse_db=r["latent_mse_db"],
                             gain_lmmse_full_db=full["latent_mse_db"] - r["latent_mse_db"]))
            print(json.dumps(rows[-1]), flush=True)

        for config, options in configs.items():
            for steps in args.sampling_steps:
                row(config, steps, 1, *run_receiver(backend, "icdm", ctx, dict(variant_options(options, c), steps=steps)))
                bar.update(1)
            if options["start"] != "noise":
                continue  # deterministic: every draw is the same
            draws, cost = [], []
            for m in range(args.sampling_draws):
                lat, nfe, sec = run_receiver(backend, "icdm", dataclasses.replace(ctx, seed=ctx.seed + 7919 * (m + 1)),
                                             dict(variant_options(options, c), steps=args.sampling_mean_steps))
                draws.append(lat)
                cost.append((nfe, sec))
                bar.update(1)
                if m + 1 in (2, args.sampling_draws):
                    row(config, args.sampling_mean_steps, m + 1, torch.stack(draws).mean(0), *np.mean(cost, 0))
        bar.close()
    return rows


def sampling_markdown(rows, plot=None):
    lines = []
    for point in dict.fromkeys((r["channel"], r["sinr_db"]) for r in rows):
        sel = [r for r in rows if (r["channel"], r["sinr_db"]) == point]
        lines += [f"## Sampling against the posterior mean ({point[0]}, SINR {point[1]:g} dB, "
                  f"{sel[0]['images']} images)", "",
                  "From N(0, I) at T-1 (the paper's start) unless the configuration says otherwise; 1 step is "
                  "the one-step Tweedie estimate under the guided score. `draws` > 1: the mean of that many "
                  "samples (different seeds), NFE and s/img summed over them. Gain: against lmmse-full on the "
                  "same images (positive: better).", "",
                  "| configuration | steps | draws | NFE | latent MSE (dB) | gain over lmmse-full (dB) | s/img |",
                  "|---|---|---|---|---|---|---|"]
        for r in sel:
            lines.append(f"| {r['config']} | {r['steps']} | {r['draws']} | {r['nfe']:g} | {r['latent_mse_db']:.2f} | "
                         f"{r['gain_lmmse_full_db']:+.2f} | {r['s_per_image']:.4f} |")
        lines.append("")
    if plot:
        lines += [f"![latent MSE against NFE]({plot})", ""]
    return lines


def sampling_plot(rows, path):
    from gnuradio.semcom.core.plots import save_metric_panels
    panels = {}
    for r in rows:
        if r["draws"] == 1 and r["nfe"] > 0:
            curve = panels.setdefault(f"{r['channel']}, SINR {r['sinr_db']:g} dB", {}).setdefault(r["config"], ([], []))
            curve[0].append(r["nfe"])
            curve[1].append(r["gain_lmmse_full_db"])
    save_metric_panels(panels, path, "gain over lmmse-full (dB)", "ICDM: single samples against NFE",
                       xlabel="NFE (network evaluations per image)", logx=True)


def markdown(rows, sweep, commands, tune=None):
    """The results page: per channel a table and the gains over mmse, the NFE sweep, the tuning."""
    channels = list(dict.fromkeys(r["channel"] for r in rows))
    sinrs = sorted(set(r["sinr_db"] for r in rows))
    names = list(dict.fromkeys(r["receiver"] for r in rows))
    lines = ["# ICDM and the diffusion receivers: measurements", "",
             "Commands (" + time.strftime("%Y-%m-%d") + ", this 2-core CPU machine, no GPU):", ""]
    lines += [f"    .venv/bin/python {c.removeprefix('python ')}" for c in commands] + [""]
    lines += ["CIFAR-10 test images, SNR 20 dB, user `jscc_user_<channel>_k512`, interferer "
              "`jscc_interferer_awgn_k512` (the images walked backwards); one seeded channel draw per "
              "point, shared by all receivers. Channels: `awgn`, `rayleigh` (i.i.d. per symbol) and "
              "`rayleigh@L` (block fading, `h` and `g` held for L symbols). Receivers at their default "
              "options (`schemes/`) unless the name is a variant: `icdm-paper` is ICDM as in the paper "
              "(observation start, isotropic surrogate, guidance weights tuned per channel type); "
              "`icdm-pm*` start from the posterior mean under the fitted Gaussians with the surrogate "
              "exact for Gaussian priors at ζ = 1 (`-xdit`: the learned signal prior alone, the "
              "interference's fitted Gaussian; `-idit`: the other way round; `-gaussian-full`: both "
              "Gaussians, which is `lmmse-full` exactly); `icdm-gaussian` / `icdm-gaussian-full` are "
              "the paper's sampler on unit / fitted Gaussians (no network). Autograd ablations ran on the "
              "first images only (column `n`). Every gain is on the same images and draws. NFE: network "
              "evaluations per image, the mean over images (each starts at its own matched step). "
              "Latent MSE: relative to the latent power, dB. s/img: receiver wall time per image on one "
              "CPU thread while other jobs shared the 2 cores (compare within a table only). LPIPS: null "
              "(no AlexNet weights offline).", ""]
    for c in channels:
        lmmse = any("gain_lmmse_db" in r for r in rows if r["channel"] == c)
        extra = (" gain over lmmse (dB) |", "---|") if lmmse else ("", "")
        lines += [f"## {c.upper()}", "",
                  "| receiver | SINR (dB) | n | latent MSE (dB) | gain over mmse (dB) |" + extra[0]
                  + " PSNR (dB) | SSIM | LPIPS | NFE | s/img |",
                  "|---|---|---|---|---|" + extra[1] + "---|---|---|---|---|"]
        for r in (r for r in rows if r["channel"] == c):
            over_lmmse = f" {fmt(r.get('gain_lmmse_db'), '+.2f')} |" if lmmse else ""
            lines.append(f"| {r['receiver']} | {r['sinr_db']:g} | {r['images']} | {r['latent_mse_db']:.2f} | "
                         f"{r['gain_db']:+.2f} |{over_lmmse} {fmt(r['psnr_db'], '.2f')} | {fmt(r['ssim'], '.3f')} | "
                         f"{fmt(r['lpips'], '.3f')} | {r['nfe']} | {r['s_per_image']:.4f} |")
        # Gains over each linear baseline present, from the rows (same images, same draws; a
        # row on fewer images is compared only with a baseline row on as many).
        for base in (b for b in BASELINES if any(r["receiver"] == b and r["channel"] == c for r in rows)):
            lines += ["", f"Latent-MSE gain over {base} (dB; positive: better than {base}):", "",
                      "| receiver | " + " | ".join(f"SINR {s:g}" for s in sinrs) + " |", "|---|" + "---|" * len(sinrs)]
            for name in (n for n in names if n != base and n != "mmse"):
                cells = []
                for s in sinrs:
                    r = next((r for r in rows if (r["channel"], r["sinr_db"], r["receiver"]) == (c, s, name)), None)
                    ref = next((r for r in rows if (r["channel"], r["sinr_db"], r["receiver"]) == (c, s, base)), None)
                    same = r is not None and ref is not None and r["images"] == ref["images"]
                    cells.append(f"{ref['latent_mse_db'] - r['latent_mse_db']:+.2f}" if same else "—")
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for point in dict.fromkeys((r["channel"], r["sinr_db"]) for r in sweep):
        sel = [r for r in sweep if (r["channel"], r["sinr_db"]) == point]
        top = sel[-1]
        lines += [f"## ICDM against the number of steps ({point[0]}, SINR {point[1]:g} dB)", "",
                  "From the observation the sampler starts at the matched step t*, so it takes at most t* + 1 "
                  "steps: the NFE column is what ran. Runs above 100 steps use the first "
                  f"{top['images']} images (CPU time); each gain is against mmse on its own images.", "",
                  f"| steps | NFE (both priors) | n | latent MSE (dB) | gain over mmse (dB) | share of the "
                  f"{top['steps']}-step gain | s/img |", "|---|---|---|---|---|---|---|"]
        for r in sel:
            share = r["gain_db"] / top["gain_db"] if top["gain_db"] else float("nan")
            lines.append(f"| {r['steps']} | {r['nfe']} | {r['images']} | {r['latent_mse_db']:.2f} | "
                         f"{r['gain_db']:+.2f} | {share:.1%} | {r['s_per_image']:.4f} |")
        lines.append("")
    if tune:
        lines += ["## Tuning (CIFAR-10 training images)", ""]
        for doc in tune:
            lines += [f"`{doc['command']}` on `{doc['data']}`, SNR {doc['snr_db']:g} dB, SINR {doc['sinr_db']}; "
                      f"mmse: {', '.join(f'{k} {v:.2f} dB' for k, v in doc['mmse_latent_mse_db'].items())}.", "",
                      "| receiver | options | mean latent MSE (dB) |", "|---|---|---|"]
            channel = next(iter(doc["mmse_latent_mse_db"])).split("/")[0]  # keys are CHANNEL/SINR
            for name, runs in doc["grid"].items():
                defaults = schemes.get(name).option_values(None, channel)
                for r in runs:
                    is_default = all(defaults.get(k) == v for k, v in r["options"].items())
                    mark = " **(default)**" if is_default else (" (best here)" if r == doc["best"][name] else "")
                    opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
                    lines.append(f"| {name} | {opts}{mark} | {r['mean_db']:.3f} |")
            lines.append("")
    return "\n".join(lines)


def parse_list(text, kind=float):
    return [kind(v) for v in text.split(",") if v.strip()]


def main():
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--snr", type=float, default=20.0)
    ap.add_argument("--sinr", default="-5,0,5,10")
    ap.add_argument("--channels", default="awgn,rayleigh,rayleigh@64",
                    help="awgn, rayleigh (i.i.d. per symbol), rayleigh@L (block fading, L symbols per block)")
    ap.add_argument("--receivers", default=",".join(RECEIVER_ORDER))
    ap.add_argument("--nfe-sweep", default="5,10,20,40,100,1000", help="icdm steps to sweep ('' = none)")
    ap.add_argument("--nfe-point", default="rayleigh,0", help="channel,SINR of the sweep")
    ap.add_argument("--images-1000", type=int, default=128, help="images for sweep steps > 100 (CPU time)")
    ap.add_argument("--tune", action="store_true", help="grid-search the defaults on training images")
    ap.add_argument("--tune-sinr", default="0,5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--slow-images", type=int, default=128, help="images for icdm-pigdm and icdm-dps")
    ap.add_argument("--sampling", default="", help="semicolon list of CHANNEL,SINR points for the sampling study "
                    "(e.g. 'awgn,0;rayleigh@64,0'); runs it instead of the table")
    ap.add_argument("--sampling-images", type=int, default=128)
    ap.add_argument("--sampling-steps", default="1,2,5,20,50")
    ap.add_argument("--sampling-draws", type=int, default=4, help="samples averaged (mean of 2 and of this many)")
    ap.add_argument("--sampling-mean-steps", type=int, default=20)
    ap.add_argument("--plot", default="", help="the sampling study's plot (PNG) here")
    ap.add_argument("--render", default="", help="comma list of --json results (and --tune JSONs): "
                    "write --markdown from them and stop")
    ap.add_argument("--markdown", default="")
    ap.add_argument("--json", default="", help="write all results as JSON here")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    try:
        args.sinr, args.tune_sinr = parse_list(args.sinr), parse_list(args.tune_sinr)
        args.channels = [c.strip() for c in args.channels.split(",")]
        for c in args.channels + [args.nfe_point.split(",")[0].strip()]:
            channel_spec(c)
        args.receivers = [r.strip() for r in args.receivers.split(",") if r.strip()]
        args.nfe_sweep = parse_list(args.nfe_sweep, int)
        args.sampling_steps = parse_list(args.sampling_steps, int)
        args.sampling = [(c.strip(), float(v)) for c, v in (p.split(",") for p in args.sampling.split(";") if p.strip())]
        for c, _ in args.sampling:
            channel_spec(c)
        c, s = args.nfe_point.split(",")
        args.nfe_point = (c.strip(), float(s))
        for r in args.receivers:
            if r not in schemes.SCHEMES and r not in VARIANTS:
                raise ValueError(f"unknown receiver {r!r}")
    except ValueError as exc:
        ap.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.render:
        docs = [json.loads(Path(p).read_text()) for p in args.render.split(",")]
        runs = [d for d in docs if "rows" in d]
        # a later file's row for the same point replaces an earlier one (e.g. a re-run of one receiver)
        rows = list({(r["channel"], r["sinr_db"], r["receiver"]): r for d in runs for r in d["rows"]}.values())
        sweep = list({(r["channel"], r["sinr_db"], r["steps"]): r for d in runs for r in d["nfe_sweep"]}.values())
        order = {n: i for i, n in enumerate(RECEIVER_ORDER)}
        rows.sort(key=lambda r: (r["channel"], r["sinr_db"], order.get(r["receiver"], 99)))
        sweep.sort(key=lambda r: (r["channel"], r["sinr_db"], r["steps"]))
        study = [r for d in docs for r in d.get("sampling", [])]
        plot = ""
        if study and args.plot:
            sampling_plot(study, args.plot)
            plot = os.path.relpath(args.plot, Path(args.markdown).parent if args.markdown else ".")
        Path(args.markdown or "/dev/stdout").write_text(
            markdown(rows, sweep, [d["command"] for d in docs], [d for d in docs if "grid" in d]) + "\n"
            + ("\n".join(sampling_markdown(study, plot)) + "\n" if study else ""))
        return 0
    backend = get_backend("", "cpu")
    spec = f"{TRAIN_SPEC}[:{args.images}]" if args.tune else f"cifar10_test[:{args.images}]"
    images = load_dataset(spec).images
    if args.tune:
        doc = tune(args, backend, images)
    elif args.sampling:
        rows = sampling(args, backend, images)
        doc = {"command": "bench/bench_icdm.py " + shlex.join(sys.argv[1:]), "sampling": rows}
        if args.plot:
            sampling_plot(rows, args.plot)
        if args.markdown:
            Path(args.markdown).write_text("\n".join(sampling_markdown(rows, args.plot)) + "\n")
    else:
        rows, sweep = bench(args, backend, images)
        doc = {"command": "bench/bench_icdm.py " + shlex.join(sys.argv[1:]), "rows": rows, "nfe_sweep": sweep}
        if args.markdown:
            Path(args.markdown).write_text(markdown(rows, sweep, [doc["command"]]) + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_main(main)
