"""Small helpers shared by the PDU blocks (GNU Radio side only)."""

import functools
import math
import threading

import numpy as np
import pmt
import torch
from gnuradio import gr

from .core.channel import link_powers, parse_db
from .core.equalizer import mmse_symbol_error
from .core.metrics import db_mean, latent_mse_db
from .core.version import run_record


def split_pdu(msg, kind: str, logger):
    """(meta dict, numpy array) of a PDU whose vector is of `kind` ('f32' or 'c32'),
    or None after one clear log line if the message is not such a PDU."""
    if not pmt.is_pair(msg) or pmt.is_dict(msg):
        logger.error(f"dropped a message that is not a PDU: {pmt.write_string(msg)[:80]}")
        return None
    meta, vec = pmt.car(msg), pmt.cdr(msg)
    if not pmt.is_dict(meta) and not pmt.is_null(meta):
        logger.error("dropped a PDU whose metadata is not a dict")
        return None
    is_kind = {"f32": pmt.is_f32vector, "c32": pmt.is_c32vector}[kind]
    if not is_kind(vec):
        logger.error(f"dropped a PDU whose vector is not {kind}")
        return None
    to_np = {"f32": pmt.f32vector_elements, "c32": pmt.c32vector_elements}[kind]
    meta = pmt.make_dict() if pmt.is_null(meta) else meta
    dtype = np.float32 if kind == "f32" else np.complex64
    return meta, np.asarray(to_np(vec), dtype=dtype)


def drops_on_error(handler):
    """For message handlers: an exception would end the thread of the block that runs them
    (every later message is lost); log it and drop the message instead."""
    @functools.wraps(handler)  # set_msg_handler keys on the handler's __name__
    def guarded(self, msg):
        try:
            handler(self, msg)
        except Exception as exc:
            self.logger.error(f"dropped a message ({type(exc).__name__}: {exc}): {pmt.write_string(msg)[:80]}")
    return guarded


def make_pdu(meta, array: np.ndarray):
    """A PDU from a metadata dict and a float32 or complex64 vector."""
    if np.iscomplexobj(array):
        vec = pmt.init_c32vector(array.size, np.ascontiguousarray(array, np.complex64))
    else:
        vec = pmt.init_f32vector(array.size, np.ascontiguousarray(array, np.float32))
    return pmt.cons(meta, vec)


class AckPacer:
    """Flow control and clean termination for PDU sources.

    A source emits at most `max_in_flight` PDUs ahead of the acknowledgements that the
    end of the chain publishes on its "ack" port, and tells the flowgraph it is done only
    once every PDU was acknowledged. Stock pdu_to_tagged_stream finishes as soon as it is
    told "done" and drops the PDUs still queued in it, so "done" must not overtake data.
    If no acknowledgement arrives for `timeout` seconds (ack port not connected, or
    PDUs lost downstream), the pacer stops waiting and logs how many were unacknowledged;
    it paces again as soon as acknowledgements come back.
    """

    @staticmethod
    def validate(max_in_flight, timeout):
        if int(max_in_flight) < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if not timeout > 0:
            raise ValueError(f"ack timeout must be > 0 s, got {timeout}")

    def __init__(self, max_in_flight: int, timeout: float, logger):
        self.validate(max_in_flight, timeout)
        self.max_in_flight, self.timeout, self.logger = int(max_in_flight), float(timeout), logger
        self._cond = threading.Condition()
        self._sent = self._acked = 0
        self._stopped = False
        self._gave_up = False

    def on_ack(self, _msg=None):
        with self._cond:
            self._acked += 1
            if self._gave_up:  # acknowledgements are back (e.g. a restarted server): pace again
                self._gave_up = False
                self.logger.info("acknowledgements resumed; pacing again")
            self._cond.notify_all()

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _wait_until(self, limit: int) -> bool:
        """Wait until at most `limit` PDUs are unacknowledged; False if stopped."""
        with self._cond:
            while not self._stopped and not self._gave_up and self._sent - self._acked > limit:
                acked_before = self._acked
                self._cond.wait(self.timeout)
                if self._acked == acked_before and not self._stopped:
                    self._gave_up = True
                    self.logger.warn(
                        f"no acknowledgement for {self.timeout:g} s with "
                        f"{self._sent - self._acked} PDU(s) in flight; no longer waiting "
                        "(connect the sink's 'ack' port to this source's 'ack' port)")
            return not self._stopped

    def before_send(self) -> bool:
        """Block until another PDU may be sent; False if the flowgraph is stopping."""
        if not self._wait_until(self.max_in_flight - 1):
            return False
        with self._cond:
            self._sent += 1
        return True

    def drain(self) -> bool:
        """Block until every sent PDU is acknowledged (or the timeout gave up)."""
        return self._wait_until(0)


def image_pdu(meta, image: np.ndarray):
    """A PDU of one uint8 image (H, W, C), its shape in the metadata."""
    h, w, c = image.shape
    for key, value in (("height", h), ("width", w), ("channels", c)):
        meta = pmt.dict_add(meta, pmt.intern(key), pmt.from_long(int(value)))
    flat = np.ascontiguousarray(image, np.uint8).ravel()
    return pmt.cons(meta, pmt.init_u8vector(flat.size, flat))


def split_image_pdu(msg, logger):
    """(meta, uint8 image (H, W, C)) of an image PDU, or None after one clear log line."""
    if not pmt.is_pair(msg) or pmt.is_dict(msg) or not pmt.is_u8vector(pmt.cdr(msg)) \
            or not pmt.is_dict(pmt.car(msg)):
        logger.error(f"dropped a message that is not an image PDU: {pmt.write_string(msg)[:80]}")
        return None
    meta = pmt.car(msg)
    try:
        shape = tuple(pmt.to_long(pmt.dict_ref(meta, pmt.intern(k), pmt.PMT_NIL))
                      for k in ("height", "width", "channels"))
    except Exception:
        logger.error("dropped an image PDU without integer height/width/channels metadata")
        return None
    data = np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), np.uint8)
    if min(shape) < 1 or data.size != int(np.prod(shape)):
        logger.error(f"dropped an image PDU of {data.size} bytes that is not {shape}")
        return None
    return meta, data.reshape(shape)


def groups(keys) -> dict:
    """{key: [indices]} in order of first appearance: a batch's items that one backend call can
    serve together (the same operating point)."""
    out = {}
    for n, key in enumerate(keys):
        out.setdefault(key, []).append(n)
    return out


def meta_get(meta, key, default=None):
    """A metadata value as a Python object (default when absent)."""
    value = pmt.dict_ref(meta, pmt.intern(key), pmt.PMT_NIL)
    return default if pmt.is_null(value) else pmt.to_python(value)


class BatchWorker:
    """Runs a batch function off the scheduler thread.

    Items (meta, array) queued by a message handler are processed in arrival order, up to
    `max_batch` at a time: fn(list of arrays) -> list of results; emit(meta, result) is
    called for each. A failed batch is logged once per distinct error and its items are
    dropped and counted, so the flowgraph keeps running.
    """

    def __init__(self, fn, emit, logger, max_batch: int = 16, name: str = "worker"):
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.fn, self.emit, self.logger, self.max_batch = fn, emit, logger, int(max_batch)
        self.dropped = 0
        self.first_error = None  # the first failure's message, for a run's report
        self._errors = set()
        self._queue = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, meta, array):
        with self._cond:
            self._queue.append((meta, array))
            self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            try:
                results = self.fn([a for _, a in batch])
            except Exception as exc:
                self.dropped += len(batch)
                text = f"{type(exc).__name__}: {exc}"
                if text not in self._errors:
                    self._errors.add(text)
                    self.first_error = self.first_error or text
                    self.logger.error(f"dropped {len(batch)} item(s): {text}")
                continue
            for (meta, _), result in zip(batch, results):
                self.emit(meta, result)

    def stop(self):
        """Finish what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=60)


class paced_pdu_source(gr.basic_block):
    """Base of the PDU sources: emits the PDUs of `self.pdus()` (a generator, run on its
    own thread) on "pdus", paced by acknowledgements on "ack" (AckPacer), then says "done".
    Subclasses validate their arguments *before* calling this __init__."""

    def __init__(self, name, max_in_flight, ack_timeout):
        AckPacer.validate(max_in_flight, ack_timeout)
        gr.basic_block.__init__(self, name=name, in_sig=None, out_sig=None)
        self._pacer_args = (max_in_flight, ack_timeout)
        self.message_port_register_out(pmt.intern("pdus"))
        self.message_port_register_in(pmt.intern("ack"))
        self.set_msg_handler(pmt.intern("ack"), self._on_ack)
        self._pacer = None
        self._thread = None

    def pdus(self):
        raise NotImplementedError

    def _on_ack(self, msg):
        if self._pacer is not None:
            self._pacer.on_ack(msg)

    def start(self):
        self._pacer = AckPacer(*self._pacer_args, self.logger)
        self._thread = threading.Thread(target=self._emit, daemon=True)
        self._thread.start()
        return True

    def _emit(self):
        for pdu in self.pdus():
            if not self._pacer.before_send():
                return
            self.message_port_pub(pmt.intern("pdus"), pdu)
        if self._pacer.drain():
            # The message-passing counterpart of a finite stream source returning WORK_DONE.
            self._post(pmt.intern("system"), pmt.cons(pmt.intern("done"), pmt.from_long(1)))

    def stop(self):
        if self._pacer is not None:
            self._pacer.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return True


class OperatingPoint:
    """A block's SNR and SINR (dB), by the rule of fading_interference_channel_cc.

    Construction is strict (ValueError on a value that is no dB, or SINR above SNR). At run
    time (set()) a SINR above the SNR is used as SINR = SNR, i.e. no interference power, with
    one log line per change: GUI sliders cross, and an exception in a Qt callback aborts the
    application. The SINR asked for is kept and comes back when the SNR rises above it. A
    value that is no dB (NaN, -inf, not a number) is logged and ignored.
    """

    def __init__(self, snr_db, sinr_db, logger):
        link_powers(snr_db, sinr_db)  # the channel's constructor check
        self.logger = logger
        self.snr_db = parse_db(snr_db)
        self.asked_sinr_db = self.sinr_db = parse_db(sinr_db)

    @property
    def clamped(self):
        return self.sinr_db != self.asked_sinr_db

    def set(self, snr_db=None, sinr_db=None) -> bool:
        """Change SNR and/or SINR; False (after one log line) if a value is no dB."""
        try:
            snr = self.snr_db if snr_db is None else parse_db(snr_db)
            asked = self.asked_sinr_db if sinr_db is None else parse_db(sinr_db)
        except ValueError as exc:
            self.logger.error(f"ignored: {exc}")
            return False
        used = snr if not math.isinf(asked) and asked > snr else asked
        if used != asked and (not self.clamped or (snr, asked) != (self.snr_db, self.asked_sinr_db)):
            self.logger.warn(f"SINR {asked:g} dB is above SNR {snr:g} dB: using SINR = SNR "
                             "(no interference power)")
        elif used == asked and self.clamped:
            self.logger.info(f"SINR {asked:g} dB, SNR {snr:g} dB: SINR no longer clamped")
        self.snr_db, self.asked_sinr_db, self.sinr_db = snr, asked, used
        return True


def stored_latents(debug):
    """{image_id: float32 vector} of the latent PDUs a blocks.message_debug stored."""
    out, logger = {}, gr.logger("stored_latents")
    for i in range(debug.num_messages()):
        meta, latent = split_pdu(debug.get_message(i), "f32", logger) or (None, None)
        image_id = None if meta is None else meta_get(meta, "image_id")
        if isinstance(image_id, int):
            out[image_id] = latent
    return out


def latent_link_summary(sent_debug, received_debug, run_info):
    """What a Gaussian-latent link delivered (two message_debug stores, matched by image_id):
    counts and the latent MSE in dB (mean over latents in the linear domain) beside the
    closed-form MMSE symbol error of the operating point (core.equalizer), and under "run"
    run_record(run_info), which must hold "channel", "snr_db" and "sinr_db"."""
    sent, received = stored_latents(sent_debug), stored_latents(received_debug)
    ids = sorted(set(sent) & set(received))
    mse = latent_mse_db(torch.from_numpy(np.stack([received[i] for i in ids])),
                        torch.from_numpy(np.stack([sent[i] for i in ids]))).tolist() if ids else []
    closed = mmse_symbol_error(run_info["channel"], run_info["snr_db"], run_info["sinr_db"])
    return {"latents": len(ids), "sent": len(sent), "missing": len(set(sent) - set(received)),
            "latent_mse_db": db_mean(mse), "closed_form_db": 10 * math.log10(closed),
            "run": run_record(run_info)}
