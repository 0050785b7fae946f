"""snr_estimator_pdu / snr_estimator_cc: the blind moment estimator (diffusion/dnsc.py) as
blocks, against numpy computed here, on stock GNU Radio sources and sinks."""

import math

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.pdu_util import make_pdu
from test_block_pdu import meta_of, post_and_collect


def block(k, power, snr_db, rng, h=None):
    """One image's received symbols y = h z + n, z normalised to mean|z|^2 = power."""
    z = rng.standard_normal(k) + 1j * rng.standard_normal(k)
    z *= math.sqrt(power / np.mean(np.abs(z) ** 2))
    h = np.ones(k) if h is None else h
    sigma2 = power / 10 ** (snr_db / 10)
    n = math.sqrt(sigma2 / 2) * (rng.standard_normal(k) + 1j * rng.standard_normal(k))
    return (h * z + n).astype(np.complex64), h.astype(np.complex64)


def numpy_estimate(y, h, power):
    """The moment estimate; with unequal gains refined 3 times with weights 1/(P|h|^2 + var)^2."""
    gain = power * np.abs(h.astype(np.complex128)) ** 2
    term = np.abs(y.astype(np.complex128)) ** 2 - gain
    var = max(term.mean(), 1e-6 * power)
    if gain.max() > gain.min() * (1 + 1e-6):
        for _ in range(3):
            weight = 1 / (gain + var) ** 2
            var = max((weight * term).sum() / weight.sum(), 1e-6 * power)
    return var, 10 * math.log10(power / var)


def meta_value(meta, key):
    return pmt.to_python(pmt.dict_ref(meta, pmt.intern(key), pmt.PMT_NIL))


def test_pdu_estimator_adds_the_estimate_and_sets_the_operating_point(rng):
    y, h = block(512, 2.0, 5.0, rng)
    out = post_and_collect(semcom.snr_estimator_pdu(power=2.0), [make_pdu(meta_of(image_id=3, snr_db=20.0), y)])
    assert len(out) == 1
    meta = pmt.car(out[0])
    var, snr = numpy_estimate(y, h, 2.0)
    assert meta_value(meta, "noise_var_est") == pytest.approx(var, rel=1e-5)
    assert meta_value(meta, "snr_est_db") == pytest.approx(snr, abs=1e-4)
    # the estimate counts interference as noise: it is the SINR; the PDU's higher SNR stays
    assert meta_value(meta, "sinr_db") == pytest.approx(snr, abs=1e-4) and meta_value(meta, "snr_db") == 20.0
    assert meta_value(meta, "snr_source") == "estimated" and meta_value(meta, "image_id") == 3
    below = post_and_collect(semcom.snr_estimator_pdu(power=2.0), [make_pdu(meta_of(snr_db=1.0), y)])
    assert meta_value(pmt.car(below[0]), "snr_db") == pytest.approx(snr, abs=1e-4)   # never SINR > SNR
    assert meta_value(pmt.car(below[0]), "sinr_db") == pytest.approx(snr, abs=1e-4)
    np.testing.assert_array_equal(pmt.c32vector_elements(pmt.cdr(out[0])), y)
    # set_snr=False leaves the operating point alone
    kept = post_and_collect(semcom.snr_estimator_pdu(power=2.0, set_snr=False),
                            [make_pdu(meta_of(snr_db=20.0), y)])
    assert meta_value(pmt.car(kept[0]), "snr_db") == 20.0
    assert meta_value(pmt.car(kept[0]), "snr_est_db") == pytest.approx(snr, abs=1e-4)


def test_pdu_estimator_undoes_the_equalizer_on_an_equalized_pdu(rng):
    """zhat = w y with MMSE weights and Rayleigh h in the metadata: estimated on y = zhat / w."""
    k = 512
    h = ((rng.standard_normal(k) + 1j * rng.standard_normal(k)) / math.sqrt(2)).astype(np.complex64)
    y, h = block(k, 1.0, 10.0, rng, h)
    w = (np.conj(h) / (np.abs(h) ** 2 + 0.1)).astype(np.complex64)
    meta = pmt.dict_add(pmt.dict_add(meta_of(snr_db=0.0), pmt.intern("w"), pmt.init_c32vector(k, w)),
                        pmt.intern("h"), pmt.init_c32vector(k, h))
    out = post_and_collect(semcom.snr_estimator_pdu(), [make_pdu(meta, (w * y).astype(np.complex64))])
    var, snr = numpy_estimate((w * y / w).astype(np.complex64), h, 1.0)
    assert meta_value(pmt.car(out[0]), "snr_est_db") == pytest.approx(snr, abs=1e-3)


def test_pdu_estimator_drops_garbage_and_goes_on(rng):
    y, _ = block(64, 1.0, 10.0, rng)
    bad_w = pmt.dict_add(meta_of(), pmt.intern("w"), pmt.init_c32vector(3, np.ones(3, np.complex64)))
    bad_w = pmt.dict_add(bad_w, pmt.intern("h"), pmt.init_c32vector(3, np.ones(3, np.complex64)))
    nan = y.copy()
    nan[3] = np.nan
    msgs = [pmt.intern("hello"), make_pdu(meta_of(), np.ones(8, np.float32)), make_pdu(bad_w, y),
            make_pdu(meta_of(), nan), make_pdu(meta_of(image_id=9), y)]
    out = post_and_collect(semcom.snr_estimator_pdu(), msgs)
    assert len(out) == 1 and meta_value(pmt.car(out[0]), "image_id") == 9
    with pytest.raises(ValueError, match="power"):
        semcom.snr_estimator_pdu(power=0)


def test_stream_estimator_tags_every_block_and_passes_the_samples(rng):
    k, power = 256, 1.0
    parts = [block(k, power, snr, rng)[0] for snr in (0.0, 10.0, 20.0, 5.0)]
    x = np.concatenate(parts)
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False)
    est = semcom.snr_estimator_cc(block_len=k, power=power)
    sink = blocks.vector_sink_c()
    tb.connect(src, est, sink)
    tb.run()
    np.testing.assert_array_equal(np.asarray(sink.data(), np.complex64), x)
    tags = {}
    for t in sink.tags():
        tags.setdefault(pmt.symbol_to_string(t.key), []).append((t.offset, pmt.to_double(t.value)))
    assert [o for o, _ in tags["snr_est_db"]] == [0, k, 2 * k, 3 * k]
    for (offset, snr), (_, var), y in zip(tags["snr_est_db"], tags["noise_var_est"], parts):
        want_var, want_snr = numpy_estimate(y, np.ones(k), power)
        assert var == pytest.approx(want_var, rel=1e-5) and snr == pytest.approx(want_snr, abs=1e-4)
    with pytest.raises(ValueError, match="block_len"):
        semcom.snr_estimator_cc(block_len=0)


def test_the_receiver_block_takes_the_estimate_as_the_operating_point(rng):
    """snr_estimator_pdu -> diffusion_receiver: the PDU's estimated snr_db is the operating
    point and its snr_source reaches the scheme's Observation; a PHY's PDU ("csi" estimated)
    counts as estimated too; an unknown snr_source is dropped with one error."""
    y, _ = block(512, 1.0, 7.0, rng)
    est = post_and_collect(semcom.snr_estimator_pdu(), [make_pdu(meta_of(snr_db=20.0), y)])
    meta = pmt.car(est[0])
    k = 512
    for key, value in (("w", np.ones(k, np.complex64)), ("h", np.ones(k, np.complex64))):
        meta = pmt.dict_add(meta, pmt.intern(key), pmt.init_c32vector(k, value))
    rx = semcom.diffusion_receiver("mmse", "awgn", k, 20.0)
    _, item = rx.prepare(pmt.cons(meta, pmt.cdr(est[0])))
    snr, sinr, source = item[0]
    assert (snr, source) == (20.0, "estimated") and sinr == pytest.approx(meta_value(meta, "snr_est_db"))
    phy = pmt.dict_add(pmt.dict_delete(meta, pmt.intern("snr_source")), pmt.intern("csi"), pmt.intern("estimated"))
    assert rx.prepare(pmt.cons(phy, pmt.cdr(est[0])))[1][0][2] == "estimated"
    given = pmt.dict_delete(meta, pmt.intern("snr_source"))
    assert rx.prepare(pmt.cons(given, pmt.cdr(est[0])))[1][0][2] == "given"
    bad = pmt.dict_add(meta, pmt.intern("snr_source"), pmt.intern("oracle"))
    assert rx.prepare(pmt.cons(bad, pmt.cdr(est[0]))) is None


def test_the_receiver_block_drops_one_image_without_its_side_information(rng):
    """dnsc needs each image's rms: a PDU without it (or with a bad one) is dropped alone at
    prepare, so it cannot fail the batch it would have joined; norm=average needs none."""
    k = 512
    y, _ = block(k, 1.0, 10.0, rng)
    meta = meta_of(snr_db=10.0)
    for key in ("w", "h"):
        meta = pmt.dict_add(meta, pmt.intern(key), pmt.init_c32vector(k, np.ones(k, np.complex64)))
    rx = semcom.diffusion_receiver("dnsc", "awgn", k, 10.0, model="vae_cifar10_k512")
    good = pmt.dict_add(meta, pmt.intern("side_info"), pmt.to_pmt({"rms": 1.4}))
    assert rx.prepare(make_pdu(good, y)) is not None
    for side in (None, {"rms": float("nan")}, {"rms": "big"}, {"rms": -1.0}, {"other": 1}):
        m = meta if side is None else pmt.dict_add(meta, pmt.intern("side_info"), pmt.to_pmt(side))
        assert rx.prepare(make_pdu(m, y)) is None
    rx_avg = semcom.diffusion_receiver("dnsc", "awgn", k, 10.0, model="vae_cifar10_k512", options="norm=average")
    assert rx_avg.prepare(make_pdu(meta, y)) is not None
