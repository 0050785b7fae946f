"""Start an inference side process on a free loopback port and stop it again."""

import ctypes
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque

from .client import BackendUnavailable, ServerBackend


def _die_with_parent():
    # Linux: the server gets SIGTERM when the process that started it dies, even by kill -9,
    # so an interrupted run never leaves an orphan behind.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_server(device: str = "", startup_timeout: float = 120.0, extra_args=(), **client_kwargs):
    """(address, process) of a new server that answers ping; RuntimeError if it does not.
    `client_kwargs` (e.g. CurveZMQ keys) go to the ServerBackend that pings it."""
    address = f"tcp://127.0.0.1:{free_loopback_port()}"
    cmd = [sys.executable, "-m", "gnuradio.semcom.inference.server", "--bind", address, *extra_args]
    if device:
        cmd += ["--device", device]
    # Its own session: a terminal's Ctrl-C reaches only the process that started it, which then
    # stops its flowgraph (whose requests in flight still get answers) before it stops the server.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace", preexec_fn=_die_with_parent,
                            start_new_session=True)
    # Read stderr all along: a pipe nobody reads fills up and blocks the server's next log line.
    # The last lines are kept for the error message.
    proc.stderr_tail = deque(maxlen=20)
    reader = threading.Thread(target=_drain, args=(proc.stderr, proc.stderr_tail), daemon=True)
    reader.start()
    client = ServerBackend(address, timeout=1.0, **client_kwargs)
    deadline = time.monotonic() + startup_timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                reader.join(5)  # the child is gone: its stderr ends soon
                lines = [line for line in proc.stderr_tail if line.strip()]
                raise RuntimeError(f"the inference server exited with status {proc.returncode}: "
                                   f"{lines[-1].strip() if lines else 'no message'}")
            try:
                client.ping()
                return address, proc
            except BackendUnavailable:
                continue
        raise RuntimeError(f"the inference server did not answer ping within {startup_timeout:g} s")
    except BaseException:
        stop_server(proc)
        raise
    finally:
        client.close()


def _drain(stream, tail):
    for line in stream:
        tail.append(line)


def stop_server(proc, timeout: float = 10.0):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
