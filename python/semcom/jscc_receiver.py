"""jscc_receiver (hier): equalized symbol stream -> latents -> JSCC decoder -> image PDUs."""

from gnuradio import gr, pdu

from .core.receivers import check_receiver
from .jscc_decoder import jscc_decoder
from .symbol_demapper import symbol_demapper


class jscc_receiver(gr.hier_block2):
    """Stream in: the equalized symbols zhat with "packet_len" tags; message out "images"
    (decoded) and "latents" (what the decoder was given). `receiver` names the latent
    clean-up between demapper and decoder ("mmse": none)."""

    def __init__(self, model="jscc_user_awgn_k512", snr_db=10.0, receiver="mmse", server="", device=""):
        check_receiver(receiver, engine="gnuradio")
        gr.hier_block2.__init__(self, "jscc_receiver", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.message_port_register_hier_out("images")
        self.message_port_register_hier_out("latents")
        self.to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, "packet_len")
        # The decoder works in the power-normalised domain: the receiver is not told the scale.
        self.demapper = symbol_demapper(undo_scale=False)
        self.decoder = jscc_decoder(model, snr_db, server, device)
        self.connect(self, self.to_pdu)
        self.msg_connect(self.to_pdu, "pdus", self.demapper, "pdus")
        self.msg_connect(self.demapper, "pdus", self.decoder, "pdus")
        self.msg_connect(self.demapper, "pdus", self, "latents")
        self.msg_connect(self.decoder, "pdus", self, "images")

    def set_snr_db(self, snr_db):
        self.decoder.set_snr_db(snr_db)
