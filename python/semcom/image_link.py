"""The simulated image link as a top block: the chain of grc/examples/image_link_*.grc.

user images ─ scheme_transmitter ─┐                                   ┌─ image_sink
                                  ├─ fading_interference_channel_cc ─ mmse_equalizer_cc ─ scheme_receiver
interferer images ─ jscc_transmitter ─┘   (null source when SINR = inf)

The scheme (`receiver`: any name of the scheme registry) picks both ends of the user's link;
its receiver also gets the equalizer's weights w and the CSI h.
"""

import math

from gnuradio import blocks, gr

from . import semcom_python as _cpp
from .core.channel import link_powers
from .image_sink import image_sink
from .image_source import image_source
from .inference import get_backend
from .jscc_transmitter import jscc_transmitter
from .scheme_receiver import scheme_receiver
from .scheme_transmitter import scheme_transmitter


class image_link(gr.top_block):
    def __init__(self, dataset="sample", images=0, channel_type="awgn", snr_db=10.0,
                 sinr_db=math.inf, user_model="jscc_user_awgn_k512",
                 interferer_model="jscc_interferer_awgn_k512", receiver="mmse",
                 coherence_len=1, seed=0, out_dir="", server="", device="", with_lpips=True,
                 max_in_flight=16, ack_timeout=30.0, receiver_options=""):
        gr.top_block.__init__(self, "image_link")
        powers = link_powers(snr_db, sinr_db)
        self.user_source = image_source(dataset, images, 0, "forward", max_in_flight, ack_timeout)
        k = get_backend(server, device).info(user_model)["k"]  # a missing model fails here
        self.user_tx = scheme_transmitter(receiver, user_model, channel_type, snr_db, 1.0, receiver_options,
                                          server, device)
        self.channel = _cpp.fading_interference_channel_cc(
            channel_type, coherence_len, snr_db, sinr_db, powers.signal_power, seed)
        self.equalizer = _cpp.mmse_equalizer_cc(powers.signal_power, powers.noise_var)
        self.rx = scheme_receiver(receiver, user_model, channel_type, k, snr_db, sinr_db, receiver_options, seed,
                                  server, device, coherence_len)
        self.sink = image_sink(out_dir, with_lpips=with_lpips)

        self.msg_connect(self.user_source, "pdus", self.user_tx, "images")
        self.msg_connect(self.user_source, "pdus", self.sink, "reference")
        self.msg_connect(self.user_tx, "symbols", self.sink, "tx_symbols")
        self.connect(self.user_tx, (self.channel, 0))
        if powers.interference_power > 0:
            # The interferer: another JSCC system sending other images (the set walked backwards).
            self.interferer_source = image_source(dataset, len(self.user_source.indices), 0,
                                                  "reverse", max_in_flight, ack_timeout)
            self.interferer_tx = jscc_transmitter(interferer_model, snr_db, 1.0, server, device)
            self.msg_connect(self.interferer_source, "pdus", self.interferer_tx, "images")
            self.connect(self.interferer_tx, (self.channel, 1))
            self.msg_connect(self.sink, "ack", self.interferer_source, "ack")
        else:
            self.connect(blocks.null_source(gr.sizeof_gr_complex), (self.channel, 1))
        self.connect((self.channel, 0), (self.equalizer, 0))
        self.connect((self.channel, 1), (self.equalizer, 1))
        self.connect((self.equalizer, 0), (self.rx, 0))
        self.connect((self.equalizer, 1), (self.rx, 1))  # the diffusion receivers' side information
        self.connect((self.channel, 1), (self.rx, 2))
        self.msg_connect(self.rx, "images", self.sink, "pdus")
        self.msg_connect(self.rx, "latents", self.sink, "rx_latents")
        self.msg_connect(self.sink, "ack", self.user_source, "ack")

    def neural_blocks(self):
        """The blocks that run networks (the transmitters, the receiver), upstream first."""
        blocks = [self.user_tx.encoder]
        if hasattr(self, "interferer_tx"):
            blocks.append(self.interferer_tx.encoder)
        return blocks + [self.rx.receiver]

    def first_error(self):
        """The first failure any network block reported (e.g. a dead server), or None."""
        return next((b.first_error for b in self.neural_blocks() if b.first_error), None)

    def run_interruptible(self):
        """run(), but Ctrl-C stops the flowgraph and raises KeyboardInterrupt: GNU Radio's
        own wait() swallows it (it stops the flowgraph and returns as if it had finished)."""
        self.handle_sigint = False
        try:
            self.start()
            self.wait()
        except KeyboardInterrupt:
            self.stop()
            self.wait()
            raise
