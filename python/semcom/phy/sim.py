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


class FrameMultipath:
    """Multipath whose taps are redrawn at every frame start (random_taps, phases from rng),
    the filter's memory carried across calls: a frame's echo reaches into what follows it
    (the guard) with that frame's taps. What the batch engine's per-frame draw is, for a
    stream cut into buffers anywhere."""

    def __init__(self, magnitudes, rng):
        self.magnitudes = np.asarray(magnitudes, float)
        if self.magnitudes.ndim != 1 or not self.magnitudes.size or not np.all(np.isfinite(self.magnitudes)) \
                or np.any(self.magnitudes < 0) or not np.any(self.magnitudes > 0):
            raise ValueError(f"tap magnitudes must be a non-empty list of finite values >= 0, not all 0, "
                             f"got {magnitudes!r}")
        self.rng = rng
        self.taps = random_taps(self.magnitudes, rng)
        self.frames = 0
        self._history = np.zeros(self.magnitudes.size - 1, np.complex128)   # the last inputs, oldest first

    def apply(self, x, frame_starts=()) -> np.ndarray:
        """x: the next samples of the stream; frame_starts: indices into x where a frame
        begins (the taps are redrawn there, in order). Returns y, complex64, len(x)."""
        x = np.asarray(x, np.complex128)
        memory = self._history.size
        padded = np.concatenate([self._history, x])
        y = np.empty(x.size, np.complex128)
        cuts = sorted(int(i) for i in frame_starts if 0 <= i < x.size)
        edges = [0] + cuts + [x.size]
        for a, b, new in zip(edges[:-1], edges[1:], [False] + [True] * len(cuts)):
            if new:
                self.taps = random_taps(self.magnitudes, self.rng)
                self.frames += 1
            if b > a:
                # y[n] = sum_l taps[l] x[n - l], x before the buffer from the history
                y[a:b] = np.convolve(padded[a:b + memory], self.taps, mode="valid")
        if memory:
            self._history = padded[-memory:]
        return y.astype(np.complex64)
