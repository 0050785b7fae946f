"""fading_source_c and the channel's optional input 2 (the user's fading h from outside):
a precoder and the channel see the same h for the same symbol."""

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pmt
import pytest
import yaml
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core.channel import link_powers

from conftest import GRC_BLOCKS, REPO

N = 400_000


def db(x):
    return 10 * math.log10(x)


def unit(n, seed):
    r = np.random.default_rng(seed)
    return ((r.standard_normal(n) + 1j * r.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)


def source_output(channel_type, coherence, seed, n):
    tb = gr.top_block()
    src = semcom.fading_source_c(channel_type, coherence, seed)
    head, sink = blocks.head(gr.sizeof_gr_complex, n), blocks.vector_sink_c()
    tb.connect(src, head, sink)
    tb.run()
    return np.array(sink.data())


def run_channel(ch, z, u, h=None, tags2=()):
    """z, u (and h on input 2 when given) through the channel: (y, CSI output)."""
    tb = gr.top_block()
    tb.connect(blocks.vector_source_c(z), (ch, 0))
    tb.connect(blocks.vector_source_c(u), (ch, 1))
    if h is not None:
        tb.connect(blocks.vector_source_c(h, False, 1, list(tags2)), (ch, 2))
    y_sink, h_sink = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect((ch, 0), y_sink)
    tb.connect((ch, 1), h_sink)
    tb.run()
    return np.array(y_sink.data()), np.array(h_sink.data()), y_sink, h_sink


# ------------------------------------------------------------------------- fading source

@pytest.mark.parametrize("coherence", [1, 16])
def test_source_rayleigh_statistics_and_coherence(coherence):
    h = source_output("rayleigh", coherence, 3, N)
    assert len(h) == N
    tol = 5 / math.sqrt(N // coherence)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, abs=tol)  # E|h|^2 = 1
    assert abs(np.mean(h)) < tol
    assert np.var(h.real) == pytest.approx(0.5, abs=tol) and np.var(h.imag) == pytest.approx(0.5, abs=tol)
    assert abs(np.mean(h.real * h.imag)) < tol  # circular
    blocks_ = h.reshape(-1, coherence)
    assert np.all(blocks_ == blocks_[:, :1])  # constant within a coherence block
    assert np.all(blocks_[1:, 0] != blocks_[:-1, 0])  # redrawn at each boundary
    if coherence == 1:
        assert abs(np.mean(h[1:] * np.conj(h[:-1]))) < tol  # i.i.d.


def test_source_awgn_is_one():
    assert np.all(source_output("awgn", 1, 0, 5000) == 1)
    assert np.all(source_output("awgn", 8, 0, 5000) == 1)


def test_source_seed_reproducible_and_independent_of_the_channels_draws():
    a, b, c = (source_output("rayleigh", 4, s, 20_000) for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # A channel given the same seed draws other values (the source derives its own stream).
    z = np.zeros(20_000, np.complex64)
    ch = semcom.fading_interference_channel_cc("rayleigh", 4, 10, math.inf, 1.0, 3)
    _, h_ch, *_ = run_channel(ch, z, z)
    assert not np.any(np.isin(a[::4], h_ch[::4]))


@pytest.mark.parametrize("args", [("rician", 1, 0), ("rayleigh", 0, 0), ("awgn", -2, 0)])
def test_source_invalid_parameters_raise(args):
    with pytest.raises(ValueError):
        semcom.fading_source_c(*args)


# --------------------------------------------------------- channel with h from outside

@pytest.mark.parametrize("channel_type", ["awgn", "rayleigh"])
def test_external_h_applied_exactly_without_noise_and_interferer(channel_type):
    """SNR = SINR = inf: y = sqrt(Ps) h z with the h fed in, to float precision; the CSI
    output is that h, bit for bit (also for an AWGN channel: the input wins)."""
    n = 50_000
    z, u = unit(n, 1), unit(n, 2)
    h = source_output("rayleigh", 5, 9, n)
    ch = semcom.fading_interference_channel_cc(channel_type, 3, math.inf, math.inf, 2.0, 1)
    y, h_out, *_ = run_channel(ch, z, u, h)
    assert np.array_equal(h_out, h)
    np.testing.assert_allclose(y, np.float32(math.sqrt(2.0)) * h * z, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("coherence", [1, 32])
@pytest.mark.parametrize("snr_db, sinr_db", [(10.0, math.inf), (15.0, 3.0)])
def test_external_h_statistics(coherence, snr_db, sinr_db):
    z, u = unit(N, 1), unit(N, 2)
    h = source_output("rayleigh", coherence, 5, N)
    ps = 1.5
    ch = semcom.fading_interference_channel_cc("rayleigh", coherence, snr_db, sinr_db, ps, 7)
    y, h_out, *_ = run_channel(ch, z, u, h)
    assert np.array_equal(h_out, h)
    p = link_powers(snr_db, sinr_db, ps)
    residual = y - np.sqrt(ps) * h * z  # sqrt(Pi) g u + n
    assert np.mean(np.abs(residual) ** 2) == pytest.approx(p.noise_var + p.interference_power, rel=0.03)
    sinr = sinr_db if not math.isinf(sinr_db) else snr_db
    assert db(ps * np.mean(np.abs(z) ** 2) / np.mean(np.abs(residual) ** 2)) == pytest.approx(sinr, abs=0.1)
    # The residual is independent of the h fed in (g and n are the channel's own).
    assert abs(np.mean(residual * np.conj(h * z))) < 5 * math.sqrt(np.mean(np.abs(residual) ** 2) / N)


def test_g_and_n_do_not_depend_on_input_2():
    """The channel draws its own h even when h comes from outside: with z = 0 the output
    (sqrt(Pi) g u + n) is bit-identical with and without input 2."""
    n = 30_000
    z, u = np.zeros(n, np.complex64), unit(n, 2)
    mk = lambda: semcom.fading_interference_channel_cc("rayleigh", 8, 12, 4, 1.0, 11)
    y2, *_ = run_channel(mk(), z, u)
    y3, *_ = run_channel(mk(), z, u, source_output("rayleigh", 8, 1, n))
    assert np.array_equal(y2, y3)


def test_tags_on_external_h_are_dropped():
    n = 2000
    tag = lambda off, key: gr.tag_utils.python_to_tag((off, pmt.intern(key), pmt.from_long(off)))
    ch = semcom.fading_interference_channel_cc("awgn", 1, 30, 30, 1.0, 0)
    tb = gr.top_block()
    tb.connect(blocks.vector_source_c(unit(n, 1), False, 1, [tag(0, "packet_len")]), (ch, 0))
    tb.connect(blocks.vector_source_c(unit(n, 2)), (ch, 1))
    tb.connect(blocks.vector_source_c(np.ones(n, np.complex64), False, 1, [tag(5, "h_tag")]), (ch, 2))
    sinks = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect((ch, 0), sinks[0])
    tb.connect((ch, 1), sinks[1])
    tb.run()
    for sink in sinks:
        assert [pmt.symbol_to_string(t.key) for t in sink.tags()] == ["packet_len"]


def test_precoder_and_channel_see_the_same_h():
    """Causal flowgraph: fading_source -> (precoder z/h, channel input 2). Channel inversion at
    infinite SNR gives y = sqrt(Ps) z: the precoder's h and the channel's h are the same
    sample for the same symbol, whatever the scheduler's buffer sizes."""
    n = 200_000
    z = unit(n, 4)
    tb = gr.top_block()
    src = semcom.fading_source_c("rayleigh", 4, 21)
    head = blocks.head(gr.sizeof_gr_complex, n)
    precoder = blocks.divide_cc()
    ch = semcom.fading_interference_channel_cc("rayleigh", 4, math.inf, math.inf, 1.0, 2)
    y_sink, h_sink = blocks.vector_sink_c(), blocks.vector_sink_c()
    tb.connect(src, head)
    tb.connect(blocks.vector_source_c(z), (precoder, 0))
    tb.connect(head, (precoder, 1))
    tb.connect(precoder, (ch, 0))
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), (ch, 1))
    tb.connect(head, (ch, 2))
    tb.connect((ch, 0), y_sink)
    tb.connect((ch, 1), h_sink)
    tb.run()
    y, h = np.array(y_sink.data()), np.array(h_sink.data())
    assert len(y) == n
    np.testing.assert_allclose(y, z, rtol=1e-4, atol=1e-5)
    assert np.array_equal(h, source_output("rayleigh", 4, 21, n))


# ------------------------------------------------------------------ GRC, CMake, exports

def test_grc_yml_and_exports():
    ch = yaml.safe_load((REPO / "grc" / "semcom_fading_interference_channel_cc.block.yml").read_text())
    stream_in = [p for p in ch["inputs"] if p["domain"] == "stream"]
    assert [p["label"] for p in stream_in] == ["z", "u", "h"]
    assert [bool(p.get("optional")) for p in stream_in] == [False, False, True]
    src = yaml.safe_load((REPO / "grc" / "semcom_fading_source_c.block.yml").read_text())
    assert src["id"] == "semcom_fading_source_c" and src["category"] == ch["category"]
    assert [p["id"] for p in src["parameters"]] == ["channel_type", "coherence_len", "seed"]
    assert "semcom.fading_source_c(" in src["templates"]["make"]
    assert "gr::semcom::fading_source_c::make(" in src["cpp_templates"]["make"]
    assert [p["dtype"] for p in src["outputs"]] == ["complex"] and "inputs" not in src
    # grc/CMakeLists.txt installs every *.block.yml; the installed copy is there.
    assert "*.block.yml" in (REPO / "grc" / "CMakeLists.txt").read_text()
    installed = REPO / ".venv" / "share" / "gnuradio" / "grc" / "blocks" / "semcom_fading_source_c.block.yml"
    if installed.parent.is_dir():
        assert installed.read_text() == (REPO / "grc" / "semcom_fading_source_c.block.yml").read_text()
    # The C++ extension's symbols are re-exported by `from .semcom_python import *`.
    from gnuradio.semcom import semcom_python
    assert semcom.fading_source_c is semcom_python.fading_source_c
    assert "fading_source_c" in dir(semcom)


FLOWGRAPH = """
options:
  parameters: {id: precoded_link, title: precoded link, output_language: python, generate_options: no_gui,
    run: 'True', run_options: run, category: Custom}
  states: {coordinate: [8, 8], rotation: 0, state: enabled}
blocks:
- name: h
  id: semcom_fading_source_c
  parameters: {channel_type: '"rayleigh"', coherence_len: '4', seed: '3'}
  states: {coordinate: [8, 100], rotation: 0, state: enabled}
- name: head
  id: blocks_head
  parameters: {type: complex, num_items: '10000', vlen: '1'}
  states: {coordinate: [150, 100], rotation: 0, state: enabled}
- name: z
  id: analog_sig_source_x
  parameters: {type: complex, samp_rate: '32000', waveform: analog.GR_COS_WAVE, freq: '1000', amp: '1',
    offset: '0', phase: '0'}
  states: {coordinate: [8, 200], rotation: 0, state: enabled}
- name: precoder
  id: blocks_divide_xx
  parameters: {type: complex, num_inputs: '2', vlen: '1'}
  states: {coordinate: [300, 150], rotation: 0, state: enabled}
- name: u
  id: blocks_null_source
  parameters: {type: complex, num_outputs: '1', vlen: '1'}
  states: {coordinate: [300, 250], rotation: 0, state: enabled}
- name: channel
  id: semcom_fading_interference_channel_cc
  parameters: {channel_type: '"rayleigh"', coherence_len: '4', snr_db: float('inf'), seed: '1'}
  states: {coordinate: [450, 150], rotation: 0, state: enabled}
- name: y
  id: blocks_file_sink
  parameters: {type: complex, file: y.bin, vlen: '1', unbuffered: 'False', append: 'False'}
  states: {coordinate: [650, 150], rotation: 0, state: enabled}
- name: csi
  id: blocks_null_sink
  parameters: {type: complex, vlen: '1', num_inputs: '1'}
  states: {coordinate: [650, 250], rotation: 0, state: enabled}
connections:
- [h, '0', head, '0']
- [z, '0', precoder, '0']
- [head, '0', precoder, '1']
- [precoder, '0', channel, '0']
- [u, '0', channel, '1']
- [head, '0', channel, '2']
- [channel, '0', y, '0']
- [channel, '1', csi, '0']
metadata: {file_format: 1, grc_version: 3.10.5.1}
"""


@pytest.mark.slow
def test_grc_flowgraph_with_fading_source_and_h_input(tmp_path):
    """The GRC blocks compile (grcc) into a flowgraph that runs: a precoder fed by the Fading
    Source and the channel's optional h input; channel inversion at infinite SNR."""
    grc = tmp_path / "precoded_link.grc"
    grc.write_text(FLOWGRAPH)
    env = dict(os.environ, GRC_BLOCKS_PATH=str(GRC_BLOCKS))
    res = subprocess.run(["grcc", "-o", str(tmp_path), str(grc)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([sys.executable, str(tmp_path / "precoded_link.py")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    y = np.fromfile(tmp_path / "y.bin", np.complex64)
    t = np.arange(10_000) / 32000
    assert y.size == 10_000
    np.testing.assert_allclose(y, np.exp(2j * np.pi * 1000 * t), atol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("g++")), reason="needs cmake and g++")
def test_grc_cpp_flowgraph_with_fading_source_builds_and_runs(tmp_path):
    """grcc's C++ output of the same flowgraph (Fading Source into the precoder and the
    channel's input 2) builds against the installed module and runs: y = z."""
    text = FLOWGRAPH.replace("output_language: python", "output_language: cpp, gen_cmake: 'On', "
                                                        "gen_linking: dynamic, cmake_opt: ''")
    grc = tmp_path / "precoded_link.grc"
    grc.write_text(text)
    env = dict(os.environ, GRC_BLOCKS_PATH=str(GRC_BLOCKS))
    res = subprocess.run(["grcc", "-o", str(tmp_path), str(grc)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    project = tmp_path / "precoded_link"
    cpp = (project / "precoded_link.cpp").read_text()
    assert 'gr::semcom::fading_source_c::make("rayleigh", 4, 3)' in cpp
    assert "connect(this->head, 0, this->channel, 2)" in cpp
    for cmd in (["cmake", "-S", str(project), "-B", str(project / "build"), f"-DCMAKE_PREFIX_PATH={sys.prefix}",
                 "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", str(project / "build"), "-j2"]):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    res = subprocess.run([str(project / "build" / "precoded_link")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    y = np.fromfile(tmp_path / "y.bin", np.complex64)
    t = np.arange(10_000) / 32000
    assert y.size == 10_000
    np.testing.assert_allclose(y, np.exp(2j * np.pi * 1000 * t), atol=1e-3)
