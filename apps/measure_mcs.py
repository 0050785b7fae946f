#!/usr/bin/env python3
"""Measure the digital baseline's MCS thresholds: for each MCS (digital/mcs.py) and channel, the
frame error rate of one image's frame (every LDPC codeword of k = 512 symbols decoded, random
information bits, the scrambler, Gray QAM, max-log LLRs with the true sigma^2 / |h|^2) over an
SNR grid, and the lowest SNR of the grid from which on it stays <= --target. Writes the table the
adaptive MCS reads (python/semcom/digital/mcs_thresholds.json by default) with its provenance,
and a frame-error-rate plot beside it (--plot).

  .venv/bin/python apps/measure_mcs.py --frames 200 --seed 0
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

from gnuradio.semcom.core.cli import ArgumentParser, run_main
from gnuradio.semcom.core.files import atomic_path
from gnuradio.semcom.digital import chain, frame, ldpc, mcs, qam


PROBE = 50   # frames tried first at each point
SOURCE_TABLE = Path(__file__).resolve().parents[1] / "python" / "semcom" / "digital" / mcs.THRESHOLDS.name


def frame_errors(chosen, k, channel, snr_db, frames, gen, max_iter) -> int:
    """Frames (of k symbols) with at least one codeword not decoded, of `frames` sent."""
    lay = mcs.layout(chosen, k)
    code = ldpc.load_code(chosen.rate)
    info = torch.randint(0, 2, (frames * lay.codewords, code.k), generator=gen).numpy().astype(np.uint8)
    codewords = ldpc.encode(code, info).reshape(frames, lay.codewords, code.n)
    symbols = chain.codeword_symbols(codewords, lay, chosen.order)   # the shipped chain's fill, scrambler, QAM
    noise_var = 10 ** (-snr_db / 10)
    n = torch.complex(torch.randn(symbols.shape, generator=gen), torch.randn(symbols.shape, generator=gen))
    n = n * math.sqrt(noise_var / 2)
    if channel == "rayleigh":
        h = torch.complex(torch.randn(symbols.shape, generator=gen), torch.randn(symbols.shape, generator=gen))
        h = h / math.sqrt(2)
    else:
        h = torch.ones_like(symbols)
    y = (h * symbols + n) / h   # zero-forced: the unbiased symbols chain.symbol_llrs forms from the MMSE output
    llr = qam.llr_maxlog(y, noise_var / h.abs().square(), chosen.order)
    out = ldpc.decode(code, frame.descramble_llr(llr, lay).reshape(-1, code.n), max_iter=max_iter)
    decoded = out.ok.reshape(frames, lay.codewords).all(1) & torch.from_numpy(
        (out.bits.cpu().numpy()[:, ldpc.info_positions(code)].reshape(frames, lay.codewords, -1)
         == info.reshape(frames, lay.codewords, -1)).all((1, 2)))
    return int((~decoded).sum())


def threshold(snrs, fer, target):
    """The lowest SNR of the grid from which on every FER is <= target; None if none."""
    for i, s in enumerate(snrs):
        if all(f <= target for f in fer[i:]):
            return s
    return None


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="frames per MCS, channel and SNR")
    ap.add_argument("--k", type=int, default=512, help="complex symbols per frame")
    ap.add_argument("--snr", default="-2:30:0.5", help="SNR grid in dB, START:STOP:STEP (STOP included)")
    ap.add_argument("--target", type=float, default=0.1, help="frame error rate the threshold keeps to")
    ap.add_argument("--iterations", type=int, default=50, help="most LDPC decoder iterations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(SOURCE_TABLE), help="default: the source tree's table (rebuild to install it)")
    ap.add_argument("--plot", default="docs/figures/digital_mcs_fer.png", help="frame error rate plot ('' = none)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        start, stop, step = (float(v) for v in args.snr.split(":"))
    except ValueError:
        ap.error(f"--snr {args.snr!r}: expected START:STOP:STEP")
    if not step > 0 or stop < start:
        ap.error(f"--snr {args.snr!r}: need STEP > 0 and STOP >= START")
    args.snrs = [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
    if args.frames < 1 or args.k < 1 or not 0 < args.target < 1:
        ap.error("need --frames >= 1, --k >= 1 and 0 < --target < 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    curves, thresholds = {}, {}
    todo = [(c, m) for c in ("awgn", "rayleigh") for m in mcs.MCS if mcs.layout(m, args.k).codewords >= 1]
    bar = tqdm(total=len(todo) * len(args.snrs), disable=args.no_progress, desc="MCS x channel x SNR")
    for channel, chosen in todo:
        fer = []
        for snr in args.snrs:
            # once a grid point has no error and the previous one had none either, higher SNRs are
            # taken as error-free (the threshold needs only where the curve falls to the target)
            if len(fer) >= 2 and fer[-1] == 0 and fer[-2] == 0:
                fer.append(0.0)
            else:   # a point whose first PROBE frames all fail is far below the threshold: 1.0
                first = min(PROBE, args.frames)
                errors = frame_errors(chosen, args.k, channel, snr, first, gen, args.iterations)
                if errors < first and args.frames > first:
                    errors += frame_errors(chosen, args.k, channel, snr, args.frames - first, gen, args.iterations)
                fer.append(errors / first if errors == first else errors / args.frames)
            bar.update()
        curves.setdefault(channel, {})[chosen.name] = fer
        thresholds.setdefault(channel, {})[chosen.name] = threshold(args.snrs, fer, args.target)
    bar.close()
    command = "python apps/measure_mcs.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    record = {"thresholds_db": thresholds, "target_frame_error_rate": args.target, "k": args.k,
              "snr_db": args.snrs, "frame_error_rate": curves, "frames_per_point": args.frames,
              "iterations": args.iterations, "seed": args.seed, "command": command,
              "wall_s": round(time.time() - t0, 1),
              "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
              "note": f"a point with no frame error after two error-free points is not simulated (recorded as 0); "
                      f"a point whose first {PROBE} frames all fail is recorded as 1.0 without the rest"}
    out = Path(args.out)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n")
    if args.plot:
        from gnuradio.semcom.core.plots import save_metric_panels
        panels = {channel: {name: (args.snrs, [max(f, 0.5 / args.frames) for f in fer])
                            for name, fer in per.items()} for channel, per in curves.items()}
        save_metric_panels(panels, Path(args.plot), "frame error rate (floor: 1/(2 frames))",
                           f"digital baseline: one image's frame (k = {args.k}) vs SNR", logy=True)
    for channel, per in thresholds.items():
        print(channel, ", ".join(f"{name} {fmt(v)}" for name, v in per.items()))
    print(f"measure_mcs.py: wrote {out}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def fmt(v):
    return "never" if v is None else f"{v:g} dB"


if __name__ == "__main__":
    run_main(main)
