"""CDiff's conditional diffusion (diffusion/cdiff.py) and networks (nets/cdiff.py): the spec's
numbers, the forward marginal against the one-step kernel, the sampler's x0 form against the
paper's eps form, an oracle x0-predictor, the channel and the masking."""

import math

import pytest
import torch

from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.diffusion import cdiff
from gnuradio.semcom.nets import cdiff as nets

CPU = cdiff.CDiffSchedule.linear()
PAPER = cdiff.CDiffSchedule.linear(*cdiff.PAPER_SCHEDULE)


def test_schedules_match_the_spec_numbers():
    # spec §2: abar_T = 0.3817, delta_T = 0.2366, min delta 7.5e-5 at t = 1, min delta_{t|t-1} 4.2e-5
    assert PAPER.abar(200) == pytest.approx(0.3817, abs=1e-4)
    assert PAPER.delta(200) == pytest.approx(0.2366, abs=1e-4)
    assert min(PAPER.delta(t) for t in range(1, 201)) == pytest.approx(7.5e-5, rel=1e-3)
    assert min(PAPER.kernel(t, t - 1)[2] for t in range(1, 201)) == pytest.approx(4.2e-5, rel=3e-3)
    # spec §5.4: the CPU schedule, abar_T = 0.3805, min delta 1.0e-4
    assert CPU.abar(100) == pytest.approx(0.3805, abs=1e-4)
    assert min(CPU.delta(t) for t in range(1, 101)) == pytest.approx(1.0e-4, rel=1e-3)
    # T = 50 with a linear w_t has negative deltas (spec §5.4's trap): refused
    with pytest.raises(ValueError, match="<= 0"):
        cdiff.CDiffSchedule.linear(50, 1e-4, 0.035)


@pytest.mark.parametrize("t,s", [(1, 0), (2, 1), (37, 36), (100, 99), (100, 1), (60, 20), (100, 0)])
def test_the_kernel_composes_with_the_marginal_into_the_marginal(t, s):
    """q(x_t | x0, y) = int q(x_t | x_s, y) q(x_s | x0, y) dx_s: mean r m_s + d_y y = m_t and
    variance r^2 delta_s + delta_{t|s} = delta_t, for one step and for skips."""
    r, d_y, d_ts = CPU.kernel(t, s)
    a_t, b_t = CPU.mean_coefs(t)
    a_s, b_s = CPU.mean_coefs(s)
    assert r * a_s == pytest.approx(a_t, abs=1e-14)
    assert r * b_s + d_y == pytest.approx(b_t, abs=1e-14)
    assert r * r * CPU.delta(s) + d_ts == pytest.approx(CPU.delta(t), abs=1e-14)
    if s == t - 1 and s > 0:   # the spec's one-step d_x, d_y
        w_t, w_s = CPU.w_at(t), CPU.w_at(s)
        alpha_t = 1 - float(CPU.betas[t - 1])
        assert r == pytest.approx((1 - w_t) / (1 - w_s) * alpha_t ** 0.5, rel=1e-12)
        assert d_y == pytest.approx((w_t - (1 - w_t) / (1 - w_s) * w_s) * CPU.abar(t) ** 0.5, rel=1e-12)


def test_forward_samples_have_the_marginal_moments_by_monte_carlo():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0, y = torch.full((n, 1), 0.4, dtype=torch.float64), torch.full((n, 1), -1.3, dtype=torch.float64)
    t = 63
    # two ways: the marginal directly, and x_{t-1} from the marginal then the one-step kernel
    direct = CPU.q_sample(x0, y, torch.full((n,), t), torch.randn(n, 1, generator=g, dtype=torch.float64))
    prev = CPU.q_sample(x0, y, torch.full((n,), t - 1), torch.randn(n, 1, generator=g, dtype=torch.float64))
    r, d_y, d_ts = CPU.kernel(t, t - 1)
    chained = r * prev + d_y * y + d_ts ** 0.5 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    a, b = CPU.mean_coefs(t)
    se_mean, se_var = math.sqrt(CPU.delta(t) / n), CPU.delta(t) * math.sqrt(2 / n)
    for x in (direct, chained):
        assert abs(float(x.mean()) - (a * 0.4 - b * 1.3)) < 5 * se_mean
        assert abs(float(x.var()) - CPU.delta(t)) < 5 * se_var


@pytest.mark.parametrize("t", [2, 3, 50, 99, 100])
def test_the_x0_form_equals_the_papers_corrected_eps_form(t):
    g = torch.Generator().manual_seed(t)
    x_t, x0, y, z = (torch.randn(3, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(4))
    for schedule in (CPU, PAPER):
        a = schedule.step(x_t, x0, y, t, t - 1, z)
        b = schedule.eps_form_step(x_t, schedule.eps_from_x0(x_t, x0, t), y, t, z)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # the printed sqrt(delta_t) is not the posterior variance: ours is delta_{t|t-1} delta_{t-1} / delta_t
    r, _, d_ts = CPU.kernel(t, t - 1)
    assert CPU.posterior_var(t, t - 1) == pytest.approx(d_ts * CPU.delta(t - 1) / CPU.delta(t))
    assert CPU.posterior_var(t, t - 1) < CPU.delta(t)


def test_the_posterior_step_is_the_exact_gaussian_posterior_by_monte_carlo():
    """Draw (x_s, x_t) from the forward process given x0, y; regress x_s on x_t: the slope and
    residual variance must be the step's (r delta_s / delta_t) and its posterior variance."""
    g = torch.Generator().manual_seed(1)
    n, t, s = 400_000, 70, 45
    x0, y = 0.3, -0.8
    xs = CPU.q_sample(torch.full((n, 1), x0, dtype=torch.float64), torch.full((n, 1), y, dtype=torch.float64),
                      torch.full((n,), s), torch.randn(n, 1, generator=g, dtype=torch.float64))
    r, d_y, d_ts = CPU.kernel(t, s)
    xt = r * xs + d_y * y + d_ts ** 0.5 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    slope = float(((xs - xs.mean()) * (xt - xt.mean())).mean() / xt.var())
    resid = float((xs - xs.mean() - slope * (xt - xt.mean())).var())
    assert slope == pytest.approx(r * CPU.delta(s) / CPU.delta(t), rel=0.01)
    assert resid == pytest.approx(CPU.posterior_var(t, s), rel=0.01)
    # and the step's mean at x_t = its forward mean is the forward mean of x_s
    m_t = torch.tensor([[CPU.mean_coefs(t)[0] * x0 + CPU.mean_coefs(t)[1] * y]], dtype=torch.float64)
    mean = CPU.step(m_t, torch.tensor([[x0]], dtype=torch.float64), torch.tensor([[y]], dtype=torch.float64), t, s, None)
    assert float(mean) == pytest.approx(CPU.mean_coefs(s)[0] * x0 + CPU.mean_coefs(s)[1] * y, abs=1e-12)


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddpm", 7), ("ddim", 10)])
def test_with_an_oracle_x0_predictor_the_sampler_returns_x0(sampler, steps):
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64)
    calls = []

    def oracle(x_t, y_, t):
        calls.append(t)
        return x0

    out = cdiff.sample(CPU, oracle, y, steps, sampler, generator=g)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-12)
    assert len(calls) == (steps or CPU.num_steps) and calls[0] == CPU.num_steps and calls == sorted(calls, reverse=True)


def test_ddim_with_an_oracle_stays_on_one_forward_trajectory():
    """Deterministic DDIM with the true x0: every state is m_s(x0) + sqrt(delta_s) eps with the
    starting eps (the forward state of one noise draw), exactly."""
    g = torch.Generator().manual_seed(3)
    x0, y, eps = (torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    x = CPU.start(y, eps)
    ts = CPU.timesteps(9)
    for i in range(len(ts) - 1, 0, -1):
        x = CPU.step(x, x0, y, ts[i], ts[i - 1], None, "ddim")
        a, b = CPU.mean_coefs(ts[i - 1])
        torch.testing.assert_close(x, a * x0 + b * y + CPU.delta(ts[i - 1]) ** 0.5 * eps, rtol=0, atol=1e-12)


def test_timesteps_and_their_checks():
    assert CPU.timesteps() == list(range(1, 101))
    assert CPU.timesteps(1) == [100]
    ts = CPU.timesteps(10)
    assert ts[0] == 1 and ts[-1] == 100 and len(ts) == 10
    with pytest.raises(ValueError, match="steps"):
        CPU.timesteps(0)
    with pytest.raises(ValueError, match="ascending"):
        CPU.check_steps([5, 3])


# ------------------------------------------------------------------ networks and channel

def test_power_normalisation_masking_and_the_condition_layout():
    g = torch.Generator().manual_seed(4)
    reals = torch.randn(5, 1024, generator=g) * 3
    z = nets.power_normalise(reals)
    torch.testing.assert_close((z[:, :512] ** 2 + z[:, 512:] ** 2).mean(1), torch.ones(5))
    m = nets.soft_mask(reals, g)
    torch.testing.assert_close((m[:, :512] ** 2 + m[:, 512:] ** 2).mean(1), torch.ones(5))
    cond = nets.condition_image(z)
    assert cond.shape == (5, 3, 32, 32)
    torch.testing.assert_close(cond[:, 0].reshape(5, -1), z)          # k = 512 fills plane 0
    assert (cond[:, 1:] == 0).all()
    with pytest.raises(ValueError, match="do not fit"):
        nets.condition_image(torch.zeros(1, 4000))


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_channel_reals_noise_power(channel):
    g = torch.Generator().manual_seed(5)
    n, k = 400, 512
    reals = nets.power_normalise(torch.randn(n, 2 * k, generator=g, dtype=torch.float64))
    snr = torch.full((n,), 5.0, dtype=torch.float64)
    rx, rel = nets.channel_reals(reals, snr, channel, g)
    s2 = 10 ** -0.5
    err = ((rx - reals) ** 2).reshape(n, 2, k).sum(1).mean()   # mean |zhat - z|^2 per symbol
    if channel == "awgn":
        assert rel is None
        assert float(err) == pytest.approx(s2, rel=0.02)
    else:  # the MMSE error E[s2 / (|h|^2 + s2)] (P = 1), |h|^2 ~ Exp(1): s2 e^{s2} E1(s2)
        from scipy.special import exp1
        assert float(err) == pytest.approx(s2 * math.exp(s2) * exp1(s2), rel=0.03)
        assert rel.shape == (n, k) and float(rel.min()) >= 0 and float(rel.max()) <= 1


@pytest.mark.parametrize("system", nets.SYSTEMS)
def test_system_loss_reaches_the_encoder_and_decode_returns_images(system, tmp_path):
    torch.manual_seed(0)
    cfg = nets.SystemConfig(system=system, encoder=nets.EncoderConfig(ks=(64, 128), widths=(4, 8, 8, 4),
                                                                       variational=system == "vae"),
                            unet=nets.UNetConfig(dim=6, mults=(1, 2), heads=1, head_dim=4) if system == "cdiff" else None)
    model = nets.CDiffSystem(cfg)
    schedule = cdiff.CDiffSchedule.linear(10, 0.02, 0.2) if system == "cdiff" else None
    g = torch.Generator().manual_seed(6)
    x = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    loss, stats = nets.system_loss(model, schedule, x, torch.tensor([-5.0, 0.0, 5.0, 10.0]), 64, True, g)
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.heads["64"].parameters())
    assert model.encoder.heads["128"].weight.grad is None      # the other head: not this step's
    assert (stats["kl"] is not None) == (system == "vae")
    out = nets.decode(model.eval(), schedule, torch.randn(2, 128, generator=g), steps=3 if schedule else None, generator=g)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    doc = nets.schedule_dict(10, 0.02, 0.2) if system == "cdiff" else None
    nets.save_system(tmp_path / system, model, {"training_command": "test"}, doc)
    loaded, sched, sidecar = nets.load_system(tmp_path / system)
    assert sidecar["kind"] == ("cdiff" if system == "cdiff" else "cdiff-autoencoder")
    assert (sched is None) == (system != "cdiff")
    with pytest.raises(CheckpointError, match="not found"):
        nets.load_system(tmp_path / "missing")


def test_configs_refuse_inconsistent_systems():
    with pytest.raises(ValueError, match="U-Net config"):
        nets.SystemConfig(system="ae")                   # ae with the default U-Net
    with pytest.raises(ValueError, match="variational"):
        nets.SystemConfig(system="vae", unet=None)       # a vae needs the variational encoder
    with pytest.raises(ValueError, match="reliability"):
        nets.SystemConfig(reliability=True, unet=nets.UNetConfig(in_channels=7))   # AWGN
    with pytest.raises(ValueError, match="heads for k"):
        nets.SemanticEncoder(nets.EncoderConfig(ks=(64,), widths=(4, 4, 4, 4)))(torch.zeros(1, 3, 32, 32), 128)
