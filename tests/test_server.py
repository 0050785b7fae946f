"""The inference side process: equality with in-process, fuzzing, failure and recovery, soak."""

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.models import default_models, jscc_model_name
from gnuradio.semcom.inference import protocol
from gnuradio.semcom.inference.client import BackendUnavailable, ServerBackend, ServerError
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.inference.server import BadRequest, InferenceServer
from gnuradio.semcom.inference.spawn import spawn_server, stop_server

from conftest import REPO

USER = jscc_model_name("user", "awgn", 512)
MAX_BYTES = 2_000_000


@pytest.fixture(scope="module")
def server():
    address, proc = spawn_server("cpu", extra_args=("--max-bytes", str(MAX_BYTES)))
    yield address, proc
    stop_server(proc)


def wait_for(condition, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))


@pytest.mark.slow
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
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    client, local = ServerBackend(server[0], timeout=120), LocalBackend("cpu")
    imgs = load_dataset("sample").images
    _, ctx = equalized_batch(local, imgs[:3], imgs[-3:], "rayleigh", 20.0, 0.0,
                             *default_models("rayleigh", 512), 1, torch.Generator().manual_seed(0))
    ctx.options = {"steps": 3, "start": "observation"}
    remote = client.receive("icdm", ctx)
    assert remote.nfe == 6
    here = local.receive("icdm", ctx)
    np.testing.assert_allclose(remote.latents, here.latents, rtol=1e-4, atol=1e-5)
    assert here.nfe == 6
    ctx.options = {"steps": "many"}
    with pytest.raises(ServerError, match="bad_params"):
        client.receive("icdm", ctx)
    assert "prior_user_rayleigh_k512" in client.call({"op": "info"})[0]["priors"]


def test_transmit_and_receive_ops_run_any_scheme_like_in_process(server):
    """The generic ops: a scheme's transmitter and receiver on the server give what they give
    in-process; the info lists every scheme with its option specs; what a batch could not run
    is refused up front."""
    import torch
    from gnuradio.semcom import schemes
    from gnuradio.semcom.core.models import default_models
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    client, local = ServerBackend(server[0], timeout=120), LocalBackend("cpu")
    imgs = load_dataset("sample").images[:4]
    tx = schemes.TxContext(12.0, "awgn", USER)
    remote, here = client.transmit("mmse", imgs, tx), local.transmit("mmse", imgs, tx)
    np.testing.assert_allclose(remote.symbols.numpy(), here.symbols.numpy(), rtol=1e-5, atol=1e-6)
    assert remote.symbols.shape == (4, 512)
    info = client.call({"op": "info"})[0]
    assert set(info["schemes"]) == set(schemes.names())
    assert info["schemes"]["icdm"]["options"]["steps"]["default"] == 20
    assert {USER, "prior_user_awgn_k512"} <= set(info["checkpoints"])
    with pytest.raises(ServerError, match="bad_params"):
        client.transmit("mmse", imgs, schemes.TxContext(12.0, "fog"))
    with pytest.raises(ServerError, match="unknown_model"):
        client.transmit("mmse", imgs, schemes.TxContext(12.0, "awgn", "jscc_nope"))
    with pytest.raises(ServerError, match="unknown_receiver"):
        client.transmit("nope", imgs, tx)
    with pytest.raises(ServerError, match="bad_shape"):
        client.transmit("mmse", imgs[:, :16], tx)
    # each of these passed the checks once and failed in the batch (an `internal` reply that
    # could take other clients' requests in the same batch with it): now refused up front
    with pytest.raises(ServerError, match="bad_params"):
        client.transmit("mmse", imgs, schemes.TxContext(12.0, "awgn", USER, options={"steps": 3}))
    with pytest.raises(ServerError, match="unknown_model"):
        client.transmit("mmse", imgs, schemes.TxContext(12.0, "awgn", "prior_user_awgn_k512"))
    for csi in (np.ones((4, 512), np.uint8), np.ones((4, 7), np.complex64), np.ones((3, 512), np.complex64)):
        params, _ = schemes.TxContext(12.0, "awgn", USER, csi_source="genie").to_wire()
        with pytest.raises(ServerError, match="bad_params|bad_shape"):
            client.call({"op": "transmit", "scheme": "mmse", "params": params}, [("images", imgs), ("csi", csi)])
    _, obs = equalized_batch(local, imgs[:2], imgs[-2:], "awgn", 20.0, 5.0, *default_models("awgn", 512), 1,
                             torch.Generator().manual_seed(0))
    for model, code in (("jscc_user_awgn_k256", "bad_shape"), ("prior_user_awgn_k512", "unknown_model")):
        obs.model = model
        with pytest.raises(ServerError, match=code):
            client.receive("mmse", obs)
    assert client.ping()["pong"] is True


def test_dynamic_batches_never_exceed_max_batch():
    """Queued requests of one kind run in arrival order, merged up to max_batch items (a
    single larger request runs alone), and each gets its own reply. The worker gets one
    batch at a time; what waits meanwhile can join the next one."""
    server = InferenceServer("tcp://127.0.0.1:0", device="cpu", max_batch=4, max_wait_ms=1000)

    def handed_out():  # the batches handed to the worker thread, as item counts per request
        out = []
        while not server.jobs.empty():
            _, items = server.jobs.get()
            out.append([len(r.arrays["latents"]) for r in items])
        return out

    try:
        for n, size in enumerate((2, 1, 3, 6, 1)):
            lat = np.zeros((size, 1024), np.float32)
            server.handle([b"peer%d" % n] + protocol.pack({"op": "decode", "model": USER, "params": {"snr_db": 5},
                                                             "id": n}, [("latents", lat)]))
        assert handed_out() == []  # 13 items pending, none run before the flush
        assert server.wait_ms() <= 100  # poll() gets a short timeout whatever --max-wait-ms is
        server.flush()
        assert handed_out() == [[2, 1]]  # full: one batch for the idle worker
        server.flush()
        assert handed_out() == []  # the worker is busy: the rest waits
        server.max_wait = 0  # the rest is due now: one batch each time the worker is done
        for _ in range(3):
            server.busy_batches = 0
            server.flush()
        assert handed_out() == [[3], [6], [1]]
    finally:
        server.close()


def test_ping_and_info_answered_while_a_batch_runs():
    """A slow batch runs on the worker thread: ping and info are answered meanwhile, and
    requests that arrive during it are batched (up to max_batch) once it is done."""
    server = InferenceServer("tcp://127.0.0.1:0", device="cpu", max_batch=4, max_wait_ms=20)
    sizes, release = [], threading.Event()

    def slow_decode(model, latents, snr_db):
        sizes.append(len(latents))
        if len(sizes) == 1:
            release.wait(20)  # the first batch runs until the test has pinged
        return np.zeros((len(latents), 32, 32, 3), np.uint8)

    server.backend.decode = slow_decode
    loop = threading.Thread(target=server.serve)
    loop.start()
    results, errors = {}, []

    def decode(i):
        client = ServerBackend(server.endpoint, timeout=30)
        try:
            results[i] = client.decode(USER, np.zeros((1, 1024), np.float32), 5.0).shape
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            client.close()

    def wait_for(condition, what):
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.01)

    clients = [threading.Thread(target=decode, args=(i,)) for i in range(7)]
    try:
        clients[0].start()
        wait_for(lambda: sizes == [1], "the first batch did not start")
        pinger = ServerBackend(server.endpoint, timeout=5)
        t0 = time.perf_counter()
        assert pinger.ping()["pong"] is True
        ping_s = time.perf_counter() - t0
        info = pinger.call({"op": "info"})[0]
        pinger.close()
        assert ping_s < 0.5, f"ping took {ping_s:.2f} s while a batch ran"
        assert info["max_nfe"] == 200 and info["client_auth"] is False and info["priors"]
        for c in clients[1:]:
            c.start()
        wait_for(lambda: sum(len(r) for r in list(server.pending.values())) == 6, "requests did not queue")
        assert sizes == [1]  # still running
        release.set()
        for c in clients:
            c.join(30)
        assert not errors, errors
        assert results == {i: (1, 32, 32, 3) for i in range(7)}
        assert sizes == [1, 4, 2]
    finally:
        release.set()
        server.stop()
        loop.join(30)
    assert not loop.is_alive()


def test_a_flood_during_a_batch_is_answered_busy_and_stop_runs_no_backlog():
    """While a slow batch runs, what waits for the worker is capped (requests and bytes); the
    rest is answered `busy` at once, naming the cap. Stopping answers what still waits
    `shutting_down` at once and finishes only the batch in progress."""
    server = InferenceServer("tcp://127.0.0.1:0", device="cpu", max_batch=1, max_wait_ms=0,
                             max_pending=6, max_pending_bytes=1 << 20)
    sizes, release = [], threading.Event()

    def slow_decode(model, latents, snr_db):
        sizes.append(len(latents))
        release.wait(20)
        return np.zeros((len(latents), 32, 32, 3), np.uint8)

    server.backend.decode = slow_decode
    loop = threading.Thread(target=server.serve)
    loop.start()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)

    def send(i, rows):
        sock.send_multipart(protocol.pack({"op": "decode", "model": USER, "params": {"snr_db": 5}, "id": i},
                                          [("latents", np.zeros((rows, 1024), np.float32))]))

    def replies(count):
        out = {}
        for _ in range(count):
            assert sock.poll(10_000), f"{len(out)} of {count} replies came"
            header = protocol.unpack(sock.recv_multipart(), 1 << 20)[0]
            out[header["id"]] = (header.get("error") or {}).get("code", "ok"), (header.get("error") or {}).get("message")
        return out

    try:
        send(0, 1)
        wait_for(lambda: sizes == [1], "the first batch did not start")
        for i in range(1, 21):
            send(i, 64)  # 256 KiB each: 3 fit in 1 MiB
        for i in range(21, 31):
            send(i, 1)  # small: 3 more, up to 6 requests
        busy = replies(24)
        assert set(busy) == set(range(4, 21)) | set(range(24, 31)), sorted(busy)
        assert {code for code, _ in busy.values()} == {"busy"}
        assert all("1048576 bytes (--max-pending-bytes)" in busy[i][1] for i in range(4, 21)), busy[4]
        assert all("6 requests (--max-pending)" in busy[i][1] for i in range(24, 31)), busy[24]
        assert sorted(r.id for reqs in server.pending.values() for r in reqs) == [1, 2, 3, 21, 22, 23]
        assert server.pending_bytes == sum(r.nbytes for reqs in server.pending.values() for r in reqs) <= 1 << 20
        assert sizes == [1]  # all this while the first batch runs
        server.stop()  # e.g. SIGTERM: what waits is answered now, not run
        assert replies(6) == {i: ("shutting_down", "the server is stopping; this request did not run")
                              for i in (1, 2, 3, 21, 22, 23)}
        release.set()
        assert replies(1) == {0: ("ok", None)}  # the batch in progress finishes, and is answered
        loop.join(30)
        assert sizes == [1] and not server.pending
    finally:
        release.set()
        server.stop()
        loop.join(30)
        sock.close(0)
    assert not loop.is_alive()


def test_request_cost_caps_items_and_total_nfe():
    """Per request, not only per image: a receive's images x NFE per image, and the items of
    any request, are capped (too_costly, naming the cap), before any work."""
    server = InferenceServer("tcp://127.0.0.1:0", device="cpu", max_nfe=50, max_request_items=8,
                             max_request_nfe=100)
    powers = {"snr_db": 10, "noise_var": 0.1, "signal_power": 1, "interference_power": 1}
    receive = lambda n, steps: protocol.pack(
        {"op": "receive", "receiver": "icdm", "params": dict(powers, options={"steps": steps})},
        [("xhat", np.zeros((n, 1024), np.float32)), ("w", np.zeros((n, 512), np.complex64)),
         ("h", np.zeros((n, 512), np.complex64))])
    coded = lambda n, op="encode": protocol.pack(
        {"op": op, "model": USER, "params": {"snr_db": 5}},
        [("images", np.zeros((n, 32, 32, 3), np.uint8))] if op == "encode" else [("latents", np.zeros((n, 1024), np.float32))])
    check = lambda frames: server.check_request(*protocol.unpack(frames, 1 << 24))
    try:
        assert check(receive(5, 10))[1] == 5  # 5 x 20 = 100: at the cap
        with pytest.raises(BadRequest, match=r"6 images .* cost up to 120; .* cap per request is 100 \(--max-request-nfe\)"):
            check(receive(6, 10))
        with pytest.raises(BadRequest, match=r"too_costly|9 items") as exc:
            check(receive(9, 1))
        assert exc.value.code == "too_costly" and "cap is 8 (--max-request-items)" in str(exc.value)
        transmit = lambda steps, n=1: protocol.pack(   # jscna-ad's DDIM inversion runs the prior at the transmitter
            {"op": "transmit", "scheme": "jscna-ad", "params": {"snr_db": 5, "channel_type": "awgn", "options": {
                "noise_add": "ddim", "s_ddim": 100, "tx_steps": steps}}},
            [("images", np.zeros((n, 32, 32, 3), np.uint8))])
        assert check(transmit(50))[1] == 1 and check(transmit(50, 2))[1] == 2   # 2 x 50 = 100: at the cap
        with pytest.raises(BadRequest, match=r"3 images at up to 50 .* transmitter cost up to 150; .* cap per request is 100"):
            check(transmit(50, 3))
        with pytest.raises(BadRequest, match=r"transmitter of scheme .jscna-ad. with these options costs up to 100 .* cap is 50") as exc:
            check(transmit(500))
        assert exc.value.code == "too_costly"
        for op in ("encode", "decode"):
            assert check(coded(8, op))[1] == 8
            with pytest.raises(BadRequest, match=r"9 items in one request; .* cap is 8 \(--max-request-items\)"):
                check(coded(9, op))
        info = server.describe()
        assert (info["max_request_items"], info["max_request_nfe"]) == (8, 100)
    finally:
        server.close()
    default = InferenceServer("tcp://127.0.0.1:0", device="cpu", max_bytes=1 << 20)
    try:  # defaults: 256 items, 64 x max_nfe in all, 1024 requests and 4 x max_bytes waiting
        assert (default.max_request_items, default.max_request_nfe, default.max_pending,
                default.max_pending_bytes) == (256, 12800, 1024, 4 << 20)
    finally:
        default.close()


@pytest.mark.parametrize("kwargs, match", [
    ({"max_wait_ms": math.inf}, "max_wait_ms <= 60000"),
    ({"max_wait_ms": 1e300}, "max_wait_ms <= 60000"),
    ({"max_wait_ms": math.nan}, "max_wait_ms"),
    ({"max_bytes": 2 ** 62}, r"max_bytes <= 2147483648 \(--max-bytes\)"),
    ({"max_batch": 10 ** 9}, "max_batch <="),
    ({"max_nfe": 10 ** 9}, "max_nfe <="),
    ({"threads": -1}, "0 <= threads"),
    ({"max_request_items": 0}, "--max-request-items"),
    ({"max_request_nfe": 0}, "--max-request-nfe"),
    ({"max_pending": 0}, "--max-pending"),
    ({"max_pending_bytes": 10}, "--max-pending-bytes"),
    ({"bind": "tcp://127.0.0.1:99999"}, "PORT from 0 to 65535"),  # zmq would wrap it round
    ({"bind": "tcp://127.0.0.1:5557x"}, "5557x"),                  # zmq would serve on 5557
    ({"bind": "tcp://127.0.0.1:-1"}, "PORT from 0"),
    ({"bind": "tcp://127.0.0.1"}, "PORT from 0"),
    ({"bind": "tcp://:5557"}, "expected tcp://HOST:PORT"),
    ({"bind": "tcp://127.0.0.1:\uff15\uff15"}, "PORT from 0"),  # unicode digits
])
def test_options_and_bind_are_checked_before_anything(kwargs, match):
    """Each numeric option finite and bounded, a tcp port an integer from 0 to 65535: one
    ValueError before the device is tried (a bad one here), a socket bound or a model loaded."""
    with pytest.raises(ValueError, match=match):
        InferenceServer(**dict({"bind": "tcp://127.0.0.1:0", "device": "potato"}, **kwargs))


def test_check_bind_accepts_the_usual_endpoints():
    from gnuradio.semcom.inference.server import check_bind
    for good in ("tcp://127.0.0.1:0", "tcp://127.0.0.1:65535", "tcp://*:5557", "tcp://[::1]:5557",
                 "tcp://localhost:5557", "ipc:///tmp/semcom.sock", "inproc://semcom"):
        check_bind(good)


def test_an_unexpected_exception_costs_one_request_not_the_server(caplog):
    server = InferenceServer("tcp://127.0.0.1:0", device="cpu")
    sent = []
    server.send = lambda route, frames: sent.append(protocol.unpack(frames, 1 << 20)[0])
    ping = protocol.pack({"op": "ping", "id": 7})
    try:
        server.check_request = lambda header, arrays: {}["a bug"]
        server.handle([b"peer"] + ping)
        assert [(h["ok"], h["id"], h["error"]["code"]) for h in sent] == [(False, 7, "internal")]
        assert len([r for r in caplog.records if r.name == "semcom.server"]) == 1  # one log line
        del server.check_request
        server.handle([b"peer"] + ping)
        assert sent[-1]["result"]["pong"] is True
        server.handle([b"peer", b""])  # routing frames only: not a request, dropped and counted
        assert len(sent) == 2 and server.stats["dropped"] == 1
    finally:
        server.close()


def test_unpack_and_handle_are_total():
    """Thousands of mutated requests: unpack returns or raises ProtocolError, nothing else,
    and the server answers each with exactly one reply."""
    rng = random.Random(7)
    lat = np.zeros((1, 1024), np.float32)
    seeds = [protocol.pack({"op": "decode", "model": USER, "params": {"snr_db": 5}, "id": 1}, [("latents", lat)]),
             protocol.pack({"op": "receive", "receiver": "icdm", "id": "x",
                            "params": {"snr_db": 5, "noise_var": 1, "signal_power": 1, "interference_power": 1,
                                       "options": {"steps": 3}}},
                           [("xhat", lat), ("w", np.zeros((1, 512), np.complex64)),
                            ("h", np.zeros((1, 512), np.complex64))])]
    pieces = [b"[", b"]", b"{", b"}", b'"', b"\\", b",", b":", b"0", b"-1", b"1e999", b"NaN", b"Infinity",
              b"null", b"true", b"[" * 3000, b'{"a":' * 2000, b"9" * 30, b"\xff", b"2.5", b'"\\u0000"']
    server = InferenceServer("tcp://127.0.0.1:0", device="cpu", max_bytes=MAX_BYTES)
    replies = []
    server.send = lambda route, frames: replies.append(protocol.unpack(frames, 1 << 20)[0])
    try:
        for _ in range(3000):
            frames = list(rng.choice(seeds))
            text = bytearray(frames[1])
            for _ in range(rng.randrange(1, 4)):
                at = rng.randrange(len(text) + 1)
                cut = rng.choice([0, 0, 1, rng.randrange(1, 40)])
                text[at:at + cut] = rng.choice(pieces)
            frames[1] = bytes(text)
            if rng.random() < 0.1:
                del frames[rng.randrange(len(frames)):]
            try:
                protocol.unpack(frames, MAX_BYTES)
            except protocol.ProtocolError:
                pass
            before = len(replies)
            server.handle([b"peer"] + frames)
            queued = sum(len(v) for v in server.pending.values())  # valid ones wait for a batch
            for key in list(server.pending):
                server.take_pending(key, len(server.pending[key]))
            assert server.pending_n == server.pending_bytes == 0
            assert len(replies) - before + queued == (1 if frames else 0), frames[:2]
        assert server.stats["internal"] == 0 and server.stats["requests"] > 2900
    finally:
        server.close()


def malformed_cases(rng):
    """A seeded stream of malformed requests: ((kind, frames, expected error code), kinds)."""
    good_img = np.zeros((1, 32, 32, 3), np.uint8)
    hdr = lambda **kw: json.dumps(kw).encode()
    V = protocol.VERSION
    powers = {"snr_db": 1, "noise_var": 1, "signal_power": 1, "interference_power": 1}
    lat = lambda n=1, k=512: np.zeros((n, 2 * k), np.float32).tobytes()
    cplx = lambda n=1, k=512, dtype=np.complex64: np.zeros((n, k), dtype).tobytes()
    spec = lambda name, dtype, shape: {"name": name, "dtype": dtype, "shape": shape}
    rx_specs = lambda n=1, k=512, wdtype="complex64": [spec("xhat", "float32", [n, 2 * k]),
                                                      spec("w", wdtype, [n, k]), spec("h", "complex64", [n, k])]
    odd = lambda: rng.choice([None, True, False, [1], {"a": 1}, "5", [], {}])  # JSON values of the wrong type
    deep = lambda d: rng.choice([b"[" * d + b"]" * d, b'{"a":' * d + b"1" + b"}" * d, b"[" * d])
    depth = lambda: rng.choice([rng.randrange(17, 100), rng.randrange(1000, 20000)])  # past the limit / recursion
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
        # ---- generated structure: nesting, overflowing shapes, odd JSON values, mismatched counts
        lambda: ([V, b'{"op": "ping", "x": ' + deep(depth()) + b"}"], "bad_header"),
        lambda: ([V, deep(depth())], "bad_header"),
        lambda: ([V, hdr(op="ping", params={"options": json.loads("[" * 20 + "]" * 20)})], "bad_header"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},  # product 0: the byte count passes
                         arrays=[spec("latents", "float32", [0] + [rng.randrange(MAX_BYTES + 1, 2 ** 62)
                                                                   for _ in range(rng.randrange(1, 4))])]), b""],
                 "bad_shape"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[spec("latents", "float32", [0, rng.randrange(1000, MAX_BYTES),
                                                             rng.randrange(1000, MAX_BYTES)])]), b""], "too_large"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[spec("latents", "float32", [1, 2 ** rng.randrange(64, 300)])]), b""], "bad_json"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[spec("latents", "float32", [1, rng.choice([1024.0, True, None, "1024", [1024]])])]),
                  lat()], "bad_shape"),
        lambda: ([V, hdr(op="encode", model=USER, id=rng.choice([1, "a"]),
                         params={"snr_db": rng.choice([float("nan"), float("inf"), -float("inf")])})], "bad_json"),
        lambda: ([V, b'{"op": "ping", "id": ' + rng.choice([b"9" * rng.randrange(20, 6000), b"1e999", b"-1e400"])
                  + b"}"], "bad_json"),
        lambda: ([V, rng.choice([b"null", b"1", b'"ping"', b"true", b"2.5"])], "bad_header"),
        lambda: ([V, hdr(op=rng.choice([1, 2.5, None, True, ["ping"], {"op": "ping"}]))], "unknown_op"),
        lambda: ([V, hdr(op="ping", id=rng.choice([{"a": 1}, [1], 2.5, True, "x" * rng.randrange(129, 5000)]))],
                 "bad_header"),
        lambda: ([V, hdr(op="encode", model=USER, params=rng.choice([[1], "x", 3, None, True]))], "bad_params"),
        lambda: ([V, hdr(op=rng.choice(["encode", "decode"]), model=USER, params={"snr_db": odd()})], "bad_params"),
        lambda: ([V, hdr(op="encode", model=odd(), params={"snr_db": 1})], "unknown_model"),
        lambda: ([V, hdr(op="receive", receiver=odd(), params=powers)], "unknown_receiver"),
        lambda: ([V, hdr(op="ping", arrays=rng.choice([{}, "a", 3, None, {"name": "x"}]))], "bad_header"),
        lambda: ([V, hdr(op="ping", arrays=[spec("a%d" % i, "uint8", [0]) for i in range(rng.randrange(9, 40))])],
                 "bad_header"),
        lambda: ([V, hdr(op="ping")] + [b""] * rng.randrange(9, 40), "bad_header"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1}, arrays=[spec("latents", "float32", [1, 1024])])]
                 + [lat()] * rng.choice([0, 2, 3]), "bad_header"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[spec("latents", "float32", [1, 1024])] * 2), lat(), lat()], "bad_header"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[spec(rng.choice(["", "x" * rng.randrange(65, 1000), 1, None, ["latents"]]),
                                      "float32", [1, 1024])]), lat()], "bad_header"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},
                         arrays=[spec("latents", rng.choice([["float32"], {"a": 1}, None, 4, True]), [1, 1024])]),
                  lat()], "bad_dtype"),
        lambda: ([V, hdr(op="encode", model=USER, params={"snr_db": 1},
                         arrays=[spec("images", "uint8", [1, 32, 32, 3]), spec("junk", "float32", [3])]),
                  good_img.tobytes(), b"\0" * 12], "bad_shape"),
        lambda: ([V, hdr(op="receive", receiver="mmse", params=powers, arrays=rx_specs(2)[:1] + rx_specs(1)[1:]),
                  lat(2), cplx(), cplx()], "bad_shape"),
        lambda: ([V, hdr(op="receive", receiver="mmse", params=powers, arrays=rx_specs(wdtype="float32")),
                  lat(), cplx(dtype=np.float32), cplx()], "bad_shape"),
        lambda: ([V, hdr(op="receive", receiver="icdm", params=powers, arrays=rx_specs(k=4)),
                  lat(k=4), cplx(k=4), cplx(k=4)], "bad_shape"),
        lambda: ([V, hdr(op="receive", receiver="icdm", params=dict(powers, options={
                             "steps": rng.choice([101, 1000, 10 ** 12, "5000"]), "start": "noise"}),
                         arrays=rx_specs()), lat(), cplx(), cplx()], "too_costly"),
        lambda: ([V, hdr(op="receive", receiver=rng.choice(["cddm", "icdm-dps"]), params=dict(powers, options={
                             "steps": rng.randrange(201, 10 ** 6)}), arrays=rx_specs()), lat(), cplx(), cplx()],
                 "too_costly"),
        lambda: ([V, hdr(op="decode", model=USER, params={"snr_db": 1},  # over --max-request-items
                         arrays=[spec("latents", "float32", [257, 1024])]), lat(257)], "too_costly"),
        lambda: ([V, hdr(op="receive", receiver="icdm", params=dict(powers, options={"steps": 100, "start": "noise"}),
                         arrays=rx_specs(70)), lat(70), cplx(70), cplx(70)], "too_costly"),  # 70 x 200 NFE
        lambda: ([V, hdr(op="receive", receiver="mmse",
                         params=dict(powers, **rng.choice([{"options": rng.choice([[1], "steps=3", 3, None])},
                                                           {"seed": rng.choice([-1, 1.5, True, "0", None, [0]])},
                                                           {"channel_type": odd()},
                                                           {"sinr_db": odd()},
                                                           {rng.choice(["noise_var", "signal_power"]): rng.choice(
                                                               [-1, None, True, "1", [1]])}])))],
                 "bad_params"),
    ]
    while True:
        i = rng.randrange(len(makers))
        yield (i, *makers[i]()), len(makers)


def test_fuzz_1000_malformed_requests_then_still_serving(server):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server[0])
    cases = malformed_cases(random.Random(2026))
    seen = set()
    try:
        for _ in range(1000):
            (kind, frames, code), kinds = next(cases)
            sock.send_multipart(frames)
            assert sock.poll(10_000), f"no reply to a {code} case (kind {kind})"
            header, _ = protocol.unpack(sock.recv_multipart(), 1 << 30)
            assert header["ok"] is False and header["error"]["code"] == code, (kind, code, header)
            assert header["error"]["message"]
            if code == "too_costly":  # names the cap
                assert re.search(r"cap (per request )?is (200|256|12800) \(--max-", header["error"]["message"])
            seen.add(kind)
    finally:
        sock.close(0)
    assert len(seen) == kinds  # every kind of malformed request was sent
    client = ServerBackend(server[0])
    assert client.ping()["pong"] is True
    assert client.encode(USER, load_dataset("sample").images[:2], 5.0).shape == (2, 1024)
    xhat = np.random.default_rng(0).standard_normal((2, 1024)).astype(np.float32)
    result, out = client.call({"op": "receive", "receiver": "mmse", "params": {
        "snr_db": 10, "noise_var": 0.1, "signal_power": 1, "interference_power": 0}},
        [("xhat", xhat), ("w", np.zeros((2, 512), np.complex64)), ("h", np.ones((2, 512), np.complex64))])
    assert result["nfe"] == 0 and np.array_equal(out["latents"], xhat)  # mmse: the equalised latents as they are
    with pytest.raises(ServerError, match="unknown_model"):
        client.encode("nope", load_dataset("sample").images[:1], 5.0)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_non_loopback_bind_needs_keys_and_curve_works(tmp_path):
    with pytest.raises(ValueError, match="CurveZMQ"):
        InferenceServer("tcp://0.0.0.0:5557")  # refused before anything is bound
    with pytest.raises(ValueError, match="0 <= threads"):
        InferenceServer("tcp://127.0.0.1:0", threads=-1)
    import zmq.auth
    zmq.auth.create_certificates(str(tmp_path), "server")
    zmq.auth.create_certificates(str(tmp_path), "client")
    server_public, _ = zmq.auth.load_certificate(str(tmp_path / "server.key"))
    client_keys = zmq.auth.load_certificate(str(tmp_path / "client.key_secret"))
    (tmp_path / "clients").mkdir()
    (tmp_path / "clients" / "client.key").write_bytes((tmp_path / "client.key").read_bytes())
    address, proc = spawn_server("cpu", extra_args=("--curve-secret-key", str(tmp_path / "server.key_secret"),
                                                    "--curve-clients", str(tmp_path / "clients"),
                                                    "--threads", "1"),
                                 server_public_key=server_public, client_keys=client_keys)
    try:
        good = ServerBackend(address, timeout=5, server_public_key=server_public, client_keys=client_keys)
        assert good.ping()["pong"]
        info = good.call({"op": "info"})[0]
        assert info["cpu_threads"] == 1  # --threads leaves cores to a flowgraph
        assert info["curve"] is True and info["client_auth"] is True
        with pytest.raises(BackendUnavailable):
            ServerBackend(address, timeout=1).ping()  # no keys: no conversation
        with pytest.raises(BackendUnavailable):  # encrypted, but not on the allow-list: no answer either
            ServerBackend(address, timeout=1, server_public_key=server_public, client_keys=zmq.curve_keypair()).ping()
        assert good.ping()["pong"]
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


def test_gen_keys_writes_private_secret_keys(tmp_path, capsys):
    from gnuradio.semcom.inference.server import main
    keys = tmp_path / "new" / "keys"
    old = os.umask(0o022)  # a usual umask: without care the secret files would be world-readable
    try:
        assert main(["--gen-keys", str(keys)]) == 0
    finally:
        os.umask(old)
    mode = lambda p: p.stat().st_mode & 0o777
    assert mode(keys) == 0o700
    assert mode(keys / "server.key_secret") == mode(keys / "client.key_secret") == 0o600
    assert mode(keys / "server.key") == 0o644
    import zmq.auth
    client_public, _ = zmq.auth.load_certificate(str(keys / "client.key"))
    assert list(zmq.auth.load_certificates(str(keys / "clients"))) == [client_public]  # the allow-list
    with pytest.raises(SystemExit) as exc:  # never overwrites keys
        main(["--gen-keys", str(keys)])
    assert exc.value.code == 2 and "exists" in capsys.readouterr().err


def test_receive_over_the_nfe_cap_is_refused_at_once(server):
    client = ServerBackend(server[0], timeout=5)
    info = client.call({"op": "info"})[0]
    assert info["max_nfe"] == 200 and info["client_auth"] is False and "prior_user_awgn_k512" in info["priors"]
    params = {"snr_db": 10, "noise_var": 0.1, "signal_power": 1, "interference_power": 1,
              "options": {"steps": 1000, "start": "noise"}}
    arrays = [("xhat", np.zeros((1, 1024), np.float32)), ("w", np.zeros((1, 512), np.complex64)),
              ("h", np.zeros((1, 512), np.complex64))]
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"too_costly: .* 2000 network evaluations .* cap is 200 \(--max-nfe\)"):
        client.call({"op": "receive", "receiver": "icdm", "params": params}, arrays)
    assert time.monotonic() - t0 < 2
    # --max-nfe sets the cap; the bound is steps x the priors each step evaluates
    capped = InferenceServer("tcp://127.0.0.1:0", device="cpu", max_nfe=10)
    try:
        frames = lambda steps: protocol.pack({"op": "receive", "receiver": "icdm", "id": steps, "params": dict(
            params, options={"steps": steps})}, arrays)
        with pytest.raises(BadRequest, match="costs up to 12 .* cap is 10"):
            capped.check_request(*protocol.unpack(frames(6), 1 << 20))
        assert capped.check_request(*protocol.unpack(frames(5), 1 << 20))[1] == 1
    finally:
        capped.close()


@pytest.mark.slow
def test_startup_errors_are_one_line_and_status_2(server, tmp_path, capsys):
    """Each start-up problem: exit status 2 and one line naming it, no traceback, no usage."""
    import torch
    import zmq.auth
    zmq.auth.create_certificates(str(tmp_path), "server")
    (tmp_path / "bad.key_secret").write_text("not a key\n")
    no_cuda = "cuda" if not torch.cuda.is_available() else "cuda:99"
    cases = [(["--bind", server[0]], "address already in use"),  # the module's server holds it
             (["--bind", "tcp://8.8.8.8:5557", "--insecure"], "tcp://8.8.8.8:5557: cannot assign requested address"),
             (["--bind", "garbage"], "--bind 'garbage'"),
             (["--curve-secret-key", str(tmp_path / "bad.key_secret"), "--curve-allow-any"], "bad.key_secret"),
             (["--max-batch", "0"], "--max-batch"),
             (["--max-wait-ms", "1e300"], "max_wait_ms <= 60000"),  # a poll(1e300) would end the server later
             (["--device", no_cuda], "CUDA"),
             (["--device", "potato"], "potato")]
    cmd = [sys.executable, "-m", "gnuradio.semcom.inference.server"]
    procs = [subprocess.Popen(cmd + ["--bind", "tcp://127.0.0.1:0"] * ("--bind" not in args) + args,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args, _ in cases]
    # run_link --server auto: spawn_server surfaces the server's own line
    with pytest.raises(RuntimeError, match=f"status 2: semcom_server: error: --device {no_cuda}: CUDA"):
        spawn_server(no_cuda, startup_timeout=60)
    for (args, match), proc in zip(cases, procs):
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in err, (args, err)
        assert lines[0].startswith("semcom_server: error: ") and match in lines[0], (args, lines)
    # the same in-process, for the cases that fail before any socket or model
    from gnuradio.semcom.inference.server import main
    for args, match in ((["--max-batch", "many"], "--max-batch: invalid int value"),
                        (["--max-nfe", "0"], "1 <= max_nfe"),
                        (["--max-wait-ms", "inf"], "max_wait_ms <= 60000 (--max-wait-ms), got inf"),
                        (["--max-wait-ms", "nan"], "(--max-wait-ms), got nan"),
                        (["--max-bytes", "4611686018427387904"], "max_bytes <= 2147483648"),
                        (["--max-request-nfe", "0"], "--max-request-nfe"),
                        (["--max-pending-bytes", "1e9"], "--max-pending-bytes: invalid int value"),
                        (["--bind", "tcp://127.0.0.1:99999"], "--bind 'tcp://127.0.0.1:99999': expected"),
                        (["--bind", "tcp://127.0.0.1:5557x"], "--bind 'tcp://127.0.0.1:5557x': expected"),
                        (["--curve-secret-key", str(tmp_path / "server.key_secret")], "--curve-clients DIR"),
                        (["--curve-clients", str(tmp_path)], "need --curve-secret-key")):
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("semcom_server: error: ") and err.count("\n") == 1, (args, err)
        assert match in err, (args, err)


@pytest.mark.slow
def test_sigterm_finishes_the_batch_in_progress_answers_the_rest_and_exits_0():
    address, proc = spawn_server("cpu", extra_args=("--max-batch", "1"))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    n = 96  # icdm as in the paper, 40 network evaluations per image: about 3 s on a 2-core CPU
    params = {"snr_db": 10, "noise_var": 0.1, "signal_power": 1, "interference_power": 1,
              "options": {"steps": 20, "start": "noise", "surrogate": "isotropic"}}
    try:
        rng = np.random.default_rng(0)
        cplx = lambda: (rng.standard_normal((n, 512)) + 1j * rng.standard_normal((n, 512))).astype(np.complex64)
        sock.send_multipart(protocol.pack({"op": "receive", "receiver": "icdm", "id": "slow", "params": params}, [
            ("xhat", rng.standard_normal((n, 1024)).astype(np.float32)), ("w", cplx()), ("h", cplx())]))
        time.sleep(0.3)  # the receive is running
        for i in range(3):
            sock.send_multipart(protocol.pack({"op": "decode", "model": USER, "params": {"snr_db": 5}, "id": i},
                                              [("latents", np.zeros((1, 1024), np.float32))]))
        sock.send_multipart(protocol.pack({"op": "ping", "id": "ping"}))
        assert sock.poll(5000) and protocol.unpack(sock.recv_multipart(), 1 << 20)[0]["id"] == "ping"
        proc.send_signal(signal.SIGTERM)  # the decodes are waiting now (read before the ping)
        codes = {}
        for _ in range(4):
            assert sock.poll(30_000), f"replies so far: {codes}"
            header = protocol.unpack(sock.recv_multipart(), 1 << 24)[0]
            codes[header["id"]] = header["error"]["code"] if not header["ok"] else "ok"
        assert codes == {"slow": "ok", 0: "shutting_down", 1: "shutting_down", 2: "shutting_down"}
        assert proc.wait(timeout=15) == 0
    finally:
        sock.close(0)
        stop_server(proc)


def test_dnsc_runs_on_the_server_as_in_process(server):
    """The KL-VAE is one of the server's models (info), and dnsc's transmit (with its side
    information) and receive give what they give in-process."""
    import torch
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    client, local = ServerBackend(server[0], timeout=120), LocalBackend("cpu")
    assert client.info("vae_cifar10_k512")["k"] == 512
    imgs = load_dataset("sample").images[:3]
    _, obs = equalized_batch(client, imgs, imgs, "awgn", 5.0, float("inf"), "vae_cifar10_k512", "vae_cifar10_k512",
                             1, torch.Generator().manual_seed(0), scheme="dnsc")
    _, here_obs = equalized_batch(local, imgs, imgs, "awgn", 5.0, float("inf"), "vae_cifar10_k512",
                                  "vae_cifar10_k512", 1, torch.Generator().manual_seed(0), scheme="dnsc")
    assert obs.side_info == here_obs.side_info and len(obs.side_info) == 3
    torch.testing.assert_close(obs.zhat, here_obs.zhat, rtol=1e-5, atol=1e-5)
    obs.options = {"sampler": "tweedie"}
    remote, here = client.receive("dnsc", obs), local.receive("dnsc", obs)
    assert remote.nfe == here.nfe == 1
    np.testing.assert_allclose(remote.latents, here.latents, rtol=1e-4, atol=1e-4)


def test_cdiff_runs_on_the_server_as_in_process(server):
    """The CDiff systems are the server's models (the cdiff one without a decode op: it decodes
    by reverse diffusion), and the cdiff scheme's transmit and receive (a fast sampler, and the
    matched AE's) give on the server what they give in-process."""
    import torch
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    client, local = ServerBackend(server[0], timeout=120), LocalBackend("cpu")
    models = client.server_info()["models"]
    assert models["cdiff_awgn_k512"]["decode"] is None and models["cdiff_ae_awgn_k512"]["k"] == 512
    imgs = load_dataset("sample").images[:3]
    for scheme, model, options in (("cdiff", "cdiff_awgn_k512", {"steps": 2, "sampler": "ddim"}),
                                   ("cdiff-ae", "cdiff_ae_awgn_k512", {"k": 256})):
        (_, obs), (_, here_obs) = (equalized_batch(b, imgs, imgs, "awgn", 5.0, float("inf"), model, model, 1,
                                                   torch.Generator().manual_seed(0), scheme=scheme, options=options)
                                   for b in (client, local))
        torch.testing.assert_close(obs.zhat, here_obs.zhat, rtol=1e-5, atol=1e-5)
        obs.options = options
        remote, here = client.receive(scheme, obs), local.receive(scheme, obs)
        assert remote.nfe == here.nfe == options.get("steps", 0)
        assert np.abs(remote.images.astype(int) - here.images.astype(int)).max() <= 1


def test_jscna_ad_runs_on_the_server_as_in_process(server):
    """jscna-ad's transmitter gets the channel's fading over the wire (genie CSIT), and its
    receiver (attention, masked token subsets) gives on the server what it gives in-process."""
    import torch
    from gnuradio.semcom.schemes.link_sim import equalized_batch
    client, local = ServerBackend(server[0], timeout=120), LocalBackend("cpu")
    imgs = load_dataset("sample").images[:3]
    options = {"s_max": 4}
    (_, obs), (_, here_obs) = (equalized_batch(b, imgs, imgs, "rayleigh", 8.0, float("inf"), "vae_cifar10_k512",
                                               "vae_cifar10_k512", 1, torch.Generator().manual_seed(0),
                                               scheme="jscna-ad", options=options) for b in (client, local))
    torch.testing.assert_close(obs.zhat, here_obs.zhat, rtol=1e-5, atol=1e-5)
    obs.options = options
    remote, here = client.receive("jscna-ad", obs), local.receive("jscna-ad", obs)
    assert remote.extra["patch_nfe"] == here.extra["patch_nfe"] and remote.nfe == pytest.approx(here.nfe)
    assert np.abs(remote.images.astype(int) - here.images.astype(int)).max() <= 1
