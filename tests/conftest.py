"""Shared test set-up: GNU Radio tests run against the module installed in .venv."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# The block yml as installed with the module: the static ones and those the build makes from
# grc/*.block.yml.in (scheme lists filled from the registry). grcc reads them from here.
GRC_BLOCKS = Path(sys.prefix) / "share" / "gnuradio" / "grc" / "blocks"

# Tests on the real datasets of ../shared/data (present in development and CI) skip, with
# this reason, where that folder is absent.
needs_cifar10 = pytest.mark.skipif(not (DATA / "cifar10_test.npz").is_file(),
                                   reason=f"{DATA}/cifar10_test.npz not available")
needs_mnist = pytest.mark.skipif(not (DATA / "mnist_test.npz").is_file(),
                                 reason=f"{DATA}/mnist_test.npz not available")

# Qt GUI blocks abort without a display; offscreen makes them run headless.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(1234)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end run (a subprocess, a whole flowgraph, a spawned "
                                       "server); `pytest -m 'not slow'` is the quick loop, CI runs everything")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Apps run in-process (train_jscc --threads 2, the server's --threads) set torch's
    thread count for the whole process; give each test the count it started with (on a busy
    2-core machine an oversubscribed MKL eigh can take 50 times as long)."""
    import torch
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


CDIFF_TEST_T = 10


@pytest.fixture(scope="module")
def cdiff_systems(tmp_path_factory):
    """{system: path} of tiny untrained CDiff-family systems saved to disk (k 128 with a head at
    64 too; the cdiff one with a T = CDIFF_TEST_T schedule)."""
    import torch
    from gnuradio.semcom.nets import cdiff as nets
    folder = tmp_path_factory.mktemp("cdiff")
    out = {}
    for system in nets.SYSTEMS:
        torch.manual_seed(0)
        cfg = nets.SystemConfig(system=system,
                                encoder=nets.EncoderConfig(ks=(64, 128), widths=(4, 8, 8, 4), variational=system == "vae"),
                                unet=nets.UNetConfig(dim=6, mults=(1, 2), heads=1, head_dim=4) if system == "cdiff" else None)
        nets.save_system(folder / system, nets.CDiffSystem(cfg), {"training_command": "test"},
                         nets.schedule_dict(CDIFF_TEST_T, 0.02, 0.2) if system == "cdiff" else None)
        out[system] = str(folder / system)
    return out
