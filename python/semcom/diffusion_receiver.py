"""diffusion_receiver: equalized-symbol PDU with side information -> the scheme's receiver ->
image PDUs (and latent PDUs when the scheme has latents).

Generic over the scheme registry (semcom.schemes): "icdm" by default; "cddm", the ICDM
ablations, "mmse", "lmmse" and every scheme added later run here unchanged, because every
receiver takes the same schemes.Observation. The maths is in semcom.schemes and
semcom.diffusion; this block only unpacks PDUs and runs the scheme in the inference backend
on a worker thread. icdm_canceller is the same block under its earlier name.
"""

import math

import numpy as np
import pmt
import torch

from . import schemes
from .core.channel import CHANNEL_TYPES, check_coherence, link_powers
from .neural_block import neural_pdu_block
from .pdu_util import OperatingPoint, groups, image_pdu, make_pdu, meta_get, split_pdu
from .scheme_transmitter import check_checkpoints_up_front


class diffusion_receiver(neural_pdu_block):
    """In "pdus": complex zhat (k symbols) with metadata "w" and "h" (c32 vectors of k), and
    optionally "snr_db", "sinr_db" (else this block's values), as equalized_to_pdu makes
    them. Out "images": the decoded image PDUs; out "pdus": the scheme's latents (float32
    [Re; Im], 2k, power-normalised domain) where it has them. Metadata kept, without w and h.
    `options` like "steps=20,zeta_x=1"; `model` empty: the scheme's default for the channel
    and k. The receiver's random draws are seeded by `seed` + the image_id of the batch's
    first packet: reproducible for the same batching. `coherence`: symbols per Rayleigh
    fading block of the interferer's channel (1 = i.i.d.; the receivers' Gaussian of the
    interference depends on it). Each output PDU's metadata gets "nfe": the network
    evaluations per image of the receiver call that made it (the batch's mean)."""

    BLOCK_NAME = "diffusion_receiver"   # what GNU Radio logs it as (scheme-specific subclasses rename it)

    def __init__(self, scheme="icdm", channel_type="awgn", k=512, snr_db=20.0, sinr_db=0.0,
                 signal_power=1.0, options="", seed=0, server="", device="", max_batch=16, model="",
                 coherence=1):
        self.options = schemes.parse_options(options)
        rx = schemes.check(scheme, self.options, channel_type if channel_type in CHANNEL_TYPES else None)
        if channel_type not in CHANNEL_TYPES:
            raise ValueError(f"channel_type must be one of {CHANNEL_TYPES}, got {channel_type!r}")
        if not (signal_power > 0 and math.isfinite(signal_power)):
            raise ValueError(f"signal_power must be finite and > 0, got {signal_power}")
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        check_coherence(coherence)
        link_powers(float(snr_db), float(sinr_db), float(signal_power))  # validates the operating point
        # a missing checkpoint fails here (in-process, or on the server), not at the first packet
        check_checkpoints_up_front(rx, channel_type, int(k), model, server, device)
        neural_pdu_block.__init__(self, self.BLOCK_NAME, "", snr_db, server, device, max_batch)
        self.message_port_register_out(pmt.intern("images"))
        self.scheme, self.channel_type, self.k, self.model = scheme, channel_type, int(k), model
        self.signal_power, self.seed, self.coherence = float(signal_power), int(seed), int(coherence)
        self.point = OperatingPoint(snr_db, sinr_db, self.logger)
        self.sinr_db = self.point.sinr_db
        self.nfe = 0  # network evaluations per image: the highest batch mean so far (run_link reports the mean)

    @property
    def receiver(self):
        """The scheme's name (this block's earlier parameter name)."""
        return self.scheme

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
            self.logger.error(f"dropped a PDU of {zhat.size} symbols: this receiver takes k = {self.k}")
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
        side_info = meta_get(meta, "side_info", None)
        try:   # one image's unusable side information drops that image, not its batch
            schemes.get(self.scheme).check_side_info(side_info if isinstance(side_info, dict) else {}, self.options)
        except ValueError as exc:
            self.logger.error(f"dropped a PDU: {exc}")
            return None
        # the operating point's origin: a PHY's estimate (phy_rx: "csi" estimated) or an
        # snr_estimator_pdu's ("snr_source"), else given (dnsc estimates for itself then)
        source = meta_get(meta, "snr_source", "estimated" if meta_get(meta, "csi", None) == "estimated" else "given")
        if source not in schemes.base.SNR_SOURCES:
            self.logger.error(f"dropped a PDU with an unknown 'snr_source' {source!r}")
            return None
        key = (float(snr), float(sinr), source)
        return meta, (key, zhat, w, h, image_id if isinstance(image_id, int) else 0,
                      side_info if isinstance(side_info, dict) else None)

    def run_batch(self, items):
        """Items of one operating point go in one receiver call (in arrival order):
        [(image, latent or None, nfe per image of its call)] in item order."""
        out = [None] * len(items)
        for key, idx in groups(item[0] for item in items).items():
            stack = lambda j: torch.from_numpy(np.stack([items[n][j] for n in idx]))
            side_info = [items[n][5] or {} for n in idx]
            obs = schemes.Observation(zhat=stack(1), w=stack(2), h=stack(3),
                                      powers=link_powers(key[0], key[1], self.signal_power), snr_db=key[0],
                                      sinr_db=key[1], snr_source=key[2], channel_type=self.channel_type,
                                      coherence=self.coherence,
                                      options=self.options,
                                      seed=(self.seed + items[idx[0]][4]) % 2 ** 63, model=self.model,
                                      side_info=side_info if any(side_info) else [])
            result = self.backend.receive(self.scheme, obs)
            self.nfe = max(self.nfe, result.nfe)
            for j, n in enumerate(idx):
                out[n] = (result.images[j], None if result.latents is None else result.latents[j], result.nfe)
        return out

    def _emit(self, meta, result):
        image, latent, nfe = result
        meta = pmt.dict_add(meta, pmt.intern("nfe"), pmt.from_double(float(nfe)))   # its batch's, per image
        if latent is not None:
            self.message_port_pub(pmt.intern("pdus"), make_pdu(meta, latent))
        self.message_port_pub(pmt.intern("images"), image_pdu(meta, image))


class icdm_canceller(diffusion_receiver):
    """diffusion_receiver under its earlier name (first parameter: `receiver`), for the
    schemes that run a diffusion prior, as before."""

    def __init__(self, receiver="icdm", channel_type="awgn", k=512, snr_db=20.0, sinr_db=0.0,
                 signal_power=1.0, options="", seed=0, server="", device="", max_batch=16, model="",
                 coherence=1):
        if not getattr(schemes.get(receiver), "priors", ()):
            raise ValueError(f"icdm_canceller runs a diffusion receiver; {receiver!r} has no diffusion prior "
                             "(use diffusion_receiver or scheme_receiver, which run any scheme)")
        diffusion_receiver.__init__(self, receiver, channel_type, k, snr_db, sinr_db, signal_power, options,
                                    seed, server, device, max_batch, model, coherence)
