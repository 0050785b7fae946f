"""The jscna-ad scheme (schemes/jscna.py; JSCNA-AD in the shared KL-VAE's latent): the receiver's
start state is an exact forward state of the sent latent, the precoded link's noise is one
level, S_min = S_max is the fixed-step sampler, the token work is what the step counts say,
and the scheme runs through the batch engine with clear errors."""

import math

import numpy as np
import pytest
import torch

from gnuradio.semcom import schemes
from gnuradio.semcom.core.channel import apply_channel, draw_channel, link_powers
from gnuradio.semcom.core.equalizer import mmse_equalize
from gnuradio.semcom.core.mapping import LATENT_SCALE, real_to_complex
from gnuradio.semcom.core.precoding import exp1, truncated_inversion
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.diffusion.schedule import VPSchedule
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.base import Observation, TxContext
from gnuradio.semcom.schemes.link_sim import simulate

SCHEME = schemes.get("jscna-ad")


def precoded_observation(channel, snr_db, g_th, n=64, k=512, seed=0, precoding="tx", topup_abar=1.0):
    """A unit-variance latent u (N, 2k) sent as jscna-ad sends it (diffused to abar_s first with
    `topup_abar` < 1), through the channel and the link's MMSE equalizer: (u, Observation)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, 2 * k, generator=g)   # float32: the link's complex64
    sent = topup_abar ** 0.5 * u + (1 - topup_abar) ** 0.5 * torch.randn(n, 2 * k, generator=g)
    nu = real_to_complex(sent * LATENT_SCALE)       # unit power per complex symbol
    draw = draw_channel((n, k), channel, 1, g, nu.dtype)
    x = truncated_inversion(nu, draw.h, g_th, 1.0, channel)[0] if precoding == "tx" else nu
    ch = apply_channel(x, None, draw, link_powers(snr_db))
    zhat, w = mmse_equalize(ch.y, ch.h, ch.powers.signal_power, ch.powers.noise_var)
    return u, Observation(zhat=zhat, w=w, h=ch.h, powers=ch.powers, snr_db=snr_db, channel_type=channel,
                          options={"g_th": g_th, "precoding": precoding,
                                   "noise_add": "topup" if topup_abar < 1 else "none"})


@pytest.mark.parametrize("channel, snr_db, g_th", [("rayleigh", 4.0, 0.22), ("rayleigh", 10.0, 0.1), ("awgn", 5.0, 0.1)])
def test_the_start_state_is_an_exact_forward_state_of_the_sent_latent(channel, snr_db, g_th):
    """Kept symbols: x_t* / sqrt(abar) - u ~ N(0, (1 - abar) / abar) exactly (the channel's noise,
    1 / snr_eff = E1(g_th) / snr per real dimension, topped up to the grid's step); erased
    ones: drawn from u's marginal plus that noise, independent of u; and t* is the first step
    with at least the channel's noise."""
    schedule = VPSchedule.linear()
    u, obs = precoded_observation(channel, snr_db, g_th)
    opt = SCHEME.option_values(obs.options, channel)
    x, starts, extra = SCHEME.start_state(obs, opt, schedule, torch.Generator().manual_seed(1))
    snr_eff = 10 ** (snr_db / 10) / (exp1(g_th) if channel == "rayleigh" else 1.0)
    abar_star = 1 / (1 + 1 / snr_eff)
    t = starts[0]
    assert len(set(starts)) == 1 and schedule.alphas_cumprod[t] <= abar_star < schedule.alphas_cumprod[t - 1]
    abar = schedule.alphas_cumprod[t].item()
    kept = torch.cat([obs.h.abs().square() >= (g_th if channel == "rayleigh" else 0)] * 2, -1)
    err = x / abar ** 0.5 - u
    want = (1 - abar) / abar
    assert abs(err[kept].var().item() / want - 1) < 0.03 and abs(err[kept].mean().item()) < 0.01
    if channel == "rayleigh":
        assert abs(extra["erased_fraction"] - (1 - math.exp(-g_th))) < 0.01
        erased = x[~kept] / abar ** 0.5
        assert abs(erased.var().item() / (1 + want) - 1) < 0.05
        assert abs(np.corrcoef(erased.numpy(), u[~kept].numpy())[0, 1]) < 0.05


@pytest.mark.parametrize("channel, snr_db", [("awgn", 20.0), ("rayleigh", 15.0)])
def test_noise_topup_lands_every_image_on_the_target_step_as_an_exact_forward_state(channel, snr_db):
    """noise_add=topup (the spec's reading R1): the transmitter's noise and the channel's make
    exactly t_target = 150 whatever the SNR above it; the state is a forward state of u there."""
    schedule = VPSchedule.linear()
    opt = SCHEME.option_values({"noise_add": "topup", "g_th": 0.05}, channel)
    abar_s = SCHEME._topup_abar(schedule, opt, snr_db, channel)
    assert abar_s < 1
    u, obs = precoded_observation(channel, snr_db, 0.05, topup_abar=abar_s)
    x, starts, extra = SCHEME.start_state(obs, SCHEME.option_values(obs.options, channel), schedule,
                                          torch.Generator().manual_seed(2))
    assert set(starts) == {150} and extra["topup_abar_s"] == abar_s
    abar = schedule.alphas_cumprod[150].item()
    kept = torch.cat([obs.h.abs().square() >= (0.05 if channel == "rayleigh" else 0)] * 2, -1)
    err = x / abar ** 0.5 - u
    assert abs(err[kept].var().item() / ((1 - abar) / abar) - 1) < 0.03


def test_without_precoding_the_noise_differs_per_symbol_and_the_median_rule_picks_the_step():
    schedule = VPSchedule.linear()
    _, tx = precoded_observation("rayleigh", 4.0, 0.22)
    _, rx = precoded_observation("rayleigh", 4.0, 0.22, precoding="rx")
    opt = lambda o: SCHEME.option_values(o.options, "rayleigh")
    t_tx = SCHEME.start_state(tx, opt(tx), schedule, torch.Generator())[1][0]
    t_rx = SCHEME.start_state(rx, opt(rx), schedule, torch.Generator())[1][0]
    # Gaussian analysis (spec section 2): inversion pays E1(g_th) = 1.22 (-0.87 dB) on every kept
    # symbol; the MMSE receiver's median symbol sees |h|^2 = ln 2 (-1.6 dB): a later start
    assert t_rx > t_tx


@pytest.fixture(scope="module")
def cifar():
    return load_dataset("sample").images[:4]


def test_equal_step_counts_are_the_fixed_step_sampler_and_the_work_is_counted(cifar):
    backend = LocalBackend("cpu")
    run = lambda **o: simulate(backend, cifar, "rayleigh", 8.0, math.inf, "", "", "jscna-ad", receiver_options=o, seed=3)
    equal = run(s_min=6, s_max=6)
    off = run(adaptive="off", s_max=6)
    assert np.array_equal(equal.received, off.received) and not equal.errors
    assert equal.extra["patch_nfe"] == off.extra["patch_nfe"] == 6 and off.nfe == 6
    adaptive = run(s_min=2, s_max=6)
    x = adaptive.extra
    # one full pass at t* (shared with every token's first step), then only the active tokens
    assert x["full_image_nfe"] == 6 and 2 <= x["patch_nfe"] < 6
    assert x["token_evaluations"] == pytest.approx(64 * x["patch_nfe"]) and adaptive.nfe == pytest.approx(x["patch_nfe"])
    random = run(s_min=2, s_max=6, importance="random")
    assert random.extra["patch_nfe"] == pytest.approx(x["patch_nfe"])   # the same counts, other patches
    assert not np.array_equal(random.received, adaptive.received)


def test_runs_on_both_channels_and_refuses_what_it_cannot_do(cifar):
    backend = LocalBackend("cpu")
    for channel in ("awgn", "rayleigh"):
        res = simulate(backend, cifar, channel, 10.0, math.inf, "", "", "jscna-ad", receiver_options={"s_max": 4})
        assert res.received.shape == cifar.shape and not res.errors and res.symbols_per_image == 512
    with pytest.raises(ValueError, match="needs its CSI"):   # a Rayleigh transmitter without CSIT
        backend.transmit("jscna-ad", cifar, TxContext(10.0, "rayleigh"))
    assert backend.transmit("jscna-ad", cifar, TxContext(10.0, "rayleigh", options={"precoding": "rx"})).symbols.shape == (4, 512)
    with pytest.raises(ValueError, match="s_min = 9 exceeds s_max = 4"):
        simulate(backend, cifar, "awgn", 10.0, math.inf, "", "", "jscna-ad", receiver_options={"s_min": 9, "s_max": 4})
    with pytest.raises(ValueError, match="option 'importance'"):
        schemes.check("jscna-ad", {"importance": "saliency"})
    assert SCHEME.checkpoints("awgn", 512) == ["vae_cifar10_k512", "prior_vae_cifar10_k512",
                                               "gauss_vae_cifar10_k512", "classifier_cifar10"]


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_the_transmitters_top_up_is_what_the_receiver_models(cifar, channel):
    """noise_add=topup end to end: the scheme's own transmitter (top-up, then inversion) through
    the batch engine's channel; the receiver's start state at t_target is a forward state of the
    latent the VAE sent (kept symbols), to Monte Carlo precision on 8 images."""
    from gnuradio.semcom.core.mapping import complex_to_real, to_symbols
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    backend = LocalBackend("cpu")
    images = load_dataset("sample").images[:8]
    options = {"noise_add": "topup", "t_target": 100}
    _, obs = equalized_batch(backend, images, images, channel, 25.0, math.inf, "vae_cifar10_k512", "", 1,
                             torch.Generator().manual_seed(4), scheme="jscna-ad", options=options)
    s = torch.from_numpy(backend.encode("vae_cifar10_k512", images, 25.0))
    u = complex_to_real(to_symbols(s, 1.0)[0]) / LATENT_SCALE          # what was sent, unit variance
    schedule = backend.prior_schedule("prior_vae_cifar10_k512")
    opt = SCHEME.option_values(options, channel)
    x, starts, extra = SCHEME.start_state(obs, opt, schedule, torch.Generator().manual_seed(5))
    assert set(starts) == {100} and extra["topup_abar_s"] < 1
    abar = schedule.alphas_cumprod[100].item()
    g_th = SCHEME._g_th(opt, 25.0) if channel == "rayleigh" else 0.0
    kept = torch.cat([obs.h.abs().square() >= g_th] * 2, -1)
    err = x / abar ** 0.5 - u
    assert abs(err[kept].var().item() / ((1 - abar) / abar) - 1) < 0.1 and abs(err[kept].mean().item()) < 0.05


def test_the_erasures_travel_as_side_information_and_genie_csit_costs_no_bits(cifar):
    """precoding=tx on Rayleigh: each image's erasure map is in its side information; under
    genie CSIT it is the map the receiver's own h gives (so it is counted free), under stale
    CSIT it is the transmitter's (k more bits), and a garbled map is refused."""
    from gnuradio.semcom.schemes.jscna import pack_mask, unpack_mask
    backend = LocalBackend("cpu")
    gen = torch.Generator().manual_seed(0)
    h = torch.complex(torch.randn(4, 512, generator=gen), torch.randn(4, 512, generator=gen)) / math.sqrt(2)
    g_th = SCHEME._g_th(SCHEME.option_values({}, "rayleigh"), 4.0)
    genie = backend.transmit("jscna-ad", cifar, TxContext(4.0, "rayleigh", csi=h, csi_source="genie"))
    assert genie.side_info_bits == 16
    for d, row in zip(genie.side_info, h):
        assert np.array_equal(unpack_mask(d["erased"], 512), (row.abs().square() < g_th).numpy())
    stale = backend.transmit("jscna-ad", cifar, TxContext(4.0, "rayleigh", csi=h, csi_source="estimated"))
    assert stale.side_info_bits == 16 + 512
    mask = np.arange(11) % 3 == 0
    assert np.array_equal(unpack_mask(pack_mask(mask), 11), mask)
    for bad in ("zz", "abc", 7):
        with pytest.raises(ValueError, match="erasure bitmap"):
            SCHEME.check_side_info({"rms": 1.0, "erased": bad})
    with pytest.raises(ValueError, match="512 symbols is 128 hex digits"):
        unpack_mask("00", 512)


@pytest.mark.parametrize("error_var", [0.0, 0.3])
def test_stale_csit_leaves_the_residual_gain_h_over_h_hat_and_the_transmitters_erasures(cifar, error_var):
    """link_sim's csit_error: the transmitter inverts h_hat = sqrt(1-e) h + sqrt(e) w (one channel
    draw either way), erases where |h_hat|^2 < g_th, and every kept symbol arrives as
    (h / h_hat) c nu + n; the receiver takes the transmitter's erasures from the side information."""
    from gnuradio.semcom.core.channel import csit
    from gnuradio.semcom.core.mapping import to_symbols
    from gnuradio.semcom.core.precoding import inversion_gain
    from gnuradio.semcom.schemes.jscna import unpack_mask
    from gnuradio.semcom.schemes.link_sim import csit_seed, equalized_batch
    backend = LocalBackend("cpu")
    snr = 10.0
    cifar = load_dataset("sample").images[:16]
    _, obs = equalized_batch(backend, cifar, cifar, "rayleigh", snr, math.inf, "vae_cifar10_k512", "", 1,
                             torch.Generator().manual_seed(4), scheme="jscna-ad", tx_seed=9, csit_error=error_var)
    h_hat = csit(obs.h, 0, error_var, 1, torch.Generator().manual_seed(csit_seed(9))) if error_var else obs.h
    g_th = SCHEME._g_th(SCHEME.option_values({}, "rayleigh"), snr)
    erased = torch.from_numpy(np.stack([unpack_mask(d["erased"], 512) for d in obs.side_info]))
    assert torch.equal(erased, h_hat.abs().square() < g_th)
    assert torch.equal(SCHEME._kept(obs, g_th), ~erased)
    if error_var:   # the transmitter's map, not the one the receiver's h would give
        assert not torch.equal(erased, obs.h.abs().square() < g_th)
    nu = to_symbols(torch.from_numpy(backend.encode("vae_cifar10_k512", cifar, snr)), 1.0)[0]
    y = obs.zhat / obs.w                                   # undo the link's equalizer
    want = torch.where(erased, 0, obs.h / h_hat * inversion_gain(g_th) * nu)   # an erased symbol: noise alone
    for part in (~erased, erased):   # |n|^2 is exponential: its mean's relative std is 1 / sqrt(count)
        noise = (y - want)[part]
        tolerance = 4 / noise.numel() ** 0.5   # four standard deviations
        assert abs(noise.abs().square().mean().item() / obs.powers.noise_var - 1) < tolerance
        assert abs(noise.mean().item()) < tolerance * obs.powers.noise_var ** 0.5


def test_stale_csit_is_refused_where_no_transmitter_uses_csi(cifar):
    backend = LocalBackend("cpu")
    with pytest.raises(ValueError, match="does not use CSI at the transmitter"):
        simulate(backend, cifar, "rayleigh", 10.0, math.inf, "", "", "jscna-ad",
                 receiver_options={"precoding": "rx"}, csit_error=0.1)
    with pytest.raises(ValueError, match="does not use CSI at the transmitter"):
        simulate(backend, cifar, "awgn", 10.0, math.inf, "", "", "jscna-ad", csit_delay=1)
    res = simulate(backend, cifar, "rayleigh", 10.0, math.inf, "", "", "jscna-ad",
                   receiver_options={"s_max": 2}, csit_error=0.1)
    assert res.received.shape == cifar.shape and not res.errors


def test_ddim_noise_adding_sends_the_inverted_latent_and_the_receiver_starts_past_s(cifar):
    """noise_add=ddim (R2): the transmitter sends nu(DDIM-inversion of the latent to s_ddim) with
    the shipped prior; the receiver treats that state as a forward state at s_ddim, so its start
    step is the first with abar_t <= abar_s snr / (1 + snr), and it reports the transmitter's NFE."""
    from gnuradio.semcom.core.mapping import complex_to_real, to_symbols
    from gnuradio.semcom.diffusion.jscna import ddim_inversion
    from gnuradio.semcom.schemes.deepjscc import network_eps
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    backend = LocalBackend("cpu")
    options = {"noise_add": "ddim", "s_ddim": 28, "tx_steps": 4}
    sent = backend.transmit("jscna-ad", cifar, TxContext(20.0, "awgn", options=options))
    nu = to_symbols(torch.from_numpy(backend.encode("vae_cifar10_k512", cifar, 20.0)), 1.0)[0]
    prior, schedule = backend.prior("prior_vae_cifar10_k512"), backend.prior_schedule("prior_vae_cifar10_k512")
    with torch.no_grad():
        want = ddim_inversion(network_eps(prior), complex_to_real(nu) / LATENT_SCALE, schedule, 28, 4)
    assert torch.allclose(complex_to_real(sent.symbols) / LATENT_SCALE, want, atol=1e-5)
    assert not torch.allclose(complex_to_real(sent.symbols), complex_to_real(nu), atol=1e-2)
    snr_db = 15.0
    _, obs = equalized_batch(backend, cifar, cifar, "awgn", snr_db, math.inf, "vae_cifar10_k512", "", 1,
                             torch.Generator().manual_seed(4), scheme="jscna-ad", options=options)
    opt = SCHEME.option_values(options, "awgn")
    _, starts, extra = SCHEME.start_state(obs, opt, schedule, torch.Generator().manual_seed(5))
    snr = 10 ** (snr_db / 10)
    abar_star = schedule.alphas_cumprod[28].item() * snr / (1 + snr)
    t = starts[0]
    assert set(starts) == {t} and schedule.alphas_cumprod[t] <= abar_star < schedule.alphas_cumprod[t - 1]
    assert extra["ddim_abar_s"] == schedule.alphas_cumprod[28].item() and extra["tx_nfe"] == 4
    assert SCHEME.max_tx_nfe(options, "awgn") == 4 and SCHEME.max_tx_nfe({}, "awgn") == 0
    res = simulate(backend, cifar, "awgn", snr_db, math.inf, "", "", "jscna-ad",
                   receiver_options=dict(options, s_max=4))
    assert res.received.shape == cifar.shape and not res.errors and res.extra["tx_nfe"] == 4


def test_grouped_token_calls_give_the_eps_of_one_padded_call():
    """The receiver's eps_tokens runs the images in groups of similar active counts; each
    active token's eps is the one a single padded call gives, inactive tokens get none."""
    from gnuradio.semcom.diffusion import jscna
    backend = LocalBackend("cpu")
    prior = backend.prior("prior_vae_cifar10_k512")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 1024, generator=g)
    active = torch.rand(6, 64, generator=g) < torch.tensor([0.05, 0.1, 0.5, 0.55, 0.95, 0.0])[:, None]
    active[0, 0] = True
    assert len(jscna.token_groups(active.sum(1))) > 1
    tokens = prior.to_tokens(x)
    with torch.no_grad():
        grouped = SCHEME._eps_tokens(prior)(tokens, 300, active)
        rows = active.any(1)
        index, valid = jscna.active_index(active[rows])
        tt = torch.full((int(rows.sum()),), 300)
        residual = prior.residual_tokens(x[rows], tt, index, valid)
        one = torch.zeros_like(tokens[rows]).scatter(1, index[..., None].expand_as(residual), residual)
        one = one + prior.to_tokens(prior.base_eps(x[rows], tt))
    torch.testing.assert_close(grouped[rows][active[rows]], one[active[rows]], rtol=1e-4, atol=1e-5)
    assert (grouped[~rows] == 0).all()
