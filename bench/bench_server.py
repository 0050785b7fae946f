#!/usr/bin/env python3
"""In-process vs side-process inference, measured in one run.

Decoding throughput (images/s) at batch 1 and 16 with the shipped user model, both on the
same device, and round-trip latency: ping, and the latency the side process adds to a
batch-1 decode (median side-process call minus median in-process call).

The two backends are measured in `--rounds` alternating slices (in-process, then side
process), and each round gives one throughput ratio. The ratio is reported as the median
over rounds with its quartiles. This is because a shared CPU drifts by more than the 5 %
being measured: slow phases of the host would otherwise land on one backend only.

The side process is measured one request at a time, where each call waits for its reply,
so the round trip is idle time for the server. It is also measured with `--in-flight`
requests outstanding from as many client threads, which is what several blocks or
flowgraphs sharing a server do: the next request waits in the server's socket while it
computes. The server's --max-batch is the batch size, so requests are never merged into
batches larger than the in-process ones.

`--trials K` repeats the whole run in K fresh processes, each with its own server, and
summarises the per-trial ratios. On a shared VM one process's decode speed can differ from
the next one's by more than the 5 % being measured.

`--threads N` gives torch N CPU threads, both in this process and in the server. With
fewer threads than cores the computation leaves a core free for the messaging, as a GPU
does.

  .venv/bin/python bench/bench_server.py [--seconds 10] [--rounds 20] [--trials 5] [--device cpu] [--threads N]
"""

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.inference.client import ServerBackend
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.inference.spawn import spawn_server, stop_server
from gnuradio.semcom.core.cli import ArgumentParser, run_main
from gnuradio.semcom.core.models import jscc_model_name

MODEL = jscc_model_name("user", "awgn", 512)
WARMUP = 2  # calls at the start of each slice, not timed: the other backend just had the CPU


def timed_slice(fn, seconds):
    """Per-call times of fn() repeated for about `seconds`."""
    for _ in range(WARMUP):
        fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def pipelined_slice(fn, seconds, depth):
    """Seconds per call with `depth` threads calling fn() back to back for about `seconds`."""
    for _ in range(WARMUP):
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
    return (time.perf_counter() - t0) / max(1, sum(counts))


def quartiles(x):
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    return f"{q2:.3f} (quartiles {q1:.3f}-{q3:.3f})"


def measure(args):
    """One trial in this process against one fresh server; prints as it goes, returns the figures."""
    if args.threads:
        torch.set_num_threads(args.threads)
    local = LocalBackend(args.device)
    latents = local.encode(MODEL, load_dataset("sample").images[:16], 10.0)
    address, proc = spawn_server(args.device, extra_args=("--max-wait-ms", "0", "--max-batch", "16",
                                                          "--threads", str(args.threads)))
    remote = ServerBackend(address, timeout=60, max_in_flight=max(4, args.in_flight))
    out = {"rate": {}, "median_ms": {}, "ratio": {}, "ratio_in_flight": {}}
    try:
        slice_s = args.seconds / args.rounds
        print(f"device {args.device}, model {MODEL}, torch threads {torch.get_num_threads()} here and "
              f"{remote.call({'op': 'info'})[0]['cpu_threads']} in the server; {args.rounds} rounds of "
              f"{slice_s:.2f} s per backend and measurement", flush=True)
        for batch in (1, 16):
            x = latents[:batch]
            local_fn = lambda: local.decode(MODEL, x, 10.0)
            remote_fn = lambda: remote.decode(MODEL, x, 10.0)
            calls = {"in-process": [], "side process": []}
            piped_calls, ratios, piped_ratios = [], [], []
            for _ in range(args.rounds):
                t_local = timed_slice(local_fn, slice_s)
                t_remote = timed_slice(remote_fn, slice_s)
                t_piped = pipelined_slice(remote_fn, slice_s, args.in_flight)
                calls["in-process"] += t_local
                calls["side process"] += t_remote
                piped_calls.append(t_piped)
                ratios.append(np.mean(t_local) / np.mean(t_remote))
                piped_ratios.append(np.mean(t_local) / t_piped)
            for name, t in calls.items():
                out["rate"][f"{name}, batch {batch}"] = batch * len(t) / sum(t)
                out["median_ms"][f"{name}, batch {batch}"] = statistics.median(t) * 1e3
                print(f"decode batch {batch:2d} {name:12s}: {batch * len(t) / sum(t):8.1f} images/s "
                      f"(median {statistics.median(t) * 1e3:6.2f} ms per call)", flush=True)
            out["rate"][f"side process, {args.in_flight} in flight, batch {batch}"] = batch / np.mean(piped_calls)
            print(f"decode batch {batch:2d} side process, {args.in_flight} in flight: "
                  f"{batch / np.mean(piped_calls):8.1f} images/s", flush=True)
            out["ratio"][batch], out["ratio_in_flight"][batch] = ratios, piped_ratios
        out["ping_ms"] = statistics.median(timed_slice(remote.ping, min(args.seconds, 5.0))) * 1e3
        out["added_latency_ms"] = out["median_ms"]["side process, batch 1"] - out["median_ms"]["in-process, batch 1"]
        print(f"ping round trip: median {out['ping_ms']:.3f} ms")
        print("side / in-process throughput, median over rounds:")
        for batch in (1, 16):
            print(f"  batch {batch:2d}: one at a time {quartiles(out['ratio'][batch])}; "
                  f"{args.in_flight} in flight {quartiles(out['ratio_in_flight'][batch])}")
        print(f"added latency, batch 1 decode: {out['added_latency_ms']:.3f} ms  (goal <= 1 ms)", flush=True)
    finally:
        remote.close()
        stop_server(proc)
    return out


def trials(args):
    """Run `args.trials` trials, each a fresh process of this script with its own server,
    and summarise the per-trial median ratios."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.trials):
            path = Path(tmp) / f"trial{n}.json"
            print(f"--- trial {n + 1}/{args.trials}", flush=True)
            cmd = [sys.executable, __file__, "--seconds", str(args.seconds), "--rounds", str(args.rounds),
                   "--device", args.device, "--threads", str(args.threads), "--in-flight", str(args.in_flight),
                   "--json", str(path)]
            if subprocess.run(cmd).returncode != 0:
                sys.exit(f"trial {n + 1} failed")
            rows.append(json.loads(path.read_text()))
    print(f"--- {args.trials} trials: per-trial median side / in-process throughput ratio at batch 16")
    for key, label in (("ratio", "one at a time"), ("ratio_in_flight", f"{args.in_flight} in flight")):
        med = [float(np.median(r[key]["16"])) for r in rows]
        print(f"  {label:14s}: {' '.join(f'{m:.3f}' for m in med)}; median {np.median(med):.3f}  "
              "(goal >= 0.95)")
    lat = [r["added_latency_ms"] for r in rows]
    print(f"  added latency, batch 1: {' '.join(f'{v:.3f}' for v in lat)} ms; median {np.median(lat):.3f} ms "
          "(goal <= 1 ms)")


def main(argv=None):
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0, help="per backend and measurement, over all rounds")
    ap.add_argument("--rounds", type=int, default=20, help="alternating slices per measurement")
    ap.add_argument("--trials", type=int, default=1,
                    help="repeat with fresh processes (this one and the server) and summarise")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads here and in the server (0: default)")
    ap.add_argument("--in-flight", type=int, default=2, help="outstanding requests in the pipelined run")
    ap.add_argument("--json", default="", help="write the figures of a single trial to this file")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.trials < 1 or args.threads < 0 or args.in_flight < 1:
        ap.error("need --seconds > 0, --rounds >= 1, --trials >= 1, --threads >= 0, --in-flight >= 1")
    if args.trials > 1:
        trials(args)
        return
    out = measure(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    run_main(main)
