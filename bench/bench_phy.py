#!/usr/bin/env python3
"""The OFDM PHY (phy_tx / phy_rx), measured in one run.

1. Estimates (numpy frames through a known channel, phy/sim.py): the payload's MMSE symbol
   error with the receiver's estimated channel and noise against the same receiver with the
   true ones (genie), per channel, SNR and smoothing; the mean SNR estimate; the payload's
   PAPR.
2. Per-frame work of phy_rx: the numpy reference's stages alone, and the C++ blocks
   phy_rx runs (phy_frame_demux_cvc with the header stage, phy_deframer_vc), each fed many
   frames by a vector source (wall time per frame).
3. Throughput of phy_rx without neural inference (GNU Radio): frames through channel_model
   into phy_rx, against the floor of the same harness (vector source, channel_model, null
   sink), in Msps, in the same process, in turn (--repeats); phy_rx's own cost per sample is
   the difference. The load average and the cores the process kept busy are printed with
   it: other jobs on the machine slow both.

  .venv/bin/python bench/bench_phy.py [--frames 100] [--samples 4000000] [--repeats 3] [--seed 0]
"""

import argparse
import os
import sys
import time

import numpy as np

from gnuradio.semcom.phy import sim
from gnuradio.semcom.phy.estimate import ChannelEstimate, estimate_channel, payload_estimate
from gnuradio.semcom.phy.frame import HEADER_SYMBOLS, PREAMBLE_SYMBOLS, OfdmLayout, papr_db
from gnuradio.semcom.phy.header import Header, pack_header, scheme_id

LAYOUT = OfdmLayout()
BODY = PREAMBLE_SYMBOLS + HEADER_SYMBOLS
CHANNELS = {"awgn": [1.0], "3-tap": [1.0, 0.6, 0.3]}


def unit_symbols(k, rng):
    return sim.unit_symbols(k, rng)


def frame(rng, k=512, seq=0):
    z = unit_symbols(k, rng)
    return z, LAYOUT.modulate(LAYOUT.grid(pack_header(Header(scheme_id("mmse"), seq, seq, k)), z))


def mmse_error(p, z):
    zhat = np.conj(p.h) * p.y / (np.abs(p.h) ** 2 + p.noise_var)
    return float(np.mean(np.abs(zhat - z) ** 2))


def estimates(frames, seed):
    rng = np.random.default_rng(seed)
    print("| channel | SNR (dB) | smoothing taps | MSE genie (dB) | MSE estimated (dB) | loss (dB) | SNR estimate (dB) |")
    print("|---|---|---|---|---|---|---|")
    for name, mags in CHANNELS.items():
        for snr in (10.0, 20.0):
            for smooth in (0, 17):
                genie, est_err, snr_est = [], [], []
                for _ in range(frames):
                    z, x = frame(rng)
                    taps = sim.random_taps(mags, rng)
                    Y = LAYOUT.demodulate(sim.through_channel(x, taps, snr, rng, LAYOUT), LAYOUT.frame_symbols(512))
                    est = estimate_channel(Y[1], Y[2], LAYOUT, smooth)
                    p = payload_estimate(Y[BODY:], est, LAYOUT, 512)
                    true = ChannelEstimate(h=sim.true_response(taps, LAYOUT), rotation=0.0,
                                           noise_var=LAYOUT.fft_len * sim.noise_variance(LAYOUT, snr))
                    genie.append(mmse_error(payload_estimate(Y[BODY:], true, LAYOUT, 512), z))
                    est_err.append(mmse_error(p, z))
                    snr_est.append(10 ** (p.snr_db / 10))
                g, e = 10 * np.log10(np.mean(genie)), 10 * np.log10(np.mean(est_err))
                print(f"| {name} | {snr:.0f} | {smooth or 'off'} | {g:.2f} | {e:.2f} | {e - g:.2f} | "
                      f"{10 * np.log10(np.mean(snr_est)):.2f} |")
    papr = [papr_db(frame(rng)[1][BODY * LAYOUT.symbol_len:]) for _ in range(200)]
    print(f"\npayload PAPR over 200 frames: mean {np.mean(papr):.2f} dB, 99th percentile "
          f"{np.percentile(papr, 99):.2f} dB, max {np.max(papr):.2f} dB")


def per_frame_costs(seed, repeats=200):
    """The numpy work phy_rx does per frame, each stage alone (ms per frame)."""
    from gnuradio.semcom.phy.estimate import decode_header
    rng = np.random.default_rng(seed)
    _, x = frame(rng)
    Y = LAYOUT.demodulate(sim.through_channel(x, [1.0], 20.0, rng, LAYOUT), LAYOUT.frame_symbols(512))
    est = estimate_channel(Y[1], Y[2], LAYOUT, 17)
    stages = {"channel and noise estimate (17-tap smoothing)": lambda: estimate_channel(Y[1], Y[2], LAYOUT, 17),
              "header (pilots, soft Viterbi, CRC)": lambda: decode_header(Y[PREAMBLE_SYMBOLS:BODY], est, LAYOUT),
              "payload (pilots, de-interleave, SNR/SINR)": lambda: payload_estimate(Y[BODY:], est, LAYOUT, 512)}
    print("\nper-frame numpy work of phy_rx, each stage alone:")
    for name, fn in stages.items():
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        print(f"  {name}: {(time.perf_counter() - t0) / repeats * 1e3:.2f} ms")


def per_frame_costs_cpp(seed, frames=2000):
    """The C++ blocks phy_rx runs, each alone in a flowgraph (vector source -> block), fed
    `frames` frames of k = 512 as the stage before hands them over (ms per frame, wall time,
    the source's own time subtracted)."""
    import pmt
    from gnuradio import blocks, gr
    from gnuradio.semcom import phy_deframer_vc, phy_frame_demux_cvc, phy_header_decoder_vc, phy_sync_tagger_cc
    from gnuradio.semcom.phy.estimate import derotate_fft, refined_cfo
    rng = np.random.default_rng(seed)
    distinct = []
    for i in range(16):
        _, x = frame(rng, seq=i)
        distinct.append(sim.through_channel(x, sim.random_taps([1.0, 0.6, 0.3], rng), 20.0, rng, LAYOUT, cfo=0.1))
    samples = [distinct[i % 16] for i in range(frames)]
    rows = [y.reshape(-1, LAYOUT.symbol_len)[:, LAYOUT.cp_len:] for y in samples]
    cfo0 = float(np.pi * 0.1)

    def tag(offset, key, value):
        return gr.tag_utils.python_to_tag((offset, pmt.intern(key), value, pmt.intern("bench")))

    def timed(block, items, vlen, tags):
        """ms per frame of the block, less that of its source alone."""
        walls = []
        for blk in (block, blocks.null_sink(gr.sizeof_gr_complex * vlen)):
            tb = gr.top_block()
            tb.connect(blocks.vector_source_c(np.concatenate(items).ravel().tolist(), False, vlen, tags), blk)
            t0 = time.perf_counter()
            tb.run()
            walls.append(time.perf_counter() - t0)
        return (walls[0] - walls[1]) / frames * 1e3

    # the frame demux behind the tagger, as in phy_rx (fed by a vector source's tags instead, the
    # source's tag handling costs several times the demux), less the tagger alone
    guard = np.zeros(160, np.complex64)
    stream = np.concatenate([np.concatenate([y, guard]) for y in samples]).astype(np.complex64)
    trigger = np.zeros(stream.size, np.int8)
    trigger[::samples[0].size + guard.size] = 1
    walls = []
    for with_demux in (True, False):
        tb = gr.top_block()
        tagger = phy_sync_tagger_cc()
        tb.connect(blocks.vector_source_c(stream.tolist()), (tagger, 0))
        tb.connect(blocks.vector_source_f(np.full(stream.size, cfo0, np.float32).tolist()), (tagger, 1))
        tb.connect(blocks.vector_source_b(trigger.tolist()), (tagger, 2))
        if with_demux:
            tb.connect(tagger, phy_frame_demux_cvc(LAYOUT.cp_len, 17, True),
                       blocks.null_sink(gr.sizeof_gr_complex * LAYOUT.fft_len))
        else:
            tb.connect(tagger, blocks.null_sink(gr.sizeof_gr_complex))
        t0 = time.perf_counter()
        tb.run()
        walls.append(time.perf_counter() - t0)
    demux = (walls[0] - walls[1]) / frames * 1e3
    header = timed(phy_header_decoder_vc(LAYOUT.cp_len, 17), [r[:BODY] for r in rows], LAYOUT.fft_len,
                   [tag(BODY * i, "phy_cfo", pmt.from_double(cfo0)) for i in range(frames)])
    tags, at = [], 0
    for i, r in enumerate(rows):
        cfo = refined_cfo(r, LAYOUT, cfo0)
        Y = derotate_fft(r[:BODY], LAYOUT, cfo, 0)
        est = estimate_channel(Y[1], Y[2], LAYOUT, 17)
        fields = {"frame_len": pmt.from_long(r.shape[0] - BODY), "image_id": pmt.from_long(i),
                  "seq": pmt.from_long(i % 4096), "scheme_id": pmt.from_long(1), "k": pmt.from_long(512),
                  "phy_noise_var": pmt.from_double(est.noise_var), "phy_error_var": pmt.from_double(est.error_var),
                  "cfo_rotation": pmt.from_double(est.rotation), "cfo": pmt.from_double(cfo),
                  "phy_h": pmt.init_c32vector(LAYOUT.fft_len, est.h.astype(np.complex64))}
        tags += [tag(at, key, value) for key, value in fields.items()]
        at += r.shape[0] - BODY
    payload = timed(phy_deframer_vc(LAYOUT.cp_len, "linear"), [r[BODY:] for r in rows], LAYOUT.fft_len, tags)
    print(f"\nper-frame work of phy_rx's C++ blocks, each alone ({frames} frames of k = 512, 1600 samples each; "
          f"wall time per frame, the source's subtracted):")
    print(f"  phy_frame_demux_cvc (behind phy_sync_tagger_cc, less the tagger: trigger, CP removal, the "
          f"header stage below): {demux:.3f} ms")
    print(f"  the header stage alone (phy_header_decoder_vc: CFO refinement, FFTs, channel with 17-tap "
          f"smoothing, noise, Viterbi, CRC, answer): {header:.3f} ms")
    print(f"  phy_deframer_vc (FFTs, pilots, de-interleave, SNR/SINR, MMSE weights, 4 PDUs): {payload:.3f} ms")


def throughput(n_samples, seed, repeats):
    from gnuradio import blocks, channels, gr
    from gnuradio.semcom import phy_rx
    rng = np.random.default_rng(seed)
    # 64 frames with sequence numbers 0..63, repeated: the receiver sees a jump back every
    # 64 frames (a restarted transmitter: logged once, not counted as lost)
    burst = np.concatenate([np.concatenate([frame(rng, seq=i)[1], np.zeros(160, np.complex64)]) for i in range(64)])
    noise = float(np.sqrt(sim.noise_variance(LAYOUT, 20.0)))

    def run(with_rx):
        tb = gr.top_block()
        src = blocks.vector_source_c(burst.tolist(), True)
        head = blocks.head(gr.sizeof_gr_complex, n_samples)
        channel = channels.channel_model(noise, 0.0, 1.0, [1.0], 1)
        tb.connect(src, head, channel)
        rx = None
        if with_rx:
            rx = phy_rx()
            tb.connect(channel, rx)
        else:
            tb.connect(channel, blocks.null_sink(gr.sizeof_gr_complex))
        t0, cpu0 = time.perf_counter(), time.process_time()
        tb.run()
        wall = time.perf_counter() - t0
        return wall, (time.process_time() - cpu0) / wall, rx

    frames = n_samples // (LAYOUT.frame_samples(512) + 160)
    print(f"\n{n_samples} samples ({frames} frames of k = 512), {repeats} runs of the floor and phy_rx in turn; "
          f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f} (other jobs slow both)")
    rates, own = [], []
    for _ in range(repeats):
        floor, floor_cores, _ = run(False)
        wall, cores, rx = run(True)
        rates.append(n_samples / wall / 1e6)
        own.append((wall - floor) / n_samples * 1e9)
        print(f"  harness floor (source, channel_model, null sink): {n_samples / floor / 1e6:.2f} Msps "
              f"({floor_cores:.2f} cores busy); with phy_rx: {rates[-1]:.2f} Msps ({cores:.2f} cores busy), "
              f"frames delivered {rx.frames} of ~{frames}, header failures {rx.crc_failures}; phy_rx's own cost "
              f"{own[-1]:.0f} ns per sample")
    print(f"  median: with phy_rx {np.median(rates):.2f} Msps; phy_rx's own cost {np.median(own):.0f} ns per sample "
          f"(= {1e3 / max(np.median(own), 1e-9):.2f} Msps on its own)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100, help="frames per row of the estimates table")
    ap.add_argument("--samples", type=int, default=4_000_000, help="samples of the throughput run")
    ap.add_argument("--repeats", type=int, default=3, help="throughput runs (floor and phy_rx in turn)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.frames < 1 or args.samples < 10_000 or args.repeats < 1:
        ap.error("--frames and --repeats must be >= 1 and --samples >= 10000")
    print(f"bench_phy: {' '.join(sys.argv)}")
    estimates(args.frames, args.seed)
    per_frame_costs(args.seed)
    per_frame_costs_cpp(args.seed)
    throughput(args.samples, args.seed, args.repeats)


if __name__ == "__main__":
    main()
