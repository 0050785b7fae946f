"""fading_interference_channel_cc: same statistics as core.channel, tags, run-time control."""

import math
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core.channel import link_powers

N = 1_000_000


def db(x):
    return 10 * math.log10(x)


def run_channel(ch, z, u, tags0=(), tags1=()):
    tb = gr.top_block()
    src0 = blocks.vector_source_c(z, False, 1, list(tags0))
    src1 = blocks.vector_source_c(u, False, 1, list(tags1))
    y_sink, h_sink = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect(src0, (ch, 0))
    tb.connect(src1, (ch, 1))
    tb.connect((ch, 0), y_sink)
    tb.connect((ch, 1), h_sink)
    tb.run()
    return np.array(y_sink.data()), np.array(h_sink.data()), y_sink, h_sink


def unit(n, seed):
    r = np.random.default_rng(seed)
    return ((r.standard_normal(n) + 1j * r.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)


@pytest.mark.slow
@pytest.mark.parametrize("channel_type, coherence", [("awgn", 1), ("rayleigh", 1), ("rayleigh", 64)])
@pytest.mark.parametrize("snr_db, sinr_db", [(10.0, math.inf), (20.0, 5.0), (3.0, 0.0)])
def test_empirical_snr_sinr_match_core(channel_type, coherence, snr_db, sinr_db):
    z, u = unit(N, 1), unit(N, 2)
    ps = 2.0
    ch = semcom.fading_interference_channel_cc(channel_type, coherence, snr_db, sinr_db, ps, 7)
    p = link_powers(snr_db, sinr_db, ps)
    assert ch.noise_var() == pytest.approx(p.noise_var)
    assert ch.interference_power() == pytest.approx(p.interference_power)
    y, h, *_ = run_channel(ch, z, u)
    assert len(y) == len(h) == N
    signal = math.sqrt(ps) * h * z
    residual = y - signal
    # SNR/SINR are ratios of average powers: Ps E|h|^2 E|z|^2 over the (interference+)noise.
    sig_power = ps * np.mean(np.abs(z) ** 2)  # E|h|^2 = 1, checked below
    if math.isinf(sinr_db):
        assert db(sig_power / np.mean(np.abs(residual) ** 2)) == pytest.approx(snr_db, abs=0.1)
    else:
        assert db(sig_power / np.mean(np.abs(residual) ** 2)) == pytest.approx(sinr_db, abs=0.1)
    if channel_type == "rayleigh":
        n_indep = N // coherence
        assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, abs=5 / math.sqrt(n_indep))
        blocks_ = h.reshape(-1, coherence)
        assert np.all(blocks_ == blocks_[:, :1])  # constant within a coherence block
        if coherence > 1:
            assert np.all(blocks_[1:, 0] != blocks_[:-1, 0])  # redrawn at each boundary
    else:
        assert np.all(h == 1)


def test_snr_alone_via_zero_interferer():
    # With u = 0, the residual is the noise alone: SNR holds even when SINR < SNR.
    z = unit(N, 3)
    ch = semcom.fading_interference_channel_cc("rayleigh", 1, 12.0, 2.0, 1.0, 1)
    y, h, *_ = run_channel(ch, z, np.zeros(N, np.complex64))
    assert db(np.mean(np.abs(z) ** 2) / np.mean(np.abs(y - h * z) ** 2)) == pytest.approx(12.0, abs=0.1)


def test_seed_reproducible():
    z, u = unit(5000, 1), unit(5000, 2)
    mk = lambda seed: semcom.fading_interference_channel_cc("rayleigh", 4, 5, 0, 1.0, seed)
    a, _, *_ = run_channel(mk(3), z, u)
    b, _, *_ = run_channel(mk(3), z, u)
    c, _, *_ = run_channel(mk(4), z, u)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_tags_of_signal_input_reach_both_outputs_interferer_tags_dropped():
    n = 3000
    tag = lambda off, key: gr.tag_utils.python_to_tag((off, pmt.intern(key), pmt.from_long(off)))
    ch = semcom.fading_interference_channel_cc("awgn", 1, 30, 30, 1.0, 0)
    *_, ys, hs = run_channel(ch, unit(n, 1), unit(n, 2),
                             tags0=[tag(0, "packet_len"), tag(1500, "packet_len")],
                             tags1=[tag(7, "interferer")])
    for sink in (ys, hs):
        got = [(t.offset, pmt.symbol_to_string(t.key)) for t in sink.tags()]
        assert got == [(0, "packet_len"), (1500, "packet_len")]


def test_runtime_setters_and_cmd_port():
    z = np.zeros(200_000, np.complex64)
    ch = semcom.fading_interference_channel_cc("awgn", 1, 0.0, math.inf, 1.0, 0)
    ch.set_snr_db(10.0)
    assert ch.snr_db() == 10.0 and ch.noise_var() == pytest.approx(0.1)
    y, *_ = run_channel(ch, z, z)
    assert np.mean(np.abs(y) ** 2) == pytest.approx(0.1, rel=0.02)
    for bad in (float("nan"), -math.inf):  # logged and ignored: a GUI callback must never raise
        ch.set_sinr_db(bad)
        ch.set_snr_db(bad)
    assert (ch.snr_db(), ch.sinr_db(), ch.noise_var()) == (10.0, math.inf, pytest.approx(0.1))

    # The "cmd" message port changes SNR/SINR while the flowgraph runs; bad commands are ignored.
    tb = gr.top_block()
    src = blocks.null_source(gr.sizeof_gr_complex)
    tb.connect(src, (ch, 0))
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), (ch, 1))
    tb.connect((ch, 0), blocks.null_sink(gr.sizeof_gr_complex))
    tb.connect((ch, 1), blocks.null_sink(gr.sizeof_gr_complex))
    tb.start()
    try:
        cmd = pmt.dict_add(pmt.make_dict(), pmt.intern("snr_db"), pmt.from_double(20.0))
        cmd = pmt.dict_add(cmd, pmt.intern("sinr_db"), pmt.from_double(6.0))
        ch._post(pmt.intern("cmd"), cmd)
        ch._post(pmt.intern("cmd"), pmt.cons(pmt.intern("sinr_db"), pmt.from_double(float("nan"))))
        ch._post(pmt.intern("cmd"), pmt.intern("garbage"))
        deadline = time.time() + 5
        while ch.snr_db() != 20.0 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
    finally:
        tb.stop()
        tb.wait()
    assert ch.snr_db() == 20.0 and ch.sinr_db() == 6.0
    assert ch.interference_power() == pytest.approx(10 ** -0.6 - 0.01)


def test_sinr_above_snr_at_run_time_is_used_as_sinr_equal_snr(capfd):
    """GUI sliders cross: at run time a SINR above the SNR means no interference power (one
    log line per change), and the SINR asked for comes back when the SNR rises above it."""
    n = 400_000
    z, u = unit(n, 1), unit(n, 2)
    ch = semcom.fading_interference_channel_cc("awgn", 1, 10.0, 5.0, 1.0, 0)
    ch.set_snr_db(3.0)
    ch.set_snr_db(3.0)
    assert (ch.snr_db(), ch.sinr_db(), ch.interference_power()) == (3.0, 3.0, 0.0)
    assert ch.noise_var() == pytest.approx(link_powers(3.0).noise_var)
    y, *_ = run_channel(ch, z, u)
    assert db(1 / np.mean(np.abs(y - z) ** 2)) == pytest.approx(3.0, abs=0.1)  # noise only
    log = capfd.readouterr()
    assert (log.out + log.err).count("SINR 5 dB is above SNR 3 dB") == 1  # logged once, not raised
    ch.set_snr_db(10.0)
    assert ch.sinr_db() == 5.0
    assert ch.interference_power() == pytest.approx(link_powers(10.0, 5.0).interference_power)
    ch.set_sinr_db(20.0)
    assert ch.sinr_db() == 10.0 and ch.interference_power() == 0.0
    ch.set_snr_db(30.0)
    assert ch.sinr_db() == 20.0

    # The same through the cmd port, while running.
    tb = gr.top_block()
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), (ch, 0))
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), (ch, 1))
    tb.connect((ch, 0), blocks.null_sink(gr.sizeof_gr_complex))
    tb.connect((ch, 1), blocks.null_sink(gr.sizeof_gr_complex))
    tb.start()
    try:
        ch._post(pmt.intern("cmd"), pmt.cons(pmt.intern("sinr_db"), pmt.from_double(40.0)))
        deadline = time.time() + 5
        while ch.sinr_db() != 30.0 and time.time() < deadline:
            time.sleep(0.01)
        assert ch.sinr_db() == 30.0  # clamped to the SNR
        ch._post(pmt.intern("cmd"), pmt.cons(pmt.intern("snr_db"), pmt.from_double(50.0)))
        while ch.sinr_db() != 40.0 and time.time() < deadline:
            time.sleep(0.01)
        assert (ch.snr_db(), ch.sinr_db()) == (50.0, 40.0)
    finally:
        tb.stop()
        tb.wait()


@pytest.mark.parametrize("args", [
    ("rician", 1, 10, 5, 1.0, 0),          # unknown channel type
    ("rayleigh", 0, 10, 5, 1.0, 0),        # coherence < 1
    ("awgn", 1, float("nan"), 5, 1.0, 0),  # NaN SNR
    ("awgn", 1, 10, float("nan"), 1.0, 0), # NaN SINR
    ("awgn", 1, 10, 5, -1.0, 0),           # negative power
    ("awgn", 1, 10, 15, 1.0, 0),           # SINR above SNR: refused when made (clamped at run time)
])
def test_invalid_parameters_raise(args):
    with pytest.raises(ValueError):
        semcom.fading_interference_channel_cc(*args)
