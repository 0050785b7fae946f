"""scheme_receiver (hier): equalized symbols, weights and CSI -> a scheme's receiver -> images.

One chain for every scheme of the registry (semcom.schemes): equalized_to_pdu joins the
streams into PDUs, diffusion_receiver runs the scheme's receive in the inference backend.
jscc_receiver is this block under its earlier name and parameter order.
"""

import math

from gnuradio import gr

from .diffusion_receiver import diffusion_receiver
from .equalized_to_pdu import equalized_to_pdu
from .pdu_util import OperatingPoint


class scheme_receiver(gr.hier_block2):
    """Streams in: 0 = the equalized symbols zhat, 1 = the MMSE weights w, 2 = the CSI h
    (mmse_equalizer_cc outputs 0 and 1, the channel's CSI), with "packet_len" tags. Message
    out "images" (decoded) and "latents" (the scheme's latents, where it has them).
    `channel_type` picks the scheme's checkpoints; `model` empty: the scheme's default;
    `coherence`: symbols per Rayleigh fading block (as the channel's coherence_len).

    SNR and SINR follow the channel's rule (OperatingPoint): SINR above SNR is refused here
    and used as SINR = SNR by the setters, so receiver and channel agree when sliders cross."""

    def __init__(self, scheme="mmse", model="", channel_type="awgn", k=512, snr_db=10.0, sinr_db=math.inf,
                 options="", seed=0, server="", device="", coherence=1):
        # hier blocks have no logger of their own; this one logs the clamping for the whole chain
        self.point = OperatingPoint(snr_db, sinr_db, gr.logger("scheme_receiver"))
        gr.hier_block2.__init__(self, "scheme_receiver", gr.io_signature(3, 3, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.message_port_register_hier_out("images")
        self.message_port_register_hier_out("latents")
        self.to_pdu = equalized_to_pdu(snr_db, sinr_db)
        self.receiver = diffusion_receiver(scheme, channel_type, k, snr_db, sinr_db, 1.0, options, seed, server,
                                           device, model=model, coherence=coherence)
        for port in range(3):
            self.connect((self, port), (self.to_pdu, port))
        self.msg_connect(self.to_pdu, "pdus", self.receiver, "pdus")
        self.msg_connect(self.receiver, "pdus", self, "latents")
        self.msg_connect(self.receiver, "images", self, "images")

    # The earlier jscc_receiver's parts: the canceller and the decoder are now one block.
    @property
    def canceller(self):
        return self.receiver

    @property
    def decoder(self):
        return self.receiver

    @property
    def nfe(self):
        """Network evaluations per image: the most any batch has used so far."""
        return self.receiver.nfe

    def set_snr_db(self, snr_db):
        self.set_operating_point(snr_db=snr_db)

    def set_sinr_db(self, sinr_db):
        self.set_operating_point(sinr_db=sinr_db)

    def set_operating_point(self, snr_db=None, sinr_db=None):
        """Never raises (GUI callbacks). The parts get the pair in use (SINR <= SNR) at once, so
        they never clamp, and log, on their own."""
        if not self.point.set(snr_db, sinr_db):
            return
        for part in (self.to_pdu, self.receiver):
            part.set_operating_point(self.point.snr_db, self.point.sinr_db)
