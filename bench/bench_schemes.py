#!/usr/bin/env python3
"""Every scheme of the module on one link (issue 17): the registry's schemes (each scheme's
`series()`: usually its defaults; the digital baseline adds its capacity bound and two fixed
MCS; ablations opt out) on the same CIFAR-10 test images, channels, operating points and seed,
through the batch engine (link_sim.simulate: the same channel draws for every scheme of a point).

  .venv/bin/python bench/bench_schemes.py --images 1000 --diffusion-images 100 --out runs/schemes

Writes OUT/results.json (every row), OUT/results.md (the tables), OUT/psnr_vs_snr.png and
OUT/ssim_vs_snr.png (a panel per channel and SINR, a line per series) and OUT/grid_*.png (the
sent images and one column per series, without interferer, at the lowest, middle and highest
SNR of each channel). Schemes that run a network at
the receiver (max_nfe > 0) get the first --diffusion-images of the images, the others all of
them; the table says how many. s/image is the receiver's and transmitter's wall time on this
machine (the batch engine's whole simulate call, channel included) divided by the images.
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

from gnuradio.semcom import schemes
from gnuradio.semcom.core import metrics
from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.core.channel import parse_db_list
from gnuradio.semcom.core.cli import ArgumentParser, name_list, run_main
from gnuradio.semcom.core.data import to_tensor
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.models import default_models
from gnuradio.semcom.core.plots import save_metric_panels, save_receiver_grid, sinr_label
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.link_sim import simulate

KEYS = ("psnr_db", "ssim", "accuracy", "lpips", "feature_dist")


def registry_series(only=None):
    """[(label, scheme name, options)] of every registered scheme's comparison lines, in the
    registry's order (`only`: those scheme names alone)."""
    out = []
    for name in schemes.names():
        if only and name not in only:
            continue
        out += [(label, name, dict(options)) for label, options in schemes.get(name).series()]
    return out


def run_point(backend, images, labels, series, channel, snr, sinr, args, k=512):
    label, name, options = series
    scheme = schemes.get(name)
    user, interferer = default_models(channel, k, images.shape[1:])
    user = scheme.default_model(channel, k, images.shape[1:]) or user
    note = None
    try:
        scheme.check_checkpoints(channel, k, user, images.shape[1:])
    except CheckpointError:   # e.g. CDiff, trained on AWGN only: its AWGN system, said so in the row
        user = scheme.default_model("awgn", k, images.shape[1:]) or default_models("awgn", k, images.shape[1:])[0]
        scheme.check_checkpoints(channel, k, user, images.shape[1:])
        note = f"{user} (trained on AWGN)"
    heavy = scheme.max_nfe(options, channel) > 0
    n = min(len(images), args.diffusion_images) if heavy else len(images)
    t0 = time.perf_counter()
    res = simulate(backend, images[:n], channel, snr, sinr, user, interferer if math.isfinite(sinr) else None, name,
                   1, args.seed, batch_size=args.batch, receiver_options=options)
    seconds = time.perf_counter() - t0
    row = {"series": label, "scheme": name, "options": options, "model": user, "model_note": note,
           "channel": channel, "snr_db": snr,
           "sinr_db": None if math.isinf(sinr) else sinr, "images": int(len(res.kept)), "lost": int(n - len(res.kept)),
           "cbr": round(res.symbols_per_image / images[0].size, 6) if res.symbols_per_image else None,
           "nfe": res.nfe, "s_per_image": seconds / n, "success_rate": res.extra.get("success_rate"),
           "error": res.errors[0] if res.errors else None}
    if len(res.kept):
        per = metrics.image_metrics(to_tensor(res.received), to_tensor(images[res.kept]), not args.no_lpips,
                                    labels=None if labels is None else labels[res.kept])
        row.update({key: metrics.mean_or_none(per.get(key)) for key in KEYS})
    return row, res.received if len(res.kept) == n else None


def bench(args, backend, images, labels, partial=None):
    series = registry_series(args.schemes)
    points = [(c, s, i) for c in args.channels for s in args.snr for i in args.sinr if math.isinf(i) or i <= s]
    rows, grids = [], {}
    snrs = sorted(args.snr)
    grid_snrs = {snrs[0], snrs[len(snrs) // 2], snrs[-1]}   # a sample grid at the lowest, middle and highest SNR
    bar = tqdm(total=len(series) * len(points), disable=args.no_progress, desc="scheme x point")
    for line in series:
        for channel, snr, sinr in points:
            bar.set_description(f"{line[0]} {channel} {snr:g} dB")
            row, received = run_point(backend, images, labels, line, channel, snr, sinr, args)
            rows.append(row)
            if partial:   # what is done so far survives an interruption
                partial(rows)
            if received is not None and snr in grid_snrs and math.isinf(sinr):
                grids.setdefault((channel, snr), {})[line[0]] = received[:args.grid]
            bar.update()
    bar.close()
    return rows, grids


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def markdown(result) -> str:
    lines = [f"Command: `{result['command']}`", "",
             f"{result['data']}, seed {result['seed']}, {result['machine']}, {result['wall_s']:.0f} s in all.", ""]
    rows = result["rows"]
    for channel in dict.fromkeys(r["channel"] for r in rows):
        for sinr in dict.fromkeys(r["sinr_db"] for r in rows if r["channel"] == channel):
            here = [r for r in rows if r["channel"] == channel and r["sinr_db"] == sinr]
            snrs = sorted({r["snr_db"] for r in here})
            lines += [f"### {channel.upper()}, {sinr_label(math.inf if sinr is None else sinr)}: PSNR (dB) / SSIM", "",
                      "| series | images | CBR | " + " | ".join(f"{s:g} dB" for s in snrs) +
                      " | NFE | s/image | success |", "|---|---|---|" + "---|" * len(snrs) + "---|---|---|"]
            for label in dict.fromkeys(r["series"] for r in here):
                mine = {r["snr_db"]: r for r in here if r["series"] == label}
                cells = [f"{fmt(mine[s].get('psnr_db'), '.2f')} / {fmt(mine[s].get('ssim'), '.3f')}" if s in mine
                         else "" for s in snrs]
                any_row = next(iter(mine.values()))
                success = [mine[s]["success_rate"] for s in snrs if s in mine and mine[s]["success_rate"] is not None]
                if any_row.get("model_note"):
                    label = f"{label} ({any_row['model_note']})"
                lines.append(f"| {label} | {any_row['images']} | {fmt(any_row['cbr'], '.3f')} | " + " | ".join(cells) +
                             f" | {np.mean([m['nfe'] for m in mine.values()]):.1f} | "
                             f"{np.mean([m['s_per_image'] for m in mine.values()]):.4f} | "
                             + (" / ".join(f"{v:.2f}" for v in success) if success else "-") + " |")
            lines.append("")
    return "\n".join(lines)


def brief(rows) -> str:
    """PSNR (dB) per series and operating point, one line per series (the demo's table)."""
    points = list(dict.fromkeys((r["channel"], r["snr_db"], r["sinr_db"]) for r in rows))
    name = lambda c, s, i: f"{c[:4]} {s:g}" + ("" if i is None else f"/{i:g}")
    width = max(len(r["series"]) for r in rows) + 2
    lines = ["PSNR (dB) at channel SNR[/SINR] dB" + (" (digital: frames decoded in brackets)"
                                                  if any(r["success_rate"] is not None for r in rows) else ""),
             "".ljust(width) + "".join(f"{name(*p):>13}" for p in points)]
    notes = sorted({f"{r['series']}: {r['model_note']} on {r['channel']}" for r in rows if r.get("model_note")})
    for label in dict.fromkeys(r["series"] for r in rows):
        mine = {(r["channel"], r["snr_db"], r["sinr_db"]): r for r in rows if r["series"] == label}
        cells = []
        for p in points:
            r = mine.get(p)
            cell = "" if r is None else fmt(r.get("psnr_db"), ".2f")
            if r is not None and r["success_rate"] is not None:
                cell += f" [{r['success_rate']:.0%}]"
            cells.append(f"{cell:>13}")
        lines.append(label.ljust(width) + "".join(cells))
    return "\n".join(lines + [f"  * {note}" for note in notes])


def figures(rows, grids, images, out: Path, grid_n: int) -> list:
    """Write the figures; the names of the files written."""
    for key, ylabel, name in (("psnr_db", "PSNR (dB)", "psnr_vs_snr.png"), ("ssim", "SSIM", "ssim_vs_snr.png")):
        panels = {}
        for r in rows:
            sinr = math.inf if r["sinr_db"] is None else r["sinr_db"]
            curve = panels.setdefault(f"{r['channel']}, {sinr_label(sinr)}", {}).setdefault(r["series"], ([], []))
            curve[0].append(r["snr_db"])
            curve[1].append(r.get(key))
        save_metric_panels(panels, out / name, ylabel, f"every scheme on one link: {ylabel} vs SNR")
    written = ["psnr_vs_snr.png", "ssim_vs_snr.png"]
    for (channel, snr), received in grids.items():
        written.append(f"grid_{channel}_{snr:g}dB.png")
        save_receiver_grid([(f"{channel}\n{snr:g} dB", images[:grid_n], received)], out / written[-1])
    return written


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000, help="images per point for schemes without a network")
    ap.add_argument("--diffusion-images", type=int, default=100,
                    help="images per point for schemes that run a network at the receiver (the first of --images)")
    ap.add_argument("--data", default="cifar10_test")
    ap.add_argument("--schemes", default="", help="comma-separated scheme names (default: every registered one)")
    ap.add_argument("--channels", default="awgn,rayleigh")
    ap.add_argument("--snr", type=parse_db_list, default=parse_db_list("0,5,10,15,20"))
    ap.add_argument("--sinr", type=parse_db_list, default=parse_db_list("inf,0"))
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--grid", type=int, default=6, help="images per sample grid")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-lpips", action="store_true", help="skip LPIPS (reported as null)")
    ap.add_argument("--out", default="runs/schemes")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--brief", action="store_true", help="print one short PSNR table (the full tables go to results.md)")
    args = ap.parse_args(argv)
    args.schemes = name_list(ap, "--schemes", args.schemes, schemes.names()) if args.schemes else None
    args.channels = name_list(ap, "--channels", args.channels, ("awgn", "rayleigh"))
    if args.images < 1 or args.diffusion_images < 1 or args.batch < 1 or args.grid < 1:
        ap.error("--images, --diffusion-images, --batch and --grid must be >= 1")
    if not any(math.isinf(i) or i <= s for s in args.snr for i in args.sinr):
        ap.error("no operating point with SINR <= SNR")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    if args.images > len(data.images):
        raise ValueError(f"--images {args.images}: {args.data} has only {len(data.images)}")
    images = data.images[:args.images]
    labels = None if data.labels is None else data.labels[:args.images]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": "python bench/bench_schemes.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "data": f"{args.data}[:{len(images)}] ({min(args.diffusion_images, len(images))} for schemes with a "
                      "network at the receiver)", "seed": args.seed,
              "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU"}
    t0 = time.time()
    partial = lambda rows: (out / "partial.json").write_text(json.dumps(dict(result, rows=rows), indent=1) + "\n")
    rows, grids = bench(args, LocalBackend("cpu"), images, labels, partial)
    (out / "partial.json").unlink(missing_ok=True)
    result.update(wall_s=round(time.time() - t0, 1), rows=rows)
    text = markdown(result)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text(text + "\n")
    written = figures(rows, grids, images, out, args.grid)
    print(brief(rows) if args.brief else text)
    print(f"bench_schemes.py: {len(rows)} rows in {result['wall_s']:.0f} s; wrote in {out}/: results.json, results.md, "
          + ", ".join(written))
    return 0


if __name__ == "__main__":
    run_main(main)
