"""What the OFDM receiver estimates from a frame (GNU Radio-free): the channel, the noise, the
phase drift, SNR and SINR. Nothing here decides on a payload symbol: the payload leaves
unequalized, with its per-symbol channel, for the scheme's own receiver.

All quantities are per carrier in the FFT domain of frame.py (unnormalised transforms).

- Channel: least squares from the mean of the two identical training symbols,
  h_c = (Y1_c + Y2_c) / (2 X_c). Optionally smoothed in the delay domain: projected onto the
  `taps` consecutive delays that hold the most energy of its zero-filled inverse DFT, which
  keeps taps/active of the noise for a channel inside that window.
- Noise: sigma^2 = sum_c |Y1_c - Y2_c|^2 / (2 (K - 1/2)) after the pair is brought to a common
  phase (a residual frequency offset rotates Y2 against Y1; that one real parameter is fitted,
  hence K - 1/2 complex degrees of freedom instead of K).
- Phase: the pilots of each later symbol against h give a common phase and a phase slope
  across carriers (timing drift, e.g. a sample-rate offset); "linear" fits both as straight
  lines over the frame's symbols (a residual CFO and an SRO are exactly that; least noise),
  "per-symbol" keeps each symbol's own (for phase noise).
- SNR = G / sigma^2 with G = mean_c |h_c|^2 - e, e the estimate's own noise per carrier
  (sigma^2/2 for the mean of two symbols; sigma^2/2 * taps/K after smoothing).
  SINR from the payload's power: E|y|^2 = E|h|^2 + P_i + sigma^2 (unit-power symbols), so
  P_i = mean |y|^2 - (mean |h|^2 - e) - sigma^2 over the payload's symbols, reported as 0
  unless it exceeds twice its standard error (the payload's power varies with the unknown
  |z_i|^2 on carriers of different |h_i|^2), and SINR = G / (P_i + sigma^2) <= SNR.
"""

from dataclasses import dataclass

import numpy as np

from .frame import DATA_CARRIERS, HEADER_SYMBOLS, PILOT_CARRIERS, PILOT_SYMBOLS, PREAMBLE_SYMBOLS, OfdmLayout
from .header import Header, unpack_header

TRACKING = ("linear", "per-symbol")
SIGNIFICANCE = 2.0      # standard errors the interference power must exceed to be reported
NOISE_FLOOR = 1e-6      # relative to the channel power: SNR estimates stop at 60 dB
# Symbol index (within the frame, S&C = 0) where the training pair's estimate holds: between them.
_LTS_TIME = 1.5


@dataclass
class ChannelEstimate:
    h: np.ndarray        # (fft_len,) complex, natural order; 0 off the active carriers
    noise_var: float     # per carrier, FFT domain
    rotation: float      # phase of LTS2 against LTS1 (rad): a residual frequency offset
    error_var: float = 0.0   # the variance of h's own estimation noise per carrier

    @property
    def gain(self) -> float:
        """G: the mean channel power over the data carriers, the LS estimate's noise removed."""
        data = np.asarray(DATA_CARRIERS) % self.h.size
        return float(max(np.mean(np.abs(self.h[data]) ** 2) - self.error_var, 1e-12))

    @property
    def snr_db(self) -> float:
        return float(10 * np.log10(self.gain / max(self.noise_var, 1e-30)))


def check_smooth_taps(taps, layout: OfdmLayout) -> int:
    """Smoothing taps of the channel estimate: 0 (off) .. active carriers - 1."""
    if isinstance(taps, bool) or int(taps) != taps or not 0 <= int(taps) < len(layout.active_carriers):
        raise ValueError(f"smoothing taps must be an integer in 0..{len(layout.active_carriers) - 1} "
                         f"(0 = off), got {taps!r}")
    return int(taps)


def derotate_fft(rows: np.ndarray, layout: OfdmLayout, cfo: float, first_symbol: int) -> np.ndarray:
    """Time-domain symbols without their cyclic prefixes (frame symbols first_symbol...) ->
    natural-order FFTs with the frequency offset removed. `cfo` is ofdm_sync_sc_cfb's fine
    offset (its output 0: the phase advance over half a symbol, radians), i.e. 2 cfo / fft_len
    radians per sample; the phase origin is the frame's first sample."""
    rows = np.atleast_2d(rows)
    m = first_symbol + np.arange(rows.shape[0])
    n = m[:, None] * layout.symbol_len + layout.cp_len + np.arange(layout.fft_len)[None, :]
    return np.fft.fft(rows * np.exp(-2j * cfo / layout.fft_len * n), axis=-1)


def refined_cfo(rows: np.ndarray, layout: OfdmLayout, cfo: float) -> float:
    """The sync's offset (from half-symbol correlations: noisy at low SNR) plus the residual
    that turns LTS2 against LTS1 one symbol later, measured over 52 carriers (unambiguous up
    to 0.8 subcarrier spacings). rows: the frame's first symbols (S&C, LTS, LTS, ...) without
    their cyclic prefixes; same units as derotate_fft's cfo."""
    Y = derotate_fft(rows[:PREAMBLE_SYMBOLS], layout, cfo, 0)
    return cfo + estimate_channel(Y[1], Y[2], layout).rotation * layout.fft_len / (2 * layout.symbol_len)


def smooth_channel(h: np.ndarray, layout: OfdmLayout, taps: int) -> np.ndarray:
    """Project the LS estimate on the active carriers onto the `taps` consecutive delays (of
    the fft_len, circularly) holding most of its energy (least squares)."""
    n = layout.fft_len
    if check_smooth_taps(taps, layout) < 1:
        raise ValueError("smoothing needs at least 1 tap")
    carriers = np.asarray(layout.active_carriers)
    values = h[carriers % n]
    delays = np.arange(n)
    profile = np.abs(np.exp(2j * np.pi * np.outer(delays, carriers) / n) @ values) ** 2
    window = np.convolve(np.concatenate([profile, profile[:taps - 1]]), np.ones(taps), "valid")[:n]
    start = int(np.argmax(window))
    chosen = (start + np.arange(taps)) % n
    chosen = np.where(chosen >= n // 2, chosen - n, chosen)   # signed delays
    basis = np.exp(-2j * np.pi * np.outer(carriers, chosen) / n)
    coef, *_ = np.linalg.lstsq(basis, values, rcond=None)
    out = np.zeros_like(h)
    out[carriers % n] = basis @ coef
    return out


def estimate_channel(y1: np.ndarray, y2: np.ndarray, layout: OfdmLayout, smooth_taps: int = 0) -> ChannelEstimate:
    """The two training symbols' FFTs (natural order) -> h, sigma^2 and their rotation."""
    act = layout.index(layout.active_carriers)
    x = layout.lts_word()[act]
    a, b = np.asarray(y1)[act], np.asarray(y2)[act]
    rotation = float(np.angle(np.sum(b * np.conj(a))))
    a, b = a * np.exp(0.5j * rotation), b * np.exp(-0.5j * rotation)
    k = act.size
    noise_var = float(np.sum(np.abs(a - b) ** 2) / (2 * (k - 0.5)))
    h = np.zeros(layout.fft_len, np.complex128)
    h[act] = (a + b) / (2 * x)
    # a noiseless input (a simulation without noise) caps the SNR estimate at 60 dB, not infinity
    noise_var = max(noise_var, NOISE_FLOOR * float(np.mean(np.abs(h[act]) ** 2)))
    error_var = noise_var / 2
    if smooth_taps:
        h = smooth_channel(h, layout, smooth_taps)
        error_var *= smooth_taps / k
    return ChannelEstimate(h=h, noise_var=noise_var, rotation=rotation, error_var=error_var)


def pilot_phases(body: np.ndarray, h: np.ndarray, layout: OfdmLayout, first_symbol: int,
                 tracking: str = "linear") -> np.ndarray:
    """Phase corrections of the symbols `body` (M, fft_len; frame symbols first_symbol...),
    (M, fft_len) unit phasors: body[m, c] ~ h[c] * phasor[m, c] * x[m, c]."""
    if tracking not in TRACKING:
        raise ValueError(f"tracking must be one of {TRACKING}, got {tracking!r}")
    body = np.atleast_2d(body)
    n = layout.fft_len
    pc = np.asarray(PILOT_CARRIERS)
    ref = h[pc % n] * np.asarray(PILOT_SYMBOLS)
    r = body[:, pc % n] * np.conj(ref)                        # (M, P), weighted by |h_p|^2
    common = np.unwrap(np.angle(r.sum(axis=1)))               # (M,)
    weights = np.abs(ref) ** 2
    residual = np.angle(r * np.exp(-1j * common)[:, None])
    slope = (residual * weights * pc).sum(axis=1) / max(float((weights * pc ** 2).sum()), 1e-30)
    if tracking == "linear" and body.shape[0] > 1:
        t = first_symbol + np.arange(body.shape[0]) - _LTS_TIME
        design = np.stack([np.ones_like(t), t], axis=1)
        common = design @ np.linalg.lstsq(design, common, rcond=None)[0]
        slope = design @ np.linalg.lstsq(design, slope, rcond=None)[0]
    carriers = np.where(np.arange(n) >= n // 2, np.arange(n) - n, np.arange(n))
    return np.exp(1j * (common[:, None] + slope[:, None] * carriers[None, :]))


def header_phases(hdr: np.ndarray, est: ChannelEstimate, layout: OfdmLayout) -> np.ndarray:
    """One common phase for the header symbols, with the drift the training pair measured
    (est.rotation per symbol): (M, 1) unit phasors. The frequency offset is already removed
    per frame, so what is left is small and steady; a phase and slope per symbol from only
    four pilots cost 2 dB of header sensitivity at 0 dB SNR."""
    hdr = np.atleast_2d(hdr)
    m = PREAMBLE_SYMBOLS + np.arange(hdr.shape[0]) - _LTS_TIME
    drift = np.exp(1j * est.rotation * m)[:, None]
    pc = np.asarray(PILOT_CARRIERS) % layout.fft_len
    ref = est.h[pc] * np.asarray(PILOT_SYMBOLS)
    common = np.angle(np.sum(hdr[:, pc] * np.conj(ref) * np.conj(drift)))
    return drift * np.exp(1j * common)


def decode_header(hdr: np.ndarray, est: ChannelEstimate, layout: OfdmLayout) -> Header:
    """The header symbols' FFTs -> the Header (HeaderError when it fails its check). The soft
    values Re(y conj(h)) / sigma^2 are the BPSK log-likelihood ratios up to a factor."""
    phases = header_phases(hdr, est, layout)
    d = layout.index(DATA_CARRIERS)
    soft = (hdr[:, d] * np.conj(est.h[d][None, :] * phases)).real
    return unpack_header(soft.ravel() / max(est.noise_var, 1e-30))


@dataclass
class PayloadEstimate:
    """One image's payload as the scheme's receiver gets it, in the unit-signal-power domain
    (everything divided by sqrt(G)): y = h z + i + n with mean |h|^2 ~ 1, E|n|^2 = 1/SNR."""
    y: np.ndarray            # (k,) complex: received, PN signs removed, not equalized
    h: np.ndarray            # (k,) complex: the channel of each symbol (phase tracking applied)
    noise_var: float         # 1 / SNR
    interference_power: float
    snr_db: float
    sinr_db: float
    gain: float              # G in the FFT domain (what the unit domain divided by)


def interference_variance(h2: np.ndarray, gain: float, noise_var: float, k: int, carriers: int) -> float:
    """Variance of the interference estimate without interference (FFT domain): the payload's
    power sum_i |h_i|^2 (|z_i|^2 - 1) / k over carriers of different gains (the image's
    symbols have mean |z|^2 = 1 exactly, so a flat channel adds nothing), its cross and noise
    terms (2 G sigma^2 + sigma^4) / k, the channel power's estimate G sigma^2 / K (the mean over
    carriers keeps its noise even when smoothed) and the noise estimate's sigma^4 / (K - 1/2)."""
    return float(np.var(h2) / k + (2 * gain * noise_var + noise_var ** 2) / k + gain * noise_var / carriers
                 + noise_var ** 2 / (carriers - 0.5))


def payload_estimate(body: np.ndarray, est: ChannelEstimate, layout: OfdmLayout, k: int,
                     tracking: str = "linear") -> PayloadEstimate:
    """The payload symbols' FFTs (n_payload, fft_len) -> y and per-symbol h of the k symbols."""
    body = np.atleast_2d(body)
    first = PREAMBLE_SYMBOLS + HEADER_SYMBOLS
    phases = pilot_phases(body, est.h, layout, first, tracking)
    d = layout.index(DATA_CARRIERS)
    y_slots = body[:, d].ravel()
    h_slots = (est.h[d][None, :] * phases[:, d]).ravel()
    y, h = layout.gather_payload(y_slots, k), layout.gather_payload(h_slots, k)
    signs = layout.pn_signs(k)
    y = y * signs                            # s y = h z + s n: the noise stays white
    g = est.gain
    signal = float(np.mean(np.abs(h) ** 2)) - est.error_var
    power = np.abs(y) ** 2
    interference = float(np.mean(power)) - signal - est.noise_var
    # Below SIGNIFICANCE standard errors the interference is reported as none rather than as
    # noise (a clipped estimate would report interference on every channel without any).
    error = np.sqrt(interference_variance(np.abs(h) ** 2, g, est.noise_var, k, len(layout.active_carriers)))
    if interference < SIGNIFICANCE * error:
        interference = 0.0
    scale = 1 / np.sqrt(g)
    noise = est.noise_var / g
    snr_db = float(10 * np.log10(1 / noise))
    sinr_db = float(10 * np.log10(1 / (noise + interference / g)))
    return PayloadEstimate(y=(y * scale).astype(np.complex64), h=(h * scale).astype(np.complex64),
                           noise_var=noise, interference_power=interference / g, snr_db=snr_db,
                           sinr_db=sinr_db, gain=g)


# Fine timing: how far (samples) either side of the sync's trigger the training pair is
# searched, and how many samples before the correlation peak the FFT windows then start (inside
# the cyclic prefix: a phase slope h absorbs; room for a receive filter's pre-cursor).
FINE_TIMING_SEARCH = 24
FINE_TIMING_BACKOFF = 3


def lts_time(layout: OfdmLayout) -> np.ndarray:
    """The training symbol's 64 time-domain samples (without prefix, unnormalised)."""
    return np.fft.ifft(layout.lts_word()) * layout.fft_len


def fine_timing(samples: np.ndarray, nominal: int, layout: OfdmLayout, cfo: float, lo: int, hi: int) -> int:
    """The shift d in [-lo, hi] of the frame's start that best fits the training pair:
    `nominal` indexes, in `samples`, where LTS1's FFT window starts if the trigger is right
    (trigger + symbol_len + cp_len); the score is |correlation with the known symbol|^2 summed
    over both training symbols, each window derotated by the sync's offset (derotate_fft's
    units). Ties go to the earliest d. Returns the peak's d (not yet backed off)."""
    ref = np.conj(lts_time(layout)) * np.exp(-2j * cfo / layout.fft_len * np.arange(layout.fft_len))
    best, best_d = -1.0, -lo
    for d in range(-lo, hi + 1):
        score = 0.0
        for s in (0, layout.symbol_len):
            start = nominal + d + s
            score += abs(np.dot(samples[start:start + layout.fft_len], ref)) ** 2
        if score > best:
            best, best_d = score, d
    return best_d
