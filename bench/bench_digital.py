#!/usr/bin/env python3
"""The digital baseline's throughput (images/s) on both engines, one core, measured in one run.

  gnuradio  image_source -> digital_transmitter (gr-fec async_encoder) -> pdu_to_tagged_stream
            -> fading_interference_channel_cc -> mmse_equalizer_cc -> equalized_to_pdu
            -> digital_receiver (gr-fec async_decoder) -> image_sink (no LPIPS), paced by acks
  batch     link_sim.simulate(scheme "digital"): the same transmitter maths with ldpc.encode, the
            core channel and equalizer, our torch min-sum decoder, one batch

Both at one fixed MCS and SNR on the first N CIFAR-10 test images. The process is pinned to one
CPU (GNU Radio's threads inherit it) and torch to one thread. The codec's per-image quality
search is cached (codec._sizes); its cache is cleared before every timed run, so each run pays
for it, and "codec search alone" shows its share.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/bench_digital.py [--images 200] [--mcs 16qam-1/2]
     [--snr 12] [--codec webp] [--repeats 1]
"""

import math
import os
import time

import torch

from gnuradio.semcom.core.cli import ArgumentParser, run_main


def clear_codec_caches():
    from gnuradio.semcom.digital import codec
    codec._sizes.cache_clear()
    codec._jpeg_header.cache_clear()


def gnuradio_run(n, mcs, snr_db, codec, seed=0):
    """(seconds, images out, success rate) of the flowgraph."""
    from gnuradio import blocks, gr, pdu
    from gnuradio import semcom
    tb = gr.top_block()
    tb.source = semcom.image_source("cifar10_test", n, 0, "forward", 32, 60.0)
    tb.tx = semcom.digital_transmitter(codec, mcs, 512, snr_db, "awgn", 1.0)
    tb.to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, "packet_len")
    tb.channel = semcom.fading_interference_channel_cc("awgn", 1, snr_db, math.inf, 1.0, seed)
    tb.equalizer = semcom.mmse_equalizer_cc(1.0, 10 ** (-snr_db / 10))
    tb.to_pdu = semcom.equalized_to_pdu(snr_db, math.inf)
    tb.rx = semcom.digital_receiver(codec, 512, 50, snr_db, math.inf)
    tb.sink = semcom.image_sink(with_lpips=False)
    tb.msg_connect(tb.source, "pdus", tb.tx, "images")
    tb.msg_connect(tb.source, "pdus", tb.sink, "reference")
    tb.msg_connect(tb.tx, "symbols", tb.to_stream, "pdus")
    tb.connect(tb.to_stream, (tb.channel, 0))
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), (tb.channel, 1))
    tb.connect((tb.channel, 0), (tb.equalizer, 0))
    tb.connect((tb.channel, 1), (tb.equalizer, 1))
    tb.connect((tb.equalizer, 0), (tb.to_pdu, 0))
    tb.connect((tb.equalizer, 1), (tb.to_pdu, 1))
    tb.connect((tb.channel, 1), (tb.to_pdu, 2))
    tb.msg_connect(tb.to_pdu, "pdus", tb.rx, "pdus")
    tb.msg_connect(tb.rx, "images", tb.sink, "pdus")
    tb.msg_connect(tb.sink, "ack", tb.source, "ack")
    t0 = time.perf_counter()
    tb.run()
    seconds = time.perf_counter() - t0
    return seconds, tb.sink.count(), tb.rx.success_rate


def batch_run(images, mcs, snr_db, codec, seed=0):
    """(seconds, images out, success rate) of the batch engine."""
    from gnuradio.semcom.inference.local import LocalBackend
    from gnuradio.semcom.schemes.link_sim import simulate
    t0 = time.perf_counter()
    res = simulate(LocalBackend("cpu"), images, "awgn", snr_db, math.inf, "", "", "digital", seed=seed,
                   receiver_options={"mcs": mcs, "codec": codec, "k": 512})
    seconds = time.perf_counter() - t0
    if res.errors:
        raise RuntimeError(f"batch engine: {res.errors}")
    return seconds, len(res.received), res.extra["success_rate"]


def codec_run(images, mcs, codec):
    from gnuradio.semcom.digital import codec as codecs, mcs as mcs_table
    budget = mcs_table.layout(mcs_table.get(mcs), 512).payload_bytes
    t0 = time.perf_counter()
    for image in images:
        codecs.encode(image, codec, budget)
    return time.perf_counter() - t0, len(images), None


def main():
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=200, help="CIFAR-10 test images (default 200)")
    ap.add_argument("--mcs", default="16qam-1/2", help="the fixed MCS (default 16qam-1/2)")
    ap.add_argument("--snr", type=float, default=12.0, help="AWGN SNR in dB (default 12)")
    ap.add_argument("--codec", default="webp", choices=("webp", "jpeg"))
    ap.add_argument("--repeats", type=int, default=1, help="rounds over both engines; the best is kept")
    ap.add_argument("--cpu", type=int, default=-1, help="the CPU to pin to (default: the first allowed)")
    args = ap.parse_args()
    if args.images < 1 or args.repeats < 1:
        ap.error("--images and --repeats must be >= 1")
    cpu = args.cpu if args.cpu >= 0 else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})    # before GNU Radio starts a thread: they all inherit it
    torch.set_num_threads(1)

    from gnuradio.semcom.core.datasets import load_dataset
    images = load_dataset("cifar10_test").images[:args.images]
    # warm-up: imports, gr-fec's alist parsing, torch's first calls (not timed)
    gnuradio_run(4, args.mcs, args.snr, args.codec)
    batch_run(images[:4], args.mcs, args.snr, args.codec)

    runs = {"gnuradio": [], "batch": [], "codec": []}
    for r in range(args.repeats):
        for name, fn in (("gnuradio", lambda: gnuradio_run(len(images), args.mcs, args.snr, args.codec)),
                         ("batch", lambda: batch_run(images, args.mcs, args.snr, args.codec)),
                         ("codec", lambda: codec_run(images, args.mcs, args.codec))):
            clear_codec_caches()
            seconds, count, success = fn()
            if count != len(images):
                raise RuntimeError(f"{name}: {count} of {len(images)} images came out")
            runs[name].append((seconds, success))
            print(f"round {r + 1}: {name:8s} {seconds:7.2f} s  {count / seconds:7.2f} images/s"
                  + ("" if success is None else f"  success rate {success:.3f}"), flush=True)

    best = {name: min(s for s, _ in v) for name, v in runs.items()}
    rate = {name: len(images) / s for name, s in best.items()}
    print()
    print(f"digital, {args.mcs}, {args.codec}, AWGN {args.snr:g} dB, {len(images)} CIFAR-10 test images, "
          f"k = 512, CPU {cpu} alone, torch threads 1 (best of {args.repeats})")
    print(f"  GNU Radio (gr-fec LDPC)      {rate['gnuradio']:8.2f} images/s")
    print(f"  batch engine (torch min-sum) {rate['batch']:8.2f} images/s")
    print(f"  codec search alone           {rate['codec']:8.2f} images/s")
    print(f"  ratio GNU Radio / batch      {rate['gnuradio'] / rate['batch']:8.3f}")


if __name__ == "__main__":
    run_main(main)
