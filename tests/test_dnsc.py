"""Latent-Diff DNSC's receiver maths (diffusion/dnsc.py) against closed forms and Monte Carlo:
the blind SNR estimator, the matched start step and state, the reverse chains on a Gaussian
prior. The scheme itself: test_dnsc_scheme.py."""

import math

import numpy as np
import pytest
import torch

from gnuradio.semcom.core.mapping import LATENT_SCALE, to_symbols
from gnuradio.semcom.diffusion import dnsc
from gnuradio.semcom.diffusion.guidance import LinearObservation
from gnuradio.semcom.diffusion.matched_start import matched_start
from gnuradio.semcom.diffusion.schedule import VPSchedule

SCHEDULE = VPSchedule.linear()


def unit_block(n, k, power, gen):
    """n complex blocks of k symbols, power-normalised per image (mean|z|^2 = power)."""
    z, _ = to_symbols(torch.randn(n, 2 * k, generator=gen, dtype=torch.float64), power)
    return z


def cn(shape, var, gen):
    return math.sqrt(var / 2) * torch.complex(torch.randn(shape, generator=gen, dtype=torch.float64),
                                              torch.randn(shape, generator=gen, dtype=torch.float64))


# ---------------------------------------------------------------- the blind estimator
@pytest.mark.parametrize("power,sigma2", [(1.0, 1.0), (1.0, 0.1), (2.0, 0.02)])
def test_blind_estimator_is_unbiased_with_the_closed_form_variance(power, sigma2):
    """sigma^2 = mean|y|^2 - P on AWGN: mean sigma^2, variance (2 P sigma^2 + sigma^4)/k (spec section 2)."""
    gen, n, k = torch.Generator().manual_seed(1), 20000, 512
    z = unit_block(n, k, power, gen)
    y = z + cn((n, k), sigma2, gen)
    est = dnsc.blind_noise_var(y, torch.ones_like(y), power, floor=-math.inf).double()
    std = dnsc.blind_noise_var_std(sigma2, power, k)
    se_mean = std / math.sqrt(n)
    assert abs(est.mean().item() - sigma2) < 4 * se_mean
    # the sample variance of n draws has relative SE sqrt(2 / n) = 1 %: 4 SE
    assert est.var().item() == pytest.approx(std ** 2, rel=4 * math.sqrt(2 / n))


def test_blind_estimator_floors_a_noiseless_block_and_checks_shapes():
    gen = torch.Generator().manual_seed(2)
    z = unit_block(3, 64, 1.0, gen)
    est = dnsc.blind_noise_var(z, torch.ones_like(z), 1.0)
    assert torch.all(est == dnsc.MIN_NOISE_VAR)
    with pytest.raises(ValueError, match="one shape"):
        dnsc.blind_noise_var(z, torch.ones(3, 63, dtype=z.dtype), 1.0)
    with pytest.raises(ValueError, match="power"):
        dnsc.blind_noise_var(z, torch.ones_like(z), 0.0)


def test_blind_estimator_with_known_fading_is_unbiased():
    """E mean|hz + n|^2 = P mean|h|^2 + sigma^2 when mean|z|^2 = P exactly and h is independent of z."""
    gen, n, k, sigma2 = torch.Generator().manual_seed(3), 4000, 512, 0.3
    h = cn((n, k), 1.0, gen)
    y = h * unit_block(n, k, 1.0, gen) + cn((n, k), sigma2, gen)
    est = dnsc.blind_noise_var(y, h, 1.0, floor=-math.inf).double()
    se = est.std().item() / math.sqrt(n)
    assert abs(est.mean().item() - sigma2) < 4 * se


# ---------------------------------------------------------------- the matched start
def test_start_step_is_the_first_step_with_at_least_the_noise_and_matches_the_spec_table():
    abar = SCHEDULE.alphas_cumprod
    for snr_db in np.arange(-10, 31, 0.7):
        v = 10 ** (-snr_db / 10)
        t = dnsc.start_step(SCHEDULE, v)
        assert abar[t] <= 1 / (1 + v) < abar[t - 1]
    # ../shared/papers/dnsc.md section 2 (DDPM's 1-based t): -10 .. 30 dB
    spec = [486, 374, 260, 162, 94, 52, 28, 14, 7]
    assert [dnsc.start_step(SCHEDULE, 10 ** (-d / 10)) + 1 for d in range(-10, 31, 5)] == spec
    assert dnsc.start_step(SCHEDULE, 1e9) == SCHEDULE.num_steps - 1
    with pytest.raises(ValueError):
        dnsc.start_step(SCHEDULE, -1.0)


def _awgn_observation(u, v):
    """LinearObservation of zhat = z + n for unit-power symbols z (diffusion latent u = z / LATENT_SCALE),
    noise variance v per real dimension of u: c = LATENT_SCALE sqrt(v)."""
    n, k = u.shape[0], u.shape[1] // 2
    a = torch.ones(n, k, dtype=torch.complex128)
    c = torch.full((n, k), LATENT_SCALE * math.sqrt(v), dtype=torch.float64)
    return LinearObservation(a, torch.zeros_like(a), c, LATENT_SCALE, LATENT_SCALE)


def test_matched_state_is_an_exact_forward_state():
    """sqrt(abar_t*) r plus the top-up sqrt(1 - abar_t*/abar*) eps (closed form, the same eps), and
    its noise around sqrt(abar_t*) u has variance 1 - abar_t* (Monte Carlo)."""
    gen, n, k = torch.Generator().manual_seed(4), 64, 512
    for snr_db in (0.0, 7.3, 20.0):
        v = 10 ** (-snr_db / 10)
        u = torch.randn(n, 2 * k, generator=gen, dtype=torch.float64)
        r = u + math.sqrt(v) * torch.randn(n, 2 * k, generator=gen, dtype=torch.float64)
        lin = _awgn_observation(u, v)
        t = dnsc.start_step(SCHEDULE, v)
        x_t = matched_start(lin, LATENT_SCALE * r, SCHEDULE, t, "x", torch.Generator().manual_seed(9))
        eps = torch.randn(r.shape, generator=torch.Generator().manual_seed(9), dtype=r.dtype)
        abar_t, abar_star = SCHEDULE.alphas_cumprod[t].item(), 1 / (1 + v)
        closed = math.sqrt(abar_t) * r + math.sqrt(1 - abar_t / abar_star) * eps
        torch.testing.assert_close(x_t, closed, rtol=1e-10, atol=1e-10)
        noise = (x_t - math.sqrt(abar_t) * u).flatten()
        assert noise.var().item() == pytest.approx(1 - abar_t, rel=4 * math.sqrt(2 / noise.numel()))


# ---------------------------------------------------------------- the reverse chains on a Gaussian prior
def unit_gaussian_eps(x, t):
    return SCHEDULE.sigma(t).item() * x


def test_tweedie_with_a_unit_gaussian_prior_is_the_shrinkage():
    """E[u | r] = snr/(1+snr) r: from the matched state of a grid noise level, one evaluation."""
    gen = torch.Generator().manual_seed(5)
    t = 161
    v = dnsc.step_noise_var(SCHEDULE, t)
    r = torch.randn(8, 1024, generator=gen, dtype=torch.float64) * math.sqrt(1 + v)
    x0, nfe = dnsc.reverse_chain(unit_gaussian_eps, SCHEDULE.alphas_cumprod[t].sqrt().item() * r, SCHEDULE, t,
                                 "tweedie")
    torch.testing.assert_close(x0, (1 / v) / (1 + 1 / v) * r, rtol=1e-10, atol=1e-12)
    assert nfe == 1


def test_ancestral_ddpm_on_a_unit_gaussian_prior_follows_its_closed_form():
    """With eps = sigma_t x every ancestral step is x <- m_t x + s_t y, so from x_t* the output is
    Gaussian with mean (prod m) x_t* and a variance by the recursion V <- m^2 V + s_t^2 (closed
    form); Monte Carlo agrees. The mean is the posterior's, sqrt(abar) x_t*. With the exact
    reverse variance of Gaussian data, beta~_t + c_t^2 Var[u | x_t] (c_t the posterior mean's
    x_0 coefficient), the same recursion gives the posterior variance 1 - abar exactly;
    DDPM's beta~_t leaves out the second term, so its samples are narrower."""
    t_star, dim = 93, 40000
    abar = SCHEDULE.alphas_cumprod
    x_t = torch.full((1, dim), 0.7, dtype=torch.float64)   # one observation, many independent dimensions
    out = dnsc.ddpm_ancestral(unit_gaussian_eps, x_t, SCHEDULE, t_star, torch.Generator().manual_seed(6))
    gain, var, var_exact = 1.0, 0.0, 0.0
    for t in range(t_star, -1, -1):
        a_t, a_prev = abar[t].item(), (abar[t - 1].item() if t > 0 else 1.0)
        alpha, beta = a_t / a_prev, 1 - a_t / a_prev
        m = (1 - beta / math.sqrt(1 - a_t) * math.sqrt(1 - a_t)) / math.sqrt(alpha)
        s2 = beta * (1 - a_prev) / (1 - a_t)
        c = math.sqrt(a_prev) * beta / (1 - a_t)
        gain, var, var_exact = m * gain, m * m * var + s2, m * m * var_exact + s2 + c * c * (1 - a_t)
    se = math.sqrt(var / dim)
    assert abs(out.mean().item() - gain * 0.7) < 4 * se
    assert out.var().item() == pytest.approx(var, rel=4 * math.sqrt(2 / dim))
    a = abar[t_star].item()
    assert gain == pytest.approx(math.sqrt(a), rel=1e-9)
    assert var_exact == pytest.approx(1 - a, rel=1e-9)
    assert var < var_exact


def test_ddim_and_unipc_chains_count_their_evaluations():
    x = torch.randn(2, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for sampler, steps, want in (("ddim", 5, 5), ("unipc", 5, 5), ("ddpm", 5, 41), ("ddim", 100, 41)):
        _, nfe = dnsc.reverse_chain(unit_gaussian_eps, x, SCHEDULE, 40, sampler, steps)
        assert nfe == want
    with pytest.raises(ValueError, match="sampler"):
        dnsc.reverse_chain(unit_gaussian_eps, x, SCHEDULE, 40, "euler")


def test_ancestral_ddpm_with_staggered_starts():
    """Rows with different start steps in one batch: with one start for all rows it is the
    single-start chain draw for draw; with several, each row is Gaussian with its own start's
    closed-form mean sqrt(abar_t) x_t (unit Gaussian prior), and rows not yet started wait."""
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    one = dnsc.ddpm_ancestral(unit_gaussian_eps, x, SCHEDULE, 30, torch.Generator().manual_seed(1))
    same = dnsc.ddpm_ancestral(unit_gaussian_eps, x, SCHEDULE, [30] * 4, torch.Generator().manual_seed(1))
    torch.testing.assert_close(one, same, rtol=0, atol=0)
    starts, dim = [5, 93, 40], 30000
    x = torch.full((3, dim), 0.7, dtype=torch.float64)
    calls = []

    def eps(rows, t):
        calls.append(len(rows))
        return unit_gaussian_eps(rows, t)
    out = dnsc.ddpm_ancestral(eps, x, SCHEDULE, starts, torch.Generator().manual_seed(2))
    assert len(calls) == max(starts) + 1 and sum(calls) == sum(t + 1 for t in starts)
    for row, t in zip(out, starts):
        gain = SCHEDULE.alphas_cumprod[t].sqrt().item()
        assert abs(row.mean().item() - gain * 0.7) < 4 * row.std().item() / math.sqrt(dim)
    with pytest.raises(ValueError, match="start step"):
        dnsc.ddpm_ancestral(unit_gaussian_eps, x, SCHEDULE, [5, 6])


def test_blind_estimator_under_rayleigh_fading_weights_the_deep_fades():
    """i.i.d. Rayleigh, 20 dB, latents with per-symbol structure (|z_i|^2 far from P): the plain
    moment estimate's error P std(|h|^2)/sqrt(k) swamps sigma^2 = 0.01 (many images floored);
    the inverse-variance weighted estimate is unbiased and at least 3x tighter."""
    gen, n, k, sigma2 = torch.Generator().manual_seed(9), 2000, 512, 0.01
    h = cn((n, k), 1.0, gen)
    z = unit_block(n, k, 1.0, gen) * torch.linspace(0.3, 1.7, k, dtype=torch.float64)   # uneven symbol powers
    z = z / z.abs().square().mean(-1, keepdim=True).sqrt()
    y = h * z + cn((n, k), sigma2, gen)
    plain = (y.abs().square() - h.abs().square()).mean(-1)
    est = dnsc.blind_noise_var(y, h, 1.0, floor=-math.inf).double()
    assert abs(est.mean().item() - sigma2) < 4 * est.std().item() / math.sqrt(n)
    assert est.std().item() * 3 < plain.std().item()
    # equal gains: exactly the plain estimate
    flat = torch.full_like(h, 0.8)
    torch.testing.assert_close(dnsc.blind_noise_var(y, flat, 1.0, floor=-math.inf).double(),
                               (y.abs().square() - 0.64).mean(-1))
