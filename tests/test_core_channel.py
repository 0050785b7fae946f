"""The channel maths against closed forms and Monte Carlo (10^6 symbols)."""

import math

import pytest
import torch

from gnuradio.semcom.core.channel import (fading, link_powers, parse_db, parse_db_list,
                                          transmit)

N = 1_000_000


def db(x):
    return 10 * math.log10(x)


def unit_symbols(n, seed):
    return torch.randn(n, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


def test_link_powers_closed_form():
    p = link_powers(10, 5, signal_power=2.0)
    assert p.noise_var == pytest.approx(0.2)
    assert p.interference_power == pytest.approx(2.0 / 10 ** 0.5 - 0.2)
    q = link_powers(20, "inf")
    assert q.interference_power == 0.0 and q.noise_var == pytest.approx(0.01)
    assert link_powers("inf", "inf").noise_var == 0.0


@pytest.mark.parametrize("snr, sinr", [(5, 10), ("nan", 0), (0, "-inf"), ("abc", 0)])
def test_link_powers_rejects(snr, sinr):
    with pytest.raises(ValueError):
        link_powers(snr, sinr)


def test_db_lists():
    assert parse_db_list("0, 10,inf") == [0.0, 10.0, math.inf]
    for bad in ["", "0,,10", "0;10", "nan", "10,-inf"]:
        with pytest.raises(ValueError):
            parse_db_list(bad)
    assert parse_db(-3) == -3.0


@pytest.mark.parametrize("channel_type", ["awgn", "rayleigh"])
@pytest.mark.parametrize("snr_db, sinr_db", [(10.0, math.inf), (20.0, 5.0), (0.0, -3.0)])
def test_empirical_snr_and_sinr(channel_type, snr_db, sinr_db):
    z, u = unit_symbols(N, 1), unit_symbols(N, 2)
    gen = torch.Generator().manual_seed(3)
    out = transmit(z, u, snr_db, sinr_db, channel_type, generator=gen)
    signal = out.y.new_tensor(math.sqrt(out.powers.signal_power)) * out.h * z
    residual = out.y - signal  # interference + noise
    snr_emp = db(signal.abs().square().mean() / out.n.abs().square().mean())
    sinr_emp = db(signal.abs().square().mean() / residual.abs().square().mean())
    assert snr_emp == pytest.approx(snr_db, abs=0.1)
    if math.isinf(sinr_db):
        assert torch.equal(residual, out.n) or torch.allclose(residual, out.n, atol=1e-6)
    else:
        assert sinr_emp == pytest.approx(sinr_db, abs=0.1)


def test_rayleigh_statistics_and_coherence():
    gen = torch.Generator().manual_seed(5)
    h = fading((4, N // 4), "rayleigh", 1, gen)
    assert h.abs().square().mean().item() == pytest.approx(1.0, abs=0.005)
    assert h.real.var().item() == pytest.approx(0.5, abs=0.005)
    assert abs(h.mean().item()) < 0.005
    hb = fading((3, 100), "rayleigh", 16, gen)
    for start in range(0, 100, 16):
        block = hb[:, start:start + 16]
        assert torch.all(block == block[:, :1])
    assert torch.all(hb[:, 15] != hb[:, 16])
    assert torch.all(fading((2, 5), "awgn") == 1)


@pytest.mark.parametrize("kwargs", [dict(channel_type="fog"), dict(coherence=0), dict(coherence=1.5)])
def test_fading_rejects(kwargs):
    args = dict(channel_type="rayleigh", coherence=1) | kwargs
    with pytest.raises(ValueError):
        fading((2, 8), **args)


def test_same_seed_same_draws_and_interferer_required():
    z = unit_symbols(64, 0)
    a = transmit(z, z, 10, 3, "rayleigh", generator=torch.Generator().manual_seed(9))
    b = transmit(z, z, 10, 3, "rayleigh", generator=torch.Generator().manual_seed(9))
    assert torch.equal(a.y, b.y)
    with pytest.raises(ValueError):
        transmit(z, None, 10, 3)
