"""frame_multipath_cc and phy/sim.py's FrameMultipath: multipath whose tap phases are redrawn
at every frame, against np.convolve per frame and against stock fir_filter_ccc."""

import numpy as np
import pmt
import pytest
from gnuradio import blocks, filter as gr_filter, gr

from gnuradio.semcom.frame_multipath import frame_multipath_cc
from gnuradio.semcom.phy.sim import FrameMultipath, random_taps

MAGS = [1.0, 0.6, 0.3]


def reference(x, frame_starts, seed):
    """Per frame: the taps drawn in order from the seed, y[n] = sum_l taps[l] x[n - l] over the
    whole stream (inputs before the frame included), kept for that frame's outputs."""
    rng = np.random.default_rng(seed)
    taps = random_taps(MAGS, rng)
    y = np.empty(x.size, complex)
    edges = [0] + list(frame_starts) + [x.size]
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        if i:
            taps = random_taps(MAGS, rng)
        y[a:b] = np.convolve(x, taps)[a:b]
    return y


@pytest.mark.parametrize("cuts", [(), (1,), (137, 138, 600), (299, 300, 301, 999)])
def test_frame_multipath_is_the_per_frame_convolution_for_any_buffer_cuts(cuts):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1000) + 1j * rng.standard_normal(1000)
    starts = [100, 300, 650]
    model = FrameMultipath(MAGS, np.random.default_rng(7))
    pieces, edges = [], [0, *cuts, x.size]
    for a, b in zip(edges[:-1], edges[1:]):
        pieces.append(model.apply(x[a:b], [s - a for s in starts if a <= s < b]))
    np.testing.assert_allclose(np.concatenate(pieces), reference(x, starts, 7), atol=1e-5)
    assert model.frames == len(starts)


def test_frame_multipath_taps_have_unit_power_and_change_per_frame():
    model = FrameMultipath(MAGS, np.random.default_rng(0))
    seen = []
    for _ in range(5):
        model.apply(np.zeros(10), [0])
        seen.append(model.taps)
        assert np.linalg.norm(model.taps) == pytest.approx(1.0)
        np.testing.assert_allclose(np.abs(model.taps), np.array(MAGS) / np.linalg.norm(MAGS))
    assert len({np.round(t[1], 6) for t in seen}) == 5


@pytest.mark.parametrize("bad", [[], [0.0, 0.0], [1.0, -0.5], [1.0, float("nan")], [[1.0]]])
def test_frame_multipath_rejects_bad_magnitudes(bad):
    with pytest.raises(ValueError, match="tap magnitudes"):
        FrameMultipath(bad, np.random.default_rng(0))


def tagged_bursts(x, starts, key="packet_len"):
    tags = []
    for s in starts:
        t = gr.tag_t()
        t.offset, t.key, t.value = s, pmt.intern(key), pmt.from_long(100)
        tags.append(t)
    return blocks.vector_source_c(x.astype(np.complex64).tolist(), False, 1, tags)


def test_block_redraws_at_each_tag_and_passes_tags():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(5000) + 1j * rng.standard_normal(5000)
    starts = [0, 1200, 2500, 4100]
    tb = gr.top_block()
    block = frame_multipath_cc(MAGS, 11)
    sink = blocks.vector_sink_c()
    tb.connect(tagged_bursts(x, starts), block, sink)
    tb.run()
    got = np.array(sink.data())
    # the first tag at sample 0 redraws too: the reference's first frame is the second draw
    rng_ref = np.random.default_rng(11)
    random_taps(MAGS, rng_ref)
    expect = np.empty(x.size, complex)
    edges = starts + [x.size]
    for a, b in zip(edges[:-1], edges[1:]):
        expect[a:b] = np.convolve(x, random_taps(MAGS, rng_ref))[a:b]
    np.testing.assert_allclose(got, expect, atol=1e-5)
    assert block.frames == len(starts)
    assert sorted(t.offset for t in sink.tags() if pmt.symbol_to_string(t.key) == "packet_len") == starts


def test_block_with_one_frame_equals_stock_fir_filter():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(3000) + 1j * rng.standard_normal(3000)).astype(np.complex64)
    block = frame_multipath_cc(MAGS, 4)
    tb = gr.top_block()
    ours, stock = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect(tagged_bursts(x, [0]), block, ours)
    tb.run()
    taps = block.taps       # the taps the tag at 0 drew
    tb = gr.top_block()
    tb.connect(blocks.vector_source_c(x.tolist()), gr_filter.fir_filter_ccc(1, taps.astype(np.complex64).tolist()),
               stock)
    tb.run()
    np.testing.assert_allclose(np.array(ours.data()), np.array(stock.data()), atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(seed=-1), dict(seed=1.5), dict(seed=True), dict(length_tag=""),
                                    dict(magnitudes=[])])
def test_block_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        frame_multipath_cc(**{"magnitudes": MAGS, **kwargs})
