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


# --------------------------------------------------------------- draw vs application, CSIT

from gnuradio.semcom.core.channel import (ChannelDraw, apply_channel, csit,  # noqa: E402
                                          draw_channel)


def transmit_before_split(z, u, snr_db, sinr_db=math.inf, channel_type="awgn", coherence=1,
                          signal_power=1.0, generator=None):
    """transmit() as it was before the draw/application split (commit ceac574), verbatim."""
    z = torch.as_tensor(z)
    p = link_powers(snr_db, sinr_db, signal_power)
    if u is None:
        u = torch.zeros_like(z)
    h = fading(z.shape, channel_type, coherence, generator, z.dtype)
    g = fading(z.shape, channel_type, coherence, generator, z.dtype)
    n = torch.randn(z.shape, dtype=z.dtype, generator=generator) * math.sqrt(p.noise_var)
    y = math.sqrt(p.signal_power) * h * z + math.sqrt(p.interference_power) * g * u + n
    return y, h, g, n


@pytest.mark.parametrize("channel_type, coherence", [("awgn", 1), ("rayleigh", 1), ("rayleigh", 7)])
@pytest.mark.parametrize("snr_db, sinr_db, with_u", [(10.0, 3.0, True), (10.0, math.inf, False),
                                                     (math.inf, math.inf, True), (-2.0, -2.0, False)])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_transmit_bit_identical_to_before_the_split(channel_type, coherence, snr_db, sinr_db, with_u, dtype):
    """Batch simulation, training and the committed tables rely on transmit()'s draws: same
    generator -> the same y, h, g, n bit for bit, and the generator left in the same state."""
    gz = torch.Generator().manual_seed(1)
    z = torch.randn(5, 33, dtype=dtype, generator=gz)
    u = torch.randn(5, 33, dtype=dtype, generator=gz) if with_u else None
    g_new, g_old = torch.Generator().manual_seed(42), torch.Generator().manual_seed(42)
    out = transmit(z, u, snr_db, sinr_db, channel_type, coherence, 2.0, g_new)
    y, h, g, n = transmit_before_split(z, u, snr_db, sinr_db, channel_type, coherence, 2.0, g_old)
    for a, b in ((out.y, y), (out.h, h), (out.g, g), (out.n, n)):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert torch.equal(torch.randn(8, generator=g_new), torch.randn(8, generator=g_old))


def test_transmit_is_draw_then_apply():
    z, u = unit_symbols(300, 1).reshape(3, 100), unit_symbols(300, 2).reshape(3, 100)
    out = transmit(z, u, 12, 4, "rayleigh", 10, generator=torch.Generator().manual_seed(8))
    draw = draw_channel(z.shape, "rayleigh", 10, torch.Generator().manual_seed(8), z.dtype)
    split = apply_channel(z, u, draw, link_powers(12, 4))
    assert isinstance(draw, ChannelDraw)
    for name in ("y", "h", "g", "n"):
        assert torch.equal(getattr(out, name), getattr(split, name)), name
    assert split.powers == out.powers


def test_draw_is_independent_of_the_operating_point_and_noise_is_unit():
    d = draw_channel((4, N // 4), "rayleigh", 1, torch.Generator().manual_seed(3))
    assert d.n.abs().square().mean().item() == pytest.approx(1.0, abs=0.005)
    assert d.h.shape == d.g.shape == d.n.shape == (4, N // 4)
    z = unit_symbols(N, 4).reshape(4, -1)
    for snr in (0.0, 10.0, 20.0):
        p = link_powers(snr)
        out = apply_channel(z, None, d, p)
        assert torch.equal(out.n, d.n * math.sqrt(p.noise_var))
        assert db(1.0 / (out.y - out.h * z).abs().square().mean().item()) == pytest.approx(snr, abs=0.05)
    assert torch.all(draw_channel((2, 5), "awgn").h == 1)


def test_precoder_with_the_draw_inverts_the_fading():
    """The point of the split: a transmitter handed draw.h (genie CSIT) pre-compensates it."""
    s = unit_symbols(4096, 5)
    d = draw_channel(s.shape, "rayleigh", 16, torch.Generator().manual_seed(6))
    out = apply_channel(s / d.h, None, d, link_powers("inf", "inf", 2.0))  # channel inversion
    assert torch.allclose(out.y, math.sqrt(2.0) * s, rtol=1e-4, atol=1e-5)


def test_apply_channel_rejects():
    z = unit_symbols(8, 0)
    d = draw_channel(z.shape, "rayleigh")
    with pytest.raises(ValueError):
        apply_channel(z, None, d, link_powers(10, 3))  # interferer needed
    with pytest.raises(ValueError):
        apply_channel(z, z[:4], d, link_powers(10, 3))
    with pytest.raises(ValueError):
        apply_channel(z, None, draw_channel((9,), "rayleigh"), link_powers(10))
    with pytest.raises(TypeError):
        apply_channel(z.real, None, d, link_powers(10))


def test_csit_genie_is_h_exactly():
    h = fading((3, 50), "rayleigh", 5, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    state = gen.get_state()
    hh = csit(h, 0, 0.0, 5, gen)
    assert torch.equal(hh, h) and hh is not h
    assert torch.equal(gen.get_state(), state)  # the genie takes no draws


@pytest.mark.parametrize("e", [0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("coherence", [1, 8])
def test_csit_estimation_error_against_closed_forms(e, coherence):
    gen = torch.Generator().manual_seed(3)
    h = fading((4, N // 4), "rayleigh", coherence, gen)
    hh = csit(h, 0, e, coherence, gen)
    n_indep = N // coherence
    tol = 5 / math.sqrt(n_indep)
    rho = (hh.conj() * h).mean()
    assert rho.real.item() == pytest.approx(math.sqrt(1 - e), abs=tol)  # E[h_hat* h] = sqrt(1-e)
    assert abs(rho.imag.item()) < tol
    assert hh.abs().square().mean().item() == pytest.approx(1.0, abs=tol)  # E|h_hat|^2 = 1
    err = hh - math.sqrt(1 - e) * h
    assert err.abs().square().mean().item() == pytest.approx(e, abs=tol * max(e, 0.1))
    blocks_ = hh.reshape(4, -1, coherence)
    assert torch.all(blocks_ == blocks_[..., :1])  # one estimate per coherence block


@pytest.mark.parametrize("coherence, d", [(1, 1), (4, 1), (4, 3), (5, 2)])
def test_csit_delay_is_the_fading_of_d_blocks_earlier(coherence, d):
    gen = torch.Generator().manual_seed(4)
    h = fading((2, 43), "rayleigh", coherence, gen)  # a partial last block too
    hh = csit(h, d, 0.0, coherence, gen)
    shift = d * coherence
    assert torch.equal(hh[:, shift:], h[:, :-shift])
    head = hh[:, :shift].reshape(2, d, coherence)  # the first d blocks: drawn from the prior
    assert torch.all(head == head[..., :1])
    assert not torch.any(head.reshape(-1, 1) == h.reshape(1, -1))  # none of the channel's values


def test_csit_delay_statistics_and_awgn_prior():
    gen = torch.Generator().manual_seed(5)
    h = fading((1, N), "rayleigh", 1, gen)
    hh = csit(h, 1, 0.0, 1, gen)
    # i.i.d. block fading: the fading of an earlier block tells nothing about this one.
    assert abs((hh.conj() * h).mean().item()) < 5 / math.sqrt(N)
    assert hh.abs().square().mean().item() == pytest.approx(1.0, abs=5 / math.sqrt(N))
    ones = fading((2, 9), "awgn")
    assert torch.equal(csit(ones, 2, 0.0, 3, gen, channel_type="awgn"), ones)
    short = csit(fading((2, 4), "rayleigh", 2, gen), 5, 0.0, 2, gen)  # delay longer than the rows
    assert short.shape == (2, 4) and torch.all(short[:, 0::2] == short[:, 1::2])


def test_csit_reproducible_and_rejects():
    h = fading((2, 64), "rayleigh", 4, torch.Generator().manual_seed(1))
    a = csit(h, 1, 0.3, 4, torch.Generator().manual_seed(7))
    b = csit(h, 1, 0.3, 4, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    for kwargs in (dict(delay_blocks=-1), dict(delay_blocks=1.5), dict(error_var=1.5), dict(error_var=-0.1),
                   dict(coherence=0), dict(channel_type="fog")):
        with pytest.raises(ValueError):
            csit(h, **kwargs)
    with pytest.raises(TypeError):
        csit(h.real)
