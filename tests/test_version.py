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


def test_the_build_records_the_commit_it_was_built_from():
    from gnuradio.semcom.core.version import build_commit
    commit = build_commit()
    if (REPO / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", commit)
        assert commit.split("+")[0] == git_commit(REPO / "CMakeLists.txt").split("+")[0]
