"""MMSE equalizer and the real-valued Lemma-1 model."""

import math

import pytest
import torch

from gnuradio.semcom.core.channel import transmit
from gnuradio.semcom.core.equalizer import lemma1, mmse_equalize, mmse_weights, noise_direction
from gnuradio.semcom.core.mapping import complex_to_real

N = 1_000_000


def test_mmse_weight_closed_form():
    h = torch.tensor([1 + 1j, 0.5j, -2.0], dtype=torch.complex64)
    w = mmse_weights(h, 2.0, 0.5)
    expected = math.sqrt(2.0) * h.conj() / (2.0 * h.abs() ** 2 + 0.5)
    torch.testing.assert_close(w, expected)
    # Without noise it is the zero-forcing inverse of sqrt(Ps) h.
    torch.testing.assert_close(mmse_weights(h, 2.0, 0.0) * math.sqrt(2.0) * h,
                               torch.ones(3, dtype=torch.complex64))


@pytest.mark.parametrize("bad", [(0.0, 0.1), (1.0, -0.1), (float("inf"), 0.1), (1.0, float("nan"))])
def test_mmse_rejects(bad):
    with pytest.raises(ValueError):
        mmse_weights(torch.ones(2, dtype=torch.complex64), *bad)


def _link(channel_type, snr_db, sinr_db, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, dtype=torch.complex64, generator=g)
    u = torch.randn(N, dtype=torch.complex64, generator=g)
    out = transmit(z, u, snr_db, sinr_db, channel_type, generator=g)
    zhat, w = mmse_equalize(out.y, out.h, out.powers.signal_power, out.powers.noise_var)
    return z, u, out, zhat, w


@pytest.mark.parametrize("channel_type", ["awgn", "rayleigh"])
def test_lemma1_reproduces_equalized_symbols_exactly(channel_type):
    z, u, out, zhat, w = _link(channel_type, 10.0, 3.0)
    p = out.powers
    m = lemma1(w, out.h, p.signal_power, p.interference_power, p.noise_var)
    x, i = complex_to_real(z), complex_to_real(out.g * u)
    e = noise_direction(w, out.n, p.noise_var)
    torch.testing.assert_close(m.apply(x, i, e), complex_to_real(zhat), rtol=1e-5, atol=1e-5)

    # Same thing with explicit real 2x2 blocks per symbol: A diagonal, B rotation-scaling.
    k = 5
    a, b = m.a[:k], m.b[:k]
    assert torch.allclose(a.imag, torch.zeros(k), atol=1e-6)  # MMSE: A is diagonal
    A = torch.stack([torch.stack([a.real, -a.imag], -1), torch.stack([a.imag, a.real], -1)], -2)
    B = torch.stack([torch.stack([b.real, -b.imag], -1), torch.stack([b.imag, b.real], -1)], -2)
    xs = torch.stack([z[:k].real, z[:k].imag], -1)
    is_ = torch.stack([(out.g * u)[:k].real, (out.g * u)[:k].imag], -1)
    es = torch.stack([e[:k], e[N:N + k]], -1)
    rebuilt = (A @ xs[..., None] + B @ is_[..., None])[..., 0] + m.c[:k, None] * es
    torch.testing.assert_close(rebuilt, torch.stack([zhat[:k].real, zhat[:k].imag], -1),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channel_type", ["awgn", "rayleigh"])
def test_equalized_noise_variance_is_c_squared(channel_type):
    z, u, out, zhat, w = _link(channel_type, 7.0, math.inf, seed=1)
    m = lemma1(w, out.h, out.powers.signal_power, 0.0, out.powers.noise_var)
    noise = complex_to_real(w * out.n)
    # Normalised by the predicted per-dimension variance C^2, the noise is unit-variance.
    ratio = (noise.square() / m.noise_variance()).mean().item()
    assert ratio == pytest.approx(1.0, abs=0.005)
    e = noise_direction(w, out.n, out.powers.noise_var)
    assert e.mean().item() == pytest.approx(0.0, abs=0.003)
    assert e.var().item() == pytest.approx(1.0, abs=0.005)


def test_mmse_error_matches_closed_form():
    # Unit-power z, no interferer: E|zhat - z|^2 = sigma^2 / (Ps|h|^2 + sigma^2) per symbol.
    z, u, out, zhat, w = _link("rayleigh", 5.0, math.inf, seed=2)
    p = out.powers
    predicted = p.noise_var / (p.signal_power * out.h.abs().square() + p.noise_var)
    err = (zhat - z).abs().square()
    assert err.mean().item() == pytest.approx(predicted.mean().item(), rel=0.01)


@pytest.mark.parametrize("channel_type", ["awgn", "rayleigh"])
@pytest.mark.parametrize("snr_db, sinr_db", [(10.0, math.inf), (20.0, 0.0), (0.0, -2.0)])
def test_mmse_symbol_error_closed_form_matches_monte_carlo(channel_type, snr_db, sinr_db):
    from gnuradio.semcom.core.equalizer import mmse_symbol_error
    z, u, out, zhat, w = _link(channel_type, snr_db, sinr_db, seed=4)
    mc = (zhat - z).abs().square().mean().item()
    assert 10 * math.log10(mc) == pytest.approx(10 * math.log10(mmse_symbol_error(channel_type, snr_db, sinr_db)), abs=0.05)
