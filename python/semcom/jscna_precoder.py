"""jscna_precoder: JSCNA-AD's channel pre-compensation as a stream block (spec
../shared/papers/jscna_ad.md §2 and §7): x = c z / h where |h|^2 >= g_th, else 0 (erased),
c^2 = P / E1(g_th) (core/precoding.py holds the maths)."""

import math

import numpy as np
import pmt
import torch
from gnuradio import gr

from .core.channel import CHANNEL_TYPES, parse_db
from .core.precoding import threshold_for_snr, truncated_inversion

ERASED_TAG = "jscna_erased"


class jscna_precoder(gr.sync_block):
    """In 0: the scheme's unit-power symbols z; in 1: the fading h each symbol will see (e.g.
    fading_source_c, also connected to the channel's h input: genie CSIT). Out: the
    pre-compensated symbols, long-term power P; an erased symbol is sent as 0 and tagged
    "jscna_erased" (value #t). Tags on z pass through.

    `g_th` 0: the SNR's Gaussian-optimal threshold (threshold_for_snr; set_snr_db follows the
    channel's SNR). AWGN: x = sqrt(P) z, nothing erased. Pair it with the jscna-ad scheme's
    option precoding=block at both ends (the encoder then leaves the inversion to this block)."""

    def __init__(self, channel_type="rayleigh", snr_db=10.0, g_th=0.0, power=1.0):
        if channel_type not in CHANNEL_TYPES:
            raise ValueError(f"channel_type must be one of {CHANNEL_TYPES}, got {channel_type!r}")
        if not (power > 0 and math.isfinite(power)):
            raise ValueError(f"power must be finite and > 0, got {power}")
        if not (g_th >= 0 and math.isfinite(g_th)):
            raise ValueError(f"g_th must be finite and >= 0 (0: from the SNR), got {g_th}")
        snr_db = parse_db(snr_db)
        if not math.isfinite(snr_db):
            raise ValueError(f"snr_db must be finite, got {snr_db}")
        gr.sync_block.__init__(self, name="jscna_precoder", in_sig=[np.complex64, np.complex64],
                               out_sig=[np.complex64])
        self.channel_type, self.power, self.fixed_g_th = channel_type, float(power), float(g_th)
        self.snr_db = float(snr_db)
        self.erased = 0
        self.sent = 0

    @property
    def g_th(self) -> float:
        return self.fixed_g_th or threshold_for_snr(self.snr_db)

    def set_snr_db(self, snr_db):
        """Never raises (a GUI callback): a non-finite SNR is logged and ignored."""
        try:
            value = parse_db(snr_db)
            if not math.isfinite(value):
                raise ValueError(f"snr_db must be finite, got {snr_db}")
        except (TypeError, ValueError) as exc:
            self.logger.error(f"kept SNR {self.snr_db} dB: {exc}")
            return
        self.snr_db = float(value)

    def work(self, input_items, output_items):
        z, h = input_items
        n = len(output_items[0])
        x, kept, _ = truncated_inversion(torch.from_numpy(z[:n].copy()), torch.from_numpy(h[:n].copy()),
                                         self.g_th, self.power, self.channel_type)
        output_items[0][:] = x.numpy()
        start = self.nitems_written(0)
        for i in np.flatnonzero(~kept.numpy()):
            self.add_item_tag(0, start + int(i), pmt.intern(ERASED_TAG), pmt.PMT_T)
        self.erased += int((~kept).sum())
        self.sent += n
        return n
