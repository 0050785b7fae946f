#!/usr/bin/env python3
"""Image-link benchmark: PSNR/SSIM vs SNR for both CBRs and channels, with and without the
interfering JSCC user, on CIFAR-10 test images; images/s of both engines, measured in one run.

  .venv/bin/python bench/bench_link.py [--images 1000] [--markdown docs/results_link.md]

Sweeps run on the batch engine (the same core functions as the flowgraph; tests hold the two
engines within 0.2 dB). Throughput: the same operating point on both engines.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from gnuradio.semcom.core.cli import ArgumentParser, run_main

REPO = Path(__file__).resolve().parents[1]


def run_link(*args):
    res = subprocess.run([sys.executable, str(REPO / "apps" / "run_link.py"), "--json", *args],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"run_link failed: {res.stderr.strip().splitlines()[-1]}")
    return [json.loads(line) for line in res.stdout.splitlines()]


def fmt(v, spec):
    return "null" if v is None else format(v, spec)


def main():
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=1000, help="CIFAR-10 test images per point")
    ap.add_argument("--throughput-images", type=int, default=256)
    ap.add_argument("--snr", default="0,5,10,15,20")
    ap.add_argument("--sinr", default="inf,10,5,0")
    ap.add_argument("--markdown", default="", help="also write the tables to this file")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (512, 256):
            print(f"sweep k={k} ...", file=sys.stderr, flush=True)
            rows += [dict(r, k=k) for r in run_link(
                "--dataset", "cifar10", "--images", str(args.images), "--engine", "batch",
                "--channel", "awgn,rayleigh", "--snr", args.snr, "--sinr", args.sinr, "--k", str(k),
                "--no-progress", "--out", f"{tmp}/k{k}")]
        speed = {}
        for engine in ("batch", "gnuradio"):
            print(f"throughput {engine} ...", file=sys.stderr, flush=True)
            r = run_link("--dataset", "cifar10", "--images", str(args.throughput_images), "--engine", engine,
                         "--channel", "awgn", "--snr", "10", "--sinr", "5", "--no-lpips", "--no-progress",
                         "--out", f"{tmp}/{engine}")[0]
            speed[engine] = r

    lines = [f"# Image link with the MMSE receiver (CIFAR-10 test, first {args.images} images)", "",
             "Command: `.venv/bin/python bench/bench_link.py " + " ".join(sys.argv[1:]) + "`", "",
             "PSNR (dB) / SSIM per SNR (columns) and SINR (rows); `inf` = no interferer; "
             "`—`: SINR > SNR is impossible. Where SINR = SNR the interference power is zero "
             "(SINR = Ps/(Pi + σ²)), so those cells repeat the `inf` row. The interferer is the "
             "other JSCC model sending the test set walked backwards. LPIPS is null offline "
             "(no AlexNet weights). Batch engine; the GNU Radio engine agrees within 0.2 dB "
             "(tests/test_image_link.py).", ""]
    snrs = sorted({r["snr_db"] for r in rows})
    for k in (512, 256):
        for channel in ("awgn", "rayleigh"):
            sel = [r for r in rows if r["k"] == k and r["channel"] == channel]
            if not sel:
                continue
            lines += [f"## CBR {sel[0]['cbr']:.4f} (k = {k}), {channel}", "",
                      "| SINR \\ SNR | " + " | ".join(f"{s:g} dB" for s in snrs) + " |",
                      "|---" * (len(snrs) + 1) + "|"]
            for sinr in sorted({r["sinr_db"] for r in sel}, key=lambda v: float("-inf") if v is None else -v):
                cells = []
                for s in snrs:
                    m = [r for r in sel if r["snr_db"] == s and r["sinr_db"] == sinr]
                    cells.append(f"{fmt(m[0]['psnr_db'], '.2f')} / {fmt(m[0]['ssim'], '.3f')}" if m else "—")
                lines.append(f"| {'inf' if sinr is None else format(sinr, 'g')} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += ["## Throughput (AWGN, SNR 10 dB, SINR 5 dB: both users encoded, CPU)", "",
              "| engine | images | images/s |", "|---|---|---|"]
    for engine, r in speed.items():
        lines.append(f"| {engine} | {r['images']} | {r['images_per_s']:.1f} |")
    lines.append(f"\nbatch / gnuradio: {speed['batch']['images_per_s'] / speed['gnuradio']['images_per_s']:.1f}x")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)


if __name__ == "__main__":
    run_main(main)
