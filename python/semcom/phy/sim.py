"""A numpy channel for frames of frame.py (GNU Radio-free): multipath taps, a frequency
offset, an interferer's samples and noise at a given per-carrier symbol SNR. Tests and
bench/bench_phy.py use it as the known channel the estimates are checked against; the
GNU Radio chain uses gr-channels instead."""

import numpy as np

from .frame import OfdmLayout


def unit_symbols(shape, rng) -> np.ndarray:
    """Complex Gaussian stand-ins for a scheme's symbols, each row scaled to mean |z|^2 = 1
    (as the schemes' transmitters normalise them), complex64."""
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return (z / np.sqrt(np.mean(np.abs(z) ** 2, axis=-1, keepdims=True))).astype(np.complex64)


def noise_variance(layout: OfdmLayout, snr_db: float) -> float:
    """Time-domain noise variance that gives a per-carrier symbol SNR of snr_db at unit mean
    sample power (the noise of the unused carriers does not count)."""
    return (layout.fft_len / len(layout.active_carriers)) / 10 ** (snr_db / 10)


def random_taps(magnitudes, rng) -> np.ndarray:
    """Taps of the given magnitudes with phases drawn from rng, unit total power."""
    magnitudes = np.asarray(magnitudes, float)
    taps = magnitudes * np.exp(2j * np.pi * rng.random(magnitudes.size))
    return taps / np.linalg.norm(taps)


def true_response(taps, layout: OfdmLayout, backoff_db: float = 0.0) -> np.ndarray:
    """The channel per carrier (natural order) in the receiver's FFT domain: what a perfect
    estimate of h would be (unnormalised FFT, the transmitter's scale included)."""
    return np.fft.fft(taps, layout.fft_len) * layout.fft_len * layout.tx_scale(backoff_db)


def through_channel(x, taps, snr_db, rng, layout: OfdmLayout, cfo=0.0, interference=None) -> np.ndarray:
    """Samples -> multipath -> + interference -> frequency offset (in subcarrier spacings)
    -> + noise at the per-carrier symbol SNR snr_db."""
    x = np.asarray(x)
    y = np.convolve(x, taps)[:x.size]
    if interference is not None:
        y = y + interference
    y = y * np.exp(2j * np.pi * cfo * np.arange(x.size) / layout.fft_len)
    sigma2 = noise_variance(layout, snr_db)
    return y + np.sqrt(sigma2 / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))
