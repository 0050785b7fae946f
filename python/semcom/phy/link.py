"""The OFDM link in numpy, frame by frame (GNU Radio-free): what the batch engine runs for
`run_link --phy ofdm --engine batch`.

Each image's symbols go into a frame (frame.py), through multipath taps with phases drawn
per frame, plus a co-channel interferer (the other JSCC user's symbols on the payload's data
carriers only, symbol-aligned, silent on the user's preamble, header and pilots, through
its own taps) and noise; the receiver's FFTs are taken frame-aligned (no synchronisation:
that is the GNU Radio chain's job, phy_rx) and estimated and header-decoded as phy_rx does
(estimate.py; a header that fails its CRC loses the image), or given the truth
(`csi="genie"`: the true per-carrier channel, noise variance and SINR).

Powers: unit mean sample power for the user's frame and a per-carrier symbol SNR of snr_db
(sim.noise_variance); the interferer's payload power Pi = 1/SINR - 1/SNR relative to the
user's, as the simulated link's link_powers.
"""

from dataclasses import dataclass

import numpy as np

from . import sim
from .estimate import (ChannelEstimate, PayloadEstimate, check_smooth_taps, decode_header, estimate_channel,
                       payload_estimate)
from .frame import DATA_CARRIERS, HEADER_SYMBOLS, PREAMBLE_SYMBOLS, OfdmLayout
from .header import Header, HeaderError, pack_header

CSI = ("genie", "estimated")


@dataclass(frozen=True)
class OfdmChannel:
    """The numpy link's channel: tap magnitudes (phases drawn per frame), smoothing taps of
    the receiver's channel estimate, its phase tracking."""
    taps: tuple = (1.0,)
    smooth_taps: int = 17
    tracking: str = "linear"

    def __post_init__(self):
        mags = np.asarray(self.taps, float)
        if mags.ndim != 1 or mags.size < 1 or not np.all(np.isfinite(mags)) or np.any(mags < 0) or not mags.any():
            raise ValueError(f"taps must be a non-empty list of finite magnitudes >= 0, not all 0; got {self.taps}")
        if mags.size > OfdmLayout().cp_len + 1:
            raise ValueError(f"{mags.size} taps exceed the cyclic prefix ({OfdmLayout().cp_len} samples)")
        check_smooth_taps(self.smooth_taps, OfdmLayout())


def parse_taps(text: str) -> tuple:
    """'1,0.6,0.3' -> (1.0, 0.6, 0.3), checked (one clear ValueError)."""
    try:
        taps = tuple(float(t) for t in str(text).split(","))
    except ValueError:
        raise ValueError(f"malformed tap list {text!r} (expected magnitudes like '1,0.6,0.3')") from None
    OfdmChannel(taps)
    return taps


def send_frames(z: np.ndarray, u, snr_db: float, sinr_db: float, channel: OfdmChannel, csi: str,
                rng: np.random.Generator, scheme_id: int = 0) -> list:
    """Images' symbols z (N, k) (and the interferer's u (N, k) or None) -> one PayloadEstimate
    per image, as the receiver has it, or None where the header failed its CRC (estimated CSI
    only; the genie knows the header)."""
    if csi not in CSI:
        raise ValueError(f"csi must be one of {CSI}, got {csi!r}")
    layout = OfdmLayout()
    z = np.asarray(z, np.complex64)
    n, k = z.shape
    pi = 0.0 if u is None else 1 / 10 ** (sinr_db / 10) - 1 / 10 ** (snr_db / 10)
    first = PREAMBLE_SYMBOLS + HEADER_SYMBOLS
    out = []
    for i in range(n):
        x = layout.modulate(layout.grid(pack_header(Header(scheme_id, i % 2 ** 24, i % 2 ** 12, k)), z[i]))
        taps = sim.random_taps(channel.taps, rng)
        interference, g_taps = None, None
        if u is not None and pi > 0:
            g_taps = sim.random_taps(channel.taps, rng)
            burst = layout.modulate(layout.payload_only_grid(np.asarray(u[i], np.complex64)))
            interference = np.convolve(burst, g_taps)[:x.size] * np.sqrt(pi)
        y = sim.through_channel(x, taps, snr_db, rng, layout, interference=interference)
        Y = layout.demodulate(y, layout.frame_symbols(k))
        if csi == "estimated":
            est = estimate_channel(Y[1], Y[2], layout, channel.smooth_taps)
            try:   # the receiver decodes the header as phy_rx does: a failed one loses the image
                decode_header(Y[PREAMBLE_SYMBOLS:first], est, layout)
            except HeaderError:
                out.append(None)
                continue
            out.append(payload_estimate(Y[first:], est, layout, k, channel.tracking))
            continue
        # genie: the true channel of this frame, and the true noise and interference powers
        # relative to its mean power over the data carriers (the unit-signal-power domain)
        d = layout.index(DATA_CARRIERS)
        h = sim.true_response(taps, layout)
        gain = float(np.mean(np.abs(h[d]) ** 2))
        noise = layout.fft_len * sim.noise_variance(layout, snr_db) / gain
        inter = 0.0 if g_taps is None else pi * float(np.mean(np.abs(sim.true_response(g_taps, layout)[d]) ** 2)) / gain
        p = payload_estimate(Y[first:], ChannelEstimate(h=h, noise_var=noise * gain, rotation=0.0), layout, k,
                             channel.tracking)
        out.append(PayloadEstimate(y=p.y, h=p.h, noise_var=noise, interference_power=inter,
                                   snr_db=float(-10 * np.log10(noise)), sinr_db=float(-10 * np.log10(noise + inter)),
                                   gain=gain))
    return out
