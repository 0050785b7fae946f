"""Atomic file writes (GNU Radio-free, standard library only).

Every writer goes through a temporary file in the target's directory and an atomic rename,
so an interrupted run (an exception, Ctrl-C, a full disk) never leaves a half-written file
under the final name: either the old file or the complete new one is there. The published
file gets the permissions the umask gives a plain open() (0644 usually), not mkstemp's
private 0600.

    write_text_atomic(path, text)      write_bytes_atomic(path, data)
    with atomic_path(path) as tmp:     # any writer that wants a file name
        save_file(..., tmp)            # (safetensors, matplotlib's savefig, ...)
"""

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


def umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    # Linux reports it without changing it; os.umask(0) would briefly change it for every
    # thread of the process (a flowgraph writes files from several).
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def publish(tmp: PathLike, path: PathLike, mode: Optional[int] = None):
    """Give the temporary file its permissions (`mode`, default 0666 & ~umask as a plain
    open() would), then rename it to path."""
    os.chmod(tmp, (0o666 & ~umask()) if mode is None else mode)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)  # the data reaches the disk before the name does: a power cut leaves old or new
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: PathLike, mode: Optional[int] = None) -> Iterator[Path]:
    """A temporary file name beside `path`; published as `path` (see `publish` for `mode`)
    when the block ends cleanly, removed (and `path` left as it was) when it raises."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, path, mode)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: PathLike, data: bytes, mode: Optional[int] = None):
    with atomic_path(path, mode) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text_atomic(path: PathLike, text: str, mode: Optional[int] = None):
    with atomic_path(path, mode) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
