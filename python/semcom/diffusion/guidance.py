"""Likelihood guidance for the joint (signal, interference) diffusion of ICDM.

The equalized observation in real form (ICDM Lemma 1, core.equalizer.lemma1):
    xhat = A x + B i + C e,   e ~ N(0, I),
with per-symbol complex coefficients a, b (A, B their 2x2 real forms: A diagonal for MMSE,
B a rotation-scaling) and real c. The diffusion chains run on unit-variance latents
x_u = x / s_x, i_u = i / s_i, so the model's A' = s_x A and B' = s_i B.

Gaussian-prior surrogate: given the chains at step t with Tweedie estimates x0, i0,
    xhat | x_t, i_t ~ N(A' x0 + B' i0, (1 - abar_t)(A'A'^T + B'B'^T) + C C^T),
a diagonal covariance (A'A'^T = s_x^2 |a|^2 I per symbol, likewise B'). Its gradient with
respect to x_t and i_t uses dx0/dx_t = sqrt(abar_t) I, exact for a unit Gaussian prior
(whose Tweedie estimate is sqrt(abar_t) x_t), and needs no backpropagation through the
network. Guided noise: eps~ = eps - sqrt(1 - abar_t) * zeta * grad.

The ablations of ICDM compute that gradient other ways (same sampler, same observation):
- "pigdm" (Song et al., 2023): the same Gaussian covariance, but the Jacobian of the Tweedie
  estimate is the network's own (a vector-Jacobian product by autograd);
- "dps" (Chung et al., 2023): no diffusion term in the covariance (just CC^T), autograd
  through the network, and DPS's step normalisation by the residual norm;
- "projection": no likelihood; the x_0 estimates are moved by the least-norm correction that
  makes A' x0 + B' i0 = xhat exactly (noise ignored), expressed as an eps guidance.
"""

from dataclasses import dataclass, field

import torch

from ..core.mapping import complex_to_real, real_to_complex


@dataclass
class LinearObservation:
    a: torch.Tensor        # (N, k) complex
    b: torch.Tensor        # (N, k) complex
    c: torch.Tensor        # (N, k) real
    scale_x: float = 1.0   # s_x: physical latent = s_x * diffusion latent
    scale_i: float = 1.0
    cov_x: object = None   # the priors' covariances on diffusion latents (2k, 2k): the
    cov_i: object = None   # "covariance" guidance needs them
    _eigh: dict = field(default_factory=dict, repr=False, compare=False)

    def set_priors(self, fits, scale: float):
        """Both chains' prior covariances from fitted Gaussians of physical latents (x, i),
        in diffusion units (cov / scale^2), with the eigenpairs the fits already hold."""
        for chain, fit in zip("xi", fits):
            values, vectors = fit.eigh()
            setattr(self, f"cov_{chain}", fit.cov.double() / scale ** 2)
            self._eigh[chain] = (values / scale ** 2, vectors)

    def prior_eigh(self, chain: str):
        """The eigenpairs of a chain's prior covariance ("x" or "i"), computed once per
        observation (one sampling run), not at every step."""
        if chain not in self._eigh:
            from .gaussian import psd_eigh
            self._eigh[chain] = psd_eigh(self.cov_x if chain == "x" else self.cov_i)
        return self._eigh[chain]

    def take(self, index) -> "LinearObservation":
        """The observation of some of the images (the priors and their eigenpairs shared)."""
        return LinearObservation(self.a[index], self.b[index], self.c[index], self.scale_x, self.scale_i,
                                 self.cov_x, self.cov_i, self._eigh)

    def mean(self, x0: torch.Tensor, i0: torch.Tensor) -> torch.Tensor:
        """A' x0 + B' i0 for real (N, 2k) diffusion-space estimates."""
        return complex_to_real(self.scale_x * self.a * real_to_complex(x0)
                               + self.scale_i * self.b * real_to_complex(i0))

    def variance(self, prior_var, noise: bool = True) -> torch.Tensor:
        """prior_var (A'A'^T + B'B'^T) + C C^T per real dimension, (N, 2k) (noise=False: no CC^T)."""
        v = prior_var * (self.scale_x ** 2 * self.a.abs().square() + self.scale_i ** 2 * self.b.abs().square())
        if noise:
            v = v + self.c.square()
        return torch.cat([v, v], dim=-1)

    def adjoint_a(self, r: torch.Tensor) -> torch.Tensor:
        """A'^T r (the transpose of a complex multiplication is by the conjugate)."""
        return complex_to_real(self.scale_x * self.a.conj() * real_to_complex(r))

    def adjoint_b(self, r: torch.Tensor) -> torch.Tensor:
        return complex_to_real(self.scale_i * self.b.conj() * real_to_complex(r))


def gaussian_log_likelihood(obs: LinearObservation, xhat, x0, i0, abar_t: float) -> torch.Tensor:
    """log N(xhat; A' x0 + B' i0, (1 - abar_t)(A'A'^T + B'B'^T) + CC^T), per sample (N,)."""
    var = obs.variance(1.0 - abar_t)
    r = xhat - obs.mean(x0, i0)
    return -0.5 * (r.square() / var + torch.log(2 * torch.pi * var)).sum(-1)


def gaussian_guidance(obs: LinearObservation, xhat, x0, i0, abar_t: float):
    """(grad wrt x_t, grad wrt i_t) of the Gaussian-prior surrogate log-likelihood."""
    r = (xhat - obs.mean(x0, i0)) / obs.variance(1.0 - abar_t)
    scale = abar_t ** 0.5
    return scale * obs.adjoint_a(r), scale * obs.adjoint_b(r)


def guided_eps(eps: torch.Tensor, grad: torch.Tensor, abar_t: float, zeta: float) -> torch.Tensor:
    """Classifier-guidance form: eps - sqrt(1 - abar_t) * zeta * grad log p(xhat | x_t, i_t)."""
    return eps - (1.0 - abar_t) ** 0.5 * zeta * grad


def dps_objective(obs: LinearObservation, xhat, x0, i0) -> torch.Tensor:
    """DPS's guidance objective per sample: -||(xhat - A' x0 - B' i0) / C||, whose gradient is
    the DPS step zeta / ||r|| * grad(-||r||^2 / 2) (up to the factor 2 folded into zeta)."""
    r = (xhat - obs.mean(x0, i0)) / obs.variance(0.0).sqrt().clamp_min(1e-12)
    return -r.square().sum(-1).sqrt()


def projection_guidance(obs: LinearObservation, xhat, x0, i0, abar_t: float):
    """The least-norm (dx0, di0) with A'(x0 + dx0) + B'(i0 + di0) = xhat, as guidance terms g
    such that guided_eps(eps, g, abar_t, zeta) moves the Tweedie estimate by zeta * dx0:
    g = sqrt(abar_t) / (1 - abar_t) * dx0."""
    r = (xhat - obs.mean(x0, i0)) / obs.variance(1.0, noise=False).clamp_min(1e-12)
    scale = abar_t ** 0.5 / (1.0 - abar_t)
    return scale * obs.adjoint_a(r), scale * obs.adjoint_b(r)


def posterior_covariance(eigh, abar_t: float):
    """(P, j) for a Gaussian prior of covariance V diag(values) V^T (`eigh` = (values, V)) on
    diffusion latents at step t: P = Cov(x_0 | x_t) = cov - abar cov K^-1 cov with
    K = abar cov + (1 - abar) I, kept factored (gaussian.Covariance: V diag(values (1 - abar) /
    (abar values + 1 - abar)) V^T), and the Tweedie Jacobian dE[x_0 | x_t]/dx_t = j P with
    j = sqrt(abar)/(1 - abar) (both symmetric)."""
    from .gaussian import Covariance
    values, vectors = eigh
    shrink = (1.0 - abar_t) / (abar_t * values + 1.0 - abar_t)
    return Covariance(values=values * shrink, vectors=vectors), abar_t ** 0.5 / (1.0 - abar_t)


def covariance_guidance(obs: LinearObservation, xhat, x0, i0, abar_t: float):
    """(grad wrt x_t, grad wrt i_t) of log N(xhat; A' x0 + B' i0, A' P_x A'^T + B' P_i B'^T + CC^T)
    with each chain's posterior covariance P = Cov(x_0 | x_t) and Tweedie Jacobian J from its
    prior covariance (obs.cov_x, obs.cov_i; posterior_covariance): exact for Gaussian priors, a
    moment-matched surrogate for others. Unlike the isotropic (1 - abar) I of "gaussian", it
    follows the priors' structure; S^-1 r per image by conjugate gradients on the factored P
    (a Cholesky only for images sharing coefficients, or where CG does not converge)."""
    from .gaussian import observation_solve
    px, jx = posterior_covariance(obs.prior_eigh("x"), abar_t)
    pi, ji = posterior_covariance(obs.prior_eigh("i"), abar_t)
    v = observation_solve(obs.scale_x * obs.a, obs.scale_i * obs.b, obs.c, px, pi,
                          xhat - obs.mean(x0, i0), iterative=True).to(xhat.dtype)
    gx = jx * px.right(obs.adjoint_a(v).double())   # J^T A'^T v (J symmetric)
    gi = ji * pi.right(obs.adjoint_b(v).double())
    return gx.to(xhat.dtype), gi.to(xhat.dtype)


GUIDANCE_KINDS = ("gaussian", "pigdm", "dps", "projection", "covariance")
