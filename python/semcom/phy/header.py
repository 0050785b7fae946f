"""The PHY header (GNU Radio-free): 90 bits, rate-1/2 convolutionally coded, BPSK on the
four header symbols (192 coded bits).

    version 2 | scheme id 16 | image id 24 | sequence 12 | k 16 | CRC-16 16 | zero 4 | tail 6

The code is IEEE 802.11's (constraint length 7, generators 133 and 171 octal), terminated by
six zero tail bits and decoded by soft-decision Viterbi; a block interleaver puts adjacent
coded bits 16 slots (carriers) apart. Uncoded BPSK lost most headers at 5 dB SNR (96 bits at
a bit error rate of 1-2 %); coded, headers hold down to about 2 dB on a flat channel. The CRC is
CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over the 70 bits before it; a header whose CRC
fails, or whose version or padding is wrong, is rejected (the frame is dropped and counted,
never decoded). The scheme id is a 16-bit hash of the scheme's name (scheme_id), so it does
not change when schemes are added.
"""

from dataclasses import dataclass

import numpy as np

from .frame import HEADER_BITS, FrameError

VERSION = 1
_FIELDS = (("version", 2), ("scheme_id", 16), ("image_id", 24), ("seq", 12), ("k", 16))
_CRC_BITS = 16
_TAIL = 6
INFO_BITS = HEADER_BITS // 2                 # 96: fields, CRC, zero padding, tail
_GENERATORS = (0o133, 0o171)                 # IEEE 802.11, constraint length 7
_STATES = 64
_ROWS = 12                                   # block interleaver: 12 rows x 16 columns


def _taps(g):
    return np.array([(g >> (6 - i)) & 1 for i in range(7)], np.uint8)   # newest bit first


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 convolutional code (802.11), starting from the zero state; 2 coded bits per bit."""
    bits = np.asarray(bits, np.uint8)
    reg = np.zeros(7, np.uint8)
    out = np.empty(2 * bits.size, np.uint8)
    taps = [_taps(g) for g in _GENERATORS]
    for i, b in enumerate(bits):
        reg = np.concatenate([[b], reg[:-1]])
        out[2 * i], out[2 * i + 1] = (int(reg @ taps[0]) & 1), (int(reg @ taps[1]) & 1)
    return out


def _trellis():
    """next_state[s, b] and the coded pair of (s, b) as +-1 (bit 0 -> +1); state = last 6 bits,
    newest in the top bit."""
    states = np.arange(_STATES)
    nxt = np.zeros((_STATES, 2), int)
    sym = np.zeros((_STATES, 2, 2))
    taps = [_taps(g) for g in _GENERATORS]
    for s in states:
        for b in (0, 1):
            reg = np.array([b] + [(s >> (5 - i)) & 1 for i in range(6)], np.uint8)
            nxt[s, b] = (b << 5) | (s >> 1)
            sym[s, b] = [1 - 2 * (int(reg @ t) & 1) for t in taps]
    return nxt, sym


_NEXT, _SYM = _trellis()


def viterbi_decode(soft: np.ndarray) -> np.ndarray:
    """Soft-decision Viterbi for conv_encode: soft values (positive = bit 0), 2 per bit ->
    the most likely bits of a trellis that starts and ends in state 0."""
    soft = np.asarray(soft, float).reshape(-1, 2)
    dst = np.arange(_STATES)
    bit = dst >> 5                                   # the input bit that leads into dst
    pred = np.stack([(dst & 31) << 1, ((dst & 31) << 1) | 1])   # its two predecessor states
    branch = _SYM[pred, bit[None, :]]                # (2, states, 2) coded +-1 of each branch
    metrics = np.einsum("psc,tc->tps", branch, soft)   # every branch metric of every step at once
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    choice = np.empty((soft.shape[0], _STATES), bool)
    p0, p1 = pred
    for t in range(soft.shape[0]):
        a, b = metric[p0] + metrics[t, 0], metric[p1] + metrics[t, 1]   # add
        choice[t] = b > a                                                  # compare
        metric = np.where(choice[t], b, a)                                 # select
    bits = np.zeros(soft.shape[0], np.uint8)
    state = 0
    for t in range(soft.shape[0] - 1, -1, -1):
        bits[t] = state >> 5
        state = int(pred[int(choice[t, state]), state])
    return bits


def interleave_positions() -> np.ndarray:
    """Coded bit j goes to header slot pos[j] (rows x columns block interleaver)."""
    j = np.arange(HEADER_BITS)
    return (j % _ROWS) * (HEADER_BITS // _ROWS) + j // _ROWS


class HeaderError(FrameError):
    """A header that fails its check (CRC, version, padding)."""


def crc16(bits: np.ndarray) -> int:
    """CRC-16/CCITT-FALSE of a bit sequence (MSB first)."""
    reg = 0xFFFF
    for bit in np.asarray(bits, np.uint8):
        top = ((reg >> 15) & 1) ^ int(bit)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= 0x1021
    return reg


def scheme_id(name: str) -> int:
    """A scheme's 16-bit id in the header: the CRC-16 of its name's UTF-8 bytes."""
    data = np.unpackbits(np.frombuffer(name.encode(), np.uint8))
    return crc16(data)


def _bits(value: int, width: int) -> np.ndarray:
    return np.array([(value >> (width - 1 - i)) & 1 for i in range(width)], np.uint8)


def _value(bits: np.ndarray) -> int:
    return int("".join(map(str, bits.tolist())) or "0", 2)


@dataclass(frozen=True)
class Header:
    scheme_id: int
    image_id: int
    seq: int
    k: int
    version: int = VERSION

    def __post_init__(self):
        for name, width in _FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 0 <= value < 2 ** width:
                raise FrameError(f"header field {name} must be an integer in [0, {2 ** width}), got {value!r}")
        if self.k < 1:
            raise FrameError(f"header field k must be >= 1, got {self.k}")


def header_info_bits(header: Header) -> np.ndarray:
    """The 96 bits before coding: fields, CRC, zero padding and the zero tail."""
    body = np.concatenate([_bits(int(getattr(header, name)), width) for name, width in _FIELDS])
    bits = np.concatenate([body, _bits(crc16(body), _CRC_BITS)])
    return np.concatenate([bits, np.zeros(INFO_BITS - bits.size, np.uint8)])


def pack_header(header: Header) -> np.ndarray:
    """The header's 192 coded, interleaved bits (slot order of the header symbols)."""
    coded = conv_encode(header_info_bits(header))
    out = np.empty_like(coded)
    out[interleave_positions()] = coded
    return out


def unpack_header(soft: np.ndarray) -> Header:
    """192 soft values in slot order (positive = bit 0; hard bits 0/1 work as well when given
    as 1 - 2 b) -> the Header; HeaderError when the CRC, version or padding fails."""
    soft = np.asarray(soft, float)
    if soft.size != HEADER_BITS:
        raise HeaderError(f"a header has {HEADER_BITS} coded bits, got {soft.size}")
    if not np.all(np.isfinite(soft)):
        raise HeaderError("header soft values are not finite")
    bits = viterbi_decode(soft[interleave_positions()])
    n_body = sum(width for _, width in _FIELDS)
    body, crc, pad = bits[:n_body], bits[n_body:n_body + _CRC_BITS], bits[n_body + _CRC_BITS:]
    if crc16(body) != _value(crc):
        raise HeaderError("header CRC failed")
    if pad.any():
        raise HeaderError("header padding is not zero")
    fields, at = {}, 0
    for name, width in _FIELDS:
        fields[name] = _value(body[at:at + width])
        at += width
    if fields["version"] != VERSION:
        raise HeaderError(f"header version {fields['version']} (this PHY speaks {VERSION})")
    if fields["k"] < 1:
        raise HeaderError("header k is 0")
    return Header(**fields)
