"""equalized_to_pdu (hier): the equalizer's streams zhat, w and h -> one PDU per packet, the
equalized symbols with the receiver's side information in the metadata.

What a diffusion receiver (icdm_canceller) needs besides zhat: the per-symbol MMSE weights
w, the CSI h, and the operating point. Three stock tagged_stream_to_pdu blocks cut the
streams at their "packet_len" tags; csi_pdu_merge joins their PDUs by image_id.
"""

from collections import OrderedDict

import numpy as np
import pmt
from gnuradio import gr, pdu

from .core.channel import link_powers
from .pdu_util import OperatingPoint, drops_on_error, make_pdu, meta_get, split_pdu


class csi_pdu_merge(gr.basic_block):
    """PDUs on "zhat", "w", "h" with the same image_id -> one PDU: zhat, with metadata
    "w" and "h" (c32 vectors), "snr_db" and "sinr_db" added (the SINR in use: at run time a
    SINR above the SNR is used as SINR = SNR, as the channel does). Packets missing a part
    are dropped once more than `max_pending` packets wait (logged)."""

    PORTS = ("zhat", "w", "h")

    def __init__(self, snr_db=10.0, sinr_db=float("inf"), max_pending=64):
        if int(max_pending) < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        link_powers(snr_db, sinr_db)  # OperatingPoint's check, before the C++ block exists
        gr.basic_block.__init__(self, name="csi_pdu_merge", in_sig=None, out_sig=None)
        self.point = OperatingPoint(snr_db, sinr_db, self.logger)
        self.max_pending = int(max_pending)
        self._pending = OrderedDict()  # image_id -> {port: (meta, array)}
        self.dropped = 0
        for port in self.PORTS:
            self.message_port_register_in(pmt.intern(port))
        self.message_port_register_out(pmt.intern("pdus"))
        # set_msg_handler keys on the handler's __name__, so one named method per port
        self.set_msg_handler(pmt.intern("zhat"), self.handle_zhat)
        self.set_msg_handler(pmt.intern("w"), self.handle_w)
        self.set_msg_handler(pmt.intern("h"), self.handle_h)

    @property
    def snr_db(self):
        return self.point.snr_db

    @property
    def sinr_db(self):
        """The SINR in use."""
        return self.point.sinr_db

    def set_snr_db(self, snr_db):
        self.point.set(snr_db=snr_db)

    def set_sinr_db(self, sinr_db):
        self.point.set(sinr_db=sinr_db)

    def set_operating_point(self, snr_db=None, sinr_db=None):
        self.point.set(snr_db, sinr_db)

    @drops_on_error
    def handle_zhat(self, msg):
        self._add("zhat", msg)

    @drops_on_error
    def handle_w(self, msg):
        self._add("w", msg)

    @drops_on_error
    def handle_h(self, msg):
        self._add("h", msg)

    def _add(self, port, msg):
        parts = split_pdu(msg, "c32", self.logger)
        if parts is None:
            return
        image_id = meta_get(parts[0], "image_id")
        if not isinstance(image_id, int):
            self.logger.error(f"dropped a {port} PDU without an integer image_id")
            return
        entry = self._pending.setdefault(image_id, {})
        entry[port] = parts
        if len(entry) == len(self.PORTS):
            del self._pending[image_id]
            self._emit(entry)
        while len(self._pending) > self.max_pending:
            lost, entry = self._pending.popitem(last=False)
            self.dropped += 1
            self.logger.error(f"dropped image {lost}: only {', '.join(sorted(entry))} of zhat, w, h arrived")

    def _emit(self, entry):
        meta, zhat = entry["zhat"]
        w, h = entry["w"][1], entry["h"][1]
        if not zhat.size == w.size == h.size:
            self.logger.error(f"dropped a packet whose zhat, w, h lengths differ ({zhat.size}, {w.size}, {h.size})")
            self.dropped += 1
            return
        for key, vec in (("w", w), ("h", h)):
            meta = pmt.dict_add(meta, pmt.intern(key), pmt.init_c32vector(vec.size, np.ascontiguousarray(vec)))
        for key, value in (("snr_db", self.snr_db), ("sinr_db", self.sinr_db)):
            meta = pmt.dict_add(meta, pmt.intern(key), pmt.from_double(value))
        self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, zhat))


class equalized_to_pdu(gr.hier_block2):
    """Streams in: 0 = equalized symbols zhat, 1 = MMSE weights w, 2 = CSI h, each with
    "packet_len" (and image_id) tags; message out "pdus" (see csi_pdu_merge)."""

    def __init__(self, snr_db=10.0, sinr_db=float("inf"), len_tag="packet_len"):
        gr.hier_block2.__init__(self, "equalized_to_pdu", gr.io_signature(3, 3, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        self.message_port_register_hier_out("pdus")
        self.merge = csi_pdu_merge(snr_db, sinr_db)
        self.to_pdu = [pdu.tagged_stream_to_pdu(gr.types.complex_t, len_tag) for _ in range(3)]
        for port, (block, name) in enumerate(zip(self.to_pdu, csi_pdu_merge.PORTS)):
            self.connect((self, port), block)
            self.msg_connect(block, "pdus", self.merge, name)
        self.msg_connect(self.merge, "pdus", self, "pdus")

    def set_snr_db(self, snr_db):
        self.merge.set_snr_db(snr_db)

    def set_sinr_db(self, sinr_db):
        self.merge.set_sinr_db(sinr_db)

    def set_operating_point(self, snr_db=None, sinr_db=None):
        self.merge.set_operating_point(snr_db, sinr_db)
