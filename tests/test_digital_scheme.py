"""The `digital` scheme end to end through the batch engine, and the every-scheme benchmark's
registry walk."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gnuradio.semcom import schemes
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.base import Scheme, TxContext
from gnuradio.semcom.digital.chain import dataset_mean
from gnuradio.semcom.schemes.link_sim import equalized_batch, simulate

USER = "jscc_user_awgn_k512"


@pytest.fixture(scope="module")
def images():
    return load_dataset("sample").images[:6]


def psnr(a, b):
    return 10 * np.log10(255 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_the_transmitter_fills_exactly_the_analog_budget_with_unit_power(images):
    backend = LocalBackend("cpu")
    for mcs in ("qpsk-1/2", "16qam-3/4", "64qam-5/6"):
        sent = backend.transmit("digital", images, TxContext(20.0, "awgn", USER, options={"mcs": mcs}))
        assert sent.symbols.shape == (6, 512) and sent.side_info_bits == 3 + 1   # the MCS, and the codec (auto)
        assert [d["mcs"] for d in sent.side_info] == [mcs] * 6
        assert sent.symbols.abs().square().mean().item() == pytest.approx(1.0, abs=0.06)


@pytest.mark.parametrize("codec", ["webp", "jpeg"])
def test_high_snr_delivers_every_image_as_the_codec_made_it(images, codec):
    """At 30 dB nothing is lost: the received image is the codec's image at the budget."""
    from gnuradio.semcom.digital import codec as codecs, mcs
    res = simulate(LocalBackend("cpu"), images, "awgn", 30.0, math.inf, USER, "", "digital",
                   receiver_options={"mcs": "64qam-3/4", "codec": codec})
    assert res.extra["success_rate"] == 1.0 and not res.errors
    budget = mcs.layout(mcs.get("64qam-3/4"), 512).payload_bytes
    for got, image in zip(res.received, images):
        payload, _ = codecs.encode(image, codec, budget)
        assert np.array_equal(got, codecs.decode(payload, codec, image.shape))


def test_below_its_threshold_a_fixed_mcs_falls_off_a_cliff_and_lost_frames_score_the_mean(images):
    backend = LocalBackend("cpu")
    res = simulate(backend, images, "awgn", 0.0, math.inf, USER, "", "digital", receiver_options={"mcs": "64qam-5/6"})
    assert res.extra["success_rate"] == 0.0
    mean = dataset_mean((32, 32, 3))
    assert all(np.array_equal(got, mean) for got in res.received)


def test_a_corrupted_frame_fails_its_crc_and_is_counted(images):
    """One image's LLRs are pushed to the wrong sign on many bits: the decoder cannot fix it, the
    CRC says so, that image scores the mean, and the other images are untouched."""
    backend = LocalBackend("cpu")
    _, obs = equalized_batch(backend, images, images, "awgn", 25.0, math.inf, USER, "", 1,
                             torch.Generator().manual_seed(0), scheme="digital", options={"mcs": "16qam-1/2"})
    obs.options = {"mcs": "16qam-1/2"}
    good = backend.receive("digital", obs)
    assert good.extra["success_rate"] == 1.0
    g = torch.Generator().manual_seed(1)
    obs.zhat[2] = obs.zhat[2] * torch.where(torch.rand(512, generator=g) < 0.3, -1.0, 1.0)
    bad = backend.receive("digital", obs)
    assert bad.extra["success_rate"] == pytest.approx(5 / 6)
    assert np.array_equal(bad.images[2], dataset_mean((32, 32, 3)))
    assert all(np.array_equal(bad.images[i], good.images[i]) for i in (0, 1, 3, 4, 5))


def test_adaptive_mcs_climbs_with_the_snr_and_ideal_is_the_capacity_budget(images):
    from gnuradio.semcom.digital import mcs
    backend = LocalBackend("cpu")
    rates = []
    for snr in (0.0, 10.0, 20.0):
        sent = backend.transmit("digital", images[:1], TxContext(snr, "awgn", USER))
        chosen = sent.side_info[0]["mcs"]
        rates.append(0 if chosen == "none" else mcs.layout(mcs.get(chosen), 512).payload_bytes)
    assert rates == sorted(rates) and rates[-1] > rates[0]
    # with interference reported, the SINR picks the MCS (what CQI feedback would report)
    thresholds = mcs.thresholds()["awgn"]
    with_interference = backend.transmit("digital", images[:1], TxContext(20.0, "awgn", USER, sinr_db=6.0))
    want = max((m for m in mcs.MCS if thresholds[m.name] is not None and thresholds[m.name] <= 6.0),
               key=lambda m: mcs.layout(m, 512).payload_bytes)
    assert with_interference.side_info[0]["mcs"] == want.name != sent.side_info[0]["mcs"]
    assert mcs.capacity_bytes(10.0, "awgn", 512) == int(512 * math.log2(11) // 8)
    # ergodic Rayleigh capacity below AWGN's, by Jensen
    assert mcs.capacity_bits_per_symbol(10.0, "rayleigh") < mcs.capacity_bits_per_symbol(10.0, "awgn")
    res = simulate(backend, images, "awgn", 10.0, math.inf, USER, "", "digital", receiver_options={"mcs": "ideal"})
    assert res.extra["success_rate"] == 1.0 and res.extra["payload_bytes"] <= mcs.capacity_bytes(10.0, "awgn", 512)


def test_side_information_is_checked(images):
    scheme = schemes.get("digital")
    for bad in ({}, {"mcs": "256qam"}, {"payload": 3}):
        with pytest.raises(ValueError, match="MCS as side information"):
            scheme.check_side_info(bad)
    with pytest.raises(ValueError, match="carries no LDPC codeword in 100 symbols"):
        LocalBackend("cpu").transmit("digital", images, TxContext(20.0, "awgn", USER,
                                                                  options={"mcs": "qpsk-1/2", "k": 100}))


def load_bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_schemes.py"
    spec = importlib.util.spec_from_file_location("bench_schemes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_comparison_walks_the_registry_and_takes_a_new_scheme_without_edits():
    bench = load_bench()
    before = bench.registry_series()
    names = {name for _, name, _ in before}
    assert {"mmse", "lmmse", "cddm", "icdm", "dnsc", "cdiff", "jscna-ad", "digital"} <= names
    assert "icdm-dps" not in names                       # ablations opt out
    assert ("digital ideal", "digital", {"mcs": "ideal"}) in before

    class Newcomer(Scheme):
        name = "zz-newcomer"
    schemes.register(Newcomer())
    try:
        assert bench.registry_series()[-1] == ("zz-newcomer", "zz-newcomer", {})
    finally:
        del schemes.SCHEMES["zz-newcomer"]


def test_auto_codec_takes_the_closer_image_and_delivers_where_webp_cannot_fit(images):
    """At QPSK 1/2 (57 payload bytes) no WebP of these images fits but JPEG's scan does: auto
    sends JPEG and delivers; where both fit it sends the one with the smaller error."""
    from gnuradio.semcom.digital import codec, mcs
    budget = mcs.layout(mcs.get("qpsk-1/2"), 512).payload_bytes
    assert all(codec.encode(image, "webp", budget) is None for image in images)
    run = lambda c: simulate(LocalBackend("cpu"), images, "awgn", 10.0, math.inf, USER, "", "digital",
                             receiver_options={"mcs": "qpsk-1/2", "codec": c})
    assert run("webp").extra["success_rate"] == 0.0 and run("auto").extra["success_rate"] == 1.0
    for image in images:
        payload, _, used = codec.encode_best(image, "auto", 250)
        errors = {name: np.mean((codec.decode(codec.encode(image, name, 250)[0], name, image.shape).astype(float)
                                 - image) ** 2) for name in codec.CODECS}
        assert used == min(errors, key=errors.get)


def test_extras_pool_over_batches_and_bad_side_information_loses_one_image(images):
    backend = LocalBackend("cpu")
    options = {"mcs": "16qam-1/2"}
    one = simulate(backend, images, "awgn", 6.0, math.inf, USER, "", "digital", receiver_options=options)
    split = simulate(backend, images, "awgn", 6.0, math.inf, USER, "", "digital", receiver_options=options,
                     batch_size=4)   # batches of 4 and 2: the rate over all 6 images, not the last batch's
    per = [np.array_equal(r, dataset_mean((32, 32, 3))) for r in split.received]
    assert split.extra["success_rate"] == pytest.approx(1 - sum(per) / 6)
    assert one.extra["success_rate"] == pytest.approx(1 - sum(np.array_equal(r, dataset_mean((32, 32, 3)))
                                                               for r in one.received) / 6)
    from gnuradio.semcom.schemes.link_sim import pool_extras
    pooled = pool_extras([(4, {"success_rate": 1.0, "mcs": "a", "flag": True}), (2, {"success_rate": 0.0, "mcs": "b",
                                                                                 "flag": False})])
    assert pooled == {"success_rate": pytest.approx(4 / 6), "mcs": "b", "flag": False}   # numbers pooled, others last
    _, obs = equalized_batch(backend, images, images, "awgn", 25.0, math.inf, USER, "", 1,
                             torch.Generator().manual_seed(0), scheme="digital", options=options)
    obs.options = options
    obs.side_info[1] = {"mcs": "256qam-9/10"}
    obs.side_info[3] = {"payload": "zz"}
    res = backend.receive("digital", obs)
    assert res.extra["success_rate"] == pytest.approx(4 / 6)
    assert np.array_equal(res.images[1], dataset_mean((32, 32, 3)))


def test_the_transmitters_sinr_travels_on_the_wire_and_is_checked():
    ctx = TxContext(10.0, "awgn", USER, sinr_db=3.0)
    params, arrays = ctx.to_wire()
    assert TxContext.from_wire(params, dict(arrays)).sinr_db == 3.0
    assert TxContext.from_wire(TxContext(10.0).to_wire()[0], {}).sinr_db == math.inf   # none reported
    for bad in (12.0, "-inf"):
        with pytest.raises(ValueError, match="sinr_db"):
            TxContext.from_wire(dict(params, sinr_db=bad), {})
