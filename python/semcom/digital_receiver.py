"""digital_receiver (hier): the digital baseline's receiver with its LDPC decoding in stock gr-fec.

    "pdus" (equalized_to_pdu's) -> digital_demapper --one soft PDU per codeword--> fec.async_decoder
          (one per code rate: ldpc_decoder, sum-product, on the shipped alist) -> digital_deframer
          -> "images"

The LLRs are the `digital` scheme's (digital/chain.symbol_llrs, frame.descramble_llr); only the
decoder differs: gr-fec's sum-product instead of our min-sum (schemes/digital.py), so images
agree wherever both decoders find the codeword. gr-fec's decoder reports no syndrome check: the
frame's CRC-32 decides what is delivered.

What gr-fec 3.10.5 does here (read from its sources, checked by tests/test_digital_blocks.py):
async_decoder keeps the input PDU's metadata and adds "iterations"; it handles its PDUs one at a
time in arrival order; ldpc_decoder outputs the k information bits of each codeword (cldpc's
systematic positions: the last k, ldpc.info_positions, for the shipped codes), one bit a byte.
"""

import math

import numpy as np
import pmt
import torch
from gnuradio import fec, gr

from .core.channel import link_powers
from .digital import chain, frame, ldpc
from .digital_transmitter import (DIRECT_PORT, RATE_PORTS, CodewordCollector, frame_layout, publish_codewords,
                                  strip_frame_keys)
from .pdu_util import OperatingPoint, drops_on_error, image_pdu, meta_get, split_pdu


class digital_demapper(gr.basic_block):
    """Equalized PDU (complex zhat of k symbols, metadata "w" and "h" c32 vectors, optionally
    "snr_db"/"sinr_db", else this block's; "side_info" {"mcs": ...} from the transmitter)
    -> max-log LLRs, descrambled -> one f32 PDU per codeword in gr-fec's soft convention
    (chain.gr_fec_soft with sigma GR_FEC_SIGMA) on the port of its code rate. A frame sent
    without a code, or whose MCS is not known, goes to "direct" with no codeword (it is lost)."""

    def __init__(self, k=512, signal_power=1.0, snr_db=10.0, sinr_db=math.inf):
        if int(k) != k or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k}")
        link_powers(snr_db, sinr_db, signal_power)   # OperatingPoint's checks, before the C++ block
        gr.basic_block.__init__(self, name="digital_demapper", in_sig=None, out_sig=None)
        self.k, self.signal_power = int(k), float(signal_power)
        self.point = OperatingPoint(snr_db, sinr_db, self.logger)
        self._seq = 0
        self.message_port_register_in(pmt.intern("pdus"))
        for port in list(RATE_PORTS.values()) + [DIRECT_PORT]:
            self.message_port_register_out(pmt.intern(port))
        self.set_msg_handler(pmt.intern("pdus"), self.handle_pdu)

    def set_operating_point(self, snr_db=None, sinr_db=None):
        self.point.set(snr_db, sinr_db)

    @drops_on_error
    def handle_pdu(self, msg):
        parts = split_pdu(msg, "c32", self.logger)
        if parts is None:
            return
        meta, zhat = parts
        if zhat.size != self.k:
            self.logger.error(f"dropped a PDU of {zhat.size} symbols: this receiver takes k = {self.k}")
            return
        w, h = (pmt.dict_ref(meta, pmt.intern(key), pmt.PMT_NIL) for key in ("w", "h"))
        if not all(pmt.is_c32vector(v) and pmt.length(v) == zhat.size for v in (w, h)):
            self.logger.error("dropped a PDU without 'w' and 'h' metadata (c32 vectors of its length; "
                              "use equalized_to_pdu)")
            return
        w, h = (torch.from_numpy(np.asarray(pmt.c32vector_elements(v), np.complex64)) for v in (w, h))
        snr = meta_get(meta, "snr_db", self.point.snr_db)
        sinr = meta_get(meta, "sinr_db", self.point.sinr_db)
        powers = link_powers(float(snr), float(sinr), self.signal_power)
        meta = pmt.dict_delete(pmt.dict_delete(meta, pmt.intern("w")), pmt.intern("h"))
        self._seq += 1
        meta = pmt.dict_add(meta, pmt.intern("frame_seq"), pmt.from_long(self._seq))
        meta = pmt.dict_add(meta, pmt.intern("n_symbols"), pmt.from_long(self.k))
        try:
            chosen, layout = frame_layout(meta)
        except (ValueError, TypeError, AttributeError):
            self.logger.error(f"image {meta_get(meta, 'image_id')}: no usable MCS in its side information "
                              f"({meta_get(meta, 'side_info')!r}); counted lost")
            chosen = None
        if chosen is None:
            meta = pmt.dict_add(meta, pmt.intern("codewords"), pmt.from_long(0))
            self.message_port_pub(pmt.intern(DIRECT_PORT), pmt.cons(meta, pmt.make_u8vector(0, 0)))
            return
        llr = chain.symbol_llrs(torch.from_numpy(zhat), w, h, powers, chosen.order)
        soft = chain.gr_fec_soft(frame.descramble_llr(llr, layout))
        publish_codewords(self, meta, chosen.rate, soft, pmt.init_f32vector)


class digital_deframer(gr.basic_block):
    """Decoded information bits (u8 PDUs of the code's k bits, one per codeword, from the async
    decoders; or a frame with no codeword) -> CRC-32 (frame.unpack) -> codec -> one image PDU
    per frame on "images", metadata "lost" False; a lost frame (CRC, codec, no MCS, or
    codewords that never all came back) gives the dataset's mean image with "lost" True.
    "ldpc_iterations": the mean of gr-fec's iterations over the frame's codewords."""

    def __init__(self, codec_name="auto", image_shape=(32, 32, 3)):
        from .digital import codec
        if codec_name not in codec.CHOICES:
            raise ValueError(f"codec must be one of {codec.CHOICES}, got {codec_name!r}")
        shape = tuple(int(v) for v in image_shape)
        if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
            raise ValueError(f"image_shape must be (height, width, 1 or 3), got {image_shape}")
        gr.basic_block.__init__(self, name="digital_deframer", in_sig=None, out_sig=None)
        self.codec, self.shape, self.mean = codec_name, shape, chain.dataset_mean(shape)
        self.collector = CodewordCollector()
        self.delivered = self.lost = self.incomplete = 0
        self.message_port_register_in(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("images"))
        self.set_msg_handler(pmt.intern("pdus"), self.handle_pdu)

    @property
    def success_rate(self):
        """Images delivered / images out (None before the first)."""
        total = self.delivered + self.lost
        return self.delivered / total if total else None

    @drops_on_error
    def handle_pdu(self, msg):
        meta, bits = pmt.car(msg), np.asarray(pmt.u8vector_elements(pmt.cdr(msg)), np.uint8)
        done, stale = self.collector.add(meta, (bits, meta_get(meta, "iterations")))
        for old, present in stale:
            self.incomplete += 1
            self.logger.error(f"image {meta_get(old, 'image_id')}: {present} of {meta_get(old, 'codewords')} "
                              "codewords came back from the decoder; counted lost")
            self._publish(old, None, [])
        for frame_meta, parts in done:
            chosen, layout = frame_layout(frame_meta) if parts else (None, None)
            image = None
            if chosen is not None:
                payload = frame.unpack(np.stack([p[0] for p in parts]), layout)
                codec_name = chain.frame_codec(meta_get(frame_meta, "side_info", {}), self.codec)
                image = chain.decode_image(payload, codec_name, self.shape)
            self._publish(frame_meta, image, [p[1] for p in parts])

    def _publish(self, meta, image, iterations):
        lost = image is None
        self.lost += lost
        self.delivered += not lost
        meta = strip_frame_keys(meta)
        meta = pmt.dict_add(meta, pmt.intern("lost"), pmt.from_bool(lost))
        iterations = [float(i) for i in iterations if isinstance(i, (int, float)) and i >= 0]   # a float in gr-fec
        if iterations:
            meta = pmt.dict_add(meta, pmt.intern("ldpc_iterations"), pmt.from_double(float(np.mean(iterations))))
        self.message_port_pub(pmt.intern("images"), image_pdu(meta, self.mean if lost else image))


class digital_receiver(gr.hier_block2):
    """Message in "pdus": equalized PDUs as equalized_to_pdu (or phy_rx) makes them; message out
    "images": one image PDU per frame (metadata "lost"). The `digital` scheme's receiver with
    gr-fec's LDPC decoder (`fec_decoders`: the ldpc_decoder objects by rate, `iterations` at
    most; `decoders`: their async_decoder blocks). `image_shape`: what the codec decodes to
    (the scheme's model's; CIFAR-10 by default). success_rate: delivered / images out."""

    def __init__(self, codec="auto", k=512, iterations=50, snr_db=10.0, sinr_db=math.inf, signal_power=1.0,
                 image_shape=(32, 32, 3)):
        if int(iterations) != iterations or iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {iterations}")
        self.demapper = digital_demapper(k, signal_power, snr_db, sinr_db)
        self.deframer = digital_deframer(codec, image_shape)
        gr.hier_block2.__init__(self, "digital_receiver", gr.io_signature(0, 0, 0), gr.io_signature(0, 0, 0))
        self.message_port_register_hier_in("pdus")
        self.message_port_register_hier_out("images")
        self.fec_decoders, self.decoders = {}, {}
        for rate, port in RATE_PORTS.items():
            code = ldpc.load_code(rate)
            self.fec_decoders[rate] = fec.ldpc_decoder.make(str(code.path), chain.GR_FEC_SIGMA, int(iterations))
            self.decoders[rate] = fec.async_decoder(self.fec_decoders[rate], False, True, 1500)
            self.msg_connect(self.demapper, port, self.decoders[rate], "in")
            self.msg_connect(self.decoders[rate], "out", self.deframer, "pdus")
        self.msg_connect(self, "pdus", self.demapper, "pdus")
        self.msg_connect(self.demapper, DIRECT_PORT, self.deframer, "pdus")
        self.msg_connect(self.deframer, "images", self, "images")

    @property
    def success_rate(self):
        return self.deframer.success_rate

    @property
    def delivered(self):
        return self.deframer.delivered

    @property
    def lost(self):
        return self.deframer.lost

    def set_snr_db(self, snr_db):
        self.demapper.set_operating_point(snr_db=snr_db)

    def set_sinr_db(self, sinr_db):
        self.demapper.set_operating_point(sinr_db=sinr_db)

    def set_operating_point(self, snr_db=None, sinr_db=None):
        self.demapper.set_operating_point(snr_db, sinr_db)
