"""JSCNA-AD's parts so far (issue 16): the truncated channel inversion (core/precoding.py)
against its closed forms (the power constraint c^2 = P / E1(g_th), a uniform noise on every
kept symbol, the erased fraction) and the attention-driven step allocation (diffusion/jscna.py)."""

import math

import pytest
import torch

from gnuradio.semcom.core import precoding
from gnuradio.semcom.core.channel import fading
from gnuradio.semcom.diffusion import jscna


def test_e1_and_the_specs_table():
    # spec §2: E1(0.01) = 4.038, E1(0.1) = 1.823, E1(0.3) = 0.906; SNR change -6.06 / -2.61 / +0.43 dB
    for g, e1, change in ((0.01, 4.038, -6.06), (0.1, 1.823, -2.61), (0.3, 0.906, 0.43)):
        assert precoding.exp1(g) == pytest.approx(e1, abs=1e-3)
        assert precoding.effective_snr_db(10.0, g) - 10.0 == pytest.approx(change, abs=0.01)
    with pytest.raises(ValueError):
        precoding.exp1(0.0)


def test_threshold_for_snr_hits_the_spec_points_and_is_monotone():
    for snr, g in precoding.THRESHOLDS:
        assert precoding.threshold_for_snr(snr) == pytest.approx(g)
    values = [precoding.threshold_for_snr(s) for s in range(-5, 26)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[0] == pytest.approx(0.40) and values[-1] == pytest.approx(0.01)
    assert precoding.threshold_for_snr(7.0) == pytest.approx(math.sqrt(0.22 * 0.08))   # log-linear midpoint


@pytest.mark.parametrize("g_th", [0.05, 0.2])
def test_truncated_inversion_meets_the_power_constraint_and_whitens_the_noise(g_th):
    """Monte Carlo on 400 x 2048 Rayleigh symbols: E|x|^2 = P (the long-term constraint, within
    5 standard errors of the sample mean), the erased fraction 1 - e^-g_th, and h x = c nu on
    every kept symbol (so the receiver's noise is sigma^2 on each, an exact diffusion step)."""
    g = torch.Generator().manual_seed(0)
    n, k, power = 400, 2048, 2.0
    nu = torch.randn(n, k, dtype=torch.complex128, generator=g)
    nu = nu / nu.abs().square().mean(1, keepdim=True).sqrt()
    h = fading((n, k), "rayleigh", 1, g, torch.complex128)
    x, kept, c = precoding.truncated_inversion(nu, h, g_th, power)
    assert c == pytest.approx(math.sqrt(power / precoding.exp1(g_th)))
    p = x.abs().square()
    assert abs(float(p.mean()) - power) < 5 * float(p.std()) / math.sqrt(p.numel())
    erased = 1 - float(kept.double().mean())
    assert erased == pytest.approx(1 - math.exp(-g_th), abs=5 * math.sqrt(erased * (1 - erased) / kept.numel()))
    torch.testing.assert_close((h * x)[kept], c * nu[kept])
    assert (x[~kept] == 0).all()


def test_awgn_keeps_everything_and_bad_inputs_are_refused():
    nu = torch.ones(2, 4, dtype=torch.complex64)
    x, kept, c = precoding.truncated_inversion(nu, torch.ones_like(nu), 0.1, 4.0, "awgn")
    assert kept.all() and c == 2.0 and torch.equal(x, 2 * nu)
    with pytest.raises(ValueError, match="one shape"):
        precoding.truncated_inversion(nu, torch.ones(2, 3, dtype=torch.complex64), 0.1)
    with pytest.raises(ValueError, match="channel_type"):
        precoding.truncated_inversion(nu, torch.ones_like(nu), 0.1, 1.0, "rician")


# ------------------------------------------------------------------ JSCNA-AD's step allocation (diffusion/jscna.py)

def test_importance_and_step_allocation_span_s_min_to_s_max():
    g = torch.Generator().manual_seed(1)
    attn = torch.softmax(torch.randn(3, 4, 65, 65, generator=g), -1)
    imp = jscna.patch_importance(attn)
    torch.testing.assert_close(imp, attn.mean(1)[:, :, 1:].mean(1))
    torch.testing.assert_close(jscna.patch_importance(attn, cls=True), attn.mean(1)[:, 0, 1:])
    steps = jscna.allocate_steps(imp, 5, 20)
    assert steps.shape == (3, 64)
    assert (steps.min(1).values == 5).all() and (steps.max(1).values == 20).all()
    # the order of importance is kept (ties aside) and S_min = S_max is the fixed-step sampler
    order = imp.argsort(1)
    assert (steps.gather(1, order).diff(dim=1) >= 0).all()
    assert (jscna.allocate_steps(imp, 12, 12) == 12).all()
    with pytest.raises(ValueError):
        jscna.allocate_steps(imp, 0, 10)


# ------------------------------------------------------------------ the masked reverse process
def tiny_dit(seed=0):
    """A small latent DiT with every weight random (adaLN-Zero would make it output zeros)."""
    from gnuradio.semcom.diffusion.dit import DiTConfig, LatentDiT
    torch.manual_seed(seed)
    model = LatentDiT(DiTConfig(latent_dim=4 * 16, grid=4, width=16, depth=2, heads=2)).double()
    with torch.no_grad():
        for prm in model.parameters():
            prm.normal_(0, 0.2)
    return model.eval()


def test_token_subsets_compute_only_those_tokens_and_padding_changes_nothing():
    dit = tiny_dit()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 64, generator=g, dtype=torch.float64)
    t = torch.tensor([5, 9, 9])
    everything = torch.arange(16).expand(3, 16)
    full = dit.residual_tokens(x, t, everything, torch.ones(3, 16, dtype=torch.bool))
    torch.testing.assert_close(dit.from_tokens(full), dit.residual(x, t))
    # image 0 runs 3 tokens, image 1 runs 5, image 2 runs 1: padded to 5
    active = torch.zeros(3, 16, dtype=torch.bool)
    active[0, [2, 7, 11]] = True
    active[1, [0, 1, 4, 9, 15]] = True
    active[2, 6] = True
    index, valid = jscna.active_index(active)
    assert index.shape == (3, 5) and valid.sum(1).tolist() == [3, 5, 1]
    seen = []
    hook = dit.embed.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape))
    out = dit.residual_tokens(x, t, index, valid)
    hook.remove()
    assert seen == [torch.Size([3, 5, 4])]          # 5 token rows per image, never the 16
    for n in range(3):                               # each image alone, unpadded: the same numbers
        alone = dit.residual_tokens(x[n:n + 1], t[n:n + 1], index[n:n + 1, :valid[n].sum()],
                                    valid[n:n + 1, :valid[n].sum()])
        torch.testing.assert_close(out[n, :valid[n].sum()], alone[0])
        assert (out[n, valid[n].sum():] == 0).all()
    with pytest.raises(ValueError, match="at least one valid token"):
        dit.residual_tokens(x, t, index, torch.zeros_like(valid))


def test_token_groups_partition_the_active_rows_at_the_least_padded_work():
    """Every image with an active token lands in exactly one group, images that are done in
    none, and the grouping's padded work sum_g |g| max_g is the least over every split of the
    sorted counts into at most 3 contiguous groups (brute force)."""
    import itertools
    g = torch.Generator().manual_seed(3)
    for trial in range(20):
        count = torch.randint(0, 65, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g)
        groups = jscna.token_groups(count)
        rows = torch.cat(groups).tolist() if groups else []
        assert sorted(rows) == torch.nonzero(count > 0).flatten().tolist() and len(groups) <= 3
        work = sum(len(r) * int(count[r].max()) for r in groups)
        c = sorted(v for v in count.tolist() if v > 0)
        best = min((sum((j - i) * c[j - 1] for i, j in zip((0,) + cuts, cuts + (len(c),)))
                    for k in range(3) for cuts in itertools.combinations(range(1, len(c)), k)), default=0)
        assert work == best, (count.tolist(), work, best)
    assert jscna.token_groups(torch.zeros(4, dtype=torch.long)) == []


def test_adaptive_sampler_with_equal_steps_is_plain_ddim():
    from gnuradio.semcom.diffusion import dnsc
    from gnuradio.semcom.diffusion.schedule import VPSchedule
    dit = tiny_dit()
    schedule = VPSchedule.linear()
    x = torch.randn(2, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    eps_full = lambda z, t: dit(z, torch.full((z.shape[0],), int(t)))
    want, nfe = dnsc.reverse_chain(eps_full, x, schedule, 180, "ddim", 12)
    timesteps = schedule.timesteps(12, 180)
    eps_tokens = lambda z, t, active: dit.to_tokens(eps_full(dit.from_tokens(z), t))
    got, evaluations = jscna.adaptive_ddim(eps_tokens, dit.to_tokens(x), schedule, timesteps,
                                           torch.full((2, 16), 12))
    torch.testing.assert_close(dit.from_tokens(got), want, rtol=1e-10, atol=1e-10)
    assert nfe == 12 and evaluations.tolist() == [12 * 16, 12 * 16]


def test_adaptive_sampler_asks_only_for_active_tokens_and_freezes_the_rest():
    """Token j is asked for exactly S_j times (S_j - 1 with the first eps given); a token frozen
    after its last step keeps its x0 estimate; frozen tokens re-enter at the current noise level."""
    from gnuradio.semcom.diffusion.schedule import VPSchedule
    schedule = VPSchedule.linear()
    timesteps = schedule.timesteps(6, 120)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    steps = torch.tensor([[1, 2, 6, 3, 6], [6, 6, 6, 6, 1]])
    asked = torch.zeros(2, 5, dtype=torch.long)
    inputs = []

    def eps_tokens(z, t, active):
        asked.add_(active.long())
        inputs.append((t, z.clone(), active.clone()))
        return torch.tanh(z) * 0.5      # a stand-in network, token-wise
    x0, evaluations = jscna.adaptive_ddim(eps_tokens, x, schedule, timesteps, steps)
    assert asked.tolist() == steps.tolist() and evaluations.tolist() == steps.sum(1).tolist()
    # token (0, 0): one step, so its x0 is the Tweedie estimate at the start
    a = schedule.alphas_cumprod[timesteps[0]].item()
    torch.testing.assert_close(x0[0, 0], (x[0, 0] - (1 - a) ** 0.5 * torch.tanh(x[0, 0]) * 0.5) / a ** 0.5)
    # at every later call, the frozen token (0, 0) sits at sqrt(abar) x0 + sqrt(1 - abar) eps
    e0 = torch.tanh(x[0, 0]) * 0.5
    for t, z, active in inputs[1:]:
        a = schedule.alphas_cumprod[t].item()
        assert not active[0, 0]
        torch.testing.assert_close(z[0, 0], a ** 0.5 * x0[0, 0] + (1 - a) ** 0.5 * e0)
    # the first eps given: asked one time fewer per token, same result
    first = torch.tanh(x) * 0.5
    asked.zero_()
    again, evaluations = jscna.adaptive_ddim(eps_tokens, x, schedule, timesteps, steps, first_eps=first)
    torch.testing.assert_close(again, x0)
    assert asked.tolist() == (steps - 1).tolist() and evaluations.tolist() == (steps - 1).sum(1).tolist()


def test_per_image_grids_are_each_images_own_run_in_one_batch():
    """Images starting at different steps (jscna-ad-pixel: each image's rms sets its noise)
    share one call per iteration; each gets what its own grid alone gives, a shorter grid's
    image stops at its length, and the network is asked with the iteration's (N,) steps."""
    from gnuradio.semcom.diffusion.schedule import VPSchedule
    schedule = VPSchedule.linear()
    grids = [schedule.timesteps(6, 120), schedule.timesteps(6, 40), schedule.timesteps(6, 4)]
    assert [len(g) for g in grids] == [6, 6, 5]
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 5, 3, generator=g, dtype=torch.float64)
    steps = torch.tensor([[1, 2, 6, 3, 6], [6, 6, 6, 6, 1], [6, 2, 3, 6, 6]])
    net = lambda z, t: torch.tanh(z) * 0.5 + 0.01 * torch.as_tensor(t, dtype=z.dtype).reshape(-1, 1, 1)
    seen = []

    def batched(z, t, active):
        seen.append(t.clone())
        return net(z, t)
    together, evaluations = jscna.adaptive_ddim(batched, x, schedule, grids, steps)
    for i, grid in enumerate(grids):
        alone, count = jscna.adaptive_ddim(lambda z, t, active: net(z, t), x[i:i + 1], schedule, grid, steps[i:i + 1])
        torch.testing.assert_close(together[i:i + 1], alone)
        assert evaluations[i] == count[0] == steps[i].clamp(max=len(grid)).sum()
    assert torch.equal(seen[1], torch.tensor([grids[0][1], grids[1][1], grids[2][1]]))
    assert torch.equal(seen[5], torch.tensor([grids[0][5], grids[1][5], grids[2][4]]))   # the short grid repeats its last
    with pytest.raises(ValueError, match="2 grids for 3 images"):
        jscna.adaptive_ddim(batched, x, schedule, grids[:2], steps)


def test_ddim_inversion_walks_the_receivers_grid_upwards_and_each_step_is_undone_by_ddim():
    """R2: the inversion asks for eps at 0, 7, 14, 21 and lands on 28 (schedule.timesteps(4, 28)
    reversed, 0 first); given the same eps, DDIM's step back down returns each point exactly;
    and for Gaussian data N(0, I), whose exact eps is sqrt(1 - abar_t) x_t, the probability
    flow is the identity, so the inversion leaves x_0 within the steps' discretisation."""
    from gnuradio.semcom.diffusion.samplers import ddim_step
    from gnuradio.semcom.diffusion.schedule import VPSchedule
    schedule = VPSchedule.linear()
    x0 = torch.randn(16, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    calls, points = [], [x0]

    def eps(x, t):
        calls.append(t)
        return torch.tanh(x) * 0.5 + 0.1 * t / 28      # any smooth function
    xs = jscna.ddim_inversion(eps, x0, schedule, 28, 4)
    assert calls == [0, 7, 14, 21]
    x = x0
    grid = [0, 7, 14, 21, 28]
    for t, t_next in zip(grid[:-1], grid[1:]):       # the same walk, keeping every point
        e = eps(x, t)
        x_next = ddim_step(schedule, x, e, t, t_next)
        assert torch.allclose(ddim_step(schedule, x_next, e, t_next, t), x, atol=1e-10)
        points.append(x_next)
        x = x_next
    assert torch.equal(points[-1], xs)
    gaussian = jscna.ddim_inversion(lambda x, t: schedule.sigma(t).item() * x, x0, schedule, 28, 28)
    assert torch.allclose(gaussian, x0, rtol=1e-3, atol=1e-3)   # 28 steps of cos(dtheta) ~ 1 - 1e-6 each
    with pytest.raises(ValueError, match="0 < s < 1000"):
        jscna.ddim_inversion(eps, x0, schedule, 0, 4)
