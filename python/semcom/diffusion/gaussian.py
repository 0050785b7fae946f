"""Full-covariance Gaussians fitted to latents: the strongest simple control of a learned prior.

A `FittedGaussian` holds the mean and covariance of real latents x (dimension D = 2k, the
physical power-normalised domain [Re z; Im z]) fitted on training images
(apps/fit_gaussian.py). It serves two things:

- `posterior_mean`: the exact E[x | xhat] on the Lemma-1 observation xhat = A x + B i + C e
  when x and i are Gaussian (the `lmmse-full` scheme): with S = A Sx A^T + B Si B^T + C^2,
      E[x | xhat] = mx + Sx A^T S^-1 (xhat - A mx - B mi).
  A and B are per symbol the real forms of complex gains (2x2 rotation-scaling blocks acting
  on (Re, Im) of one symbol), so A M is a row operation, never a dense product.
- `eps`: the exact noise prediction of the Gaussian as a diffusion prior on unit-variance
  latents (a reference for learned priors).

Checkpoints are of kind "gaussian-fit" (core/checkpoint.py): tensors `mean` (D,) and `cov`
(D, D), provenance in the sidecar.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from ..core.checkpoint import register_kind

KIND = "gaussian-fit"


@dataclass
class GaussianConfig:
    dim: int = 1024  # 2k

    def __post_init__(self):
        if int(self.dim) != self.dim or self.dim < 2 or self.dim % 2:
            raise ValueError(f"dim must be an even integer >= 2, got {self.dim}")
        self.dim = int(self.dim)


class FittedGaussian(nn.Module):
    """N(mean, cov) over real latents of dimension cfg.dim (stored as float32, 4 MB for
    k = 512; every computation with them is in float64)."""

    def __init__(self, cfg: GaussianConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean", torch.zeros(cfg.dim))
        self.register_buffer("cov", torch.eye(cfg.dim))

    @classmethod
    def fit(cls, latents: torch.Tensor) -> "FittedGaussian":
        """Mean and (unbiased) covariance of latents (N, D), accumulated in float64."""
        x = torch.as_tensor(latents).double()
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"fit needs latents (N >= 2, D), got {tuple(x.shape)}")
        g = cls(GaussianConfig(x.shape[1]))
        mean = x.mean(0)
        centred = x - mean
        g.mean.copy_(mean)
        g.cov.copy_(centred.T @ centred / (x.shape[0] - 1))
        return g

    def eigh(self):
        """(eigenvalues, eigenvectors) of the covariance, float64, computed once (again only
        after the covariance changes)."""
        key = (self.cov.data_ptr(), self.cov._version)
        if getattr(self, "_eigh_key", None) != key:
            self._eigh, self._eigh_key = psd_eigh(self.cov), key
        return self._eigh

    def effective_rank(self, energy: float = 0.99) -> int:
        """How many eigen-directions hold `energy` of the latents' second moment about the mean."""
        values = self.eigh()[0].flip(0)
        return int((values.cumsum(0) / values.sum() < energy).sum().item()) + 1

    def eps(self, x_t: torch.Tensor, abar: float, scale: float) -> torch.Tensor:
        """E[eps | x_t] for diffusion latents x_t = sqrt(abar) x0 + sqrt(1-abar) eps with
        x0 = physical / scale ~ N(mean / scale, cov / scale^2):
        sigma (abar cov / scale^2 + sigma^2 I)^-1 (x_t - alpha mean / scale), in the covariance's
        eigenbasis (one product per step instead of a factorisation)."""
        values, vectors = self.eigh()
        return gaussian_eps(x_t, abar, scale, self.mean, values, vectors)


def gaussian_eps(x_t: torch.Tensor, abar, scale: float, mean: torch.Tensor, values: torch.Tensor,
                 vectors: torch.Tensor) -> torch.Tensor:
    """E[eps | x_t] of N(mean, V diag(values) V^T) (physical domain) as a diffusion prior on
    latents x0 = physical / scale, with (values, vectors) its eigendecomposition: the one
    computation of FittedGaussian.eps and of a DiT prior's Gaussian base. `abar` is a number
    (every row at one step) or a tensor of shape (N,) (one step per row); float64 inside, the
    result in x_t's dtype."""
    if isinstance(abar, torch.Tensor) and abar.ndim:
        abar = abar.to(torch.float64)[:, None]
        alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    else:
        abar = float(abar)
        alpha, sigma = abar ** 0.5, (1 - abar) ** 0.5
    r = x_t.double() - alpha * mean.double() / scale
    gain = sigma / (abar * values / scale ** 2 + sigma ** 2)
    return (((r @ vectors) * gain) @ vectors.T).to(x_t.dtype)


def psd_eigh(cov: torch.Tensor):
    """(eigenvalues >= 0, eigenvectors) of a covariance, in float64."""
    values, vectors = torch.linalg.eigh(cov.double())
    return values.clamp_min(0), vectors


# ---------------------------------------------------------------- the posterior mean
def real_form_left(a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """A @ m for A the real form of per-symbol complex gains a (N, k) ([[ar, -ai], [ai, ar]]
    on (Re_j, Im_j) = rows (j, j + k)), m (N, 2k, ...)."""
    k = a.shape[-1]
    ar, ai = a.real.to(m.dtype), a.imag.to(m.dtype)
    shape = (a.shape[0], k) + (1,) * (m.ndim - 2)
    ar, ai = ar.reshape(shape), ai.reshape(shape)
    top, bottom = m[:, :k], m[:, k:]
    return torch.cat([ar * top - ai * bottom, ai * top + ar * bottom], dim=1)


def observation_solve(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, cov_x: torch.Tensor,
                      cov_i: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """S^-1 r per image, S = A cov_x A^T + B cov_i B^T + C^2 the covariance of the Lemma-1
    observation A x + B i + C e for x, i of those covariances (a, b complex (N, k), c real
    (N, k), covariances (2k, 2k), r real (N, 2k)); float64. A M A^T = A (A M)^T, M symmetric."""
    n = a.shape[0]
    s = real_form_left(a, real_form_left(a, cov_x.double().expand(n, -1, -1)).transpose(1, 2)) + \
        real_form_left(b, real_form_left(b, cov_i.double().expand(n, -1, -1)).transpose(1, 2))
    s = s + torch.diag_embed(torch.cat([c, c], -1).double().square())
    # a relative jitter keeps S definite where it is not (no noise, no interferer, a
    # rank-deficient fit); it is far below any noise a link has
    s = s + 1e-10 * s.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * torch.eye(s.shape[-1], dtype=s.dtype)
    # S is symmetric positive definite: Cholesky (batched LU solves fail on some torch builds
    # when the thread count is set)
    return torch.cholesky_solve(r.double()[..., None], torch.linalg.cholesky(s))[..., 0]


def posterior_mean(xhat: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                   x_prior: FittedGaussian, i_prior: FittedGaussian, chunk: int = 32) -> torch.Tensor:
    """E[x | xhat] for xhat = A x + B i + C e (real (N, 2k); a, b complex (N, k); c real (N, k),
    the Lemma-1 coefficients) under x ~ x_prior, i ~ i_prior, e ~ N(0, I). Float64 inside;
    `chunk` images at a time (each needs a 2k x 2k solve)."""
    out = []
    mx, sx, mi, si = (t.double() for t in (x_prior.mean, x_prior.cov, i_prior.mean, i_prior.cov))
    for s in range(0, xhat.shape[0], chunk):
        sl = slice(s, s + chunk)
        an, bn, cn = a[sl], b[sl], c[sl]
        n = an.shape[0]
        mean = real_form_left(an, mx.expand(n, -1)[..., None])[..., 0] + \
            real_form_left(bn, mi.expand(n, -1)[..., None])[..., 0]
        v = observation_solve(an, bn, cn, sx, si, xhat[sl].double() - mean)   # S^-1 (xhat - A mx - B mi)
        out.append(mx + real_form_left(an.conj(), v[..., None])[..., 0] @ sx)  # Sx A^T v (Sx symmetric)
    return torch.cat(out).to(xhat.dtype)


register_kind(KIND, FittedGaussian, lambda d: GaussianConfig(**d), config_to_dict=asdict,
              describe=lambda cfg: {"k": cfg.dim // 2})
