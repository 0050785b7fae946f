"""The KL-VAE (nets/kl_vae.py) and its training app (apps/train_vae.py), on tiny models.

The losses are checked against closed forms and autograd computed here, not against the
module's own numbers: the KL of a Gaussian by numerical integration, the reparameterisation by
its sample moments, the adaptive weight against the gradient norms taken by hand at the
decoder's last layer, the hinge losses against their piecewise-linear definition. Training
resumes to the very weights of an uninterrupted run (both phases: before and after the
discriminator's delayed start). No real training runs here.
"""

import importlib.util
import json
import math

import numpy as np
import pytest
import torch

from conftest import REPO
from gnuradio.semcom.core import checkpoint as ck
from gnuradio.semcom.core import models
from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.nets import kl_vae
from gnuradio.semcom.nets.kl_vae import KLVAE, KLVAEConfig, VAEInputError

TINY = KLVAEConfig(width=16, width_low=16, res_blocks=1, groups=4)


def tiny_model(seed=0, **kw) -> KLVAE:
    torch.manual_seed(seed)
    return KLVAE(KLVAEConfig(**dict(TINY.to_dict(), **kw)))


def images(n=6, seed=1, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ shapes and the budget

def test_shapes_and_budget_are_the_deepjscc_links():
    cfg = KLVAEConfig()
    assert cfg.latent_shape == (16, 8, 8) and cfg.latent_dim == 1024 and cfg.k == 512
    assert cfg.cbr == pytest.approx(1 / 6)
    model = tiny_model()
    x = images(5)
    rec, mu, logvar = model(x)
    assert rec.shape == x.shape and mu.shape == logvar.shape == (5, 16, 8, 8)
    model.latent_scale.fill_(2.0)
    z = model.encode(x)
    assert z.shape == (5, 16, 8, 8)
    torch.testing.assert_close(z, model.moments(x)[0].detach() * 2.0)  # encode is the scaled mean
    out = model.decode(z)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    # decode undoes the scale: decoding the scaled mean is decoding the raw mean
    torch.testing.assert_close(out, model.reconstruct_raw(model.moments(x)[0]).clamp(0, 1).detach())
    # the default (shipped) size is a few MB of float32 weights
    assert 0.5e6 < kl_vae.count_parameters(KLVAE(cfg)) < 2.0e6


# ------------------------------------------------------------------ the losses against closed forms

def test_kl_equals_the_integral_of_the_gaussian_log_ratio():
    """KL(N(mu, s^2) || N(0, 1)) per element by quadrature, summed over the latent."""
    mu = torch.tensor([[0.0, 1.5, -0.7, 0.3]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.0, 0.8, -3.0]], dtype=torch.float64)
    total = 0.0
    for m, lv in zip(mu[0].tolist(), logvar[0].tolist()):
        s = math.exp(0.5 * lv)
        z = np.linspace(m - 12 * s, m + 12 * s, 200001)
        q = np.exp(-0.5 * ((z - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        log_ratio = (-0.5 * ((z - m) / s) ** 2 - math.log(s)) - (-0.5 * z ** 2)
        total += np.trapz(q * log_ratio, z)
    got = kl_vae.kl_divergence(mu, logvar)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(total, rel=1e-6)
    assert kl_vae.kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0  # KL(N(0,1)||N(0,1))


def test_reparameterisation_has_the_mean_and_variance_it_is_given():
    n = 400_000
    mu = torch.tensor([0.5, -2.0, 0.0]).repeat(n, 1)
    logvar = torch.tensor([0.0, math.log(0.25), math.log(4.0)]).repeat(n, 1)
    z = kl_vae.reparameterise(mu, logvar, torch.Generator().manual_seed(3))
    se_mean = torch.tensor([1.0, 0.5, 2.0]) / math.sqrt(n)
    assert ((z.mean(0) - torch.tensor([0.5, -2.0, 0.0])).abs() < 4 * se_mean).all()
    var = z.var(0)
    se_var = torch.tensor([1.0, 0.25, 4.0]) * math.sqrt(2 / n)
    assert ((var - torch.tensor([1.0, 0.25, 4.0])).abs() < 4 * se_var).all()
    # the same generator state gives the same draw (reproducible training)
    a = kl_vae.reparameterise(mu[:10], logvar[:10], torch.Generator().manual_seed(9))
    b = kl_vae.reparameterise(mu[:10], logvar[:10], torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_reconstruction_loss_is_the_squared_error_summed_over_pixels():
    x, y = images(3, seed=4), images(3, seed=5)
    want = torch.tensor([float(((x[i] - y[i]) ** 2).sum()) for i in range(3)])
    torch.testing.assert_close(kl_vae.reconstruction_loss(y, x), want)


def test_hinge_losses_closed_form():
    real = torch.tensor([2.0, 0.5, -1.0, 1.0])
    fake = torch.tensor([-2.0, -0.5, 1.0, 0.0])
    # relu(1 - r): 0, 0.5, 2, 0 -> mean 0.625; relu(1 + f): 0, 0.5, 2, 1 -> mean 0.875
    assert kl_vae.hinge_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.625 + 0.875))
    assert kl_vae.hinge_discriminator_loss(torch.ones(4) * 3, -torch.ones(4) * 3).item() == 0  # past the margins
    assert kl_vae.hinge_generator_loss(fake).item() == pytest.approx(-fake.mean().item())


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_last_decoder_layer():
    model = tiny_model(2)
    torch.manual_seed(4)
    disc = kl_vae.PatchDiscriminator(kl_vae.DiscriminatorConfig(width=8))
    x = images(4, seed=6)
    rec, _, _ = model(x, torch.Generator().manual_seed(1))
    rec_loss = kl_vae.reconstruction_loss(rec, x).mean()
    gen_loss = kl_vae.hinge_generator_loss(disc(rec))
    lam = kl_vae.adaptive_adversarial_weight(rec_loss, gen_loss, model.last_decoder_layer)
    assert model.last_decoder_layer is model.decoder.out.weight
    # by hand: full backward passes of each loss alone, read at decoder.out.weight
    model.zero_grad()
    rec_loss.backward(retain_graph=True)
    g_rec = model.decoder.out.weight.grad.norm().item()
    model.zero_grad()
    gen_loss.backward(retain_graph=True)
    g_gen = model.decoder.out.weight.grad.norm().item()
    assert g_rec > 0 and g_gen > 0
    assert lam.item() == pytest.approx(g_rec / (g_gen + 1e-4), rel=1e-5)
    assert not lam.requires_grad
    # the adversarial term of the full loss is adv_weight * lambda * L_G, and its gradient at
    # the last layer has the reconstruction gradient's norm times adv_weight
    loss, _, stats = kl_vae.autoencoder_loss(model, x, kl_vae.LossWeights(kl=0.0, adversarial=0.1), disc,
                                             torch.Generator().manual_seed(1))
    assert stats["adaptive_weight"] == pytest.approx(lam.item(), rel=1e-6)
    assert loss.item() == pytest.approx(rec_loss.item() + 0.1 * lam.item() * gen_loss.item(), rel=1e-6)


def test_loss_without_discriminator_is_mse_plus_weighted_kl():
    model = tiny_model(3)
    x = images(4, seed=7)
    loss, _, stats = kl_vae.autoencoder_loss(model, x, kl_vae.LossWeights(kl=1e-3), None,
                                             torch.Generator().manual_seed(2))
    rec, mu, logvar = model(x, torch.Generator().manual_seed(2))
    want = ((rec - x) ** 2).flatten(1).sum(1).mean() + 1e-3 * kl_vae.kl_divergence(mu, logvar).mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    assert "gen" not in stats and stats["mse"] == pytest.approx(((rec - x) ** 2).mean().item(), rel=1e-6)


# ------------------------------------------------------------------ the latent scale

def test_latent_scale_makes_the_latents_unit_variance():
    model = tiny_model(5)
    model.eval()
    x = images(40, seed=8)
    with pytest.raises(VAEInputError, match="not calibrated"):
        model.encode(x)
    batches = [x[i:i + 16] for i in range(0, 40, 16)]
    stats = kl_vae.calibrate_latent_scale(model, batches)
    mu = model.moments(x)[0].detach().double()
    assert stats["std"] == pytest.approx(mu.flatten().std(unbiased=False).item(), rel=1e-6)  # float32 batches
    z = model.encode(x).double()
    assert z.flatten().std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert model.latent_scale.item() == pytest.approx(1 / stats["std"], rel=1e-6)


# ------------------------------------------------------------------ bad input, checkpoints

def test_wrong_image_size_or_latent_shape_gives_one_clear_error():
    model = tiny_model()
    model.latent_scale.fill_(1.0)
    with pytest.raises(VAEInputError, match=r"takes images \(N, 3, 32, 32\), got \(2, 3, 28, 28\)"):
        model.encode(images(2, size=28))
    with pytest.raises(VAEInputError, match=r"\(N, 3, 32, 32\)"):
        model.encode(torch.rand(3, 32, 32))
    with pytest.raises(VAEInputError, match="float tensor"):
        model.encode(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(VAEInputError, match=r"latents \(N, 16, 8, 8\), got \(1, 1024\)"):
        model.decode(torch.zeros(1, 1024))
    with pytest.raises(ValueError, match="divisible by 4"):
        KLVAEConfig(image_size=30)
    with pytest.raises(ValueError, match="groups"):
        KLVAEConfig(width=20, groups=16)


def test_checkpoint_round_trip_and_a_missing_one(tmp_path):
    model = tiny_model(6)
    with pytest.raises(VAEInputError, match="not calibrated"):
        kl_vae.save_vae(tmp_path / "v", model, {})
    model.latent_scale.fill_(1.7)
    kl_vae.save_vae(tmp_path / "v", model, {"note": "test"})
    loaded, doc = kl_vae.load_vae(tmp_path / "v")
    assert doc["kind"] == "kl-vae" and doc["k"] == 512 and doc["schedule"] is None
    assert loaded.cfg == model.cfg and loaded.latent_scale.item() == pytest.approx(1.7)
    x = images(2)
    model.eval()
    torch.testing.assert_close(loaded.decode(loaded.encode(x)), model.decode(model.encode(x)))
    # the generic loader knows the kind on demand
    assert "kl-vae" in ck.known_kinds() and isinstance(ck.load_checkpoint(tmp_path / "v")[0], KLVAE)
    with pytest.raises(CheckpointError, match=r"nowhere\.safetensors: checkpoint weights file not found"):
        kl_vae.load_vae(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="not 'kl-vae'"):  # a checkpoint of another kind
        kl_vae.load_vae(ck.CHECKPOINT_DIR / "jscc_user_awgn_k512")


def test_the_backend_runs_a_kl_vae_like_a_jscc_model(tmp_path):
    """LocalBackend.encode/decode/info take a KL-VAE by path: its unit-variance latent flattened
    channel-major (the DiT's token layout), uint8 images in and out; a prior is no autoencoder."""
    from gnuradio.semcom.core.data import to_tensor
    from gnuradio.semcom.inference.local import LocalBackend
    model = tiny_model(7)
    model.latent_scale.fill_(0.8)
    kl_vae.save_vae(tmp_path / "v", model, {})
    backend = LocalBackend("cpu")
    pictures = (images(3).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    latents = backend.encode(str(tmp_path / "v"), pictures, 7.0)
    model.eval()
    want = model.encode(to_tensor(pictures))
    assert latents.shape == (3, 1024) and latents.dtype == np.float32
    np.testing.assert_allclose(latents, want.reshape(3, -1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(latents.reshape(3, 16, 8, 8)[:, 2], want[:, 2].numpy(), rtol=1e-5, atol=1e-6)
    out = backend.decode(str(tmp_path / "v"), latents, 7.0)
    assert out.shape == pictures.shape and out.dtype == np.uint8
    info = backend.info(str(tmp_path / "v"))
    assert info["k"] == 512 and info["image_shape"] == (32, 32, 3) and info["role"] == "autoencoder"
    with pytest.raises(CheckpointError, match="not an autoencoder"):
        models.autoencoder_kind("prior_user_awgn_k512")
    with pytest.raises(ValueError, match="uint8 images"):
        backend.encode(str(tmp_path / "v"), pictures[:, :30], 7.0)


def test_vae_name_and_resume_files_are_never_listed_as_shipped(tmp_path, monkeypatch):
    assert models.vae_name("cifar10", 512) == "vae_cifar10_k512"
    with pytest.raises(ValueError, match="dataset"):
        models.vae_name("imagenet", 512)
    model = tiny_model()
    model.latent_scale.fill_(1.0)
    kl_vae.save_vae(tmp_path / "vae_cifar10_k512", model, {})
    for suffix in (".safetensors", ".json"):  # an unfinished run beside it
        (tmp_path / f"vae_cifar10_k512.resume{suffix}").write_bytes(
            (tmp_path / f"vae_cifar10_k512{suffix}").read_bytes())
    monkeypatch.setattr(models, "CHECKPOINT_DIR", tmp_path)
    assert list(models.shipped()) == ["vae_cifar10_k512"] == list(models.shipped("kl-vae"))
    # nor does the converter's sweep of the shipped folder take them for a checkpoint
    spec = importlib.util.spec_from_file_location("convert_checkpoints", REPO / "apps" / "convert_checkpoints.py")
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    monkeypatch.setattr(converter, "SOURCE_DIR", tmp_path)
    assert converter.default_paths() == [tmp_path / "vae_cifar10_k512"]
    assert converter.main(["--check"]) == 0


# ------------------------------------------------------------------ the training app

def load_app():
    spec = importlib.util.spec_from_file_location("app_train_vae", REPO / "apps" / "train_vae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_data(tmp_path):
    rng = np.random.default_rng(0)
    # smooth random images (a learnable signal), uint8 NHWC as the datasets are
    base = rng.integers(0, 256, size=(40, 8, 8, 3)).astype(np.float64)
    imgs = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2).astype(np.uint8)
    np.savez(tmp_path / "train.npz", images=imgs[:24])
    np.savez(tmp_path / "held.npz", images=imgs[24:])
    return tmp_path


def test_training_resumes_to_the_weights_of_an_uninterrupted_run(tiny_data):
    """2 tiny epochs, the discriminator on from epoch 2: stopped after epoch 1 and resumed, the
    run ends with the very weights, latent scale and history of an uninterrupted one."""
    app = load_app()
    d = tiny_data
    common = ["--train-data", f"npz:{d / 'train.npz'}", "--monitor-data", f"npz:{d / 'held.npz'}[:8]",
              "--eval-data", f"npz:{d / 'held.npz'}[8:]", "--epochs", "2", "--batch-size", "8",
              "--width", "8", "--width-low", "16", "--groups", "4", "--disc-width", "8", "--warmup-steps", "2",
              "--adv-start-epoch", "2", "--threads", "1", "--no-progress", "--seed", "5"]
    with pytest.raises(CheckpointError, match="nothing to resume"):
        app.main(common + ["--out", str(d / "b"), "--resume"])
    assert app.main(common + ["--out", str(d / "a")]) == 0
    assert app.main(common + ["--out", str(d / "b"), "--stop-after", "1"]) == 0
    weights, sidecar = app.resume_paths(d / "b")
    assert weights.is_file() and json.loads(sidecar.read_text())["epoch"] == 1
    assert not (d / "b.json").exists()
    with pytest.raises(CheckpointError, match="--resume"):  # never silently started over
        app.main(common + ["--out", str(d / "b")])
    with pytest.raises(CheckpointError, match="other arguments.*kl_weight"):
        app.main(common + ["--out", str(d / "b"), "--resume", "--kl-weight", "1e-3"])
    assert app.main(common + ["--out", str(d / "b"), "--resume", "--log-every", "1"]) == 0
    assert not weights.exists() and not sidecar.exists()
    a, b = ck.load_weights(d / "a"), ck.load_weights(d / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["latent_scale"].item() > 0
    pa, pb = (json.loads((d / f"{n}.json").read_text())["provenance"] for n in "ab")
    timings = {"seconds"}  # wall time per epoch: the one entry that may differ
    same = [k for k in pa["history"] if k not in timings]
    assert all(pa["history"][k] == pb["history"][k] for k in same) and pa["held_out"] == pb["held_out"]
    assert pa["history"]["gen"][0] is None and pa["history"]["gen"][1] is not None  # the delayed start
    assert [s["epochs"] for s in pb["training"]["sessions"]] == [[1, 1], [2, 2]]
    assert pa["training"]["adversarial"]["start_epoch"] == 2 and pa["held_out"]["images"] == 8


def test_no_adv_trains_without_a_discriminator_and_the_same_start(tiny_data):
    """--no-adv: MSE + KL only; until the delayed start the two runs are the same run (the
    discriminator is drawn from its own seed), so their first epoch's numbers agree."""
    app = load_app()
    d = tiny_data
    common = ["--train-data", f"npz:{d / 'train.npz'}", "--monitor-data", f"npz:{d / 'held.npz'}[:8]",
              "--eval-data", f"npz:{d / 'held.npz'}[8:]", "--epochs", "2", "--batch-size", "8",
              "--width", "8", "--width-low", "16", "--groups", "4", "--disc-width", "8", "--warmup-steps", "2",
              "--threads", "1", "--no-progress", "--seed", "5"]
    assert app.main(common + ["--out", str(d / "adv")]) == 0
    assert app.main(common + ["--out", str(d / "plain"), "--no-adv"]) == 0
    adv, plain = (json.loads((d / f"{n}.json").read_text())["provenance"] for n in ("adv", "plain"))
    assert plain["training"]["adversarial"] is None and set(plain["history"]["gen"]) == {None}
    assert adv["history"]["rec"][0] == plain["history"]["rec"][0]
    assert adv["history"]["rec"][1] != plain["history"]["rec"][1]


def test_app_rejects_images_it_cannot_take(tiny_data, capsys):
    app = load_app()
    d = tiny_data
    np.savez(d / "odd.npz", images=np.zeros((4, 30, 30, 3), np.uint8))
    args = ["--train-data", f"npz:{d / 'odd.npz'}", "--monitor-data", f"npz:{d / 'odd.npz'}",
            "--eval-data", f"npz:{d / 'odd.npz'}", "--out", str(d / "x"), "--no-progress"]
    assert app.main(args) == 2
    assert "divisible by 4" in capsys.readouterr().err
    assert app.main(args[:2] + ["--monitor-data", f"npz:{d / 'held.npz'}", "--eval-data", f"npz:{d / 'held.npz'}",
                                "--out", str(d / "x"), "--no-progress"]) == 2
    assert "differ from the training images" in capsys.readouterr().err
