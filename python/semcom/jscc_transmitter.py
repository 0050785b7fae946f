"""jscc_transmitter (hier): image PDUs -> JSCC encoder -> symbol mapper -> tagged symbol stream."""

from gnuradio import gr, pdu

from .jscc_encoder import jscc_encoder
from .symbol_mapper import symbol_mapper


class jscc_transmitter(gr.hier_block2):
    """Message in "images"; stream out: the power-normalised complex symbols with
    "packet_len" (and the metadata) as tags at each image's first symbol; message out
    "symbols": the symbol PDUs (for latent metrics)."""

    def __init__(self, model="jscc_user_awgn_k512", snr_db=10.0, power=1.0, server="", device=""):
        gr.hier_block2.__init__(self, "jscc_transmitter", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.message_port_register_hier_in("images")
        self.message_port_register_hier_out("symbols")
        # Python blocks are attributes so they live as long as the flowgraph.
        self.encoder = jscc_encoder(model, snr_db, server, device)
        self.mapper = symbol_mapper(power)
        self.to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, "packet_len")
        self.msg_connect(self, "images", self.encoder, "pdus")
        self.msg_connect(self.encoder, "pdus", self.mapper, "pdus")
        self.msg_connect(self.mapper, "pdus", self.to_stream, "pdus")
        self.msg_connect(self.mapper, "pdus", self, "symbols")
        self.connect(self.to_stream, self)

    def set_snr_db(self, snr_db):
        self.encoder.set_snr_db(snr_db)
