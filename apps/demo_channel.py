#!/usr/bin/env python3
"""Channel demo: two Gaussian-latent users through the GNU Radio link at several operating
points; prints the measured latent error beside its closed form.

Unit-power symbols, MMSE weight w = sqrt(Ps) conj(h) / (Ps|h|^2 + sigma^2) (the equalizer
knows sigma^2, not the interferer), a = sqrt(Ps) w h:
    E|zhat - z|^2 = E_h[ (1 - a)^2 + |w|^2 (sigma^2 + Pi) ]
with h = 1 for AWGN and |h|^2 ~ Exp(1) for Rayleigh (core.equalizer.mmse_symbol_error).
"""

import math

import numpy as np

from gnuradio import semcom
from gnuradio.semcom.core.channel import parse_db_list
from gnuradio.semcom.core.equalizer import mmse_symbol_error
from gnuradio.semcom.core.cli import ArgumentParser, run_main


def main(argv=None):
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--snr", default="0,10,20", help="SNR list in dB (default 0,10,20)")
    ap.add_argument("--sinr", default="inf,0", help="SINR list in dB; inf = no interferer")
    ap.add_argument("--channel", default="awgn,rayleigh", help="awgn, rayleigh or both")
    ap.add_argument("--k", type=int, default=512, help="complex symbols per latent")
    ap.add_argument("--count", type=int, default=20, help="latents per operating point")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        snrs, sinrs = parse_db_list(args.snr), parse_db_list(args.sinr)
    except ValueError as exc:
        ap.error(str(exc))
    channels = [c.strip() for c in args.channel.split(",")]
    for c in channels:
        if c not in ("awgn", "rayleigh"):
            ap.error(f"unknown channel {c!r} (expected awgn or rayleigh)")
    if args.k < 1 or args.count < 1:
        ap.error("--k and --count must be >= 1")

    print(f"{'channel':9s} {'SNR':>5s} {'SINR':>5s} {'latents':>7s} {'MSE dB':>8s} {'closed form':>11s}")
    for channel in channels:
        for snr in snrs:
            for sinr in sinrs:
                if not math.isinf(sinr) and sinr > snr:
                    continue
                tb = semcom.gaussian_link(args.k, args.count, snr, sinr, channel, seed=args.seed)
                tb.run()
                sent, received = tb.latents()
                # Latents are N(0,1) per real value; symbols unit power: compare in symbol units.
                mse = np.mean((received - sent) ** 2) / np.mean(sent ** 2)
                print(f"{channel:9s} {snr:5g} {sinr:5g} {len(sent):7d} {10 * math.log10(mse):8.2f} "
                      f"{10 * math.log10(mmse_symbol_error(channel, snr, sinr)):11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
