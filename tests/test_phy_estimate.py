"""The receiver's estimates (phy/estimate.py) against known channels: the least-squares
channel against its theoretical NMSE, the noise variance's bias from 0 to 30 dB, pilot
tracking of a residual frequency offset, the SINR from the payload's power, and the header
over a noisy multipath channel (GNU Radio-free: frames through a numpy channel, aligned)."""

import numpy as np
import pytest

from gnuradio.semcom.phy import sim
from gnuradio.semcom.phy.estimate import decode_header, estimate_channel, payload_estimate, pilot_phases
from gnuradio.semcom.phy.frame import HEADER_SYMBOLS, PREAMBLE_SYMBOLS, OfdmLayout
from gnuradio.semcom.phy.header import Header, pack_header, scheme_id

LAYOUT = OfdmLayout()
N, K = LAYOUT.fft_len, len(LAYOUT.active_carriers)
BODY = PREAMBLE_SYMBOLS + HEADER_SYMBOLS
TAPS3 = np.array([1.0, 0.6, 0.3])        # tap magnitudes; phases drawn per frame


def unit_symbols(k, rng):
    return sim.unit_symbols(k, rng)


def through_channel(x, taps, snr_db, rng, cfo=0.0, interference=None):
    return sim.through_channel(x, taps, snr_db, rng, LAYOUT, cfo, interference)


def frame(rng, k=512):
    z = unit_symbols(k, rng)
    header = Header(scheme_id("mmse"), int(rng.integers(0, 2 ** 24)), 3, k)
    return z, header, LAYOUT.modulate(LAYOUT.grid(pack_header(header), z))


def random_taps(rng, magnitudes=TAPS3):
    return sim.random_taps(magnitudes, rng)


def true_response(taps):
    return sim.true_response(taps, LAYOUT)


@pytest.mark.parametrize("smooth", [0, 17])
@pytest.mark.parametrize("snr_db", [10.0, 25.0])
def test_channel_nmse_matches_least_squares_theory(snr_db, smooth):
    rng = np.random.default_rng(int(snr_db) + smooth)
    act = LAYOUT.index(LAYOUT.active_carriers)
    err, power = 0.0, 0.0
    for _ in range(60):
        _, _, x = frame(rng)
        taps = random_taps(rng)
        y = through_channel(x, taps, snr_db, rng)
        Y = LAYOUT.demodulate(y, 3)
        est = estimate_channel(Y[1], Y[2], LAYOUT, smooth)
        h = true_response(taps)
        err += np.sum(np.abs(est.h[act] - h[act]) ** 2)
        power += np.sum(np.abs(h[act]) ** 2)
    nmse = 10 * np.log10(err / power)
    # per carrier: noise sigma_f^2 = G / SNR on |X| = 1; the mean of two symbols halves it;
    # the delay-domain projection keeps taps / K of it
    theory = 10 * np.log10(0.5 / 10 ** (snr_db / 10) * (smooth / K if smooth else 1))
    assert abs(nmse - theory) < 1.0, (nmse, theory)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 30.0])
def test_noise_variance_bias_under_half_a_db(snr_db):
    rng = np.random.default_rng(int(snr_db) + 100)
    ratios = []
    for _ in range(60):
        _, _, x = frame(rng)
        taps = random_taps(rng)
        y = through_channel(x, taps, snr_db, rng, cfo=0.002)    # a residual offset rotates LTS2
        Y = LAYOUT.demodulate(y, 3)
        est = estimate_channel(Y[1], Y[2], LAYOUT)
        sigma_f2 = N * sim.noise_variance(LAYOUT, snr_db)     # time-domain noise through the unnormalised FFT
        ratios.append(est.noise_var / sigma_f2)
    assert abs(10 * np.log10(np.mean(ratios))) < 0.5


def test_snr_estimate_is_unbiased_on_awgn():
    rng = np.random.default_rng(7)
    for snr_db in (5.0, 15.0, 25.0):
        got = []
        for _ in range(40):
            z, _, x = frame(rng)
            Y = LAYOUT.demodulate(through_channel(x, np.array([1.0]), snr_db, rng), LAYOUT.frame_symbols(512))
            est = estimate_channel(Y[1], Y[2], LAYOUT)
            got.append(10 ** (payload_estimate(Y[BODY:], est, LAYOUT, 512).snr_db / 10))
        assert abs(10 * np.log10(np.mean(got)) - snr_db) < 0.5


def test_pilots_track_a_residual_frequency_offset():
    """A residual CFO of 0.01 spacings turns the payload by ~1 rad over the frame: without
    tracking the symbols are wrong, with it the MSE is at the noise's level."""
    rng = np.random.default_rng(8)
    z, _, x = frame(rng)
    Y = LAYOUT.demodulate(through_channel(x, np.array([1.0]), 30.0, rng, cfo=0.01), LAYOUT.frame_symbols(512))
    est = estimate_channel(Y[1], Y[2], LAYOUT)
    p = payload_estimate(Y[BODY:], est, LAYOUT, 512, "linear")
    zhat = np.conj(p.h) * p.y / (np.abs(p.h) ** 2 + p.noise_var)
    assert 10 * np.log10(np.mean(np.abs(zhat - z) ** 2)) < -24
    # without the pilots' phases (the training's channel for every symbol) it is wrong
    d = LAYOUT.index(LAYOUT.data_carriers)
    h_fixed = LAYOUT.gather_payload(np.tile(est.h[d], Y.shape[0] - BODY), 512) / np.sqrt(p.gain)
    wrong = np.conj(h_fixed) * p.y / (np.abs(h_fixed) ** 2 + p.noise_var)
    assert 10 * np.log10(np.mean(np.abs(wrong - z) ** 2)) > -3
    per_symbol = payload_estimate(Y[BODY:], est, LAYOUT, 512, "per-symbol")
    zs = np.conj(per_symbol.h) * per_symbol.y / (np.abs(per_symbol.h) ** 2 + per_symbol.noise_var)
    assert 10 * np.log10(np.mean(np.abs(zs - z) ** 2)) < -22


def test_pilots_track_a_timing_drift():
    """A sample-rate offset walks the FFT window: a phase slope across carriers growing over
    the frame (0.02 samples per symbol here, applied in the frequency domain)."""
    rng = np.random.default_rng(12)
    z, _, x = frame(rng)
    Y = LAYOUT.demodulate(through_channel(x, np.array([1.0]), 30.0, rng), LAYOUT.frame_symbols(512))
    carriers = np.where(np.arange(N) >= N // 2, np.arange(N) - N, np.arange(N))
    drift = 0.02 * (np.arange(Y.shape[0]) - 1.5)[:, None]
    Y = Y * np.exp(-2j * np.pi * drift * carriers[None, :] / N)
    est = estimate_channel(Y[1], Y[2], LAYOUT)
    p = payload_estimate(Y[BODY:], est, LAYOUT, 512, "linear")
    zhat = np.conj(p.h) * p.y / (np.abs(p.h) ** 2 + p.noise_var)
    assert 10 * np.log10(np.mean(np.abs(zhat - z) ** 2)) < -24


@pytest.mark.parametrize("taps", [(1.0,), (1.0, 0.6, 0.3)])
def test_sinr_estimate_from_payload_power(taps):
    """A symbol-aligned interferer on the payload only (silent on the user's preamble and
    header) at SINR 0 dB, SNR 20 dB: the mean estimate lands within 1 dB."""
    rng = np.random.default_rng(9)
    snr_db, sinr_db = 20.0, 0.0
    got, snr = [], []
    for _ in range(30):
        z, _, x = frame(rng)
        u = unit_symbols(512, rng)
        grid = np.zeros((LAYOUT.frame_symbols(512), N), np.complex64)
        d = LAYOUT.index(LAYOUT.data_carriers)
        grid[BODY:, d] = LAYOUT.spread_payload(u).reshape(-1, 48)
        pi = 1 / 10 ** (sinr_db / 10) - 1 / 10 ** (snr_db / 10)
        interference = LAYOUT.modulate(grid) * np.sqrt(pi) * np.exp(2j * np.pi * rng.random())
        Y = LAYOUT.demodulate(through_channel(x, random_taps(rng, np.asarray(taps)), snr_db, rng,
                                              interference=interference), LAYOUT.frame_symbols(512))
        est = estimate_channel(Y[1], Y[2], LAYOUT)
        p = payload_estimate(Y[BODY:], est, LAYOUT, 512)
        got.append(p.sinr_db)
        snr.append(p.snr_db)
    assert abs(np.mean(got) - sinr_db) < 1.0
    assert abs(np.mean(snr) - snr_db) < 0.5


@pytest.mark.parametrize("taps", [(1.0,), (1.0, 0.6, 0.3)])
@pytest.mark.parametrize("snr_db", [0.0, 5.0, 20.0, 30.0])
def test_no_interferer_reads_as_sinr_equal_to_snr(taps, snr_db):
    """Without an interferer the payload's power fluctuates (unknown |z_i|^2 on carriers of
    different |h_i|^2); the estimate does not mistake that for interference."""
    rng = np.random.default_rng(int(snr_db) + len(taps))
    gap = []
    for _ in range(40):
        _, _, x = frame(rng)
        Y = LAYOUT.demodulate(through_channel(x, random_taps(rng, np.asarray(taps)), snr_db, rng),
                              LAYOUT.frame_symbols(512))
        p = payload_estimate(Y[BODY:], estimate_channel(Y[1], Y[2], LAYOUT, 17), LAYOUT, 512)
        gap.append(p.snr_db - p.sinr_db)
    # at twice the standard error about 2 % of frames read interference that is not there
    assert np.median(gap) < 0.1 and np.mean(np.asarray(gap) > 0) <= 0.1


def test_sinr_standard_error_matches_the_spread_without_interference():
    """interference_variance against the spread of the raw estimate over frames (flat and
    3-tap, 0 and 20 dB): within 30 %."""
    from gnuradio.semcom.phy.estimate import interference_variance
    for taps in ((1.0,), (1.0, 0.6, 0.3)):
        for snr_db in (0.0, 20.0):
            rng = np.random.default_rng(int(snr_db) + 10 * len(taps))
            raw, predicted = [], []
            for _ in range(150):
                _, _, x = frame(rng)
                Y = LAYOUT.demodulate(through_channel(x, random_taps(rng, np.asarray(taps)), snr_db, rng),
                                      LAYOUT.frame_symbols(512))
                est = estimate_channel(Y[1], Y[2], LAYOUT, 17)
                p = payload_estimate(Y[BODY:], est, LAYOUT, 512)
                h2 = np.abs(p.h) ** 2 * p.gain
                y2 = np.abs(p.y) ** 2 * p.gain
                raw.append(np.mean(y2) - (np.mean(h2) - est.error_var) - est.noise_var)
                predicted.append(interference_variance(h2, p.gain, est.noise_var, 512, K))
            ratio = np.std(raw) / np.sqrt(np.mean(predicted))
            assert 0.7 < ratio < 1.3, (taps, snr_db, ratio)


def test_header_decodes_through_multipath_at_5_db():
    rng = np.random.default_rng(10)
    ok = 0
    for _ in range(100):
        _, header, x = frame(rng)
        Y = LAYOUT.demodulate(through_channel(x, random_taps(rng), 5.0, rng), BODY)
        est = estimate_channel(Y[1], Y[2], LAYOUT, 17)
        try:
            ok += decode_header(Y[PREAMBLE_SYMBOLS:], est, LAYOUT) == header
        except ValueError:
            pass
    assert ok >= 97, ok


def test_noiseless_frame_gives_a_finite_capped_snr():
    rng = np.random.default_rng(11)
    z, _, x = frame(rng)
    Y = LAYOUT.demodulate(x, LAYOUT.frame_symbols(512))
    est = estimate_channel(Y[1], Y[2], LAYOUT)
    p = payload_estimate(Y[BODY:], est, LAYOUT, 512)
    assert p.snr_db == pytest.approx(60.0, abs=0.5) and np.isfinite(p.sinr_db)
    np.testing.assert_allclose(p.y / p.h, z, atol=1e-4)
