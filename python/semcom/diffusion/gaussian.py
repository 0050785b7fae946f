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

    def faded(self, coherence: int) -> "FittedGaussian":
        """fold_fading(self, coherence), kept for the next call (one eigendecomposition each)."""
        cache = self.__dict__.setdefault("_faded", {})
        if coherence not in cache:
            cache[coherence] = fold_fading(self, coherence)
        return cache[coherence]

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


def fold_fading(fit: FittedGaussian, coherence: int = 1) -> FittedGaussian:
    """The Gaussian of g u as received, for u ~ `fit` (the source as sent, g = 1) and an
    unknown Rayleigh gain g ~ CN(0, 1) held for `coherence` consecutive symbols (independent
    from block to block). g u has zero mean and is circular, with complex covariance
    E[g u (g u)^H] = M (.) B: u's complex second moment M = E[u u^H] kept within a block (B
    its block mask) and zero across blocks, so in real form
        Cov([Re; Im]) = 1/2 [[Re C, -Im C], [Im C, Re C]],   C = M (.) B.
    Coherence 1 (i.i.d. per symbol) leaves diag(E|u_j|^2) / 2: close to white, whatever
    structure u had. Longer blocks keep u's correlations within each block."""
    from ..core.channel import check_coherence
    check_coherence(coherence)
    d = fit.cfg.dim
    k = d // 2
    m = fit.cov.double() + torch.outer(fit.mean.double(), fit.mean.double())  # real-form second moment
    c_re = m[:k, :k] + m[k:, k:]           # E[u u^H] = E[p p^T + q q^T] + i E[q p^T - p q^T]
    c_im = m[k:, :k] - m[:k, k:]
    block = torch.arange(k, device=fit.cov.device) // int(coherence)
    mask = (block[:, None] == block[None, :]).double()
    c_re, c_im = c_re * mask, c_im * mask
    out = FittedGaussian(GaussianConfig(d)).to(fit.cov.device)
    out.cov.copy_(0.5 * torch.cat([torch.cat([c_re, -c_im], 1), torch.cat([c_im, c_re], 1)], 0))
    return out


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


class Covariance:
    """A symmetric (2k, 2k) covariance, dense or kept factored as V diag(values) V^T, through
    what the solvers need: products m @ C of a batch (N, 2k), the diagonal, the cross diagonal
    C[j, j + k] and the dense matrix (formed from factors only when asked)."""

    def __init__(self, dense: torch.Tensor = None, values: torch.Tensor = None, vectors: torch.Tensor = None):
        self._dense = None if dense is None else dense.double()
        self.values, self.vectors = values, vectors

    @classmethod
    def of(cls, cov) -> "Covariance":
        return cov if isinstance(cov, Covariance) else cls(dense=cov)

    def right(self, m: torch.Tensor) -> torch.Tensor:
        if self._dense is not None:
            return m @ self._dense
        return ((m @ self.vectors) * self.values) @ self.vectors.T  # two thin products, no (2k)^3 work

    def dense(self) -> torch.Tensor:
        if self._dense is None:
            self._dense = (self.vectors * self.values) @ self.vectors.T
        return self._dense

    def diagonal(self, offset: int = 0) -> torch.Tensor:
        if self._dense is not None:
            return self._dense.diagonal(offset)
        v = self.vectors
        return ((v[:v.shape[0] - offset] * v[offset:]) * self.values).sum(-1)


def observation_solve(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, cov_x: torch.Tensor,
                      cov_i: torch.Tensor, r: torch.Tensor, iterative: bool = False) -> torch.Tensor:
    """S^-1 r per image, S = A cov_x A^T + B cov_i B^T + C^2 the covariance of the Lemma-1
    observation A x + B i + C e for x, i of those covariances (a, b complex (N, k), c real
    (N, k), covariances (2k, 2k) dense or `Covariance`, r real (N, 2k)); float64. Images with the same coefficients
    share one factorisation (AWGN: the whole batch). Where they all differ (fading),
    `iterative` solves by conjugate gradients instead (observation_cg), whose products with
    the covariances serve the whole batch at once."""
    key = torch.cat([a.real, a.imag, b.real, b.imag, c], -1).double()
    unique, inverse = torch.unique(key, dim=0, return_inverse=True)
    if len(unique) == a.shape[0]:
        if iterative:
            return observation_cg(a, b, c, cov_x, cov_i, r)
        cov_x, cov_i = Covariance.of(cov_x).dense(), Covariance.of(cov_i).dense()
        return torch.cholesky_solve(r.double()[..., None], observation_cholesky(a, b, c, cov_x, cov_i))[..., 0]
    out = torch.empty(r.shape, dtype=torch.float64, device=r.device)
    cov_x, cov_i = Covariance.of(cov_x).dense(), Covariance.of(cov_i).dense()
    for u in range(len(unique)):
        rows = (inverse == u).nonzero()[:, 0]
        first = rows[:1]
        chol = observation_cholesky(a[first], b[first], c[first], cov_x, cov_i)[0]
        out[rows] = torch.cholesky_solve(r[rows].double().T, chol).T
    return out


CG_TOLERANCE = 1e-9   # relative residual ||r - S v|| / ||r|| at which observation_cg stops
CG_MAX_ITERATIONS = 300


def observation_cg(a, b, c, cov_x, cov_i, r, tol: float = CG_TOLERANCE,
                   max_iterations: int = CG_MAX_ITERATIONS) -> torch.Tensor:
    """S^-1 r (observation_solve) by conjugate gradients preconditioned with S's diagonal,
    all images at once: each iteration is two products of the batch with the (2k, 2k)
    covariances (S is never formed). Images not converged to `tol` after `max_iterations`
    are solved exactly (Cholesky), so the result is always the solve to that tolerance."""
    a, b, c, r = a.to(torch.complex128), b.to(torch.complex128), c.double(), r.double()
    cov_x, cov_i = Covariance.of(cov_x), Covariance.of(cov_i)
    c2 = torch.cat([c, c], -1).square()

    def apply(v):  # S v = A cov_x A^T v + B cov_i B^T v + C^2 v
        ax = cov_x.right(real_form_left(a.conj(), v[..., None])[..., 0])
        bi = cov_i.right(real_form_left(b.conj(), v[..., None])[..., 0])
        return real_form_left(a, ax[..., None])[..., 0] + real_form_left(b, bi[..., None])[..., 0] + c2 * v

    def diagonal(g, cov):  # diag(G cov G^T) for G the real form of g: per symbol j (rows j, j + k)
        k = g.shape[-1]
        d, cross = cov.diagonal(), cov.diagonal(k)     # cov[j, j], cov[j + k, j + k]; cov[j, j + k]
        gr, gi = g.real, g.imag
        top = gr.square() * d[:k] + gi.square() * d[k:] - 2 * gr * gi * cross
        bottom = gi.square() * d[:k] + gr.square() * d[k:] + 2 * gr * gi * cross
        return torch.cat([top, bottom], -1)

    precondition = 1.0 / (diagonal(a, cov_x) + diagonal(b, cov_i) + c2).clamp_min(1e-300)
    v = torch.zeros_like(r)
    res = r.clone()
    z = precondition * res
    p = z.clone()
    rz = (res * z).sum(-1)
    norm = r.norm(dim=-1).clamp_min(1e-300)
    for _ in range(max_iterations):
        if (res.norm(dim=-1) <= tol * norm).all():
            break
        sp = apply(p)
        step = rz / (p * sp).sum(-1).clamp_min(1e-300)
        v = v + step[:, None] * p
        res = res - step[:, None] * sp
        z = precondition * res
        rz_new = (res * z).sum(-1)
        p = z + (rz_new / rz.clamp_min(1e-300))[:, None] * p
        rz = rz_new
    left = (res.norm(dim=-1) > tol * norm).nonzero()[:, 0]
    if len(left):
        v[left] = torch.cholesky_solve(r[left][..., None], observation_cholesky(
            a[left], b[left], c[left], cov_x.dense(), cov_i.dense()))[..., 0]
    return v


def observation_cholesky(a, b, c, cov_x, cov_i) -> torch.Tensor:
    """The Cholesky factors (N, 2k, 2k) of S per image (observation_solve)."""
    n = a.shape[0]
    s = real_form_left(a, real_form_left(a, cov_x.double().expand(n, -1, -1)).transpose(1, 2)) + \
        real_form_left(b, real_form_left(b, cov_i.double().expand(n, -1, -1)).transpose(1, 2))
    s = s + torch.diag_embed(torch.cat([c, c], -1).double().square())
    # a relative jitter keeps S definite where it is not (no noise, no interferer, a
    # rank-deficient fit); it is far below any noise a link has
    s = s + 1e-10 * s.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * torch.eye(s.shape[-1], dtype=s.dtype, device=s.device)
    # S is symmetric positive definite: Cholesky (batched LU solves fail on some torch builds
    # when the thread count is set)
    return torch.linalg.cholesky(s)


def posterior_means(xhat: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                    x_prior: FittedGaussian, i_prior: FittedGaussian, chunk: int = 256):
    """(E[x | xhat], E[i | xhat]) for xhat = A x + B i + C e (real (N, 2k); a, b complex (N, k);
    c real (N, k), the Lemma-1 coefficients) under x ~ x_prior, i ~ i_prior, e ~ N(0, I).
    Float64 inside; `chunk` images at a time (each needs a 2k x 2k solve)."""
    out_x, out_i = [], []
    mx, sx, mi, si = (t.double() for t in (x_prior.mean, x_prior.cov, i_prior.mean, i_prior.cov))
    for s in range(0, xhat.shape[0], chunk):
        sl = slice(s, s + chunk)
        an, bn, cn = a[sl], b[sl], c[sl]
        n = an.shape[0]
        mean = real_form_left(an, mx.expand(n, -1)[..., None])[..., 0] + \
            real_form_left(bn, mi.expand(n, -1)[..., None])[..., 0]
        v = observation_solve(an, bn, cn, sx, si, xhat[sl].double() - mean, iterative=True)  # S^-1 (xhat - A mx - B mi)
        out_x.append(mx + real_form_left(an.conj(), v[..., None])[..., 0] @ sx)  # Sx A^T v (Sx symmetric)
        out_i.append(mi + real_form_left(bn.conj(), v[..., None])[..., 0] @ si)
    return torch.cat(out_x).to(xhat.dtype), torch.cat(out_i).to(xhat.dtype)


def posterior_mean(xhat: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                   x_prior: FittedGaussian, i_prior: FittedGaussian, chunk: int = 256) -> torch.Tensor:
    """E[x | xhat] (posterior_means)."""
    return posterior_means(xhat, a, b, c, x_prior, i_prior, chunk)[0]


register_kind(KIND, FittedGaussian, lambda d: GaussianConfig(**d), config_to_dict=asdict,
              describe=lambda cfg: {"k": cfg.dim // 2})
