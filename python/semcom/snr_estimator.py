"""The blind moment SNR estimator as blocks (the maths: diffusion/dnsc.py blind_noise_var).

Each image's block of k symbols was power-normalised at the transmitter (mean |z|^2 = P
exactly), so sigma^2 = mean |y|^2 - P mean |h|^2 per block needs no pilots; its variance is
(2 P sigma^2 + sigma^4) / k on AWGN. Anything else in y that is not the signal (an
interferer) is counted as noise: the estimate is an SINR.

snr_estimator_pdu: PDU in -> the same PDU out with "snr_est_db" and "noise_var_est" added (and,
    with set_snr, "sinr_db" set to the estimate, "snr_db" to the larger of the estimate and
    the PDU's own, "snr_source" = "estimated", so the receivers downstream use them). An equalized PDU (metadata "w" and "h", from equalized_to_pdu or
    phy_rx) is estimated on y = zhat / w with its h; a PDU without them on y itself (h = 1).
snr_estimator_cc: a complex stream passed through unchanged, with the tags "snr_est_db" and
    "noise_var_est" on the first sample of every block of `block_len` samples (h = 1).
"""

import math

import numpy as np
import pmt
import torch
from gnuradio import gr

from .diffusion.dnsc import blind_noise_var
from .pdu_util import drops_on_error, make_pdu, meta_get, split_pdu

SNR_TAG = "snr_est_db"
NOISE_TAG = "noise_var_est"


def estimate(y: np.ndarray, h: np.ndarray, power: float):
    """(noise variance, SNR in dB) of one block y = h z + n with mean|z|^2 = power."""
    var = float(blind_noise_var(torch.from_numpy(y[None]), torch.from_numpy(h[None]), power)[0])
    return var, 10 * math.log10(power / var)


def _check_power(power):
    power = float(power)
    if not (power > 0 and math.isfinite(power)):
        raise ValueError(f"power must be a finite number > 0, got {power}")
    return power


class snr_estimator_pdu(gr.basic_block):
    """PDU (complex64 symbols of one image) in -> the same PDU with the SNR estimate in its metadata."""

    def __init__(self, power=1.0, set_snr=True):
        gr.basic_block.__init__(self, name="snr_estimator_pdu", in_sig=None, out_sig=None)
        self.power, self.set_snr = _check_power(power), bool(set_snr)
        self.message_port_register_in(pmt.intern("pdus"))
        self.message_port_register_out(pmt.intern("pdus"))
        self.set_msg_handler(pmt.intern("pdus"), self.handle_pdu)

    @drops_on_error
    def handle_pdu(self, msg):
        parts = split_pdu(msg, "c32", self.logger)
        if parts is None:
            return
        meta, z = parts
        if z.size < 1 or not np.isfinite(z).all():
            self.logger.error("dropped an empty symbol PDU or one with NaN/inf symbols")
            return
        w, h = (pmt.dict_ref(meta, pmt.intern(key), pmt.PMT_NIL) for key in ("w", "h"))
        if pmt.is_c32vector(w) and pmt.is_c32vector(h):
            w, h = (np.asarray(pmt.c32vector_elements(v), np.complex64) for v in (w, h))
            if w.size != z.size or h.size != z.size:
                self.logger.error("dropped a PDU whose 'w'/'h' metadata is not of its length")
                return
            safe = np.where(w != 0, w, 1)
            y = np.where(w != 0, z / safe, 0).astype(np.complex64)
        else:   # the received symbols themselves, AWGN
            y, h = z, np.ones_like(z)
        var, snr_db = estimate(y, h, self.power)
        meta = pmt.dict_add(meta, pmt.intern(NOISE_TAG), pmt.from_double(var))
        meta = pmt.dict_add(meta, pmt.intern(SNR_TAG), pmt.from_double(snr_db))
        if self.set_snr:
            # The estimate counts an interferer as noise: it is the SINR. The SNR stays what the
            # PDU said where that is higher (SINR <= SNR), else becomes the estimate too.
            given = meta_get(meta, "snr_db", None)
            snr = max(float(given), snr_db) if isinstance(given, (int, float)) and math.isfinite(given) else snr_db
            meta = pmt.dict_add(meta, pmt.intern("snr_db"), pmt.from_double(snr))
            meta = pmt.dict_add(meta, pmt.intern("sinr_db"), pmt.from_double(snr_db))
            meta = pmt.dict_add(meta, pmt.intern("snr_source"), pmt.intern("estimated"))
        self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, z))


class snr_estimator_cc(gr.sync_block):
    """Complex stream through unchanged; tags "snr_est_db" and "noise_var_est" on the first
    sample of each block of block_len samples (blocks counted from the stream's start)."""

    def __init__(self, block_len=512, power=1.0):
        block_len = int(block_len)
        if block_len < 1:
            raise ValueError(f"block_len must be >= 1, got {block_len}")
        gr.sync_block.__init__(self, name="snr_estimator_cc", in_sig=[np.complex64], out_sig=[np.complex64])
        self.block_len, self.power = block_len, _check_power(power)
        self.set_output_multiple(block_len)   # whole blocks per call: each is estimated once
        self.set_tag_propagation_policy(gr.TPP_ONE_TO_ONE)

    def work(self, input_items, output_items):
        x = input_items[0]
        n = (len(x) // self.block_len) * self.block_len
        output_items[0][:n] = x[:n]
        start = self.nitems_written(0)
        for b in range(0, n, self.block_len):
            y = np.ascontiguousarray(x[b:b + self.block_len])
            var, snr_db = estimate(y, np.ones_like(y), self.power)
            self.add_item_tag(0, start + b, pmt.intern(SNR_TAG), pmt.from_double(snr_db))
            self.add_item_tag(0, start + b, pmt.intern(NOISE_TAG), pmt.from_double(var))
        return n
