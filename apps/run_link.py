#!/usr/bin/env python3
"""Headless image link: JSCC user + JSCC interferer through AWGN/Rayleigh at chosen SNR and
SINR, MMSE equalizer, a receiver, the JSCC decoder; metrics per operating point.

  --engine gnuradio   the real flowgraph (semcom.image_link: the blocks of the GRC examples)
  --engine batch      the same core functions vectorised in torch, for large sweeps

Writes into --out, at the end (replacing an earlier run's files there): results.csv and
results.jsonl (one row per receiver and operating point, with what reproduces it),
compare_psnr_<channel>.png and compare_ssim_<channel>.png (one line per receiver, a panel
per SINR), psnr_<receiver>_<channel>.png and ssim_<receiver>_<channel>.png (one line per
SINR) and grid_<channel>.png (sent images beside every receiver's, per operating point).
--json prints one JSON object per operating point on stdout.

Exit status: 0 done; 1 every image was lost (the first error is printed); 2 a bad argument
(one line, before any work); 130 interrupted (Ctrl-C: nothing written).

Examples:
  run_link.py --dataset sample --channel awgn,rayleigh --snr 0,10,20 --sinr inf,0
  run_link.py --dataset cifar10 --images 1000 --engine batch --snr 0:20:5 --json
"""

import atexit
import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

# stdout carries the results (--json); GNU Radio's log, which goes to stdout by default,
# goes to stderr here. Set before GNU Radio is imported, which reads it once.
os.environ.setdefault("GR_CONF_LOG_LOG_FILE", "stderr")


def parse_args(argv):
    import argparse
    from gnuradio.semcom import schemes
    from gnuradio.semcom.core.cli import ArgumentParser  # after GR_CONF_LOG_LOG_FILE is set
    ap = ArgumentParser(prog="run_link.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="schemes (--receiver) and their options (--receiver-options), with defaults:\n"
                               + schemes.help_text())
    ap.add_argument("--dataset", default="sample",
                    help="sample | cifar10 | mnist | npz:PATH | folder:PATH (default sample)")
    ap.add_argument("--images", type=int, default=0, help="images per operating point (0 = all)")
    ap.add_argument("--channel", default="awgn", help="awgn, rayleigh or a comma list")
    ap.add_argument("--snr", default="10", help="SNR list in dB, e.g. 0,10,20 or 0:20:5")
    ap.add_argument("--sinr", default="inf", help="SINR list in dB; inf = no interferer")
    ap.add_argument("--receiver", default="mmse",
                    help="comma list of schemes (each a transmitter and a receiver): "
                         f"{', '.join(schemes.names())}; see below")
    ap.add_argument("--receiver-options", default="",
                    help="comma list of [RECEIVER.]NAME=VALUE, e.g. 'steps=40,icdm.zeta_i=0.5'; a bare "
                         "NAME applies to every listed receiver that has it")
    ap.add_argument("--engine", default="gnuradio", choices=("gnuradio", "batch"))
    ap.add_argument("--k", type=int, default=0,
                    help="complex symbols per image: 512 (CBR 1/6) or 256 (1/12) for CIFAR-10; "
                         "default 512, or 98 (CBR 1/8) for 28x28 grey images")
    ap.add_argument("--user-model", default="", help="user JSCC model (default from channel and k)")
    ap.add_argument("--interferer-model", default="", help="interferer JSCC model (default from k)")
    ap.add_argument("--coherence", type=int, default=1, help="Rayleigh coherence length in symbols")
    ap.add_argument("--csit-delay", type=int, default=0,
                    help="with --engine batch, for a receiver whose transmitter inverts the channel (jscna-ad): "
                         "its CSI is this many coherence blocks old (feedback delay; default 0, the genie)")
    ap.add_argument("--csit-error", type=float, default=0.0,
                    help="... and has this estimation error variance in [0, 1] (default 0)")
    phy = ap.add_argument_group("OFDM PHY (docs/ota.md)")
    phy.add_argument("--phy", default="none", choices=("none", "ofdm"),
                     help="none: symbols straight through the channel; ofdm: each image in an OFDM frame, "
                          "the receivers get the PHY's CSI (--csi)")
    phy.add_argument("--csi", default="estimated", choices=("estimated", "genie"),
                     help="with --phy ofdm: the PHY's estimates of h, SNR and SINR, or the truth")
    phy.add_argument("--taps", default="1", help="with --phy ofdm: multipath tap magnitudes, e.g. 1,0.6,0.3 "
                     "(one sample apart; phases drawn per frame from --seed; default 1 = flat)")
    phy.add_argument("--smooth-taps", type=int, default=17,
                     help="with --phy ofdm: delay-domain smoothing of the channel estimate (taps; 0 = off)")
    phy.add_argument("--cfo", type=float, default=0.0,
                     help="with --phy ofdm, --engine gnuradio: carrier frequency offset in subcarrier spacings")
    phy.add_argument("--sro", type=float, default=0.0,
                     help="with --phy ofdm, --engine gnuradio: sample-rate offset in ppm")
    phy.add_argument("--phase-noise", type=float, default=0.0,
                     help="with --phy ofdm, --engine gnuradio: phase noise magnitude (gr-channels phase_noise_gen)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/latest", help="output directory (default runs/latest)")
    ap.add_argument("--json", action="store_true", help="one JSON object per operating point on stdout")
    ap.add_argument("--device", default="", help="torch device (default cuda if present, else cpu)")
    ap.add_argument("--server", default="",
                    help="neural inference: empty = in-process; 'auto' = start a side process on a "
                         "free loopback port for this run; tcp://HOST:PORT = a running server "
                         "(CurveZMQ: tcp://HOST:PORT?server_key=FILE&client_key=FILE)")
    ap.add_argument("--server-timeout", type=float, default=10.0,
                    help="seconds to wait for a server reply before the image is dropped (default 10)")
    ap.add_argument("--no-lpips", action="store_true", help="skip LPIPS (reported as null)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap, ap.parse_args(argv)


def parse_snr_list(text):
    """'0,10,20', 'inf' or a range 'start:stop:step' (inclusive)."""
    from gnuradio.semcom.core.channel import parse_db, parse_db_list
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"malformed range {text!r} (expected start:stop:step)")
        a, b, step = (parse_db(p) for p in parts)
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(step)) or step <= 0 or b < a:
            raise ValueError(f"malformed range {text!r} (need finite start <= stop, step > 0)")
        n = int(math.floor((b - a) / step + 1e-9)) + 1
        return [round(a + i * step, 6) for i in range(n)]
    return parse_db_list(text)


def split_receiver_options(text, receivers):
    """{receiver: options dict} from '[RECEIVER.]NAME=VALUE,...' (checked against each scheme)."""
    from gnuradio.semcom.schemes import check, parse_options
    for r in receivers:
        check(r)
    out = {r: {} for r in receivers}
    for key, value in parse_options(text).items():
        target, dot, name = key.rpartition(".")
        if dot and target not in receivers:
            raise ValueError(f"--receiver-options {key}: {target!r} is not among --receiver")
        takers = [target] if dot else [r for r in receivers if name in check(r).defaults]
        if not takers:
            raise ValueError(f"--receiver-options {key}: no listed receiver has an option {name!r}")
        for r in takers:
            out[r][name] = value
    for r in receivers:
        check(r, out[r])  # types and names
    return out


def check_out_dir(path):
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".probe_")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--out {path}: not a writable directory ({exc.strerror or exc})") from None
    return out


OUTPUT_PATTERNS = ("results.csv", "results.jsonl", "compare_*.png", "psnr_*.png", "ssim_*.png", "grid_*.png")
BATCH = 256       # images per batch of the batch engine (fewer where a server's caps say so)
BLOCK_BATCH = 16  # the most images a network block of the flowgraph sends at once
GRID_ROWS = 24  # sample rows per grid: a few images per operating point, fewer for long sweeps


def main(argv=None):
    ap, args = parse_args(argv)
    # Validate everything before any work: bad input gets one line and exit status 2.
    try:
        from gnuradio.semcom.core.channel import CHANNEL_TYPES
        from gnuradio.semcom.core.checkpoint import CheckpointError
        from gnuradio.semcom.core.data import DataError
        from gnuradio.semcom.core.datasets import load_dataset
        from gnuradio.semcom.core.models import default_k, default_models
        from gnuradio.semcom.schemes import check as check_receiver
        from gnuradio.semcom.inference import get_backend

        snrs, sinrs = parse_snr_list(args.snr), parse_snr_list(args.sinr)
        if not all(math.isfinite(s) for s in snrs):
            raise ValueError(f"--snr {args.snr}: the SNR must be finite ('inf' is for --sinr: no interferer)")
        channels = [c.strip() for c in args.channel.split(",")]
        for c in channels:
            if c not in CHANNEL_TYPES:
                raise ValueError(f"unknown channel {c!r} (expected {' or '.join(CHANNEL_TYPES)})")
        receivers = [r.strip() for r in args.receiver.split(",")]
        if len(set(receivers)) != len(receivers):
            raise ValueError(f"--receiver {args.receiver}: a receiver is listed twice")
        receiver_options = split_receiver_options(args.receiver_options, receivers)
        phy = None
        if args.phy == "ofdm":
            from gnuradio.semcom.phy.link import OfdmChannel, parse_taps
            from gnuradio.semcom.schemes.link_sim import OfdmLink
            if args.engine == "batch" and (args.cfo or args.sro or args.phase_noise):
                raise ValueError("--cfo, --sro and --phase-noise need --engine gnuradio (the batch engine's frames "
                                 "are aligned, with multipath and noise only)")
            if args.engine == "gnuradio" and args.csi == "genie":
                raise ValueError("--csi genie over the PHY runs in --engine batch (the GNU Radio chain has only the "
                                 "receiver's estimates)")
            if args.coherence != 1:
                raise ValueError("--coherence is a Rayleigh option of the symbol channel; with --phy ofdm the "
                                 "channel is --taps (constant over each frame)")
            phy = OfdmLink(OfdmChannel(parse_taps(args.taps), args.smooth_taps), args.csi)
            for r in receivers:
                if any(check_receiver(r).csit_needed(receiver_options[r], c) for c in channels):
                    raise ValueError(f"--receiver {r}: needs CSI at the transmitter, which --phy ofdm does not feed "
                                     "back yet")
        elif args.taps != "1" or args.csi != "estimated" or args.cfo or args.sro or args.phase_noise:
            raise ValueError("--taps, --csi, --cfo, --sro and --phase-noise are options of --phy ofdm")
        if args.csit_delay or args.csit_error:
            if args.csit_delay < 0 or not 0 <= args.csit_error <= 1:
                raise ValueError("--csit-delay must be >= 0 blocks and --csit-error in [0, 1]")
            if args.engine != "batch" or phy is not None:
                raise ValueError("--csit-delay and --csit-error model the transmitter's CSI in --engine batch on the "
                                 "symbol channel (the GNU Radio examples hand the precoder the channel's own taps)")
            for r in receivers:
                if not any(check_receiver(r).csit_needed(receiver_options[r], c) for c in channels):
                    raise ValueError(f"--csit-delay/--csit-error: --receiver {r} does not use CSI at the transmitter "
                                     f"on {args.channel} with these options")
        if args.images < 0 or args.coherence < 1 or args.seed < 0:
            raise ValueError("--images must be >= 0, --coherence >= 1 and --seed >= 0")
        if not args.out.strip():
            raise ValueError("--out must name a directory")
        points = [(c, s, i) for c in channels for s in snrs for i in sinrs if math.isinf(i) or i <= s]
        if not points:
            raise ValueError("no operating point with SINR <= SNR")
        if args.device:
            from gnuradio.semcom.inference.server import check_device
            check_device(args.device)  # "cuda" without CUDA: one line now, not a failure per image
        data = load_dataset(args.dataset)
        images = data.images if args.images == 0 else data.images[:args.images]
        if args.images > len(data.images):
            raise ValueError(f"--images {args.images}: dataset {args.dataset!r} has only {len(data.images)}")
        if not args.server_timeout > 0:
            raise ValueError("--server-timeout must be > 0")
        # The most network evaluations per image any receiver of the sweep can cost.
        nfe_needed = max(check_receiver(r).max_nfe(receiver_options[r], c) for r in receivers for c in channels)
        server = args.server
        if server == "auto":
            from gnuradio.semcom.inference.server import DEFAULT_MAX_NFE
            from gnuradio.semcom.inference.spawn import spawn_server, stop_server
            # This run's own server has no other client to protect: its cost caps fit the sweep.
            per_image = max(DEFAULT_MAX_NFE, nfe_needed)
            server, server_proc = spawn_server(args.device, extra_args=(
                "--max-nfe", str(per_image), "--max-request-nfe", str(BATCH * per_image)))
            atexit.register(stop_server, server_proc)  # also on errors and Ctrl-C
        elif server:
            from gnuradio.semcom.inference.local import parse_server
            parse_server(server)  # the address and any CurveZMQ key files, checked before any work
        backend = get_backend(server, args.device, args.server_timeout)
        server_checkpoints, batch = None, BATCH
        if server:
            from gnuradio.semcom.inference.client import BackendUnavailable
            try:
                info = backend.call({"op": "info"})[0]
            except BackendUnavailable as exc:
                raise ValueError(f"--server: {exc}") from None
            server_checkpoints = set(info.get("checkpoints", []))
            if nfe_needed > info.get("max_nfe", nfe_needed):
                raise ValueError(f"--receiver-options: a receiver costs up to {nfe_needed} network evaluations "
                                 f"per image, above the cap of the server at {server} ({info['max_nfe']}, "
                                 "its --max-nfe)")
            # Requests no larger than the server takes: the batch engine sends `batch` images at once.
            batch = min(batch, info.get("max_request_items", batch),
                        info.get("max_request_nfe", batch * nfe_needed) // max(1, nfe_needed))
            if batch < (BLOCK_BATCH if args.engine == "gnuradio" else 1):
                raise ValueError(f"the server at {server} takes too little work per request (max_request_items "
                                 f"{info.get('max_request_items')}, max_request_nfe {info.get('max_request_nfe')}) "
                                 f"for this sweep ({nfe_needed} network evaluations per image)")
        models = {}
        k = args.k or default_k(images.shape[1:])
        with_interferer = any(math.isfinite(i) for i in sinrs)
        for c, r in ((c, r) for c in channels for r in receivers):
            # the user's model: --user-model, else the scheme's own (a JSCC model, dnsc's KL-VAE)
            user, interferer = default_models(c, k, images.shape[1:])
            user = args.user_model or check_receiver(r).default_model(c, k, images.shape[1:]) or user
            interferer = args.interferer_model or interferer
            infos = {name: backend.info(name) for name in ((user, interferer) if with_interferer else (user,))}
            for name, info in infos.items():
                if tuple(info["image_shape"]) != tuple(images.shape[1:]):
                    raise ValueError(f"model {name} takes images of shape {tuple(info['image_shape'])}, "
                                     f"dataset {args.dataset!r} has {tuple(images.shape[1:])}")
            if with_interferer and infos[interferer]["k"] != infos[user]["k"]:
                raise ValueError(f"the interferer {interferer} sends k = {infos[interferer]['k']} symbols per image, "
                                 f"the user {user} k = {infos[user]['k']}: they must share the channel symbol "
                                 "for symbol (pick models of the same k)")
            models[c, r] = (user, interferer if with_interferer else None, infos[user]["cbr"], infos[user]["k"])
            # A scheme without its checkpoints fails here, not as a run of lost images.
            try:
                check_receiver(r).check_checkpoints(c, infos[user]["k"], user, images.shape[1:],
                                                    available=server_checkpoints)
            except CheckpointError as exc:
                raise ValueError(f"{exc} (server {server})" if server else str(exc)) from None
        out = check_out_dir(args.out)
    except (ValueError, DataError, CheckpointError, RuntimeError) as exc:
        ap.error(str(exc))

    skipped = len(channels) * len(snrs) * len(sinrs) - len(points)
    if skipped:
        print(f"run_link.py: skipping {skipped} point(s) with SINR > SNR", file=sys.stderr)

    from tqdm import tqdm
    from gnuradio.semcom.core import metrics, semantic
    from gnuradio.semcom.core.data import to_tensor
    from gnuradio.semcom.schemes import run_record

    total = len(points) * len(receivers) * len(images)
    bar = tqdm(total=total, unit="img", disable=args.no_progress, file=sys.stderr, dynamic_ncols=True)
    rows, samples = [], {}
    ref = to_tensor(images)
    labels = None if data.labels is None else data.labels[:len(images)]
    for receiver in receivers:
        for channel, snr, sinr in points:
            user, interferer, cbr, k_used = models[channel, receiver]
            interferer = interferer if math.isfinite(sinr) else None
            where = f"{receiver} {channel} SNR {snr:g} SINR {sinr:g}"
            bar.set_description(where)
            t0 = time.perf_counter()
            snr_est, sinr_est = [], []           # the OFDM PHY's per-image estimates (with --phy ofdm)
            if args.engine == "batch":
                from gnuradio.semcom.schemes.link_sim import simulate
                res = simulate(backend, images, channel, snr, sinr, user, interferer, receiver,
                               args.coherence, args.seed, batch_size=batch, progress=bar.update,
                               receiver_options=receiver_options[receiver], phy=phy,
                               **(dict(csit_delay=args.csit_delay, csit_error=args.csit_error)
                                  if check_receiver(receiver).csit_needed(receiver_options[receiver], channel) else {}))
                nfe, error = res.nfe, (res.errors[0] if res.errors else None)
                success_rate = res.extra.get("success_rate")   # a digital scheme's frames decoded
                sent_cbr = res.symbols_per_image / images[0].size if res.symbols_per_image else None
                received, lat, lost = res.received, res.latent_mse_db, len(images) - len(res.kept)
                snr_est, sinr_est = res.snr_est_db or [], res.sinr_est_db or []
                per = (metrics.image_metrics(to_tensor(received), ref[res.kept], not args.no_lpips,
                                             labels=None if labels is None else labels[res.kept])
                       if len(res.kept) else {})
            else:
                from gnuradio import semcom
                tb = semcom.image_link(args.dataset, len(images), channel, snr, sinr, user, interferer or "",
                                       receiver, args.coherence, args.seed, "", server, args.device,
                                       not args.no_lpips,
                                       ack_timeout=3 * args.server_timeout if server else 30.0,
                                       receiver_options=",".join(f"{k}={v}" for k, v in receiver_options[receiver].items()),
                                       **(dict(phy="ofdm", cfo=args.cfo, sro_ppm=args.sro, taps=phy.channel.taps,
                                               phase_noise=args.phase_noise, smooth_taps=args.smooth_taps)
                                          if phy else {}))
                tb.run_interruptible()
                summary = tb.sink.summary()
                per, lat = summary["per_image"], summary["per_image"].get("latent_mse_db", [])
                _, _, received = tb.sink.matched_images()
                lost = len(images) - summary["images"]
                nfe, error, sent_cbr = tb.rx.nfe, tb.first_error(), tb.user_tx.encoder.cbr
                success_rate = None   # the flowgraph's receiver reports no per-scheme extras
                if phy:
                    snr_est = [e[0] for e in tb.rx_phy.estimates]
                    sinr_est = [e[1] for e in tb.rx_phy.estimates]
                    if tb.rx_phy.crc_failures and not error:
                        error = (f"{tb.rx_phy.crc_failures} frame header(s) failed their CRC, "
                                 f"{tb.rx_phy.lost} frame(s) lost in all (sequence gaps)")
                bar.update(len(images))
            seconds = time.perf_counter() - t0
            n_ok = len(per.get("psnr_db", []))
            if lost:
                error = error or "no block reported an error (see the log above)"
                tqdm.write(f"run_link.py: {where}: lost {lost} of {len(images)} images: {error}", file=sys.stderr)
            row = {"receiver": receiver, "scheme": receiver, "channel": channel, "snr_db": snr,
                   "sinr_db": None if math.isinf(sinr) else sinr, "images": n_ok, "lost": lost,
                   "cbr": round(sent_cbr if sent_cbr is not None else cbr, 6), "psnr_db": metrics.mean_or_none(per.get("psnr_db")),
                   "ssim": metrics.mean_or_none(per.get("ssim")),
                   "ms_ssim": metrics.mean_or_none(per.get("ms_ssim")),
                   "lpips": metrics.mean_or_none(per.get("lpips")),
                   # module-specific proxies from the shipped classifier (core/semantic.py)
                   "accuracy": metrics.mean_or_none(per.get("accuracy")),
                   "label_accuracy": metrics.mean_or_none(per.get("label_accuracy")),
                   "feature_dist": metrics.mean_or_none(per.get("feature_dist")),
                   "frechet_dist": per.get("frechet_dist"),
                   "semantic_proxy": semantic.CLASSIFIER if per.get("accuracy") is not None else None,
                   "latent_mse_db": metrics.db_mean(lat), "nfe": nfe, "success_rate": success_rate,
                   "phy": args.phy, "csi": args.csi if phy else "genie",
                   "snr_est_db": round(metrics.db_mean(snr_est), 3) if snr_est else None,
                   "sinr_est_db": round(metrics.db_mean(sinr_est), 3) if sinr_est else None,
                   "seconds": round(seconds, 3), "images_per_s": round(n_ok / seconds, 2) if seconds > 0 else None,
                   "error": error if lost else None}
            # What reproduces the row (receiver, channel, snr_db and sinr_db keep their places).
            row.update(run_record({
                "receiver": receiver, "receiver_options": receiver_options[receiver], "channel": channel,
                "coherence": args.coherence, **({"csit_delay": args.csit_delay, "csit_error": args.csit_error}
                                                if (args.csit_delay or args.csit_error) and check_receiver(
                                                    receiver).csit_needed(receiver_options[receiver], channel)
                                                else {}),
                "snr_db": snr, "sinr_db": sinr, "k": k_used, "user_model": user,
                "interferer_model": interferer, "engine": args.engine,
                "batch_size": batch if args.engine == "batch" else None, "dataset": args.dataset,
                "images_requested": args.images, "seed": args.seed, "server": args.server,
                **({"phy": args.phy, "csi": args.csi, "taps": args.taps, "smooth_taps": args.smooth_taps,
                    "cfo": args.cfo, "sro_ppm": args.sro, "phase_noise": args.phase_noise} if phy else {})}))
            rows.append(row)
            if received is not None and len(received) == len(images):
                samples.setdefault(channel, {}).setdefault((snr, sinr), {})[receiver] = received
            if args.json:
                print(json.dumps(row), flush=True)
    bar.close()

    write_results(out, rows, receivers, channels, sinrs, samples, images, models, args.dataset)
    if not args.json:
        print_table(rows, out)
    if all(r["images"] == 0 for r in rows):
        first = next((r["error"] for r in rows if r["error"]), None)
        print(f"run_link.py: every image was lost; first error: {first}", file=sys.stderr)
        return 1
    return 0


def write_results(out, rows, receivers, channels, sinrs, samples, images, models, dataset):
    """Results, plots and grids, all at the end, each file atomically; then an earlier run's
    files of these kinds that this run did not rewrite go, so that none stays beside the new
    results (an interruption before then leaves the earlier run's files whole)."""
    from gnuradio.semcom.core.plots import (save_metric_panels, save_metric_plot, save_receiver_grid,
                                            sinr_label, write_text_atomic)
    earlier = {p for pattern in OUTPUT_PATTERNS for p in out.glob(pattern)}
    written = set()

    def path(name):
        written.add(out / name)
        return out / name

    fields = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows({k: json.dumps(v) if isinstance(v, dict) else v for k, v in r.items()} for r in rows)
    write_text_atomic(path("results.csv"), buf.getvalue())
    write_text_atomic(path("results.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))

    sinrs = sorted(set(sinrs))  # numeric order in every legend; inf (no interferer) last
    for channel in channels:
        cbr = models[channel, receivers[0]][2]   # every scheme of a sweep at the same k
        for metric, label in (("psnr_db", "PSNR (dB)"), ("ssim", "SSIM")):
            # {(receiver, sinr): (SNRs, values)}: the curves, for both kinds of plot.
            curves = {}
            for r in rows:
                if r["channel"] == channel:
                    sinr = math.inf if r["sinr_db"] is None else r["sinr_db"]
                    x, y = curves.setdefault((r["receiver"], sinr), ([], []))
                    x.append(r["snr_db"])
                    y.append(r[metric])
            name = metric.split("_")[0]
            panels = {sinr_label(i): {rx: curves[rx, i] for rx in receivers if (rx, i) in curves} for i in sinrs}
            save_metric_panels({k: v for k, v in panels.items() if v}, path(f"compare_{name}_{channel}.png"),
                               label, f"receivers compared, {channel}, CBR {cbr:.4f}, {dataset}")
            for receiver in receivers:
                save_metric_plot({sinr_label(i): curves[receiver, i] for i in sinrs if (receiver, i) in curves},
                                 path(f"{name}_{receiver}_{channel}.png"), label,
                                 f"{receiver}, {channel}, CBR {cbr:.4f}, {dataset}")
    for channel, by_point in samples.items():
        # Operating points where every receiver delivered every image, evenly thinned to fit.
        full = [p for p, rx in by_point.items() if len(rx) == len(receivers)]
        if not full:
            continue
        m = min(len(full), GRID_ROWS)
        full = [full[round(i * (len(full) - 1) / max(1, m - 1))] for i in range(m)]
        n = max(1, min(3, GRID_ROWS // len(full), len(images)))
        blocks = [(f"SNR {snr:g} dB\n{sinr_label(sinr)}", images[:n],
                   {r: by_point[(snr, sinr)][r][:n] for r in receivers}) for snr, sinr in full]
        save_receiver_grid(blocks, path(f"grid_{channel}.png"))
    for stale in earlier - written:
        stale.unlink()


def print_table(rows, out):
    print(f"{'receiver':15s} {'channel':8s} {'SNR':>5s} {'SINR':>5s} {'n':>5s} {'lost':>5s} {'PSNR':>6s} "
          f"{'SSIM':>6s} {'LPIPS':>6s} {'acc*':>5s} {'fdist*':>6s} {'latMSE':>7s} {'NFE':>4s} {'img/s':>7s}")
    fmt = lambda v, f: f"{v:{f}}" if v is not None else f"{'null':>{f.split('.')[0]}}"
    for r in rows:
        print(f"{r['receiver']:15s} {r['channel']:8s} {r['snr_db']:5g} "
              f"{'inf' if r['sinr_db'] is None else format(r['sinr_db'], 'g'):>5s} {r['images']:5d} {r['lost']:5d} "
              f"{fmt(r['psnr_db'], '6.2f')} {fmt(r['ssim'], '6.3f')} {fmt(r['lpips'], '6.3f')} "
              f"{fmt(r['accuracy'], '5.3f')} {fmt(r['feature_dist'], '6.3f')} "
              f"{fmt(r['latent_mse_db'], '7.2f')} {r['nfe']:4.0f} {fmt(r['images_per_s'], '7.1f')}")
    if any(r["accuracy"] is not None for r in rows):
        print("* acc (top-1 agreement with the sent image) and fdist (feature distance) are module-specific "
              f"proxies from the shipped classifier {rows[0].get('semantic_proxy') or 'classifier_cifar10'}, "
              "not LPIPS (docs/metrics.md)")
    print(f"results in {out}/ (results.csv, results.jsonl, compare_*.png, psnr_*.png, ssim_*.png, grid_*.png)")


if __name__ == "__main__":
    from gnuradio.semcom.core.cli import run_main
    run_main(main, "no results written")
