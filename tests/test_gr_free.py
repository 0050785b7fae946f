"""GNU Radio-free means GNU Radio-free: gnuradio.semcom.core, .diffusion, .inference, .nets,
.schemes, .phy and .digital import and run with GNU Radio, pmt and the C++ extension made
unimportable; `from gnuradio import semcom` loads none of them until a block is asked for,
and then fails clearly where they are missing; with them, the blocks resolve lazily.

The GNU Radio-free runs are fresh interpreters (sys.executable) with an import blocker
first on sys.meta_path (BLOCKER below)."""

import os
import re
import select
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

# Prepended to every GNU Radio-free script. It refuses pmt and every gnuradio.* module
# (gnuradio.gr, .blocks, .pdu, .digital, .fft, .analog, .network, ..., the C++ extension
# gnuradio.semcom.semcom_python and the block modules gnuradio.semcom.<block>) except the
# package gnuradio.semcom itself and its GNU Radio-free sub-packages. With
# SEMCOM_NO_GR_PATH set, `gnuradio` itself is looked up in that directory alone: a directory
# gnuradio/ without __init__.py there is then a namespace package, as on a machine without
# GNU Radio (this one has GNU Radio's gnuradio/__init__.py on sys.path).
BLOCKER = textwrap.dedent(r'''
    import importlib.abc, importlib.machinery, os, sys

    GR_FREE = ("gnuradio.semcom.core", "gnuradio.semcom.diffusion", "gnuradio.semcom.inference",
               "gnuradio.semcom.schemes", "gnuradio.semcom.phy", "gnuradio.semcom.nets", "gnuradio.semcom.digital")

    def blocked(name):
        if name == "pmt" or name.startswith("pmt."):
            return True
        if not name.startswith("gnuradio."):
            return False
        return not (name == "gnuradio.semcom" or name in GR_FREE
                    or name.startswith(tuple(p + "." for p in GR_FREE)))

    class NoGnuRadio(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                raise ModuleNotFoundError(f"No module named {name!r} (test_gr_free: no GNU Radio here)",
                                          name=name)
            if name == "gnuradio" and os.environ.get("SEMCOM_NO_GR_PATH"):
                return importlib.machinery.PathFinder.find_spec(name, [os.environ["SEMCOM_NO_GR_PATH"]])
            return None

    sys.meta_path.insert(0, NoGnuRadio())

    def check_nothing_of_gnu_radio_loaded():
        assert "gnuradio.gr" not in sys.modules and "pmt" not in sys.modules
        loaded = sorted(m for m in sys.modules if blocked(m))
        assert not loaded, loaded
''')

USER = "jscc_user_awgn_k512"


def run_without_gr(script, timeout=240, env=None):
    """Runs BLOCKER + script in a fresh interpreter; its stdout (it must exit 0)."""
    proc = subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, **(env or {})))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


# What every GR-free run imports and does: all modules of the sub-packages, LocalBackend
# encode + decode of the shipped sample images, the batch engine with a diffusion scheme,
# an InferenceServer on a thread answering a ping, an encode (equal to the local one) and
# the same batch run through it. `print("ok")` at the end.
IMPORT_AND_RUN = f'''
    import importlib, importlib.util, pkgutil, threading
    import numpy as np
    import torch

    names = []
    for sub in ("core", "diffusion", "inference", "schemes", "phy", "nets", "digital"):
        pkg = importlib.import_module("gnuradio.semcom." + sub)
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            names.append(importlib.import_module(info.name).__name__)
    for must in ("core.cli", "core.version", "core.models", "diffusion.samplers", "inference.client", "phy.estimate",
                 "nets.kl_vae",
                 "inference.local", "inference.protocol", "inference.server", "inference.spawn"):
        assert "gnuradio.semcom." + must in names, must
    check_nothing_of_gnu_radio_loaded()

    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.core.metrics import psnr
    from gnuradio.semcom.core.data import to_tensor
    from gnuradio.semcom.core.mapping import complex_to_real, to_symbols
    from gnuradio.semcom.inference.client import ServerBackend
    from gnuradio.semcom.inference.local import LocalBackend
    from gnuradio.semcom.inference.server import InferenceServer

    images = load_dataset("sample").images[:4]
    local = LocalBackend("cpu")
    latents = local.encode("{USER}", images, 20.0)
    symbols, _ = to_symbols(torch.from_numpy(latents))  # unit power, as the decoder receives them
    decoded = local.decode("{USER}", complex_to_real(symbols).numpy(), 20.0)
    assert latents.shape == (4, 1024) and decoded.shape == images.shape and decoded.dtype == np.uint8
    quality = float(psnr(to_tensor(decoded), to_tensor(images)).mean())
    assert quality > 25, quality  # noiseless: the model's own reconstruction (~31 dB)

    # the batch engine: a scheme with a diffusion prior, in-process and through the server
    from gnuradio.semcom.schemes.link_sim import simulate
    from gnuradio.semcom.core.models import default_models
    user, interferer = default_models("awgn", 512)
    here = simulate(local, images[:2], "awgn", 20.0, 5.0, user, interferer, "cddm", seed=1,
                    receiver_options={{"steps": 2}})
    assert len(here.received) == 2 and here.nfe == 2 and not here.errors

    server = InferenceServer("tcp://127.0.0.1:0", device="cpu")
    loop = threading.Thread(target=server.serve)
    loop.start()
    try:
        client = ServerBackend(server.endpoint, timeout=60)
        assert client.ping()["pong"] is True
        np.testing.assert_allclose(client.encode("{USER}", images, 20.0), latents, rtol=1e-5, atol=1e-5)
        there = simulate(client, images[:2], "awgn", 20.0, 5.0, user, interferer, "cddm", seed=1,
                         receiver_options={{"steps": 2}})
        np.testing.assert_allclose(there.latent_mse_db, here.latent_mse_db, atol=1e-3)
        client.close()
    finally:
        server.stop()
        loop.join(60)
    assert not loop.is_alive()
    check_nothing_of_gnu_radio_loaded()
    print("ok", len(names), "modules")
'''


@pytest.mark.slow
def test_gr_free_packages_import_and_run_without_gnu_radio():
    assert run_without_gr(IMPORT_AND_RUN).startswith("ok")


def test_package_imports_without_gnu_radio_and_a_block_names_what_is_missing():
    out = run_without_gr('''
        from gnuradio import semcom
        check_nothing_of_gnu_radio_loaded()
        assert "image_link" in dir(semcom) and "fading_interference_channel_cc" in semcom.__all__
        for ask in (lambda: semcom.image_link, lambda: semcom.fading_interference_channel_cc,
                    lambda: exec("from gnuradio.semcom import jscc_encoder")):
            try:
                ask()
            except ImportError as exc:
                print(exc)
            else:
                raise AssertionError("a block resolved without GNU Radio")
        check_nothing_of_gnu_radio_loaded()
    ''')
    lines = out.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert "C++ extension semcom_python did not load" in line and "GNU Radio" in line, line
        assert "gnuradio.semcom.core, .diffusion, .schemes and .inference do not" in line


def test_import_of_the_package_is_cheap():
    """`import gnuradio.semcom` alone loads neither GNU Radio, pmt, the extension nor torch."""
    out = subprocess.run([sys.executable, "-c", "import sys, gnuradio.semcom; print(sorted(sys.modules))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    loaded = eval(out)
    heavy = [m for m in loaded if m.startswith(("gnuradio.", "pmt", "torch", "numpy")) and m != "gnuradio.semcom"]
    assert not heavy, heavy


def test_blocks_resolve_lazily_and_dir_lists_them():
    """With GNU Radio: every block of the table resolves, on first use (a fresh interpreter),
    and stays the block even where its module was imported first (`import
    gnuradio.semcom.jscc_receiver` imports equalized_to_pdu's, diffusion_receiver's, ...)."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent('''
        import sys
        from gnuradio import semcom
        assert "gnuradio.gr" not in sys.modules and "gnuradio.semcom.semcom_python" not in sys.modules
        import gnuradio.semcom.jscc_receiver  # its module first, and with it other blocks' modules
        assert "gnuradio.semcom.equalized_to_pdu" in sys.modules
        from gnuradio.semcom import jscc_encoder
        blocks = semcom.__all__
        assert set(blocks) <= set(dir(semcom)), set(blocks) - set(dir(semcom))
        for name in blocks:
            block = getattr(semcom, name)
            assert isinstance(block, type) and block.__name__ == name, (name, block)
        assert jscc_encoder is semcom.jscc_encoder
        assert semcom.semcom_python.mmse_equalizer_cc is semcom.mmse_equalizer_cc
        try:
            semcom.no_such_block
        except AttributeError as exc:
            assert "no_such_block" in str(exc)
        else:
            raise AssertionError("an unknown name resolved")
        print(" ".join(blocks))
    ''')], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-4000:]
    blocks = set(out.stdout.split())
    # Every GRC block's `make: semcom.<name>(...)` (its .yml, or the .yml.in it is made from)
    # is in the one table.
    made = set()
    for yml in (REPO / "grc").glob("semcom_*.block.yml*"):
        text = yml.read_text()
        assert "from gnuradio import semcom" in text, yml.name
        made.update(re.findall(r"make:\s*(?:\|-\s*)?semcom\.(\w+)\(", text))
    assert made and made <= blocks, made - blocks


def no_gr_env(tmp_path, package):
    """docs/server.md's recipe in tmp_path: `package` (a gnuradio/semcom tree) as
    lib/gnuradio/semcom, lib/ on PYTHONPATH, and BLOCKER as a sitecustomize.py so that any
    interpreter started with this environment (python -m ...) has no GNU Radio."""
    (tmp_path / "lib" / "gnuradio").mkdir(parents=True)  # no __init__.py: a namespace package
    (tmp_path / "lib" / "gnuradio" / "semcom").symlink_to(package)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join([f"{tmp_path}/site", f"{tmp_path}/lib"] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return dict(os.environ, PYTHONPATH=path, SEMCOM_NO_GR_PATH=str(tmp_path / "lib"), PYTHONDONTWRITEBYTECODE="1")


@pytest.mark.slow
def test_docs_recipe_a_checkout_on_pythonpath_serves_without_gnu_radio(tmp_path):
    """The checkout's python/semcom as gnuradio/semcom in a directory on PYTHONPATH, then
    `python -m gnuradio.semcom.inference.server`: a client pings it and encodes."""
    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.inference.client import ServerBackend

    env = no_gr_env(tmp_path, REPO / "python" / "semcom")
    where = subprocess.run([sys.executable, "-c", "import gnuradio, gnuradio.semcom as s, sys; "
                            "print(list(gnuradio.__path__), s.__file__, sys.modules['sitecustomize'].__file__)"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [f"['{tmp_path}/lib/gnuradio']", f"{tmp_path}/lib/gnuradio/semcom/__init__.py",
                                    f"{tmp_path}/site/sitecustomize.py"]
    log = tmp_path / "server.log"
    with open(log, "w") as err:
        server = subprocess.Popen([sys.executable, "-m", "gnuradio.semcom.inference.server", "--device", "cpu",
                                   "--bind", "tcp://127.0.0.1:0", "--threads", "2"],
                                  env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert select.select([server.stdout], [], [], 120)[0], "the server did not start in 120 s"
        line = server.stdout.readline()
        assert line.startswith("semcom_server: serving on tcp://127.0.0.1:"), (line, log.read_text())
        client = ServerBackend(line.split()[-1], timeout=60)
        assert client.ping()["pong"] is True
        latents = client.encode(USER, load_dataset("sample").images[:2], 10.0)
        assert latents.shape == (2, 1024)
        client.close()
    finally:
        server.terminate()
        assert server.wait(60) == 0
