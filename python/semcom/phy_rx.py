"""phy_rx (hier): complex baseband -> one PDU per received frame: the analog payload,
unequalized by the PHY, with its estimated channel and operating point (phy/estimate.py).

    in ─┬─ ofdm_sync_sc_cfb ─ (fine offset, trigger) ─┐
        └─ delay (one symbol - TIMING_OFFSET) ─ phy_sync_tagger_cc ─ phy_frame_demux_cvc
           ─ payload symbols, the header's answer as tags ─ phy_deframer_vc ─ "pdus"

Stock blocks do the sync and the delay. The frequency offset the sync measured at a frame's
trigger travels with the frame as a tag ("phy_cfo") and is removed per frame, with the FFT:
a stream oscillator driven by the sync's held estimate (stock ofdm_rx) changes its frequency
at every later trigger, and a false trigger inside a frame (a few per hundred frames at
threshold 0.3) would turn the rest of that frame's payload, unnoticed. The blocks after the
delay are C++ (lib/phy_*; their per-frame maths is lib/phy_ofdm.cc, the numpy reference's
computations). With numpy per frame and stock header_payload_demux the receiver ran at
0.2-0.5 Msps: the demux waits for each header's answer, spinning (docs/ota.md, Throughput).

- phy_sync_tagger_cc: the delayed samples pass through; a trigger becomes a "phy_trigger"
  tag and a "phy_cfo" tag (the fine offset) on the S&C symbol's first sample.
- phy_frame_demux_cvc: what header_payload_demux (cyclic prefixes removed) and
  phy_header_decoder_vc (reference: phy_header_decoder below) did together, in one thread:
  at a trigger, the offset removed (refined by the training pair's rotation), FFT, h and
  sigma^2 from the training pair, the coded header (Viterbi, CRC); when it passes, the
  payload's symbols with the payload length and the estimates as tags on the first; when it
  fails, counted in crc_failures (logged once; never fatal) and the search goes on one
  sample after the trigger. Triggers inside a frame are ignored.
- phy_deframer_vc (reference: phy_deframer below): the offset removed, FFT, pilot phase
  tracking, interleaver and PN signs undone, SNR and SINR; publishes the payload in the
  unit-signal-power domain (y = h z + i + n, mean |h|^2 = 1), MMSE-equalized as the schemes'
  receivers take it: zhat = w y with metadata "w", "h", "snr_db", "sinr_db" (the estimates;
  "csi": "estimated"), "noise_var", "interference_power", "image_id", "seq", "scheme_id",
  "k", "cfo", "cfo_rotation".

The Python blocks phy_header_decoder and phy_deframer are the same stages on the numpy
reference maths: the tests hold the C++ blocks to them (tests/test_phy_rx_cpp.py).
"""

import collections

import numpy as np
import pmt
import torch
from gnuradio import blocks, digital, gr

from . import semcom_python

from .core.equalizer import mmse_weights
from .pdu_util import make_pdu
from .phy.estimate import (TRACKING, ChannelEstimate, check_smooth_taps, decode_header, derotate_fft,
                           estimate_channel, payload_estimate, refined_cfo)
from .phy.frame import HEADER_SYMBOLS, PREAMBLE_SYMBOLS, FrameError, OfdmLayout
from .phy.header import HeaderError

FRAME_LEN_TAG = "frame_len"
CFO_TAG = "phy_cfo"
TRIGGER_TAG = "phy_trigger"     # where a frame starts (phy_frame_demux_cvc); the offset rides on its own tag
HEADER_LEN = PREAMBLE_SYMBOLS + HEADER_SYMBOLS
# Samples the FFT windows start after where the stock alignment (a one-symbol delay) puts
# them. With that alignment, ofdm_sync_sc_cfb's trigger places the windows a whole cyclic
# prefix early at 20 dB (16-17 samples) and mostly 6-10 samples early at 5 dB, with a tail
# of later and much earlier ones (measured on 200 frames each). A window early within the
# prefix costs only a phase slope that h absorbs, as long as the channel's echoes do not
# reach past it; one that is late takes in the next symbol. 4 samples later keeps 96 % of
# the 5 dB frames and all 20 dB frames within [-14, 0] (channels up to 3 samples long).
# phy_frame_demux_cvc's fine timing then places each frame from its training pair
# (phy/estimate.py: fine_timing, +-24 samples around the trigger; the windows 3 samples
# before the correlation peak), which also catches the tail (and a trigger split in two by
# the sync's plateau detector at high SNR: its first half lands ~20 samples early).
TIMING_OFFSET = 4
# phy_rx's ports for displays: "payload" (c32: y before equalization, unit signal power),
# "channel" (f32: |h| over the 64 carriers, DC in the middle, unit mean power), "estimates"
# (f32: [snr_db, sinr_db]); one PDU per frame each.
DISPLAY_PORTS = ("payload", "channel", "estimates")
SEQ_MODULO = 4096     # the header's 12-bit sequence number
# A larger jump in the sequence numbers is a transmitter that restarted (or another one), not
# lost frames: it is logged and not acknowledged (an image source's ack timeout covers it).
MAX_GAP = 64


def pmt_dict(fields: dict):
    """A PMT dict of ints, floats, strings and complex vectors."""
    d = pmt.make_dict()
    for key, value in fields.items():
        if isinstance(value, (bool, np.bool_)):
            v = pmt.from_bool(bool(value))
        elif isinstance(value, (int, np.integer)):
            v = pmt.from_long(int(value))
        elif isinstance(value, str):
            v = pmt.intern(value)
        elif isinstance(value, np.ndarray):
            v = pmt.init_c32vector(value.size, value.astype(np.complex64))
        else:
            v = pmt.from_double(float(value))
        d = pmt.dict_add(d, pmt.intern(key), v)
    return d


class phy_header_decoder(gr.sync_block):
    """The numpy reference of phy_header_decoder_vc (phy_rx uses the C++ block). The
    header's time-domain symbols (CP removed), HEADER_LEN per frame, the first tagged with
    the frame's offset -> estimates and header -> message "header_data" (a dict, or PMT_F on
    failure)."""

    def __init__(self, cp_len=16, smooth_taps=17):
        self.layout = OfdmLayout(cp_len=int(cp_len))
        smooth_taps = check_smooth_taps(smooth_taps, self.layout)
        gr.sync_block.__init__(self, name="phy_header_decoder",
                               in_sig=[(np.complex64, self.layout.fft_len)], out_sig=None)
        self.smooth_taps = int(smooth_taps)
        self.frames = 0         # headers that passed
        self.crc_failures = 0   # headers rejected (CRC, version, padding): their frames are dropped
        self.errors = 0         # frames this block failed on (logged): dropped like a failed header
        self.missing_cfo = 0    # headers that came without their "phy_cfo" tag (should not happen)
        self._rows, self._cfo = [], 0.0
        self.message_port_register_out(pmt.intern("header_data"))

    def work(self, input_items, output_items):
        # The demux sends exactly HEADER_LEN symbols per trigger and waits for this block's
        # answer before the next header, so counting symbols keeps the frames aligned.
        vectors = input_items[0]
        start = self.nitems_read(0)
        cfo_at = {t.offset - start: pmt.to_double(t.value)
                  for t in self.get_tags_in_window(0, 0, len(vectors), pmt.intern(CFO_TAG))}
        for i, v in enumerate(vectors):
            if not self._rows:
                if i not in cfo_at:
                    self.missing_cfo += 1
                    if self.missing_cfo == 1:
                        self.logger.warn("a header without its frequency-offset tag: corrected as 0 (counted in "
                                         "missing_cfo; logged once)")
                self._cfo = cfo_at.get(i, 0.0)
            self._rows.append(np.array(v))
            if len(self._rows) == HEADER_LEN:
                rows, self._rows = np.stack(self._rows), []
                try:
                    answer = self._frame(rows)
                except Exception as exc:   # never leave the demux waiting for an answer
                    self.errors += 1
                    self.logger.error(f"dropped a frame ({type(exc).__name__}: {exc})")
                    answer = pmt.PMT_F
                self.message_port_pub(pmt.intern("header_data"), answer)
        return len(vectors)

    def _frame(self, rows):
        lay = self.layout
        cfo = refined_cfo(rows, lay, self._cfo)
        Y = derotate_fft(rows, lay, cfo, 0)
        est = estimate_channel(Y[1], Y[2], lay, self.smooth_taps)
        try:
            header = decode_header(Y[PREAMBLE_SYMBOLS:], est, lay)
        except HeaderError as exc:
            self.crc_failures += 1
            if self.crc_failures == 1:
                self.logger.warn(f"dropped a frame: {exc} (counted in crc_failures; logged once)")
            return pmt.PMT_F
        self.frames += 1
        return pmt_dict({FRAME_LEN_TAG: lay.payload_symbols(header.k), "image_id": header.image_id,
                         "seq": header.seq, "scheme_id": header.scheme_id, "k": header.k,
                         "phy_noise_var": est.noise_var, "phy_error_var": est.error_var,
                         "cfo_rotation": est.rotation, "cfo": cfo, "phy_h": est.h})


class phy_deframer(gr.sync_block):
    """The numpy reference of phy_deframer_vc (phy_rx uses the C++ block). The payload's
    time-domain symbols (CP removed) with the header's tags on the first -> one PDU per
    frame."""

    def __init__(self, cp_len=16, tracking="linear"):
        self.layout = OfdmLayout(cp_len=int(cp_len))
        if tracking not in TRACKING:
            raise ValueError(f"tracking must be one of {TRACKING}, got {tracking!r}")
        gr.sync_block.__init__(self, name="phy_deframer",
                               in_sig=[(np.complex64, self.layout.fft_len)], out_sig=None)
        self.tracking = tracking
        self.frames = 0
        self.errors = 0
        self.last = None           # the last PayloadEstimate (for displays and tests)
        self.estimates = collections.deque(maxlen=100_000)   # (snr_db, sinr_db) per frame delivered
        self.lost = 0              # frames known lost: gaps in the sequence numbers of delivered frames
        self.resyncs = 0           # jumps in the sequence numbers larger than MAX_GAP
        self._last_seq = None
        self._tags, self._rows, self._need = None, [], 0
        for port in ("pdus", "lost") + DISPLAY_PORTS:
            self.message_port_register_out(pmt.intern(port))

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
            self._rows.append(np.array(v))
            if len(self._rows) == self._need:
                rows, frame_tags = np.stack(self._rows), self._tags
                self._tags, self._rows = None, []
                try:
                    self._frame(rows, frame_tags)
                except Exception as exc:
                    self.errors += 1
                    self.logger.error(f"dropped a frame ({type(exc).__name__}: {exc})")
        return len(vectors)

    def _frame(self, rows, tags):
        value = lambda key: pmt.to_python(tags[key])
        h = np.asarray(pmt.c32vector_elements(tags["phy_h"]), np.complex128)
        est = ChannelEstimate(h=h, noise_var=value("phy_noise_var"), rotation=value("cfo_rotation"),
                              error_var=value("phy_error_var"))
        k = int(value("k"))
        self._count_gap(int(value("seq")))
        Y = derotate_fft(rows, self.layout, value("cfo"), HEADER_LEN)
        p = payload_estimate(Y, est, self.layout, k, self.tracking)
        self.last = p
        self.estimates.append((p.snr_db, p.sinr_db))
        w = mmse_weights(torch.from_numpy(p.h), 1.0, p.noise_var).numpy().astype(np.complex64)
        meta = pmt_dict({"image_id": int(value("image_id")), "seq": int(value("seq")),
                         "scheme_id": int(value("scheme_id")), "k": k, "snr_db": p.snr_db, "sinr_db": p.sinr_db,
                         "noise_var": p.noise_var, "interference_power": p.interference_power,
                         "cfo": value("cfo"), "cfo_rotation": est.rotation, "csi": "estimated", "w": w, "h": p.h})
        self.frames += 1
        self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, (w * p.y).astype(np.complex64)))
        # for displays: the payload before equalization, |h| across the band, the estimates
        ids = pmt_dict({"image_id": int(value("image_id"))})
        self.message_port_pub(pmt.intern("payload"), make_pdu(ids, p.y))
        band = np.abs(np.fft.fftshift(h)) / np.sqrt(max(p.gain, 1e-30))
        self.message_port_pub(pmt.intern("channel"), make_pdu(ids, band.astype(np.float32)))
        self.message_port_pub(pmt.intern("estimates"), make_pdu(ids, np.array([p.snr_db, p.sinr_db], np.float32)))


    def _count_gap(self, seq):
        """Frames between the last delivered one and this were lost (undetected, a failed
        header or payload): one "lost" message each, so a source paced by acknowledgements
        does not wait for them."""
        if self._last_seq is not None:
            gap = (seq - self._last_seq - 1) % SEQ_MODULO
            if gap > MAX_GAP:
                self.resyncs += 1
                if self.resyncs == 1:
                    self.logger.info(f"sequence jumped from {self._last_seq} to {seq}: a new transmission, not "
                                     "counted as lost frames (counted in resyncs; logged once)")
            else:
                lost = pmt.intern("lost")
                for _ in range(gap):
                    self.message_port_pub(lost, pmt.PMT_T)
                self.lost += gap
        self._last_seq = seq


class phy_rx(gr.hier_block2):
    """Stream in: complex baseband. Message out "pdus": one per frame whose header passed
    (see the module's docstring); "payload", "channel", "estimates" for displays
    (DISPLAY_PORTS); "lost": one message per frame known lost (a gap in the sequence numbers:
    connect it to an image source's "ack" beside the sink's, so lost frames do not stall its
    pacing). Counters: frames, crc_failures, lost, errors."""

    def __init__(self, cp_len=16, smooth_taps=17, tracking="linear", threshold=0.3):
        gr.hier_block2.__init__(self, "phy_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        if not 0 < float(threshold) < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        for port in ("pdus", "lost") + DISPLAY_PORTS:
            self.message_port_register_hier_out(port)
        lay = self.layout = OfdmLayout(cp_len=int(cp_len))
        smooth_taps = check_smooth_taps(smooth_taps, lay)
        if tracking not in TRACKING:
            raise ValueError(f"tracking must be one of {TRACKING}, got {tracking!r}")
        self.deframer = semcom_python.phy_deframer_vc(lay.cp_len, tracking, MAX_GAP)
        self.sync = digital.ofdm_sync_sc_cfb(lay.fft_len, lay.cp_len, False, float(threshold))
        # One symbol (the stock alignment) less TIMING_OFFSET: the windows start that much later.
        self.delay = blocks.delay(gr.sizeof_gr_complex, lay.symbol_len - TIMING_OFFSET)
        self.tagger = semcom_python.phy_sync_tagger_cc()
        self.demux = semcom_python.phy_frame_demux_cvc(lay.cp_len, smooth_taps, True)   # fine timing on
        self.connect(self, self.sync)
        self.connect(self, self.delay, (self.tagger, 0))
        self.connect((self.sync, 0), (self.tagger, 1))
        self.connect((self.sync, 1), (self.tagger, 2))
        self.connect(self.tagger, self.demux, self.deframer)
        for port in ("pdus", "lost") + DISPLAY_PORTS:
            self.msg_connect(self.deframer, port, self, port)

    @property
    def frames(self):
        return self.deframer.frames()

    @property
    def crc_failures(self):
        return self.demux.crc_failures()

    @property
    def errors(self):
        return self.demux.errors() + self.deframer.errors()

    @property
    def lost(self):
        return self.deframer.lost()

    @property
    def resyncs(self):
        return self.deframer.resyncs()

    @property
    def estimates(self):
        """(snr_db, sinr_db) of each frame delivered (the last 100000)."""
        return self.deframer.estimates()
