"""Small helpers shared by the PDU blocks (GNU Radio side only)."""

import threading

import numpy as np
import pmt


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
    PDUs lost downstream), the pacer stops waiting and logs how many were unacknowledged.
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
