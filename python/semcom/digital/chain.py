"""The digital baseline's steps on either side of the LDPC code (GNU Radio-free), shared by the
scheme (schemes/digital.py, our torch decoder) and its GNU Radio blocks (digital_transmitter,
digital_receiver: stock gr-fec in between), so both chains compute the same bits and LLRs:

    transmitter: frame_info (codec at the layout's byte budget, frame.pack)
                 -> [LDPC encoder] -> codeword_symbols (zero fill, scrambler, Gray QAM, sqrt(P))
    receiver:    symbol_llrs (the MMSE output unbiased per symbol, Lemma 1; max-log LLRs)
                 -> frame.descramble_llr -> [LDPC decoder] -> frame.unpack -> decode_image

gr_fec_soft turns LLRs into gr-fec 3.10.5's ldpc_decoder input (its convention: ldpc.py's header).
"""

import math
from typing import Optional

import numpy as np
import torch

from . import codec, frame, qam
from .frame import Layout

# gr-fec's ldpc_decoder (sum-product on likelihood ratios) computes exp(LLR) in single precision
# (inf beyond 88) and multiplies ratios in double: huge LLRs (high SNR: up to 1e12 here) turn its
# messages into inf/0/NaN, and a codeword with a few wrong bits among |LLR| = 1e6 decodes wrong.
# 25 (a bit error probability of 1e-11) keeps it in range and changes nothing else in practice.
GR_FEC_LLR_MAX = 25.0
# The sigma handed to fec.ldpc_decoder.make: with soft values x = -2 sigma^2 LLR any sigma gives
# the decoder the same LLR; 1 keeps the values small.
GR_FEC_SIGMA = 1.0


def frame_info(image: np.ndarray, codec_name: str, layout: Layout) -> np.ndarray:
    """(codewords, info_bits) uint8: the image at the highest codec quality whose payload fits the
    layout's budget, framed (an empty payload where not even quality 1 fits: the frame then
    carries no image and the receiver scores it lost)."""
    fit = codec.encode(image, codec_name, layout.payload_bytes)
    return frame.pack(fit[0] if fit else b"", layout)


def codeword_symbols(codewords: np.ndarray, layout: Layout, order: int, power: float = 1.0) -> torch.Tensor:
    """Codewords (..., codewords, n) 0/1 -> complex64 symbols (..., k): zero fill to k m bits,
    802.11 scrambler, Gray QAM, scaled to mean power `power`."""
    codewords = np.asarray(codewords, np.uint8)
    lead = codewords.shape[:-2]
    flat = codewords.reshape((-1,) + codewords.shape[-2:])
    bits = np.stack([frame.fill_and_scramble(c, layout) for c in flat]).reshape(lead + (layout.coded_bits,))
    return math.sqrt(power) * qam.modulate(torch.from_numpy(bits), order)


def symbol_llrs(zhat: torch.Tensor, w: torch.Tensor, h: torch.Tensor, powers, order: int) -> torch.Tensor:
    """Max-log LLRs (..., k m) of the coded, scrambled bits from the MMSE output zhat = w y with
    weights w and CSI h (..., k), `powers` a core.channel.LinkPowers: y = zhat / a with
    a = sqrt(Ps) w h (Lemma 1) is unbiased, with noise plus interference variance
    (sigma^2 + Pi) / (Ps |h|^2) per symbol (clamped to [1e-12, 1e12])."""
    from ..core.equalizer import lemma1
    a = lemma1(w, h, powers.signal_power, powers.interference_power, powers.noise_var).a
    y = zhat / torch.where(a.abs() > 0, a, torch.ones_like(a))
    v = (powers.noise_var + powers.interference_power) / (powers.signal_power * h.abs().square())
    return qam.llr_maxlog(y, v.clamp(min=1e-12, max=1e12), order)


def gr_fec_soft(llr, sigma: float = GR_FEC_SIGMA) -> np.ndarray:
    """float32 soft values for fec.ldpc_decoder.make(alist, sigma, ...) carrying these LLRs
    (log P(0)/P(1)): x = -2 sigma^2 LLR, the LLRs clamped to +-GR_FEC_LLR_MAX first."""
    llr = torch.as_tensor(llr).detach().cpu().double().clamp(-GR_FEC_LLR_MAX, GR_FEC_LLR_MAX)
    return np.ascontiguousarray((-2.0 * sigma ** 2) * llr.numpy(), np.float32)


def decode_image(payload: Optional[bytes], codec_name: str, shape) -> Optional[np.ndarray]:
    """The image of a frame's payload, or None where the frame is lost (no payload: CRC failed
    or nothing fitted; or a payload the codec cannot decode)."""
    if not payload:
        return None
    try:
        return codec.decode(payload, codec_name, shape)
    except codec.CodecError:
        return None
