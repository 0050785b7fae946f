"""The inference side process: the link's neural networks behind a ZeroMQ ROUTER socket.

    python -m gnuradio.semcom.inference.server [--bind tcp://127.0.0.1:5557] [--device cuda]

Ops: ping, info, encode, decode (a JSCC model), transmit and receive (any registered scheme,
in its one wire form: schemes.TxContext / Observation / Result); see protocol.py for the
framing. Requests
of the same op, model and parameters that arrive within `max_wait_ms` are run as one batch
of up to `max_batch` items (dynamic batching) on a worker thread, so ping and info are
answered while a batch runs. A receive costing more than `max_nfe` network evaluations
per image or `max_request_nfe` in all, a request of more than `max_request_items` items,
and one beyond what may wait for the worker (`max_pending`, `max_pending_bytes`: `busy`)
are refused at once. Every request gets a reply, an error code for a malformed or
unaffordable one, and the server keeps serving. Binding anything but loopback needs
CurveZMQ keys (--curve-secret-key, with --curve-clients: an allow-list of client public
keys) or an explicit --insecure. SIGINT/SIGTERM stop it cleanly: the batch in progress
finishes, requests still waiting are answered `shutting_down`.
"""

import ipaddress
import json
import logging
import os
import queue
import re
import shutil
import signal
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zmq
import zmq.auth

from . import protocol
from ..core.cli import ArgumentParser
from ..core.models import list_priors, shipped
from .local import LocalBackend, default_device

log = logging.getLogger("semcom.server")
DEFAULT_BIND = "tcp://127.0.0.1:5557"
DEFAULT_MAX_NFE = 200   # network evaluations per image in one receive (icdm's default uses 40)
DEFAULT_MAX_REQUEST_ITEMS = 256  # link_sim's batch engine sends 256 images a request
REQUEST_NFE_PER_MAX_NFE = 64     # default --max-request-nfe: 64 x --max-nfe (12800), which fits the
                                 # batch engine's 256 images at icdm's default 40 per image
DEFAULT_MAX_PENDING = 1024
# Every numeric option: (lowest, highest). Finite, and small enough that what is derived from
# it fits: 4 * max_bytes goes to ZMQ_MAXMSGSIZE (an int64), max_wait_ms bounds a poll().
OPTION_RANGES = {"max_batch": (1, 4096), "max_wait_ms": (0, 60_000), "max_bytes": (1024, 2 ** 31),
                 "threads": (0, 1024), "max_nfe": (1, 10 ** 6), "max_request_items": (1, 10 ** 6),
                 "max_request_nfe": (1, 10 ** 12), "max_pending": (1, 10 ** 6),
                 "max_pending_bytes": (1024, 2 ** 40)}
SNR_RANGE_DB = (0.0, 20.0)  # the range the shipped models were trained on
ARRAYS = {"encode": {"images"}, "decode": {"latents"}, "transmit": {"images"}, "receive": {"xhat", "w", "h"}}


def is_loopback(address: str) -> bool:
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:  # an address, not a name: "127.0.0.1.example.com" can resolve anywhere
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(address: str):
    """ValueError (one line) for an endpoint ZeroMQ would refuse or quietly change: it wraps a
    tcp port beyond 65535 and ignores what follows the port's digits."""
    scheme, sep, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if scheme == "tcp" and sep and colon and host and re.fullmatch("[0-9]{1,5}", port) and int(port) <= 65535:
        return
    if scheme in ("ipc", "inproc") and sep and rest:
        return
    raise ValueError(f"--bind {address!r}: expected tcp://HOST:PORT (PORT from 0 to 65535, 0: any free "
                     "port), ipc://PATH or inproc://NAME")


def check_options(**values):
    """ValueError (one line) unless each numeric option is a number within OPTION_RANGES
    (an integer but for max_wait_ms); NaN and infinities fail the comparison."""
    for name, value in values.items():
        low, high = OPTION_RANGES[name]
        number = protocol.is_int(value) or (name == "max_wait_ms" and isinstance(value, float))
        if not (number and low <= value <= high):
            raise ValueError(f"need {low} <= {name} <= {high} (--{name.replace('_', '-')}), got {value!r}")


def check_device(device: str) -> torch.device:
    """The torch device `device` ("" = default) after running a tiny op on it: a server whose
    every model would fail must not start. ValueError with one line otherwise."""
    try:
        dev = torch.device(device or default_device())
    except RuntimeError:
        raise ValueError(f"--device {device!r}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    try:
        (torch.zeros(1, device=dev) + 1).cpu()
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"--device {device}: cannot compute there ({first})") from None
    return dev


class BadRequest(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@dataclass
class Request:
    """A request waiting for, or in, a batch."""
    route: list      # the ROUTER prefix: the peer identity (and REQ's empty delimiter)
    id: object
    arrays: dict
    n: int           # the items (images, latent rows) it carries
    t: float         # arrival, time.monotonic()
    nbytes: int      # the message's size: what waiting holds in memory


class InferenceServer:
    def __init__(self, bind=DEFAULT_BIND, device="", max_batch=16, max_wait_ms=2.0,
                 max_bytes=64 << 20, curve_secret_key=None, insecure=False, context=None, threads=0,
                 max_nfe=DEFAULT_MAX_NFE, curve_clients=None, curve_allow_any=False,
                 max_request_items=DEFAULT_MAX_REQUEST_ITEMS, max_request_nfe=None,
                 max_pending=DEFAULT_MAX_PENDING, max_pending_bytes=None):
        # Everything cheap is checked before a socket exists or a model loads.
        check_options(max_batch=max_batch, max_wait_ms=max_wait_ms, max_bytes=max_bytes, threads=threads,
                      max_nfe=max_nfe, max_request_items=max_request_items, max_pending=max_pending)
        if max_request_nfe is None:
            max_request_nfe = REQUEST_NFE_PER_MAX_NFE * max_nfe
        if max_pending_bytes is None:
            max_pending_bytes = 4 * max_bytes
        check_options(max_request_nfe=max_request_nfe, max_pending_bytes=max_pending_bytes)
        check_bind(bind)
        if not is_loopback(bind) and curve_secret_key is None and not insecure:
            raise ValueError(f"refusing to bind {bind} without CurveZMQ keys: give "
                             "--curve-secret-key (see --gen-keys) or --insecure")
        if curve_secret_key is None and (curve_clients or curve_allow_any):
            raise ValueError("--curve-clients and --curve-allow-any need --curve-secret-key")
        if curve_clients and curve_allow_any:
            raise ValueError("give --curve-clients or --curve-allow-any, not both")
        if curve_secret_key is not None and not (curve_clients or curve_allow_any):
            # Encryption without authentication would serve anyone who can reach the port.
            raise ValueError("--curve-secret-key needs --curve-clients DIR (the public keys of the "
                             "clients let in) or, explicitly, --curve-allow-any")
        allowed = load_client_keys(curve_clients) if curve_clients else None
        device = check_device(device)
        self.backend = LocalBackend(str(device))
        self.threads = int(threads)
        if threads:  # leave cores to a flowgraph on the same CPU (0: torch's default, one per core)
            torch.set_num_threads(self.threads)
        self.max_batch, self.max_wait = int(max_batch), max_wait_ms / 1000.0
        self.max_bytes, self.max_nfe = int(max_bytes), int(max_nfe)
        self.max_request_items, self.max_request_nfe = max_request_items, max_request_nfe
        self.max_pending, self.max_pending_bytes = max_pending, max_pending_bytes
        self.curve, self.client_auth = curve_secret_key is not None, allowed is not None
        self.ctx = context or zmq.Context.instance()
        self.auth = self.sock = self._wake = None
        try:
            if self.client_auth:  # ZAP: the context asks this thread about every CurveZMQ client
                from zmq.auth.thread import ThreadAuthenticator
                self.auth = ThreadAuthenticator(self.ctx, log=logging.getLogger("semcom.server.auth"))
                self.auth.start()
                self.auth.configure_curve(domain="*", location=str(curve_clients))
            elif self.curve:
                log.warning("--curve-allow-any: any client with any key pair is served")
            self.sock = self.ctx.socket(zmq.ROUTER)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)   # a reply to a vanished peer raises, not vanishes
            self.sock.setsockopt(zmq.SNDHWM, 1000)
            self.sock.setsockopt(zmq.RCVHWM, 1000)          # full: clients' sends block (and time out)
            self.sock.setsockopt(zmq.MAXMSGSIZE, 4 * self.max_bytes)  # hard cap; below it, an error reply
            if self.curve:
                public, secret = curve_secret_key
                self.sock.curve_secretkey, self.sock.curve_publickey = secret, public
                self.sock.curve_server = True
            try:
                self.sock.bind(bind)
            except zmq.ZMQError as exc:
                raise ValueError(f"{bind}: {exc.strerror[:1].lower()}{exc.strerror[1:]}") from None
            self.endpoint = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
            # The worker thread's replies come back through a queue; this PAIR wakes the poller.
            self._wake_address = f"inproc://semcom-server-wake-{id(self)}"
            self._wake = self.ctx.socket(zmq.PAIR)
            self._wake.setsockopt(zmq.LINGER, 0)
            self._wake.bind(self._wake_address)
            self.models = self.models_info()  # load every shipped model now: fail early, answer fast
            # every shipped checkpoint but a JSCC model that failed to load
            self._checkpoints = set(shipped()) - {n for n, m in self.models.items() if "error" in m}
            if self.models and all("error" in m for m in self.models.values()):
                raise ValueError(f"no model loads on {device}: {next(iter(self.models.values()))['error']}")
        except BaseException:
            self.close()
            raise
        self.pending = OrderedDict()  # batch key -> [Request] in arrival order
        self.pending_n = self.pending_bytes = 0  # what pending holds: capped, answered `busy` beyond
        self.jobs = queue.SimpleQueue()   # (key, [Request]) for the worker; None ends it
        self._done = queue.SimpleQueue()   # (replies, failed) from the worker
        self.busy_batches = 0                     # batches handed to the worker, replies not yet sent
        self._worker = None
        self.stats = {"requests": 0, "errors": 0, "batches": 0, "internal": 0, "dropped": 0, "undelivered": 0,
                      "busy": 0, "not_run": 0}
        self._stop = False

    # ------------------------------------------------------------------ requests
    def models_info(self):
        from ..core.models import list_models, shipped
        out = {}
        vaes, cdiffs = set(shipped("kl-vae")), set(shipped("cdiff"))
        autoencoders = sorted(vaes) + sorted(cdiffs) + sorted(shipped("cdiff-autoencoder"))
        for name in list_models() + autoencoders:   # the autoencoders encode/decode run
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
            if name in vaes:   # a KL-VAE: its own scale, no SNR input
                out[name].update(normalisation="latent with unit variance per real dimension on its training "
                                               "set (not power-normalised); decoder input in the same domain",
                                 snr_range_db=None)
            elif info["role"] == "autoencoder":   # a CDiff system: no SNR input; cdiff decodes by diffusion
                out[name].update(normalisation="the encoder's reals before power normalisation; decoder input: "
                                               "received reals in the unit-power symbol domain", snr_range_db=None)
                if name in cdiffs:
                    out[name]["decode"] = None   # the reverse diffusion runs in its scheme (receive)
        return out

    def schemes_info(self):
        from .. import schemes
        return {n: schemes.get(n).describe() for n in schemes.names()}

    def describe(self):
        from .. import schemes
        return {"protocol": protocol.VERSION.decode(), "device": str(self.backend.device),
                "cpu_threads": torch.get_num_threads(),
                "max_batch": self.max_batch, "max_wait_ms": self.max_wait * 1000,
                "max_bytes": self.max_bytes, "max_nfe": self.max_nfe,
                "max_request_items": self.max_request_items, "max_request_nfe": self.max_request_nfe,
                "max_pending": self.max_pending, "max_pending_bytes": self.max_pending_bytes,
                "curve": self.curve, "client_auth": self.client_auth,
                "models": self.models, "schemes": self.schemes_info(), "receivers": schemes.names(),
                "priors": list_priors(), "checkpoints": sorted(self._checkpoints)}

    def check_request(self, header, arrays):
        """Validate one request's meaning: (batch key, items), or None: answer at once."""
        op = header.get("op")
        if op in ("ping", "info"):
            return None
        if not isinstance(op, str) or op not in ARRAYS:
            raise BadRequest("unknown_op", f"unknown op {op!r:.40} (ping, info, encode, decode, transmit, receive)")
        params = header.get("params", {})
        if not isinstance(params, dict):
            raise BadRequest("bad_params", "'params' must be an object")
        from ..schemes.base import Params
        try:
            snr = Params(params, op).number("snr_db")
        except ValueError as exc:
            raise BadRequest("bad_params", str(exc)) from None
        if op in ("encode", "decode"):
            model = header.get("model")
            if not isinstance(model, str) or model not in self.models or "error" in self.models[model]:
                raise BadRequest("unknown_model", f"unknown model {model!r:.80}")
            info = self.backend.info(model)
            h, w, c = info["image_shape"]
            a = arrays.get("images" if op == "encode" else "latents")
            if op == "encode" and (set(arrays) != ARRAYS[op] or a.dtype != np.uint8 or a.ndim != 4
                                   or a.shape[1:] != (h, w, c)):
                raise BadRequest("bad_shape", f"encode {model} needs one array, 'images' uint8 (N, {h}, {w}, {c})")
            if op == "decode" and (set(arrays) != ARRAYS[op] or a.dtype != np.float32 or a.ndim != 2
                                   or a.shape[1] != 2 * info["k"]):
                raise BadRequest("bad_shape", f"decode {model} needs one array, 'latents' float32 (N, {2 * info['k']})")
            if a.shape[0] < 1:
                raise BadRequest("bad_shape", "empty batch")
            self.check_items(a.shape[0])
            return (op, model, float(snr)), a.shape[0]
        from .. import schemes
        name = header.get("scheme", header.get("receiver"))  # "receiver": the name before schemes
        if not isinstance(name, str) or name not in schemes.SCHEMES:
            raise BadRequest("unknown_receiver", f"unknown scheme {name!r:.80}")
        scheme = schemes.get(name)
        if op == "transmit":
            return self.check_transmit(scheme, params, arrays)
        try:
            fields = schemes.Observation.params_from_wire(params)
            nfe = scheme.max_nfe(fields["options"], fields["channel_type"])
        except ValueError as exc:
            raise BadRequest("bad_params", str(exc)) from None
        if nfe > self.max_nfe:  # checked before any work: one request must not hold every client up
            raise BadRequest("too_costly", f"scheme {name!r} with these options costs up to {nfe} network "
                                           f"evaluations per image; this server's cap is {self.max_nfe} (--max-nfe)")
        try:
            obs = schemes.Observation.from_wire(params, arrays)
            # no checkpoint for this k (or model): refused now rather than failing in the batch
            scheme.check_checkpoints(obs.channel_type, obs.k, obs.model, available=self._checkpoints)
        except ValueError as exc:
            raise BadRequest("bad_shape", str(exc)) from None
        self.check_model(obs.model or scheme.default_model(obs.channel_type, obs.k), obs.k,
                         scheme.takes_fewer_symbols)
        n = obs.n
        self.check_items(n)
        if n * nfe > self.max_request_nfe:  # the per-image cap alone lets 64 MiB of images hold the worker
            raise BadRequest("too_costly", f"{n} images at up to {nfe} network evaluations each cost up to "
                                           f"{n * nfe}; this server's cap per request is {self.max_request_nfe} "
                                           "(--max-request-nfe): send fewer images per request")
        return (op, name, json.dumps(params, sort_keys=True), obs.k), n

    def check_model(self, model, k=None, up_to=False):
        """A named model must be one this server loaded (a JSCC model: not a prior, not a
        broken file), of the observation's k where one is given (`up_to`: at most its k, for a
        scheme whose receiver zero-pads fewer symbols)."""
        if not model:
            return
        info = self.models.get(model)
        if info is None or "error" in info:
            raise BadRequest("unknown_model", f"unknown model {model!r:.80} (not a model this server loaded)")
        if k is not None and (k > info["k"] if up_to else k != info["k"]):
            raise BadRequest("bad_shape", f"model {model} has k = {info['k']}, the symbols k = {k}"
                                          + (" (more than it takes)" if up_to else ""))

    def check_transmit(self, scheme, params, arrays):
        from .. import schemes
        try:
            tx = schemes.TxContext.from_wire(params, {k: v for k, v in arrays.items() if k == "csi"})
            nfe = scheme.max_tx_nfe(tx.options, tx.channel_type)
        except ValueError as exc:
            raise BadRequest("bad_params", str(exc)) from None
        if nfe > self.max_nfe:
            raise BadRequest("too_costly", f"the transmitter of scheme {scheme.name!r} with these options costs up to {nfe} "
                                           f"network evaluations per image; this server's cap is {self.max_nfe} (--max-nfe)")
        images = arrays.get("images")
        if set(arrays) - {"csi"} != {"images"} or images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] < 1:
            raise BadRequest("bad_shape", "transmit needs 'images' uint8 (N, H, W, C) (and 'csi' complex64 (N, k) "
                                          "when the scheme asks for it)")
        try:
            model = tx.model or scheme.default_model(tx.channel_type, None, images.shape[1:])
            scheme.check_checkpoints(tx.channel_type, None, model, images.shape[1:], available=self._checkpoints)
        except ValueError as exc:
            raise BadRequest("unknown_model", str(exc)) from None
        self.check_model(model)
        opts = scheme.option_values(tx.options, tx.channel_type)
        for name in scheme.model_options:   # options naming a checkpoint: only models loaded here, never a path
            if opts[name]:
                self.check_model(opts[name])
        info = self.models.get(model, {})
        if "image_shape" in info and tuple(info["image_shape"]) != images.shape[1:]:
            raise BadRequest("bad_shape", f"model {model} takes images {tuple(info['image_shape'])}, got {images.shape[1:]}")
        k = info.get("k")
        if tx.csi is not None and (tx.csi.shape[0] != images.shape[0] or (k and tx.csi.shape[1] != k)):
            raise BadRequest("bad_shape", f"'csi' must be complex64 ({images.shape[0]}, {k or 'k'})")
        n = images.shape[0]
        self.check_items(n)
        if n * nfe > self.max_request_nfe:   # as for a receive: the total, not only per image
            raise BadRequest("too_costly", f"{n} images at up to {nfe} network evaluations each at the transmitter "
                                           f"cost up to {n * nfe}; this server's cap per request is "
                                           f"{self.max_request_nfe} (--max-request-nfe): send fewer images per request")
        return ("transmit", scheme.name, json.dumps(params, sort_keys=True), model), n

    def check_items(self, n):
        if n > self.max_request_items:  # one request runs alone, holding every other client up
            raise BadRequest("too_costly", f"{n} items in one request; this server's cap is "
                                           f"{self.max_request_items} (--max-request-items)")

    def run_batch(self, key, items):
        """Run one batch (on the worker thread); [(route, reply frames)], one per request."""
        op = key[0]
        if op == "encode":
            out = self.backend.encode(key[1], np.concatenate([r.arrays["images"] for r in items]), key[2])
            name, result = "latents", None
        elif op == "decode":
            out = self.backend.decode(key[1], np.concatenate([r.arrays["latents"] for r in items]), key[2])
            name, result = "images", None
        else:
            from .. import schemes
            params = json.loads(key[2])
            cat = lambda name: np.concatenate([r.arrays[name] for r in items])
            if op == "transmit":
                names = ["images"] + (["csi"] if "csi" in items[0].arrays else [])
                tx = schemes.TxContext.from_wire(params, {n: cat(n) for n in names if n == "csi"})
                result, arrays = self.backend.transmit(key[1], cat("images"), tx).to_wire()
            else:
                obs = schemes.Observation.from_wire(params, {n: cat(n) for n in ARRAYS["receive"]})
                result, arrays = self.backend.receive(key[1], obs).to_wire()
            return self.split_replies(items, result, arrays)
        return self.split_replies(items, None, [(name, out)])

    @staticmethod
    def split_replies(items, result, arrays):
        """[(route, reply frames)]: each request gets its rows of every array."""
        replies, start = [], 0
        for r in items:
            reply = {"ok": True, "id": r.id}
            if result is not None:
                reply["result"] = dict(result)
                if result.get("side_info"):  # one entry per image: each request gets its own
                    reply["result"]["side_info"] = result["side_info"][start:start + r.n]
            replies.append((r.route, protocol.pack(reply, [(n, a[start:start + r.n]) for n, a in arrays])))
            start += r.n
        return replies

    def _work(self):
        """The worker thread: runs batches, hands the replies to the I/O thread."""
        if self.threads:  # torch's thread count is applied per calling thread
            torch.set_num_threads(self.threads)
        wake = self.ctx.socket(zmq.PAIR)
        wake.setsockopt(zmq.LINGER, 0)
        wake.connect(self._wake_address)
        try:
            while (job := self.jobs.get()) is not None:
                key, items = job
                try:
                    replies, failed = self.run_batch(key, items), False
                except Exception as exc:  # a failing model must not end the server
                    log.error("batch %s failed: %s", key[:2], exc)
                    replies = [(r.route, protocol.error_reply(r.id, "internal", str(exc))) for r in items]
                    failed = True
                self._done.put((replies, failed))
                try:
                    wake.send(b"", zmq.NOBLOCK)
                except zmq.Again:  # the I/O thread is behind on wake-ups: it drains the queue anyway
                    pass
        finally:
            wake.close(0)

    # ------------------------------------------------------------------ I/O thread
    def send(self, route, frames):
        try:  # NOBLOCK: a client that does not read its replies must not stall the I/O thread
            self.sock.send_multipart(route + frames, zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client went away (or stopped reading): say so
            self.stats["undelivered"] += 1
            log.warning("reply not delivered: %s", exc)

    def handle(self, frames):
        # ROUTER prefix: the peer identity, plus an empty delimiter from REQ peers.
        route = frames[:2] if len(frames) > 1 and frames[1] == b"" else frames[:1]
        body = frames[len(route):]
        if not body:  # nothing after the routing frames: not a request, nothing to answer
            self.stats["dropped"] += 1
            return
        self.stats["requests"] += 1
        request_id = None
        try:
            header, arrays = protocol.unpack(body, self.max_bytes)
            request_id = header.get("id")
            checked = self.check_request(header, arrays)
            if checked is None:
                result = {"pong": True, "protocol": protocol.VERSION.decode()} if header["op"] == "ping" \
                    else self.describe()
                self.send(route, protocol.pack({"ok": True, "id": request_id, "result": result}))
                return
        except (protocol.ProtocolError, BadRequest) as exc:
            self.stats["errors"] += 1
            self.send(route, protocol.error_reply(request_id, exc.code, str(exc)))
            return
        except Exception as exc:  # last resort: a bug costs this request, never the server
            self.stats["errors"] += 1
            self.stats["internal"] += 1
            log.error("internal error on a request: %r", exc)
            self.send(route, protocol.error_reply(request_id, "internal", f"internal error: {exc!r:.200}"))
            return
        key, n = checked
        # Requests wait while the worker runs a batch: cap what they hold, answering the rest at
        # once (never blocking this thread). One request is always let in, however large.
        nbytes = sum(len(f) for f in body)
        if self.pending_n >= self.max_pending:
            full = f"{self.max_pending} requests (--max-pending)"
        elif self.pending_n and self.pending_bytes + nbytes > self.max_pending_bytes:
            full = f"{self.max_pending_bytes} bytes (--max-pending-bytes)"
        else:
            full = None
        if full:
            self.stats["errors"] += 1
            self.stats["busy"] += 1
            self.send(route, protocol.error_reply(request_id, "busy", (
                f"{self.pending_n} requests ({self.pending_bytes} bytes) wait already; this server's "
                f"cap is {full}: retry later")))
            return
        self.pending.setdefault(key, []).append(Request(route, request_id, arrays, n, time.monotonic(), nbytes))
        self.pending_n += 1
        self.pending_bytes += nbytes

    def take_pending(self, key, count):
        """The first `count` requests waiting under `key`, removed from pending."""
        reqs = self.pending[key]
        if count < len(reqs):
            self.pending[key] = reqs[count:]
        else:
            del self.pending[key]
        self.pending_n -= count
        self.pending_bytes -= sum(r.nbytes for r in reqs[:count])
        return reqs[:count]

    def flush(self):
        """Hand the next ready batch to the worker when it is idle: one at a time, so requests
        that arrive meanwhile join the next batch."""
        if not self.pending or self.busy_batches:
            return
        now = time.monotonic()
        ready = [key for key, reqs in self.pending.items()
                 if sum(r.n for r in reqs) >= self.max_batch or now - reqs[0].t >= self.max_wait]
        if not ready:
            return
        key = min(ready, key=lambda k: self.pending[k][0].t)  # the longest waiting first
        reqs = self.pending[key]
        # Requests in arrival order, up to max_batch items per batch (one request at least).
        take, size = 0, 0
        while take < len(reqs) and (take == 0 or size + reqs[take].n <= self.max_batch):
            size += reqs[take].n
            take += 1
        self.jobs.put((key, self.take_pending(key, take)))
        self.busy_batches += 1
        self.stats["batches"] += 1

    def refuse_pending(self):
        """On stop: answer every request that has not started, rather than run the backlog."""
        for key in list(self.pending):
            for r in self.take_pending(key, len(self.pending[key])):
                self.stats["errors"] += 1
                self.stats["not_run"] += 1
                self.send(r.route, protocol.error_reply(r.id, "shutting_down",
                                                         "the server is stopping; this request did not run"))

    def send_done(self):
        while True:
            try:
                replies, failed = self._done.get_nowait()
            except queue.Empty:
                return
            self.busy_batches -= 1
            self.stats["errors"] += len(replies) if failed else 0
            for route, frames in replies:
                self.send(route, frames)

    def wait_ms(self):
        # At most 100 ms: requests and the worker wake the poller anyway; the timeout is for
        # the oldest request's batching deadline and for noticing stop() soon.
        if self.busy_batches or not self.pending:
            return 100.0
        oldest = min(reqs[0].t for reqs in self.pending.values())
        return min(100.0, max(0.0, (oldest + self.max_wait - time.monotonic()) * 1000))

    def stop(self, *_):
        self._stop = True

    def serve(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        self._worker = threading.Thread(target=self._work, name="semcom-server-worker", daemon=True)
        self._worker.start()
        log.info("serving on %s (device %s)", self.endpoint, self.backend.device)
        try:
            while not self._stop:
                events = dict(poller.poll(self.wait_ms()))
                if self._wake in events:
                    while self._wake.poll(0):
                        self._wake.recv()
                self.send_done()
                if self.sock in events:
                    for _ in range(4 * self.max_batch):  # take what has arrived, then hand out batches
                        try:
                            frames = self.sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self.handle(frames)
                self.flush()
            self.refuse_pending()  # the batch in progress is finished below, nothing more
        finally:
            self.jobs.put(None)
            self._worker.join()
            self.send_done()
            self.close(linger=1000)  # the last replies (shutting_down, the last batch's) get out
        log.info("stopped after %d requests (%d errors, %d internal, %d busy, %d not run at stop, %d batches, "
                 "%d dropped)", self.stats["requests"], self.stats["errors"], self.stats["internal"],
                 self.stats["busy"], self.stats["not_run"], self.stats["batches"], self.stats["dropped"])

    def close(self, linger=0):
        if self.sock is not None:
            self.sock.close(linger)
        if self._wake is not None:
            self._wake.close(0)
        if self.auth is not None:
            self.auth.stop()
            self.auth = None


def load_curve_keys(path):
    """(public, secret) from a key file written by --gen-keys (zmq.auth format)."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except Exception as exc:  # missing, unreadable, not a key file, bad Z85
        raise ValueError(f"--curve-secret-key {path}: cannot read a key ({exc})") from None
    if secret is None:
        raise ValueError(f"--curve-secret-key {path}: no secret key in this file (give the .key_secret file)")
    return public, secret


def load_client_keys(directory):
    """The allow-list of client public keys: the *.key files in `directory`."""
    try:
        keys = zmq.auth.load_certificates(str(directory))
    except Exception as exc:
        raise ValueError(f"--curve-clients {directory}: cannot read the client keys ({exc})") from None
    if not keys:
        raise ValueError(f"--curve-clients {directory}: no client public keys (*.key files) there")
    return keys


def gen_keys(directory) -> list:
    """Write server and client key pairs into `directory` (and the client's public key into
    DIR/clients/, an allow-list for --curve-clients); secret key files get mode 0600 and a
    directory created here 0700. Existing keys are never overwritten."""
    d = Path(directory)
    names = [d / f"{n}.key{s}" for n in ("server", "client") for s in ("", "_secret")]
    names.append(d / "clients" / "client.key")
    for p in names:
        if p.exists():
            raise ValueError(f"--gen-keys: {p} exists; not overwriting keys")
    old = os.umask(0o077)  # secret files are created private, not chmod-ed after a window
    try:
        if not d.exists():
            d.mkdir(parents=True, mode=0o700)
            d.chmod(0o700)
        (d / "clients").mkdir(exist_ok=True)
        for name in ("server", "client"):
            public, secret = zmq.auth.create_certificates(str(d), name)
            os.chmod(secret, 0o600)
            os.chmod(public, 0o644)
        shutil.copyfile(d / "client.key", d / "clients" / "client.key")
        os.chmod(d / "clients" / "client.key", 0o644)
    finally:
        os.umask(old)
    return names


def main(argv=None):
    ap = ArgumentParser(prog="semcom_server", description=__doc__)  # one-line errors, exit status 2
    ap.add_argument("--bind", default=DEFAULT_BIND, help=f"ZeroMQ endpoint (default {DEFAULT_BIND})")
    ap.add_argument("--device", default="", help=f"torch device (default: {default_device()})")
    ap.add_argument("--max-batch", type=int, default=16, help="most items (images, latents) per batch (default 16)")
    ap.add_argument("--max-wait-ms", type=float, default=2.0,
                    help="how long a request waits for others to batch with (default 2 ms)")
    ap.add_argument("--max-bytes", type=int, default=64 << 20, help="largest request in bytes (default 64 MiB)")
    ap.add_argument("--max-nfe", type=int, default=DEFAULT_MAX_NFE,
                    help=f"most network evaluations per image one receive may cost (default {DEFAULT_MAX_NFE})")
    ap.add_argument("--max-request-items", type=int, default=DEFAULT_MAX_REQUEST_ITEMS,
                    help=f"most items (images, latents) in one request (default {DEFAULT_MAX_REQUEST_ITEMS})")
    ap.add_argument("--max-request-nfe", type=int, default=None,
                    help="most network evaluations one receive may cost in all, images x per image "
                         f"(default {REQUEST_NFE_PER_MAX_NFE} x --max-nfe)")
    ap.add_argument("--max-pending", type=int, default=DEFAULT_MAX_PENDING,
                    help=f"most requests waiting for the worker; more are answered busy (default {DEFAULT_MAX_PENDING})")
    ap.add_argument("--max-pending-bytes", type=int, default=None,
                    help="most bytes of requests waiting for the worker; more are answered busy "
                         "(default 4 x --max-bytes)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (default 0: one per core); fewer leave cores to a flowgraph")
    ap.add_argument("--curve-secret-key", default="", help="CurveZMQ server key file (from --gen-keys)")
    ap.add_argument("--curve-clients", default="", metavar="DIR",
                    help="directory of the public keys (*.key) of the clients let in")
    ap.add_argument("--curve-allow-any", action="store_true",
                    help="with --curve-secret-key: encrypt but let any client key in")
    ap.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without encryption")
    ap.add_argument("--gen-keys", default="", metavar="DIR",
                    help="write server and client CurveZMQ key pairs into DIR and exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        if args.gen_keys:
            gen_keys(args.gen_keys)
            print(f"wrote {args.gen_keys}/server.key(_secret), {args.gen_keys}/client.key(_secret) "
                  f"and {args.gen_keys}/clients/client.key")
            return 0
        keys = load_curve_keys(args.curve_secret_key) if args.curve_secret_key else None
        server = InferenceServer(args.bind, args.device, args.max_batch, args.max_wait_ms, args.max_bytes,
                                 keys, args.insecure, threads=args.threads, max_nfe=args.max_nfe,
                                 curve_clients=args.curve_clients or None, curve_allow_any=args.curve_allow_any,
                                 max_request_items=args.max_request_items, max_request_nfe=args.max_request_nfe,
                                 max_pending=args.max_pending, max_pending_bytes=args.max_pending_bytes)
    except (ValueError, OSError, zmq.ZMQError) as exc:
        ap.error(str(exc))
    if keys and os.stat(args.curve_secret_key).st_mode & 0o077:  # after start-up: errors stay one line
        log.warning("%s: the secret key is readable by others; chmod 600 it", args.curve_secret_key)
    signal.signal(signal.SIGINT, server.stop)
    signal.signal(signal.SIGTERM, server.stop)
    print(f"semcom_server: serving on {server.endpoint}", flush=True)
    server.serve()
    # Sockets linger only while their context lives: ending it here waits (at most the linger)
    # for the last replies, which the process's exit would otherwise drop.
    server.ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
