#!/usr/bin/env python3
"""In-process vs side-process inference, measured in one run.

Decoding throughput (images/s) at batch 1 and 16 with the shipped user model, both on the
same device, and round-trip latency: ping, and the latency the side process adds to a
batch-1 decode (median side-process time minus median in-process time).

  .venv/bin/python bench/bench_server.py [--seconds 5] [--device cpu]
"""

import argparse
import statistics
import time


from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.inference.client import ServerBackend
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.inference.spawn import spawn_server, stop_server

MODEL = "jscc_user_awgn_k512"


def timed(fn, seconds):
    """Per-call times of fn() repeated for about `seconds` (after 3 warm-up calls)."""
    for _ in range(3):
        fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    local = LocalBackend(args.device)
    latents = local.encode(MODEL, load_dataset("sample").images[:16], 10.0)
    address, proc = spawn_server(args.device, extra_args=("--max-wait-ms", "0"))
    remote = ServerBackend(address, timeout=60)
    try:
        print(f"device {args.device}, model {MODEL}, {args.seconds:g} s per measurement")
        rows = {}
        backends = (("in-process", local), ("side process", remote))
        for batch in (1, 16):
            x = latents[:batch]
            # Alternate short slices of the two, so a drift of the machine hits both alike.
            for name, _ in backends:
                rows[(name, batch)] = []
            for _ in range(5):
                for name, backend in backends:
                    rows[(name, batch)] += timed(lambda: backend.decode(MODEL, x, 10.0), args.seconds / 5)
            for name, _ in backends:
                t = rows[(name, batch)]
                print(f"decode batch {batch:2d} {name:12s}: {batch * len(t) / sum(t):8.1f} images/s "
                      f"(median {statistics.median(t) * 1e3:7.2f} ms per call)", flush=True)
        ping = timed(remote.ping, args.seconds)
        print(f"ping round trip: median {statistics.median(ping) * 1e3:.3f} ms")
        for batch in (1, 16):
            ratio = (sum(rows[("in-process", batch)]) / len(rows[("in-process", batch)])) / \
                    (sum(rows[("side process", batch)]) / len(rows[("side process", batch)]))
            print(f"side / in-process throughput, batch {batch:2d}: {ratio:.3f}  (goal >= 0.95 at batch 16)")
        added = statistics.median(rows[("side process", 1)]) - statistics.median(rows[("in-process", 1)])
        print(f"added latency, batch 1 decode: {added * 1e3:.3f} ms  (goal <= 1 ms)")
    finally:
        remote.close()
        stop_server(proc)


if __name__ == "__main__":
    main()
