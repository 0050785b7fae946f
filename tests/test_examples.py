"""Every example flowgraph compiles with grcc; no-GUI ones run headless to completion."""

import os
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO

EXAMPLES = sorted((REPO / "grc" / "examples").glob("*.grc"))


def generate_options(path):
    return yaml.safe_load(path.read_text())["options"]["parameters"]["generate_options"]


def compile_grc(path, out_dir):
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"))
    res = subprocess.run(["grcc", "-o", str(out_dir), str(path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    script = out_dir / (yaml.safe_load(path.read_text())["options"]["parameters"]["id"] + ".py")
    assert script.exists()
    return script


def test_examples_exist():
    assert any(generate_options(p) == "no_gui" for p in EXAMPLES)
    assert any(generate_options(p) == "qt_gui" for p in EXAMPLES)


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


@pytest.mark.parametrize("receiver", ["cddm", "icdm"])
def test_image_link_example_with_a_diffusion_receiver(receiver, tmp_path):
    """The same no-GUI image-link flowgraph with the receiver chosen on its command line."""
    import json
    script = compile_grc(REPO / "grc" / "examples" / "image_link_nogui.grc", tmp_path)
    res = subprocess.run([sys.executable, str(script), "-r", receiver], capture_output=True, cwd=tmp_path,
                         text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((tmp_path / "image_link_results" / "summary.json").read_text())
    assert summary["images"] == summary["received"] == 32 and summary["missing"] == 0
