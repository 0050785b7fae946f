"""The inference side process: equality with in-process, fuzzing, failure and recovery, soak."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.inference import protocol
from gnuradio.semcom.inference.client import BackendUnavailable, ServerBackend, ServerError
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.inference.server import InferenceServer
from gnuradio.semcom.inference.spawn import spawn_server, stop_server

from conftest import REPO

USER = "jscc_user_awgn_k512"
MAX_BYTES = 2_000_000


@pytest.fixture(scope="module")
def server():
    address, proc = spawn_server("cpu", extra_args=("--max-bytes", str(MAX_BYTES)))
    yield address, proc
    stop_server(proc)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))


def test_side_process_equals_in_process(server):
    client, local = ServerBackend(server[0]), LocalBackend("cpu")
    imgs = load_dataset("sample").images[:8]
    lat_s, lat_l = client.encode(USER, imgs, 7.0), local.encode(USER, imgs, 7.0)
    np.testing.assert_allclose(lat_s, lat_l, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(client.decode(USER, lat_l, 7.0), local.decode(USER, lat_l, 7.0))
    info = client.call({"op": "info"})[0]
    m = info["models"][USER]
    assert m["k"] == 512 and m["image_shape"] == [32, 32, 3] and m["snr_range_db"] == [0.0, 20.0]
    assert "mmse" in info["receivers"]


def test_diffusion_receiver_on_the_server_equals_in_process(server):
    """The receive op runs any registered receiver: same latents and NFE as in-process."""
    import torch
    from gnuradio.semcom.core.link_sim import equalized_batch
    client, local = ServerBackend(server[0], timeout=120), LocalBackend("cpu")
    imgs = load_dataset("sample").images
    _, xhat, ctx = equalized_batch(local, imgs[:3], imgs[-3:], "rayleigh", 20.0, 0.0, "jscc_user_rayleigh_k512",
                                   "jscc_interferer_awgn_k512", 1, torch.Generator().manual_seed(0))
    ctx.options = {"steps": 3, "start": "observation"}
    remote = client.receive("icdm", xhat.numpy(), ctx)
    assert ctx.nfe == 6
    ctx.nfe = 0
    np.testing.assert_allclose(remote, local.receive("icdm", xhat.numpy(), ctx), rtol=1e-4, atol=1e-5)
    assert ctx.nfe == 6
    ctx.options = {"steps": "many"}
    with pytest.raises(ServerError, match="bad_params"):
        client.receive("icdm", xhat.numpy(), ctx)
    assert "prior_user_rayleigh_k512" in client.call({"op": "info"})[0]["priors"]


def test_dynamic_batches_never_exceed_max_batch():
    """Queued requests of one kind run in arrival order, merged up to max_batch items (a
    single larger request runs alone), and each gets its own reply."""
    server = InferenceServer("tcp://127.0.0.1:0", device="cpu", max_batch=4, max_wait_ms=1000)
    runs = []
    server._run_batch = lambda key, items: runs.append([len(a["latents"]) for _, _, a, _ in items])
    try:
        for n, size in enumerate((2, 1, 3, 6, 1)):
            lat = np.zeros((size, 1024), np.float32)
            server._handle([b"peer%d" % n] + protocol.pack({"op": "decode", "model": USER, "params": {"snr_db": 5},
                                                             "id": n}, [("latents", lat)]))
        assert runs == []  # 13 items pending, none run before the flush
        server._flush(force=True)
        assert runs == [[2, 1], [3], [6], [1]]
    finally:
        server.sock.close(0)


def malformed_cases(rng):
    """A seeded stream of malformed requests: (frames, expected error code)."""
    good_img = np.zeros((1, 32, 32, 3), np.uint8)
    hdr = lambda **kw: json.dumps(kw).encode()
    V = protocol.VERSION
    makers = [
        lambda: ([bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 40)))], "not_multipart"),
        lambda: ([b"semcom/0", hdr(op="ping")], "bad_version"),
        lambda: ([V, b"{not json" + bytes([rng.randrange(256)])], "bad_json"),
        lambda: ([V, b"[1, 2]"], "bad_header"),
        lambda: ([V, hdr(op=rng.choice(["run", "", "PING", "delete"]))], "unknown_op"),
        lambda: ([V, hdr(op="encode", model="nope", params={"snr_db": 1})], "unknown_model"),
        lambda: ([V, hdr(op="encode", model=USER, params={"snr_db": 1},
                         arrays=[{"name": "images", "dtype": "int64", "shape": [1]}]), b"\0" * 8], "bad_dtype"),
        lambda: ([V, hdr(op="encode", model=USER, params={"snr_db": 1},
                         arrays=[{"name": "images", "dtype": "uint8", "shape": [1, 28, 28, 1]}]), b"\0" * 784], "bad_shape"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[{"name": "latents", "dtype": "float32", "shape": [1, 1024]}]), b"\0" * 13], "bad_shape"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[{"name": "latents", "dtype": "float32", "shape": [1, 1024]}]),
                  np.full((1, 1024), rng.choice([np.nan, np.inf, -np.inf]), np.float32).tobytes()], "not_finite"),
        lambda: ([V, hdr(op="encode", model=USER, params={"snr_db": "ten"}, arrays=[])], "bad_params"),
        lambda: ([V, hdr(op="encode", model=USER, params={"snr_db": 1}, arrays=[])], "bad_shape"),
        lambda: ([V, hdr(op="encode", model=USER, params={"snr_db": 1},
                         arrays=[{"name": "images", "dtype": "uint8", "shape": [1, 32, 32, 3]}])], "bad_header"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[{"name": "latents", "dtype": "float32", "shape": [600, 1024]}]),
                  b"\0" * (600 * 1024 * 4)], "too_large"),
        lambda: ([V, hdr(op="receive", receiver="magic", params={"snr_db": 1})], "unknown_receiver"),
        lambda: ([V, hdr(op="receive", receiver="icdm", params={"snr_db": 1, "noise_var": 1, "signal_power": 1,
                                                                 "interference_power": 1, "options": {"stepz": 2}})],
                 "bad_params"),
        lambda: ([V, hdr(op="encode", model=USER, params={"snr_db": 1},
                         arrays=[{"name": "images", "dtype": "uint8", "shape": [-1, 32, 32, 3]}]), good_img.tobytes()], "bad_shape"),
    ]
    while True:
        i = rng.randrange(len(makers))
        yield (i, *makers[i]())


def test_fuzz_1000_malformed_requests_then_still_serving(server):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server[0])
    cases = malformed_cases(random.Random(2026))
    seen = set()
    try:
        for _ in range(1000):
            kind, frames, code = next(cases)
            sock.send_multipart(frames)
            assert sock.poll(10_000), f"no reply to a {code} case"
            header, _ = protocol.unpack(sock.recv_multipart(), 1 << 30)
            assert header["ok"] is False and header["error"]["code"] == code, (code, header)
            assert header["error"]["message"]
            seen.add(kind)
    finally:
        sock.close(0)
    assert len(seen) == 17  # every kind of malformed request was sent
    client = ServerBackend(server[0])
    assert client.ping()["pong"] is True
    assert client.encode(USER, load_dataset("sample").images[:2], 5.0).shape == (2, 1024)
    with pytest.raises(ServerError, match="unknown_model"):
        client.encode("nope", load_dataset("sample").images[:1], 5.0)


def test_client_times_out_on_a_dead_server_and_resumes_after_restart():
    address, proc = spawn_server("cpu")
    client = ServerBackend(address, timeout=1.0)
    img = load_dataset("sample").images[:1]
    try:
        assert client.encode(USER, img, 10.0).shape == (1, 1024)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with pytest.raises(BackendUnavailable):
            client.encode(USER, img, 10.0)
        port_args = ["--bind", address]
        restarted = subprocess.Popen([sys.executable, "-m", "gnuradio.semcom.inference.server", *port_args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while True:
                try:
                    assert client.encode(USER, img, 10.0).shape == (1, 1024)  # the same client resumes
                    break
                except BackendUnavailable:
                    assert time.time() < deadline, "the client did not resume"
        finally:
            stop_server(restarted)
    finally:
        stop_server(proc)


def test_kill_9_mid_run_finishes_reports_losses_leaves_no_process(tmp_path):
    points = 6
    app = [sys.executable, str(REPO / "apps" / "run_link.py"), "--no-progress", "--no-lpips", "--json",
           "--dataset", "sample", "--engine", "gnuradio", "--server", "auto", "--server-timeout", "1",
           "--snr", ",".join(["10"] * points), "--out", str(tmp_path)]
    run = subprocess.Popen(app, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(run.stdout.readline())  # the first operating point went through the server
        found = subprocess.run(["pgrep", "-P", str(run.pid), "-f", "inference.server"],
                               capture_output=True, text=True).stdout.split()
        assert found, "run_link did not start a server"
        server_pid = int(found[0])
        os.kill(server_pid, signal.SIGKILL)  # the server dies in the middle of the run
        stdout, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr[-2000:]
    rows = [first] + [json.loads(l) for l in stdout.splitlines()]
    assert len(rows) == points
    assert first["lost"] == 0 and first["images"] == 32
    assert rows[-1]["lost"] == 32 and rows[-1]["images"] == 0  # lost images are counted, not fatal
    assert subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True).returncode != 0
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)  # gone, and reaped: no orphan left behind


def test_eight_concurrent_clients_soak(server):
    address, proc = server
    imgs = load_dataset("sample").images
    latents = LocalBackend("cpu").encode(USER, imgs[:4], 10.0)
    errors, counts = [], [0] * 8
    stop_at = time.time() + 40
    rss = {}

    def worker(i):
        client = ServerBackend(address, timeout=30)
        try:
            for n in range(60):
                if time.time() > stop_at:
                    break
                if n % 2:
                    out = client.decode(USER, latents[: 1 + n % 4], 10.0)
                    assert out.shape == (1 + n % 4, 32, 32, 3)
                else:
                    assert client.encode(USER, imgs[i:i + 2], 10.0).shape == (2, 1024)
                counts[i] += 1
                if i == 0 and n == 10:
                    rss["start"] = rss_kb(proc.pid)
        except Exception as exc:  # collected: a thread's assert must fail the test
            errors.append(repr(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert sum(counts) >= 8 * 20
    growth = (rss_kb(proc.pid) - rss["start"]) / rss["start"]
    assert growth < 0.10, f"server memory grew {growth:.1%}"


def test_non_loopback_bind_needs_keys_and_curve_works(tmp_path):
    with pytest.raises(ValueError, match="CurveZMQ"):
        InferenceServer("tcp://0.0.0.0:5557")  # refused before anything is bound
    with pytest.raises(ValueError, match="threads >= 0"):
        InferenceServer("tcp://127.0.0.1:0", threads=-1)
    import zmq.auth
    zmq.auth.create_certificates(str(tmp_path), "server")
    zmq.auth.create_certificates(str(tmp_path), "client")
    server_public, _ = zmq.auth.load_certificate(str(tmp_path / "server.key"))
    client_keys = zmq.auth.load_certificate(str(tmp_path / "client.key_secret"))
    address, proc = spawn_server("cpu", extra_args=("--curve-secret-key", str(tmp_path / "server.key_secret"),
                                                    "--threads", "1"),
                                 server_public_key=server_public, client_keys=client_keys)
    try:
        good = ServerBackend(address, timeout=5, server_public_key=server_public, client_keys=client_keys)
        assert good.ping()["pong"]
        assert good.call({"op": "info"})[0]["cpu_threads"] == 1  # --threads leaves cores to a flowgraph
        with pytest.raises(BackendUnavailable):
            ServerBackend(address, timeout=1).ping()  # no keys: no conversation
        # the blocks' server string carries the key files
        from gnuradio.semcom.inference.local import get_backend, parse_server
        keyed = get_backend(f"{address}?server_key={tmp_path / 'server.key'}&client_key={tmp_path / 'client.key_secret'}")
        assert keyed.ping()["pong"]
        imgs = load_dataset("sample").images[:2]
        np.testing.assert_allclose(keyed.encode(USER, imgs, 5.0), LocalBackend("cpu").encode(USER, imgs, 5.0),
                                   rtol=1e-5, atol=1e-5)
        for bad, match in ((f"{address}?server_key={tmp_path / 'server.key'}", "needs both"),
                           (f"{address}?server_key=/nonexistent&client_key=/nonexistent", "cannot read"),
                           (f"{address}?server_key={tmp_path / 'server.key'}&client_key={tmp_path / 'client.key'}",
                            "no secret key"),
                           (f"{address}?color=blue", r"expected \?server_key"), ("udp://x:1", "expected tcp")):
            with pytest.raises(ValueError, match=match):
                parse_server(bad)
    finally:
        stop_server(proc)


def test_sigterm_stops_cleanly():
    address, proc = spawn_server("cpu")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
