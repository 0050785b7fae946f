"""apps/run_link.py: outputs, JSON lines, and one clear line for every bad argument."""

import csv
import functools
import importlib.util
import json
import subprocess
import sys
import time

import pytest

from gnuradio.semcom.core.models import jscc_model_name

from conftest import REPO, needs_mnist

APP = REPO / "apps" / "run_link.py"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, str(APP), "--no-progress", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


@functools.lru_cache(maxsize=None)
def run_link_module():
    spec = importlib.util.spec_from_file_location("run_link_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(capsys, *args):
    """(exit status, stderr) of run_link's main() on an argument error: the checks of a
    subprocess run without the second of importing torch and GNU Radio each time."""
    with pytest.raises(SystemExit) as exc:
        run_link_module().main(["--no-progress", *args])
    return exc.value.code, capsys.readouterr().err


@pytest.mark.slow
def test_batch_run_writes_everything(tmp_path):
    out = tmp_path / "out"
    res = run("--dataset", "sample", "--images", "16", "--engine", "batch", "--channel", "awgn,rayleigh",
              "--snr", "0,20", "--sinr", "inf,0", "--json", "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 8
    required = {"receiver", "channel", "snr_db", "sinr_db", "images", "cbr", "psnr_db", "ssim", "lpips",
                "latent_mse_db", "nfe", "seconds", "images_per_s"}
    for r in rows:
        assert required <= set(r)
        assert r["images"] == 16 and r["cbr"] == pytest.approx(1 / 6, abs=1e-5)
    by = {(r["channel"], r["snr_db"], r["sinr_db"]): r for r in rows}
    for ch in ("awgn", "rayleigh"):
        assert by[(ch, 20.0, None)]["psnr_db"] > by[(ch, 0.0, None)]["psnr_db"]
        assert by[(ch, 20.0, None)]["psnr_db"] > by[(ch, 20.0, 0.0)]["psnr_db"]
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    for name in ("psnr_mmse_awgn.png", "psnr_mmse_rayleigh.png", "ssim_mmse_awgn.png", "grid_awgn.png",
                 "grid_rayleigh.png", "results.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".tmp_*"))


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagenet"], "unknown dataset"),
    pytest.param(["--dataset", "mnist", "--user-model", jscc_model_name("user", "awgn", 512)], "takes images of shape",
                 marks=needs_mnist),
    (["--snr", "10,,20"], "malformed"),
    (["--snr", "ten"], "not a dB value"),
    (["--snr", "0:20:-5"], "malformed range"),
    (["--sinr", "nan"], "not a dB value"),
    (["--channel", "rician"], "unknown channel"),
    (["--receiver", "magic"], "unknown receiver"),
    (["--receiver", "icdm", "--receiver-options", "steps"], "NAME=VALUE"),
    (["--receiver", "icdm", "--receiver-options", "stepz=3"], "no listed receiver has an option"),
    (["--receiver", "icdm", "--receiver-options", "cddm.steps=3"], "not among --receiver"),
    (["--receiver", "cddm", "--receiver-options", "steps=many"], "must be a int"),
    (["--receiver", "icdm", "--k", "256"], "no shipped diffusion prior"),
    (["--images", "100000"], "has only"),
    (["--k", "300"], "no shipped model"),
    (["--snr", "0", "--sinr", "5"], "no operating point"),
    (["--snr", "inf"], "SNR must be finite"),
    (["--snr", "10,inf", "--engine", "batch"], "SNR must be finite"),
    (["--sinr", "0", "--interferer-model", jscc_model_name("interferer", "awgn", 256)], "must share the channel"),
    (["--seed", "-1"], "--seed >= 0"),
    (["--receiver", "mmse,mmse"], "listed twice"),
    (["--device", "potato"], "--device"),
    (["--receiver", "mmse", "--engine", "batch", "--csit-error", "0.1"], "does not use CSI at the transmitter"),
    (["--receiver", "jscna-ad", "--channel", "rayleigh", "--csit-error", "0.1"], "in --engine batch"),
    (["--receiver", "jscna-ad", "--channel", "rayleigh", "--engine", "batch", "--csit-error", "2"], "in [0, 1]"),
    (["--device", "cuda:7"], "--device"),  # no such CUDA device here (none at all on CI)
])
def test_bad_arguments_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    status, stderr = run_in_process(capsys, *args, "--out", str(out))
    assert status == 2
    lines = [l for l in stderr.splitlines() if l.startswith("run_link.py: error")]
    assert len(lines) == 1 and message in lines[0], stderr
    assert "usage:" not in stderr, stderr  # one line, not the usage block
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--snr", "ten"], "not a dB value"),
    (["--receiver", "icdm", "--k", "256", "--server", "auto"], "does not have"),  # the server's priors
])
def test_bad_arguments_from_the_command_line(tmp_path, args, message):
    out = tmp_path / "out"
    res = run(*args, "--out", str(out))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("run_link.py: error") and message in res.stderr, \
        res.stderr  # one line: no usage block, no traceback
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_empty_out_is_refused_and_writes_nothing_here(tmp_path):
    res = run("--out", "", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip() == "run_link.py: error: --out must name a directory"
    assert not any(tmp_path.iterdir())


def test_help_lists_every_scheme_with_its_options(capsys):
    """--help is generated from the registry: each scheme, its description, each option's default."""
    from gnuradio.semcom import schemes
    with pytest.raises(SystemExit) as exc:
        run_link_module().main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for name in schemes.names():
        scheme = schemes.get(name)
        assert f"  {name}: {scheme.description}" in text
        for option in scheme.options:
            assert f"{option.name}={option.default}" in text, (name, option.name)


@pytest.mark.slow
def test_help_is_still_the_full_text():
    res = run("--help")
    assert res.returncode == 0 and "usage:" in res.stdout and "--receiver-options" in res.stdout


@pytest.mark.slow
def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run("--out", str(blocker / "sub"))
    assert res.returncode == 2 and "not a writable directory" in res.stderr


@pytest.mark.slow
def test_diffusion_receivers_on_both_engines(tmp_path):
    """cddm and icdm run end to end on both engines; options reach the receiver (NFE)."""
    for engine in ("batch", "gnuradio"):
        res = run("--dataset", "sample", "--images", "4", "--engine", engine, "--snr", "20", "--sinr", "0",
                  "--receiver", "mmse,cddm,icdm", "--receiver-options", "steps=3,icdm.zeta_i=0.5",
                  "--no-lpips", "--json", "--out", str(tmp_path / engine))
        assert res.returncode == 0, res.stderr
        rows = {r["receiver"]: r for r in map(json.loads, res.stdout.splitlines())}
        assert rows["mmse"]["nfe"] == 0 and rows["icdm"]["nfe"] == 6 and 1 <= rows["cddm"]["nfe"] <= 3
        assert all(r["images"] == 4 and r["lost"] == 0 for r in rows.values())


@pytest.mark.slow
def test_rows_record_what_reproduces_them_files_are_0644_and_stale_plots_go(tmp_path):
    """Every row names its receiver's resolved options, channel, coherence, SNR/SINR, models,
    k, seed, engine, server and version; a rerun into the same --out leaves none of an earlier
    run's plots; files get the umask's permissions; receivers are compared in one plot and
    side by side in the grid."""
    import os
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("psnr_icdm_awgn.png", "grid_rayleigh.png", "compare_psnr_rayleigh.png"):
        (out / stale).write_bytes(b"old")
    res = subprocess.run([sys.executable, str(APP), "--no-progress", "--no-lpips", "--dataset", "sample",
                          "--images", "4", "--engine", "batch", "--receiver", "mmse,cddm", "--snr", "20,10",
                          "--sinr", "inf,0", "--coherence", "2", "--seed", "7", "--receiver-options", "steps=2",
                          "--json", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, preexec_fn=lambda: os.umask(0o022))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 8
    from gnuradio.semcom.schemes import get
    CDDM_DEFAULTS = get("cddm").defaults
    from gnuradio.semcom.core.version import __version__
    for r in rows:
        assert r["receiver_options"] == ({} if r["receiver"] == "mmse" else dict(CDDM_DEFAULTS, steps=2))
        assert (r["coherence"], r["seed"], r["engine"], r["k"], r["server"]) == (2, 7, "batch", 512, None)
        assert r["batch_size"] == 256
        assert r["user_model"] == "jscc_user_awgn_k512" and r["version"] == __version__
        assert r["interferer_model"] == (None if r["sinr_db"] is None else "jscc_interferer_awgn_k512")
        assert r["dataset"] == "sample" and r["images_requested"] == 4 and r["lost"] == 0 and r["error"] is None
    with open(out / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert json.loads(csv_rows[-1]["receiver_options"]) == rows[-1]["receiver_options"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["results.csv", "results.jsonl", "compare_psnr_awgn.png", "compare_ssim_awgn.png",
                            "psnr_mmse_awgn.png", "ssim_mmse_awgn.png", "psnr_cddm_awgn.png", "ssim_cddm_awgn.png",
                            "grid_awgn.png"])
    for p in out.iterdir():
        assert p.stat().st_mode & 0o777 == 0o644, (p.name, oct(p.stat().st_mode))
    from PIL import Image
    width, height = Image.open(out / "grid_awgn.png").size
    assert width < height  # sent + 2 receiver columns; 4 operating points x 3 images as rows


def _interrupt_after_first_row(args, tmp_path):
    """Start run_link in its own process group, Ctrl-C the group (as a terminal does) in the
    middle of its second operating point (icdm makes each take a second or more, so the
    signal lands inside the engine's run); (process, stdout, stderr, pids of its children)."""
    import os
    import signal
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(APP), "--no-progress", "--no-lpips", "--json", "--dataset", "sample",
                             "--receiver", "icdm", "--snr", ",".join(["10"] * 12), "--sinr", "0",
                             "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = proc.stdout.readline()
        assert first, proc.communicate()[1][-2000:]
        time.sleep(0.5)
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                    text=True).stdout.split()]
        # A side process outside the terminal's process group: Ctrl-C reaches run_link alone,
        # which answers it by stopping its flowgraph and then the server.
        assert all(os.getpgid(pid) != proc.pid for pid in children)
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)
        seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, stdout, stderr, children, out, seconds


@pytest.mark.slow
@pytest.mark.parametrize("engine, server", [("gnuradio", ""), ("gnuradio", "auto"), ("batch", ""), ("batch", "auto")])
def test_ctrl_c_stops_the_whole_run_exit_130_nothing_written(tmp_path, engine, server):
    import os
    # A reply lost to the interrupt would hold the stop for the whole server timeout: make
    # that 30 s, so that a stop within 15 s shows that nothing waited for it.
    args = ["--engine", engine, "--server-timeout", "30"] + (["--server", server] if server else [])
    proc, stdout, stderr, children, out, seconds = _interrupt_after_first_row(args, tmp_path)
    assert proc.returncode == 130, stderr[-2000:]
    assert seconds < 15, f"Ctrl-C took {seconds:.1f} s to stop the run"
    assert "BackendUnavailable" not in stderr  # nothing was cut off from the server
    assert "interrupted; no results written" in stderr
    assert stdout == ""  # no further operating point after the interrupt
    assert not any(out.iterdir())
    if server:
        assert children, "run_link did not start a server"
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the server is gone too


@pytest.fixture
def in_thread_server():
    """start(**InferenceServer kwargs) -> a server serving on a thread of this process."""
    import threading
    from gnuradio.semcom.inference.server import InferenceServer
    started = []

    def start(**kwargs):
        server = InferenceServer("tcp://127.0.0.1:0", device="cpu", **kwargs)
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        started.append((server, thread))
        return server
    yield start
    for server, thread in started:
        server.stop()
        thread.join(30)


@pytest.fixture
def failing_server(in_thread_server):
    """A real server whose encoder fails: every image of a run is lost."""
    server = in_thread_server()

    def explode(*_):
        raise RuntimeError("the encoder exploded")
    server.backend.encode = explode
    return server.endpoint


@pytest.mark.slow
def test_a_sweep_above_the_servers_nfe_cap_is_refused_before_any_work(tmp_path, in_thread_server):
    server = in_thread_server(max_nfe=10)
    res = run("--receiver", "icdm", "--sinr", "0", "--receiver-options", "steps=6", "--server", server.endpoint,
              "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "up to 12 network evaluations" in res.stderr and "(10," in res.stderr, res.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_the_batch_engine_fits_its_requests_to_the_servers_caps(tmp_path, in_thread_server):
    server = in_thread_server(max_request_items=8, max_request_nfe=40)
    res = run("--engine", "batch", "--images", "20", "--receiver", "icdm", "--sinr", "0", "--receiver-options",
              "steps=2", "--server", server.endpoint, "--no-lpips", "--json", "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr[-2000:]
    row = json.loads(res.stdout)
    assert (row["images"], row["lost"], row["batch_size"]) == (20, 0, 8)  # 8 items, 8 x 4 NFE <= 40


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["batch", "gnuradio"])
def test_a_run_that_loses_every_image_exits_1_with_the_first_error(tmp_path, failing_server, engine):
    res = run("--dataset", "sample", "--images", "4", "--engine", engine, "--server", failing_server,
              "--server-timeout", "1", "--no-lpips", "--json", "--out", str(tmp_path / "out"))
    assert res.returncode == 1, res.stderr[-2000:]
    row = json.loads(res.stdout)
    assert row["images"] == 0 and row["lost"] == 4 and "the encoder exploded" in row["error"]
    assert "lost 4 of 4 images" in res.stderr and "the encoder exploded" in res.stderr
    assert "every image was lost" in res.stderr.splitlines()[-1]
    assert (tmp_path / "out" / "results.jsonl").exists()  # what happened is still on record
