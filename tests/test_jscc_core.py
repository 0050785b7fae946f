"""Tests of the GNU Radio-free JSCC core: models, link, checkpoints, data, training app.

Runs from the source tree without the compiled extension: 'semcom' is registered as a bare
package pointing at <repo>/python/semcom (its __init__, which loads the C++ extension, is not
executed) and only semcom.core.* is imported. Fast (CPU, well under 30 s).
"""

import importlib.util
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if "semcom" not in sys.modules:
    _pkg = types.ModuleType("semcom")
    _pkg.__path__ = [str(REPO / "python" / "semcom")]
    sys.modules["semcom"] = _pkg

from semcom.core import checkpoint, data, jscc  # noqa: E402
from semcom.core.checkpoint import CheckpointError  # noqa: E402
from semcom.core.models import jscc_model_name  # noqa: E402
from semcom.core.resume import resume_paths  # noqa: E402

CKPT_DIR = REPO / "python" / "semcom" / "checkpoints"
SHIPPED = sorted(CKPT_DIR.glob("jscc_*.json"))  # the diffusion priors: test_icdm.py
DATA_DIR = data.default_data_dir()
HAVE_CIFAR_TEST = (DATA_DIR / "cifar10_test.npz").is_file()


def tiny(**kw):
    d = dict(k=64, width=8, af_hidden=4, res_blocks=1)
    d.update(kw)
    return jscc.user_config(**d)


# ------------------------------------------------------------------ configs and shapes

@pytest.mark.parametrize("make,k,shape,cbr", [
    (jscc.user_config, 512, (3, 32, 32), 1 / 6),
    (jscc.user_config, 256, (3, 32, 32), 1 / 12),
    (jscc.interferer_config, 512, (3, 32, 32), 1 / 6),
    (jscc.interferer_config, 256, (3, 32, 32), 1 / 12),
    (jscc.user_config, 98, (1, 28, 28), 1 / 8),
    (jscc.interferer_config, 98, (1, 28, 28), 1 / 8),
])
@pytest.mark.parametrize("output", ["sigmoid", "clamp"])
def test_shapes_and_cbr(make, k, shape, cbr, output):
    cfg = make(k, "awgn", image_shape=shape, output=output)
    assert math.isclose(cfg.cbr, cbr)
    model = jscc.build_model(cfg).eval()
    x = torch.rand(3, *shape)
    with torch.no_grad():
        s = model.encode(x, 10.0)
        assert s.shape == (3, 2 * k)
        y = model.decode(jscc.link(s, 10.0, "awgn", torch.Generator().manual_seed(0)), 10.0)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_user_and_interferer_architectures_differ():
    u, i = jscc.user_config(512), jscc.interferer_config(512)
    assert (u.width, u.kernel, u.activation, u.upsample) != (i.width, i.kernel, i.activation,
                                                            i.upsample)
    su = {n: t.shape for n, t in jscc.build_model(u).state_dict().items()}
    si = {n: t.shape for n, t in jscc.build_model(i).state_dict().items()}
    assert su != si


def test_config_json_round_trip_and_validation():
    cfg = jscc.interferer_config(256, "rayleigh")
    assert jscc.JSCCConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="multiple of the latent grid"):
        jscc.user_config(100)                      # 200 not a multiple of 8x8
    with pytest.raises(ValueError, match="channel_type"):
        jscc.user_config(512, "rician")
    with pytest.raises(ValueError, match="unknown config field"):
        jscc.JSCCConfig.from_dict({**cfg.to_dict(), "depth": 3})
    with pytest.raises(ValueError, match="output must be"):
        jscc.user_config(512, output="tanh")
    # configs written before the `output` field existed mean a sigmoid output
    old = cfg.to_dict()
    del old["output"]
    assert jscc.JSCCConfig.from_dict(old).output == "sigmoid"


def test_wrong_input_shapes_are_clear_errors():
    model = jscc.build_model(tiny())
    with pytest.raises(ValueError, match=r"encoder expects images \(N, 3, 32, 32\)"):
        model.encode(torch.rand(2, 1, 28, 28), 10.0)
    with pytest.raises(ValueError, match=r"decoder expects latents \(N, 128\)"):
        model.decode(torch.rand(2, 100), 10.0)
    with pytest.raises(ValueError, match="SNR values"):
        model.encode(torch.rand(2, 3, 32, 32), [1.0, 2.0, 3.0])


def test_snr_conditioning_changes_encoder_and_decoder():
    torch.manual_seed(0)
    model = jscc.build_model(tiny()).eval()
    x = torch.rand(4, 3, 32, 32)
    latent = torch.randn(4, 128)
    with torch.no_grad():
        assert not torch.allclose(model.encode(x, 0.0), model.encode(x, 20.0))
        d0, d20 = model.decode(latent, 0.0), model.decode(latent, 20.0)
        assert (d0 - d20).abs().max() > 1e-4
        # per-image SNRs: row i matches the batch-wide call at that SNR
        mixed = model.decode(latent, torch.tensor([0.0, 20.0, 0.0, 20.0]))
        assert torch.allclose(mixed[0], d0[0], atol=1e-6)
        assert torch.allclose(mixed[1], d20[1], atol=1e-6)


# ------------------------------------------------------------------ link

def test_link_normalises_and_is_differentiable():
    s = (torch.randn(5, 128) * 7).requires_grad_()
    gen = torch.Generator().manual_seed(1)
    xhat = jscc.link(s, 80.0, "awgn", gen)  # almost noiseless
    assert xhat.shape == s.shape
    # unit power per complex symbol: mean over k of (re^2 + im^2) = 1
    power = xhat.detach().square().sum(dim=1) / 64
    assert torch.allclose(power, torch.ones(5), atol=1e-4)
    # same direction as s
    cos = torch.nn.functional.cosine_similarity(xhat.detach(), s.detach(), dim=1)
    assert torch.all(cos > 0.9999)
    xhat.sum().backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()


def test_link_per_image_snr_and_rayleigh():
    s = torch.randn(4, 128)
    gen = torch.Generator().manual_seed(2)
    x = jscc.link(s, torch.tensor([0.0, 0.0, 30.0, 30.0]), "rayleigh", gen)
    ref = jscc.link(s, 80.0, "awgn")
    err = (x - ref).square().mean(dim=1)
    assert err[2:].max() < err[:2].min()    # the 30 dB images are cleaner
    # reproducible with the same generator seed
    again = jscc.link(s, torch.tensor([0.0, 0.0, 30.0, 30.0]), "rayleigh",
                      torch.Generator().manual_seed(2))
    assert torch.equal(x, again)


# ------------------------------------------------------------------ checkpoints

def _save_tiny(tmp_path, name="m", **kw):
    torch.manual_seed(3)
    model = jscc.build_model(tiny(**kw))
    checkpoint.save_checkpoint(tmp_path / name, model, provenance={"note": "test"})
    return model, tmp_path / name


def test_checkpoint_round_trip_bit_exact(tmp_path):
    model, path = _save_tiny(tmp_path)
    for form in (path, str(path) + ".safetensors", str(path) + ".json"):
        loaded, cfg, doc = checkpoint.load_checkpoint(form)
        assert cfg == model.cfg
        a, b = model.state_dict(), loaded.state_dict()
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), name
    assert doc["provenance"] == {"note": "test"} and doc["k"] == 64
    assert not loaded.training
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o044 == 0o044  # world-readable


def test_checkpoint_missing_weights(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.safetensors.*not found"):
        checkpoint.load_checkpoint(tmp_path / "nothere")


def test_checkpoint_missing_sidecar(tmp_path):
    _, path = _save_tiny(tmp_path)
    (tmp_path / "m.json").unlink()
    with pytest.raises(CheckpointError, match=r"m\.json.*sidecar missing"):
        checkpoint.load_checkpoint(path)


def test_checkpoint_bad_sidecar(tmp_path):
    _, path = _save_tiny(tmp_path)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"m\.json.*unreadable JSON"):
        checkpoint.load_checkpoint(path)
    (tmp_path / "m.json").write_text(json.dumps({"format": checkpoint.FORMAT}))
    with pytest.raises(CheckpointError, match=r"m\.json.*lacks field"):
        checkpoint.load_checkpoint(path)


def test_checkpoint_truncated(tmp_path):
    _, path = _save_tiny(tmp_path)
    w = tmp_path / "m.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*truncated or corrupt"):
        checkpoint.load_checkpoint(path)


def test_checkpoint_corrupt(tmp_path):
    _, path = _save_tiny(tmp_path)
    (tmp_path / "m.safetensors").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*truncated or corrupt"):
        checkpoint.load_checkpoint(path)


def test_checkpoint_mismatched_shapes(tmp_path):
    _, path = _save_tiny(tmp_path)
    doc = json.loads((tmp_path / "m.json").read_text())
    doc["config"]["width"] = 12                      # config no longer matches the weights
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*do not match.*shape mismatch"):
        checkpoint.load_checkpoint(path)
    doc["config"]["width"], doc["config"]["res_blocks"] = 8, 2   # extra tensors expected
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*missing tensor"):
        checkpoint.load_checkpoint(path)


def test_checkpoint_swapped_weights(tmp_path):
    _save_tiny(tmp_path, "a")
    torch.manual_seed(9)
    checkpoint.save_checkpoint(tmp_path / "b", jscc.build_model(tiny()))
    (tmp_path / "a.safetensors").write_bytes((tmp_path / "b.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"a\.safetensors.*SHA-256"):
        checkpoint.load_checkpoint(tmp_path / "a")


def test_checkpoint_invalid_config(tmp_path):
    _, path = _save_tiny(tmp_path)
    doc = json.loads((tmp_path / "m.json").read_text())
    doc["config"]["k"] = 100
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"m\.json.*invalid model config"):
        checkpoint.load_checkpoint(path)


# ------------------------------------------------------------------ shipped checkpoints

def test_shipped_checkpoints_present():
    names = {p.stem for p in SHIPPED}
    assert "jscc_user_awgn_k512" in names, f"shipped: {sorted(names)}"


def test_bare_name_resolves_to_shipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w, j = checkpoint.checkpoint_paths(jscc_model_name("user", "awgn", 512))
    assert w == CKPT_DIR / "jscc_user_awgn_k512.safetensors" and j.parent == CKPT_DIR
    assert set(checkpoint.shipped_checkpoints()) == {p.stem for p in SHIPPED}
    with pytest.raises(CheckpointError, match=r"no_such_model\.safetensors.*shipped"):
        checkpoint.load_checkpoint("no_such_model")


@pytest.mark.parametrize("sidecar", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_checkpoint_loads_with_provenance(sidecar):
    model, cfg, doc = checkpoint.load_checkpoint(sidecar.with_suffix(""))
    assert doc["k"] == cfg.k and math.isclose(doc["cbr"], cfg.cbr)
    assert doc["channel"] == cfg.channel_type
    meta = doc["provenance"]
    assert meta["training_command"].startswith("python apps/train_jscc.py ")
    assert f"--k {cfg.k}" in meta["training_command"]
    assert f"--channel {cfg.channel_type}" in meta["training_command"]
    assert meta["train_data"]["files"] and meta["train_data"]["images"] > 0
    tr = meta["training"]
    for key in ("epochs", "steps", "wall_time_s", "seed"):
        assert key in tr, key
    assert tr["steps"] > 0 and tr["wall_time_s"] > 0
    for snr in ("0", "10", "20"):
        assert math.isfinite(meta["test_psnr_db"][snr])
    assert sidecar.with_suffix(".safetensors").stat().st_size < 8e6  # "a few MB"


def _load_test_images(n, shape):
    name = "cifar10_test" if shape[0] == 3 else "mnist_test"
    return data.load_images(f"{name}[:{n}]").tensor()


@pytest.mark.parametrize("sidecar", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_model_is_alive(sidecar):
    """32 real test images through each shipped model on its own channel: 20 dB at least as
    good as 0 dB, and 0 dB clearly above the best constant image (a collapsed decoder that
    outputs one flat image - e.g. all black on MNIST - sits at or below that baseline)."""
    model, cfg, _ = checkpoint.load_checkpoint(sidecar.with_suffix(""))
    name = "cifar10_test" if cfg.image_shape[0] == 3 else "mnist_test"
    if not (DATA_DIR / f"{name}.npz").is_file():
        pytest.skip(f"{name}.npz not available")
    x = _load_test_images(32, cfg.image_shape)
    p0 = jscc.evaluate_psnr(model, x, 0.0, seed=0)
    p20 = jscc.evaluate_psnr(model, x, 20.0, seed=0)
    baseline = float(jscc.psnr_per_image(x.mean(dim=(2, 3), keepdim=True).expand_as(x),
                                         x).mean())
    assert p20 >= p0 - 0.1, (p0, p20)
    assert p0 > baseline + 3.0, (p0, baseline)


@pytest.mark.skipif(not HAVE_CIFAR_TEST, reason="cifar10_test.npz not available")
def test_shipped_user_model_decodes_real_images():
    """64 real CIFAR-10 test images over AWGN.

    Behaviour, not a tuned number: 20 dB must beat 0 dB, and the 20 dB reconstruction must
    clear 20 dB PSNR. For scale: the best constant image (the per-image mean colour) gives
    about 14 dB on CIFAR-10 (computed below as a baseline), and JPEG at quality ~10 about
    23 dB; a JSCC decoder below 20 dB at 20 dB SNR, CBR 1/6 is broken, not merely weak.
    """
    path = CKPT_DIR / jscc_model_name("user", "awgn", 512)
    model, cfg, doc = checkpoint.load_checkpoint(path)
    x = _load_test_images(64, cfg.image_shape)
    p0 = jscc.evaluate_psnr(model, x, 0.0, seed=0)
    p20 = jscc.evaluate_psnr(model, x, 20.0, seed=0)
    baseline = float(jscc.psnr_per_image(x.mean(dim=(2, 3), keepdim=True).expand_as(x),
                                         x).mean())
    assert p20 > p0 + 0.5, (p0, p20)
    assert p0 > baseline + 3.0, (p0, baseline)
    assert p20 > 20.0, p20


# ------------------------------------------------------------------ data

def test_data_errors(tmp_path):
    with pytest.raises(data.DataError, match=r"missing\.npz: no such data file"):
        data.load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "flat.npz", images=np.zeros((4, 32, 32), np.uint8))
    with pytest.raises(data.DataError, match=r"flat\.npz.*\(N, H, W, C\)"):
        data.load_npz(tmp_path / "flat.npz")
    np.savez(tmp_path / "float.npz", images=np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(data.DataError, match=r"float\.npz.*uint8"):
        data.load_npz(tmp_path / "float.npz")
    np.savez(tmp_path / "noimg.npz", pixels=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(data.DataError, match=r"noimg\.npz.*no 'images'"):
        data.load_npz(tmp_path / "noimg.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(data.DataError, match=r"junk\.npz.*not a readable"):
        data.load_npz(tmp_path / "junk.npz")
    with pytest.raises(data.DataError, match="unknown dataset 'imagenet'"):
        data.load_images("imagenet")


def test_data_specs_and_tensors(tmp_path):
    imgs = np.arange(5 * 4 * 4 * 3, dtype=np.int64).reshape(5, 4, 4, 3).astype(np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs, labels=np.arange(5))
    s = data.load_images(f"npz:{tmp_path / 'a.npz'}[1:3]+{tmp_path / 'a.npz'}")
    assert s.images.shape == (7, 4, 4, 3) and s.shape == (3, 4, 4)
    assert list(s.labels) == [1, 2, 0, 1, 2, 3, 4]
    t = s.tensor()
    assert t.shape == (7, 3, 4, 4) and t.dtype == torch.float32
    assert float(t.max()) <= 1.0
    assert np.array_equal(data.to_uint8(t), s.images)


@pytest.mark.skipif(not HAVE_CIFAR_TEST, reason="cifar10_test.npz not available")
def test_named_set_loads():
    s = data.load_images("cifar10_test[:10]")
    assert s.images.shape == (10, 32, 32, 3) and s.images.dtype == np.uint8
    assert list(s.labels[:3]) == [3, 8, 8]


# ------------------------------------------------------------------ training

def test_training_is_seeded_and_reproducible():
    imgs = (np.random.default_rng(0).random((64, 32, 32, 3)) * 255).astype(np.uint8)
    test = torch.from_numpy(imgs[:8]).float().div(255).permute(0, 3, 1, 2)
    st = jscc.TrainSettings(epochs=1, batch_size=16, lr=1e-3, warmup_steps=1, seed=5)

    def run():
        torch.manual_seed(5)
        m = jscc.build_model(tiny())
        h = jscc.train(m, imgs, test, st, log=lambda _: None, progress=False)
        return m, h

    (m1, h1), (m2, h2) = run(), run()
    assert h1["steps"] == 4
    for name, t in m1.state_dict().items():
        assert torch.equal(t, m2.state_dict()[name]), name
    assert h1["loss"] == h2["loss"]


def _load_app():
    spec = importlib.util.spec_from_file_location("train_jscc", REPO / "apps" / "train_jscc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv,msg", [
    (["--model", "user", "--channel", "awgn", "--k", "0", "--out", "x"], "must be >= 1"),
    (["--model", "boss", "--channel", "awgn", "--k", "512", "--out", "x"], "invalid choice"),
    (["--model", "user", "--channel", "awgn", "--k", "512", "--out", "x.json"],
     "WITHOUT extension"),
    (["--model", "user", "--channel", "awgn", "--k", "512", "--out", "x",
      "--snr-min", "30"], "exceeds"),
])
def test_app_bad_arguments(argv, msg, capsys):
    app = _load_app()
    with pytest.raises(SystemExit) as e:
        app.parse_args(argv)
    assert e.value.code == 2
    assert msg in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_CIFAR_TEST, reason="cifar10_test.npz not available")
def test_app_end_to_end(tmp_path, capsys):
    app = _load_app()
    out = tmp_path / "ck" / "tiny"
    rc = app.main(["--model", "interferer", "--channel", "rayleigh", "--k", "256",
                   "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size", "8",
                   "--width", "8", "--res-blocks", "0", "--train-data", "cifar10_test[100:200]",
                   "--eval-images", "8", "--final-images", "8", "--no-progress",
                   "--out", str(out)])
    assert rc == 0
    model, cfg, doc = checkpoint.load_checkpoint(out)
    assert cfg.role == "interferer" and cfg.k == 256 and cfg.channel_type == "rayleigh"
    assert doc["provenance"]["training"]["steps"] == 2
    assert set(doc["provenance"]["test_psnr_db"]) >= {"0", "10", "20"}
    rc = app.main(["--model", "user", "--channel", "awgn", "--k", "512",
                   "--train-data", "imagenet", "--out", str(tmp_path / "bad")])
    assert rc == 2
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err
    assert not list(tmp_path.glob("bad*"))


@pytest.mark.skipif(not HAVE_CIFAR_TEST, reason="cifar10_test.npz not available")
def test_app_resumes_to_the_same_result(tmp_path, capsys):
    """Stopped after one epoch, resumed for one more, then to the end, training ends with the
    very weights, history and test PSNRs of an uninterrupted run of the same seed (tests/
    test_prior_residual.py does the same for apps/train_prior.py, core/resume.py serves both);
    the resume files go when the model is saved; --activation/--upsample reach the config."""
    app = _load_app()
    common = ["--model", "interferer", "--channel", "awgn", "--k", "256", "--epochs", "3",
              "--max-steps-per-epoch", "2", "--batch-size", "8", "--width", "8",
              "--res-blocks", "1", "--activation", "prelu", "--upsample", "pixelshuffle",
              "--train-data", "cifar10_test[100:164]", "--eval-images", "8", "--final-images", "8",
              "--warmup-steps", "2", "--threads", "1", "--seed", "3"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert app.main(common + ["--no-progress", "--out", str(a)]) == 0
    weights, sidecar = resume_paths(b)
    assert not any(resume_paths(a)[i].exists() for i in (0, 1))
    capsys.readouterr()
    # without --resume there is nothing to resume
    assert app.main(common + ["--no-progress", "--out", str(b), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert app.main(common + ["--no-progress", "--out", str(b), "--stop-after", "1"]) == 0
    assert weights.is_file() and json.loads(sidecar.read_text())["epoch"] == 1
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "b.safetensors").exists()
    capsys.readouterr()
    # never silently restarted, never resumed with other arguments
    assert app.main(common + ["--no-progress", "--out", str(b)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert app.main(common + ["--no-progress", "--out", str(b), "--resume", "--lr", "1e-3"]) == 2
    assert "other arguments (lr)" in capsys.readouterr().err
    # an interrupted write (tensors not the ones the JSON names) is refused
    good = weights.read_bytes()
    weights.write_bytes(good[:-8] + bytes(8))
    assert app.main(common + ["--no-progress", "--out", str(b), "--resume"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    weights.write_bytes(good)
    # session-only arguments may differ (here the progress bar)
    assert app.main(common + ["--out", str(b), "--resume", "--stop-after", "1"]) == 0
    assert json.loads(sidecar.read_text())["epoch"] == 2
    assert app.main(common + ["--no-progress", "--out", str(b), "--resume"]) == 0
    assert not weights.exists() and not sidecar.exists()
    wa, wb = checkpoint.load_weights(a), checkpoint.load_weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    (_, cfg, da), (_, _, db) = checkpoint.load_checkpoint(a), checkpoint.load_checkpoint(b)
    assert cfg.activation == "prelu" and cfg.upsample == "pixelshuffle"
    pa, pb = da["provenance"], db["provenance"]
    for key in ("epoch", "loss", "test_psnr_db"):
        assert pa["history"][key] == pb["history"][key], key
    assert pa["test_psnr_db"] == pb["test_psnr_db"] and pb["training"]["steps"] == 6
    assert [s["epochs"] for s in pb["training"]["sessions"]] == [[1, 1], [2, 2], [3, 3]]
    assert [s["epochs"] for s in pa["training"]["sessions"]] == [[1, 3]]
    assert len(pb["log"]) == len(pa["log"]) == 4  # three epochs and the final PSNR line
