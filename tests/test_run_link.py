"""apps/run_link.py: outputs, JSON lines, and one clear line for every bad argument."""

import csv
import json
import subprocess
import sys

import pytest

from conftest import REPO, needs_mnist

APP = REPO / "apps" / "run_link.py"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, str(APP), "--no-progress", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def test_batch_run_writes_everything(tmp_path):
    out = tmp_path / "out"
    res = run("--dataset", "sample", "--images", "16", "--engine", "batch", "--channel", "awgn,rayleigh",
              "--snr", "0,20", "--sinr", "inf,0", "--json", "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 8
    required = {"receiver", "channel", "snr_db", "sinr_db", "images", "cbr", "psnr_db", "ssim", "lpips",
                "latent_mse_db", "nfe", "seconds", "images_per_s"}
    for r in rows:
        assert required <= set(r)
        assert r["images"] == 16 and r["cbr"] == pytest.approx(1 / 6, abs=1e-5)
    by = {(r["channel"], r["snr_db"], r["sinr_db"]): r for r in rows}
    for ch in ("awgn", "rayleigh"):
        assert by[(ch, 20.0, None)]["psnr_db"] > by[(ch, 0.0, None)]["psnr_db"]
        assert by[(ch, 20.0, None)]["psnr_db"] > by[(ch, 20.0, 0.0)]["psnr_db"]
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    for name in ("psnr_mmse_awgn.png", "psnr_mmse_rayleigh.png", "ssim_mmse_awgn.png", "grid_awgn.png",
                 "grid_rayleigh.png", "results.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".tmp_*"))


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagenet"], "unknown dataset"),
    pytest.param(["--dataset", "mnist", "--user-model", "jscc_user_awgn_k512"], "takes images of shape",
                 marks=needs_mnist),
    (["--snr", "10,,20"], "malformed"),
    (["--snr", "ten"], "not a dB value"),
    (["--snr", "0:20:-5"], "malformed range"),
    (["--sinr", "nan"], "not a dB value"),
    (["--channel", "rician"], "unknown channel"),
    (["--receiver", "magic"], "unknown receiver"),
    (["--receiver", "icdm", "--receiver-options", "steps"], "NAME=VALUE"),
    (["--receiver", "icdm", "--receiver-options", "stepz=3"], "no listed receiver has an option"),
    (["--receiver", "icdm", "--receiver-options", "cddm.steps=3"], "not among --receiver"),
    (["--receiver", "cddm", "--receiver-options", "steps=many"], "must be a int"),
    (["--receiver", "icdm", "--k", "256"], "no shipped diffusion prior"),
    (["--images", "100000"], "has only"),
    (["--k", "300"], "no shipped model"),
    (["--snr", "0", "--sinr", "5"], "no operating point"),
])
def test_bad_arguments_one_line_exit_2_nothing_written(tmp_path, args, message):
    out = tmp_path / "out"
    res = run(*args, "--out", str(out))
    assert res.returncode == 2
    lines = [l for l in res.stderr.splitlines() if l.startswith("run_link.py: error")]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run("--out", str(blocker / "sub"))
    assert res.returncode == 2 and "not a writable directory" in res.stderr


def test_diffusion_receivers_on_both_engines(tmp_path):
    """cddm and icdm run end to end on both engines; options reach the receiver (NFE)."""
    for engine in ("batch", "gnuradio"):
        res = run("--dataset", "sample", "--images", "4", "--engine", engine, "--snr", "20", "--sinr", "0",
                  "--receiver", "mmse,cddm,icdm", "--receiver-options", "steps=3,icdm.zeta_i=0.5",
                  "--no-lpips", "--json", "--out", str(tmp_path / engine))
        assert res.returncode == 0, res.stderr
        rows = {r["receiver"]: r for r in map(json.loads, res.stdout.splitlines())}
        assert rows["mmse"]["nfe"] == 0 and rows["icdm"]["nfe"] == 6 and 1 <= rows["cddm"]["nfe"] <= 3
        assert all(r["images"] == 4 and r["lost"] == 0 for r in rows.values())
