"""The scheme comparison: core.scoreboard (running PSNR/SSIM/NFE per scheme, matching by image
id, the row shown, one acknowledgement per image), the image_compare_display block (Qt,
offscreen), the "nfe" that receivers put in the image metadata, what the example flowgraph
relies on (one seed = one channel draw in every branch; schemes that share a transmitter
send the same symbols) and the example itself (grcc, and a short headless run)."""

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core import metrics
from gnuradio.semcom.core.data import to_tensor
from gnuradio.semcom.core.scoreboard import MAX_SCHEMES, Scoreboard, parse_labels
from gnuradio.semcom.pdu_util import image_pdu

from conftest import REPO
from test_block_runtime import c32, meta, post_and_collect
from test_examples import compile_grc

EXAMPLE = REPO / "grc" / "examples" / "scheme_comparison_gui.grc"


def images(n, shape=(32, 32, 3), seed=0):
    return np.random.default_rng(seed).integers(20, 236, (n,) + shape, dtype=np.uint8)


def shifted(image, levels):
    """The image with every value moved by `levels`: PSNR 20 log10(255 / levels) exactly."""
    return (image.astype(np.int16) + levels).astype(np.uint8)


_APP = []


def qt_app():
    """The process's QApplication (kept referenced: one that is collected takes Qt down)."""
    from PyQt5 import Qt
    if not _APP:
        _APP.append(Qt.QApplication.instance() or Qt.QApplication([]))
    return _APP[0]


# ------------------------------------------------------------------ the scoreboard (no GNU Radio, no Qt)
def test_running_means_against_a_hand_computation():
    sent = images(3)
    board = Scoreboard("a, b")
    assert board.labels == ["a", "b"]
    for i, image in enumerate(sent):
        board.sent(i, image)
    # a: shifted by 5, 10 and 20 levels; PSNR by hand, SSIM the metric's per image, then means
    for i, (levels, nfe) in enumerate(((5, 4.0), (10, 6.0), (20, 11.0))):
        board.received("a", i, shifted(sent[i], levels), nfe=nfe)
    psnr_hand = [20 * math.log10(255 / l) for l in (5, 10, 20)]
    ssim_each = [float(metrics.ssim(to_tensor(shifted(sent[i], l)[None]), to_tensor(sent[i][None]))[0])
                 for i, l in enumerate((5, 10, 20))]
    a = board.stats("a")
    assert a["images"] == a["received"] == 3
    assert a["psnr_db"] == pytest.approx(np.mean(psnr_hand), abs=1e-3)
    assert a["ssim"] == pytest.approx(np.mean(ssim_each), abs=1e-6)
    assert a["nfe"] == pytest.approx(7.0)
    # b: the exact image (PSNR at the metric's clamp, SSIM 1); no "nfe" in its metadata
    board.received("b", 1, sent[1])
    b = board.stats("b")
    assert b["images"] == 1 and b["ssim"] == pytest.approx(1.0, abs=1e-5) and b["psnr_db"] > 100
    assert b["nfe"] is None
    assert board.caption("b", 1) == f"b  #1\nPSNR {b['psnr_db']:.2f} dB  SSIM 1.000\nNFE -  n = 1"
    assert board.caption("a").splitlines()[1] == f"PSNR {np.mean(psnr_hand):.2f} dB  SSIM {np.mean(ssim_each):.3f}"

    # over the last two images only (window=2)
    windowed = Scoreboard(["a"], window=2)
    for i, levels in enumerate((5, 10, 20)):
        windowed.sent(i, sent[i])
        windowed.received("a", i, shifted(sent[i], levels), nfe=float(i))
    w = windowed.stats("a")
    assert w["images"] == 3 and w["psnr_db"] == pytest.approx(np.mean(psnr_hand[1:]), abs=1e-3)
    assert w["nfe"] == pytest.approx(1.5)


def test_images_are_matched_by_id_in_any_order():
    sent = images(4, seed=1)
    board = Scoreboard(["a", "b"], lag=2)
    board.received("a", 2, sent[2])            # before its sent image: scored when it comes
    assert board.stats("a")["images"] == 0 and board.row() is None
    assert board.sent(2, sent[2]) == 1
    for i in (0, 1, 3):
        board.sent(i, sent[i])
    board.received("a", 0, sent[0])
    board.received("b", 0, sent[0])
    # each received image met its own sent image: a perfect score (any other pairing is ~10 dB)
    assert board.stats("a")["images"] == 2 and board.stats("a")["psnr_db"] > 100
    image_id, shown_sent, shown = board.row()  # the newest id that both have
    assert image_id == 0 and np.array_equal(shown_sent, sent[0])
    assert np.array_equal(shown["a"], sent[0]) and np.array_equal(shown["b"], sent[0])
    board.received("b", 2, shifted(sent[2], 10))
    image_id, shown_sent, shown = board.row()
    assert image_id == 2 and np.array_equal(shown_sent, sent[2]) and np.array_equal(shown["b"], shifted(sent[2], 10))
    assert board.stats("b")["psnr_db"] == pytest.approx(np.mean([200.0, 20 * math.log10(25.5)]), abs=0.01)
    # a repeated id is counted, not scored again; another shape is counted, not scored
    board.received("b", 2, sent[2])
    board.received("b", 3, np.zeros((16, 16, 3), np.uint8))
    assert board.stats("b")["duplicates"] == 1 and board.stats("b")["mismatched"] == 1
    assert board.stats("b")["images"] == 2
    # b stops: once a is more than `lag` ids ahead, the newest id shows, b's picture empty
    for i in range(4, 8):
        board.sent(i, sent[i % 4])
        board.received("a", i, sent[i % 4])
        assert board.row()[0] == (2 if i - 2 <= 2 else i)
    assert board.row()[2]["b"] is None


def test_one_acknowledgement_per_image_once_every_scheme_has_it():
    sent = images(6, seed=2)
    board = Scoreboard(["a", "b"])
    for i in range(6):
        board.sent(i, sent[i])
    acks = []
    acks += board.received("a", 0, sent[0])
    assert acks == []                               # b has not delivered 0 yet
    acks += board.received("b", 0, sent[0])
    assert acks == [0]
    for i in (1, 2, 3):
        acks += board.received("a", i, sent[i])
    acks += board.received("b", 1, sent[1])
    acks += board.received("b", 3, sent[3])         # b dropped 2: acknowledged with 3
    assert acks == [0, 1, 2, 3]
    assert board.received("b", 3, sent[3]) == []    # a duplicate
    assert board.received("b", 2, sent[2]) == []    # late and out of order: not acknowledged twice
    acks += board.received("b", 4, sent[4]) + board.received("a", 4, sent[4])
    assert acks == [0, 1, 2, 3, 4]


def test_a_grey_image_is_scored():
    grey = images(1, (32, 32, 1), seed=3)[0]
    board = Scoreboard("mmse")
    board.sent(0, grey)
    board.received("mmse", 0, shifted(grey, 10), nfe=0)
    s = board.stats("mmse")
    assert s["images"] == 1 and s["psnr_db"] == pytest.approx(20 * math.log10(25.5), abs=1e-3)
    assert 0 < s["ssim"] < 1 and s["nfe"] == 0


@pytest.mark.parametrize("labels, why", [
    ("", "an empty name"), ("mmse,,cddm", "an empty name"), ("mmse, cddm,mmse", "repeated mmse"),
    (",".join(f"s{i}" for i in range(MAX_SCHEMES + 1)), f"{MAX_SCHEMES + 1} names, at most {MAX_SCHEMES}"),
])
def test_bad_labels_are_refused_with_one_clear_error(labels, why):
    with pytest.raises(ValueError, match="labels must be 1 to 8 distinct comma-separated names") as err:
        parse_labels(labels)
    assert why in str(err.value)
    with pytest.raises(ValueError, match=why):   # before the block (or its Qt widget) exists
        semcom.image_compare_display(labels)


def test_bad_input_to_the_scoreboard_is_refused():
    board = Scoreboard(["a"])
    with pytest.raises(ValueError, match="unknown label 'b'"):
        board.received("b", 0, images(1)[0])
    with pytest.raises(ValueError, match="must be uint8"):
        board.sent(0, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="must be an integer"):
        board.sent("0", images(1)[0])
    assert parse_labels(["mmse", " cddm "]) == ["mmse", "cddm"]
    assert len(parse_labels(",".join(f"s{i}" for i in range(MAX_SCHEMES)))) == MAX_SCHEMES


# ------------------------------------------------------------------ the block (offscreen Qt)
def image_msg(image_id, image, **items):
    return image_pdu(meta(image_id=image_id, **items), image)


def run_display(display, posts, acks_wanted, timeout=20):
    """Post (port, msg) to a running display; (the acks it published, the Qt panels' texts)."""
    app = qt_app()
    tb = gr.top_block()
    dbg = blocks.message_debug()
    tb.msg_connect(display, "ack", dbg, "store")
    tb.start()
    try:
        for port, msg in posts:
            display._post(pmt.intern(port), msg)
        deadline = time.time() + timeout
        while dbg.num_messages() < acks_wanted and time.time() < deadline:
            app.processEvents()
            time.sleep(0.02)
        time.sleep(0.2)
        app.processEvents()
    finally:
        tb.stop()
        tb.wait()
    widget = display.qwidget()
    acks = [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
    return acks, [c.text() for c in widget.captions], widget


def test_the_block_shows_every_scheme_beside_the_sent_image():
    sent = images(3, seed=4)
    qt_app()   # a Qt widget needs the application first (a GUI flowgraph makes it first too)
    display = semcom.image_compare_display("mmse,digital", "", 2, 2)
    posts = [("sent", image_msg(i, sent[i])) for i in range(3)]
    posts += [("rx0", pmt.cons(pmt.make_dict(), pmt.init_u8vector(3, [1, 2, 3])))]   # not an image PDU: dropped
    posts += [("rx0", image_msg(i, shifted(sent[i], 10), nfe=0.0)) for i in range(3)]
    posts += [("rx1", image_msg(0, sent[0], lost=pmt.PMT_F)),
              ("rx1", image_msg(1, np.full((32, 32, 3), 128, np.uint8), lost=pmt.PMT_T))]
    acks, captions, widget = run_display(display, posts, 2)
    assert [a["image_id"] for a in acks] == [0, 1] and all(a["complete"] for a in acks)
    assert captions[0].startswith("sent  #1")       # the newest id both schemes have
    assert captions[1].startswith("mmse  #1\nPSNR 28.13 dB")
    assert "NFE 0  n = 3" in captions[1]
    assert captions[2].startswith("digital  #1") and "NFE -  n = 2  lost 1" in captions[2]
    assert all(not p.pixmap().isNull() for p in widget.pictures)
    scores = display.scores()
    assert scores["mmse"]["images"] == 3 and scores["digital"]["lost"] == 1


def test_one_label_gives_one_port_named_as_grc_names_it():
    """GRC names a message port of multiplicity 1 "rx" (of more: rx0, rx1, ...)."""
    grey = images(1, (32, 32, 1), seed=5)[0]
    qt_app()
    display = semcom.image_compare_display("cddm")
    acks, captions, widget = run_display(display, [("sent", image_msg(7, grey)),
                                                   ("rx", image_msg(7, grey, nfe=5.0))], 1)
    assert [a["image_id"] for a in acks] == [7]
    assert captions == ["sent  #7\n\n", "cddm  #7\nPSNR 200.00 dB  SSIM 1.000\nNFE 5  n = 1"]
    assert not widget.pictures[1].pixmap().isNull()   # a grey image reaches the Qt view


def test_receivers_put_their_nfe_in_the_image_metadata():
    k = 512
    out = {}
    for scheme, options in (("cddm", "steps=2"), ("mmse", "")):
        rx = semcom.diffusion_receiver(scheme, "awgn", k, 10.0, 5.0, 1.0, options, 0, max_batch=1)
        zhat = (np.random.default_rng(0).standard_normal(k) + 0j)
        pdu = pmt.cons(meta(image_id=3, w=c32(np.full(k, 0.9)), h=c32(np.ones(k))), c32(zhat))
        msgs = post_and_collect(rx, [("pdus", pdu)], 1, out_port="images")
        assert len(msgs) == 1
        out[scheme] = pmt.to_python(pmt.dict_ref(pmt.car(msgs[0]), pmt.intern("nfe"), pmt.PMT_NIL))
        assert out[scheme] == rx.nfe      # one image: the most any batch used is its own
    assert 1 <= out["cddm"] <= 2 and out["mmse"] == 0.0


# ------------------------------------------------------------------ what the example relies on
def test_channels_of_one_seed_draw_the_same_fading_interference_and_noise():
    """Two channel blocks of the same seed, different user symbols, the same interferer stream
    and different work-call sizes: the same h, and y - sqrt(Ps) h z (= sqrt(Pi) g u + n) the
    same; another seed draws otherwise."""
    n, rng = 5000, np.random.default_rng(6)
    cn = lambda: ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)
    z1, z2, u = cn(), cn(), cn()
    tb = gr.top_block()
    src_u = blocks.vector_source_c(u.tolist())
    outs = []
    for z, seed, chunk in ((z1, 3, 0), (z2, 3, 7), (z1, 4, 0)):
        channel = semcom.fading_interference_channel_cc("rayleigh", 4, 10.0, 5.0, 1.0, seed)
        if chunk:
            channel.set_max_noutput_items(chunk)
        y, h = blocks.vector_sink_c(), blocks.vector_sink_c()
        tb.connect(blocks.vector_source_c(z.tolist()), (channel, 0))
        tb.connect(src_u, (channel, 1))
        tb.connect((channel, 0), y)
        tb.connect((channel, 1), h)
        outs.append((z, y, h))
    tb.run()
    (za, ya, ha), (zb, yb, hb), (zc, yc, hc) = [(z, np.array(y.data()), np.array(h.data())) for z, y, h in outs]
    assert ya.size == yb.size == n
    assert np.array_equal(ha, hb) and not np.allclose(ha, hc)
    np.testing.assert_allclose(ya - ha * za, yb - hb * zb, atol=1e-5)
    assert not np.allclose(ya, yb)      # the symbols differ, and they are what differs


def test_schemes_that_share_a_transmitter_send_the_same_symbols():
    """Branch A's one transmitter serves mmse, lmmse and cddm; branch B's (dnsc) serves
    jscna-ad with precoding=rx: the same symbols and side information."""
    from gnuradio.semcom import schemes
    from gnuradio.semcom.core.datasets import load_dataset
    from gnuradio.semcom.inference import get_backend
    backend = get_backend("", "")
    batch = load_dataset("sample").images[:2]
    sent = lambda name, opts: backend.transmit(name, batch, schemes.TxContext(10.0, "awgn", "", 1.0, options=opts))
    a = sent("mmse", {})
    for name in ("lmmse", "cddm"):
        other = sent(name, {})
        assert np.array_equal(other.symbols.numpy(), a.symbols.numpy()) and other.side_info == a.side_info
    dnsc, jscna = sent("dnsc", {}), sent("jscna-ad", {"precoding": "rx"})
    assert np.array_equal(dnsc.symbols.numpy(), jscna.symbols.numpy())
    assert dnsc.side_info == jscna.side_info and dnsc.side_info[0]["rms"] > 0
    assert a.symbols.shape == dnsc.symbols.shape == sent("digital", {}).symbols.shape == (2, 512)


# ------------------------------------------------------------------ the example
def test_the_example_compiles(tmp_path):
    text = compile_grc(EXAMPLE, tmp_path).read_text()
    assert 'semcom.image_compare_display("mmse,lmmse,cddm,dnsc,jscna-ad,digital"' in text
    for scheme in ("mmse", "lmmse", "cddm", "dnsc", "jscna-ad", "digital"):
        assert f'semcom.scheme_receiver("{scheme}"' in text
    assert text.count("semcom.fading_interference_channel_cc(channel_type, 1, snr_db, sinr_db, 1.0, seed)") == 3
    assert "self.msg_connect((self.display, 'ack'), (self.user_source, 'ack'))" in text


DRIVER = r'''
import importlib.util, json, sys, time
from PyQt5 import Qt
app = Qt.QApplication([])
spec = importlib.util.spec_from_file_location("fg", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
tb = module.scheme_comparison_gui(**json.loads(sys.argv[3]))
tb.start()
deadline, most_ahead = time.time() + 200, 0

def more(want):
    global most_ahead
    while min(s["images"] for s in tb.display.scores().values()) < want:
        app.processEvents()
        time.sleep(0.02)
        pacer = tb.user_source._pacer
        most_ahead = max(most_ahead, pacer._sent - pacer._acked)
        if time.time() > deadline:
            sys.exit("stalled: " + json.dumps(tb.display.scores()))

more(int(sys.argv[2]))
app.processEvents()
captions = [c.text() for c in tb.display.qwidget().captions]
# the sliders, through their widgets as a user moves them: SINR above SNR is used as SINR = SNR
for name, value in (("snr_db", 20), ("sinr_db", 25)):
    getattr(tb, f"_{name}_win").d_widget.counter.setValue(value)
    app.processEvents()
more(int(sys.argv[2]) + 2)
points = [[c.snr_db(), c.sinr_db()] for c in (tb.channel_a, tb.channel_b, tb.channel_c)]
points += [[r.point.snr_db, r.point.sinr_db] for r in (tb.rx_mmse, tb.rx_lmmse, tb.rx_cddm, tb.rx_dnsc, tb.rx_jscna,
                                                       tb.rx_digital)]
points += [[tb.noise_var, None]]
tb.stop()
tb.wait()
print("RESULT " + json.dumps({"scores": tb.display.scores(), "captions": captions, "most_ahead": most_ahead,
                              "points": points}))
'''


@pytest.mark.slow
def test_the_example_runs_headless_for_a_few_images(tmp_path):
    """Every scheme delivers and is scored; the panels show one image id; the display's acks
    hold every branch within the sources' max_in_flight (4) images, even with DNSC made fast
    (a few DDIM steps), where another branch is the slowest; the SNR and SINR sliders reach
    every channel, equalizer and receiver, and images keep coming after they moved."""
    script = compile_grc(EXAMPLE, tmp_path)
    driver = tmp_path / "drive.py"
    driver.write_text(DRIVER)
    res = subprocess.run([sys.executable, str(driver), str(script), "6", json.dumps({"dnsc_options": "sampler=ddim,steps=2"})],
                         env=dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1"), capture_output=True,
                         text=True, cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"rc {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    out = json.loads(next(l for l in res.stdout.splitlines() if l.startswith("RESULT "))[7:])
    scores = out["scores"]
    assert list(scores) == ["mmse", "lmmse", "cddm", "dnsc", "jscna-ad", "digital"]
    for name, s in scores.items():
        assert s["images"] >= 6 and math.isfinite(s["psnr_db"]) and 0 < s["ssim"] <= 1, name
        assert s["mismatched"] == s["duplicates"] == 0, name
    assert scores["mmse"]["nfe"] == 0 and 1 <= scores["dnsc"]["nfe"] <= 2   # DDIM steps=2 (fewer from a low start)
    assert 1 <= scores["cddm"]["nfe"] <= 5 and scores["jscna-ad"]["nfe"] > 0
    assert out["most_ahead"] <= 4
    shown = {c.splitlines()[0].split("#")[-1] for c in out["captions"]}
    assert len(shown) == 1, out["captions"]      # sent and every scheme: the same image id
    assert max(s["images"] for s in scores.values()) - min(s["images"] for s in scores.values()) <= 4
    # the sliders reached every channel and receiver (SINR 25 above SNR 20: used as 20) and the equalizers
    assert out["points"][:-1] == [[20, 20]] * 9 and out["points"][-1][0] == pytest.approx(0.01)
