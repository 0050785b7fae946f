"""mmse_equalizer_cc: bit-exact (float tolerance) against core.equalizer, tags, setters."""

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core.equalizer import mmse_equalize


def run_eq(eq, y, h, tags_y=(), tags_h=()):
    tb = gr.top_block()
    zs, ws = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(y, False, 1, list(tags_y)), (eq, 0))
    tb.connect(blocks.vector_source_c(h, False, 1, list(tags_h)), (eq, 1))
    tb.connect((eq, 0), zs)
    tb.connect((eq, 1), ws)
    tb.run()
    return np.array(zs.data()), np.array(ws.data()), zs, ws


@pytest.mark.parametrize("ps, nv", [(1.0, 0.1), (2.5, 0.01), (1.0, 0.0)])
def test_matches_core(ps, nv, rng):
    n = 100_000
    y = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    h = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)
    zhat, w, *_ = run_eq(semcom.mmse_equalizer_cc(ps, nv), y, h)
    ref_z, ref_w = mmse_equalize(torch.from_numpy(y), torch.from_numpy(h), ps, nv)
    np.testing.assert_allclose(w, ref_w.numpy(), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(zhat, ref_z.numpy(), rtol=5e-6, atol=1e-6)


def test_tags_one_to_one():
    tag = lambda off, key: gr.tag_utils.python_to_tag((off, pmt.intern(key), pmt.PMT_T))
    n = 100
    one = np.ones(n, np.complex64)
    *_, zs, ws = run_eq(semcom.mmse_equalizer_cc(1.0, 0.1), one, one,
                        tags_y=[tag(0, "from_y")], tags_h=[tag(3, "from_h")])
    assert [(t.offset, pmt.symbol_to_string(t.key)) for t in zs.tags()] == [(0, "from_y")]
    assert [(t.offset, pmt.symbol_to_string(t.key)) for t in ws.tags()] == [(3, "from_h")]


def test_setters_change_output():
    eq = semcom.mmse_equalizer_cc(1.0, 0.0)
    one = np.ones(10, np.complex64)
    eq.set_noise_var(1.0)
    eq.set_signal_power(4.0)
    assert (eq.noise_var(), eq.signal_power()) == (1.0, 4.0)
    zhat, w, *_ = run_eq(eq, one, one)
    np.testing.assert_allclose(w, 2.0 / 5.0, rtol=1e-6)  # sqrt(4) * 1 / (4 + 1)
    with pytest.raises(ValueError):
        eq.set_noise_var(-1.0)
    assert eq.noise_var() == 1.0


@pytest.mark.parametrize("args", [(0.0, 0.1), (-1.0, 0.1), (1.0, -0.1), (1.0, float("nan")),
                                  (float("inf"), 0.1)])
def test_invalid_parameters_raise(args):
    with pytest.raises(ValueError):
        semcom.mmse_equalizer_cc(*args)


def test_weight_output_is_optional(rng):
    n = 5000
    y = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    h = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    tb = gr.top_block()
    eq, zs = semcom.mmse_equalizer_cc(1.0, 0.2), blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(y), (eq, 0))
    tb.connect(blocks.vector_source_c(h), (eq, 1))
    tb.connect((eq, 0), zs)
    tb.run()
    ref_z, _ = mmse_equalize(torch.from_numpy(y), torch.from_numpy(h), 1.0, 0.2)
    np.testing.assert_allclose(np.array(zs.data()), ref_z.numpy(), rtol=5e-6, atol=1e-6)


def test_cmd_port_changes_noise_variance_while_running():
    import time
    eq = semcom.mmse_equalizer_cc(1.0, 0.1)
    tb = gr.top_block()
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), (eq, 0))
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), (eq, 1))
    tb.connect((eq, 0), blocks.null_sink(gr.sizeof_gr_complex))
    tb.start()
    try:
        eq._post(pmt.intern("cmd"), pmt.cons(pmt.intern("noise_var"), pmt.from_double(-1.0)))  # ignored
        eq._post(pmt.intern("cmd"), pmt.cons(pmt.intern("noise_var"), pmt.from_double(0.5)))
        deadline = time.time() + 5
        while eq.noise_var() != 0.5 and time.time() < deadline:
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    assert eq.noise_var() == 0.5 and eq.signal_power() == 1.0
