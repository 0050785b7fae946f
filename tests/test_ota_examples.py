"""The over-the-air example flowgraphs (grc/examples/ota/): all compile with grcc; the
hardware-free pair runs in two processes joined by ZeroMQ IQ and delivers every image, both
ending by themselves; the USRP and SoapySDR ones, with no radio attached, stop with one line
that says what to do (device args type=b200 keep UHD from probing the network)."""

import json
import subprocess
import sys
import time

import pytest

from conftest import REPO
from test_examples import compile_grc, printed_json

OTA = sorted((REPO / "grc" / "examples" / "ota").glob("*.grc"))
RADIOS = [p for p in OTA if "usrp" in p.name or "soapy" in p.name]


def test_ota_examples_exist():
    names = {p.stem for p in OTA}
    assert {"ofdm_usrp_tx", "ofdm_usrp_rx", "ofdm_soapy_tx", "ofdm_soapy_rx", "ofdm_zmq_tx", "ofdm_zmq_rx"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", RADIOS, ids=lambda p: p.name)
def test_radio_flowgraph_without_a_radio_stops_with_one_line(path, tmp_path):
    script = compile_grc(path, tmp_path)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    lines = [line for line in (res.stdout + res.stderr).splitlines() if line.strip() and "[INFO] [UHD]" not in line]
    assert len(lines) == 1, lines                 # UHD's own version banner aside
    assert lines[0].startswith("no USRP found" if "usrp" in path.name else "no SoapySDR device found")
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_zmq_two_process_link_delivers_every_image_and_ends(tmp_path):
    rx_script = compile_grc(REPO / "grc" / "examples" / "ota" / "ofdm_zmq_rx.grc", tmp_path)
    tx_script = compile_grc(REPO / "grc" / "examples" / "ota" / "ofdm_zmq_tx.grc", tmp_path)
    port = 5590 + (int(time.time()) % 200)
    address = f"tcp://127.0.0.1:{port}"
    rx = subprocess.Popen([sys.executable, str(rx_script), "--images", "6", "--address", address, "--idle", "30",
                           "--out", "res"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL)
    try:
        tx = subprocess.run([sys.executable, str(tx_script), "--images", "6", "--address", address, "--snr", "20"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        assert tx.returncode == 0, tx.stderr[-2000:]
        out, err = rx.communicate(timeout=120)
    finally:
        if rx.poll() is None:
            rx.kill()
    assert rx.returncode == 0, err[-2000:]
    summary = printed_json(out)
    assert summary["images"] == summary["received"] == 6 and summary["missing"] == 0
    assert summary["phy"] == {"frames": 6, "crc_failures": 0, "lost": 0, "errors": 0}
    assert summary["psnr_db"] > 25
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["received"] == 6
