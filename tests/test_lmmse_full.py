"""lmmse-full: the exact posterior mean under fitted full-covariance Gaussians, against a dense
closed-form oracle and Monte Carlo, and the shipped fits."""

import numpy as np
import pytest
import torch

from gnuradio.semcom import schemes
from gnuradio.semcom.core.models import default_models, gaussian_name
from gnuradio.semcom.diffusion.gaussian import FittedGaussian, GaussianConfig, posterior_mean, real_form_left


def random_gaussian(dim, gen, scale):
    """An anisotropic, correlated Gaussian: random mean, covariance L L^T with spread eigenvalues."""
    g = FittedGaussian(GaussianConfig(dim))
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))[0]
    spread = torch.logspace(-2, 0, dim, dtype=torch.float64) * scale
    g.cov.copy_(basis @ torch.diag(spread) @ basis.T)
    g.mean.copy_(0.3 * torch.randn(dim, generator=gen, dtype=torch.float64))
    return g


def dense_real_form(a):
    """The explicit 2k x 2k real matrix of per-symbol complex gains a (k,)."""
    k = a.shape[0]
    m = np.zeros((2 * k, 2 * k))
    for j in range(k):
        m[j, j], m[j, j + k] = a[j].real, -a[j].imag
        m[j + k, j], m[j + k, j + k] = a[j].imag, a[j].real
    return m


def setup(n=3, k=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    gx, gi = random_gaussian(2 * k, gen, 1.0), random_gaussian(2 * k, gen, 3.0)
    a = torch.complex(torch.randn(n, k, generator=gen), torch.randn(n, k, generator=gen))
    b = torch.complex(torch.randn(n, k, generator=gen), torch.randn(n, k, generator=gen)) * 0.7
    c = 0.1 + torch.rand(n, k, generator=gen)
    return gx, gi, a, b, c, gen


def test_real_form_left_is_the_dense_product():
    _, _, a, _, _, gen = setup()
    m = torch.randn(3, 12, 5, generator=gen, dtype=torch.float64)
    for n in range(3):
        np.testing.assert_allclose(real_form_left(a, m)[n].numpy(), dense_real_form(a[n].numpy()) @ m[n].numpy(),
                                   rtol=1e-6, atol=1e-9)


def test_posterior_mean_equals_the_dense_closed_form_with_anisotropic_correlated_priors():
    gx, gi, a, b, c, gen = setup()
    xhat = torch.randn(3, 12, generator=gen, dtype=torch.float64)
    got = posterior_mean(xhat, a, b, c, gx, gi, chunk=2)  # two chunks
    sx, si, mx, mi = (t.double().numpy() for t in (gx.cov, gi.cov, gx.mean, gi.mean))
    for n in range(3):
        am, bm = dense_real_form(a[n].numpy()), dense_real_form(b[n].numpy())
        cc = np.diag(np.concatenate([c[n].numpy(), c[n].numpy()]) ** 2)
        s = am @ sx @ am.T + bm @ si @ bm.T + cc
        want = mx + sx @ am.T @ np.linalg.solve(s, xhat[n].numpy() - am @ mx - bm @ mi)
        np.testing.assert_allclose(got[n].numpy(), want, rtol=1e-6, atol=1e-8)


def test_posterior_mean_error_is_the_posterior_variance_and_beats_the_isotropic_linear_estimate():
    """Monte Carlo on draws from the priors: the error equals the trace of the posterior
    covariance (closed form) and is below lmmse's, which assumes unit-power white latents."""
    k, n = 6, 4000
    gx, gi, a1, b1, c1, gen = setup(n=1, k=k, seed=1)
    a, b, c = a1.expand(n, -1), b1.expand(n, -1), c1.expand(n, -1)
    draw = lambda g: g.mean.double() + torch.randn(n, 2 * k, generator=gen, dtype=torch.float64) @ \
        torch.linalg.cholesky(g.cov.double()).T
    x, i = draw(gx), draw(gi)
    e = torch.randn(n, 2 * k, generator=gen, dtype=torch.float64)
    xhat = real_form_left(a, x[..., None])[..., 0] + real_form_left(b, i[..., None])[..., 0] + \
        torch.cat([c, c], -1).double() * e
    err = (posterior_mean(xhat, a, b, c, gx, gi, chunk=1000) - x).square().sum(1).mean().item()
    am, bm = dense_real_form(a1[0].numpy()), dense_real_form(b1[0].numpy())
    sx = gx.cov.double().numpy()
    s = am @ sx @ am.T + bm @ gi.cov.double().numpy() @ bm.T + np.diag(torch.cat([c1[0], c1[0]]).double().numpy() ** 2)
    closed = np.trace(sx - sx @ am.T @ np.linalg.solve(s, am @ sx))
    assert err == pytest.approx(closed, rel=0.05)
    # the white-latent linear estimate on the same draws is worse
    white = FittedGaussian(GaussianConfig(2 * k))
    white.cov.copy_(torch.eye(2 * k) * float(gx.cov.diagonal().mean()))
    white_i = FittedGaussian(GaussianConfig(2 * k))
    white_i.cov.copy_(torch.eye(2 * k) * float(gi.cov.diagonal().mean()))
    err_white = (posterior_mean(xhat, a, b, c, white, white_i, chunk=1000) - x).square().sum(1).mean().item()
    assert err < 0.8 * err_white


def test_shipped_fits_load_with_provenance_and_the_interferer_uses_its_bandwidth():
    """The fits are the priors' controls: same data, recorded. The retrained interferer's
    latents are no longer the near-low-rank toy issue 12 reported (171 of 1024 dimensions held
    99 % of the energy, under half the user's 667): the issue's goal, a rank within 20 % of the
    user's, is met (680; docs/models.md)."""
    from gnuradio.semcom.core.checkpoint import load_checkpoint
    from gnuradio.semcom.core.models import checkpoint_for
    ranks = {}
    for role in ("user", "interferer"):
        for channel in ("awgn", "rayleigh"):
            model, cfg, doc = load_checkpoint(checkpoint_for(gaussian_name(role, channel, 512)), "gaussian-fit")
            prov = doc["provenance"]
            assert prov["command"].startswith("python apps/fit_gaussian.py") and prov["train_data"]["images"] > 0
            assert cfg.dim == 1024 and torch.allclose(model.cov, model.cov.T)
            m = prov["metrics"]
            assert m["held_out_nll_per_dim"] < m["held_out_nll_per_dim_unit_gaussian"]
            ranks[role, channel] = m["effective_rank_99"]
    assert ranks["interferer", "awgn"] >= 0.8 * ranks["user", "awgn"]


def test_lmmse_full_on_the_link_beats_lmmse_on_awgn():
    """Measured on the shipped sample images (32, AWGN, SNR 20 dB, SINR 0 dB): the fitted
    statistics give a lower latent MSE than the white-latent linear receiver; NFE 0."""
    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.inference.local import LocalBackend
    from gnuradio.semcom.schemes.link_sim import simulate
    images = load_dataset("sample").images
    user, interferer = default_models("awgn", 512)
    run = {name: simulate(LocalBackend("cpu"), images, "awgn", 20.0, 0.0, user, interferer, name, seed=2)
           for name in ("lmmse", "lmmse-full")}
    assert run["lmmse-full"].nfe == 0 and len(run["lmmse-full"].received) == len(images)
    assert np.mean(run["lmmse-full"].latent_mse_db) < np.mean(run["lmmse"].latent_mse_db)
    assert schemes.get("lmmse-full").checkpoints("awgn", 512)[-2:] == [gaussian_name("user", "awgn", 512),
                                                                       gaussian_name("interferer", "awgn", 512)]


def test_fitted_gaussian_eps_is_minus_sigma_times_the_score():
    """E[eps | x_t] = -sigma_t grad log p_t(x_t), p_t = N(alpha m, alpha^2 S + sigma^2 I) in
    diffusion units (physical / scale): the closed form against autograd."""
    gx, _, _, _, _, gen = setup(k=5)
    scale, abar = 0.7, 0.3
    x = torch.randn(4, 10, generator=gen, dtype=torch.float64).requires_grad_(True)
    alpha, sigma = abar ** 0.5, (1 - abar) ** 0.5
    mean, cov = gx.mean.double() / scale, gx.cov.double() / scale ** 2
    p_t = torch.distributions.MultivariateNormal(alpha * mean, alpha ** 2 * cov + sigma ** 2 * torch.eye(10, dtype=torch.float64))
    score, = torch.autograd.grad(p_t.log_prob(x).sum(), x)
    torch.testing.assert_close(gx.eps(x.detach(), abar, scale), -sigma * score, rtol=1e-6, atol=1e-9)


def test_per_chain_priors_and_nfe_counts_only_networks():
    """prior_x / prior_i pick each chain's prior; Gaussian chains run no network (NFE 0), the
    unit-Gaussian per chain is the old prior=gaussian, and gaussian-full uses the fitted fits."""
    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.inference.local import LocalBackend
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    backend = LocalBackend("cpu")
    images = load_dataset("sample").images[:4]
    _, obs = equalized_batch(backend, images, images[::-1], "awgn", 20.0, 0.0, *default_models("awgn", 512), 1,
                             torch.Generator().manual_seed(0))
    run = lambda **opt: schemes.get("icdm").clean(type(obs)(**{**obs.__dict__, "options": dict(steps=4, **opt)}),
                                                  backend)
    unit, nfe_unit = run(prior="gaussian")
    per_chain, nfe_chain = run(prior_x="gaussian-unit", prior_i="gaussian-unit")
    torch.testing.assert_close(unit, per_chain, rtol=0, atol=0)
    assert nfe_unit == nfe_chain == 0
    full, nfe_full = run(prior_x="gaussian-full", prior_i="gaussian-full")
    assert nfe_full == 0 and not torch.allclose(full, unit)
    _, nfe_mixed = run(prior_i="gaussian-full")  # the signal chain's DiT alone runs
    _, nfe_dit = run()
    assert nfe_dit == 2 * nfe_mixed > 0


# ------------------------------------------------------------------ the exact surrogate (issue 12, item 3)
def test_covariance_guidance_samples_the_exact_posterior_of_anisotropic_gaussian_priors():
    """With Gaussian priors of different, correlated covariances for signal and interference
    and per-symbol complex gains, ICDM's sampler with the `covariance` surrogate (each chain's
    posterior covariance from its prior) draws exact posterior samples from noise: the error
    is twice the posterior mean's (E|x - x'|^2 = 2 tr P for x' an independent posterior draw),
    and the mean of M runs approaches the posterior mean ((1 + 1/M) times its error). The
    isotropic surrogate of ICDM misses it by far."""
    from gnuradio.semcom.diffusion.icdm import icdm_sample
    from gnuradio.semcom.diffusion.schedule import VPSchedule
    k, n = 8, 400
    (gx, gi), obs, xhat, x, (mx, _) = toy_link(n, k, seed=3)
    mse = lambda est: (est.double() - x).square().mean().item()
    best = mse(mx)
    schedule = VPSchedule.linear()
    eps = {g: (lambda z, t, g=g: g.eps(z, schedule.alphas_cumprod[t].item(), 1.0)) for g in (gx, gi)}

    def run(kind, seed):
        g = torch.Generator().manual_seed(seed)
        x_T, i_T = torch.randn(n, 2 * k, generator=g), torch.randn(n, 2 * k, generator=g)
        return icdm_sample(eps[gx], eps[gi], obs, xhat, schedule, x_T, i_T, 40, 2, "bh2", 1.0, 1.0, True, kind)[0]

    samples = [run("covariance", seed) for seed in range(8)]
    assert mse(samples[0]) == pytest.approx(2 * best, rel=0.1)
    assert mse(torch.stack(samples).mean(0)) == pytest.approx((1 + 1 / 8) * best, rel=0.1)
    assert mse(run("gaussian", 0)) > 2.3 * best


def test_icdm_runs_with_the_prior_covariance_surrogate_on_real_latents():
    """The scheme option: the fitted Gaussians' covariances reach the guidance (in diffusion
    units); the ablations keep their own guidance and have no such option."""
    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.inference.local import LocalBackend
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    backend = LocalBackend("cpu")
    images = load_dataset("sample").images[:2]
    _, obs = equalized_batch(backend, images, images[::-1], "rayleigh", 20.0, 0.0, *default_models("rayleigh", 512),
                             1, torch.Generator().manual_seed(0))
    obs.options = {"steps": 2, "surrogate": "prior-covariance", "prior_x": "gaussian-full", "prior_i": "gaussian-full"}
    latents, nfe = schemes.get("icdm").clean(obs, backend)
    assert latents.shape == (2, 1024) and torch.isfinite(latents).all() and nfe == 0
    obs.options = {"steps": 2}
    assert not torch.allclose(latents, schemes.get("icdm").clean(obs, backend)[0])
    with pytest.raises(ValueError, match="no option 'surrogate'"):
        schemes.check("icdm-dps", {"surrogate": "prior-covariance"})


def toy_link(n=64, k=8, seed=3):
    """Anisotropic correlated Gaussian signal and interference through per-symbol complex
    gains: (priors, obs, xhat, x, posterior means)."""
    from gnuradio.semcom.diffusion.gaussian import posterior_means
    from gnuradio.semcom.diffusion.guidance import LinearObservation
    gx, gi, a1, b1, c1, gen = setup(n=1, k=k, seed=seed)
    a, b, c = a1.expand(n, -1), b1.expand(n, -1), (0.2 + 0.3 * c1 / c1.max()).expand(n, -1)
    draw = lambda g: g.mean.double() + torch.randn(n, 2 * k, generator=gen, dtype=torch.float64) @ \
        torch.linalg.cholesky(g.cov.double()).T
    x, i = draw(gx), draw(gi)
    xhat = (real_form_left(a, x[..., None])[..., 0] + real_form_left(b, i[..., None])[..., 0]
            + torch.cat([c, c], -1).double() * torch.randn(n, 2 * k, generator=gen, dtype=torch.float64)).float()
    obs = LinearObservation(a, b, c, 1.0, 1.0, gx.cov.double(), gi.cov.double())
    return (gx, gi), obs, xhat, x, posterior_means(xhat, a, b, c, gx, gi)


@pytest.mark.parametrize("t_star", [30, 300, 999])
def test_icdm_from_the_posterior_mean_start_lands_on_the_closed_form_posterior_mean(t_star):
    """Gaussian priors, the exact (`covariance`) surrogate at zeta = 1 with the guided
    corrector: the guided flow is affine and its Tweedie estimate at x_t = sqrt(abar) E[x | xhat]
    is E[x | xhat] itself, so the deterministic sampler started there stays on the mean path
    and returns the closed-form posterior mean (not a sample: its error is tr P, not 2 tr P).
    With ICDM's isotropic surrogate the same start from T-1 drifts off it, to a larger error."""
    from gnuradio.semcom.diffusion.icdm import icdm_sample
    from gnuradio.semcom.diffusion.schedule import VPSchedule
    (gx, gi), obs, xhat, x, (mx, mi) = toy_link()
    schedule = VPSchedule.linear()
    eps = [lambda z, t, g=g: g.eps(z, schedule.alphas_cumprod[t].item(), 1.0) for g in (gx, gi)]
    root = schedule.alphas_cumprod[t_star].item() ** 0.5
    run = lambda kind: icdm_sample(*eps, obs, xhat, schedule, root * mx, root * mi, 6, 2, "bh2", 1.0, 1.0, True,
                                   kind, t_star)
    x0, i0 = run("covariance")
    torch.testing.assert_close(x0.double(), mx.double(), rtol=0, atol=2e-5)
    torch.testing.assert_close(i0.double(), mi.double(), rtol=0, atol=2e-5)
    if t_star == 999:
        mse = lambda est: (est.double() - x).square().mean().item()
        assert mse(run("gaussian")[0]) > 1.1 * mse(mx)


@pytest.mark.parametrize("channel,coherence", [("awgn", 1), ("rayleigh", 1), ("rayleigh", 16)])
def test_icdm_with_the_fitted_gaussians_reproduces_lmmse_full_on_real_latents(channel, coherence):
    """The scheme level: icdm with both chains' fitted Gaussians as priors, the prior-covariance
    surrogate at zeta = 1 and the posterior-mean start returns lmmse-full's estimate, for AWGN,
    i.i.d. Rayleigh and block fading (whose interferer Gaussian is folded per block), with
    every image at its own start step; no network runs."""
    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.inference.local import LocalBackend
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    backend = LocalBackend("cpu")
    images = load_dataset("sample").images[:3]
    _, obs = equalized_batch(backend, images, images[::-1], channel, 20.0, 0.0, *default_models(channel, 512),
                             coherence, torch.Generator().manual_seed(0))
    assert obs.coherence == coherence
    want, _ = schemes.get("lmmse-full").clean(obs, backend)
    obs.options = {"steps": 2, "surrogate": "prior-covariance", "prior_x": "gaussian-full", "prior_i": "gaussian-full",
                   "start": "posterior-mean", "zeta_x": 1.0, "zeta_i": 1.0, "guided_corrector": True}
    got, nfe = schemes.get("icdm").clean(obs, backend)
    assert nfe == 0
    torch.testing.assert_close(got, want, rtol=0, atol=2e-4 * want.abs().max().item())


def test_icdm_with_unit_gaussian_priors_is_lmmse():
    """The same configuration on white unit-power priors (prior=gaussian): the surrogate and
    the start follow each chain's prior kind, so icdm returns the interference-aware linear
    MMSE of white latents, `lmmse`."""
    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.inference.local import LocalBackend
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    backend = LocalBackend("cpu")
    images = load_dataset("sample").images[:3]
    _, obs = equalized_batch(backend, images, images[::-1], "awgn", 20.0, 0.0, *default_models("awgn", 512),
                             1, torch.Generator().manual_seed(0))
    want, _ = schemes.get("lmmse").clean(obs, backend)
    obs.options = {"steps": 2, "prior": "gaussian"}
    got, nfe = schemes.get("icdm").clean(obs, backend)
    assert nfe == 0
    torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=2e-4 * want.abs().max().item())


def test_an_images_icdm_result_does_not_depend_on_its_batch():
    """Each image starts at its own matched step (Rayleigh: they differ), and the posterior-mean
    start draws nothing: an image alone gets what it gets in a batch."""
    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.diffusion.matched_start import by_step, matched_steps
    from gnuradio.semcom.diffusion.schedule import VPSchedule
    from gnuradio.semcom.inference.local import LocalBackend
    from gnuradio.semcom.schemes.deepjscc import lemma1_observation
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    backend = LocalBackend("cpu")
    images = load_dataset("sample").images[:8]
    _, obs = equalized_batch(backend, images, images[::-1], "rayleigh", 20.0, 0.0, *default_models("rayleigh", 512),
                             1, torch.Generator().manual_seed(1))
    steps = matched_steps(lemma1_observation(obs), VPSchedule.linear())
    assert len(set(steps)) > 1
    groups = by_step(steps)
    assert sorted(torch.cat([idx for _, idx in groups]).tolist()) == list(range(8))
    assert all(steps[j] == t for t, idx in groups for j in idx.tolist())
    obs.options = {"steps": 3, "prior_x": "gaussian-full", "prior_i": "gaussian-full", "start": "posterior-mean"}
    batch, nfe = schemes.get("icdm").clean(obs, backend)
    for j in (0, 5):
        alone, _ = schemes.get("icdm").clean(obs.take(slice(j, j + 1)), backend)
        torch.testing.assert_close(alone[0], batch[j], rtol=0, atol=1e-4)


def test_fold_fading_is_the_covariance_of_block_faded_latents():
    """g u with g ~ CN(0, 1) constant over blocks of L symbols: the closed form against Monte
    Carlo for a correlated non-circular u with a mean; L = 1 leaves the diagonal E|u_j|^2 / 2."""
    from gnuradio.semcom.diffusion.gaussian import fold_fading
    k, n = 6, 400_000
    gen = torch.Generator().manual_seed(0)
    u_fit = random_gaussian(2 * k, gen, 1.0)
    x = u_fit.mean.double() + torch.randn(n, 2 * k, generator=gen, dtype=torch.float64) @ \
        torch.linalg.cholesky(u_fit.cov.double()).T
    u = torch.complex(x[:, :k], x[:, k:])
    for coherence in (1, 2, 3, 6):
        blocks = -(-k // coherence)
        g = torch.complex(torch.randn(n, blocks, generator=gen, dtype=torch.float64),
                          torch.randn(n, blocks, generator=gen, dtype=torch.float64)) / 2 ** 0.5
        gu = g.repeat_interleave(coherence, -1)[:, :k] * u
        r = torch.cat([gu.real, gu.imag], -1)
        empirical = r.T @ r / n
        folded = fold_fading(u_fit, coherence)
        assert folded.mean.abs().max() == 0
        torch.testing.assert_close(folded.cov.double(), empirical, rtol=0, atol=0.02)
    second = (u.abs().square()).mean(0) / 2
    torch.testing.assert_close(fold_fading(u_fit, 1).cov.double(), torch.diag(torch.cat([second, second])),
                               rtol=0, atol=0.01)
    with pytest.raises(ValueError, match="coherence"):
        fold_fading(u_fit, 0)


def test_the_shipped_rayleigh_interferer_fit_is_the_iid_fold_of_its_awgn_fit():
    """Both fits come from the same training latents: the i.i.d. Rayleigh one is what block
    fading's fold gives at coherence 1 (float32 storage apart)."""
    from gnuradio.semcom.core.checkpoint import load_checkpoint
    from gnuradio.semcom.core.models import checkpoint_for
    from gnuradio.semcom.diffusion.gaussian import KIND, fold_fading
    load = lambda name: load_checkpoint(checkpoint_for(name), kind=KIND)[0]
    awgn, rayleigh = load(gaussian_name("interferer", "awgn", 512)), load(gaussian_name("interferer", "rayleigh", 512))
    folded = fold_fading(awgn, 1).cov
    torch.testing.assert_close(folded.float(), rayleigh.cov, rtol=1e-4, atol=1e-7)


def test_observation_solve_shares_a_factorisation_between_images_with_the_same_coefficients():
    """AWGN gives every image the same a, b, c: one Cholesky serves them all, with the same
    result as the dense solve per image (here rows 0 and 2 share coefficients, row 1 not)."""
    from gnuradio.semcom.diffusion.gaussian import observation_solve
    gx, gi, a, b, c, gen = setup(n=3, k=4, seed=5)
    a, b, c = (t[[0, 1, 0]] for t in (a, b, c))
    r = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    got = observation_solve(a, b, c, gx.cov, gi.cov, r)
    for n in range(3):
        am, bm = dense_real_form(a[n].numpy()), dense_real_form(b[n].numpy())
        s = am @ gx.cov.double().numpy() @ am.T + bm @ gi.cov.double().numpy() @ bm.T + \
            np.diag(np.concatenate([c[n].numpy()] * 2) ** 2)
        np.testing.assert_allclose(got[n].numpy(), np.linalg.solve(s, r[n].numpy()), rtol=1e-7, atol=1e-9)


def test_conjugate_gradients_solve_the_observation_system_with_factored_covariances():
    """observation_cg on the factored posterior covariance equals the dense Cholesky solve
    (per-image fading gains, one deep fade); not converged within its iterations, an image
    falls back to the exact solve."""
    from gnuradio.semcom.diffusion.gaussian import Covariance, observation_cg, observation_solve
    from gnuradio.semcom.diffusion.guidance import posterior_covariance
    from gnuradio.semcom.diffusion.gaussian import psd_eigh
    gx, gi, a, b, c, gen = setup(n=4, k=6, seed=7)
    a[1, 2] = 1e-4  # a deep fade
    r = torch.randn(4, 12, generator=gen, dtype=torch.float64)
    px, _ = posterior_covariance(psd_eigh(gx.cov), 0.3)
    pi, _ = posterior_covariance(psd_eigh(gi.cov), 0.3)
    want = observation_solve(a, b, c, px.dense(), pi.dense(), r)       # Cholesky per image
    for got in (observation_cg(a, b, c, px, pi, r), observation_cg(a, b, c, px.dense(), pi, r),
                observation_cg(a, b, c, px, pi, r, max_iterations=1), observation_solve(a, b, c, px, pi, r, True)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(px.diagonal(6), px.dense().diagonal(6))
    torch.testing.assert_close(Covariance.of(gx.cov).right(r), r @ gx.cov.double())
