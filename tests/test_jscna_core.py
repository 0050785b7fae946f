"""JSCNA-AD's parts so far (issue 16): the truncated channel inversion (core/precoding.py)
against its closed forms (the power constraint c^2 = P / E1(g_th), a uniform noise on every
kept symbol, the erased fraction) and the attention-driven step allocation (diffusion/jscna.py)."""

import math

import pytest
import torch

from gnuradio.semcom.core import precoding
from gnuradio.semcom.core.channel import fading


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
    from gnuradio.semcom.diffusion import jscna
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
    assert jscna.ddim_grid(100, 4) == [100, 75, 50, 25, 0]
