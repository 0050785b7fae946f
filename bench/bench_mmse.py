#!/usr/bin/env python3
"""MMSE equalization three ways in one harness, measured in one run.

Harness: two pre-generated vectors (y, h) on repeat -> equalizer -> head(N) -> null sink.
  floor       the harness alone, with a trivial stock add_cc in place of the equalizer
  cpp         semcom.mmse_equalizer_cc, both outputs (zhat and w, w to a second null sink)
  cpp-zhat    semcom.mmse_equalizer_cc with only zhat connected (what the stock chain computes)
  stock       zhat = y conj(h) / (|h|^2 + sigma^2/Ps) / sqrt(Ps) from stock blocks
              (multiply_conjugate, complex_to_mag_squared, add_const, float_to_complex,
              divide, multiply_const)
  numpy       a Python sync block doing the same maths with numpy
For each: wall throughput (Msps) and process CPU time per sample (ns). A block's own
cost is its CPU ns/sample minus the floor's.

Run: .venv/bin/python bench/bench_mmse.py [--samples N] [--repeats R]
"""

import math
import time

import numpy as np
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core.cli import ArgumentParser, run_main

PS, NOISE_VAR = 1.0, 0.1


class numpy_mmse(gr.sync_block):
    def __init__(self, ps, nv):
        gr.sync_block.__init__(self, "numpy_mmse", [np.complex64, np.complex64], [np.complex64, np.complex64])
        self.amp, self.ps, self.nv = math.sqrt(ps), ps, nv

    def work(self, input_items, output_items):
        y, h = input_items
        n = len(output_items[0])
        w = self.amp * np.conj(h[:n]) / (self.ps * (h[:n].real ** 2 + h[:n].imag ** 2) + self.nv)
        output_items[1][:] = w
        output_items[0][:] = w * y[:n]
        return n


def build(kind, y, h, n):
    tb = gr.top_block()
    src_y, src_h = blocks.vector_source_c(y, True), blocks.vector_source_c(h, True)
    head, sink = blocks.head(gr.sizeof_gr_complex, n), blocks.null_sink(gr.sizeof_gr_complex)
    tb.keep, tb.head = [], head
    if kind == "floor":
        add = blocks.add_cc()
        tb.connect(src_y, (add, 0))
        tb.connect(src_h, (add, 1))
        tb.connect(add, head, sink)
    elif kind in ("cpp", "cpp-zhat", "numpy"):
        eq = numpy_mmse(PS, NOISE_VAR) if kind == "numpy" else semcom.mmse_equalizer_cc(PS, NOISE_VAR)
        tb.keep.append(eq)
        tb.connect(src_y, (eq, 0))
        tb.connect(src_h, (eq, 1))
        tb.connect((eq, 0), head, sink)
        if kind != "cpp-zhat":
            tb.connect((eq, 1), blocks.null_sink(gr.sizeof_gr_complex))
    elif kind == "stock":
        num = blocks.multiply_conjugate_cc()
        mag2 = blocks.complex_to_mag_squared()
        add = blocks.add_const_ff(NOISE_VAR / PS)
        to_c = blocks.float_to_complex()
        div = blocks.divide_cc()
        scale = blocks.multiply_const_cc(1 / math.sqrt(PS))
        tb.connect(src_y, (num, 0))
        tb.connect(src_h, (num, 1))
        tb.connect(src_h, mag2, add, to_c)
        tb.connect(num, (div, 0))
        tb.connect(to_c, (div, 1))
        tb.connect(div, scale, head, sink)
    else:
        raise ValueError(kind)
    return tb


def measure(kind, y, h, n):
    tb = build(kind, y, h, n)
    c0, t0 = time.process_time(), time.perf_counter()
    tb.run()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    if tb.head.nitems_written(0) != n:
        raise RuntimeError(f"{kind}: the harness passed {tb.head.nitems_written(0)} of {n} samples")
    return n / wall / 1e6, cpu / n * 1e9


def main():
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=100_000_000, help="samples per run (default 1e8)")
    ap.add_argument("--numpy-samples", type=int, default=20_000_000, help="samples for the slow numpy block")
    ap.add_argument("--repeats", type=int, default=5, help="rounds over all variants; the best is kept")
    args = ap.parse_args()
    if args.samples < 1 or args.numpy_samples < 1 or args.repeats < 1:
        ap.error("--samples, --numpy-samples and --repeats must be >= 1")

    rng = np.random.default_rng(0)
    m = 1 << 16
    y = (rng.standard_normal(m) + 1j * rng.standard_normal(m)).astype(np.complex64)
    h = ((rng.standard_normal(m) + 1j * rng.standard_normal(m)) / math.sqrt(2)).astype(np.complex64)

    # Round-robin over the variants, so a drift of the machine hits them all alike; the
    # best wall rate and the least CPU per sample of each are kept.
    kinds = ("floor", "cpp", "cpp-zhat", "stock", "numpy")
    runs = {k: [] for k in kinds}
    for r in range(args.repeats):
        for kind in kinds:
            runs[kind].append(measure(kind, y, h, args.numpy_samples if kind == "numpy" else args.samples))
        print(f"round {r + 1}/{args.repeats} done", flush=True)
    results = {k: (max(m[0] for m in v), min(m[1] for m in v)) for k, v in runs.items()}
    for kind in kinds:
        msps, ns = results[kind]
        print(f"{kind:8s} {msps:8.1f} Msps wall  {ns:7.2f} CPU-ns/sample  "
              f"own {ns - results['floor'][1]:6.2f} ns", flush=True)

    floor_ns = results["floor"][1]
    own = {k: v[1] - floor_ns for k, v in results.items() if k != "floor"}
    ratio = lambda a, b: f"{own[a] / own[b]:5.1f}x" if own[b] > 0.05 else "  n/a (own cost below the noise)"
    print()
    for kind, label in (("cpp", "C++ block, zhat + w"), ("cpp-zhat", "C++ block, zhat only")):
        print(f"{label}:")
        print(f"  stock chain own CPU / C++ own CPU : {ratio('stock', kind)}  (goal >= 3)")
        print(f"  numpy block own CPU / C++ own CPU : {ratio('numpy', kind)}")
        print(f"  C++ wall throughput / floor       : {results[kind][0] / results['floor'][0]:5.2f}   (goal >= 0.9)")


if __name__ == "__main__":
    run_main(main)
