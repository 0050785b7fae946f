"""symbol_demapper: complex symbol PDU -> latent PDU (float32, length 2k)."""

import math

import pmt
import torch
from gnuradio import gr

from .core.mapping import from_symbols
from .pdu_util import drops_on_error, make_pdu, meta_get, split_pdu


class symbol_demapper(gr.basic_block):
    """s = [Re z; Im z] / scale, the inverse of symbol_mapper.

    With undo_scale=True the "power_scale" metadata (added by symbol_mapper, carried
    through the channel as a stream tag) is divided out; PDUs without it are dropped.
    With undo_scale=False the normalised latent is passed on as it is.
    After each PDU it publishes the PDU's metadata on "ack" (see AckPacer).
    """

    def __init__(self, undo_scale=True):
        gr.basic_block.__init__(self, name="symbol_demapper", in_sig=None, out_sig=None)
        self.undo_scale = bool(undo_scale)
        self.message_port_register_in(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("ack"))
        self.set_msg_handler(pmt.intern("pdus"), self.handle_pdu)

    @drops_on_error
    def handle_pdu(self, msg):
        parts = split_pdu(msg, "c32", self.logger)
        if parts is None:
            return
        meta, z = parts
        scale = 1.0
        if self.undo_scale:
            # (a complex PMT passes pmt.is_number, and pmt.to_double raises on it)
            scale = meta_get(meta, "power_scale")
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                    or not (scale > 0 and math.isfinite(scale)):
                self.logger.error("dropped a symbol PDU without a positive 'power_scale'")
                return
        latent = from_symbols(torch.from_numpy(z), scale).numpy()
        self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, latent))
        self.message_port_pub(pmt.intern("ack"), meta)
