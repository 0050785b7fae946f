"""The image link: blocks, both engines, and their agreement (shipped models, real images)."""

import math
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.core.data import to_tensor
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.schemes.link_sim import simulate
from gnuradio.semcom.core import metrics
from gnuradio.semcom.core.models import default_models, jscc_model_name
from gnuradio.semcom.inference import get_backend
from gnuradio.semcom.pdu_util import image_pdu

from conftest import DATA, needs_cifar10

USER, INTERFERER = default_models("awgn", 512)


def run_messages(block, port_msgs, out_port="pdus", wait_for=None, timeout=20):
    tb = gr.top_block()
    dbg = blocks.message_debug()
    tb.msg_connect(block, out_port, dbg, "store")
    tb.start()
    try:
        for port, msg in port_msgs:
            block._post(pmt.intern(port), msg)
        deadline = time.time() + timeout
        want = len(port_msgs) if wait_for is None else wait_for
        while dbg.num_messages() < want and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        tb.stop()
        tb.wait()
    return [dbg.get_message(i) for i in range(dbg.num_messages())]


@pytest.mark.slow
def test_image_source_emits_ids_in_order_and_reverse():
    data = load_dataset("sample").images
    for order, expect in (("forward", [0, 1, 2]), ("reverse", [31, 30, 29])):
        src = semcom.image_source("sample", 3, 0, order, 8, 2.0)
        tb = gr.top_block()
        dbg = blocks.message_debug()
        tb.msg_connect(src, "pdus", dbg, "store")
        tb.run()  # no acks connected: it waits ack_timeout, warns, then ends
        msgs = [dbg.get_message(i) for i in range(dbg.num_messages())]
        assert len(msgs) == 3
        for i, (msg, index) in enumerate(zip(msgs, expect)):
            meta = pmt.car(msg)
            assert pmt.to_long(pmt.dict_ref(meta, pmt.intern("image_id"), pmt.PMT_NIL)) == i
            img = np.array(pmt.u8vector_elements(pmt.cdr(msg)), np.uint8).reshape(32, 32, 3)
            assert np.array_equal(img, data[index])


def test_bad_construction_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        semcom.image_source("imagenet")
    with pytest.raises(CheckpointError, match="no_such_model"):
        semcom.jscc_encoder("no_such_model")
    broken = tmp_path / "broken"
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 10)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CheckpointError, match="broken"):
        semcom.jscc_decoder(str(broken))


def test_encoder_drops_wrong_size_and_garbage_keeps_going():
    enc = semcom.jscc_encoder(USER, 10.0)
    good = image_pdu(pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(0)),
                     load_dataset("sample").images[0])
    wrong = image_pdu(pmt.make_dict(), np.zeros((28, 28, 1), np.uint8))
    out = run_messages(enc, [("pdus", pmt.intern("junk")), ("pdus", wrong), ("pdus", good)], wait_for=1)
    assert len(out) == 1
    assert pmt.length(pmt.cdr(out[0])) == 1024
    assert pmt.to_double(pmt.dict_ref(pmt.car(out[0]), pmt.intern("snr_db"), pmt.PMT_NIL)) == 10.0


def test_sink_counts_missing_duplicates_and_malformed():
    sink = semcom.image_sink()
    imgs = load_dataset("sample").images[:3]
    meta = lambda i: pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(i))
    msgs = [("reference", image_pdu(meta(i), imgs[i])) for i in range(3)]
    msgs += [("pdus", image_pdu(meta(0), imgs[0])), ("pdus", image_pdu(meta(0), imgs[0])),
             ("pdus", image_pdu(meta(1), imgs[1] // 2)), ("pdus", pmt.intern("junk")),
             ("pdus", image_pdu(pmt.make_dict(), imgs[2]))]  # no image_id
    acks = run_messages(sink, msgs, out_port="ack", wait_for=3)
    s = sink.summary()
    assert (s["images"], s["missing"], s["duplicates"]) == (2, 1, 1)
    assert s["malformed"] == 2
    # Every image PDU that arrives is acknowledged, even one the sink cannot score, so the
    # sources' pacing never stalls on it; junk that is no image PDU is not.
    assert len(acks) == 4
    # Image 0 came back exact: infinite-ish PSNR is capped, image 1 is darker: finite.
    assert s["per_image"]["psnr_db"][0] > 100 and s["per_image"]["psnr_db"][1] < 20


def gr_engine(n, channel, snr, sinr, user, interferer, seed=0, receiver="mmse"):
    tb = semcom.image_link(f"npz:{DATA / 'cifar10_test.npz'}[:{n}]", n, channel, snr, sinr,
                           user, interferer, receiver, seed=seed, with_lpips=False)
    tb.run()
    return tb.sink.summary()


@pytest.mark.slow
@needs_cifar10
@pytest.mark.parametrize("channel, snr, sinr", [("awgn", 10.0, math.inf), ("awgn", 10.0, 5.0),
                                                ("rayleigh", 10.0, 5.0)])
def test_engines_agree(channel, snr, sinr):
    """Same images, same seed: the flowgraph and the vectorised batch engine agree within
    0.2 dB PSNR (their channel draws come from different generators)."""
    n = 64
    user = jscc_model_name("user", channel, 512)
    s = gr_engine(n, channel, snr, sinr, user, INTERFERER)
    assert s["images"] == n and s["missing"] == 0
    imgs = load_dataset(f"npz:{DATA / 'cifar10_test.npz'}[:{n}]").images
    res = simulate(get_backend(), imgs, channel, snr, sinr, user, INTERFERER, seed=0)
    batch_psnr = metrics.psnr(to_tensor(res.received), to_tensor(imgs)).mean().item()
    assert s["psnr_db"] == pytest.approx(batch_psnr, abs=0.2)
    assert s["latent_mse_db"] == pytest.approx(metrics.db_mean(res.latent_mse_db), abs=0.3)


@pytest.mark.slow
@needs_cifar10
@pytest.mark.parametrize("receiver", ["cddm", "icdm"])
def test_engines_agree_with_a_diffusion_receiver(receiver):
    """The flowgraph (equalizer weights and CSI -> equalized_to_pdu -> icdm_canceller) and the
    batch engine give the same latent MSE within 0.3 dB with the default options."""
    n, user = 32, jscc_model_name("user", "rayleigh", 512)
    s = gr_engine(n, "rayleigh", 20.0, 0.0, user, INTERFERER, receiver=receiver)
    assert s["images"] == n and s["missing"] == 0
    imgs = load_dataset(f"npz:{DATA / 'cifar10_test.npz'}[:{n}]").images
    res = simulate(get_backend(), imgs, "rayleigh", 20.0, 0.0, user, INTERFERER, receiver, seed=0)
    mmse = simulate(get_backend(), imgs, "rayleigh", 20.0, 0.0, user, INTERFERER, "mmse", seed=0)
    assert s["latent_mse_db"] == pytest.approx(metrics.db_mean(res.latent_mse_db), abs=0.3)
    assert s["latent_mse_db"] < metrics.db_mean(mmse.latent_mse_db) - 3.0  # and it does clean up


@needs_cifar10
def test_interference_and_noise_hurt_in_the_flowgraph():
    n = 32
    clean = gr_engine(n, "awgn", 20.0, math.inf, USER, INTERFERER)
    noisy = gr_engine(n, "awgn", 0.0, math.inf, USER, INTERFERER)
    jammed = gr_engine(n, "awgn", 20.0, 0.0, USER, INTERFERER)
    assert clean["psnr_db"] > noisy["psnr_db"] + 2
    assert clean["psnr_db"] > jammed["psnr_db"] + 5
    # Latent error at SINR 0 dB is near the interference power (0 dB), at SNR 20 near -20 dB.
    assert jammed["latent_mse_db"] > -3 and clean["latent_mse_db"] < -15


def test_the_receiver_block_hands_its_coherence_to_the_scheme():
    """Block fading changes the receivers' Gaussian of the interference, so the block passes
    its `coherence` on in every Observation (as the batch engine does), and refuses a bad one."""
    rx = semcom.diffusion_receiver("lmmse-full", "rayleigh", 512, 20.0, 0.0, coherence=16)
    seen, receive = [], rx.backend.receive
    rx.backend = type("Spy", (), {"receive": lambda self, name, obs: (seen.append(obs), receive(name, obs))[1]})()
    rng = np.random.default_rng(0)
    z = lambda: (rng.standard_normal(512) + 1j * rng.standard_normal(512)).astype(np.complex64)
    out = rx.run_batch([((20.0, 0.0, "given"), z(), z(), z(), 0, None)])   # key: (SNR, SINR, snr_source)
    assert len(out) == 1 and out[0][0].shape == (32, 32, 3)
    assert [obs.coherence for obs in seen] == [16]
    with pytest.raises(ValueError, match="coherence"):
        semcom.diffusion_receiver("lmmse-full", "rayleigh", 512, 20.0, 0.0, coherence=0)
