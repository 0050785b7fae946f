"""phy_tx (hier): symbol PDUs of a scheme -> OFDM bursts of analog payload (phy/frame.py).

    "pdus" ─ phy_framer ─ pdu_to_tagged_stream ─ ofdm_carrier_allocator_cvc (S&C, LTS, LTS;
    pilots) ─ fft_vcc (inverse, shifted) ─ ofdm_cyclic_prefixer ─┐
    phy_framer "guard" (zeros) ─ pdu_to_tagged_stream ────────────┴─ tagged_stream_mux ─
    multiply_const (scale, back-off) ─ out

The guard is joined to each burst by tagged_stream_mux rather than burst_shaper_cc's
post-padding, which holds the last burst's padding until another burst comes. back-off
0 dB (unit mean sample power) is for simulations; at a radio's DAC leave 10-12 dB for the
analog payload's PAPR (about 8.5 dB mean, 10-11 dB worst).

The output carries "packet_len" tags at each burst's first sample (the burst length in
samples, guard included): give a UHD or SoapySDR sink that length tag name for burst mode.
"""

import collections

import numpy as np
import pmt
from gnuradio import blocks, digital, fft, gr, pdu

from . import schemes
from .pdu_util import drops_on_error, make_pdu, meta_get, split_pdu
from .phy.frame import (DATA_CARRIERS, HEADER_SYMBOLS, PILOT_CARRIERS, PILOT_SYMBOLS, PREAMBLE_SYMBOLS, FrameError,
                         OfdmLayout, papr_db)
from .phy.header import Header, pack_header, scheme_id

LENGTH_TAG = "packet_len"


class phy_framer(gr.basic_block):
    """Symbol PDU (c32, k symbols; metadata image_id, scheme) -> the carrier allocator's input
    for one frame (header BPSK then the PN-signed, padded, interleaved payload), metadata
    kept. Counts frames and records the PAPR of each frame's analog payload (its OFDM
    symbols' samples, cyclic prefixes included; numpy reference modulator)."""

    def __init__(self, cp_len=16, guard=160, default_scheme="mmse", payload_only=False):
        gr.basic_block.__init__(self, name="phy_framer", in_sig=None, out_sig=None)
        self.layout = OfdmLayout(cp_len=int(cp_len))
        self.guard = int(guard)
        self.payload_only = bool(payload_only)
        self.default_scheme = default_scheme
        self.frames = 0
        self.papr_db = collections.deque(maxlen=10_000)   # per frame, of the payload's samples (the last 10 000)
        self.message_port_register_in(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("guard"))   # guard zeros after each frame
        self.set_msg_handler(pmt.intern("pdus"), self.handle)

    @drops_on_error
    def handle(self, msg):
        parts = split_pdu(msg, "c32", self.logger)
        if parts is None:
            return
        meta, z = parts
        image_id = meta_get(meta, "image_id", self.frames)
        scheme = meta_get(meta, "scheme", self.default_scheme)
        try:
            header = Header(scheme_id=scheme_id(str(scheme)), image_id=int(image_id) % 2 ** 24,
                            seq=self.frames % 2 ** 12, k=z.size)
            bits = pack_header(header)
            stream = self.layout.data_stream(bits, z)
        except (FrameError, TypeError, ValueError) as exc:
            self.logger.error(f"dropped a symbol PDU that cannot be framed ({exc})")
            return
        grid = self.layout.payload_only_grid(z) if self.payload_only else self.layout.grid(bits, z)
        samples = self.layout.modulate(grid)
        self.papr_db.append(papr_db(samples[(PREAMBLE_SYMBOLS + HEADER_SYMBOLS) * self.layout.symbol_len:]))
        self.frames += 1
        if self.payload_only:   # the whole burst, unit-power scale (phy_tx applies the back-off)
            burst = np.concatenate([samples / self.layout.tx_scale(), np.zeros(self.guard, np.complex64)])
            self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, burst.astype(np.complex64)))
            return
        self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, stream))
        if self.guard:
            self.message_port_pub(pmt.intern("guard"), make_pdu(pmt.make_dict(), np.zeros(self.guard, np.complex64)))


class phy_burst_ack(gr.sync_block):
    """Samples pass through; when the last sample of a "packet_len"-tagged burst has passed,
    an "ack" message goes out: a transmitter-only flowgraph (no receiver to acknowledge
    images) paces its image_source with it and says "done" only after every burst left."""

    def __init__(self):
        gr.sync_block.__init__(self, name="phy_burst_ack", in_sig=[np.complex64], out_sig=[np.complex64])
        self.set_tag_propagation_policy(gr.TPP_ONE_TO_ONE)
        self._ends = collections.deque()
        self.bursts = 0
        self.message_port_register_out(pmt.intern("ack"))

    def work(self, input_items, output_items):
        n = len(output_items[0])
        output_items[0][:] = input_items[0][:n]
        start = self.nitems_read(0)
        for tag in self.get_tags_in_window(0, 0, n, pmt.intern(LENGTH_TAG)):
            self._ends.append(tag.offset + pmt.to_long(tag.value))
        while self._ends and self._ends[0] <= start + n:
            self._ends.popleft()
            self.bursts += 1
            self.message_port_pub(pmt.intern("ack"), pmt.PMT_T)
        return n


class phy_tx(gr.hier_block2):
    """Message in "pdus" (a scheme's symbol PDUs, e.g. scheme_transmitter's "symbols");
    stream out: complex baseband at unit mean power less `backoff_db`, "packet_len"-tagged
    bursts with `guard` zero samples after each. Message out "ack": one per burst once its
    last sample has left (connect it to the image_source's "ack" where no receiver acknowledges).

    payload_only=True: a co-channel interferer's transmitter for simulations: the same burst
    length and payload layout, but nothing on the preamble, header and pilots (the user's
    training stays clean: orthogonal training, docs/ota.md); built per frame in numpy."""

    def __init__(self, cp_len=16, backoff_db=0.0, guard=160, payload_only=False):
        gr.hier_block2.__init__(self, "phy_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        if int(guard) < 0:
            raise ValueError(f"guard must be >= 0 samples, got {guard}")
        self.message_port_register_hier_in("pdus")
        self.message_port_register_hier_out("ack")
        self.layout = OfdmLayout(cp_len=int(cp_len))
        lay = self.layout
        self.framer = phy_framer(cp_len, guard, payload_only=payload_only)
        self.to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, LENGTH_TAG)
        self.scale = blocks.multiply_const_cc(lay.tx_scale(float(backoff_db)))
        self.msg_connect(self, "pdus", self.framer, "pdus")
        self.msg_connect(self.framer, "pdus", self.to_stream, "pdus")
        self.burst_ack = phy_burst_ack()
        self.msg_connect(self.burst_ack, "ack", self, "ack")
        if payload_only:
            self.connect(self.to_stream, self.scale, self.burst_ack, self)
            return
        shifted = lambda word: [complex(v) for v in np.fft.fftshift(word)]
        self.allocator = digital.ofdm_carrier_allocator_cvc(
            lay.fft_len, [list(DATA_CARRIERS)], [list(PILOT_CARRIERS)], [list(PILOT_SYMBOLS)],
            [shifted(lay.sc_word()), shifted(lay.lts_word()), shifted(lay.lts_word())], LENGTH_TAG, True)
        self.ifft = fft.fft_vcc(lay.fft_len, False, (), True)
        self.prefixer = digital.ofdm_cyclic_prefixer(lay.fft_len, lay.symbol_len, 0, LENGTH_TAG)
        self.connect(self.to_stream, self.allocator, self.ifft, self.prefixer)
        if int(guard):
            self.guard_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, LENGTH_TAG)
            self.join = blocks.tagged_stream_mux(gr.sizeof_gr_complex, LENGTH_TAG, 0)
            self.msg_connect(self.framer, "guard", self.guard_stream, "pdus")
            self.connect(self.prefixer, (self.join, 0))
            self.connect(self.guard_stream, (self.join, 1))
            self.connect(self.join, self.scale, self.burst_ack, self)
        else:
            self.connect(self.prefixer, self.scale, self.burst_ack, self)

    def set_backoff_db(self, backoff_db):
        self.scale.set_k(self.layout.tx_scale(float(backoff_db)))

    @property
    def frames(self):
        return self.framer.frames

    @property
    def papr_db(self):
        """PAPR (dB) of each frame's analog payload sent so far."""
        return list(self.framer.papr_db)
