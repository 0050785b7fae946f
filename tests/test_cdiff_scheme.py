"""The cdiff, cdiff-ae and cdiff-vae schemes (schemes/cdiff.py) on tiny untrained cdiff_systems saved
to disk: what the receiver feeds its decoder, the CBR option, NFE, the batch engine end to end,
and clear errors."""

import math

import numpy as np
import pytest
import torch

from gnuradio.semcom import schemes
from gnuradio.semcom.core.channel import LinkPowers
from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.core.mapping import complex_to_real
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.base import Observation, TxContext
from gnuradio.semcom.schemes.cdiff import received_reals
from gnuradio.semcom.schemes.link_sim import simulate

from conftest import CDIFF_TEST_T as T, DATA, needs_cifar10


def images(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_the_awgn_receiver_undoes_the_mmse_scalar_and_rayleigh_keeps_the_equalised_symbols():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 16, dtype=torch.complex64, generator=g)
    n = 0.3 * torch.randn(3, 16, dtype=torch.complex64, generator=g)
    power, s2 = 2.0, 0.09
    y = math.sqrt(power) * z + n
    w = torch.full_like(y, math.sqrt(power) / (power + s2))
    obs = Observation(zhat=w * y, w=w, h=torch.ones_like(y), powers=LinkPowers(power, s2, 0.0), snr_db=13.0)
    received, rel = received_reals(obs)
    torch.testing.assert_close(received, complex_to_real(z + n / math.sqrt(power)), rtol=0, atol=1e-5)
    assert rel is None
    h = torch.randn(3, 16, dtype=torch.complex64, generator=g)
    w = math.sqrt(power) * h.conj() / (power * h.abs().square() + s2)
    obs = Observation(zhat=w * (math.sqrt(power) * h * z + n), w=w, h=h, powers=LinkPowers(power, s2, 0.5),
                      snr_db=13.0, channel_type="rayleigh")
    received, rel = received_reals(obs)
    torch.testing.assert_close(received, complex_to_real(obs.zhat))
    gain = power * h.abs().square()
    torch.testing.assert_close(rel, gain / (gain + s2 + 0.5))


@pytest.mark.parametrize("scheme,system", [("cdiff", "cdiff"), ("cdiff-ae", "ae"), ("cdiff-vae", "vae")])
def test_each_scheme_runs_the_batch_engine_end_to_end(cdiff_systems, scheme, system):
    backend = LocalBackend("cpu")
    opts = {"steps": 4} if scheme == "cdiff" else {}
    res = simulate(backend, images(), "awgn", 10.0, math.inf, cdiff_systems[system], "", scheme, receiver_options=opts)
    assert res.received.shape == (6, 32, 32, 3) and res.received.dtype == np.uint8 and not res.errors
    assert res.nfe == (4 if scheme == "cdiff" else 0)
    assert res.symbols_per_image == 128
    # fewer symbols: the CBR sweep (a head of that k, and a k with no head: the largest's first k)
    for k in (64, 100):
        res = simulate(backend, images(), "awgn", 10.0, math.inf, cdiff_systems[system], "", scheme,
                       receiver_options=dict(opts, k=k))
        assert res.symbols_per_image == k and not res.errors


def test_cdiff_on_rayleigh_and_the_sampler_is_seeded(cdiff_systems):
    backend = LocalBackend("cpu")
    a = simulate(backend, images(), "rayleigh", 5.0, math.inf, cdiff_systems["cdiff"], "", "cdiff",
                 receiver_options={"steps": 3, "sampler": "ddpm"}, seed=1)
    b = simulate(backend, images(), "rayleigh", 5.0, math.inf, cdiff_systems["cdiff"], "", "cdiff",
                 receiver_options={"steps": 3, "sampler": "ddpm"}, seed=1)
    assert not a.errors and np.array_equal(a.received, b.received)


def test_bad_requests_are_one_clear_error(cdiff_systems):
    backend = LocalBackend("cpu")
    with pytest.raises(ValueError, match=f"T = {T}"):
        simulate(backend, images(), "awgn", 10.0, math.inf, cdiff_systems["cdiff"], "", "cdiff",
                 receiver_options={"steps": T + 1})
    with pytest.raises(CheckpointError, match="a 'cdiff-autoencoder' checkpoint, not 'cdiff'"):   # the AE is not a cdiff system
        simulate(backend, images(), "awgn", 10.0, math.inf, cdiff_systems["ae"], "", "cdiff")
    with pytest.raises(ValueError, match="at most 128"):
        simulate(backend, images(), "awgn", 10.0, math.inf, cdiff_systems["ae"], "", "cdiff-ae", receiver_options={"k": 4096})
    with pytest.raises(ValueError, match="'ae' system"):
        simulate(backend, images(), "awgn", 10.0, math.inf, cdiff_systems["ae"], "", "cdiff-vae")
    with pytest.raises(ValueError, match="option 'sampler'"):
        schemes.check("cdiff", {"sampler": "euler"})
    with pytest.raises(CheckpointError, match="cdiff_rayleigh_k512: no shipped .* apps/train_cdiff.py"):
        schemes.get("cdiff").check_checkpoints("rayleigh", 512)   # (no Rayleigh system is shipped)
    with pytest.raises(CheckpointError, match="at most 128 symbols per image, not 999"):
        schemes.get("cdiff").check_model("awgn", 999, cdiff_systems["cdiff"])
    schemes.get("cdiff").check_model("awgn", 100, cdiff_systems["cdiff"])   # fewer: zero-padded
    with pytest.raises(ValueError, match="is a CDiff 'vae' system, scheme 'cdiff-ae' needs 'ae'"):
        schemes.get("cdiff-ae").check_model("awgn", 128, cdiff_systems["vae"])


def test_backend_info_encode_and_decode_of_the_baselines(cdiff_systems):
    backend = LocalBackend("cpu")
    info = backend.info(cdiff_systems["ae"])
    assert info["k"] == 128 and info["image_shape"] == (32, 32, 3) and info["role"] == "autoencoder"
    lat = backend.encode(cdiff_systems["ae"], images(2), 0.0)
    assert lat.shape == (2, 256)
    assert backend.decode(cdiff_systems["ae"], lat, 0.0).shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="reverse diffusion"):
        backend.decode(cdiff_systems["cdiff"], backend.encode(cdiff_systems["cdiff"], images(2), 0.0), 0.0)


def test_the_encoder_option_sends_another_systems_symbols(cdiff_systems):
    """Unmatched encoders: option encoder=X makes X's encoder transmit to this decoder, so the
    symbols are exactly X's own; a checkpoint that is not a CDiff system is one clear error."""
    backend = LocalBackend("cpu")
    tx = lambda scheme, model, **opt: backend.transmit(scheme, images(3), TxContext(10.0, model=model, options=opt)).symbols
    # (the fixture's cdiff and ae encoders share their seed; the VAE's differs)
    swapped = tx("cdiff", cdiff_systems["cdiff"], encoder=cdiff_systems["vae"])
    torch.testing.assert_close(swapped, tx("cdiff-vae", cdiff_systems["vae"]), rtol=0, atol=0)
    assert not torch.allclose(swapped, tx("cdiff", cdiff_systems["cdiff"]))
    torch.testing.assert_close(tx("cdiff-ae", cdiff_systems["ae"], encoder=cdiff_systems["cdiff"], k=64),
                               tx("cdiff", cdiff_systems["cdiff"], k=64), rtol=0, atol=0)
    res = simulate(backend, images(), "awgn", 10.0, math.inf, cdiff_systems["cdiff"], "", "cdiff",
                   receiver_options={"steps": 2, "encoder": cdiff_systems["vae"]})
    assert not res.errors and res.received.shape == (6, 32, 32, 3)
    with pytest.raises(CheckpointError, match="not found"):
        tx("cdiff-ae", cdiff_systems["ae"], encoder=str(cdiff_systems["cdiff"]) + "_missing")
    with pytest.raises(CheckpointError, match="a jscc checkpoint, not a CDiff system"):
        tx("cdiff-ae", cdiff_systems["ae"], encoder="jscc_user_awgn_k512")


@needs_cifar10
def test_shipped_systems_beat_images_that_carry_no_or_almost_no_information():
    """At 10 dB on CIFAR-10 test images no bench scores ([600:632]): the shipped cdiff (10-step
    DDIM) and matched AE beat, in PSNR, SSIM and feature_dist, the per-image mean colour (an
    oracle sending 6 reals); the VAE baseline (the paper's equal-weight KL, which collapses: its
    PSNR is on par with the dataset's mean image, docs/results_cdiff.md) beats that mean image,
    which carries no information about the image, in SSIM and feature_dist."""
    from gnuradio.semcom.core import metrics
    from gnuradio.semcom.core.data import to_tensor
    from gnuradio.semcom.core.datasets import load_dataset
    images = load_dataset(f"npz:{DATA / 'cifar10_test.npz'}[600:632]").images
    mean_image = load_dataset(f"npz:{DATA / 'cifar10_test.npz'}[5000:10000]").images.mean(0)
    x = to_tensor(images)
    scores = lambda out: {k: float(np.mean(v)) for k, v in metrics.image_metrics(
        to_tensor(out), x, with_lpips=False).items() if k in ("psnr_db", "ssim", "feature_dist")}
    colour = np.broadcast_to(images.reshape(len(images), -1, 3).mean(1)[:, None, None], images.shape)
    trivial = {"colour": scores(colour.round().astype(np.uint8)),
               "mean image": scores(np.broadcast_to(mean_image, images.shape).round().astype(np.uint8))}
    backend = LocalBackend("cpu")
    for scheme, opts, against, keys in (("cdiff", {"steps": 10, "sampler": "ddim"}, "colour", None),
                                        ("cdiff-ae", {}, "colour", None),
                                        ("cdiff-vae", {}, "mean image", ("ssim", "feature_dist"))):
        res = simulate(backend, images, "awgn", 10.0, math.inf, "", "", scheme, receiver_options=opts)
        got, ref = scores(res.received), trivial[against]
        for key in keys or ("psnr_db", "ssim", "feature_dist"):
            better = got[key] < ref[key] if key == "feature_dist" else got[key] > ref[key]
            assert better, (scheme, key, got, against, ref)


def test_fewer_symbols_reach_the_decoder_where_it_was_trained_to_find_them(cdiff_systems):
    """k' = 100 of a 128-symbol head (no head of 100): the AE decoder's input is that head's
    layout [Re 0..127; Im 0..127] with symbols 100..127 zero; k' = 64 (a head of its own) is
    that head's [Re 0..63; Im 0..63], as trained."""
    from gnuradio.semcom.nets.cdiff import load_system
    backend = LocalBackend("cpu")
    seen = []
    model = backend.model(cdiff_systems["ae"], "cdiff-autoencoder")
    hook = model.decoder.fc.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    try:
        full = backend.transmit("cdiff-ae", images(2), TxContext(300.0, model=cdiff_systems["ae"])).symbols
        for k in (100, 64):
            res = simulate(backend, images(2), "awgn", 300.0, math.inf, cdiff_systems["ae"], "", "cdiff-ae",
                           receiver_options={"k": k}, batch_size=2)
            assert not res.errors
    finally:
        hook.remove()
    got = seen[-2]
    assert got.shape == (2, 256)
    kept = full[:, :100] / full[:, :100].abs().square().mean(1, keepdim=True).sqrt()   # renormalised
    torch.testing.assert_close(got[:, :100], kept.real, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(got[:, 128:228], kept.imag, rtol=1e-3, atol=1e-3)
    assert (got[:, 100:128] == 0).all() and (got[:, 228:] == 0).all()
    head64 = load_system(cdiff_systems["ae"])[0]
    assert seen[-1].shape == (2, 256) and (seen[-1][:, 128:] == 0).all() and "64" in head64.encoder.heads
