"""The module's version (kept equal to CMakeLists.txt's VERSION_*; a test checks), the git
commit the installed module was built from, and run_record: what a result records so that
it can be reproduced (run_link's rows, the image sink's summary.json)."""

import math
from typing import Optional

__version__ = "1.0.0"


def build_commit() -> Optional[str]:
    """The commit this installed module was built from ("+dirty": with uncommitted changes),
    written by the build into core/build_info.py; None when run from an uninstalled copy."""
    try:
        from .build_info import COMMIT
    except ImportError:
        return None
    return COMMIT


def run_record(run_info) -> dict:
    """What reproduces a run: `run_info` as given (receiver, receiver_options, channel,
    coherence, snr_db, sinr_db, user_model, interferer_model, k, seed, server, dataset, ...)
    with an infinite SINR as null (no interferer; the interferer model then null too), an
    empty server as null, and the module's version and build commit. (schemes.run_record
    also resolves a scheme's options against its defaults.)"""
    run = dict(run_info or {})
    if "sinr_db" in run and run["sinr_db"] is not None and math.isinf(float(run["sinr_db"])):
        run["sinr_db"] = None
        if "interferer_model" in run:
            run["interferer_model"] = None  # none sent
    if "server" in run:
        run["server"] = run["server"] or None
    run.update(version=__version__, commit=build_commit())
    return run
