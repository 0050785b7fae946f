"""digital_transmitter (hier): the digital baseline's transmitter with its LDPC code in stock gr-fec.

    "images" -> digital_framer --one PDU per codeword (information bits)--> fec.async_encoder
             (one per code rate: ldpc_par_mtrx_encoder on the shipped alist) -> digital_mapper
             -> "symbols"

The same symbols as the `digital` scheme's transmitter (schemes/digital.py), bit for bit: the
steps around the code are digital/chain.py's, and gr-fec's encoder gives the codewords
ldpc.encode gives. The PDU conventions are scheme_transmitter's ("scheme", "cbr", "snr_db",
"n_symbols", "side_info" {"mcs": ...}).

Ordering: async_encoder keeps a PDU's metadata dict (and adds nothing); each of its instances
handles its messages one at a time in arrival order. The codewords are gathered by the
frame number and codeword index the framer writes into that metadata, so nothing depends on
how the per-rate paths interleave.
"""

import math
from collections import OrderedDict

import numpy as np
import pmt
from gnuradio import fec, gr

from .core.channel import CHANNEL_TYPES, parse_db
from .digital import chain, codec, ldpc, mcs
from .pdu_util import drops_on_error, make_pdu, meta_get, split_image_pdu

# One message port (and one gr-fec encoder / decoder) per shipped code rate.
RATE_PORTS = {rate: "cw_" + rate.replace("/", "_") for rate in ldpc.CODES}
DIRECT_PORT = "direct"     # frames with no codeword (the adaptive MCS found none): past the code
MCS_NAMES = tuple(m.name for m in mcs.MCS)
# Metadata keys the blocks add to each codeword PDU and remove again (gr-fec's decoder adds
# "iterations").
FRAME_KEYS = ("frame_seq", "codeword", "codewords", "ldpc_rate")


def publish_codewords(block, meta, rate, rows, to_vector):
    """Post one PDU per codeword row on the port of its code rate, each with the frame's
    metadata plus "codewords", "ldpc_rate" and its "codeword" index (FRAME_KEYS); `to_vector`
    makes the PDU's vector of a row (pmt.init_u8vector for bits, pmt.init_f32vector for soft values)."""
    meta = pmt.dict_add(meta, pmt.intern("codewords"), pmt.from_long(len(rows)))
    meta = pmt.dict_add(meta, pmt.intern("ldpc_rate"), pmt.intern(rate))
    port = pmt.intern(RATE_PORTS[rate])
    for index, row in enumerate(rows):
        cw_meta = pmt.dict_add(meta, pmt.intern("codeword"), pmt.from_long(index))
        block.message_port_pub(port, pmt.cons(cw_meta, to_vector(row.size, row)))


def check_mcs(name, k):
    """"adaptive" or a fixed MCS name that carries at least one codeword in k symbols."""
    return name if name == "adaptive" else mcs.fixed(name, k).name


def frame_layout(meta):
    """(Mcs, Layout) of a frame from its metadata (side_info's "mcs", "n_symbols"); (None, None)
    for a frame sent without a code ("mcs": "none")."""
    side = meta_get(meta, "side_info", {})
    name = side.get("mcs") if isinstance(side, dict) else None
    if name == "none":
        return None, None
    chosen = mcs.get(name)
    return chosen, mcs.layout(chosen, int(meta_get(meta, "n_symbols")))


class CodewordCollector:
    """Gathers each frame's codeword PDUs (metadata "frame_seq", "codeword" i of "codewords",
    "ldpc_rate"). One gr-fec block per rate handles its PDUs in order, so once a later frame
    of a rate is complete, an earlier one of that rate still missing codewords never will be:
    it is handed back as stale (not kept forever, not blocking the others)."""

    def __init__(self):
        self._pending = {}   # rate -> OrderedDict frame_seq -> (meta, [array or None])

    def add(self, meta, array):
        """([(meta, [arrays]) of frames now complete], [(meta, codewords present) of stale frames])."""
        seq, count = int(meta_get(meta, "frame_seq")), int(meta_get(meta, "codewords"))
        if count == 0:   # a frame without codewords (DIRECT_PORT) is complete at once
            return [(meta, [])], []
        rate = meta_get(meta, "ldpc_rate")
        index = int(meta_get(meta, "codeword"))
        pending = self._pending.setdefault(rate, OrderedDict())
        entry = pending.setdefault(seq, (meta, [None] * count))
        entry[1][index] = array
        if any(a is None for a in entry[1]):
            return [], []
        del pending[seq]
        stale = [(m, sum(a is not None for a in parts)) for s, (m, parts) in pending.items() if s < seq]
        for s in [s for s in pending if s < seq]:
            del pending[s]
        return [entry], stale

    def __len__(self):
        return sum(len(p) for p in self._pending.values())


def strip_frame_keys(meta):
    for key in FRAME_KEYS + ("iterations",):
        meta = pmt.dict_delete(meta, pmt.intern(key))
    return meta


class digital_framer(gr.basic_block):
    """Image PDU (uint8) -> codec at the MCS's byte budget, length + CRC-32 framing
    (digital/chain.frame_info) -> one u8 PDU per LDPC codeword (its information bits, one bit a
    byte) on the port of its code rate (RATE_PORTS), for a stock fec.async_encoder. Metadata:
    the image's, plus scheme_transmitter's keys and the frame keys (FRAME_KEYS). A frame with
    no MCS (adaptive, SNR below every threshold) goes out on "direct" with no codeword.
    `mcs`: "adaptive" (the best MCS for `snr_db` on `channel_type`, digital/mcs.py; give the
    SINR where there is interference) or a fixed name."""

    def __init__(self, codec_name="auto", mcs_name="adaptive", k=512, snr_db=10.0, channel_type="awgn"):
        if codec_name not in codec.CHOICES:
            raise ValueError(f"codec must be one of {codec.CHOICES}, got {codec_name!r}")
        if int(k) != k or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k}")
        if channel_type not in CHANNEL_TYPES:
            raise ValueError(f"channel_type must be one of {CHANNEL_TYPES}, got {channel_type!r}")
        self.k = int(k)
        self.mcs = check_mcs(mcs_name, self.k)
        self.snr_db = parse_db(snr_db)
        gr.basic_block.__init__(self, name="digital_framer", in_sig=None, out_sig=None)
        self.codec, self.channel_type = codec_name, channel_type
        self._seq = 0
        self.message_port_register_in(pmt.intern("pdus"))
        for port in list(RATE_PORTS.values()) + [DIRECT_PORT]:
            self.message_port_register_out(pmt.intern(port))
        self.set_msg_handler(pmt.intern("pdus"), self.handle_pdu)

    def set_snr_db(self, snr_db):
        """Never raises (GUI callbacks): a value that is no dB is logged and ignored."""
        try:
            self.snr_db = parse_db(snr_db)
        except ValueError as exc:
            self.logger.error(f"SNR ignored: {exc}")

    def set_mcs(self, name):
        """Never raises: an unknown MCS, or one without a codeword in k symbols, is logged and ignored."""
        try:
            self.mcs = check_mcs(name, self.k)
        except ValueError as exc:
            self.logger.error(f"MCS ignored: {exc}")

    def chosen(self):
        """The MCS the next image goes with (None: adaptive found none; nothing is sent)."""
        if self.mcs == "adaptive":
            return mcs.adaptive(self.snr_db, self.channel_type, self.k)
        return mcs.get(self.mcs)

    @drops_on_error
    def handle_pdu(self, msg):
        parts = split_image_pdu(msg, self.logger)
        if parts is None:
            return
        meta, image = parts
        chosen, snr = self.chosen(), self.snr_db
        self._seq += 1
        info, used = chain.frame_info(image, self.codec, mcs.layout(chosen, self.k)) if chosen else (None, None)
        side = {"mcs": chosen.name if chosen else "none", **({"codec": used} if used else {})}
        added = (("scheme", pmt.intern("digital")), ("model", pmt.intern("")),
                 ("cbr", pmt.from_double(self.k / image.size)), ("snr_db", pmt.from_double(snr)),
                 ("n_symbols", pmt.from_long(self.k)), ("side_info", pmt.to_pmt(side)),
                 ("frame_seq", pmt.from_long(self._seq)))
        for key, value in added:
            meta = pmt.dict_add(meta, pmt.intern(key), value)
        if chosen is None:
            meta = pmt.dict_add(meta, pmt.intern("codewords"), pmt.from_long(0))
            self.message_port_pub(pmt.intern(DIRECT_PORT), pmt.cons(meta, pmt.make_u8vector(0, 0)))
            return
        publish_codewords(self, meta, chosen.rate, info, pmt.init_u8vector)


class digital_mapper(gr.basic_block):
    """Coded bits (u8 PDUs of n bits, one per codeword, from the async encoders; or a frame with
    no codeword) -> one complex symbol PDU per image: codewords zero-filled, scrambled, Gray
    QAM, mean power `power` (digital/chain.codeword_symbols); k zeros for a frame with no MCS."""

    def __init__(self, power=1.0):
        if not (float(power) > 0 and math.isfinite(float(power))):
            raise ValueError(f"power must be finite and > 0, got {power}")
        gr.basic_block.__init__(self, name="digital_mapper", in_sig=None, out_sig=None)
        self.power = float(power)
        self.collector = CodewordCollector()
        self.stale = 0   # frames given up because a codeword never came back
        self.message_port_register_in(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("pdus"))
        self.set_msg_handler(pmt.intern("pdus"), self.handle_pdu)

    @drops_on_error
    def handle_pdu(self, msg):
        meta, bits = pmt.car(msg), np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), np.uint8)
        done, stale = self.collector.add(meta, bits)
        for old, present in stale:
            self.stale += 1
            self.logger.error(f"dropped image {meta_get(old, 'image_id')}: {present} of "
                              f"{meta_get(old, 'codewords')} codewords came back from the encoder")
        for frame_meta, codewords in done:
            chosen, layout = frame_layout(frame_meta)
            if chosen is None:
                symbols = np.zeros(int(meta_get(frame_meta, "n_symbols")), np.complex64)
            else:
                symbols = chain.codeword_symbols(np.stack(codewords), layout, chosen.order, self.power).numpy()
            self.message_port_pub(pmt.intern("pdus"), make_pdu(strip_frame_keys(frame_meta), symbols))


class digital_transmitter(gr.hier_block2):
    """Message in "images" (uint8 image PDUs); message out "symbols": k complex symbols per
    image, the `digital` scheme's transmitter with gr-fec's LDPC encoders (`fec_encoders`: the
    ldpc_par_mtrx_encoder objects by rate; `encoders`: their async_encoder blocks).
    `mcs` "adaptive" picks by `snr_db` (set_snr_db, set_mcs at run time)."""

    def __init__(self, codec="auto", mcs="adaptive", k=512, snr_db=10.0, channel_type="awgn", power=1.0):
        self.framer = digital_framer(codec, mcs, k, snr_db, channel_type)
        self.mapper = digital_mapper(power)
        gr.hier_block2.__init__(self, "digital_transmitter", gr.io_signature(0, 0, 0), gr.io_signature(0, 0, 0))
        self.message_port_register_hier_in("images")
        self.message_port_register_hier_out("symbols")
        self.H, self.fec_encoders, self.encoders = {}, {}, {}
        for rate, port in RATE_PORTS.items():
            code = ldpc.load_code(rate)
            # gr-fec's Richardson-Urbanke encoder on the alist's H (its gap in the file name)
            self.H[rate] = fec.ldpc_H_matrix(str(code.path), code.gap)
            self.fec_encoders[rate] = fec.ldpc_par_mtrx_encoder.make_H(self.H[rate])
            self.encoders[rate] = fec.async_encoder(self.fec_encoders[rate], False, True, True, 1500)
            self.msg_connect(self.framer, port, self.encoders[rate], "in")
            self.msg_connect(self.encoders[rate], "out", self.mapper, "pdus")
        self.msg_connect(self, "images", self.framer, "pdus")
        self.msg_connect(self.framer, DIRECT_PORT, self.mapper, "pdus")
        self.msg_connect(self.mapper, "pdus", self, "symbols")

    def set_snr_db(self, snr_db):
        self.framer.set_snr_db(snr_db)

    def set_mcs(self, mcs):
        self.framer.set_mcs(mcs)
