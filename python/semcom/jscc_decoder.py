"""jscc_decoder: latent PDU (float32, length 2k) -> image PDU (uint8)."""

import numpy as np

from .neural_block import neural_pdu_block
from .pdu_util import image_pdu, split_pdu


class jscc_decoder(neural_pdu_block):
    """Decodes received latents (power-normalised symbol domain, [Re z; Im z]) with a
    shipped JSCC model told the SNR. Runs in the inference backend on a worker thread."""

    def __init__(self, model="jscc_user_awgn_k512", snr_db=10.0, server="", device="", max_batch=16):
        neural_pdu_block.__init__(self, "jscc_decoder", model, snr_db, server, device, max_batch)

    def prepare(self, msg):
        parts = split_pdu(msg, "f32", self.logger)
        if parts is None:
            return None
        meta, latent = parts
        if latent.size != 2 * self.info["k"]:
            self.logger.error(f"dropped a latent of length {latent.size}: model {self.model} "
                              f"decodes {2 * self.info['k']}")
            return None
        return meta, latent

    def run_batch(self, latents):
        return list(self.backend.decode(self.model, np.stack(latents), self.snr_db))

    def to_pdu(self, meta, image):
        return image_pdu(meta, image)
