"""jscc_receiver (hier): equalized symbols -> [diffusion receiver] -> JSCC decoder -> image PDUs."""

import math

from gnuradio import blocks, gr, pdu

from .core.receivers import check_receiver, parse_options
from .equalized_to_pdu import equalized_to_pdu
from .icdm_canceller import icdm_canceller
from .jscc_decoder import jscc_decoder
from .pdu_util import OperatingPoint
from .symbol_demapper import symbol_demapper


class jscc_receiver(gr.hier_block2):
    """Streams in: 0 = the equalized symbols zhat, 1 = the MMSE weights w, 2 = the CSI h
    (mmse_equalizer_cc outputs 0 and 1, the channel's CSI), with "packet_len" tags. Message
    out "images" (decoded) and "latents" (what the decoder was given).

    receiver "mmse": the decoder gets the equalized latent (w and h are not used). Any
    other receiver (cddm, icdm, icdm-*) cleans it with icdm_canceller first; the same
    flowgraph serves every receiver. `channel_type` picks the diffusion priors (empty: the
    model's channel).

    SNR and SINR follow the channel's rule (OperatingPoint): SINR above SNR is refused here
    and used as SINR = SNR by the setters, so receiver and channel agree when sliders cross."""

    def __init__(self, model="jscc_user_awgn_k512", snr_db=10.0, receiver="mmse", server="", device="",
                 sinr_db=math.inf, channel_type="", options="", seed=0):
        check_receiver(receiver, parse_options(options))
        # hier blocks have no logger of their own; this one logs the clamping for the whole chain
        self.point = OperatingPoint(snr_db, sinr_db, gr.logger("jscc_receiver"))
        self.diffusion = receiver != "mmse"
        gr.hier_block2.__init__(self, "jscc_receiver", gr.io_signature(3, 3, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.message_port_register_hier_out("images")
        self.message_port_register_hier_out("latents")
        self.decoder = jscc_decoder(model, snr_db, server, device)
        if self.diffusion:
            info = self.decoder.info
            self.to_pdu = equalized_to_pdu(snr_db, sinr_db)
            self.canceller = icdm_canceller(receiver, channel_type or info["channel"], info["k"], snr_db, sinr_db,
                                            1.0, options, seed, server, device)
            for port in range(3):
                self.connect((self, port), (self.to_pdu, port))
            self.msg_connect(self.to_pdu, "pdus", self.canceller, "pdus")
            latents = self.canceller
        else:
            self.to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, "packet_len")
            # The decoder works in the power-normalised domain: the receiver is not told the scale.
            self.demapper = symbol_demapper(undo_scale=False)
            self.connect((self, 0), self.to_pdu)
            self.unused = [blocks.null_sink(gr.sizeof_gr_complex) for _ in range(2)]
            for port, sink in enumerate(self.unused, start=1):
                self.connect((self, port), sink)
            self.msg_connect(self.to_pdu, "pdus", self.demapper, "pdus")
            latents = self.demapper
        self.msg_connect(latents, "pdus", self.decoder, "pdus")
        self.msg_connect(latents, "pdus", self, "latents")
        self.msg_connect(self.decoder, "pdus", self, "images")

    @property
    def nfe(self):
        """Network evaluations per image: the most any batch of the diffusion receiver has used
        so far (0 for mmse)."""
        return self.canceller.nfe if self.diffusion else 0

    def set_snr_db(self, snr_db):
        self.set_operating_point(snr_db=snr_db)

    def set_sinr_db(self, sinr_db):
        self.set_operating_point(sinr_db=sinr_db)

    def set_operating_point(self, snr_db=None, sinr_db=None):
        """Never raises (GUI callbacks). The parts get the pair in use (SINR <= SNR) at once, so
        they never clamp, and log, on their own."""
        if not self.point.set(snr_db, sinr_db):
            return
        self.decoder.set_snr_db(self.point.snr_db)
        if self.diffusion:
            for part in (self.to_pdu, self.canceller):
                part.set_operating_point(self.point.snr_db, self.point.sinr_db)
