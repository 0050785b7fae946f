#!/usr/bin/env python3
"""The image link over the OFDM PHY: PSNR with the PHY's estimated CSI against genie CSI, and
under each impairment, on CIFAR-10 test images; writes docs/results_ota.md and a plot.

  .venv/bin/python bench/bench_ota.py [--images 1000] [--markdown docs/results_ota.md] \\
      [--plot docs/img/ota_csi.png]

1. Genie vs estimated CSI (run_link --phy ofdm --engine batch: numpy frames, aligned): mmse
   over --snr, flat and 3-tap multipath (tap phases drawn per frame), no interferer; then
   mmse, lmmse-full (icdm's strongest simple control) and icdm at SINR 5 dB (--icdm-images).
2. Impairments through the GNU Radio chain (run_link --phy ofdm --engine gnuradio: phy_tx,
   gr-channels channel_model, Schmidl & Cox sync, phy_rx): mmse at SNR 10 and 20 dB, each
   impairment alone, estimated CSI; frames lost to failed headers count as lost images.
Every row is a run_link JSON row; the commands are printed and written with the tables.
"""

import json
import shlex
import subprocess
import sys
from pathlib import Path

from gnuradio.semcom.core.cli import ArgumentParser, run_main

REPO = Path(__file__).resolve().parents[1]
CHANNELS = {"flat": "1", "3-tap": "1,0.6,0.3"}
IMPAIRMENTS = {"none": [], "CFO 0.3 spacing": ["--cfo", "0.3"], "CFO -0.45 spacing": ["--cfo", "-0.45"],
               "SRO 20 ppm": ["--sro", "20"], "phase noise 0.02": ["--phase-noise", "0.02"],
               "3-tap multipath": ["--taps", "1,0.6,0.3"]}


def run_link(args, log):
    cmd = [sys.executable, str(REPO / "apps" / "run_link.py"), "--json", "--no-progress", "--no-lpips", *args]
    log.append("python apps/run_link.py " + shlex.join(cmd[2:]))
    print(log[-1], file=sys.stderr, flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"run_link failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)


def main():
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=1000, help="CIFAR-10 test images per point")
    ap.add_argument("--icdm-images", type=int, default=128, help="images per icdm point")
    ap.add_argument("--snr", default="0,5,10,15,20,25")
    ap.add_argument("--markdown", default="")
    ap.add_argument("--plot", default="")
    args = ap.parse_args()
    log, lines = [], []
    data = ["--dataset", "cifar10", "--images", str(args.images), "--out", "/tmp/bench_ota"]
    csi_rows = {}
    for name, taps in CHANNELS.items():
        for csi in ("genie", "estimated"):
            csi_rows[name, csi] = run_link(["--engine", "batch", "--phy", "ofdm", "--csi", csi, "--taps", taps,
                                            "--snr", args.snr, "--receiver", "mmse"] + data, log)
    lines += ["## Genie against estimated CSI (batch engine, mmse, no interferer)", "",
              f"{args.images} CIFAR-10 test images per point; PSNR (dB) and the PHY's mean SNR estimate.", "",
              "| channel | SNR (dB) | PSNR genie | PSNR estimated | loss (dB) | SNR estimate (dB) | lost |",
              "|---|---|---|---|---|---|---|"]
    for name in CHANNELS:
        for g, e in zip(csi_rows[name, "genie"], csi_rows[name, "estimated"]):
            lines.append(f"| {name} | {g['snr_db']:g} | {fmt(g['psnr_db'])} | {fmt(e['psnr_db'])} | "
                         f"{fmt(g['psnr_db'] - e['psnr_db'] if e['psnr_db'] is not None else None)} | "
                         f"{fmt(e['snr_est_db'])} | {e['lost']} |")
    icdm = ["--dataset", "cifar10", "--images", str(args.icdm_images), "--out", "/tmp/bench_ota"]
    lines += ["", f"## mmse, lmmse-full and icdm at SINR 5 dB (batch engine, {args.icdm_images} images)", "",
              "| channel | SNR (dB) | scheme | PSNR genie | PSNR estimated | loss (dB) | SINR estimate (dB) |",
              "|---|---|---|---|---|---|---|"]
    for name, taps in CHANNELS.items():
        rows = {csi: run_link(["--engine", "batch", "--phy", "ofdm", "--csi", csi, "--taps", taps, "--snr", "10,20",
                               "--sinr", "5", "--receiver", "mmse,lmmse-full,icdm"] + icdm, log) for csi in ("genie", "estimated")}
        for g, e in zip(rows["genie"], rows["estimated"]):
            lines.append(f"| {name} | {g['snr_db']:g} | {g['receiver']} | {fmt(g['psnr_db'])} | {fmt(e['psnr_db'])} | "
                         f"{fmt(g['psnr_db'] - e['psnr_db'])} | {fmt(e['sinr_est_db'])} |")
    lines += ["", "## Impairments through the GNU Radio chain (mmse, estimated CSI, no interferer)", "",
              f"{args.images} images per point.", "",
              "| impairment | SNR (dB) | PSNR | SNR estimate (dB) | lost | seconds |", "|---|---|---|---|---|---|"]
    for name, extra in IMPAIRMENTS.items():
        for r in run_link(["--engine", "gnuradio", "--phy", "ofdm", "--snr", "10,20", "--receiver", "mmse"]
                          + extra + data, log):
            lines.append(f"| {name} | {r['snr_db']:g} | {fmt(r['psnr_db'])} | {fmt(r['snr_est_db'])} | {r['lost']} | "
                         f"{r['seconds']:.0f} |")
    lines += ["", "Commands:", "", "```sh"] + log + ["```"]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text("# The image link over the OFDM PHY\n\nWritten by `"
                                       + "python bench/bench_ota.py " + shlex.join(sys.argv[1:]) + "`.\n\n" + text + "\n")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for (name, csi), rows in csi_rows.items():
            ax.plot([r["snr_db"] for r in rows], [r["psnr_db"] for r in rows], "o-" if csi == "genie" else "s--",
                    label=f"{name}, {csi} CSI")
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title("mmse over the OFDM PHY, CIFAR-10, CBR 1/6")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    run_main(main)
