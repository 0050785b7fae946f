"""Base of the blocks whose work is a neural network: PDU in, PDU out, the network run by an
inference backend on a worker thread (never the scheduler thread), in batches."""

import pmt
from gnuradio import gr

from .core.channel import parse_db
from .inference import get_backend
from .pdu_util import BatchWorker, drops_on_error


class neural_pdu_block(gr.basic_block):
    """Subclasses give prepare(msg) -> (meta, item) or None (after logging why),
    run_batch(list of items) -> list of results, and to_pdu(meta, result). `model` empty:
    the block uses no JSCC model (a receiver)."""

    def __init__(self, name, model, snr_db, server="", device="", max_batch=16):
        snr_db = parse_db(snr_db)  # before the C++ block exists
        backend = get_backend(server, device)
        info = backend.info(model) if model else None  # a missing or broken checkpoint fails here
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        gr.basic_block.__init__(self, name=name, in_sig=None, out_sig=None)
        self.backend, self.model, self.info = backend, model, info
        self.snr_db = snr_db
        self._max_batch = int(max_batch)
        self._worker = None
        self.message_port_register_in(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("pdus"))
        self.set_msg_handler(pmt.intern("pdus"), self.handle_pdu)

    @property
    def dropped(self):
        """Items whose batch failed in the backend."""
        return 0 if self._worker is None else self._worker.dropped

    @property
    def first_error(self):
        """The message of the first failed batch (None while none failed)."""
        return None if self._worker is None else self._worker.first_error

    def set_snr_db(self, snr_db):
        """Never raises (GUI callbacks): a value that is no dB is logged and ignored."""
        try:
            self.snr_db = parse_db(snr_db)
        except ValueError as exc:
            self.logger.error(f"SNR ignored: {exc}")

    def start(self):
        self._worker = BatchWorker(self.run_batch, self._emit, self.logger, self._max_batch, self.name())
        return True

    def stop(self):
        if self._worker is not None:
            self._worker.stop()
        return True

    @drops_on_error
    def handle_pdu(self, msg):
        item = self.prepare(msg)
        if item is not None:
            self._worker.put(*item)

    def _emit(self, meta, result):
        self.message_port_pub(pmt.intern("pdus"), self.to_pdu(meta, result))
