#!/usr/bin/env bash
# The main job: set-up (idempotent), then, offline on the 32 CIFAR-10 images shipped with the
# module:
#  1. the image link through the GNU Radio flowgraph (the DeepJSCC user and a JSCC interferer,
#     MMSE receiver): AWGN and Rayleigh, SNR 0/10/20 dB, no interferer and SINR 0 dB;
#     table, CSV, plots and grids in runs/demo/ (extra arguments go to this run_link call,
#     e.g. --engine batch);
#  2. every scheme of the registry on the same images, channels and channel draws (the batch
#     engine; the schemes that run a network at the receiver on the first 8 images): a short
#     PSNR table, the PSNR/SSIM-vs-SNR figures and the sample grids in runs/demo/schemes/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python apps/run_link.py --dataset sample --channel awgn,rayleigh \
    --snr 0,10,20 --sinr inf,0 --engine gnuradio --out runs/demo "$@"
echo
echo "Every scheme on one link (bench/bench_schemes.py; the full tables in runs/demo/schemes/results.md):"
exec .venv/bin/python bench/bench_schemes.py --data sample --images 32 --diffusion-images 8 \
    --channels awgn,rayleigh --snr 0,10,20 --sinr inf --grid 4 --brief --out runs/demo/schemes
