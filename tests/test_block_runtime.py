"""The Python blocks at run time: setters that GUI callbacks reach (never raise; SINR above
SNR follows the channel's rule), message handlers fed malformed PDUs (drop, keep going),
and what the image sink records."""

import json
import math
import os
import stat
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.models import default_models, jscc_model_name
from gnuradio.semcom.schemes import check as check_receiver
from gnuradio.semcom.equalized_to_pdu import csi_pdu_merge
from gnuradio.semcom.pdu_util import image_pdu

USER = jscc_model_name("user", "awgn", 512)


def meta(**items):
    out = pmt.make_dict()
    for key, value in items.items():
        value = pmt.from_long(value) if isinstance(value, int) else \
            pmt.from_double(value) if isinstance(value, float) else value
        out = pmt.dict_add(out, pmt.intern(key), value)
    return out


def c32(vec):
    vec = np.ascontiguousarray(vec, np.complex64)
    return pmt.init_c32vector(vec.size, vec)


def post_and_collect(block, port_msgs, want, out_port="pdus", timeout=30):
    """Post messages to a running block; the messages it published on `out_port`."""
    tb = gr.top_block()
    dbg = blocks.message_debug()
    tb.msg_connect(block, out_port, dbg, "store")
    tb.start()
    try:
        target = block.to_basic_block() if hasattr(block, "to_basic_block") else block
        for port, msg in port_msgs:
            target._post(pmt.intern(port), msg)
        deadline = time.time() + timeout
        while dbg.num_messages() < want and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    finally:
        tb.stop()
        tb.wait()
    return [dbg.get_message(i) for i in range(dbg.num_messages())]


# ------------------------------------------------------------------ setters
@pytest.mark.parametrize("receiver", ["mmse", "cddm"])
def test_receiver_clamps_sinr_to_snr_like_the_channel(receiver):
    rx = semcom.jscc_receiver(USER, 10.0, receiver, sinr_db=5.0, options="" if receiver == "mmse" else "steps=1")
    ch = semcom.fading_interference_channel_cc("awgn", 1, 10.0, 5.0, 1.0, 0)
    parts = [rx.to_pdu.merge, rx.canceller] if receiver != "mmse" else []
    for snr, sinr, used in ((3.0, None, 3.0), (None, 25.0, 3.0), (15.0, None, 15.0), (None, 5.0, 5.0),
                            (None, math.inf, math.inf)):
        for block in (rx, ch):
            if snr is not None:
                block.set_snr_db(snr)
            if sinr is not None:
                block.set_sinr_db(sinr)
        assert ch.sinr_db() == rx.point.sinr_db == used
        assert rx.decoder.snr_db == ch.snr_db()
        for part in parts:
            assert (part.snr_db, part.sinr_db) == (ch.snr_db(), used)


@pytest.mark.parametrize("value", [float("nan"), -math.inf, "ten", None])
def test_setters_never_raise_on_garbage(value):
    """A GUI callback that raises aborts the application: bad values are logged and ignored."""
    rx = semcom.jscc_receiver(USER, 10.0, "cddm", sinr_db=5.0, options="steps=1")
    tx = semcom.jscc_transmitter(USER, 10.0)
    for setter in (rx.set_snr_db, rx.set_sinr_db, tx.set_snr_db, rx.canceller.set_sinr_db,
                   rx.to_pdu.set_snr_db):
        setter(value)
    assert (rx.point.snr_db, rx.point.sinr_db, tx.encoder.snr_db) == (10.0, 5.0, 10.0)
    assert (rx.canceller.snr_db, rx.canceller.sinr_db) == (10.0, 5.0)
    assert (rx.to_pdu.merge.snr_db, rx.to_pdu.merge.sinr_db) == (10.0, 5.0)
    if isinstance(value, float):  # the C++ channel takes doubles (a slider's values)
        ch = semcom.fading_interference_channel_cc("awgn", 1, 10.0, 5.0, 1.0, 0)
        ch.set_snr_db(value)
        ch.set_sinr_db(value)
        assert (ch.snr_db(), ch.sinr_db()) == (10.0, 5.0)


def test_construction_still_rejects_sinr_above_snr():
    with pytest.raises(ValueError, match="cannot exceed"):
        semcom.jscc_receiver(USER, 10.0, "mmse", sinr_db=15.0)
    with pytest.raises(ValueError, match="cannot exceed"):
        semcom.equalized_to_pdu(10.0, 15.0)


def test_merge_stamps_the_sinr_in_use():
    merge = csi_pdu_merge(10.0, 5.0)
    merge.set_snr_db(3.0)  # SINR 5 asked, above the SNR: 3 in use
    k = 4
    msgs = [(port, pmt.cons(meta(image_id=7), c32(np.ones(k)))) for port in ("zhat", "w", "h")]
    out = post_and_collect(merge, msgs, 1)
    assert len(out) == 1
    stamped = pmt.car(out[0])
    assert pmt.to_double(pmt.dict_ref(stamped, pmt.intern("snr_db"), pmt.PMT_NIL)) == 3.0
    assert pmt.to_double(pmt.dict_ref(stamped, pmt.intern("sinr_db"), pmt.PMT_NIL)) == 3.0


def test_canceller_keeps_working_when_sinr_is_set_above_snr():
    """Before, a SINR slider above the SNR made the diffusion receiver drop every image."""
    k = 512
    canceller = semcom.icdm_canceller("cddm", "awgn", k, 10.0, 5.0, 1.0, "steps=1", 0, max_batch=1)
    canceller.set_sinr_db(20.0)
    assert canceller.sinr_db == 10.0
    rng = np.random.default_rng(0)
    zhat = (rng.standard_normal(k) + 1j * rng.standard_normal(k)) / math.sqrt(2)
    good = pmt.cons(meta(image_id=0, w=c32(np.full(k, 0.9)), h=c32(np.ones(k))), c32(zhat))
    out = post_and_collect(canceller, [("pdus", good)], 1)
    assert len(out) == 1 and pmt.length(pmt.cdr(out[0])) == 2 * k


# ------------------------------------------------------------------ malformed PDUs
def test_demapper_survives_a_complex_power_scale():
    """pmt.to_double raised on it inside the handler, which ended the block's thread."""
    z = c32(np.ones(4))
    bad = pmt.cons(meta(image_id=0, power_scale=pmt.from_complex(1 + 1j)), z)
    good = pmt.cons(meta(image_id=1, power_scale=2.0), z)
    out = post_and_collect(semcom.symbol_demapper(), [("pdus", bad), ("pdus", good)], 1)
    assert len(out) == 1
    assert np.allclose(pmt.f32vector_elements(pmt.cdr(out[0])), [0.5] * 4 + [0.0] * 4)


def test_canceller_survives_side_information_of_the_wrong_type():
    k = 512
    canceller = semcom.icdm_canceller("cddm", "awgn", k, 10.0, 5.0, 1.0, "steps=1", 0, max_batch=1)
    zhat = c32(np.ones(k))
    bad = pmt.cons(meta(image_id=0, w=3, h=c32(np.ones(k))), zhat)  # len(w) raised
    good = pmt.cons(meta(image_id=1, w=c32(np.full(k, 0.9)), h=c32(np.ones(k))), zhat)
    out = post_and_collect(canceller, [("pdus", bad), ("pdus", good)], 1)
    assert len(out) == 1
    assert pmt.to_long(pmt.dict_ref(pmt.car(out[0]), pmt.intern("image_id"), pmt.PMT_NIL)) == 1


def test_image_display_drops_images_it_cannot_show():
    from PyQt5 import Qt
    app = Qt.QApplication.instance() or Qt.QApplication([])
    display = semcom.image_display()
    shown = []
    display.qwidget().image_arrived.connect(lambda which, image, caption: shown.append(caption))
    two_channels = image_pdu(meta(image_id=0), np.zeros((4, 4, 2), np.uint8))
    good = image_pdu(meta(image_id=1), np.zeros((4, 4, 3), np.uint8))
    tb = gr.top_block()
    # a block runs its handlers only in a flowgraph; stop() waits out the strobe's period
    tb.msg_connect(blocks.message_strobe(image_pdu(meta(image_id=99), np.zeros((4, 4, 3), np.uint8)), 100),
                   "strobe", display, "sent")
    tb.start()
    try:
        display._post(pmt.intern("received"), two_channels)
        display._post(pmt.intern("received"), good)
        deadline = time.time() + 10
        while display.qwidget().captions["received"].text() == "received" and time.time() < deadline:
            app.processEvents()
            time.sleep(0.02)
    finally:
        tb.stop()
        tb.wait()
    assert display.qwidget().captions["received"].text() == "received #1"
    assert shown == ["received #1"]  # the 2-channel image never reached the Qt slot


# ------------------------------------------------------------------ the sink's record
def test_sink_records_what_reproduces_the_run_with_normal_permissions(tmp_path):
    user, interferer = default_models("rayleigh", 512)
    run_info = {"receiver": "icdm", "receiver_options": "steps=7", "channel": "rayleigh", "coherence": 4,
                "snr_db": 20.0, "sinr_db": math.inf, "user_model": user,
                "interferer_model": interferer, "k": 512, "seed": 3, "server": ""}
    sink = semcom.image_sink(str(tmp_path / "out"), run_info=run_info, with_lpips=False)
    img = load_dataset("sample").images[0]
    msgs = [("reference", image_pdu(meta(image_id=0), img)), ("pdus", image_pdu(meta(image_id=0), img))]
    post_and_collect(sink, msgs, 1, out_port="ack")  # stopping the flowgraph writes the files
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    run = summary["run"]
    assert run["receiver_options"] == check_receiver("icdm").option_values({"steps": "7"}, "rayleigh")
    assert run["receiver_options"]["steps"] == 7 and "zeta_x" in run["receiver_options"]
    assert run["sinr_db"] is None and run["interferer_model"] is None  # no interferer, as run_link says
    assert run["server"] is None  # in-process
    assert {k: run[k] for k in ("channel", "coherence", "snr_db", "seed", "k")} == \
        {"channel": "rayleigh", "coherence": 4, "snr_db": 20.0, "seed": 3, "k": 512}
    from gnuradio.semcom.core.version import __version__
    assert run["version"] == __version__
    umask = os.umask(0)
    os.umask(umask)
    for name in ("summary.json", "grid.png"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o666 & ~umask, name

    with pytest.raises(ValueError):
        semcom.image_sink(run_info={"receiver": "icdm", "receiver_options": "nonsense=1"})
    sink.set_run_info({"receiver": "nope"})  # a GUI callback: logged, not raised
    assert sink.summary()["run"]["receiver"] == "icdm"
