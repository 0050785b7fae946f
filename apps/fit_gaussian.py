#!/usr/bin/env python3
"""Fit the full-covariance Gaussian of one latent source and save it: the control of the
diffusion prior of the same role (same training images, same encoder SNR), and the prior of
the `lmmse-full` scheme.

The latents are those a prior learns (apps/train_prior.py), in the physical domain
[Re z; Im z] of power-normalised symbols (mean |z|^2 = 1): the user's as sent (the receiver
knows h), the interferer's as received with its unknown gain g folded in. For AWGN g = 1;
for i.i.d. Rayleigh g ~ CN(0, 1) independently per symbol, so g u has zero mean and, in real
form, the diagonal covariance diag(E|u_j|^2) / 2 on both halves (closed form; no draws).

  .venv/bin/python apps/fit_gaussian.py --role user --channel awgn --k 512 \\
      --out python/semcom/checkpoints/gauss_user_awgn_k512

writes OUT.safetensors + OUT.json (kind "gaussian-fit"; provenance: command, data, images,
wall time, effective rank and held-out Gaussian NLL against the unit-power isotropic one).

The encoder is the shipped model of the role (core/models.py jscc_model_for: the user's for
that channel, the interferer's one AWGN-trained model); --encoder PATH fits the latents of
another JSCC checkpoint instead (a candidate model, e.g. to read its effective rank before
shipping it).
"""

import shlex
import sys
import time

import torch

from gnuradio.semcom.core.checkpoint import save_checkpoint
from gnuradio.semcom.core.cli import ArgumentParser, run_main
from gnuradio.semcom.core.mapping import complex_to_real
from gnuradio.semcom.core.models import jscc_model_for
from gnuradio.semcom.diffusion.gaussian import KIND, FittedGaussian, GaussianConfig
from gnuradio.semcom.diffusion.prior_eval import encode_symbols
from gnuradio.semcom.inference.local import LocalBackend

# The priors' training images (apps/train_prior.py), so the control sees the same data.
TRAIN = {"user": "cifar10_train_batch1+cifar10_train_batch2", "interferer": "cifar10_train_batch3"}
HELD_OUT = "cifar10_test[:500]"


def fit(z, role, channel) -> FittedGaussian:
    if role == "interferer" and channel == "rayleigh":
        power = z.abs().square().double().mean(0) / 2           # E|u_j|^2 / 2 per real dimension
        g = FittedGaussian(GaussianConfig(2 * z.shape[1]))     # mean 0
        g.cov.copy_(torch.diag(torch.cat([power, power])))
        return g
    return FittedGaussian.fit(complex_to_real(z))


def nll_per_dim(g: FittedGaussian, x: torch.Tensor) -> float:
    """Mean negative log-likelihood per dimension (nats) of latents x (N, D) under g."""
    d = x.shape[1]
    dist = torch.distributions.MultivariateNormal(g.mean.double(), covariance_matrix=g.cov.double()
                                                  + 1e-9 * torch.eye(d, dtype=torch.float64))
    return float(-dist.log_prob(x.double()).mean() / d)


def main(argv=None):
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--role", choices=("user", "interferer"), required=True)
    ap.add_argument("--channel", choices=("awgn", "rayleigh"), default="awgn")
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--encoder-snr", type=float, default=20.0, help="SNR the encoder is told (the priors': 20)")
    ap.add_argument("--data", default="", help=f"training images (default: the prior's, {TRAIN})")
    ap.add_argument("--seed", type=int, default=0, help="the held-out Rayleigh gains' draws")
    ap.add_argument("--encoder", default="", metavar="CHECKPOINT",
                    help="the JSCC model whose latents are fitted: a shipped name or a path without "
                         "extension (default: the role's shipped model, core/models.py jscc_model_for)")
    ap.add_argument("--out", required=True, help="output path without extension")
    args = ap.parse_args(argv)
    t0 = time.time()
    torch.manual_seed(args.seed)
    backend = LocalBackend("cpu")
    model = args.encoder or jscc_model_for(args.role, args.channel, args.k, (32, 32, 3))
    spec = args.data or TRAIN[args.role]
    z, n = encode_symbols(backend, model, spec, args.encoder_snr)
    if z.shape[1] != args.k:
        ap.error(f"--encoder {model} sends {z.shape[1]} symbols per image, not --k {args.k}")
    g = fit(z, args.role, args.channel)
    held, _ = encode_symbols(backend, model, HELD_OUT, args.encoder_snr)
    if args.role == "interferer" and args.channel == "rayleigh":
        held = held * torch.randn(held.shape, dtype=held.dtype, generator=torch.Generator().manual_seed(args.seed))
    x_held = complex_to_real(held)
    unit = FittedGaussian(GaussianConfig(x_held.shape[1]))
    unit.cov.copy_(torch.eye(x_held.shape[1]) / 2)  # unit power per complex symbol, isotropic
    provenance = {
        "command": "python apps/fit_gaussian.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "role": args.role, "channel": args.channel, "k": args.k, "encoder": model,
        "encoder_snr_db": args.encoder_snr, "train_data": {"spec": spec, "images": n},
        "held_out": {"spec": HELD_OUT, "images": len(x_held)},
        "latent_domain": "physical [Re z; Im z], mean |z|^2 = 1 per image",
        "gain_folded": "g ~ CN(0, 1) i.i.d. per symbol (closed-form covariance)"
        if (args.role, args.channel) == ("interferer", "rayleigh") else "g = 1",
        "seed": args.seed, "wall_time_s": round(time.time() - t0, 1),
        "metrics": {"effective_rank_99": g.effective_rank(0.99),
                    "held_out_nll_per_dim": nll_per_dim(g, x_held),
                    "held_out_nll_per_dim_unit_gaussian": nll_per_dim(unit, x_held)},
    }
    save_checkpoint(args.out, g, g.cfg, provenance, kind=KIND, info={"role": args.role, "channel": args.channel})
    m = provenance["metrics"]
    print(f"{args.out}: {n} images, effective rank {m['effective_rank_99']} of {g.cfg.dim}, held-out NLL "
          f"{m['held_out_nll_per_dim']:.4f} nats/dim (unit Gaussian {m['held_out_nll_per_dim_unit_gaussian']:.4f}), "
          f"{provenance['wall_time_s']} s")
    return 0


if __name__ == "__main__":
    run_main(main, "nothing written")
