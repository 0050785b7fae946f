"""jscna-ad-pixel (schemes/jscna_pixel.py) and its prior (diffusion/pixel_prior.py): the
stationary Gaussian base against closed forms, the patch layout, the crop's work and
exactness, the start state in pixel units, and the scheme's refusals. The receiver's mechanics
run on a tiny untrained prior written here (its U-Net's output layer randomised), so no test
depends on the shipped prior's training."""

import math

import numpy as np
import pytest
import torch

from gnuradio.semcom import schemes
from gnuradio.semcom.core.checkpoint import save_checkpoint
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.diffusion.dit import LINEAR_SCHEDULE, schedule_from_data
from gnuradio.semcom.diffusion.pixel_prior import KIND, PixelPrior, PixelPriorConfig, crop_eps
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.nets.cdiff import UNetConfig
from gnuradio.semcom.schemes.link_sim import equalized_batch, simulate

SCHEME = schemes.get("jscna-ad-pixel")


def tiny(shape=(3, 32, 32), dim=8):
    return PixelPrior(PixelPriorConfig(unet=UNetConfig(dim=dim, mults=(1, 2, 4), in_channels=3), image_shape=shape))


def flat(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).reshape(len(images), -1).float() / 127.5 - 1


@pytest.fixture(scope="module")
def cifar():
    return load_dataset("sample").images[:4]


@pytest.fixture(scope="module")
def prior_path(tmp_path_factory, cifar):
    """A 32x32 prior whose base is fitted to the sample images and their flips and shifts, with
    a random (untrained) residual."""
    sample = load_dataset("sample").images
    many = np.concatenate([np.roll(sample, s, axis=2) for s in range(0, 32, 4)] + [sample[:, :, ::-1]])
    prior = tiny().fit_base(flat(many))
    torch.manual_seed(0)
    torch.nn.init.normal_(prior.unet.out.weight, std=0.05)   # a network that is not zero: the crops and steps matter
    path = tmp_path_factory.mktemp("pixel") / "pixel_prior_test"
    save_checkpoint(path, prior, prior.cfg, {"training_command": "test"}, kind=KIND, schedule=dict(LINEAR_SCHEDULE))
    return str(path)


# ------------------------------------------------------------------ the Gaussian base

def test_the_stationary_fit_of_all_circular_shifts_is_their_sample_covariance():
    """All 64 circular shifts of one image are exactly stationary: the per-frequency fit then
    holds their whole sample covariance (and mean), which the dense form must reproduce."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(3, 8, 8, generator=g) * 2 - 1
    shifts = torch.stack([base.roll((i, j), (1, 2)) for i in range(8) for j in range(8)]).reshape(64, -1)
    prior = tiny((3, 8, 8), dim=4).fit_base(shifts)
    want = torch.from_numpy(np.cov(shifts.double().numpy(), rowvar=False))
    assert torch.allclose(prior.base_covariance(), want, atol=1e-6)
    assert torch.allclose(prior.base_mean.double(), shifts.double().mean(0), atol=1e-6)
    assert torch.allclose(prior.base_variance(), want.diagonal(), atol=1e-6)


@pytest.mark.parametrize("t", [0, 37, 399])
def test_base_eps_is_the_gaussians_exact_posterior_noise(cifar, t):
    """E[eps | x_t] = sigma (abar Sigma + sigma^2 I)^-1 (x_t - sqrt(abar) mu), solved densely."""
    prior = tiny((3, 16, 16), dim=4).fit_base(flat(load_dataset("sample").images[:, :16, :16]))
    sigma_dense = prior.base_covariance()
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(3, prior.cfg.dim, generator=g, dtype=torch.float64)
    abar = prior.abar[t].item()
    rhs = (x_t - abar ** 0.5 * prior.base_mean.double()).T
    want = ((1 - abar) ** 0.5 * torch.linalg.solve(abar * sigma_dense + (1 - abar) * torch.eye(prior.cfg.dim,
                                                                                               dtype=torch.float64), rhs)).T
    assert torch.allclose(prior.base_eps(x_t, t), want, atol=1e-8, rtol=1e-6)
    # one step per row gives the rows' own answers
    steps = torch.tensor([t, 5, 200])
    per_row = prior.base_eps(x_t, steps)
    assert torch.allclose(per_row[0], want[0], atol=1e-8, rtol=1e-6)
    assert torch.allclose(per_row[2], prior.base_eps(x_t[2:], 200)[0])


def test_an_untrained_prior_is_its_gaussian_and_refuses_steps_it_was_not_trained_on():
    prior = tiny()
    x = torch.randn(2, prior.cfg.dim)
    assert torch.equal(prior(x, 10), prior.base_eps(x, 10))      # the U-Net's output starts at zero
    with pytest.raises(ValueError, match="trained on steps t < 400"):
        prior(x, 400)


def test_tokens_are_the_classifiers_4x4_patches_in_raster_order():
    prior = tiny()
    x = torch.arange(prior.cfg.dim, dtype=torch.float32)[None]
    tokens = prior.to_tokens(x)
    image = x.reshape(3, 32, 32)
    assert tokens.shape == (1, 64, 48)
    assert torch.equal(tokens[0, 9], image[:, 4:8, 4:8].reshape(-1)) and torch.equal(tokens[0, 63], image[:, 28:, 28:].reshape(-1))
    assert torch.equal(prior.from_tokens(tokens), x)


def test_the_crop_runs_the_network_on_fewer_pixels_and_is_exact_on_the_whole_image():
    torch.manual_seed(0)
    prior = tiny()
    torch.nn.init.normal_(prior.unet.out.weight, std=0.1)    # a network that is not zero
    x = torch.randn(3, prior.cfg.dim)
    x = torch.randn(6, prior.cfg.dim)
    active = torch.zeros(6, 64, dtype=torch.bool)
    active[0, [27, 28, 35]] = True     # three central patches -> a 16-pixel crop
    active[1] = True                   # every patch -> the whole image
    active[3, 0] = True                # a corner patch: its margin outside the image does not count -> 16
    active[4, [27, 30]] = True         # columns 3..6 and the margin: 6 patches -> a 24-pixel crop
    active[5, [0, 63]] = True          # opposite corners -> the whole image
    calls = []
    hook = prior.unet.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    eps, pixels = crop_eps(prior, x, 50, active)
    hook.remove()
    assert sorted(calls) == [(1, 3, 24, 24), (2, 3, 16, 16), (2, 3, 32, 32)]   # image 2 (none active): no call
    assert pixels.tolist() == [256, 1024, 0, 256, 576, 1024]
    # each active patch lies inside its image's crop: zero the image outside the crop found by
    # hand and the eps there does not change
    for i, (top, left, side) in {0: (8, 8, 16), 3: (0, 0, 16), 4: (0, 8, 24)}.items():
        inside = torch.zeros(3, 32, 32)
        inside[:, top:top + side, left:left + side] = 1
        alone, _ = crop_eps(prior, x[i:i + 1] * inside.reshape(1, -1), 50, active[i:i + 1])
        residual = eps[i] - prior.to_tokens(prior.base_eps(x[i:i + 1], 50))[0]
        residual_alone = alone[0] - prior.to_tokens(prior.base_eps(x[i:i + 1] * inside.reshape(1, -1), 50))[0]
        assert torch.allclose(residual[active[i]], residual_alone[active[i]], atol=1e-5)
    full = prior.to_tokens(prior(x, 50))
    assert torch.allclose(eps[1], full[1], atol=1e-5)             # a whole-image crop is the network itself
    assert torch.equal(eps[2], torch.zeros_like(eps[2])) and torch.equal(eps[0, 0], torch.zeros(48))
    # the crop is an approximation only through its borders: the active patches' eps stay close
    assert (eps[0, active[0]] - full[0, active[0]]).abs().max() < (full[0] - prior.to_tokens(prior.base_eps(x, 50))[0]).abs().max()
    steps = torch.tensor([50, 7, 300, 50, 50, 9])    # one step per image: each crop gets its own
    per_image, _ = crop_eps(prior, x, steps, active)
    assert torch.allclose(per_image[1], prior.to_tokens(prior(x[1:2], 7))[0], atol=1e-5)


# ------------------------------------------------------------------ the scheme

def test_the_start_state_is_an_exact_forward_state_of_the_pixels(cifar, prior_path):
    """AWGN, precoding=tx: every pixel arrives as s + n with n of variance rms^2 / 2 / snr
    (the unit-power symbols' noise in pixel units), so x_t* = sqrt(abar) s + sqrt(1 - abar) eps
    with eps white and unit variance, and a brighter image (larger rms) starts later."""
    backend = LocalBackend("cpu")
    images = np.concatenate([cifar, (cifar // 4 + 96).astype(np.uint8)])   # grey copies: a smaller rms
    _, obs = equalized_batch(backend, images, images, "awgn", 12.0, math.inf, prior_path, "", 1,
                             torch.Generator().manual_seed(0), "jscna-ad-pixel")
    schedule = schedule_from_data(LINEAR_SCHEDULE)
    opt = SCHEME.option_values({}, "awgn")
    x, starts, _ = SCHEME.start_state(obs, opt, schedule, torch.Generator().manual_seed(1))
    s = flat(images).double()
    rms = torch.tensor([d["rms"] for d in obs.side_info], dtype=torch.float64)
    for i, t in enumerate(starts):
        abar = schedule.alphas_cumprod[t].item()
        # the matched step is the first whose noise covers the channel's: (1 - abar) / abar >= v
        v = rms[i].item() ** 2 / 2 / 10 ** 1.2
        assert (1 - abar) / abar >= v > (1 - schedule.alphas_cumprod[t - 1].item()) / schedule.alphas_cumprod[t - 1].item()
        e = (x[i].double() - abar ** 0.5 * s[i]) / (1 - abar) ** 0.5
        assert abs(float(e.mean())) < 0.06 and abs(float(e.var()) - 1) < 0.08
    assert all(starts[i] > starts[i + 4] for i in range(4))


def test_equal_step_counts_are_the_fixed_step_sampler_and_the_crop_saves_work(cifar, prior_path):
    backend = LocalBackend("cpu")
    run = lambda **o: simulate(backend, cifar, "rayleigh", 8.0, math.inf, prior_path, "", "jscna-ad-pixel",
                               receiver_options=o, seed=3)
    equal, off = run(s_min=5, s_max=5, crop="off"), run(adaptive="off", s_max=5, crop="off")
    assert np.array_equal(equal.received, off.received) and not equal.errors and equal.symbols_per_image == 1536
    assert off.nfe == 5 and off.extra["patch_nfe"] == 5
    # every patch active at every step: the crop is the whole image, the very same numbers
    assert np.array_equal(run(adaptive="off", s_max=5).received, off.received)
    adaptive, whole = run(s_min=2, s_max=6), run(s_min=2, s_max=6, crop="off")
    assert adaptive.extra["patch_nfe"] == whole.extra["patch_nfe"] < 6
    assert whole.nfe == 6 and adaptive.nfe < whole.nfe          # pixels the network ran on, in whole images
    assert adaptive.extra["erased_fraction"] > 0


def test_the_gaussian_control_is_the_fitted_gaussians_posterior_mean_of_the_start_state(cifar, prior_path):
    """prior=gaussian: E[x0 | x_t*] = mu + sqrt(abar) Sigma (abar Sigma + (1 - abar) I)^-1 (x_t* - sqrt(abar) mu),
    solved densely, and no network call."""
    backend = LocalBackend("cpu")
    _, obs = equalized_batch(backend, cifar[:2], cifar[:2], "awgn", 5.0, math.inf, prior_path, "", 1,
                             torch.Generator().manual_seed(0), "jscna-ad-pixel")
    obs.options = {"prior": "gaussian"}
    res = backend.receive("jscna-ad-pixel", obs)
    assert res.nfe == 0
    schedule = schedule_from_data(LINEAR_SCHEDULE)
    x, starts, _ = SCHEME.start_state(obs, SCHEME.option_values(obs.options, "awgn"), schedule,
                                      torch.Generator().manual_seed(obs.seed))
    prior = backend.model(prior_path, KIND)
    cov, mu = prior.base_covariance(), prior.base_mean.double()
    for i, t in enumerate(starts):
        abar = schedule.alphas_cumprod[t].item()
        gain = torch.linalg.solve(abar * cov + (1 - abar) * torch.eye(cov.shape[0], dtype=torch.float64),
                                  x[i].double() - abar ** 0.5 * mu)
        want = (mu + abar ** 0.5 * cov @ gain).clamp(-1, 1)
        got = torch.from_numpy(res.images[i]).permute(2, 0, 1).reshape(-1).double() / 127.5 - 1
        assert (got - want).abs().max() <= 1 / 127.5 + 1e-6       # 8-bit rounding


def test_refuses_what_it_cannot_do(cifar, prior_path):
    backend = LocalBackend("cpu")
    with pytest.raises(ValueError, match="32x32x3"):
        backend.transmit("jscna-ad-pixel", cifar[:, :16], schemes.TxContext(10.0, "awgn", prior_path))
    with pytest.raises(ValueError, match="sends 512 symbols per image, scheme 'jscna-ad-pixel' 1536"):
        simulate(backend, cifar, "awgn", 10.0, 5.0, prior_path, "jscc_interferer_awgn_k512", "jscna-ad-pixel")
    with pytest.raises(ValueError, match="option 'noise_add'"):
        schemes.check("jscna-ad-pixel", {"noise_add": "topup"})
    with pytest.raises(ValueError, match="not k = 512"):
        SCHEME.check_model("awgn", 512)
    assert SCHEME.checkpoints("awgn", 1536) == ["pixel_prior_cifar10", "classifier_cifar10"]
    assert SCHEME.symbols_per_image(None, None, (32, 32, 3)) == 1536


def test_an_image_beyond_the_priors_steps_starts_at_its_last_and_the_gaussian_is_not_clamped(cifar, prior_path):
    """At -9 dB a white image's noise needs t* > 400: the U-Net path starts it at 399 (counted),
    the rest of the batch at their own steps; the Gaussian control, exact at any step, is not
    clamped."""
    backend = LocalBackend("cpu")
    images = np.concatenate([cifar[:2], np.full((1, 32, 32, 3), 250, np.uint8)])
    res = simulate(backend, images, "awgn", -9.0, math.inf, prior_path, "", "jscna-ad-pixel",
                   receiver_options={"s_max": 2}, seed=0)
    assert not res.errors and res.extra["clamped_fraction"] == pytest.approx(1 / 3)
    gauss = simulate(backend, images, "awgn", -9.0, math.inf, prior_path, "", "jscna-ad-pixel",
                     receiver_options={"prior": "gaussian"}, seed=0)
    assert "clamped_fraction" not in gauss.extra and gauss.extra["start_step"] > res.extra["start_step"]


def test_erased_pixels_start_from_the_priors_marginal_and_deep_fades_are_shrunk_to_the_start_level(cifar, prior_path):
    """Rayleigh, precoding=tx: an erased pixel at t* is sqrt(abar) mu_j + sqrt(abar var_j + 1 - abar) n.
    precoding=rx: a pixel noisier than the start level (v > v*) is shrunk so that its mean square
    is abar (m + v*), m the image's mean square rms^2 / 2, not the unit latent's 1 + v*."""
    backend = LocalBackend("cpu")
    schedule = schedule_from_data(LINEAR_SCHEDULE)
    prior = backend.model(prior_path, KIND)
    images = np.concatenate([cifar] * 8)
    _, obs = equalized_batch(backend, images, images, "rayleigh", 4.0, math.inf, prior_path, "", 1,
                             torch.Generator().manual_seed(0), "jscna-ad-pixel")
    opt = SCHEME.option_values({}, "rayleigh")
    x, starts, extra = SCHEME.start_state(obs, opt, schedule, torch.Generator().manual_seed(1))
    x = SCHEME._fill_erased(prior, obs, opt, x, starts, schedule, torch.Generator().manual_seed(2))
    erased = ~SCHEME._kept(obs, extra["g_th"])
    erased = torch.cat([erased, erased], 1)
    abar = schedule.alphas_cumprod[torch.tensor(starts)][:, None].float()
    z = (x - abar.sqrt() * prior.base_mean) / (abar * prior.base_variance().float() + 1 - abar).sqrt()
    assert erased.sum() > 5000 and abs(float(z[erased].mean())) < 0.05 and abs(float(z[erased].var()) - 1) < 0.05
    # precoding=rx: the deep fades' mean square
    opt = SCHEME.option_values({"precoding": "rx"}, "rayleigh")
    _, rx = equalized_batch(backend, images, images, "rayleigh", 10.0, math.inf, prior_path, "", 1,
                            torch.Generator().manual_seed(3), "jscna-ad-pixel", options={"precoding": "rx"})
    x, starts, _ = SCHEME.start_state(rx, opt, schedule, torch.Generator().manual_seed(4))
    from gnuradio.semcom.diffusion.matched_start import chain_noise
    from gnuradio.semcom.schemes.deepjscc import lemma1_observation
    _, v = chain_noise(SCHEME._prior_domain(lemma1_observation(rx), rx), "x")
    v = torch.cat([v, v], 1)
    m = torch.tensor([d["rms"] for d in rx.side_info]) ** 2 / 2
    for i, t in enumerate(starts):
        a = schedule.alphas_cumprod[t].item()
        deep = v[i] > (1 - a) / a
        assert deep.sum() > 50
        assert float((x[i][deep] ** 2).mean() / a) == pytest.approx(float(m[i]) + (1 - a) / a, rel=0.25)


@pytest.mark.slow   # a flowgraph and the batch engine on 16 images with the shipped prior (~30 s)
def test_the_flowgraph_and_the_batch_engine_agree_with_the_shipped_prior():
    """AWGN needs no CSIT, so the GNU Radio link (scheme_transmitter -> channel -> equalizer ->
    scheme_receiver) carries jscna-ad-pixel's 1536 symbols per image; its PSNR matches the batch
    engine's within 0.2 dB (their channel draws differ) and beats the fitted Gaussian's."""
    from gnuradio import semcom
    from gnuradio.semcom.core import metrics
    from gnuradio.semcom.core.data import to_tensor
    from gnuradio.semcom.core.models import pixel_prior_name
    from gnuradio.semcom.inference import get_backend
    sample = load_dataset("sample")
    n, prior = 16, pixel_prior_name("cifar10")
    tb = semcom.image_link("sample", n, "awgn", 10.0, math.inf, prior, "", "jscna-ad-pixel", seed=0, with_lpips=False)
    tb.run()
    s = tb.sink.summary()
    assert s["images"] == n and s["missing"] == 0
    images = sample.images[:n]
    batch = simulate(get_backend(), images, "awgn", 10.0, math.inf, prior, "", "jscna-ad-pixel", seed=0)
    gauss = simulate(get_backend(), images, "awgn", 10.0, math.inf, prior, "", "jscna-ad-pixel",
                     receiver_options={"prior": "gaussian"}, seed=0)
    psnr = lambda res: metrics.psnr(to_tensor(res.received), to_tensor(images)).mean().item()
    assert s["psnr_db"] == pytest.approx(psnr(batch), abs=0.2)
    assert psnr(batch) > psnr(gauss)
