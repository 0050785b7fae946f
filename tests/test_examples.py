"""Every example flowgraph compiles with grcc; no-GUI ones run headless to completion."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from conftest import GRC_BLOCKS, REPO

EXAMPLES = sorted((REPO / "grc" / "examples").glob("*.grc"))


def generate_options(path):
    return yaml.safe_load(path.read_text())["options"]["parameters"]["generate_options"]


def compile_grc(path, out_dir):
    env = dict(os.environ, GRC_BLOCKS_PATH=str(GRC_BLOCKS))
    res = subprocess.run(["grcc", "-o", str(out_dir), str(path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    script = out_dir / (yaml.safe_load(path.read_text())["options"]["parameters"]["id"] + ".py")
    assert script.exists()
    return script


def test_examples_exist():
    assert any(generate_options(p) == "no_gui" for p in EXAMPLES)
    assert any(generate_options(p) == "qt_gui" for p in EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles_and_runs(path, tmp_path):
    script = compile_grc(path, tmp_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    # grcc writes '#!/usr/bin/env python3', which may not be the interpreter with GNU Radio.
    if generate_options(path) == "no_gui":
        res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, cwd=tmp_path,
                             text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    else:
        # A GUI flowgraph runs until closed: it must come up and keep running offscreen.
        proc = subprocess.Popen([sys.executable, str(script)], env=env, stdin=subprocess.DEVNULL, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(4)
            assert proc.poll() is None, proc.communicate()[1][-2000:]
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("receiver, options", [("cddm", ""), ("icdm", ""), ("cdiff", "steps=4,sampler=ddim")])
def test_image_link_example_with_a_diffusion_receiver(receiver, options, tmp_path):
    """The same no-GUI image-link flowgraph with the scheme chosen on its command line (each
    with its own model: cdiff sends its own encoder's symbols)."""
    import json
    script = compile_grc(REPO / "grc" / "examples" / "image_link_nogui.grc", tmp_path)
    res = subprocess.run([sys.executable, str(script), "-r", receiver] + (["--receiver-options", options] if options else []),
                         capture_output=True, cwd=tmp_path, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((tmp_path / "image_link_results" / "summary.json").read_text())
    assert summary["images"] == summary["received"] == 32 and summary["missing"] == 0
    assert summary["run"]["receiver"] == receiver and summary["run"]["receiver_options"]["steps"] >= 1


# Drives a GUI flowgraph the way a user does: slider values go through the Qt widgets, so a
# setter that raises aborts the process (PyQt5 turns an exception in a slot into abort(), rc 134).
GUI_DRIVER = r'''
import importlib.util, json, sys, time
from PyQt5 import Qt
app = Qt.QApplication([])
script, cls_name, count_expr = sys.argv[1:4]
spec = importlib.util.spec_from_file_location(cls_name, script)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tb = getattr(module, cls_name)(**json.loads(sys.argv[4]))
count = lambda: eval(count_expr)

def more(n, timeout=90):
    target, deadline = count() + n, time.time() + timeout
    while count() < target:
        app.processEvents()
        time.sleep(0.02)
        if time.time() > deadline:
            sys.exit(f"stalled: {count()} received, waited for {target}")

def slide(name, value):  # through the widget, as a user moves the slider
    getattr(tb, f"_{name}_win").d_widget.counter.setValue(value)
    app.processEvents()

tb.start()
more(2)
state = []
for name, value in (("sinr_db", 20), ("snr_db", 3), ("sinr_db", 25), ("snr_db", 15), ("sinr_db", 5)):
    slide(name, value)
    more(2)
    state.append([tb.channel.snr_db(), tb.channel.sinr_db()]
                 + ([tb.rx.point.snr_db, tb.rx.point.sinr_db] if hasattr(tb, "rx") else []))
tb.stop()
tb.wait()
print("STATE " + json.dumps(state))
'''

# (SNR, SINR) in use after each slider move above: SINR is clamped to SNR while above it
# and comes back when the SNR rises again; channel and receiver agree.
EXPECTED_GUI_STATE = [(10, 10), (3, 3), (3, 3), (15, 15), (15, 5)]


@pytest.mark.slow
@pytest.mark.parametrize("name, cls_args, count_expr", [
    ("image_link_gui", {"receiver": "cddm"}, "len(tb.sink.received)"),
    ("link_gaussian_gui", {}, "tb.received.num_messages()"),
])
def test_gui_sliders_may_cross(name, cls_args, count_expr, tmp_path):
    """Moving SNR below SINR (and back) neither aborts the GUI nor stalls the link: the channel
    and the receiver use SINR = SNR while the SINR slider is above, and images keep coming."""
    script = compile_grc(REPO / "grc" / "examples" / f"{name}.grc", tmp_path)
    driver = tmp_path / "drive.py"
    driver.write_text(GUI_DRIVER)
    res = subprocess.run([sys.executable, str(driver), str(script), name, count_expr, json.dumps(cls_args)],
                         env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), capture_output=True, text=True,
                         cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"rc {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    state = json.loads(next(l for l in res.stdout.splitlines() if l.startswith("STATE "))[6:])
    for got, (snr, sinr) in zip(state, EXPECTED_GUI_STATE):
        assert got == [snr, sinr] * (len(got) // 2)
    assert "SINR 20 dB is above SNR 10 dB" in res.stdout + res.stderr  # logged, not raised


def blocks_yml():
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(GRC_BLOCKS.glob("semcom_*.block.yml"))}


def test_only_the_cpp_blocks_claim_cpp():
    """Python blocks (hier and PDU blocks) have no C++ side: no cpp flag, no cpp_templates.
    The C++ blocks' templates find and link this module's library."""
    cpp = {name for name, block in blocks_yml().items() if "cpp" in block.get("flags", [])}
    assert cpp == {"semcom_fading_interference_channel_cc.block.yml", "semcom_fading_source_c.block.yml",
                   "semcom_mmse_equalizer_cc.block.yml"}
    for name, block in blocks_yml().items():
        assert ("cpp_templates" in block) == (name in cpp), name
        if name in cpp:
            assert block["cpp_templates"]["packages"] == ["gnuradio-semcom"], name
            assert block["cpp_templates"]["link"] == ["gnuradio::gnuradio-semcom"], name


# Stock sources -> channel (default SINR: inf, no interferer) -> equalizer -> head -> file.
CPP_FLOWGRAPH = """
options:
  parameters: {id: cpp_link, title: C++ channel and equalizer, output_language: cpp, generate_options: no_gui,
    gen_cmake: 'On', gen_linking: dynamic, cmake_opt: '', run: 'True', run_options: run}
  states: {coordinate: [8, 8], rotation: 0, state: enabled}
blocks:
- name: z
  id: analog_sig_source_x
  parameters: {type: complex, samp_rate: '32000', waveform: analog.GR_COS_WAVE, freq: '1000', amp: '1',
    offset: '0', phase: '0'}
  states: {coordinate: [8, 100], rotation: 0, state: enabled}
- name: u
  id: analog_sig_source_x
  parameters: {type: complex, samp_rate: '32000', waveform: analog.GR_COS_WAVE, freq: '300', amp: '1',
    offset: '0', phase: '0'}
  states: {coordinate: [8, 200], rotation: 0, state: enabled}
- name: channel
  id: semcom_fading_interference_channel_cc
  parameters: {channel_type: '"awgn"', snr_db: '10'}
  states: {coordinate: [200, 150], rotation: 0, state: enabled}
- name: equalizer
  id: semcom_mmse_equalizer_cc
  parameters: {signal_power: '1.0', noise_var: '0.1'}
  states: {coordinate: [400, 150], rotation: 0, state: enabled}
- name: head
  id: blocks_head
  parameters: {type: complex, num_items: '100000', vlen: '1'}
  states: {coordinate: [600, 150], rotation: 0, state: enabled}
- name: zhat
  id: blocks_file_sink
  parameters: {type: complex, file: zhat.bin, vlen: '1', unbuffered: 'False', append: 'False'}
  states: {coordinate: [800, 150], rotation: 0, state: enabled}
- name: w
  id: blocks_null_sink
  parameters: {type: complex, vlen: '1', num_inputs: '1'}
  states: {coordinate: [600, 250], rotation: 0, state: enabled}
connections:
- [z, '0', channel, '0']
- [u, '0', channel, '1']
- [channel, '0', equalizer, '0']
- [channel, '1', equalizer, '1']
- [equalizer, '0', head, '0']
- [equalizer, '1', w, '0']
- [head, '0', zhat, '0']
metadata: {file_format: 1, grc_version: 3.10.5.1}
"""


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("g++")), reason="needs cmake and g++")
def test_cpp_flowgraph_builds_and_runs(tmp_path):
    """grcc's C++ output of the C++ blocks (GNU Radio's dev files and this module's installed
    CMake config and library) builds, and the binary runs: the default SINR, Python's
    float('inf'), reaches C++ as infinity (no interferer), not as a number or a compile error."""
    import numpy as np
    grc = tmp_path / "cpp_link.grc"
    grc.write_text(CPP_FLOWGRAPH)
    env = dict(os.environ, GRC_BLOCKS_PATH=str(GRC_BLOCKS))
    res = subprocess.run(["grcc", "-o", str(tmp_path), str(grc)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    project = tmp_path / "cpp_link"
    assert "std::numeric_limits<double>::infinity()" in (project / "cpp_link.cpp").read_text()
    for cmd in (["cmake", "-S", str(project), "-B", str(project / "build"), f"-DCMAKE_PREFIX_PATH={sys.prefix}",
                 "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", str(project / "build"), "-j2"]):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    res = subprocess.run([str(project / "build" / "cpp_link")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    zhat = np.fromfile(tmp_path / "zhat.bin", np.complex64)
    assert zhat.size == 100000
    # AWGN, SNR 10 dB, unit-power tone, no interferer: zhat = (z + n) / 1.1, power 1.1 / 1.21.
    assert np.mean(np.abs(zhat) ** 2) == pytest.approx(1.1 / 1.21, rel=0.02)


def printed_json(stdout):
    """The JSON object a flowgraph printed last (its summary), from its '{' line on."""
    lines = stdout.splitlines()
    start = len(lines) - 1 - lines[::-1].index("{")
    return json.loads("\n".join(lines[start:]))


@pytest.mark.slow
def test_a_flowgraph_variable_reaches_every_channel_type_parameter():
    """An enum parameter silently falls back to its default when given a variable (the examples'
    --channel ran AWGN whatever was asked): channel_type is an editable list in every block."""
    for name, block in blocks_yml().items():
        for param in block.get("parameters", []):
            if param["id"] == "channel_type":
                assert param["dtype"] == "string", name


def test_nogui_examples_take_options_and_print_their_summary(tmp_path):
    script = compile_grc(REPO / "grc" / "examples" / "image_link_nogui.grc", tmp_path)
    assert "fading_interference_channel_cc(channel," in script.read_text()   # --channel reaches the channel
    res = subprocess.run([sys.executable, str(script), "--snr", "12", "--sinr", "inf", "--channel", "rayleigh",
                          "--coherence", "8", "--images", "6", "--seed", "4", "--out", "res", "-r", "cddm",
                          "--receiver-options", "steps=2"],
                         capture_output=True, cwd=tmp_path, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    printed = printed_json(res.stdout)
    written = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert printed == {k: v for k, v in written.items() if k != "per_image"}
    assert printed["images"] == printed["received"] == 6
    run = printed["run"]
    assert {k: run[k] for k in ("receiver", "channel", "coherence", "snr_db", "sinr_db", "seed", "k",
                                "user_model", "interferer_model", "server", "images_requested")} == {
        "receiver": "cddm", "channel": "rayleigh", "coherence": 8, "snr_db": 12.0, "sinr_db": None, "seed": 4,
        "k": 512, "user_model": "jscc_user_rayleigh_k512", "interferer_model": None,  # none sent
        "server": None, "images_requested": 6}
    assert run["receiver_options"]["steps"] == 2 and "order" in run["receiver_options"]  # resolved
    assert run["version"]

    script = compile_grc(REPO / "grc" / "examples" / "link_gaussian_nogui.grc", tmp_path)
    res = subprocess.run([sys.executable, str(script), "--snr", "20", "--sinr", "0", "--channel", "awgn",
                          "--count", "20", "--seed", "1"],
                         capture_output=True, cwd=tmp_path, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    printed = printed_json(res.stdout)
    assert printed["latents"] == printed["sent"] == 20 and printed["missing"] == 0
    assert printed["latent_mse_db"] == pytest.approx(printed["closed_form_db"], abs=0.5)
    assert {k: printed["run"][k] for k in ("channel", "snr_db", "sinr_db", "count", "seed")} == {
        "channel": "awgn", "snr_db": 20.0, "sinr_db": 0.0, "count": 20, "seed": 1}
