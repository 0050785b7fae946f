"""Client backend of the inference side process: the LocalBackend interface over ZeroMQ.

Each calling thread has its own DEALER socket with one request in flight; a semaphore
bounds the requests in flight across threads. A request that gets no reply within
`timeout` raises BackendUnavailable and its socket is replaced, so the next request
reconnects: when the server comes back, clients resume by themselves. Sends time out
rather than queue without bound (IMMEDIATE, SNDTIMEO): nothing is dropped silently.
"""

import itertools
import threading

import numpy as np
import zmq

from ..core.backend import BackendError
from . import protocol


class BackendUnavailable(BackendError):
    """The server did not answer in time (dead, stalled or unreachable)."""


class ServerError(BackendError):
    """The server answered with an error reply."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


class ServerBackend:
    def __init__(self, address: str, timeout: float = 10.0, max_in_flight: int = 4,
                 server_public_key: bytes = None, client_keys=None, context=None):
        if not timeout > 0 or int(max_in_flight) < 1:
            raise ValueError("need timeout > 0 and max_in_flight >= 1")
        self.address, self.timeout = address, float(timeout)
        self.ctx = context or zmq.Context.instance()
        self._curve = (server_public_key, client_keys)
        self._slots = threading.BoundedSemaphore(int(max_in_flight))
        self._local = threading.local()
        self._ids = itertools.count()
        self._info = {}
        self._info_lock = threading.Lock()

    def _socket(self):
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)   # no queueing towards a server that is not there
            sock.setsockopt(zmq.SNDHWM, 1000)   # full queue: send blocks until SNDTIMEO, then raises
            sock.setsockopt(zmq.SNDTIMEO, int(self.timeout * 1000))
            server_key, client_keys = self._curve
            if server_key is not None:
                sock.curve_serverkey = server_key
                sock.curve_publickey, sock.curve_secretkey = client_keys
            sock.connect(self.address)
            self._local.sock = sock
        return sock

    def _drop_socket(self):
        sock = getattr(self._local, "sock", None)
        if sock is not None:
            sock.close(0)
            self._local.sock = None

    def call(self, header: dict, arrays=()):
        """Send one request; (result dict, {name: array}) of the reply."""
        header = dict(header, id=next(self._ids))
        if not self._slots.acquire(timeout=self.timeout):
            raise BackendUnavailable(f"{self.address}: too many requests in flight for {self.timeout:g} s")
        try:
            sock = self._socket()
            try:
                # Copying send: a copy costs microseconds, while pyzmq's zero-copy path
                # needs its garbage-collector thread to release each buffer.
                sock.send_multipart(protocol.pack(header, arrays))
                if not sock.poll(self.timeout * 1000):
                    raise BackendUnavailable(f"{self.address}: no reply within {self.timeout:g} s")
                frames = sock.recv_multipart()
            except (zmq.Again, BackendUnavailable) as exc:
                self._drop_socket()  # a late reply must not be taken for the next request's
                raise BackendUnavailable(str(exc) if isinstance(exc, BackendUnavailable)
                                         else f"{self.address}: cannot send (server down?)") from None
        finally:
            self._slots.release()
        reply, out = protocol.unpack(frames, max_bytes=1 << 31)
        if reply.get("id") != header["id"]:
            self._drop_socket()
            raise BackendUnavailable(f"{self.address}: reply to another request")
        if not reply.get("ok"):
            err = reply.get("error", {})
            raise ServerError(err.get("code", "unknown"), err.get("message", ""))
        return reply.get("result", {}), out

    def close(self):
        self._drop_socket()

    # ---- the LocalBackend interface
    def ping(self) -> dict:
        return self.call({"op": "ping"})[0]

    def server_info(self) -> dict:
        """The server's `info` reply, asked once and kept (what it serves does not change
        while it runs; a client outliving a dead server keeps what it learnt)."""
        with self._info_lock:
            if not self._info:
                self._info = self.call({"op": "info"})[0]
            return self._info

    def checkpoints(self) -> set:
        """The names of the models and priors the server has loaded."""
        return set(self.server_info().get("checkpoints", []))

    def info(self, name: str) -> dict:
        models = self.server_info().get("models", {})
        if name not in models or "error" in models[name]:
            from ..core.checkpoint import CheckpointError
            raise CheckpointError(f"{name}: the server at {self.address} has no such model "
                                  f"(it has: {', '.join(sorted(models))})")
        m = models[name]
        return {"model": name, "image_shape": tuple(m["image_shape"]), "k": m["k"], "cbr": m["cbr"],
                "channel": m["channel"], "role": m["role"]}

    def encode(self, name: str, images: np.ndarray, snr_db: float) -> np.ndarray:
        _, out = self.call({"op": "encode", "model": name, "params": {"snr_db": float(snr_db)}},
                           [("images", np.asarray(images, np.uint8))])
        return out["latents"].copy()

    def decode(self, name: str, latents: np.ndarray, snr_db: float) -> np.ndarray:
        _, out = self.call({"op": "decode", "model": name, "params": {"snr_db": float(snr_db)}},
                           [("latents", np.asarray(latents, np.float32))])
        return out["images"].copy()

    def transmit(self, scheme: str, images: np.ndarray, tx):
        """A scheme's transmitter on the server (see LocalBackend.transmit)."""
        from ..schemes import Transmission
        params, arrays = tx.to_wire()
        result, out = self.call({"op": "transmit", "scheme": scheme, "params": params},
                                [("images", np.asarray(images, np.uint8))] + arrays)
        if "symbols" not in out:
            raise ServerError("bad_reply", "a transmit reply without 'symbols'")
        return Transmission.from_wire(result, out)

    def receive(self, scheme: str, obs):
        """A scheme's receiver on the server (see LocalBackend.receive)."""
        from ..schemes import Result
        params, arrays = obs.to_wire()
        result, out = self.call({"op": "receive", "scheme": scheme, "params": params}, arrays)
        if "images" not in out:
            raise ServerError("bad_reply", "a receive reply without 'images'")
        return Result.from_wire(result, out)
