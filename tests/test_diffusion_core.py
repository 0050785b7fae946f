"""The diffusion core against closed forms and diffusers' UniPC (a test-only oracle)."""

import math

import pytest
import torch

from gnuradio.semcom.diffusion.samplers import UniPC, ddim_step
from gnuradio.semcom.diffusion.schedule import VPSchedule

from conftest import DATA, REPO


def toy_eps_net(dim=16, seed=0):
    """A fixed nonlinear eps 'network' (the sampler only ever sees its outputs)."""
    g = torch.Generator().manual_seed(seed)
    w1, w2 = torch.randn(dim + 1, 32, generator=g) / 4, torch.randn(32, dim, generator=g) / 6

    def eps(x, t):
        tt = torch.full((x.shape[0], 1), float(t) / 1000)
        return torch.tanh(torch.cat([x, tt], 1) @ w1) @ w2
    return eps


def test_schedule_closed_forms():
    s = VPSchedule.linear()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert s.alphas_cumprod[10].item() == pytest.approx(torch.prod(1 - betas[:11]).item(), rel=1e-12)
    x0, eps = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    xt = s.q_sample(x0, 400, eps)
    torch.testing.assert_close(s.tweedie_x0(xt, 400, eps), x0)
    t = torch.tensor([0, 500, 999])
    torch.testing.assert_close(s.q_sample(x0, t, eps)[1], s.q_sample(x0[1:2], 500, eps[1:2])[0])
    # The matched step: (1 - abar)/abar closest to the noise variance.
    for nv in (0.01, 0.1, 1.0):
        k = s.step_for_noise(nv)
        ratio = ((1 - s.alphas_cumprod) / s.alphas_cumprod)
        assert abs(ratio[k] - nv) <= min(abs(ratio[k - 1] - nv), abs(ratio[k + 1] - nv)) + 1e-12
    c = VPSchedule.cosine()
    assert c.alphas_cumprod[0] > 0.999 and c.alphas_cumprod[-1] < 1e-4


def test_ddim_eta0_is_deterministic_and_exact_for_perfect_eps():
    s = VPSchedule.linear()
    x0, eps = torch.randn(2, 8), torch.randn(2, 8)
    x = s.q_sample(x0, 900, eps)
    # With the true eps, DDIM lands on the same trajectory x_t' = alpha' x0 + sigma' eps.
    out = ddim_step(s, x, eps, 900, 500)
    torch.testing.assert_close(out, s.q_sample(x0, 500, eps), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ddim_step(s, x, eps, 900, None), x0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("steps", [5, 10, 25])
def test_unipc_matches_diffusers(order, variant, steps):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                            solver_order=order, solver_type=variant, predict_x0=True,
                                            lower_order_final=True)
    ref.set_timesteps(steps)
    net = toy_eps_net()
    x_T = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    ours = UniPC(VPSchedule.linear(), VPSchedule.linear().timesteps(steps), order, variant)
    assert ours.timesteps == [int(t) for t in ref.timesteps]
    x_ref, x = x_T.clone(), x_T.clone()
    for i, t in enumerate(ref.timesteps):
        x_ref = ref.step(net(x_ref, int(t)), t, x_ref).prev_sample
        x = ours.step(x, net(x, int(t)))
        last = i == steps - 1
        if variant == "bh1" and last:
            # diffusers computes B(h) * 0 with B(h) = h = -inf on the step to sigma = 0: NaN.
            assert torch.isnan(x_ref).all() and torch.isfinite(x).all()
        else:
            torch.testing.assert_close(x, x_ref, rtol=1e-4, atol=1e-4)


def test_unipc_converges_to_the_analytic_flow_on_a_gaussian_prior():
    """For x_0 ~ N(0, v I) the exact eps is sigma_t x / (alpha_t^2 v + sigma_t^2), and the
    probability-flow ODE keeps x / sqrt(alpha_t^2 v + sigma_t^2) constant: x_0 = sqrt(v) x_T /
    sqrt(alpha_T^2 v + sigma_T^2). The sampler must converge to it, faster at order 2."""
    s = VPSchedule.linear()
    v = 0.25
    eps_fn = lambda x, t: s.sigma(t).item() * x / (s.alphas_cumprod[t].item() * v + 1 - s.alphas_cumprod[t].item())
    x_T = torch.randn(256, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    aT, sT = s.alpha(999).item(), s.sigma(999).item()
    exact = x_T * math.sqrt(v) / math.sqrt(aT ** 2 * v + sT ** 2)
    err = {(k, n): (UniPC(s, s.timesteps(n), order=k).sample(eps_fn, x_T.clone()) - exact).abs().max().item()
           for k in (1, 2) for n in (10, 20, 50, 200)}
    for k in (1, 2):
        assert err[(k, 10)] > err[(k, 20)] > err[(k, 50)] > err[(k, 200)]
    assert err[(2, 50)] < err[(1, 50)] / 3          # the second-order method earns its order
    assert err[(2, 200)] < 0.01 * math.sqrt(v)      # within 1 % of the prior's std


@pytest.mark.parametrize("start, steps", [(150, 151), (150, 1000), (150, 150), (150, 149), (0, 5), (999, 1000)])
def test_timesteps_are_distinct_and_descending(start, steps):
    ts = VPSchedule.linear().timesteps(steps, start)
    assert ts[0] == start and len(ts) == min(steps, start + 1)
    assert all(a > b for a, b in zip(ts, ts[1:]))


def test_unipc_argument_errors():
    s = VPSchedule.linear()
    with pytest.raises(ValueError):
        UniPC(s, [10, 20], 2)
    with pytest.raises(ValueError):
        UniPC(s, [20, 10], 2, variant="bh3")
    u = UniPC(s, [20, 10], 1)
    x = torch.zeros(1, 2)
    u.step(x, x)
    u.step(x, x)
    with pytest.raises(RuntimeError):
        u.step(x, x)


def test_gaussian_guidance_matches_autograd_of_the_log_likelihood():
    """Closed-form joint gradient vs autograd, with the unit-Gaussian-prior Tweedie estimates
    x0 = sqrt(abar) x_t, i0 = sqrt(abar) i_t, on a real MMSE link (complex B, AWGN + Rayleigh)."""
    from gnuradio.semcom.core.channel import transmit
    from gnuradio.semcom.core.equalizer import lemma1, mmse_equalize
    from gnuradio.semcom.core.mapping import complex_to_real
    from gnuradio.semcom.diffusion.guidance import (LinearObservation, gaussian_guidance,
                                                    gaussian_log_likelihood, guided_eps)
    g = torch.Generator().manual_seed(7)
    n, k = 3, 16
    z = torch.randn(n, k, dtype=torch.complex64, generator=g)
    u = torch.randn(n, k, dtype=torch.complex64, generator=g)
    out = transmit(z, u, 15.0, 3.0, "rayleigh", generator=g)
    zhat, w = mmse_equalize(out.y, out.h, out.powers.signal_power, out.powers.noise_var)
    m = lemma1(w, out.h, out.powers.signal_power, out.powers.interference_power, out.powers.noise_var)
    obs = LinearObservation(m.a.to(torch.complex128), m.b.to(torch.complex128), m.c.double(),
                            scale_x=0.7, scale_i=1.3)
    xhat = complex_to_real(zhat).double()
    abar = 0.37
    x_t = torch.randn(n, 2 * k, dtype=torch.float64, generator=g).requires_grad_()
    i_t = torch.randn(n, 2 * k, dtype=torch.float64, generator=g).requires_grad_()
    logp = gaussian_log_likelihood(obs, xhat, abar ** 0.5 * x_t, abar ** 0.5 * i_t, abar).sum()
    gx_ref, gi_ref = torch.autograd.grad(logp, (x_t, i_t))
    gx, gi = gaussian_guidance(obs, xhat, abar ** 0.5 * x_t.detach(), abar ** 0.5 * i_t.detach(), abar)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gi, gi_ref, rtol=1e-10, atol=1e-12)
    eps = torch.zeros_like(gx)
    torch.testing.assert_close(guided_eps(eps, gx, abar, 2.0), -(1 - abar) ** 0.5 * 2.0 * gx)


def test_gaussian_guidance_with_general_complex_coefficients():
    """Any applied weight w gives complex a (A a rotation-scaling too): still the exact gradient."""
    from gnuradio.semcom.diffusion.guidance import (LinearObservation, gaussian_guidance,
                                                    gaussian_log_likelihood)
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(2, 4, dtype=torch.complex128, generator=g) for _ in range(2))
    c = torch.rand(2, 4, dtype=torch.float64, generator=g) + 0.1
    obs, xhat, abar = LinearObservation(a, b, c, 0.5, 2.0), torch.randn(2, 8, dtype=torch.float64, generator=g), 0.6
    x_t = torch.randn(2, 8, dtype=torch.float64, generator=g).requires_grad_()
    i_t = torch.randn(2, 8, dtype=torch.float64, generator=g).requires_grad_()
    logp = gaussian_log_likelihood(obs, xhat, abar ** 0.5 * x_t, abar ** 0.5 * i_t, abar).sum()
    ref = torch.autograd.grad(logp, (x_t, i_t))
    ours = gaussian_guidance(obs, xhat, abar ** 0.5 * x_t.detach(), abar ** 0.5 * i_t.detach(), abar)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-12)


def _gaussian_link(n=512, k=32, seed=1):
    """A Rayleigh MMSE observation of two unit-Gaussian latents with different scales."""
    from gnuradio.semcom.diffusion.guidance import LinearObservation
    from gnuradio.semcom.core.mapping import complex_to_real, real_to_complex
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, k, dtype=torch.complex128, generator=g)
    pi, nv = 0.5, 0.05
    w = h.conj() / (h.abs() ** 2 + nv)
    obs = LinearObservation(w * h, math.sqrt(pi) * w, w.abs() * math.sqrt(nv / 2), scale_x=0.7, scale_i=1.2)
    xu, iu, e = (torch.randn(n, 2 * k, dtype=torch.float64, generator=g) for _ in range(3))
    xhat = obs.mean(xu, iu) + torch.cat([obs.c, obs.c], -1) * e
    sa2, sb2 = obs.scale_x ** 2 * obs.a.abs() ** 2, obs.scale_i ** 2 * obs.b.abs() ** 2
    lmmse = complex_to_real(obs.scale_x * obs.a.conj() / (sa2 + sb2 + obs.c ** 2) * real_to_complex(xhat))
    return obs, xhat, xu, lmmse, g


@pytest.mark.parametrize("guided_corrector", [False, True])
def test_icdm_on_gaussian_priors_reaches_the_lmmse_estimate(guided_corrector):
    """Unit-Gaussian priors have the exact eps = sigma_t x_t, and for them the Gaussian-prior
    guidance is the exact likelihood score: the deterministic flow from x_T = i_T = 0 ends on
    the posterior mean, i.e. the closed-form LMMSE estimate (the corrector the paper leaves
    unguided adds a small bias)."""
    from gnuradio.semcom.diffusion.icdm import icdm_sample
    s = VPSchedule.linear()
    obs, xhat, xu, lmmse, _ = _gaussian_link()
    eps = lambda x, t: s.sigma(t).item() * x
    x0, _ = icdm_sample(eps, eps, obs, xhat, s, torch.zeros_like(xu), torch.zeros_like(xu), steps=40,
                        guided_corrector=guided_corrector)
    mse_icdm, mse_lmmse = ((x0 - xu) ** 2).mean().item(), ((lmmse - xu) ** 2).mean().item()
    assert mse_icdm == pytest.approx(mse_lmmse, rel=0.05)
    if guided_corrector:  # the same estimate, up to discretization
        assert ((x0 - lmmse) ** 2).mean().item() < 1e-4 * mse_lmmse


def test_icdm_from_noise_samples_the_posterior():
    """From x_T, i_T ~ N(0, I) the exact conditional flow gives posterior samples, whose
    error is the posterior variance plus that of the mean: twice the LMMSE error."""
    from gnuradio.semcom.diffusion.icdm import icdm_sample
    s = VPSchedule.linear()
    obs, xhat, xu, lmmse, g = _gaussian_link()
    eps = lambda x, t: s.sigma(t).item() * x
    x_T, i_T = (torch.randn(xu.shape, dtype=torch.float64, generator=g) for _ in range(2))
    x0, _ = icdm_sample(eps, eps, obs, xhat, s, x_T, i_T, steps=40, guided_corrector=True)
    mse_lmmse = ((lmmse - xu) ** 2).mean().item()
    assert ((x0 - xu) ** 2).mean().item() == pytest.approx(2 * mse_lmmse, rel=0.05)


def test_latent_dit_shapes_tokens_and_a_few_training_steps():
    from gnuradio.semcom.diffusion.dit import DiTConfig, LatentDiT, eps_loss
    torch.manual_seed(0)
    cfg = DiTConfig(latent_dim=64, grid=4, width=32, depth=2, heads=2)
    model = LatentDiT(cfg)
    x = torch.randn(5, 64)
    # Tokens are the spatial positions of the channel-major map, and back again.
    assert torch.equal(model.from_tokens(model.to_tokens(x)), x)
    assert torch.equal(model.to_tokens(x)[:, 3, 2], x[:, 2 * 16 + 3])
    assert torch.equal(model(x, 10), torch.zeros_like(x))  # adaLN-Zero: starts at eps = 0
    with pytest.raises(ValueError):
        model(torch.randn(2, 63), 1)
    with pytest.raises(ValueError):
        DiTConfig(latent_dim=60, grid=4)
    # It learns: on a structured toy prior (low-rank latents) the loss falls.
    s = VPSchedule.linear()
    basis = torch.randn(4, 64)
    data = torch.randn(512, 4) @ basis / 2
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(150):
        loss = eps_loss(model, s, data[torch.randint(0, 512, (64,), generator=g)], g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.8 * sum(losses[:20]) / 20


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "cifar10_train_batch1.npz").is_file(),
                    reason=f"{DATA}/cifar10_train_batch1.npz not available")
def test_train_prior_command_end_to_end(tmp_path):
    """A tiny run of apps/train_prior.py on real latents: it saves a loadable prior whose
    sidecar records the command and the losses; a broken file is one clear error."""
    import subprocess
    import sys
    from gnuradio.semcom.core.checkpoint import CheckpointError
    from gnuradio.semcom.diffusion.dit import load_prior
    out = tmp_path / "prior"
    res = subprocess.run([sys.executable, str(REPO / "apps" / "train_prior.py"), "--role", "interferer",
                          "--channel", "rayleigh", "--k", "256", "--base", "none", "--epochs", "2", "--max-images", "256",
                          "--width", "32", "--depth", "1", "--no-progress", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    model, doc = load_prior(out)
    assert model.cfg.latent_dim == 512 and doc["provenance"]["encoder"] == "jscc_interferer_awgn_k256"
    assert len(doc["provenance"]["history"]["held_out_loss"]) == 2 and "train_prior.py" in doc["provenance"]["training_command"]
    x = torch.randn(3, 512)
    assert model(x, 500).shape == (3, 512)
    (tmp_path / "prior.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="prior.safetensors"):
        load_prior(out)
    with pytest.raises(CheckpointError, match="not found"):
        load_prior(tmp_path / "missing")
