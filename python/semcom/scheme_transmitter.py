"""scheme_transmitter (hier): image PDUs -> a scheme's transmitter -> tagged symbol stream.

scheme_encoder (the PDU block inside) runs the scheme's transmit in the inference backend on
a worker thread; the hier block turns its symbol PDUs into a stream with "packet_len" tags.
Generic over the scheme registry (semcom.schemes): no scheme is named here.
"""

import numpy as np
import pmt
from gnuradio import gr, pdu

from . import schemes
from .core.channel import CHANNEL_TYPES
from .neural_block import neural_pdu_block
from .pdu_util import groups, make_pdu, split_image_pdu


class scheme_encoder(neural_pdu_block):
    """Image PDU (uint8) -> the scheme's power-normalised complex symbols (c32, k per image),
    with "scheme", "model", "cbr" (k / source values), "snr_db" (the SNR it was sent at) and
    "n_symbols" added to the metadata (and the scheme's side information for that image
    under "side_info", if any). `model` empty: the scheme's default for the channel. An image
    of another shape than the model's is dropped with one log line; the others go on."""

    def __init__(self, scheme="mmse", model="", channel_type="awgn", snr_db=10.0, power=1.0, options="",
                 server="", device="", max_batch=16):
        self.options = schemes.parse_options(options)
        if channel_type not in CHANNEL_TYPES:
            raise ValueError(f"channel_type must be one of {CHANNEL_TYPES}, got {channel_type!r}")
        tx = schemes.check(scheme, self.options, channel_type)
        if tx.csit_needed(self.options, channel_type):
            raise ValueError(f"scheme {scheme!r} needs the channel at the transmitter with these options, which "
                             "this block does not take (jscna-ad: precoding=block and the jscna_precoder block)")
        if not (float(power) > 0 and np.isfinite(float(power))):
            raise ValueError(f"power must be finite and > 0, got {power}")
        model = model or tx.default_model(channel_type, None)
        check_checkpoints_up_front(tx, channel_type, None, model, server, device)
        neural_pdu_block.__init__(self, "scheme_encoder", model, snr_db, server, device, max_batch)
        self.scheme, self.channel_type, self.power = scheme, channel_type, float(power)
        self.cbr = None  # channel uses per source value of the last image sent

    def prepare(self, msg):
        parts = split_image_pdu(msg, self.logger)
        if parts is None:
            return None
        meta, image = parts
        if self.info is not None and image.shape != tuple(self.info["image_shape"]):
            self.logger.error(f"dropped an image of shape {image.shape}: model {self.model} "
                              f"takes {tuple(self.info['image_shape'])}")
            return None
        return meta, (image, self.snr_db)  # the SNR it is sent at, whatever a setter does meanwhile

    def run_batch(self, items):
        """Images of one SNR go in one transmit call (in arrival order)."""
        out = [None] * len(items)
        for snr, idx in groups(snr for _, snr in items).items():
            ctx = schemes.TxContext(snr, self.channel_type, self.model, self.power, options=self.options)
            sent = self.backend.transmit(self.scheme, np.stack([items[n][0] for n in idx]), ctx)
            symbols = sent.symbols.numpy()
            for j, n in enumerate(idx):
                out[n] = (symbols[j], items[n][0].size, snr, sent.side_info[j] if sent.side_info else None)
        return out

    def to_pdu(self, meta, result):
        symbols, source_values, snr, side_info = result
        self.cbr = symbols.size / source_values
        for key, value in (("scheme", pmt.intern(self.scheme)), ("model", pmt.intern(self.model)),
                           ("cbr", pmt.from_double(self.cbr)), ("snr_db", pmt.from_double(snr)),
                           ("n_symbols", pmt.from_long(symbols.size))):
            meta = pmt.dict_add(meta, pmt.intern(key), value)
        if side_info:
            meta = pmt.dict_add(meta, pmt.intern("side_info"), pmt.to_pmt(side_info))
        return make_pdu(meta, symbols)


def check_checkpoints_up_front(scheme, channel_type, k, model, server, device):
    """A scheme's checkpoints, checked when a block is made: in-process against the files (and
    the scheme's check_model on them), with a server against what its `info` lists (one
    CheckpointError naming every missing one)."""
    available = None
    if server:
        from .inference import get_backend
        available = get_backend(server, device).checkpoints()  # asked once per server and kept
    scheme.check_checkpoints(channel_type, k, model, available=available)
    if not server:
        scheme.check_model(channel_type, k, model)


class scheme_transmitter(gr.hier_block2):
    """Message in "images"; stream out: the scheme's complex symbols with "packet_len" (and
    the metadata) as tags at each image's first symbol; message out "symbols": the symbol
    PDUs (for latent metrics)."""

    def __init__(self, scheme="mmse", model="", channel_type="awgn", snr_db=10.0, power=1.0, options="",
                 server="", device=""):
        gr.hier_block2.__init__(self, "scheme_transmitter", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.message_port_register_hier_in("images")
        self.message_port_register_hier_out("symbols")
        # Python blocks are attributes so they live as long as the flowgraph.
        self.encoder = scheme_encoder(scheme, model, channel_type, snr_db, power, options, server, device)
        self.to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, "packet_len")
        self.msg_connect(self, "images", self.encoder, "pdus")
        self.msg_connect(self.encoder, "pdus", self.to_stream, "pdus")
        self.msg_connect(self.encoder, "pdus", self, "symbols")
        self.connect(self.to_stream, self)

    def set_snr_db(self, snr_db):
        self.encoder.set_snr_db(snr_db)
