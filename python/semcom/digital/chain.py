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
from typing import Optional, Tuple

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


def frame_info(image: np.ndarray, codec_choice: str, layout: Layout) -> Tuple[np.ndarray, Optional[str]]:
    """((codewords, info_bits) uint8, the codec used): the image at the highest codec quality
    whose payload fits the layout's byte budget (codec.encode_best; "auto" picks the codec per
    image), framed. Where not even quality 1 fits, an empty payload and None: the frame then
    carries no image and the receiver scores it lost."""
    fit = codec.encode_best(image, codec_choice, layout.payload_bytes)
    return frame.pack(fit[0] if fit else b"", layout), (fit[2] if fit else None)


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


def frame_codec(side_info, configured: str) -> Optional[str]:
    """The codec a frame was coded with: its side information's "codec" (what the transmitter
    chose, needed with "auto"), else the receiver's configured one where that is a codec;
    None where neither says (the frame is then lost)."""
    named = side_info.get("codec") if isinstance(side_info, dict) else None
    if named in codec.CODECS:
        return named
    return configured if configured in codec.CODECS else None


def decode_image(payload: Optional[bytes], codec_name: Optional[str], shape) -> Optional[np.ndarray]:
    """The image of a frame's payload, or None where the frame is lost (no payload: CRC failed
    or nothing fitted; no codec known; or a payload the codec cannot decode)."""
    if not payload or codec_name is None:
        return None
    try:
        return codec.decode(payload, codec_name, shape)
    except codec.CodecError:
        return None


def dataset_mean(shape) -> np.ndarray:
    """The image a lost frame scores: the training set's mean image for CIFAR-10 (32, 32, 3) and
    MNIST-sized (28, 28, 1) images (data/dataset_means.npz), mid-grey otherwise."""
    from pathlib import Path
    shape = tuple(int(v) for v in shape)
    with np.load(Path(__file__).resolve().parent.parent / "data" / "dataset_means.npz") as means:
        for key in means.files:
            if means[key].shape == shape:
                return means[key].copy()
    return np.full(shape, 128, np.uint8)
