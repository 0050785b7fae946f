"""jscc_encoder: image PDU (uint8) -> latent PDU (float32, length 2k)."""

import numpy as np
import pmt

from .neural_block import neural_pdu_block
from .pdu_util import make_pdu, split_image_pdu


class jscc_encoder(neural_pdu_block):
    """Encodes each image with a shipped JSCC model told the SNR (ADJSCC-style).

    The network runs in the inference backend (`server` empty = in-process) on a worker
    thread, up to `max_batch` images at a time. Adds "model", "cbr" and "snr_db" to the
    metadata. Images of the wrong size are dropped with one log line.
    """

    def __init__(self, model="jscc_user_awgn_k512", snr_db=10.0, server="", device="", max_batch=16):
        neural_pdu_block.__init__(self, "jscc_encoder", model, snr_db, server, device, max_batch)

    def prepare(self, msg):
        parts = split_image_pdu(msg, self.logger)
        if parts is None:
            return None
        meta, image = parts
        if image.shape != tuple(self.info["image_shape"]):
            self.logger.error(f"dropped an image of shape {image.shape}: model {self.model} "
                              f"takes {tuple(self.info['image_shape'])}")
            return None
        meta = pmt.dict_add(meta, pmt.intern("model"), pmt.intern(self.model))
        meta = pmt.dict_add(meta, pmt.intern("cbr"), pmt.from_double(self.info["cbr"]))
        meta = pmt.dict_add(meta, pmt.intern("snr_db"), pmt.from_double(self.snr_db))
        return meta, image

    def run_batch(self, images):
        return list(self.backend.encode(self.model, np.stack(images), self.snr_db))

    def to_pdu(self, meta, latent):
        return make_pdu(meta, latent)
