"""The Python package's version is the CMake project's; the build records its git commit."""

import re
import subprocess

from gnuradio.semcom.core.version import __version__, build_commit

from conftest import REPO


def test_version_matches_cmake():
    text = (REPO / "CMakeLists.txt").read_text()
    parts = [re.search(rf"set\(VERSION_{p}\s+(\d+)\)", text).group(1) for p in ("MAJOR", "API", "ABI")]
    assert __version__ == ".".join(parts)


def checkout_commit():
    """git's own answer: HEAD, "+dirty" with uncommitted changes to tracked files; None
    outside a checkout."""
    git = lambda *args: subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    head = git("rev-parse", "--short=12", "HEAD")
    if head.returncode:
        return None
    return head.stdout.strip() + ("+dirty" if git("status", "--porcelain", "--untracked-files=no").stdout.strip()
                                  else "")


def test_the_build_records_the_commit_it_was_built_from(tmp_path):
    """The build step that writes core/build_info.py names the checkout's commit; the
    installed module reports what its build wrote."""
    out = tmp_path / "build_info.py"
    subprocess.run(["cmake", f"-DSRC={REPO}", f"-DOUT={out}", "-P",
                    str(REPO / "cmake" / "Modules" / "semcomBuildInfo.cmake")], check=True, timeout=60)
    namespace = {}
    exec(out.read_text(), namespace)
    assert namespace["COMMIT"] == checkout_commit()
    installed = build_commit()
    assert installed is None or re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", installed)
