"""The module's version (kept equal to CMakeLists.txt's VERSION_*; a test checks) and the
git commits that results record, so that a row says what produced it."""

import subprocess
from pathlib import Path
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


def git_commit(path) -> Optional[str]:
    """The commit of the git checkout holding the file `path` ("+dirty" with uncommitted
    changes to tracked files), or None outside a checkout or without git."""
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(Path(path).resolve().parent), *args], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()
        commit = git("rev-parse", "--short=12", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None
