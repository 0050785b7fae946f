#!/usr/bin/env python3
"""CDiff benchmark (issue 15; spec ../shared/papers/cdiff.md section 6): PSNR, SSIM, the offline
semantic proxies (classifier agreement `accuracy`, `feature_dist`; docs/metrics.md), LPIPS where
its weights are present, NFE and seconds per image of `cdiff` (its samplers), the matched
autoencoder `cdiff-ae`, the VAE `cdiff-vae` and the shipped DeepJSCC (`mmse`), on CIFAR-10 test
images; then the CBR sweep, the unmatched encoders and the paper's two-user points.

  .venv/bin/python bench/bench_cdiff.py --images 500 --json runs/cdiff/bench.json \\
      --markdown runs/cdiff/bench.md --plot docs/figures/cdiff_bench.png

Every row at one operating point sees the same channel draw (one seed). The CDiff systems are
trained on AWGN only: on Rayleigh their receiver takes the MMSE-equalised symbols (what a
classical equaliser in front gives, the paper's suggestion), while DeepJSCC runs its
Rayleigh-trained model. Seconds per image: transmitter, channel and receiver, this machine.
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
from gnuradio.semcom.core.cli import ArgumentParser, name_list, run_main
from gnuradio.semcom.core.data import to_tensor
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.models import cdiff_name, jscc_model_name
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.link_sim import simulate

# row -> (scheme, options, model: a CDiff system name, or "jscc" for the user's DeepJSCC of the channel)
ROWS = {
    "cdiff ddpm-100": ("cdiff", {"steps": 100, "sampler": "ddpm"}, "cdiff"),   # the paper's sampler, all T
    "cdiff ddim-100": ("cdiff", {"steps": 100, "sampler": "ddim"}, "cdiff"),
    "cdiff ddpm-10": ("cdiff", {"steps": 10, "sampler": "ddpm"}, "cdiff"),     # the fast sampler
    "cdiff ddim-10": ("cdiff", {"steps": 10, "sampler": "ddim"}, "cdiff"),
    "cdiff-ae": ("cdiff-ae", {}, "ae"),
    "cdiff-vae": ("cdiff-vae", {}, "vae"),
    "deepjscc (mmse)": ("mmse", {}, "jscc"),
}
KEYS = ("psnr_db", "ssim", "accuracy", "label_accuracy", "feature_dist", "lpips")
# The paper's two quoted multi-user points (spec section 1): y = a z1 + (1 - a) z2 + n with unit-power
# z1, z2 at SNR = P / s2; in this link (signal power 1) the same SINR is SNR' = a^2 / s2 and
# SINR = a^2 / ((1 - a)^2 + s2).
PAPER_POINTS = ((0.8, 0.0), (0.9, 20.0))


def paper_point(a, snr_db):
    s2 = 10 ** (-snr_db / 10)
    return 10 * math.log10(a * a / s2), 10 * math.log10(a * a / ((1 - a) ** 2 + s2))


SYSTEMS_DIR = ""   # --systems: a folder holding the CDiff systems instead of the shipped ones


def model_for(kind, channel):
    if kind == "jscc":
        return jscc_model_name("user", channel, 512)
    name = cdiff_name(kind, "awgn", 512)   # the CDiff systems are AWGN-trained (see the docstring)
    return str(Path(SYSTEMS_DIR) / name) if SYSTEMS_DIR else name


def run(backend, images, labels, scheme, options, model, channel, snr, sinr=math.inf, interferer="", seed=0,
        batch=100):
    t0 = time.perf_counter()
    res = simulate(backend, images, channel, snr, sinr, model, interferer, scheme, seed=seed, batch_size=batch,
                   receiver_options=options)
    seconds = (time.perf_counter() - t0) / len(images)
    if res.errors:
        raise RuntimeError(f"{scheme} {options} at {channel} {snr} dB: {res.errors[0]}")
    m = metrics.image_metrics(to_tensor(res.received), to_tensor(images[res.kept]), labels=labels[res.kept])
    out = {key: metrics.mean_or_none(m[key]) for key in KEYS}
    out.update(nfe=res.nfe, s_per_image=seconds, symbols=res.symbols_per_image)
    return out


def main_table(args, backend, images, labels):
    rows = []
    points = [(c, s) for c in args.channels for s in (args.snr if c == "awgn" else args.rayleigh_snr)]
    for channel, snr in tqdm(points, disable=args.no_progress, desc="operating points"):
        for name in args.rows:
            scheme, options, kind = ROWS[name]
            n = args.full_chain_images if "-100" in name else len(images)
            row = run(backend, images[:n], labels[:n], scheme, options, model_for(kind, channel), channel, snr,
                      seed=args.seed)
            rows.append(dict(row, row=name, channel=channel, snr_db=snr, images=n))
    return rows


def cbr_sweep(args, backend, images, labels):
    rows = []
    for snr in tqdm(args.cbr_snr, disable=args.no_progress, desc="CBR sweep"):
        for name in (args.fast_row, "cdiff-ae"):
            scheme, options, kind = ROWS[name]
            for k in args.cbr_k:
                row = run(backend, images, labels, scheme, dict(options, k=k), model_for(kind, "awgn"), "awgn", snr,
                          seed=args.seed)
                rows.append(dict(row, row=name, k=k, cbr=k / 3072, snr_db=snr, images=len(images)))
    return rows


def unmatched(args, backend, images, labels):
    """Each decoder fed by its own encoder and by the other system's (cdiff <-> ae)."""
    rows = []
    fast = ROWS[args.fast_row]
    for snr in tqdm(args.unmatched_snr, disable=args.no_progress, desc="unmatched encoders"):
        for name, (scheme, options, kind), other in ((args.fast_row, fast, "ae"), ("cdiff-ae", ROWS["cdiff-ae"], "cdiff")):
            for encoder in ("", model_for(other, "awgn")):
                row = run(backend, images, labels, scheme, dict(options, encoder=encoder) if encoder else options,
                          model_for(kind, "awgn"), "awgn", snr, seed=args.seed)
                rows.append(dict(row, row=name, encoder=Path(encoder).name if encoder else "matched", snr_db=snr,
                                 images=len(images)))
    return rows


def interference(args, backend, images, labels):
    rows = []
    interferer = jscc_model_name("interferer", "awgn", 512)
    for a, snr_paper in PAPER_POINTS:
        snr, sinr = paper_point(a, snr_paper)
        for name in (args.fast_row, "cdiff-ae", "cdiff-vae", "deepjscc (mmse)"):
            scheme, options, kind = ROWS[name]
            row = run(backend, images, labels, scheme, options, model_for(kind, "awgn"), "awgn", snr, sinr,
                      interferer, seed=args.seed)
            rows.append(dict(row, row=name, a=a, paper_snr_db=snr_paper, snr_db=snr, sinr_db=sinr, images=len(images)))
    return rows


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def cell(r):
    return (f"{fmt(r['psnr_db'], '.2f')} / {fmt(r['ssim'], '.3f')} / {fmt(r['accuracy'], '.2f')} / "
            f"{fmt(r['feature_dist'], '.3f')}")


CELLS = "Cells: PSNR (dB) / SSIM / accuracy (classifier agreement with the sent image) / feature_dist (lower is better)."


def markdown(result):
    lines = [f"Command: `{result['command']}`", "",
             f"{result['images']} images ({result['data']}; the `-100` rows on the first "
             f"{result['full_chain_images']}), seed {result['seed']}, {result['machine']}. "
             f"LPIPS: {'measured' if result['lpips_available'] else 'null (its backbone weights are absent offline)'}.",
             ""]
    for channel in result["channels"]:
        snrs = sorted({r["snr_db"] for r in result["rows"] if r["channel"] == channel})
        lines += [f"### {channel.upper()}", "", "| row | " + " | ".join(f"{s:g} dB" for s in snrs) +
                  " | NFE | s/image (max) |", "|---|" + "---|" * len(snrs) + "---|---|"]
        for name in result["rows_order"]:
            got = {r["snr_db"]: r for r in result["rows"] if r["row"] == name and r["channel"] == channel}
            if got:
                lines.append(f"| {name} | " + " | ".join(cell(got[s]) if s in got else "-" for s in snrs) +
                             f" | {max(r['nfe'] for r in got.values()):.0f} | "
                             f"{max(r['s_per_image'] for r in got.values()):.3f} |")
        lines += ["", CELLS, ""]
    if result.get("cbr"):
        ks = sorted({r["k"] for r in result["cbr"]})
        lines += ["### CBR sweep (AWGN; fewer symbols sent, the rest zero-padded at the receiver)", "",
                  "| row | SNR | " + " | ".join(f"k={k} (CBR {k / 3072:.3f})" for k in ks) + " |",
                  "|---|---|" + "---|" * len(ks)]
        for name in dict.fromkeys(r["row"] for r in result["cbr"]):
            for snr in sorted({r["snr_db"] for r in result["cbr"]}):
                got = {r["k"]: r for r in result["cbr"] if r["row"] == name and r["snr_db"] == snr}
                lines.append(f"| {name} | {snr:g} dB | " + " | ".join(cell(got[k]) for k in ks) + " |")
        lines += ["", CELLS, ""]
    if result.get("unmatched"):
        lines += ["### Unmatched encoders (AWGN): each decoder fed by the other system's encoder", "",
                  "| decoder | encoder | " + " | ".join(f"{s:g} dB" for s in result["unmatched_snr"]) + " |",
                  "|---|---|" + "---|" * len(result["unmatched_snr"])]
        for name in dict.fromkeys(r["row"] for r in result["unmatched"]):
            for enc in dict.fromkeys(r["encoder"] for r in result["unmatched"] if r["row"] == name):
                got = {r["snr_db"]: r for r in result["unmatched"] if r["row"] == name and r["encoder"] == enc}
                lines.append(f"| {name} | {enc} | " + " | ".join(cell(got[s]) for s in result["unmatched_snr"]) + " |")
        lines += ["", CELLS, ""]
    if result.get("interference"):
        lines += ["### The paper's two-user points (a JSCC interferer at the same SINR)", "",
                  "| row | a, paper SNR | this link: SNR / SINR | cell |", "|---|---|---|---|"]
        for r in result["interference"]:
            lines.append(f"| {r['row']} | {r['a']:g}, {r['paper_snr_db']:g} dB | {r['snr_db']:.2f} / "
                         f"{r['sinr_db']:.2f} dB | {cell(r)} |")
        lines += ["", CELLS, ""]
    return "\n".join(lines)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    rows = [r for r in result["rows"] if r["channel"] == "awgn"]
    for ax, key, label in zip(axes, ("psnr_db", "ssim", "feature_dist"),
                              ("PSNR (dB)", "SSIM", "feature_dist (proxy; lower is better)")):
        for name in result["rows_order"]:
            got = sorted((r["snr_db"], r[key]) for r in rows if r["row"] == name and r[key] is not None)
            if got:
                label = f"{name} (first {result['full_chain_images']})" if "-100" in name else name
                ax.plot([s for s, _ in got], [v for _, v in got], marker="o", label=label)
        ax.set_xlabel("SNR (dB), AWGN")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"CDiff and its baselines, CIFAR-10 ({result['images']} test images)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def parse_args(argv=None):
    from gnuradio.semcom.core.channel import parse_db_list
    ap = ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--full-chain-images", type=int, default=100,
                    help="images for the 100-step rows (15 ms per image and step on one CPU core)")
    ap.add_argument("--data", default="cifar10_test")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    ap.add_argument("--fast-row", default="cdiff ddpm-10", choices=[r for r in ROWS if r.startswith("cdiff ")],
                    help="the cdiff row of the CBR, unmatched-encoder and interference experiments")
    ap.add_argument("--channels", default="awgn,rayleigh")
    ap.add_argument("--snr", type=parse_db_list, default=parse_db_list("-5,0,5,10,15,20"))
    ap.add_argument("--rayleigh-snr", type=parse_db_list, default=parse_db_list("0,10,20"))
    ap.add_argument("--cbr-k", default="128,256,384,512")
    ap.add_argument("--cbr-snr", type=parse_db_list, default=parse_db_list("0,10"))
    ap.add_argument("--unmatched-snr", type=parse_db_list, default=parse_db_list("0,10"))
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: cbr, unmatched, interference")
    ap.add_argument("--systems", default="", help="a folder with the CDiff systems (cdiff_awgn_k512, "
                    "cdiff_ae_awgn_k512, cdiff_vae_awgn_k512) instead of the shipped ones")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    ap.add_argument("--plot")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    args.rows = name_list(ap, "--rows", args.rows, list(ROWS))
    args.channels = name_list(ap, "--channels", args.channels, ("awgn", "rayleigh"))
    try:
        args.cbr_k = [int(k) for k in args.cbr_k.split(",")]
    except ValueError:
        ap.error(f"--cbr-k takes comma-separated integers, got {args.cbr_k!r}")
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not args.skip <= {"cbr", "unmatched", "interference"}:
        ap.error(f"--skip takes cbr, unmatched, interference; got {sorted(args.skip)}")
    if args.images < 1 or args.full_chain_images < 1:
        ap.error("--images and --full-chain-images must be >= 1")
    return args


def main(argv=None):
    global SYSTEMS_DIR
    args = parse_args(argv)
    SYSTEMS_DIR = args.systems
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    images, labels = data.images[:args.images], np.asarray(data.labels[:args.images])
    args.full_chain_images = min(args.full_chain_images, len(images))
    backend = LocalBackend("cpu")
    import platform
    result = {"command": "python bench/bench_cdiff.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "data": f"{args.data}[:{len(images)}]", "images": len(images),
              "full_chain_images": args.full_chain_images, "seed": args.seed,
              "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                         f"{torch.get_num_threads()} thread(s), CPU",
              "channels": args.channels, "rows_order": args.rows, "unmatched_snr": args.unmatched_snr}
    t0 = time.time()
    result["rows"] = main_table(args, backend, images, labels)
    result["lpips_available"] = any(r["lpips"] is not None for r in result["rows"])
    if "cbr" not in args.skip:
        result["cbr"] = cbr_sweep(args, backend, images, labels)
    if "unmatched" not in args.skip:
        result["unmatched"] = unmatched(args, backend, images, labels)
    if "interference" not in args.skip:
        result["interference"] = interference(args, backend, images, labels)
    result["wall_s"] = round(time.time() - t0, 1)
    text = markdown(result)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text + "\n")
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    run_main(main)
