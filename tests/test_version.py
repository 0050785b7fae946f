"""The Python package's version is the CMake project's."""

import re

from gnuradio.semcom.core.version import __version__, git_commit

from conftest import REPO


def test_version_matches_cmake():
    text = (REPO / "CMakeLists.txt").read_text()
    parts = [re.search(rf"set\(VERSION_{p}\s+(\d+)\)", text).group(1) for p in ("MAJOR", "API", "ABI")]
    assert __version__ == ".".join(parts)


def test_git_commit_of_a_checkout_and_of_none(tmp_path):
    commit = git_commit(REPO / "apps" / "run_link.py")
    if (REPO / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", commit)
    assert git_commit(tmp_path / "nowhere.py") is None


def test_the_build_records_the_commit_it_was_built_from(tmp_path):
    """The build step that writes core/build_info.py names the checkout's commit; the
    installed module reports what its build wrote."""
    import subprocess
    from gnuradio.semcom.core.version import build_commit
    out = tmp_path / "build_info.py"
    subprocess.run(["cmake", f"-DSRC={REPO}", f"-DOUT={out}", "-P",
                    str(REPO / "cmake" / "Modules" / "semcomBuildInfo.cmake")], check=True, timeout=60)
    namespace = {}
    exec(out.read_text(), namespace)
    assert namespace["COMMIT"] == git_commit(REPO / "CMakeLists.txt")  # None outside a checkout
    installed = build_commit()
    assert installed is None or re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", installed)
