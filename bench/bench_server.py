#!/usr/bin/env python3
"""In-process vs side-process inference, measured in one run.

Decoding throughput (images/s) at batch 1 and 16 with the shipped user model, both on the
same device, and round-trip latency: ping, and the latency the side process adds to a
batch-1 decode (median side-process time minus median in-process time).

The side process is measured twice: one request at a time (each call waits for its reply,
so the round trip is idle time for the server), and with `--in-flight` requests outstanding
from as many client threads (what several blocks or flowgraphs sharing a server do: the next
request waits in the server's socket while it computes). The server's --max-batch is the
batch size, so requests are never merged into larger batches than in-process.

  .venv/bin/python bench/bench_server.py [--seconds 5] [--device cpu]
"""

import argparse
import statistics
import threading
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


def pipelined(fn, seconds, depth):
    """(calls, elapsed) with `depth` threads calling fn() back to back for about `seconds`."""
    for _ in range(3):
        fn()
    counts, end = [0] * depth, time.perf_counter() + seconds

    def worker(n):
        while time.perf_counter() < end:
            fn()
            counts[n] += 1
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(depth)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--in-flight", type=int, default=2, help="outstanding requests in the pipelined run")
    args = ap.parse_args()

    local = LocalBackend(args.device)
    latents = local.encode(MODEL, load_dataset("sample").images[:16], 10.0)
    address, proc = spawn_server(args.device, extra_args=("--max-wait-ms", "0", "--max-batch", "16"))
    remote = ServerBackend(address, timeout=60, max_in_flight=max(4, args.in_flight))
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
        piped = {}
        for batch in (1, 16):
            x = latents[:batch]
            calls, elapsed = pipelined(lambda: remote.decode(MODEL, x, 10.0), args.seconds, args.in_flight)
            piped[batch] = batch * calls / elapsed
            print(f"decode batch {batch:2d} side process, {args.in_flight} in flight: {piped[batch]:8.1f} images/s",
                  flush=True)
        ping = timed(remote.ping, args.seconds)
        print(f"ping round trip: median {statistics.median(ping) * 1e3:.3f} ms")
        for batch in (1, 16):
            ratio = (sum(rows[("in-process", batch)]) / len(rows[("in-process", batch)])) / \
                    (sum(rows[("side process", batch)]) / len(rows[("side process", batch)]))
            local_rate = batch * len(rows[("in-process", batch)]) / sum(rows[("in-process", batch)])
            print(f"side / in-process throughput, batch {batch:2d}: one at a time {ratio:.3f}, "
                  f"{args.in_flight} in flight {piped[batch] / local_rate:.3f}  (goal >= 0.95 at batch 16)")
        added = statistics.median(rows[("side process", 1)]) - statistics.median(rows[("in-process", 1)])
        print(f"added latency, batch 1 decode: {added * 1e3:.3f} ms  (goal <= 1 ms)")
    finally:
        remote.close()
        stop_server(proc)


if __name__ == "__main__":
    main()
