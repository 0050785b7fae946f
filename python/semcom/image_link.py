"""The simulated image link as a top block: the chain of grc/examples/image_link_*.grc.

user images ─ scheme_transmitter ─┐                                   ┌─ image_sink
                                  ├─ fading_interference_channel_cc ─ mmse_equalizer_cc ─ scheme_receiver
interferer images ─ jscc_transmitter ─┘   (null source when SINR = inf)

The scheme (`receiver`: any name of the scheme registry) picks both ends of the user's link;
its receiver also gets the equalizer's weights w and the CSI h.

phy="ofdm": the same link over the OFDM PHY (docs/ota.md), with gr-channels impairments:

user images ─ scheme_transmitter "symbols" ─ phy_tx ─ frame_multipath_cc ─ channel_model (CFO, SRO) ─┐
interferer images ─ jscc_transmitter "symbols" ─ phy_tx (payload only) ─ frame_multipath_cc ─ channel_model
                                                                                       ─ x sqrt(Pi) ─ add
                                      noise ─ add ─ (phase_noise_gen) ─ phy_rx ─ diffusion_receiver ─ image_sink

The multipath taps' phases are redrawn at every frame (each user its own), as in the batch
engine. The receiver then gets the PHY's ESTIMATED channel, SNR and SINR. The two bursts have the
same length, so the adder keeps them frame- and symbol-aligned.
"""

import math

import numpy as np
from gnuradio import analog, blocks, channels, gr

from . import semcom_python as _cpp
from .core.channel import link_powers
from .diffusion_receiver import diffusion_receiver
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
                 max_in_flight=16, ack_timeout=30.0, receiver_options="", phy="none", cfo=0.0, sro_ppm=0.0,
                 taps=(1.0,), phase_noise=0.0, smooth_taps=17):
        gr.top_block.__init__(self, "image_link")
        powers = link_powers(snr_db, sinr_db)
        if phy not in ("none", "ofdm"):
            raise ValueError(f"phy must be 'none' or 'ofdm', got {phy!r}")
        if phy == "ofdm":
            self._build_ofdm(dataset, images, channel_type, snr_db, sinr_db, user_model, interferer_model, receiver,
                             seed, out_dir, server, device, with_lpips, max_in_flight, ack_timeout, receiver_options,
                             cfo, sro_ppm, taps, phase_noise, smooth_taps)
            return
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

    def _build_ofdm(self, dataset, images, channel_type, snr_db, sinr_db, user_model, interferer_model, receiver,
                    seed, out_dir, server, device, with_lpips, max_in_flight, ack_timeout, receiver_options,
                    cfo, sro_ppm, taps, phase_noise, smooth_taps):
        from .phy.frame import OfdmLayout
        from .phy.link import OfdmChannel
        from .frame_multipath import frame_multipath_cc
        from .phy.sim import noise_variance
        from .phy_rx import phy_rx
        from .phy_tx import phy_tx
        channel = OfdmChannel(tuple(taps), int(smooth_taps))
        if not (np.isfinite(cfo) and abs(cfo) < 1):
            raise ValueError(f"cfo must be within +-1 subcarrier spacing (Schmidl & Cox's range), got {cfo}")
        if not (np.isfinite(sro_ppm) and abs(sro_ppm) < 1000) or not (np.isfinite(phase_noise) and phase_noise >= 0):
            raise ValueError(f"sro_ppm must be within +-1000 and phase_noise >= 0, got {sro_ppm}, {phase_noise}")
        powers = link_powers(snr_db, sinr_db)
        layout = OfdmLayout()
        self.user_source = image_source(dataset, images, 0, "forward", max_in_flight, ack_timeout)
        k = get_backend(server, device).info(user_model)["k"]
        self.user_tx = scheme_transmitter(receiver, user_model, channel_type, snr_db, 1.0, receiver_options,
                                          server, device)
        self.user_phy = phy_tx()
        # Multipath with its tap phases redrawn at every frame (as the batch engine draws them),
        # then channel_model for the offsets only
        self.user_multipath = frame_multipath_cc(channel.taps, int(seed))
        self.user_channel = channels.channel_model(0.0, cfo / layout.fft_len, 1.0 + sro_ppm * 1e-6, [1.0], seed)
        self.adder = blocks.add_cc()
        self.noise = analog.noise_source_c(analog.GR_GAUSSIAN, float(np.sqrt(noise_variance(layout, snr_db))),
                                           int(seed) + 1)
        self.noise_adder = blocks.add_cc()
        self.rx_phy = phy_rx(layout.cp_len, channel.smooth_taps, channel.tracking)
        # the PHY's PDUs are what diffusion_receiver takes (no stream chain, no equalized_to_pdu)
        self.rx = diffusion_receiver(receiver, channel_type, k, snr_db, sinr_db, 1.0, receiver_options, seed, server,
                                     device, model=user_model)
        self.sink = image_sink(out_dir, with_lpips=with_lpips)
        self.msg_connect(self.user_source, "pdus", self.user_tx, "images")
        self.msg_connect(self.user_source, "pdus", self.sink, "reference")
        self.msg_connect(self.user_tx, "symbols", self.sink, "tx_symbols")
        self.msg_connect(self.user_tx, "symbols", self.user_phy, "pdus")
        self.connect(self.user_tx, blocks.null_sink(gr.sizeof_gr_complex))   # the symbols go by message
        # TX tags must not reach the receiver (a loopback, not a radio)
        self.connect(self.user_phy, self.user_multipath, blocks.tag_gate(gr.sizeof_gr_complex, False),
                     self.user_channel, (self.adder, 0))
        if powers.interference_power > 0:
            self.interferer_source = image_source(dataset, len(self.user_source.indices), 0, "reverse",
                                                  max_in_flight, ack_timeout)
            self.interferer_tx = jscc_transmitter(interferer_model, snr_db, 1.0, server, device)
            self.interferer_phy = phy_tx(payload_only=True)
            self.interferer_multipath = frame_multipath_cc(channel.taps, int(seed) + 2)
            self.interferer_channel = channels.channel_model(0.0, cfo / layout.fft_len, 1.0 + sro_ppm * 1e-6, [1.0],
                                                             seed + 2)
            self.msg_connect(self.interferer_source, "pdus", self.interferer_tx, "images")
            self.msg_connect(self.interferer_tx, "symbols", self.interferer_phy, "pdus")
            self.connect(self.interferer_tx, blocks.null_sink(gr.sizeof_gr_complex))
            self.connect(self.interferer_phy, self.interferer_multipath, blocks.tag_gate(gr.sizeof_gr_complex, False),
                         self.interferer_channel,
                         blocks.multiply_const_cc(float(np.sqrt(powers.interference_power))), (self.adder, 1))
            self.msg_connect(self.sink, "ack", self.interferer_source, "ack")
        else:
            self.connect(blocks.null_source(gr.sizeof_gr_complex), (self.adder, 1))
        self.connect(self.adder, (self.noise_adder, 0))
        self.connect(self.noise, (self.noise_adder, 1))
        last = self.noise_adder
        if phase_noise > 0:
            self.phase_noise = channels.phase_noise_gen(float(phase_noise), 0.01)
            self.connect(last, self.phase_noise)
            last = self.phase_noise
        self.connect(last, self.rx_phy)
        self.msg_connect(self.rx_phy, "pdus", self.rx, "pdus")
        self.msg_connect(self.rx, "images", self.sink, "pdus")
        self.msg_connect(self.rx, "pdus", self.sink, "rx_latents")
        self.msg_connect(self.sink, "ack", self.user_source, "ack")
        # frames the PHY lost are acknowledged too, or the sources' pacing would wait for them
        self.msg_connect(self.rx_phy, "lost", self.user_source, "ack")
        if powers.interference_power > 0:
            self.msg_connect(self.rx_phy, "lost", self.interferer_source, "ack")

    def neural_blocks(self):
        """The blocks that run networks (the transmitters, the receiver), upstream first."""
        blocks = [self.user_tx.encoder]
        if hasattr(self, "interferer_tx"):
            blocks.append(self.interferer_tx.encoder)
        return blocks + [self.rx if isinstance(self.rx, diffusion_receiver) else self.rx.receiver]

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
