#!/usr/bin/env bash
# The main job: set-up (idempotent), then the image-link demo on the shipped sample, offline:
# AWGN and Rayleigh, SNR 0/10/20 dB, no interferer and SINR 0 dB, through the GNU Radio
# flowgraph. Prints the table; writes CSV, plots and sample grids into runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python apps/run_link.py --dataset sample --channel awgn,rayleigh \
    --snr 0,10,20 --sinr inf,0 --engine gnuradio --out runs/demo "$@"
