"""The OFDM frame and its header (phy/frame.py, phy/header.py): layout, sequences, the
payload's spreading, the numpy modulator, the convolutional code and the CRC (GNU Radio-free)."""

import numpy as np
import pytest

from gnuradio.semcom.phy import sim
from gnuradio.semcom.phy.frame import (DATA_CARRIERS, HEADER_BITS, HEADER_SYMBOLS, PILOT_CARRIERS,
                                       PREAMBLE_SYMBOLS, FrameError, OfdmLayout, papr_db)
from gnuradio.semcom.phy.header import (INFO_BITS, Header, HeaderError, conv_encode, crc16, header_info_bits,
                                        interleave_positions, pack_header, scheme_id, unpack_header,
                                        viterbi_decode)

LAYOUT = OfdmLayout()
PINNED = "a6f4ddeb3f8d7dd9eeac64d3a34ab13a3254fb3e406e3d1aabab81a136d339d6"   # golden: see test_fixed_sequences_are_pinned


def unit_symbols(k, seed=0):
    return sim.unit_symbols(k, np.random.default_rng(seed))


def test_carrier_plan():
    assert len(DATA_CARRIERS) == 48 and len(PILOT_CARRIERS) == 4
    assert 0 not in LAYOUT.active_carriers and len(set(LAYOUT.active_carriers)) == 52
    assert LAYOUT.payload_symbols(512) == 11 and LAYOUT.payload_symbols(48) == 1
    assert LAYOUT.frame_samples(512) == (PREAMBLE_SYMBOLS + HEADER_SYMBOLS + 11) * 80
    with pytest.raises(FrameError):
        LAYOUT.payload_symbols(0)
    with pytest.raises(FrameError):
        OfdmLayout(cp_len=64)


def test_fixed_sequences_are_pinned():
    """The sequences come from PRBS-15, not a library's random generator: any receiver of
    any version agrees with any transmitter (the values are pinned here)."""
    import hashlib
    from gnuradio.semcom.phy.frame import prbs15
    # a maximal-length sequence: period 2^15 - 1, with 2^14 ones and 2^14 - 1 zeros per period
    seq = prbs15(2 * 32767, 1)
    np.testing.assert_array_equal(seq[:32767], seq[32767:])
    assert seq[:32767].sum() == 2 ** 14
    assert not np.array_equal(seq[:100], seq[1:101])
    with pytest.raises(ValueError):
        prbs15(4, 0)
    digest = hashlib.sha256(np.concatenate([LAYOUT.sc_word(), LAYOUT.lts_word(), LAYOUT.pn_signs(512),
                                            LAYOUT.interleaver(512).astype(np.float32)]).tobytes()).hexdigest()
    assert digest == PINNED, digest


def test_schmidl_cox_symbol_has_two_halves_equal_up_to_sign():
    t = np.fft.ifft(LAYOUT.sc_word())
    np.testing.assert_allclose(t[32:], -t[:32], atol=1e-7)   # odd carriers: x[n + N/2] = -x[n]
    assert np.allclose(np.abs(LAYOUT.lts_word()[LAYOUT.index(LAYOUT.active_carriers)]), 1)


@pytest.mark.parametrize("k", [512, 98, 48, 1])
def test_payload_spreading_is_undone_by_gather_and_signs(k):
    z = unit_symbols(k)
    stream = LAYOUT.spread_payload(z)
    assert stream.size == LAYOUT.payload_symbols(k) * 48
    back = LAYOUT.gather_payload(stream, k) * LAYOUT.pn_signs(k)
    np.testing.assert_array_equal(back, z)
    # the interleaver spreads neighbours across the band: consecutive symbols sit at least
    # 8 carriers apart (a frequency-selective fade hits scattered latent dimensions)
    slot = np.argsort(LAYOUT.interleaver(k))[:k]
    carrier = slot % len(DATA_CARRIERS)
    apart = np.abs(np.diff(carrier))
    apart = np.minimum(apart, len(DATA_CARRIERS) - apart)
    assert k < 2 or apart.min() >= 8, apart.min()


def test_modulator_power_and_inverse():
    z = unit_symbols(512, 1)
    bits = pack_header(Header(scheme_id("mmse"), 5, 6, 512))
    grid = LAYOUT.grid(bits, z)
    x = LAYOUT.modulate(grid)
    assert x.size == LAYOUT.frame_samples(512)
    assert abs(np.mean(np.abs(x) ** 2) - 1) < 0.05          # unit mean sample power at 0 dB back-off
    assert abs(np.mean(np.abs(LAYOUT.modulate(grid, 6.0)) ** 2) - 10 ** -0.6) < 0.02
    back = LAYOUT.demodulate(x, grid.shape[0]) / (LAYOUT.fft_len * LAYOUT.tx_scale())
    np.testing.assert_allclose(back, grid, atol=1e-5)
    assert 4 < papr_db(x) < 20


def test_crc16_check_value():
    data = np.unpackbits(np.frombuffer(b"123456789", np.uint8))
    assert crc16(data) == 0x29B1        # CRC-16/CCITT-FALSE's published check value


def test_convolutional_code_free_distance_and_linearity():
    rng = np.random.default_rng(3)
    for _ in range(50):
        a = np.concatenate([rng.integers(0, 2, 20), np.zeros(6, int)]).astype(np.uint8)
        b = np.concatenate([rng.integers(0, 2, 20), np.zeros(6, int)]).astype(np.uint8)
        np.testing.assert_array_equal(conv_encode(a ^ b), conv_encode(a) ^ conv_encode(b))
        if a.any():
            assert conv_encode(a).sum() >= 10           # d_free of the (133, 171) code is 10
    impulse = np.zeros(10, np.uint8)
    impulse[0] = 1
    assert conv_encode(impulse).sum() == 10


def test_viterbi_corrects_any_four_hard_errors():
    rng = np.random.default_rng(4)
    bits = np.concatenate([rng.integers(0, 2, 90), np.zeros(6, int)]).astype(np.uint8)
    coded = conv_encode(bits)
    for _ in range(30):
        bad = coded.copy()
        bad[rng.choice(coded.size, 4, replace=False)] ^= 1
        np.testing.assert_array_equal(viterbi_decode(1.0 - 2.0 * bad), bits)


def test_header_round_trip_and_interleaver():
    pos = interleave_positions()
    assert sorted(pos) == list(range(HEADER_BITS))
    assert np.all(np.abs(np.diff(pos[:12])) == 16)      # adjacent coded bits 16 slots apart
    for fields in [(0, 0, 0, 1), (65535, 2 ** 24 - 1, 4095, 65535), (scheme_id("icdm"), 123456, 77, 512)]:
        h = Header(*fields)
        assert unpack_header(1.0 - 2.0 * pack_header(h)) == h
    with pytest.raises(FrameError):
        Header(0, 2 ** 24, 0, 512)
    with pytest.raises(FrameError):
        Header(0, 0, 0, 0)


def test_header_crc_rejects_corrupted_headers():
    good = header_info_bits(Header(scheme_id("icdm"), 99, 1, 512))
    rng = np.random.default_rng(5)
    for _ in range(20):
        bad = good.copy()
        bad[rng.integers(0, 74)] ^= 1              # a field bit changed, CRC kept
        slots = np.empty(HEADER_BITS, np.uint8)
        slots[interleave_positions()] = conv_encode(bad)
        with pytest.raises(HeaderError, match="CRC"):
            unpack_header(1.0 - 2.0 * slots)
    for _ in range(20):                                   # noise alone is never a header
        with pytest.raises(HeaderError):
            unpack_header(rng.standard_normal(HEADER_BITS))
    with pytest.raises(HeaderError):
        unpack_header(np.full(HEADER_BITS, np.nan))
    with pytest.raises(HeaderError):
        unpack_header(np.ones(10))
    assert INFO_BITS * 2 == HEADER_BITS


def test_scheme_ids_are_distinct_across_the_registry():
    from gnuradio.semcom import schemes
    ids = {scheme_id(name) for name in schemes.names()}
    assert len(ids) == len(schemes.names())
