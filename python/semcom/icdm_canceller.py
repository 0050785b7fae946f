"""icdm_canceller: equalized-symbol PDU with side information -> clean-latent PDU, by one of
the diffusion receivers (default "icdm"; also "cddm" and the ICDM ablations).

The maths is in semcom.diffusion (icdm.py, cddm.py) and the glue in core/receivers.py; this
block only unpacks PDUs and runs the receiver in the inference backend on a worker thread.
"""

import math

import numpy as np
import pmt
import torch

from .core.channel import CHANNEL_TYPES, link_powers
from .core.mapping import complex_to_real
from .core.receivers import LinkContext, check_receiver, parse_options
from .neural_block import neural_pdu_block
from .pdu_util import OperatingPoint, make_pdu, meta_get, split_pdu


class icdm_canceller(neural_pdu_block):
    """In "pdus": complex zhat (k symbols) with metadata "w" and "h" (c32 vectors of k), and
    optionally "snr_db", "sinr_db" (else this block's values), as equalized_to_pdu makes
    them. Out "pdus": float32 latents [Re; Im] (2k) in the power-normalised domain, for the
    JSCC decoder; metadata kept, without w and h. `options` like "steps=20,zeta_x=1".
    The receiver's random draws are seeded by `seed` + the image_id of the batch's first
    packet: reproducible for the same batching."""

    def __init__(self, receiver="icdm", channel_type="awgn", k=512, snr_db=20.0, sinr_db=0.0,
                 signal_power=1.0, options="", seed=0, server="", device="", max_batch=16):
        if receiver == "mmse":
            raise ValueError("icdm_canceller runs a diffusion receiver; for 'mmse' connect the demapper directly")
        self.options = parse_options(options)
        rec = check_receiver(receiver, self.options)
        if channel_type not in CHANNEL_TYPES:
            raise ValueError(f"channel_type must be one of {CHANNEL_TYPES}, got {channel_type!r}")
        if not (signal_power > 0 and math.isfinite(signal_power)):
            raise ValueError(f"signal_power must be finite and > 0, got {signal_power}")
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        link_powers(float(snr_db), float(sinr_db), float(signal_power))  # validates the operating point
        if not server:  # in-process: a missing prior fails here, not at the first packet
            rec.check_priors(channel_type, int(k))
        neural_pdu_block.__init__(self, "icdm_canceller", "", snr_db, server, device, max_batch)
        self.receiver, self.channel_type, self.k = receiver, channel_type, int(k)
        self.signal_power, self.seed = float(signal_power), int(seed)
        self.point = OperatingPoint(snr_db, sinr_db, self.logger)
        self.sinr_db = self.point.sinr_db
        self.nfe = 0  # network evaluations per image: the most any batch has used (as run_link reports)

    def set_snr_db(self, snr_db):
        self.set_operating_point(snr_db=snr_db)

    def set_sinr_db(self, sinr_db):
        self.set_operating_point(sinr_db=sinr_db)

    def set_operating_point(self, snr_db=None, sinr_db=None):
        """SNR and/or SINR for PDUs without them; never raises (GUI callbacks): a SINR above the
        SNR is used as SINR = SNR, as the channel does (OperatingPoint)."""
        if self.point.set(snr_db, sinr_db):
            self.snr_db, self.sinr_db = self.point.snr_db, self.point.sinr_db

    def prepare(self, msg):
        parts = split_pdu(msg, "c32", self.logger)
        if parts is None:
            return None
        meta, zhat = parts
        if zhat.size != self.k:
            self.logger.error(f"dropped a PDU of {zhat.size} symbols: this canceller takes k = {self.k}")
            return None
        w, h = (pmt.dict_ref(meta, pmt.intern(key), pmt.PMT_NIL) for key in ("w", "h"))
        if not all(pmt.is_c32vector(v) and pmt.length(v) == zhat.size for v in (w, h)):
            self.logger.error("dropped a PDU without 'w' and 'h' metadata (c32 vectors of its length; "
                              "use equalized_to_pdu)")
            return None
        w, h = (np.asarray(pmt.c32vector_elements(v), np.complex64) for v in (w, h))
        snr, sinr = meta_get(meta, "snr_db", self.snr_db), meta_get(meta, "sinr_db", self.sinr_db)
        try:
            link_powers(float(snr), float(sinr), self.signal_power)
        except (TypeError, ValueError) as exc:
            self.logger.error(f"dropped a PDU with an unusable operating point ({exc})")
            return None
        meta = pmt.dict_delete(pmt.dict_delete(meta, pmt.intern("w")), pmt.intern("h"))
        image_id = meta_get(meta, "image_id", 0)
        key = (float(snr), float(sinr))
        return meta, (key, zhat, w, h, image_id if isinstance(image_id, int) else 0)

    def run_batch(self, items):
        """Items of one operating point go in one receiver call (in arrival order)."""
        out = [None] * len(items)
        for key in dict.fromkeys(k for k, *_ in items):
            idx = [n for n, (k, *_) in enumerate(items) if k == key]
            zhat = torch.from_numpy(np.stack([items[n][1] for n in idx]))
            ctx = LinkContext(w=torch.from_numpy(np.stack([items[n][2] for n in idx])),
                              h=torch.from_numpy(np.stack([items[n][3] for n in idx])),
                              powers=link_powers(key[0], key[1], self.signal_power),
                              snr_db=key[0], sinr_db=key[1], channel_type=self.channel_type,
                              options=self.options, seed=(self.seed + items[idx[0]][4]) % 2 ** 63)
            latents = self.backend.receive(self.receiver, complex_to_real(zhat).numpy(), ctx)
            self.nfe = max(self.nfe, ctx.nfe)
            for n, latent in zip(idx, latents):
                out[n] = latent
        return out

    def to_pdu(self, meta, latent):
        return make_pdu(meta, latent)
