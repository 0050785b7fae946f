"""The digital baseline's framing (GNU Radio-free): payload bytes <-> the coded bits of one
image's symbol budget.

    [length: 2 bytes][payload][CRC-32 of length and payload: 4 bytes][zero fill]
        -> bits (MSB first) -> n_cw LDPC codewords (ldpc.py) -> zero fill to k m bits
        -> XOR with the 802.11 scrambler sequence (x^7 + x^4 + 1, all-ones seed)
        -> Gray QAM (qam.py): exactly k symbols

`Layout(k, order, code)` says how many codewords fit (n_cw = floor(k m / n)) and how many
payload bytes that leaves; it never uses more than k symbols (the rate matching). The
scrambler makes the fill bits random-looking, so every image's symbols have the constellation's
mean power. A frame whose length field or CRC-32 does not check is lost (`unpack` returns None).
"""

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

LENGTH_BYTES = 2
CRC_BYTES = 4


@dataclass(frozen=True)
class Layout:
    k: int            # complex symbols per image
    bits_per_symbol: int
    n: int            # LDPC codeword length
    info_bits: int    # LDPC information bits per codeword

    @property
    def codewords(self) -> int:
        return self.k * self.bits_per_symbol // self.n

    @property
    def frame_bytes(self) -> int:
        """Bytes the codewords carry: length field, payload, CRC."""
        return self.codewords * self.info_bits // 8

    @property
    def payload_bytes(self) -> int:
        """The codec's byte budget (0 where not even the length and CRC fit)."""
        return max(0, self.frame_bytes - LENGTH_BYTES - CRC_BYTES)

    @property
    def coded_bits(self) -> int:
        return self.k * self.bits_per_symbol


@lru_cache(maxsize=16)
def scrambler(length: int) -> np.ndarray:
    """(length,) uint8, read-only: IEEE 802.11's scrambler sequence (x^7 + x^4 + 1) from the
    all-ones state."""
    state = [1] * 7
    out = np.empty(length, np.uint8)
    for i in range(length):
        bit = state[6] ^ state[3]
        out[i] = bit
        state = [bit] + state[:6]
    out.flags.writeable = False
    return out


def pack(payload: bytes, layout: Layout) -> np.ndarray:
    """(codewords, info_bits) uint8: the frame of `payload` as the LDPC encoder's input."""
    if len(payload) > layout.payload_bytes:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the budget of {layout.payload_bytes}")
    if layout.codewords < 1:
        raise ValueError(f"{layout.k} symbols of {layout.bits_per_symbol} bits hold no codeword of {layout.n} bits")
    head = len(payload).to_bytes(LENGTH_BYTES, "big") + payload
    frame = head + zlib.crc32(head).to_bytes(CRC_BYTES, "big")
    bits = np.unpackbits(np.frombuffer(frame, np.uint8))
    out = np.zeros(layout.codewords * layout.info_bits, np.uint8)
    out[:len(bits)] = bits
    return out.reshape(layout.codewords, layout.info_bits)


def unpack(info_bits: np.ndarray, layout: Layout) -> Optional[bytes]:
    """The payload of decoded information bits (codewords, info_bits), or None where the
    length field is impossible or the CRC-32 fails."""
    bits = np.asarray(info_bits, np.uint8).reshape(-1)[:layout.frame_bytes * 8]
    frame = np.packbits(bits).tobytes()
    length = int.from_bytes(frame[:LENGTH_BYTES], "big")
    if length > layout.payload_bytes:
        return None
    head = frame[:LENGTH_BYTES + length]
    crc = frame[LENGTH_BYTES + length:LENGTH_BYTES + length + CRC_BYTES]
    if zlib.crc32(head).to_bytes(CRC_BYTES, "big") != crc:
        return None
    return head[LENGTH_BYTES:]


def fill_and_scramble(codewords: np.ndarray, layout: Layout) -> np.ndarray:
    """(coded_bits,) uint8: the codewords, zero-filled to k m bits, scrambled."""
    bits = np.zeros(layout.coded_bits, np.uint8)
    flat = np.asarray(codewords, np.uint8).reshape(-1)
    bits[:len(flat)] = flat
    return bits ^ scrambler(layout.coded_bits)


def descramble_llr(llr, layout: Layout):
    """LLRs (..., coded_bits) of the scrambled bits -> those of the codewords (..., codewords, n):
    a scrambler 1 flips the bit, so its LLR changes sign; the fill is dropped."""
    import torch
    sign = 1.0 - 2.0 * torch.from_numpy(scrambler(layout.coded_bits).copy()).to(llr.device, llr.dtype)
    used = layout.codewords * layout.n
    return (llr * sign)[..., :used].reshape(llr.shape[:-1] + (layout.codewords, layout.n))
