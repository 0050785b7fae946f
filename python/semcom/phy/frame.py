"""The OFDM frame of one image's analog JSCC symbols (GNU Radio-free).

    | S&C | LTS | LTS | H1 .. H4 | P1 ... Pn |      every symbol: fft_len samples + cyclic prefix

- S&C: the Schmidl & Cox preamble (BPSK x sqrt 2 on the odd active carriers, so the two
  halves of the symbol are equal up to sign; stock `ofdm_sync_sc_cfb` with
  use_even_carriers=False finds it and estimates the fine frequency offset).
- LTS, LTS: two identical long training symbols (BPSK on every active carrier): the
  least-squares channel from their mean, the noise variance from their difference.
- H1..H4: the header, BPSK on the data carriers (192 coded bits): version, scheme id, image
  id, sequence number, k, CRC-16, rate-1/2 convolutionally coded (header.py).
- P1..Pn: the payload. The k complex symbols are multiplied by a PN sign sequence (+-1: it
  whitens the latents' structure across carriers without changing their power), zero-padded
  to n * 48 and permuted by a fixed interleaver across carriers and OFDM symbols (a deep
  fade of a few adjacent carriers then hits scattered latent dimensions, not one region).
  No decision is ever made on them: they are analog.
- Pilots (1, 1, 1, -1) on carriers -21, -7, 7, 21 of every header and payload symbol: common
  phase and timing-slope tracking.

Carrier indices are signed (0 = DC, as gr-digital's ofdm_carrier_allocator_cvc). Vectors here
are in natural FFT order (index k mod fft_len); GNU Radio's FFT blocks with shift=True use
the shifted order (`np.fft.fftshift`). The transforms are unnormalised like fft_vcc's; the
transmitter scales the IFFT output by 1/sqrt(active carriers) (unit mean sample power) times
the back-off.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np

FFT_LEN = 64
CP_LEN = 16
PILOT_CARRIERS = (-21, -7, 7, 21)
PILOT_SYMBOLS = (1.0, 1.0, 1.0, -1.0)
DATA_CARRIERS = tuple(c for c in range(-26, 27) if c != 0 and c not in PILOT_CARRIERS)
HEADER_SYMBOLS = 4
HEADER_BITS = HEADER_SYMBOLS * len(DATA_CARRIERS)   # 192 coded BPSK bits
PREAMBLE_SYMBOLS = 3                                # S&C + two training symbols
# Fixed sequences of this PHY (any receiver must use the same): PRBS-15 (x^15 + x^14 + 1)
# from these states, so they do not depend on a library's random generator.
_SEED_SC, _SEED_LTS, _SEED_PN = 0x5C5C, 0x1E1E, 0x3A3A
# Payload symbol i goes to slot (113 i) mod n: 113 = 2 * 48 + 17, so neighbours sit 17 carriers
# (a third of the band) and two OFDM symbols apart. (97 = 2 * 48 + 1 kept each symbol on the
# carrier it would have had without interleaving: neighbours in one fade.)
_INTERLEAVER_STRIDE = 113


def prbs15(n: int, state: int) -> np.ndarray:
    """n bits of the PRBS-15 sequence (x^15 + x^14 + 1) from a non-zero 15-bit state."""
    if not 0 < state < 2 ** 15:
        raise ValueError(f"a PRBS-15 state is 1..32767, got {state}")
    out = np.empty(n, np.uint8)
    for i in range(n):
        bit = ((state >> 14) ^ (state >> 13)) & 1
        state = ((state << 1) | bit) & 0x7FFF
        out[i] = bit
    return out


def _signs(n: int, state: int) -> np.ndarray:
    return (1.0 - 2.0 * prbs15(n, state)).astype(np.float32)


class FrameError(ValueError):
    """A frame that cannot be built or read (wrong sizes, a header that fails its CRC)."""


@dataclass(frozen=True)
class OfdmLayout:
    """The PHY's numerology; one instance for the whole link (TX and RX must agree)."""
    fft_len: int = FFT_LEN
    cp_len: int = CP_LEN

    def __post_init__(self):
        if self.fft_len != FFT_LEN:
            raise FrameError(f"this PHY's carrier plan is for fft_len {FFT_LEN}, got {self.fft_len}")
        if not 0 < self.cp_len < self.fft_len:
            raise FrameError(f"cp_len must be in 1..{self.fft_len - 1}, got {self.cp_len}")

    @property
    def data_carriers(self):
        return DATA_CARRIERS

    @property
    def pilot_carriers(self):
        return PILOT_CARRIERS

    @property
    def active_carriers(self):
        return tuple(sorted(DATA_CARRIERS + PILOT_CARRIERS))

    @property
    def symbol_len(self) -> int:
        return self.fft_len + self.cp_len

    def index(self, carriers) -> np.ndarray:
        """Signed carrier indices -> natural FFT bins."""
        return np.asarray(carriers, int) % self.fft_len

    def payload_symbols(self, k: int) -> int:
        """OFDM symbols that carry k complex payload symbols."""
        if int(k) < 1:
            raise FrameError(f"k must be >= 1, got {k}")
        return -(-int(k) // len(DATA_CARRIERS))

    def frame_symbols(self, k: int) -> int:
        return PREAMBLE_SYMBOLS + HEADER_SYMBOLS + self.payload_symbols(k)

    def frame_samples(self, k: int) -> int:
        return self.frame_symbols(k) * self.symbol_len

    # --- the fixed sequences ----------------------------------------------------------
    def sc_word(self) -> np.ndarray:
        """The Schmidl & Cox symbol, natural order: BPSK * sqrt(2) on the odd active carriers."""
        word = np.zeros(self.fft_len, np.complex64)
        odd = [c for c in self.active_carriers if c % 2]
        word[self.index(odd)] = np.sqrt(2) * _signs(len(odd), _SEED_SC)
        return word

    def lts_word(self) -> np.ndarray:
        """The long training symbol, natural order: BPSK on every active carrier."""
        word = np.zeros(self.fft_len, np.complex64)
        word[self.index(self.active_carriers)] = _signs(len(self.active_carriers), _SEED_LTS)
        return word

    def pn_signs(self, n: int) -> np.ndarray:
        """The payload's PN sign sequence (+-1), its first n values."""
        return _pn_signs(n)

    def interleaver(self, k: int) -> np.ndarray:
        """perm: payload slot j of the frame (carrier-major within each OFDM symbol) carries
        padded symbol perm[j]; symbol i sits in slot (113 i) mod n (n the padded length; the
        stride grows by 2 if it shares a factor with n). Fixed for a given k."""
        return _interleaver(self.payload_symbols(k) * len(DATA_CARRIERS))

    # --- payload <-> data-carrier stream ----------------------------------------------
    def spread_payload(self, z: np.ndarray) -> np.ndarray:
        """k complex symbols -> the payload's data-carrier stream (n * 48): PN signs, zero
        padding, interleaving."""
        z = np.asarray(z, np.complex64).ravel()
        k = z.size
        padded = np.zeros(self.payload_symbols(k) * len(DATA_CARRIERS), np.complex64)
        padded[:k] = z * self.pn_signs(k)
        return padded[self.interleaver(k)]

    def gather_payload(self, stream: np.ndarray, k: int) -> np.ndarray:
        """The inverse of spread_payload's slot order (no sign removal): the padded vector
        back in symbol order, first k entries (so the same gather applies to y and to h)."""
        stream = np.asarray(stream)
        n = self.payload_symbols(k) * len(DATA_CARRIERS)
        if stream.shape[-1] != n:
            raise FrameError(f"a payload of k = {k} has {n} data slots, got {stream.shape[-1]}")
        out = np.empty_like(stream)
        out[..., self.interleaver(k)] = stream
        return out[..., :k]

    def header_symbols(self, bits: np.ndarray) -> np.ndarray:
        """The header's coded bits -> BPSK symbols (0 -> +1, 1 -> -1)."""
        bits = np.asarray(bits, np.uint8)
        if bits.size != HEADER_BITS:
            raise FrameError(f"a header has {HEADER_BITS} bits, got {bits.size}")
        return (1.0 - 2.0 * bits).astype(np.complex64)

    def data_stream(self, header_bits: np.ndarray, z: np.ndarray) -> np.ndarray:
        """What the carrier allocator takes for one frame: header BPSK then the payload stream."""
        return np.concatenate([self.header_symbols(header_bits), self.spread_payload(z)])

    # --- the numpy reference modulator (tests compare the GNU Radio chain with it) ------
    def grid(self, header_bits: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The frame in the frequency domain, (symbols, fft_len), natural order."""
        stream = self.data_stream(header_bits, z)
        rows = stream.size // len(DATA_CARRIERS)
        grid = np.zeros((PREAMBLE_SYMBOLS + rows, self.fft_len), np.complex64)
        grid[0], grid[1], grid[2] = self.sc_word(), self.lts_word(), self.lts_word()
        body = grid[PREAMBLE_SYMBOLS:]
        body[:, self.index(DATA_CARRIERS)] = stream.reshape(rows, len(DATA_CARRIERS))
        body[:, self.index(PILOT_CARRIERS)] = PILOT_SYMBOLS
        return grid

    def payload_only_grid(self, u: np.ndarray) -> np.ndarray:
        """A co-channel interferer's frame: its symbols on the payload's data carriers (PN
        signs, interleaver), nothing on the preamble, header or pilots (orthogonal training;
        docs/ota.md)."""
        stream = self.spread_payload(u)
        rows = stream.size // len(DATA_CARRIERS)
        grid = np.zeros((PREAMBLE_SYMBOLS + HEADER_SYMBOLS + rows, self.fft_len), np.complex64)
        grid[PREAMBLE_SYMBOLS + HEADER_SYMBOLS:, self.index(DATA_CARRIERS)] = stream.reshape(rows, len(DATA_CARRIERS))
        return grid

    def tx_scale(self, backoff_db: float = 0.0) -> float:
        """The IFFT output's scale: unit mean sample power, less the back-off."""
        return float(10 ** (-backoff_db / 20) / np.sqrt(len(self.active_carriers)))

    def modulate(self, grid: np.ndarray, backoff_db: float = 0.0) -> np.ndarray:
        """Frequency grid -> time samples with cyclic prefixes (unnormalised IFFT as fft_vcc's)."""
        time = np.fft.ifft(grid, axis=-1) * self.fft_len
        with_cp = np.concatenate([time[:, -self.cp_len:], time], axis=-1)
        return (with_cp.ravel() * self.tx_scale(backoff_db)).astype(np.complex64)

    def demodulate(self, samples: np.ndarray, n_symbols: int) -> np.ndarray:
        """Frame-aligned time samples -> (n_symbols, fft_len) natural-order FFT outputs."""
        body = np.asarray(samples)[:n_symbols * self.symbol_len].reshape(n_symbols, self.symbol_len)
        return np.fft.fft(body[:, self.cp_len:], axis=-1)


@functools.lru_cache(maxsize=16)
def _pn_cached(n: int) -> np.ndarray:
    out = _signs(n, _SEED_PN)
    out.flags.writeable = False
    return out


def _pn_signs(n: int) -> np.ndarray:
    return _pn_cached(int(n))


@functools.lru_cache(maxsize=16)
def _interleaver(n: int) -> np.ndarray:
    stride = _INTERLEAVER_STRIDE
    while math.gcd(stride, n) != 1:
        stride += 2
    perm = np.empty(n, np.int64)
    perm[(stride * np.arange(n)) % n] = np.arange(n)
    perm.flags.writeable = False
    return perm


def papr_db(samples: np.ndarray) -> float:
    """Peak-to-average power ratio of a burst, in dB."""
    power = np.abs(np.asarray(samples)) ** 2
    return float(10 * np.log10(power.max() / power.mean()))
