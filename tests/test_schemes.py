"""The scheme contract: the registry, typed options, the one wire form of what crosses the
link, every scheme on the batch engine, a scheme added as one module (nothing else edited),
and the GRC yml generated from the registry."""

import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gnuradio.semcom import schemes
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.models import jscc_model_name
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.link_sim import equalized_batch, simulate

USER, INTERFERER = "jscc_user_awgn_k512", "jscc_interferer_awgn_k512"
SEEDED = lambda seed: torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def backend():
    return LocalBackend("cpu")


@pytest.fixture(scope="module")
def sample():
    return load_dataset("sample").images


# ------------------------------------------------------------------ registry and options
def test_registry_holds_the_deepjscc_family_with_typed_options():
    assert {"mmse", "cddm", "icdm", "icdm-pigdm", "icdm-dps", "icdm-projection"} <= set(schemes.names())
    icdm = schemes.get("icdm")
    bayes = {"start": "posterior-mean", "surrogate": "prior-covariance", "zeta_x": 1.0, "zeta_i": 1.0,
             "guided_corrector": True}  # issue 12: the configuration that is lmmse-full on Gaussian priors
    for channel in ("awgn", "rayleigh"):
        assert {k: icdm.option_values(None, channel)[k] for k in bayes} == bayes
    per_channel = schemes.Option("zeta_x", 1.0, "w", channel_defaults=(("awgn", 2.0),))
    assert per_channel.default_for("awgn") == 2.0 and per_channel.default_for("rayleigh") == 1.0
    assert icdm.option_values({"steps": "7", "guided_corrector": "yes"})["guided_corrector"] is True
    assert icdm.max_nfe({"steps": 7}) == 14 and schemes.get("cddm").max_nfe() == 5
    assert schemes.get("mmse").max_nfe() == 0 and schemes.get("mmse").options == ()
    spec = icdm.describe()["options"]["start"]
    assert spec == {"type": "str", "default": "posterior-mean", "help": spec["help"],
                    "choices": ["noise", "observation", "posterior-mean"]}
    assert schemes.get("icdm-dps").describe()["options"]["start"]["default"] == "observation"
    with pytest.raises(ValueError, match="must be a int"):
        icdm.option_values({"steps": True})  # a bool is no count
    with pytest.raises(ValueError, match="already registered"):
        schemes.register(schemes.get("mmse"))
    with pytest.raises(ValueError, match="unknown receiver scheme 'nope'"):
        schemes.get("nope")


def test_checkpoints_are_checked_up_front_all_missing_named():
    from gnuradio.semcom.core.checkpoint import CheckpointError
    assert schemes.get("icdm").checkpoints("rayleigh", 512) == [
        "jscc_user_rayleigh_k512", "prior_user_rayleigh_k512", "prior_interferer_rayleigh_k512",
        "gauss_user_rayleigh_k512", "gauss_interferer_rayleigh_k512",  # the gaussian-full prior option's
        "gauss_interferer_awgn_k512"]  # block fading folds the interferer's fit as sent
    schemes.get("icdm").check_checkpoints("rayleigh", 512)
    with pytest.raises(CheckpointError, match="prior_user_awgn_k256, prior_interferer_awgn_k256"):
        schemes.get("icdm").check_checkpoints("awgn", 256)
    with pytest.raises(CheckpointError, match="server does not have"):
        schemes.get("cddm").check_checkpoints("awgn", 512, available={"jscc_user_awgn_k512"})
    schemes.get("mmse").check_checkpoints("awgn", 98)  # the grey model, from k alone
    for name in schemes.names():  # the transmitter's checkpoints (k unknown there): the model alone
        assert len(schemes.get(name).checkpoints("awgn", None, "jscc_user_awgn_k512")) <= 1
        schemes.get(name).check_checkpoints("awgn", None, "jscc_user_awgn_k512")


def test_run_record_resolves_the_schemes_options():
    run = schemes.run_record({"receiver": "cddm", "receiver_options": "steps=3", "channel": "awgn",
                              "sinr_db": math.inf, "interferer_model": INTERFERER, "server": ""})
    assert run["receiver_options"] == dict(schemes.get("cddm").defaults, steps=3)
    assert run["scheme"] == "cddm" and run["sinr_db"] is None and run["interferer_model"] is None
    # an empty user model (the examples' "each scheme's own") is recorded as the one used
    for receiver, channel, k, want in (("mmse", "rayleigh", 512, "jscc_user_rayleigh_k512"),
                                       ("dnsc", "awgn", 512, "vae_cifar10_k512"),
                                       ("cdiff", "awgn", 256, "cdiff_awgn_k512")):
        run = schemes.run_record({"receiver": receiver, "channel": channel, "k": k, "user_model": ""})
        assert run["user_model"] == want


# ------------------------------------------------------------------ the wire form
def test_observation_wire_round_trip_and_validation(backend, sample):
    _, obs = equalized_batch(backend, sample[:3], sample[-3:], "rayleigh", 12.0, 3.0, "jscc_user_rayleigh_k512",
                             INTERFERER, 8, SEEDED(0))
    assert obs.coherence == 8
    obs.options, obs.side_info = {"steps": 3}, [{"frame": n} for n in range(3)]
    params, arrays = obs.to_wire()
    back = schemes.Observation.from_wire(params, dict(arrays))
    for name in ("zhat", "w", "h"):
        torch.testing.assert_close(getattr(back, name), getattr(obs, name), rtol=0, atol=0)
    for name in ("powers", "snr_db", "sinr_db", "channel_type", "coherence", "options", "seed", "model",
                 "csi_source", "snr_source", "side_info"):
        assert getattr(back, name) == getattr(obs, name), name
    inf = schemes.Observation.from_wire({k: v for k, v in params.items() if k != "sinr_db"}, dict(arrays))
    assert inf.sinr_db == math.inf  # no interferer: left out of the JSON
    bad = [({"noise_var": -1}, "noise_var"), ({"signal_power": 0}, "signal_power"), ({"seed": 1.5}, "seed"),
           ({"channel_type": "fog"}, "channel_type"), ({"csi_source": "oracle"}, "csi_source"),
           ({"snr_source": 3}, "snr_source"), ({"options": "steps=3"}, "options"), ({"snr_db": math.nan}, "snr_db"),
           ({"power_policy": "per-batch"}, "power_policy"), ({"side_info": {"frame": 1}}, "side_info"),
           ({"coherence": 0}, "coherence"), ({"coherence": 2.5}, "coherence")]
    for change, field in bad:
        with pytest.raises(ValueError, match=field):
            schemes.Observation.from_wire(dict(params, **change), dict(arrays))
    short = dict(arrays, w=arrays[1][1][:, :5])
    with pytest.raises(ValueError, match="'xhat' float32 \\(N, 2k\\)"):
        schemes.Observation.from_wire(params, short)
    with pytest.raises(ValueError, match="side information for 2 images"):
        schemes.Observation.from_wire(dict(params, side_info=[{}, {}]), dict(arrays))
    assert obs.take(slice(1, 3)).side_info == [{"frame": 1}, {"frame": 2}]


def test_transmission_and_result_wire_round_trip():
    z = torch.randn(2, 8, dtype=torch.complex64)
    sent = schemes.Transmission(z, [{"mcs": "qpsk-1/2"}, {"mcs": "16qam-3/4"}], 24)
    back = schemes.Transmission.from_wire(*_as_dict(sent.to_wire()))
    assert torch.equal(back.symbols, z) and back.side_info[1] == {"mcs": "16qam-3/4"} and back.side_info_bits == 24
    with pytest.raises(ValueError, match="side information for 1 images"):
        schemes.Transmission(z, [{}])
    result = schemes.Result(np.zeros((2, 4, 4, 3), np.uint8), None, 0, {"success_rate": 1.0})
    params, arrays = result.to_wire()
    assert [name for name, _ in arrays] == ["images"]  # no latents: none sent
    back = schemes.Result.from_wire(params, dict(arrays))
    assert back.latents is None and back.extra == {"success_rate": 1.0}
    tx = schemes.TxContext(10.0, "rayleigh", csi=z, csi_source="genie")
    params, arrays = tx.to_wire()
    assert torch.equal(schemes.TxContext.from_wire(params, dict(arrays)).csi, z)
    with pytest.raises(ValueError, match="exactly when"):
        schemes.TxContext.from_wire(params, {})


def _as_dict(wire):
    params, arrays = wire
    return params, dict(arrays)


def test_every_scheme_runs_on_the_batch_engine_and_reports_its_cbr(backend, sample):
    for name in schemes.names():
        scheme = schemes.get(name)
        opts = {"steps": 1} if "steps" in scheme.defaults else {}
        model = scheme.default_model("awgn", None, sample.shape[1:]) or USER
        k = scheme.symbols_per_image(backend, schemes.TxContext(15.0, "awgn", model), sample.shape[1:]) \
            if scheme.needs_csit else 512
        # an interferer of the scheme's own k (jscna-ad-pixel's 1536: a DeepJSCC of that CBR sending other images)
        interferer = INTERFERER if k == 512 else jscc_model_name("user", "awgn", k)
        res = simulate(backend, sample[:2], "awgn", 15.0, 5.0, model, interferer, name, seed=1, receiver_options=opts)
        assert len(res.received) == 2 and not res.errors, name
        assert res.received.shape == sample[:2].shape and res.received.dtype == np.uint8
        if scheme.family == "deepjscc":  # the JSCC model's k and latents
            assert res.symbols_per_image == backend.info(model)["k"] and len(res.latent_mse_db) == 2
            assert res.nfe <= scheme.max_nfe(opts, "awgn")  # the bound the server's cap relies on


class GenieCSIT(schemes.Scheme):
    """A scheme that needs the channel at the transmitter; it records the CSI it was handed."""
    name, family, needs_csit = "test-genie-csit", "test", True

    def __init__(self):
        self.seen = []

    def symbols_per_image(self, models, tx, image_shape):
        return 512

    def transmit(self, models, images, tx):
        self.seen.append((tx.csi.clone(), tx.csi_source))
        return schemes.get("mmse").transmit(models, images, schemes.TxContext(tx.snr_db, tx.channel_type, USER))

    def receive(self, models, obs):
        return schemes.get("mmse").receive(models, obs)


def test_a_scheme_that_needs_csit_gets_the_fading_the_channel_applies(backend, sample):
    """The batch engine draws the channel first and hands its h to the transmitter (genie
    CSIT); the draws are those of any other scheme at the same seed."""
    genie = schemes.register(GenieCSIT())
    try:
        _, obs = equalized_batch(backend, sample[:3], sample[-3:], "rayleigh", 10.0, 3.0, USER, INTERFERER, 4,
                                 SEEDED(5), "test-genie-csit")
        (csi, source), = genie.seen
        assert source == "genie" and torch.equal(csi, obs.h)
        _, plain = equalized_batch(backend, sample[:3], sample[-3:], "rayleigh", 10.0, 3.0, USER, INTERFERER, 4,
                                   SEEDED(5), "mmse")
        assert torch.equal(plain.h, obs.h) and plain.seed == obs.seed
    finally:
        schemes.SCHEMES.pop("test-genie-csit", None)


# ------------------------------------------------------------------ a scheme is one module
TOY = '''
"""A toy scheme for the test: the DeepJSCC link whose receiver halves the equalized latent."""
from gnuradio.semcom.schemes import Option, register
from gnuradio.semcom.schemes.deepjscc import DeepJSCCScheme


class Halve(DeepJSCCScheme):
    name = "toy-halve"
    description = "halves the equalized latent"
    options = (Option("factor", 0.5, "the scale", minimum=0.0),)

    def clean(self, obs, models):
        return self.option_values(obs.options)["factor"] * obs.xhat, 0


register(Halve())
'''


def test_a_new_scheme_is_one_module_and_everything_walks_the_registry(tmp_path, backend, sample, monkeypatch):
    """Dropped into the package's path, a module is found by the registry; the batch engine,
    run_link's --help and option checks, and the run record take it with no other edit."""
    (tmp_path / "toy_halve.py").write_text(textwrap.dedent(TOY))
    monkeypatch.setattr(schemes, "__path__", list(schemes.__path__) + [str(tmp_path)])
    try:
        assert schemes.discover() == ["toy_halve"]
        assert "toy-halve" in schemes.names() and "factor=0.5" in schemes.help_text()
        base = simulate(backend, sample[:2], "awgn", 20.0, math.inf, USER, "", "mmse", seed=2)
        toy = simulate(backend, sample[:2], "awgn", 20.0, math.inf, USER, "", "toy-halve", seed=2,
                       receiver_options={"factor": "0.5"})
        assert np.mean(toy.latent_mse_db) > np.mean(base.latent_mse_db) + 3  # half the latent: worse
        with pytest.raises(ValueError, match=">= 0.0"):
            schemes.check("toy-halve", {"factor": -1})
        assert schemes.run_record({"receiver": "toy-halve"})["receiver_options"] == {"factor": 0.5}
    finally:
        schemes.SCHEMES.pop("toy-halve", None)
        sys.modules.pop("gnuradio.semcom.schemes.toy_halve", None)


# ------------------------------------------------------------------ GRC: lists from the registry
def _installed_yml(name):
    """A block yml as installed into the environment's prefix (the generated ones included)."""
    return Path(sys.prefix) / "share" / "gnuradio" / "grc" / "blocks" / name


@pytest.mark.parametrize("block, key, which", [
    ("semcom_scheme_transmitter", "scheme", "all"), ("semcom_scheme_receiver", "scheme", "all"),
    ("semcom_diffusion_receiver", "scheme", "all"), ("semcom_jscc_receiver", "receiver", "all"),
    ("semcom_icdm_canceller", "receiver", "priors")])
def test_installed_grc_blocks_list_exactly_the_registered_schemes(block, key, which):
    path = _installed_yml(f"{block}.block.yml")
    doc = yaml.safe_load(path.read_text())
    param = next(p for p in doc["parameters"] if p["id"] == key)
    want = [n for n in schemes.names() if which == "all" or getattr(schemes.get(n), "priors", ())]
    assert param["options"] == [f'"{n}"' for n in want] and param["option_labels"] == want
    for name in want:  # each scheme documented with its options
        assert f"{name}: {schemes.get(name).description}" in doc["documentation"]
    assert "@" not in path.read_text()
    if which == "all":
        assert param["dtype"] == "string"  # an editable list: a name typed in works too


def test_every_grc_yml_parses_and_names_a_block_that_exists():
    from gnuradio import semcom
    grc = Path(__file__).resolve().parents[1] / "grc"
    names = [p.name.removesuffix(".in") for p in grc.glob("*.block.yml*")]
    for name in names:
        doc = yaml.safe_load(_installed_yml(name).read_text())
        make = doc["templates"]["make"]
        if make.startswith("semcom."):
            assert hasattr(semcom, make.split("(")[0].removeprefix("semcom.")), name
