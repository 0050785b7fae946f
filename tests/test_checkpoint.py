"""The one checkpoint format ("semcom-checkpoint/1") of every model kind: round trips, each
CheckpointError, atomic writes, the noise schedule as data, the registry of shipped models and
the conversion of the shipped files from the old formats (weights bit-identical)."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from gnuradio.semcom.core import checkpoint as ck
from gnuradio.semcom.core import files, jscc, metrics, models
from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.diffusion import dit
from gnuradio.semcom.diffusion.schedule import VPSchedule

from conftest import REPO

SOURCE_CKPT = REPO / "python" / "semcom" / "checkpoints"
# The last commit with the shipped checkpoints in the old formats, and the SHA-256 of their
# weights then: conversion rewrote the sidecars only.
PRE_CONVERSION = "ceac5742f2033487d1fbd3fea3bfd0a32ab2b284"
ORIGINAL_SHA256 = {
    "jscc_interferer_awgn_k256": "b2d84e827bb5a3af1547f937eb831e6b61db89a89ab4894adb28662538fe3b7c",
    "jscc_interferer_awgn_k512": "3549681866321bf0bee7cefc0d2addfca439d8a5313c437b6e1a4c7f238c86bd",
    "jscc_interferer_mnist_awgn_k98": "08436531e2020295614af8af5223258577020ee1f338c7b252d07566edf6431d",
    "jscc_user_awgn_k256": "76d14f90feca3098788da2d47db8389369e56b4ae7ed9bccd4340ed1d7fa3a2e",
    "jscc_user_awgn_k512": "3b70c76ba222cf467aa80bf452df39227d3a68d742a02450d0893001f0809a02",
    "jscc_user_mnist_awgn_k98": "ee60b9fbcc1dd5cb8c15346715debce068ef097c448ddfb94da730686cb2fe29",
    "jscc_user_rayleigh_k256": "e7d2209f7c4a38e2f09ff3840308bd168894b3d3a7d392bc8422a2a8df001c95",
    "jscc_user_rayleigh_k512": "f5fa2694a2129847ddd7eee8fd57d9261ca67be831caa5213d72463e365df384",
    "prior_interferer_awgn_k512": "6288b6427b16b12f46f7dc40ccb79e3e69cead651ff7383978f7fd9b8f4767d0",
    "prior_interferer_rayleigh_k512": "6857dbb7e3e0bc297342c1e642174b63af667daf931e3c44a0558b802205ed76",
    "prior_user_awgn_k512": "0bd83e4e8f8928a892c5798ca0fb5de331942777d5a0ea09350cb66ba6299a6c",
    "prior_user_rayleigh_k512": "38d79c7a72e60b3abe76a75ccd4766f61029a042965cbb77e24b0456085979f6",
}
# Fitted after the conversion, in the new format from the start (apps/fit_gaussian.py).
GAUSSIANS = [f"gauss_{r}_{c}_k512" for r in ("interferer", "user") for c in ("awgn", "rayleigh")]
# Retrained after the conversion (issue 12): the competent interferer and the priors that are
# the fitted Gaussian plus a residual; written in the new format, their old weights are history.
RETRAINED = ["jscc_interferer_awgn_k512"] + [f"prior_{r}_{c}_k512" for r in ("interferer", "user")
                                            for c in ("awgn", "rayleigh")]
CONVERTED = sorted(set(ORIGINAL_SHA256) - set(RETRAINED))  # the files converted from the old formats
# Latent-Diff DNSC (issue 14): the KL-VAE, the de-noiser trained on its latents and that
# prior's fitted Gaussian (the de-noiser's base and control).
DNSC = ["gauss_vae_cifar10_k512", "prior_vae_cifar10_k512", "vae_cifar10_k512"]
# DeepJSCC trained at one SNR (DNSC's baselines) and the classifier of the semantic metrics.
FIXED_SNR = ["jscc_user_awgn_k512_snr10", "jscc_user_awgn_k512_snr20"]
CLASSIFIERS = ["classifier_cifar10"]
# CDiff (issue 15): the conditional diffusion decoder's system and the paper's two baselines.
CDIFF = ["cdiff_ae_awgn_k512", "cdiff_awgn_k512", "cdiff_vae_awgn_k512"]
# JSCNA-AD in pixel space (issue 16): the pixel prior and DeepJSCC at its CBR 1/2 (k = 1536).
PIXEL = ["jscc_user_awgn_k1536", "jscc_user_rayleigh_k1536", "pixel_prior_cifar10"]
SHIPPED = sorted(CONVERTED + RETRAINED + GAUSSIANS + DNSC + FIXED_SNR + CLASSIFIERS + CDIFF + PIXEL)


def tiny_jscc():
    torch.manual_seed(3)
    return jscc.build_model(jscc.user_config(k=64, width=8, af_hidden=4, res_blocks=1))


def tiny_prior():
    torch.manual_seed(4)
    return dit.LatentDiT(dit.DiTConfig(latent_dim=128, grid=8, width=16, depth=1, heads=2))


def save(kind, path):
    if kind == "jscc":
        model = tiny_jscc()
        ck.save_checkpoint(path, model, provenance={"note": "test", "seed": 3})
    else:
        model = tiny_prior()
        dit.save_prior(path, model, {"note": "test", "role": "user", "channel": "awgn"})
    return model


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, timeout=60)


def have_pre_conversion_commit() -> bool:
    try:
        return git("cat-file", "-e", f"{PRE_CONVERSION}^{{commit}}").returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_history = pytest.mark.skipif(not have_pre_conversion_commit(),
                                   reason="git history with the pre-conversion checkpoints not available")


def load_converter():
    spec = importlib.util.spec_from_file_location("convert_checkpoints", REPO / "apps" / "convert_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("kind", ["jscc", "dit-prior"])
def test_round_trip_of_each_kind(tmp_path, kind):
    model = save(kind, tmp_path / "m")
    for form in (tmp_path / "m", f"{tmp_path / 'm'}.safetensors", f"{tmp_path / 'm'}.json"):
        for want in (None, kind):
            loaded, cfg, doc = ck.load_checkpoint(form, want)
            assert type(loaded) is type(model) and cfg == model.cfg and not loaded.training
            assert same_tensors(model.state_dict(), loaded.state_dict())
    assert [f for f in ck.REQUIRED_FIELDS if f not in doc] == []
    assert doc["format"] == ck.FORMAT and doc["kind"] == kind
    assert doc["weights_file"] == "m.safetensors"
    assert doc["weights_sha256"] == ck.sha256_file(tmp_path / "m.safetensors")
    assert doc["parameters"] == sum(p.numel() for p in model.parameters())
    assert doc["provenance"]["note"] == "test"
    assert json.loads((tmp_path / "m.json").read_text()) == doc
    for name in ("m.json", "m.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temporaries
    if kind == "jscc":
        assert doc["schedule"] is None
        assert (doc["k"], doc["channel"], doc["role"], doc["image_shape"]) == (64, "awgn", "user", [3, 32, 32])
    else:
        assert doc["schedule"] == dit.LINEAR_SCHEDULE
        assert (doc["k"], doc["role"], doc["channel"]) == (64, "user", "awgn")
        prior, pdoc = dit.load_prior(tmp_path / "m")
        assert pdoc == doc and same_tensors(model.state_dict(), prior.state_dict())


def test_load_checkpoint_keeps_the_jscc_return_type():
    model, cfg, doc = ck.load_checkpoint(models.checkpoint_for(models.jscc_model_name("user", "awgn", 512)))
    assert isinstance(model, jscc.JSCC) and isinstance(cfg, jscc.JSCCConfig) and doc["kind"] == "jscc"


def test_kind_registry_and_a_new_kind(tmp_path):
    assert {"jscc", "dit-prior", "kl-vae"} <= set(ck.known_kinds())  # kl-vae: nets/kl_vae.py, on demand
    with pytest.raises(KeyError, match="unknown model kind 'no-such-kind'"):
        ck.model_kind("no-such-kind")

    # a later kind (e.g. a KL-VAE) needs only a builder and a config parser
    ck.register_kind("test-linear", lambda c: torch.nn.Linear(c["n"], c["n"]), lambda d: {"n": int(d["n"])},
                     config_to_dict=dict)
    try:
        torch.manual_seed(0)
        lin = torch.nn.Linear(3, 3)
        ck.save_checkpoint(tmp_path / "lin", lin, {"n": 3}, {"what": "test"}, kind="test-linear")
        loaded, cfg, doc = ck.load_checkpoint(tmp_path / "lin")
        assert cfg == {"n": 3} and doc["kind"] == "test-linear" and doc["schedule"] is None
        assert same_tensors(lin.state_dict(), loaded.state_dict())
        with pytest.raises(ValueError, match="has no noise schedule"):
            ck.save_checkpoint(tmp_path / "bad", lin, {"n": 3}, kind="test-linear", schedule=dit.LINEAR_SCHEDULE)
    finally:
        ck._KINDS.pop("test-linear")
    with pytest.raises(CheckpointError, match=r"lin\.json: unknown model kind 'test-linear'"):
        ck.load_checkpoint(tmp_path / "lin")


def test_core_imports_diffusion_only_when_it_meets_a_prior():
    """core.checkpoint registers "dit-prior" lazily: loading a JSCC model imports no diffusion
    module; loading a prior imports diffusion.dit on demand."""
    code = ("import sys\n"
            "from gnuradio.semcom.core.checkpoint import load_checkpoint\n"
            "from gnuradio.semcom.core.models import prior_for\n"
            "load_checkpoint('jscc_user_awgn_k512')\n"
            "assert not [m for m in sys.modules if '.diffusion' in m], sorted(sys.modules)\n"
            "model, cfg, doc = load_checkpoint(prior_for('user', 'awgn', 512))\n"
            "assert type(model).__name__ == 'LatentDiT' and 'gnuradio.semcom.diffusion.dit' in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


# ------------------------------------------------------------------ one error, naming the file

def _rewrite_sidecar(path, **changes):
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def _rewrite_weights(path, change):
    from safetensors.torch import load_file, save_file
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


def _first_tensor_plus_one(state):
    name = sorted(state)[0]
    state[name] = state[name] + 1


def _rename_a_tensor(state):
    name = sorted(state)[0]
    state[name + "_renamed"] = state.pop(name)


def _reshape_a_tensor(state):
    name = next(n for n in sorted(state) if state[n].ndim > 1)
    state[name] = state[name].flatten()


OLD_JSCC = {"format": "semcom-jscc/1", "config": {}, "k": 64, "cbr": 0.1, "channel": "awgn", "weights_file": "m",
            "weights_sha256": "", "parameters": 1, "meta": {}}
OLD_PRIOR = {"format": "semcom-prior/1", "config": {}, "weights_file": "m", "parameters": 1, "meta": {}}

CASES = {
    "missing weights": ("m.safetensors", r"weights file not found",
                        lambda d: (d / "m.safetensors").unlink()),
    "missing sidecar": ("m.json", r"JSON sidecar missing", lambda d: (d / "m.json").unlink()),
    "unreadable sidecar": ("m.json", r"unreadable JSON sidecar", lambda d: (d / "m.json").write_text("{not json")),
    "sidecar not an object": ("m.json", r"not an object", lambda d: (d / "m.json").write_text("[1, 2]")),
    "old jscc format": ("m.json", r"old format 'semcom-jscc/1'.*apps/convert_checkpoints\.py .*m`",
                        lambda d: (d / "m.json").write_text(json.dumps(OLD_JSCC))),
    "old prior format": ("m.json", r"old format 'semcom-prior/1'.*apps/convert_checkpoints\.py",
                         lambda d: (d / "m.json").write_text(json.dumps(OLD_PRIOR))),
    "unknown format": ("m.json", r"unsupported format 'semcom-checkpoint/9'",
                       lambda d: _rewrite_sidecar(d / "m.json", format="semcom-checkpoint/9")),
    "missing field": ("m.json", r"lacks field\(s\) \['weights_sha256'\]",
                      lambda d: (d / "m.json").write_text(json.dumps(
                          {k: v for k, v in json.loads((d / "m.json").read_text()).items() if k != "weights_sha256"}))),
    "unknown kind": ("m.json", r"unknown model kind 'unet'", lambda d: _rewrite_sidecar(d / "m.json", kind="unet")),
    "invalid config": ("m.json", r"invalid model config",
                       lambda d: _rewrite_sidecar(d / "m.json", config={"no_such_field": 1})),
    "truncated weights": ("m.safetensors", r"truncated or corrupt safetensors",
                          lambda d: (d / "m.safetensors").write_bytes((d / "m.safetensors").read_bytes()[:100])),
    "garbage weights": ("m.safetensors", r"truncated or corrupt safetensors",
                        lambda d: (d / "m.safetensors").write_bytes(b"\x00garbage" * 100)),
    "renamed tensor": ("m.safetensors", r"do not match the config in m\.json.*1 missing tensor.*1 unexpected",
                       lambda d: _rewrite_weights(d / "m.safetensors", _rename_a_tensor)),
    "mis-shaped tensor": ("m.safetensors", r"do not match the config in m\.json.*shape mismatch",
                          lambda d: _rewrite_weights(d / "m.safetensors", _reshape_a_tensor)),
    "SHA-256 mismatch": ("m.safetensors", r"SHA-256 differs from the one recorded in m\.json",
                         lambda d: _rewrite_weights(d / "m.safetensors", _first_tensor_plus_one)),
}


@pytest.mark.parametrize("kind", ["jscc", "dit-prior"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_is_one_checkpoint_error_naming_the_file(tmp_path, kind, case):
    filename, message, damage = CASES[case]
    save(kind, tmp_path / "m")
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=message) as err:
        ck.load_checkpoint(tmp_path / "m")
    assert str(tmp_path / filename) in str(err.value)
    assert isinstance(err.value, ValueError)
    if kind == "dit-prior":  # the prior's wrapper raises one such error too, naming the file
        with pytest.raises(CheckpointError, match=re.escape(str(tmp_path / filename))):
            dit.load_prior(tmp_path / "m")


@pytest.mark.parametrize("kind, other", [("jscc", "dit-prior"), ("dit-prior", "jscc")])
def test_wrong_kind(tmp_path, kind, other):
    save(kind, tmp_path / "m")
    with pytest.raises(CheckpointError, match=rf"m\.json: a '{kind}' checkpoint, not '{other}'"):
        ck.load_checkpoint(tmp_path / "m", other)
    if other == "dit-prior":
        with pytest.raises(CheckpointError, match=r"m\.json: a 'jscc' checkpoint, not 'dit-prior'"):
            dit.load_prior(tmp_path / "m")


@pytest.mark.parametrize("schedule, message", [
    ({"type": "vp-quadratic", "num_steps": 10}, "unknown noise schedule type 'vp-quadratic'"),
    ({"type": "vp-linear", "beta_start": 1e-4, "beta_end": 0.02}, "exactly the fields"),
    ({"type": "vp-linear", "beta_start": 0.1, "beta_end": 0.02, "num_steps": 1000}, "beta_start <= beta_end"),
    ({"type": "vp-linear", "beta_start": 1e-4, "beta_end": 0.02, "num_steps": 0}, "num_steps"),
    (None, "a noise schedule is an object"),
    ("VP linear betas 1e-4..0.02, 1000 steps", "a noise schedule is an object"),
])
def test_invalid_schedule(tmp_path, schedule, message):
    save("dit-prior", tmp_path / "m")
    _rewrite_sidecar(tmp_path / "m.json", schedule=schedule)
    with pytest.raises(CheckpointError, match=rf"m\.json: invalid noise schedule \(.*{message}"):
        ck.load_checkpoint(tmp_path / "m")
    with pytest.raises(ValueError, match=message):
        dit.schedule_from_data(schedule)
    if schedule is not None:  # (None means the default, LINEAR_SCHEDULE)
        with pytest.raises(ValueError, match=message):
            dit.save_prior(tmp_path / "n", tiny_prior(), {}, schedule=schedule)
        assert not list(tmp_path.glob("n*")) and not list(tmp_path.glob(".tmp_*"))


def test_a_jscc_checkpoint_has_no_schedule(tmp_path):
    save("jscc", tmp_path / "m")
    _rewrite_sidecar(tmp_path / "m.json", schedule=dit.LINEAR_SCHEDULE)
    with pytest.raises(CheckpointError, match=r"m\.json: a 'jscc' checkpoint has no noise schedule"):
        ck.load_checkpoint(tmp_path / "m")


# ------------------------------------------------------------------ atomic writes

@pytest.mark.parametrize("kind", ["jscc", "dit-prior"])
def test_a_failed_save_leaves_the_previous_files_and_no_partial_one(tmp_path, kind, monkeypatch):
    import safetensors.torch
    save(kind, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_save = safetensors.torch.save_file

    def save_half_then_fail(state, filename, metadata=None):
        real_save(state, filename, metadata=metadata)
        with open(filename, "r+b") as f:
            f.truncate(os.path.getsize(filename) // 2)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(safetensors.torch, "save_file", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save(kind, tmp_path / "m")
    with pytest.raises(OSError, match="disk full"):
        save(kind, tmp_path / "fresh")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing new, nothing changed
    monkeypatch.undo()
    ck.load_checkpoint(tmp_path / "m", kind)


def test_a_failed_rename_leaves_no_partial_file(tmp_path, monkeypatch):
    files.write_text_atomic(tmp_path / "a.json", "old\n")
    def failing_rename(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", failing_rename)
    for write in (lambda: files.write_text_atomic(tmp_path / "a.json", "new\n"),
                  lambda: files.write_bytes_atomic(tmp_path / "b.bin", b"new"),
                  lambda: ck.save_checkpoint(tmp_path / "m", tiny_jscc())):
        with pytest.raises(OSError, match="rename failed"):
            write()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert (tmp_path / "a.json").read_text() == "old\n"


def test_atomic_files_get_umask_or_given_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_bytes_atomic(tmp_path / "a", b"x")
        files.write_text_atomic(tmp_path / "b", "x", mode=0o600)
        with files.atomic_path(tmp_path / "c.png") as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".png"
            tmp.write_bytes(b"png")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"a": 0o644, "b": 0o600, "c.png": 0o644}
    from gnuradio.semcom.core import plots
    assert plots.write_text_atomic is files.write_text_atomic  # apps import it from plots


# ------------------------------------------------------------------ schedule as data

def test_schedule_data_rebuilds_the_schedules():
    assert torch.equal(dit.schedule_from_data(dit.LINEAR_SCHEDULE).alphas_cumprod,
                       VPSchedule.linear().alphas_cumprod)
    cosine = {"type": "vp-cosine", "s": 0.008, "max_beta": 0.999, "num_steps": 50}
    assert torch.equal(dit.schedule_from_data(cosine).alphas_cumprod, VPSchedule.cosine(50).alphas_cumprod)


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.startswith("prior_")])
def test_shipped_prior_schedule_read_back_is_the_training_schedule(name):
    _, doc = dit.load_prior(models.checkpoint_for(name))
    assert doc["schedule"] == {"type": "vp-linear", "beta_start": 1e-4, "beta_end": 0.02, "num_steps": 1000}
    abar = dit.schedule_from_data(doc["schedule"]).alphas_cumprod
    betas = 1 - abar / torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    ref = VPSchedule.linear().alphas_cumprod
    assert torch.equal(abar, ref)
    torch.testing.assert_close(betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ the registry of shipped models

def test_shipped_models_listed_by_kind():
    every = models.shipped()
    assert sorted(every) == SHIPPED
    assert sorted(models.shipped("jscc")) == models.list_models() == [n for n in SHIPPED if n.startswith("jscc_")]
    assert sorted(models.shipped("dit-prior")) == models.list_priors() == [n for n in SHIPPED if n.startswith("prior_")]
    assert sorted(models.shipped("gaussian-fit")) == sorted(GAUSSIANS + ["gauss_vae_cifar10_k512"])
    assert sorted(models.shipped("kl-vae")) == ["vae_cifar10_k512"]
    assert sorted(models.shipped("classifier")) == CLASSIFIERS
    assert sorted(models.shipped("cdiff")) == ["cdiff_awgn_k512"]
    assert sorted(models.shipped("cdiff-autoencoder")) == ["cdiff_ae_awgn_k512", "cdiff_vae_awgn_k512"]
    assert sorted(models.shipped("pixel-prior")) == ["pixel_prior_cifar10"]
    assert models.shipped("unet") == {}
    assert ck.shipped_checkpoints() == models.shipped("jscc")
    for name, path in every.items():
        doc = ck.read_sidecar(path)
        assert doc["kind"] == ("jscc" if name in models.list_models() else
                               "dit-prior" if name in models.list_priors() else
                               "kl-vae" if name.startswith("vae_") else
                               "classifier" if name.startswith("classifier_") else
                               "cdiff" if name == "cdiff_awgn_k512" else
                               "cdiff-autoencoder" if name.startswith("cdiff_") else
                               "pixel-prior" if name.startswith("pixel_prior_") else "gaussian-fit")
        assert path.with_suffix(".safetensors").is_file()


def test_model_names_are_composed_in_one_place():
    assert models.jscc_model_name("user", "awgn", 512) == "jscc_user_awgn_k512"
    assert models.jscc_model_name("interferer", "awgn", 98, (28, 28, 1)) == "jscc_interferer_mnist_awgn_k98"
    assert models.prior_name("interferer", "rayleigh", 512) == "prior_interferer_rayleigh_k512"
    assert models.jscc_model_for("interferer", "rayleigh", 512) == "jscc_interferer_awgn_k512"
    assert models.jscc_model_for("user", "rayleigh", 512) == "jscc_user_rayleigh_k512"
    assert models.default_models("rayleigh", 256) == ("jscc_user_rayleigh_k256", "jscc_interferer_awgn_k256")
    assert models.default_models("awgn", 98, (28, 28, 1)) == ("jscc_user_mnist_awgn_k98", "jscc_interferer_mnist_awgn_k98")
    with pytest.raises(ValueError, match="role"):
        models.jscc_model_name("boss", "awgn", 512)
    # every shipped model is reachable by the naming functions
    shipped = set(models.shipped())
    named = {f(r, c, 512) for f in (models.prior_name, models.gaussian_name) for r in models.ROLES
             for c in ("awgn", "rayleigh")}
    for channel, k, shape in (("awgn", 512, (32, 32, 3)), ("rayleigh", 512, (32, 32, 3)), ("awgn", 256, (32, 32, 3)),
                              ("rayleigh", 256, (32, 32, 3)), ("awgn", 98, (28, 28, 1))):
        named |= set(models.default_models(channel, k, shape))
    vae = models.vae_name("cifar10", 512)
    named |= {vae, models.vae_prior_name(vae), models.vae_gaussian_name(vae), models.classifier_name("cifar10")}
    named |= {models.jscc_fixed_snr_name("awgn", 512, snr) for snr in (10, 20)}
    named |= {models.cdiff_name(system, "awgn", 512) for system in models.CDIFF_SYSTEMS}
    named |= {models.pixel_prior_name("cifar10")} | {models.jscc_model_name("user", c, 1536) for c in ("awgn", "rayleigh")}
    assert models.jscc_fixed_snr_name("awgn", 512, 20.0) == "jscc_user_awgn_k512_snr20"
    assert models.vae_prior_name("/x/vae_a_k8") == "/x/prior_vae_a_k8"   # beside a VAE given by path
    assert named == shipped
    for r in models.ROLES:
        assert models.prior_for(r, "awgn", 512).name == models.prior_name(r, "awgn", 512)
    assert models.checkpoint_for("jscc_user_awgn_k512") == models.shipped()["jscc_user_awgn_k512"]


# ------------------------------------------------------------------ conversion of the shipped files

@pytest.mark.parametrize("name", CONVERTED)
def test_shipped_checkpoint_is_converted_with_weights_unchanged(name):
    for folder in (SOURCE_CKPT, ck.CHECKPOINT_DIR):  # the source tree and the installed copy
        doc = json.loads((folder / f"{name}.json").read_text())
        assert doc["format"] == ck.FORMAT and doc["converted_from"] in ck.OLD_FORMATS
        assert doc["weights_sha256"] == ORIGINAL_SHA256[name] == ck.sha256_file(folder / f"{name}.safetensors")
        assert "meta" not in doc and doc["provenance"]["training_command"].startswith("python apps/train_")


@needs_history
@pytest.mark.parametrize("name", CONVERTED)
def test_converted_weights_equal_the_originals_and_conversion_is_reproducible(tmp_path, name):
    """The tensors of the pre-conversion file (from git history) equal those the converted
    checkpoint loads; converting the old sidecar again gives the shipped sidecar exactly, and
    the old `meta` is the new `provenance`."""
    from safetensors.torch import load
    rel = f"python/semcom/checkpoints/{name}"
    old_weights = git("show", f"{PRE_CONVERSION}:{rel}.safetensors").stdout
    old_sidecar = git("show", f"{PRE_CONVERSION}:{rel}.json").stdout
    original = load(old_weights)
    model, _, doc = ck.load_checkpoint(SOURCE_CKPT / name)
    assert same_tensors(original, ck.load_weights(SOURCE_CKPT / name))
    assert same_tensors(original, {n: t for n, t in model.state_dict().items()})
    assert doc["provenance"] == json.loads(old_sidecar)["meta"]

    (tmp_path / f"{name}.safetensors").write_bytes(old_weights)
    (tmp_path / f"{name}.json").write_bytes(old_sidecar)
    converter = load_converter()
    with pytest.raises(CheckpointError, match="old format"):
        ck.load_checkpoint(tmp_path / name)
    assert converter.main(["--check", str(tmp_path / name)]) == 1
    assert converter.main([str(tmp_path / name)]) == 0
    assert (tmp_path / f"{name}.json").read_text() == (SOURCE_CKPT / f"{name}.json").read_text()
    assert (tmp_path / f"{name}.safetensors").read_bytes() == old_weights
    assert converter.main(["--check", str(tmp_path / name)]) == 0
    assert converter.main([str(tmp_path / name)]) == 0  # a second run leaves it alone


def test_converter_check_passes_on_the_shipped_files(capsys):
    assert load_converter().main(["--check"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"ok ({ck.FORMAT})") == len(SHIPPED)


def test_converter_refuses_what_it_cannot_convert_faithfully(tmp_path):
    converter = load_converter()
    save("dit-prior", tmp_path / "p")
    doc = json.loads((tmp_path / "p.json").read_text())
    old = {"format": "semcom-prior/1", "config": doc["config"], "weights_file": "p.safetensors",
           "parameters": doc["parameters"], "meta": {"schedule": "cosine, 500 steps"}}
    (tmp_path / "p.json").write_text(json.dumps(old))
    assert converter.main([str(tmp_path / "p")]) == 1
    assert json.loads((tmp_path / "p.json").read_text()) == old  # untouched
    old["meta"]["schedule"] = "VP linear betas 1e-4..0.02, 1000 steps"
    (tmp_path / "p.json").write_text(json.dumps(old))
    assert converter.main([str(tmp_path / "p")]) == 0
    assert ck.read_sidecar(tmp_path / "p")["schedule"] == dit.LINEAR_SCHEDULE
    save("jscc", tmp_path / "j")
    doc = json.loads((tmp_path / "j.json").read_text())
    old = {"format": "semcom-jscc/1", "config": doc["config"], "weights_sha256": "0" * 64,
           "parameters": doc["parameters"], "meta": {}}
    (tmp_path / "j.json").write_text(json.dumps(old))
    assert converter.main([str(tmp_path / "j")]) == 1  # the weights are not the ones it names


# ------------------------------------------------------------------ one PSNR

def test_one_psnr():
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert torch.equal(jscc.psnr_per_image(y, x), metrics.psnr(y, x))
    assert torch.equal(jscc.psnr_per_image(y * 255, x * 255, 255.0), metrics.psnr(y * 255, x * 255, 255.0))
    torch.testing.assert_close(metrics.psnr(y * 255, x * 255, 255.0), metrics.psnr(y, x), rtol=0, atol=1e-4)
