"""Shared test set-up: GNU Radio tests run against the module installed in .venv."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

# Qt GUI blocks abort without a display; offscreen makes them run headless.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(1234)
