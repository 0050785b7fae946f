"""symbol_mapper: latent PDU (float32, length 2k) -> power-normalised complex symbol PDU."""

import math

import pmt
import torch
from gnuradio import gr

from .core.mapping import to_symbols
from .pdu_util import make_pdu, split_pdu


class symbol_mapper(gr.basic_block):
    """z = scale (s[:k] + j s[k:]) with mean|z|^2 = power per PDU.

    Adds to the metadata: "power_scale" (the scale, for a receiver that is told it)
    and "n_symbols" (k). Malformed PDUs are dropped with one log line each.
    """

    def __init__(self, power=1.0):
        if not (power > 0 and math.isfinite(power)):  # before the C++ block exists
            raise ValueError(f"power must be finite and > 0, got {power}")
        gr.basic_block.__init__(self, name="symbol_mapper", in_sig=None, out_sig=None)
        self.power = float(power)
        self.message_port_register_in(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("pdus"))
        self.set_msg_handler(pmt.intern("pdus"), self.handle_pdu)

    def handle_pdu(self, msg):
        parts = split_pdu(msg, "f32", self.logger)
        if parts is None:
            return
        meta, latent = parts
        try:
            z, scale = to_symbols(torch.from_numpy(latent), self.power)
        except ValueError as exc:
            self.logger.error(f"dropped a latent PDU: {exc}")
            return
        meta = pmt.dict_add(meta, pmt.intern("power_scale"), pmt.from_double(float(scale)))
        meta = pmt.dict_add(meta, pmt.intern("n_symbols"), pmt.from_long(z.numel()))
        self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, z.numpy()))
