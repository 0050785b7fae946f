"""A complete simulated link with two Gaussian-latent users (stand-ins for JSCC encoders).

users -> symbol_mapper -> stock PDU to Tagged Stream -> fading_interference_channel_cc
      -> mmse_equalizer_cc -> stock Tagged Stream to PDU -> symbol_demapper -> stored PDUs

The same chain as grc/examples/link_gaussian_*.grc, as a top block for apps and tests.
"""

import numpy as np
import pmt
from gnuradio import blocks, gr, pdu

from . import semcom_python as _cpp
from .gaussian_latent_source import gaussian_latent_source
from .symbol_demapper import symbol_demapper
from .symbol_mapper import symbol_mapper


class gaussian_link(gr.top_block):
    def __init__(self, n_symbols=512, count=10, snr_db=10.0, sinr_db=float("inf"),
                 channel_type="rayleigh", coherence_len=1, seed=0, max_in_flight=8):
        gr.top_block.__init__(self, "gaussian_link")
        # Python blocks are attributes: GNU Radio keeps only their C++ side alive.
        self.user = gaussian_latent_source(n_symbols, count, seed + 1, max_in_flight)
        self.interferer = gaussian_latent_source(n_symbols, count, seed + 2, max_in_flight)
        self.mappers = [symbol_mapper(), symbol_mapper()]
        self.channel = _cpp.fading_interference_channel_cc(
            channel_type, coherence_len, snr_db, sinr_db, 1.0, seed + 3)
        self.equalizer = _cpp.mmse_equalizer_cc(1.0, self.channel.noise_var())
        self.demapper = symbol_demapper()
        self.sent, self.received = blocks.message_debug(), blocks.message_debug()
        to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, "packet_len")

        for i, (src, mapper) in enumerate(zip((self.user, self.interferer), self.mappers)):
            to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, "packet_len")
            self.msg_connect(src, "pdus", mapper, "pdus")
            self.msg_connect(mapper, "pdus", to_stream, "pdus")
            self.connect(to_stream, (self.channel, i))
            self.msg_connect(self.demapper, "ack", src, "ack")
        self.msg_connect(self.user, "pdus", self.sent, "store")
        self.connect((self.channel, 0), (self.equalizer, 0))
        self.connect((self.channel, 1), (self.equalizer, 1))
        self.connect((self.equalizer, 0), to_pdu)
        self.connect((self.equalizer, 1), blocks.null_sink(gr.sizeof_gr_complex))
        self.msg_connect(to_pdu, "pdus", self.demapper, "pdus")
        self.msg_connect(self.demapper, "pdus", self.received, "store")

    def latents(self):
        """(sent, received) latents as arrays (count, 2k), matched by image_id."""
        def collect(dbg):
            out = {}
            for i in range(dbg.num_messages()):
                msg = dbg.get_message(i)
                image_id = pmt.to_long(pmt.dict_ref(pmt.car(msg), pmt.intern("image_id"), pmt.PMT_NIL))
                out[image_id] = np.array(pmt.f32vector_elements(pmt.cdr(msg)))
            return out
        sent, received = collect(self.sent), collect(self.received)
        ids = sorted(set(sent) & set(received))
        return np.stack([sent[i] for i in ids]), np.stack([received[i] for i in ids])
