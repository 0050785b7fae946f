"""gaussian_latent_source: a stand-in JSCC user emitting N(0, 1) latent PDUs, then done."""

import threading

import numpy as np
import pmt
from gnuradio import gr

from .pdu_util import AckPacer, make_pdu


class gaussian_latent_source(gr.basic_block):
    """Emits `count` PDUs of 2k i.i.d. N(0, 1) float32 values, each with an "image_id",
    then tells the flowgraph it is done (the message-passing counterpart of a finite
    vector source). Connect the end of the chain's "ack" port to this block's "ack"
    port: it keeps at most `max_in_flight` PDUs unacknowledged and says "done" only when
    all were acknowledged, so no stock PDU block drops data at the end."""

    def __init__(self, n_symbols=512, count=10, seed=0, max_in_flight=8, ack_timeout=10.0):
        # Validate before the C++ block exists: a half-built Python block left to the
        # garbage collector can bring the scheduler down later.
        if int(n_symbols) < 1 or int(count) < 0:
            raise ValueError(f"need n_symbols >= 1 and count >= 0, got {n_symbols}, {count}")
        AckPacer.validate(max_in_flight, ack_timeout)
        gr.basic_block.__init__(self, name="gaussian_latent_source", in_sig=None, out_sig=None)
        self.n_symbols, self.count, self.seed = int(n_symbols), int(count), int(seed)
        self._pacer_args = (max_in_flight, ack_timeout)
        self.message_port_register_out(pmt.intern("pdus"))
        self.message_port_register_in(pmt.intern("ack"))
        self.set_msg_handler(pmt.intern("ack"), self._on_ack)
        self._pacer = None
        self._thread = None

    def _on_ack(self, msg):
        if self._pacer is not None:
            self._pacer.on_ack(msg)

    def start(self):
        self._pacer = AckPacer(*self._pacer_args, self.logger)
        self._thread = threading.Thread(target=self._emit, daemon=True)
        self._thread.start()
        return True

    def _emit(self):
        rng = np.random.default_rng(self.seed)
        for i in range(self.count):
            if not self._pacer.before_send():
                return
            latent = rng.standard_normal(2 * self.n_symbols).astype(np.float32)
            meta = pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(i))
            self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, latent))
        if self._pacer.drain():
            self._post(pmt.intern("system"), pmt.cons(pmt.intern("done"), pmt.from_long(1)))

    def stop(self):
        if self._pacer is not None:
            self._pacer.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return True
