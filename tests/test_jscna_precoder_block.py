"""The jscna_precoder block (jscna_precoder.py): its output against the closed form of truncated
inversion, erasure tags, the long-term power, and the genie-CSIT chain with stock-style blocks
(fading_source_c feeding the precoder and the channel's h input): every kept symbol arrives as
sqrt(Ps) c z, every erased one as nothing."""

import math

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core.precoding import exp1, threshold_for_snr


def unit(n, seed):
    g = np.random.default_rng(seed)
    return ((g.standard_normal(n) + 1j * g.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)


def run_precoder(block, z, h):
    tb = gr.top_block()
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(z), (block, 0))
    tb.connect(blocks.vector_source_c(h), (block, 1))
    tb.connect(block, sink)
    tb.run()
    return np.array(sink.data()), sink.tags()


def test_output_is_the_closed_form_with_erasures_tagged():
    n, g_th = 20_000, 0.1
    z, h = unit(n, 1), unit(n, 2)
    x, tags = run_precoder(semcom.jscna_precoder("rayleigh", 10.0, g_th), z, h)
    kept = np.abs(h) ** 2 >= g_th
    c = math.sqrt(1.0 / exp1(g_th))
    np.testing.assert_allclose(x[kept], c * z[kept] / h[kept], rtol=1e-5, atol=1e-6)
    assert np.all(x[~kept] == 0)
    assert sorted(t.offset for t in tags if pmt.symbol_to_string(t.key) == "jscna_erased") == \
        np.flatnonzero(~kept).tolist()
    # the long-term power constraint, E|x|^2 = c^2 E1(g_th) = P (Monte Carlo: 1/g has a heavy tail)
    assert abs(np.mean(np.abs(x) ** 2) - 1.0) < 0.1
    # AWGN: sqrt(P) z, nothing erased
    x, tags = run_precoder(semcom.jscna_precoder("awgn", 10.0, 0.0, 2.0), z[:100], np.ones(100, np.complex64))
    np.testing.assert_allclose(x, math.sqrt(2.0) * z[:100], rtol=1e-6)
    assert not tags


def test_the_threshold_follows_the_snr_and_bad_parameters_are_refused():
    block = semcom.jscna_precoder("rayleigh", 4.0)
    assert block.g_th == pytest.approx(threshold_for_snr(4.0)) == pytest.approx(0.22)
    block.set_snr_db(20.0)
    assert block.g_th == pytest.approx(0.01)
    block.set_snr_db(float("nan"))      # a GUI callback never raises
    assert block.snr_db == 20.0
    assert semcom.jscna_precoder("rayleigh", 4.0, 0.3).g_th == 0.3
    for bad in (dict(channel_type="fog"), dict(power=0.0), dict(g_th=-1.0), dict(snr_db=float("inf"))):
        with pytest.raises(ValueError):
            semcom.jscna_precoder(**bad)


def test_genie_csit_chain_the_channel_sees_the_precoders_fading():
    """fading_source_c -> precoder and channel input 2: y = sqrt(Ps) c z on kept symbols, 0 on
    erased ones (no noise, no interferer)."""
    n, g_th, ps = 10_000, 0.22, 2.0
    z, u = unit(n, 3), unit(n, 4)
    tb = gr.top_block()
    fading = semcom.fading_source_c("rayleigh", 1, 11)
    head = blocks.head(gr.sizeof_gr_complex, n)
    precoder = semcom.jscna_precoder("rayleigh", 4.0, g_th)
    channel = semcom.fading_interference_channel_cc("rayleigh", 1, math.inf, math.inf, ps, 1)
    y_sink, h_sink = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect(fading, head)
    tb.connect(blocks.vector_source_c(z), (precoder, 0))
    tb.connect(head, (precoder, 1))
    tb.connect(head, (channel, 2))
    tb.connect(precoder, (channel, 0))
    tb.connect(blocks.vector_source_c(u), (channel, 1))
    tb.connect((channel, 0), y_sink)
    tb.connect((channel, 1), h_sink)
    tb.run()
    y, h = np.array(y_sink.data()), np.array(h_sink.data())
    kept = np.abs(h) ** 2 >= g_th
    c = math.sqrt(1.0 / exp1(g_th))
    np.testing.assert_allclose(y[kept], math.sqrt(ps) * c * z[kept], rtol=1e-4, atol=1e-5)
    assert np.all(y[~kept] == 0) and abs((~kept).mean() - (1 - math.exp(-g_th))) < 0.02
