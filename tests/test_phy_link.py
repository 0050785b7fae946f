"""The OFDM link in the batch engine (phy/link.py through schemes/link_sim.py): images sent in
OFDM frames through known multipath, received with the PHY's estimated CSI, land within
1 dB PSNR of the same receiver given the true channel (genie), with mmse and icdm."""

import math

import numpy as np
import pytest

from gnuradio.semcom.core import metrics
from gnuradio.semcom.core.data import to_tensor
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.models import default_models
from gnuradio.semcom.inference import get_backend
from gnuradio.semcom.phy import sim
from gnuradio.semcom.phy.link import OfdmChannel, parse_taps, send_frames
from gnuradio.semcom.schemes.link_sim import OfdmLink, simulate

from conftest import DATA, needs_cifar10

CHANNELS = {"flat": (1.0,), "3-tap": (1.0, 0.6, 0.3)}


def psnr(images, csi, taps, snr, receiver, sinr=math.inf):
    user, interferer = default_models("awgn", 512)
    res = simulate(get_backend("", "cpu"), images, "awgn", snr, sinr, user, interferer if math.isfinite(sinr) else None,
                   receiver, seed=5, phy=OfdmLink(OfdmChannel(taps), csi))
    assert len(res.kept) == len(images) and len(res.snr_est_db) == len(images)
    return metrics.psnr(to_tensor(res.received), to_tensor(images)).mean().item(), res


@needs_cifar10
@pytest.mark.parametrize("taps", list(CHANNELS))
@pytest.mark.parametrize("snr", [10.0, 20.0])
def test_estimated_csi_within_1_db_of_genie_mmse(taps, snr):
    images = load_dataset(f"npz:{DATA / 'cifar10_test.npz'}[:24]").images
    genie, res_g = psnr(images, "genie", CHANNELS[taps], snr, "mmse")
    est, res_e = psnr(images, "estimated", CHANNELS[taps], snr, "mmse")
    assert est > genie - 1.0, (genie, est)
    assert est < genie + 0.3            # the truth is not beaten by more than the draws' noise
    assert abs(metrics.db_mean(res_e.snr_est_db) - snr) < 0.7


@pytest.mark.slow
@needs_cifar10
@pytest.mark.parametrize("taps", list(CHANNELS))
@pytest.mark.parametrize("snr", [10.0, 20.0])
def test_estimated_csi_within_1_db_of_genie_icdm(taps, snr):
    images = load_dataset(f"npz:{DATA / 'cifar10_test.npz'}[:16]").images
    genie, _ = psnr(images, "genie", CHANNELS[taps], snr, "icdm", sinr=5.0)
    est, _ = psnr(images, "estimated", CHANNELS[taps], snr, "icdm", sinr=5.0)
    assert est > genie - 1.0, (genie, est)


def test_genie_reports_the_true_operating_point_and_estimates_come_close():
    rng = np.random.default_rng(0)
    z, u = sim.unit_symbols((20, 512), rng), sim.unit_symbols((20, 512), rng)
    ch = OfdmChannel((1.0,))
    genie = send_frames(z, u, 20.0, 0.0, ch, "genie", np.random.default_rng(1))
    est = send_frames(z, u, 20.0, 0.0, ch, "estimated", np.random.default_rng(1))
    assert all(abs(p.snr_db - 20.0) < 1e-6 and abs(p.sinr_db - 0.0) < 0.05 for p in genie)   # flat: exact
    assert abs(np.mean([p.sinr_db for p in est]) - 0.0) < 1.0
    assert abs(np.mean([p.snr_db for p in est]) - 20.0) < 0.5
    # the same frames: estimated and true channels agree to the estimate's noise
    err = np.mean([np.mean(np.abs(e.h - g.h) ** 2) for e, g in zip(est, genie)])
    assert err < 0.01        # the LS estimate's noise at 20 dB, smoothed: about 0.002


def test_bad_taps_are_one_clear_error():
    for text in ("", "a,b", "0,0", "-1", "nan", ",".join(["1"] * 18)):
        with pytest.raises(ValueError):
            parse_taps(text)
    assert parse_taps("1, 0.5") == (1.0, 0.5)
    with pytest.raises(ValueError, match="csi"):
        send_frames(np.ones((1, 48)), None, 10.0, math.inf, OfdmChannel(), "perfect", np.random.default_rng(0))


@pytest.mark.slow
@needs_cifar10
def test_flowgraph_engine_over_the_phy_agrees_with_the_batch_engine():
    """run_link's two engines over the OFDM PHY, flat channel, estimated CSI, with the
    co-channel interferer at SINR 5 dB and a frequency offset on the flowgraph (its sync and
    per-frame correction take it out): every image arrives, and PSNR, SNR and SINR estimates
    agree within the draws' noise."""
    import json
    import subprocess
    import sys
    from conftest import REPO
    common = ["--dataset", f"npz:{DATA / 'cifar10_test.npz'}[:24]", "--snr", "20", "--sinr", "inf,5",
              "--receiver", "mmse", "--phy", "ofdm", "--json", "--no-progress", "--no-lpips", "--seed", "2"]
    rows = {}
    for engine, extra in (("batch", []), ("gnuradio", ["--cfo", "0.2"])):
        res = subprocess.run([sys.executable, str(REPO / "apps" / "run_link.py"), "--engine", engine, "--out",
                              f"/tmp/phy_engines_{engine}"] + common + extra,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        rows[engine] = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    for b, g in zip(rows["batch"], rows["gnuradio"]):
        assert g["images"] == b["images"] == 24 and g["lost"] == 0
        assert g["csi"] == "estimated" and g["phy"] == "ofdm"
        assert abs(g["psnr_db"] - b["psnr_db"]) < 1.0, (g["psnr_db"], b["psnr_db"])
        assert abs(g["snr_est_db"] - 20.0) < 1.0
        expected_sinr = 20.0 if g["sinr_db"] is None else 5.0
        assert abs(g["sinr_est_db"] - expected_sinr) < 1.5, g["sinr_est_db"]
