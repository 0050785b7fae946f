"""The newer training apps (apps/train_classifier.py, apps/train_cdiff.py, apps/train_pixel_prior.py) resume to the very
weights of an uninterrupted run, refuse to start over an unfinished run, and save checkpoints
that load (tiny runs: a few steps on a few images)."""

import importlib.util
from pathlib import Path

import pytest
from safetensors.torch import load_file

from gnuradio.semcom.core.checkpoint import CheckpointError

from conftest import needs_cifar10

APPS = Path(__file__).resolve().parents[1] / "apps"


def app(name):
    spec = importlib.util.spec_from_file_location(name, APPS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--epochs", "2", "--max-images", "64", "--max-steps-per-epoch", "2", "--batch-size", "8",
        "--threads", "1", "--no-progress", "--warmup-steps", "1"]
CASES = [("train_classifier", ["--depth", "1", "--monitor-data", "cifar10_test[0:16]", "--eval-data", "cifar10_test[0:16]"]),
         ("train_cdiff", ["--system", "cdiff", "--dim", "6", "--ks", "64", "--steps", "10", "--beta-start", "0.02",
                          "--beta-end", "0.2", "--monitor-data", "cifar10_test[0:4]"]),
         ("train_cdiff", ["--system", "vae", "--ks", "64", "--monitor-data", "cifar10_test[0:4]"]),
         ("train_pixel_prior", ["--dim", "6", "--monitor-data", "cifar10_test[0:8]", "--eval-data", "cifar10_test[0:8]",
                                "--eval-draws", "1"])]


@pytest.mark.slow   # three tiny training runs per case (~20 s)
@needs_cifar10
@pytest.mark.parametrize("name,extra", CASES, ids=["classifier", "cdiff", "cdiff-vae", "pixel-prior"])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, name, extra):
    main = app(name).main
    assert main(TINY + extra + ["--out", str(tmp_path / "whole")]) == 0
    assert main(TINY + extra + ["--out", str(tmp_path / "split"), "--stop-after", "1"]) == 0
    assert (tmp_path / "split.resume.json").is_file() and not (tmp_path / "split.safetensors").exists()
    with pytest.raises(CheckpointError, match="unfinished run"):
        main(TINY + extra + ["--out", str(tmp_path / "split")])
    assert main(TINY + extra + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    assert not (tmp_path / "split.resume.json").exists()
    whole, split = load_file(str(tmp_path / "whole.safetensors")), load_file(str(tmp_path / "split.safetensors"))
    assert whole.keys() == split.keys()
    assert all(whole[k].equal(split[k]) for k in whole)
