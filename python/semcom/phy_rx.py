"""phy_rx (hier): complex baseband -> one PDU per received frame: the analog payload,
unequalized by the PHY, with its estimated channel and operating point (phy/estimate.py).

    in ─┬─ ofdm_sync_sc_cfb ── frequency_modulator_fc (CFO) ─┐
        └─ delay (one symbol) ─────────────────── multiply ──┴─ header_payload_demux
    header (S&C, LTS, LTS, H1..H4) ─ fft_vcc ─ phy_header_decoder ─ "header_data" ─┘  │
    payload ─ fft_vcc ─ phy_deframer ─ "pdus"                                          │

Stock blocks do all per-sample work (sync, frequency correction, demux, FFTs). The two
Python blocks see one vector per OFDM symbol and work per frame: the header decoder
estimates h and sigma^2 from the training pair, checks the header's CRC and hands the
estimates to the payload as tags (header_payload_demux copies the "header_data" dict onto the
payload's first item); a failed CRC returns PMT_F (the demux drops the frame) and is counted.
The deframer tracks the pilots' phase, undoes interleaver and PN signs, estimates SNR and
SINR, and publishes the payload in the unit-signal-power domain (y = h z + i + n, mean
|h|^2 = 1), MMSE-equalized as the schemes' receivers take it: zhat = w y with metadata "w",
"h", "snr_db", "sinr_db" (the estimates; "csi": "estimated"), "noise_var",
"interference_power", "image_id", "seq", "scheme_id", "k", "cfo_rotation".
"""

import numpy as np
import pmt
import torch
from gnuradio import analog, blocks, digital, fft, gr

from .core.equalizer import mmse_weights
from .pdu_util import make_pdu
from .phy.estimate import TRACKING, ChannelEstimate, decode_header, estimate_channel, payload_estimate
from .phy.frame import HEADER_SYMBOLS, PREAMBLE_SYMBOLS, OfdmLayout
from .phy.header import HeaderError

FRAME_LEN_TAG = "frame_len"
HEADER_LEN = PREAMBLE_SYMBOLS + HEADER_SYMBOLS


class phy_header_decoder(gr.sync_block):
    """The header's FFT vectors (natural to this block: shifted, as fft_vcc's), five per frame
    -> estimates and header -> message "header_data" (a dict, or PMT_F on failure)."""

    def __init__(self, cp_len=16, smooth_taps=0):
        self.layout = OfdmLayout(cp_len=int(cp_len))
        gr.sync_block.__init__(self, name="phy_header_decoder",
                               in_sig=[(np.complex64, self.layout.fft_len)], out_sig=None)
        self.smooth_taps = int(smooth_taps)
        self.frames = 0         # headers that passed
        self.crc_failures = 0   # headers rejected (CRC, version, padding): their frames are dropped
        self._rows = []
        self.message_port_register_out(pmt.intern("header_data"))

    def work(self, input_items, output_items):
        # The demux sends exactly HEADER_LEN symbols per trigger and waits for this block's
        # answer before the next header, so counting symbols keeps the frames aligned.
        vectors = input_items[0]
        for v in vectors:
            self._rows.append(np.fft.ifftshift(np.asarray(v)))
            if len(self._rows) == HEADER_LEN:
                self._frame(np.stack(self._rows))
                self._rows = []
        return len(vectors)

    def _frame(self, rows):
        est = estimate_channel(rows[1], rows[2], self.layout, self.smooth_taps)
        try:
            header = decode_header(rows[PREAMBLE_SYMBOLS:], est, self.layout)
        except HeaderError as exc:
            self.crc_failures += 1
            if self.crc_failures == 1:
                self.logger.warn(f"dropped a frame: {exc} (counted in crc_failures; logged once)")
            self.message_port_pub(pmt.intern("header_data"), pmt.PMT_F)
            return
        self.frames += 1
        d = {FRAME_LEN_TAG: self.layout.payload_symbols(header.k), "image_id": header.image_id,
             "seq": header.seq, "scheme_id": header.scheme_id, "k": header.k,
             "phy_noise_var": est.noise_var, "phy_error_var": est.error_var, "cfo_rotation": est.rotation}
        msg = pmt.make_dict()
        for key, value in d.items():
            msg = pmt.dict_add(msg, pmt.intern(key), pmt.from_long(value) if isinstance(value, int)
                               else pmt.from_double(value))
        msg = pmt.dict_add(msg, pmt.intern("phy_h"), pmt.init_c32vector(est.h.size, est.h.astype(np.complex64)))
        self.message_port_pub(pmt.intern("header_data"), msg)


class phy_deframer(gr.sync_block):
    """The payload's FFT vectors with the header's tags on the first -> one PDU per frame."""

    def __init__(self, cp_len=16, tracking="linear"):
        self.layout = OfdmLayout(cp_len=int(cp_len))
        if tracking not in TRACKING:
            raise ValueError(f"tracking must be one of {TRACKING}, got {tracking!r}")
        gr.sync_block.__init__(self, name="phy_deframer",
                               in_sig=[(np.complex64, self.layout.fft_len)], out_sig=None)
        self.tracking = tracking
        self.frames = 0
        self.last = None           # the last PayloadEstimate (for displays and tests)
        self._tags, self._rows, self._need = None, [], 0
        self.message_port_register_out(pmt.intern("pdus"))

    def work(self, input_items, output_items):
        vectors = input_items[0]
        start = self.nitems_read(0)
        tags = {}
        for tag in self.get_tags_in_window(0, 0, len(vectors)):
            tags.setdefault(tag.offset - start, {})[pmt.symbol_to_string(tag.key)] = tag.value
        for i, v in enumerate(vectors):
            if FRAME_LEN_TAG in tags.get(i, {}):
                if self._rows:
                    self.logger.warn(f"a frame ended after {len(self._rows)} of {self._need} payload symbols")
                self._tags, self._rows = tags[i], []
                self._need = pmt.to_long(self._tags[FRAME_LEN_TAG])
            if self._tags is None:
                continue
            self._rows.append(np.fft.ifftshift(np.asarray(v)))
            if len(self._rows) == self._need:
                self._frame(np.stack(self._rows), self._tags)
                self._tags, self._rows = None, []
        return len(vectors)

    def _frame(self, rows, tags):
        value = lambda key: pmt.to_python(tags[key])
        h = np.asarray(pmt.c32vector_elements(tags["phy_h"]), np.complex128)
        est = ChannelEstimate(h=h, noise_var=value("phy_noise_var"), rotation=value("cfo_rotation"),
                              error_var=value("phy_error_var"))
        k = int(value("k"))
        p = payload_estimate(rows, est, self.layout, k, self.tracking)
        self.last = p
        sinr_db = min(p.sinr_db, p.snr_db)
        w = mmse_weights(torch.from_numpy(p.h), 1.0, p.noise_var).numpy().astype(np.complex64)
        zhat = (w * p.y).astype(np.complex64)
        meta = pmt.make_dict()
        fields = {"image_id": int(value("image_id")), "seq": int(value("seq")), "scheme_id": int(value("scheme_id")),
                  "k": k, "snr_db": p.snr_db, "sinr_db": sinr_db, "noise_var": p.noise_var,
                  "interference_power": p.interference_power, "cfo_rotation": est.rotation}
        for key, val in fields.items():
            meta = pmt.dict_add(meta, pmt.intern(key), pmt.from_long(val) if isinstance(val, int)
                                else pmt.from_double(float(val)))
        meta = pmt.dict_add(meta, pmt.intern("csi"), pmt.intern("estimated"))
        meta = pmt.dict_add(meta, pmt.intern("w"), pmt.init_c32vector(k, w))
        meta = pmt.dict_add(meta, pmt.intern("h"), pmt.init_c32vector(k, p.h))
        self.frames += 1
        self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, zhat))


class phy_rx(gr.hier_block2):
    """Stream in: complex baseband. Message out "pdus": one per frame whose header passed
    (see the module's docstring). Counters: frames, crc_failures."""

    def __init__(self, cp_len=16, smooth_taps=17, tracking="linear", threshold=0.3):
        gr.hier_block2.__init__(self, "phy_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.message_port_register_hier_out("pdus")
        lay = self.layout = OfdmLayout(cp_len=int(cp_len))
        self.sync = digital.ofdm_sync_sc_cfb(lay.fft_len, lay.cp_len, False, float(threshold))
        self.delay = blocks.delay(gr.sizeof_gr_complex, lay.symbol_len)
        self.oscillator = analog.frequency_modulator_fc(-2.0 / lay.fft_len)
        self.mixer = blocks.multiply_cc()
        self.demux = digital.header_payload_demux(HEADER_LEN, lay.fft_len, lay.cp_len, FRAME_LEN_TAG, "", True)
        self.header_fft = fft.fft_vcc(lay.fft_len, True, (), True)
        self.payload_fft = fft.fft_vcc(lay.fft_len, True, (), True)
        self.header_decoder = phy_header_decoder(cp_len, smooth_taps)
        self.deframer = phy_deframer(cp_len, tracking)
        self.connect(self, self.sync)
        self.connect(self, self.delay, (self.mixer, 0), (self.demux, 0))
        self.connect((self.sync, 0), self.oscillator, (self.mixer, 1))
        self.connect((self.sync, 1), (self.demux, 1))
        self.connect((self.demux, 0), self.header_fft, self.header_decoder)
        self.msg_connect(self.header_decoder, "header_data", self.demux, "header_data")
        self.connect((self.demux, 1), self.payload_fft, self.deframer)
        self.msg_connect(self.deframer, "pdus", self, "pdus")

    @property
    def frames(self):
        return self.deframer.frames

    @property
    def crc_failures(self):
        return self.header_decoder.crc_failures
