"""The inference side process: the link's neural networks behind a ZeroMQ ROUTER socket.

    python -m gnuradio.semcom.inference.server [--bind tcp://127.0.0.1:5557] [--device cuda]

Ops: ping, info, encode, decode, receive (see protocol.py for the wire format). Requests
of the same op, model and parameters that arrive within `max_wait_ms` are run as one batch
of up to `max_batch` items (dynamic batching). Every malformed request gets an error reply
with a code and the server keeps serving. Binding anything but loopback needs CurveZMQ keys
(--curve-secret-key) or an explicit --insecure. SIGINT/SIGTERM stop it cleanly.
"""

import argparse
import json
import logging
import math
import signal
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import zmq

from . import protocol
from ..core.models import list_priors
from .local import LocalBackend, default_device

log = logging.getLogger("semcom.server")
DEFAULT_BIND = "tcp://127.0.0.1:5557"
SNR_RANGE_DB = (0.0, 20.0)  # the range the shipped models were trained on


def is_loopback(address: str) -> bool:
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class BadRequest(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class InferenceServer:
    def __init__(self, bind=DEFAULT_BIND, device="", max_batch=16, max_wait_ms=2.0,
                 max_bytes=64 << 20, curve_secret_key=None, insecure=False, context=None, threads=0):
        if max_batch < 1 or max_wait_ms < 0 or max_bytes < 1024 or threads < 0:
            raise ValueError("need max_batch >= 1, max_wait_ms >= 0, max_bytes >= 1024, threads >= 0")
        if not is_loopback(bind) and curve_secret_key is None and not insecure:
            raise ValueError(f"refusing to bind {bind} without CurveZMQ keys: give "
                             "--curve-secret-key (see --gen-keys) or --insecure")
        self.backend = LocalBackend(device)
        if threads:  # leave cores to a flowgraph on the same CPU (0: torch's default, one per core)
            torch.set_num_threads(int(threads))
        self.max_batch, self.max_wait = int(max_batch), max_wait_ms / 1000.0
        self.max_bytes = int(max_bytes)
        self.ctx = context or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)   # a reply to a vanished peer raises, not vanishes
        self.sock.setsockopt(zmq.SNDHWM, 1000)
        self.sock.setsockopt(zmq.RCVHWM, 1000)          # full: clients' sends block (and time out)
        self.sock.setsockopt(zmq.MAXMSGSIZE, 4 * self.max_bytes)  # hard cap; below it, an error reply
        if curve_secret_key is not None:
            public, secret = curve_secret_key
            self.sock.curve_secretkey, self.sock.curve_publickey = secret, public
            self.sock.curve_server = True
        self.sock.bind(bind)
        self.endpoint = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.pending = OrderedDict()  # batch key -> [(route, header, arrays, t_arrival)]
        self.models = self._models_info()  # load every shipped model now: fail early, answer fast
        self.stats = {"requests": 0, "errors": 0, "batches": 0}
        self._stop = False

    # ------------------------------------------------------------------ requests
    def _models_info(self):
        from ..core.models import list_models
        out = {}
        for name in list_models():
            try:
                info = self.backend.info(name)
            except Exception as exc:  # a broken shipped file must not take the server down
                out[name] = {"error": str(exc)}
                continue
            h, w, c = info["image_shape"]
            out[name] = {"image_shape": [h, w, c], "k": info["k"], "cbr": info["cbr"],
                         "channel": info["channel"], "role": info["role"],
                         "encode": {"in": ["uint8", ["N", h, w, c]], "out": ["float32", ["N", 2 * info["k"]]]},
                         "decode": {"in": ["float32", ["N", 2 * info["k"]]], "out": ["uint8", ["N", h, w, c]]},
                         "normalisation": "latent [Re z; Im z] with mean|z|^2 = 1 per image; decoder "
                                          "input in the same power-normalised domain",
                         "snr_range_db": list(SNR_RANGE_DB)}
        return out

    def _receivers_info(self):
        from ..core.receivers import RECEIVERS
        return {n: {"description": r.description, "options": r.defaults, "channel_defaults": r.channel_defaults}
                for n, r in RECEIVERS.items()}

    def _check(self, header, arrays):
        """Validate one request's meaning; returns its batch key (or None: answer at once)."""
        op = header.get("op")
        if op in ("ping", "info"):
            return None
        if op not in ("encode", "decode", "receive"):
            raise BadRequest("unknown_op", f"unknown op {op!r} (ping, info, encode, decode, receive)")
        params = header.get("params", {})
        if not isinstance(params, dict):
            raise BadRequest("bad_params", "'params' must be an object")
        snr = params.get("snr_db")
        if not isinstance(snr, (int, float)) or isinstance(snr, bool) or not math.isfinite(snr):
            raise BadRequest("bad_params", "'params.snr_db' must be a finite number")
        if op in ("encode", "decode"):
            model = header.get("model")
            if not isinstance(model, str):
                raise BadRequest("unknown_model", "'model' must be a model name")
            if model not in self.models or "error" in self.models[model]:
                raise BadRequest("unknown_model", f"unknown model {model!r}")
            info = self.backend.info(model)
            h, w, c = info["image_shape"]
            if op == "encode":
                a = arrays.get("images")
                if a is None or a.dtype != np.uint8 or a.ndim != 4 or a.shape[1:] != (h, w, c):
                    raise BadRequest("bad_shape", f"encode {model} needs 'images' uint8 (N, {h}, {w}, {c})")
            else:
                a = arrays.get("latents")
                if a is None or a.dtype != np.float32 or a.ndim != 2 or a.shape[1] != 2 * info["k"]:
                    raise BadRequest("bad_shape", f"decode {model} needs 'latents' float32 (N, {2 * info['k']})")
            if a.shape[0] < 1:
                raise BadRequest("bad_shape", "empty batch")
            return (op, model, float(snr))
        if op == "receive":
            from ..core.receivers import RECEIVERS, check_receiver
            name = header.get("receiver")
            if not isinstance(name, str) or name not in RECEIVERS:
                raise BadRequest("unknown_receiver", f"unknown receiver {name!r}")
            for key in ("noise_var", "signal_power", "interference_power"):
                v = params.get(key)
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                    raise BadRequest("bad_params", f"'params.{key}' must be a finite number >= 0")
            sinr = params.get("sinr_db", math.inf)
            if not isinstance(sinr, (int, float)) or isinstance(sinr, bool) or math.isnan(sinr):
                raise BadRequest("bad_params", "'params.sinr_db' must be a number")
            from ..core.channel import CHANNEL_TYPES
            if params.get("channel_type", "awgn") not in CHANNEL_TYPES:
                raise BadRequest("bad_params", f"'params.channel_type' must be one of {CHANNEL_TYPES}")
            seed = params.get("seed", 0)
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
                raise BadRequest("bad_params", "'params.seed' must be an integer >= 0")
            options = params.get("options", {})
            try:
                if not isinstance(options, dict):
                    raise ValueError("'params.options' must be an object")
                check_receiver(name, options)
            except ValueError as exc:
                raise BadRequest("bad_params", str(exc)) from None
            x, w, h = arrays.get("xhat"), arrays.get("w"), arrays.get("h")
            if (x is None or x.dtype != np.float32 or x.ndim != 2 or x.shape[0] < 1 or x.shape[1] % 2
                    or w is None or w.dtype != np.complex64 or w.shape != (x.shape[0], x.shape[1] // 2)
                    or h is None or h.dtype != np.complex64 or h.shape != w.shape):
                raise BadRequest("bad_shape", "receive needs 'xhat' float32 (N, 2k), 'w' and 'h' complex64 (N, k)")
            return (op, name, json.dumps(params, sort_keys=True), x.shape[1])

    def _run_batch(self, key, items):
        op = key[0]
        if op == "encode":
            out = self.backend.encode(key[1], np.concatenate([a["images"] for _, _, a, _ in items]), key[2])
            name, result = "latents", None
        elif op == "decode":
            out = self.backend.decode(key[1], np.concatenate([a["latents"] for _, _, a, _ in items]), key[2])
            name, result = "images", None
        else:
            from ..core.channel import LinkPowers
            from ..core.receivers import LinkContext
            params = json.loads(key[2])
            cat = lambda n: np.concatenate([a[n] for _, _, a, _ in items])
            ctx = LinkContext(w=torch.from_numpy(cat("w")), h=torch.from_numpy(cat("h")),
                              powers=LinkPowers(params["signal_power"], params["noise_var"], params["interference_power"]),
                              snr_db=params["snr_db"], sinr_db=params.get("sinr_db", math.inf),
                              channel_type=params.get("channel_type", "awgn"), options=params.get("options", {}),
                              seed=params.get("seed", 0))
            out = self.backend.receive(key[1], cat("xhat"), ctx)
            name, result = "latents", {"nfe": ctx.nfe}
        start = 0
        for route, header, arrays, _ in items:
            n = len(next(iter(arrays.values())))
            reply = {"ok": True, "id": header.get("id")}
            if result is not None:
                reply["result"] = result
            self._send(route, protocol.pack(reply, [(name, out[start:start + n])]))
            start += n

    # ------------------------------------------------------------------ loop
    def _send(self, route, frames):
        try:
            self.sock.send_multipart(route + frames)
        except zmq.ZMQError as exc:  # the client went away (or stopped reading): say so
            log.warning("reply not delivered: %s", exc)

    def _handle(self, frames):
        # ROUTER prefix: the peer identity, plus an empty delimiter from REQ peers.
        route = frames[:2] if len(frames) > 1 and frames[1] == b"" else frames[:1]
        body = frames[len(route):]
        self.stats["requests"] += 1
        request_id = None
        try:
            header, arrays = protocol.unpack(body, self.max_bytes)
            request_id = header.get("id")
            key = self._check(header, arrays)
        except (protocol.ProtocolError, BadRequest) as exc:
            self.stats["errors"] += 1
            self._send(route, protocol.error_reply(request_id, exc.code, str(exc)))
            return
        if key is None:
            op = header["op"]
            result = {"pong": True, "protocol": protocol.VERSION.decode()} if op == "ping" else {
                "protocol": protocol.VERSION.decode(), "device": str(self.backend.device),
                "cpu_threads": torch.get_num_threads(),
                "max_batch": self.max_batch, "max_wait_ms": self.max_wait * 1000,
                "max_bytes": self.max_bytes, "models": self.models, "receivers": self._receivers_info(),
                "priors": list_priors()}
            self._send(route, protocol.pack({"ok": True, "id": request_id, "result": result}))
            return
        self.pending.setdefault(key, []).append((route, header, arrays, time.monotonic()))

    def _flush(self, force=False):
        now = time.monotonic()
        count = lambda item: len(next(iter(item[2].values())))  # items (images/latents) in a request
        for key in list(self.pending):
            items = self.pending[key]
            if not (force or sum(map(count, items)) >= self.max_batch or now - items[0][3] >= self.max_wait):
                continue
            # Requests in arrival order, up to max_batch items per run (one request at least).
            while items:
                take, size = 0, 0
                while take < len(items) and (take == 0 or size + count(items[take]) <= self.max_batch):
                    size += count(items[take])
                    take += 1
                batch, items = items[:take], items[take:]
                self.stats["batches"] += 1
                try:
                    self._run_batch(key, batch)
                except Exception as exc:  # a failing model must not end the server
                    self.stats["errors"] += 1
                    log.error("batch %s failed: %s", key[:2], exc)
                    for route, header, _, _ in batch:
                        self._send(route, protocol.error_reply(header.get("id"), "internal", str(exc)))
            del self.pending[key]

    def stop(self, *_):
        self._stop = True

    def serve(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        log.info("serving on %s (device %s)", self.endpoint, self.backend.device)
        while not self._stop:
            wait = 100.0
            if self.pending:
                oldest = min(items[0][3] for items in self.pending.values())
                wait = max(0.0, (oldest + self.max_wait - time.monotonic()) * 1000)
            if poller.poll(wait):
                for _ in range(4 * self.max_batch):  # take what has arrived, then run batches
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(frames)
            self._flush()
        self._flush(force=True)
        self.sock.close(0)
        log.info("stopped after %d requests (%d errors, %d batches)", self.stats["requests"],
                 self.stats["errors"], self.stats["batches"])


def load_curve_keys(path):
    """(public, secret) from a key file written by --gen-keys (zmq.auth format)."""
    import zmq.auth
    public, secret = zmq.auth.load_certificate(str(path))
    if secret is None:
        raise ValueError(f"{path}: no secret key in this file")
    return public, secret


def main(argv=None):
    ap = argparse.ArgumentParser(prog="semcom_server", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bind", default=DEFAULT_BIND, help=f"ZeroMQ endpoint (default {DEFAULT_BIND})")
    ap.add_argument("--device", default="", help=f"torch device (default: {default_device()})")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-wait-ms", type=float, default=2.0)
    ap.add_argument("--max-bytes", type=int, default=64 << 20)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default 0: one per core); fewer leave cores to a flowgraph")
    ap.add_argument("--curve-secret-key", default="", help="CurveZMQ server key file (from --gen-keys)")
    ap.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without encryption")
    ap.add_argument("--gen-keys", default="", metavar="DIR",
                    help="write server and client CurveZMQ key pairs into DIR and exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.gen_keys:
        import zmq.auth
        d = Path(args.gen_keys)
        d.mkdir(parents=True, exist_ok=True)
        for name in ("server", "client"):
            zmq.auth.create_certificates(str(d), name)
        print(f"wrote {d}/server.key(_secret) and {d}/client.key(_secret)")
        return 0
    try:
        keys = load_curve_keys(args.curve_secret_key) if args.curve_secret_key else None
        server = InferenceServer(args.bind, args.device, args.max_batch, args.max_wait_ms,
                                 args.max_bytes, keys, args.insecure, threads=args.threads)
    except (ValueError, OSError, zmq.ZMQError) as exc:
        ap.error(str(exc))
    signal.signal(signal.SIGINT, server.stop)
    signal.signal(signal.SIGTERM, server.stop)
    print(f"semcom_server: serving on {server.endpoint}", flush=True)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
