"""phy_rx's C++ blocks (phy_header_decoder_vc, phy_deframer_vc, phy_sync_tagger_cc) against
the numpy reference (phy/estimate.py) as the oracle: frames through known channels
(phy/sim.py: flat and 3-tap, several SNRs, a frequency offset, an interferer), fed to each
block as the demux would (time-domain symbols without their cyclic prefixes, vectors of 64,
with the tags the stage before puts on them). Header fields must be equal; h, sigma^2, the
rotation, SNR, SINR and the payload within float32 rounding (the C++ FFT is single precision,
numpy's double)."""

import time

import numpy as np
import pmt
import pytest
import torch

gr = pytest.importorskip("gnuradio.gr")
from gnuradio import blocks  # noqa: E402

from gnuradio.semcom import (phy_deframer_vc, phy_frame_demux_cvc, phy_header_decoder_vc, phy_rx,  # noqa: E402
                             phy_sync_tagger_cc)
from gnuradio.semcom.core.equalizer import mmse_weights  # noqa: E402
from gnuradio.semcom.phy import sim  # noqa: E402
from gnuradio.semcom.phy.estimate import (ChannelEstimate, decode_header, derotate_fft,  # noqa: E402
                                          estimate_channel, payload_estimate, pilot_phases, refined_cfo)
from gnuradio.semcom.phy.frame import HEADER_SYMBOLS, PREAMBLE_SYMBOLS, OfdmLayout  # noqa: E402
from gnuradio.semcom.phy.header import Header, HeaderError, pack_header, scheme_id  # noqa: E402

LAYOUT = OfdmLayout()
N = LAYOUT.fft_len
HEADER_LEN = PREAMBLE_SYMBOLS + HEADER_SYMBOLS
SMOOTH = 17
MAX_GAP = 64
CHANNELS = {"flat": [1.0], "3-tap": [1.0, 0.6, 0.3]}


class collector(gr.basic_block):
    def __init__(self):
        gr.basic_block.__init__(self, "collector", None, None)
        self.got = []
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self.handle)

    def handle(self, msg):
        self.got.append(msg)


def tag(offset, key, value):
    return gr.tag_utils.python_to_tag((offset, pmt.intern(key), value, pmt.intern("test")))


def run_block(block, rows, tags, ports, expect):
    """rows (n, 64) with tags -> the block; the messages on each port once `expect` of them
    arrived on ports[0] (or 10 s passed)."""
    tb = gr.top_block()
    src = blocks.vector_source_c(np.asarray(rows, np.complex64).ravel().tolist(), False, N, tags)
    tb.connect(src, block)
    out = {port: collector() for port in ports}
    for port, c in out.items():
        tb.msg_connect(block, port, c, "in")
    tb.start()
    deadline = time.time() + 10
    while len(out[ports[0]].got) < expect and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.02)          # the other ports' last messages
    tb.stop()
    tb.wait()
    return {port: c.got for port, c in out.items()}


def frames_through(mags, snr_db, cfo, rng, ks=(512, 98, 49, 1000), sir_db=None):
    """Frames (seq i, image 1000 + i) through a numpy channel -> [(header, z, rows)], rows the
    frame's symbols without prefixes (n_symbols, 64); an interferer sir_db below on the payload."""
    out = []
    for i, k in enumerate(ks):
        header = Header(scheme_id("mmse"), 1000 + i, i, k)
        z = sim.unit_symbols(k, rng)
        x = LAYOUT.modulate(LAYOUT.grid(pack_header(header), z))
        interference = None
        if sir_db is not None:
            u = sim.unit_symbols(k, rng)
            interference = LAYOUT.modulate(LAYOUT.payload_only_grid(u)) * 10 ** (-sir_db / 20)
        y = sim.through_channel(x, sim.random_taps(mags, rng), snr_db, rng, LAYOUT, cfo, interference)
        rows = y.reshape(-1, LAYOUT.symbol_len)[:, LAYOUT.cp_len:]
        out.append((header, z, rows))
    return out


def header_reference(rows, cfo0, smooth=SMOOTH):
    """What phy_header_decoder computes, in numpy."""
    cfo = refined_cfo(rows[:HEADER_LEN], LAYOUT, cfo0)
    Y = derotate_fft(rows[:HEADER_LEN], LAYOUT, cfo, 0)
    est = estimate_channel(Y[1], Y[2], LAYOUT, smooth)
    return cfo, est, decode_header(Y[PREAMBLE_SYMBOLS:], est, LAYOUT)


def as_dict(msg):
    """A PMT dict -> {key: Python value} (vectors as numpy arrays)."""
    out, items = {}, pmt.dict_items(msg)
    while not pmt.is_null(items):
        key, value = pmt.car(pmt.car(items)), pmt.cdr(pmt.car(items))
        out[pmt.symbol_to_string(key)] = pmt.to_python(value)
        items = pmt.cdr(items)
    return out


def sync_cfo(cfo, i):
    """The sync's fine offset (half-symbol phase) with an error, as ofdm_sync_sc_cfb's."""
    return float(np.pi * cfo + 0.02 * (-1) ** i)


@pytest.mark.parametrize("channel", list(CHANNELS))
@pytest.mark.parametrize("snr_db,cfo", [(5.0, 0.0), (15.0, 0.3), (30.0, -0.4)])
def test_header_decoder_matches_numpy(channel, snr_db, cfo):
    rng = np.random.default_rng(int(snr_db) + 10 * len(CHANNELS[channel]))
    frames = frames_through(CHANNELS[channel], snr_db, cfo, rng)
    rows = np.concatenate([f[2][:HEADER_LEN] for f in frames])
    tags = [tag(HEADER_LEN * i, "phy_cfo", pmt.from_double(sync_cfo(cfo, i))) for i in range(len(frames))]
    block = phy_header_decoder_vc(16, SMOOTH)
    got = run_block(block, rows, tags, ["header_data"], len(frames))["header_data"]
    assert len(got) == len(frames) and block.frames() == len(frames) and block.crc_failures() == 0
    for i, ((header, _, frame_rows), msg) in enumerate(zip(frames, got)):
        cfo_ref, est, header_ref = header_reference(frame_rows, sync_cfo(cfo, i))
        assert header_ref == header                  # the oracle decodes it too
        d = as_dict(msg)
        assert set(d) == {"frame_len", "image_id", "seq", "scheme_id", "k", "phy_noise_var", "phy_error_var",
                          "cfo_rotation", "cfo", "phy_h"}
        assert (d["frame_len"], d["image_id"], d["seq"], d["scheme_id"], d["k"]) == \
            (LAYOUT.payload_symbols(header.k), header.image_id, header.seq, header.scheme_id, header.k)
        scale = np.sqrt(np.mean(np.abs(est.h) ** 2))
        np.testing.assert_allclose(d["phy_h"], est.h, rtol=0, atol=2e-5 * scale)
        assert d["phy_noise_var"] == pytest.approx(est.noise_var, rel=1e-4)
        assert d["phy_error_var"] == pytest.approx(est.error_var, rel=1e-4)
        assert d["cfo_rotation"] == pytest.approx(est.rotation, abs=1e-5)
        assert d["cfo"] == pytest.approx(cfo_ref, abs=1e-6)


@pytest.mark.parametrize("smooth", [0, 5, 51])
def test_header_decoder_smoothing_matches_numpy(smooth):
    """The delay-domain projection at its extremes (51 taps: a basis with condition ~3e8)."""
    rng = np.random.default_rng(smooth)
    frames = frames_through(CHANNELS["3-tap"], 20.0, 0.1, rng, ks=(512, 512))
    rows = np.concatenate([f[2][:HEADER_LEN] for f in frames])
    tags = [tag(HEADER_LEN * i, "phy_cfo", pmt.from_double(sync_cfo(0.1, i))) for i in range(2)]
    got = run_block(phy_header_decoder_vc(16, smooth), rows, tags, ["header_data"], 2)["header_data"]
    for i, msg in enumerate(got):
        _, est, _ = header_reference(frames[i][2], sync_cfo(0.1, i), smooth)
        scale = np.sqrt(np.mean(np.abs(est.h) ** 2))
        np.testing.assert_allclose(as_dict(msg)["phy_h"], est.h, rtol=0, atol=2e-5 * scale)


def test_corrupted_header_is_rejected_and_counted():
    rng = np.random.default_rng(3)
    frames = frames_through(CHANNELS["flat"], 20.0, 0.0, rng, ks=(512, 512, 512))
    bad = frames[1][2].copy()
    bad[PREAMBLE_SYMBOLS + 1] *= -1                   # one header symbol turned by pi
    with pytest.raises(HeaderError):
        header_reference(bad, 0.0)
    rows = np.concatenate([frames[0][2][:HEADER_LEN], bad[:HEADER_LEN], frames[2][2][:HEADER_LEN]])
    tags = [tag(HEADER_LEN * i, "phy_cfo", pmt.from_double(0.0)) for i in range(3)]
    block = phy_header_decoder_vc(16, SMOOTH)
    got = run_block(block, rows, tags, ["header_data"], 3)["header_data"]
    assert len(got) == 3 and pmt.eq(got[1], pmt.PMT_F)
    assert [as_dict(got[i])["seq"] for i in (0, 2)] == [0, 2]    # the frames around it still decode
    assert block.crc_failures() == 1 and block.frames() == 2 and block.errors() == 0


def test_header_without_its_offset_tag_is_counted_and_decoded_at_zero():
    rng = np.random.default_rng(4)
    (header, _, rows), = frames_through(CHANNELS["flat"], 20.0, 0.0, rng, ks=(512,))
    block = phy_header_decoder_vc(16, SMOOTH)
    got = run_block(block, rows[:HEADER_LEN], [], ["header_data"], 1)["header_data"]
    assert block.missing_cfo() == 1 and as_dict(got[0])["k"] == 512
    assert as_dict(got[0])["cfo"] == pytest.approx(header_reference(rows, 0.0)[0], abs=1e-6)


def payload_tags(offset, header, est, cfo, seq=None):
    """The header decoder's answer as the demux puts it on the payload's first symbol."""
    fields = {"frame_len": pmt.from_long(LAYOUT.payload_symbols(header.k)),
              "image_id": pmt.from_long(header.image_id), "seq": pmt.from_long(header.seq if seq is None else seq),
              "scheme_id": pmt.from_long(header.scheme_id), "k": pmt.from_long(header.k),
              "phy_noise_var": pmt.from_double(est.noise_var), "phy_error_var": pmt.from_double(est.error_var),
              "cfo_rotation": pmt.from_double(est.rotation), "cfo": pmt.from_double(cfo),
              "phy_h": pmt.init_c32vector(N, est.h.astype(np.complex64))}
    return [tag(offset, key, value) for key, value in fields.items()]


def deframer_input(frames, cfo, seqs=None):
    rows, tags, refs = [], [], []
    at = 0
    for i, (header, _, frame_rows) in enumerate(frames):
        cfo_ref, est, _ = header_reference(frame_rows, sync_cfo(cfo, i))
        payload = frame_rows[HEADER_LEN:]
        tags += payload_tags(at, header, est, cfo_ref, None if seqs is None else seqs[i])
        rows.append(payload)
        at += payload.shape[0]
        # the deframer gets h as complex64 (a c32vector tag)
        est32 = ChannelEstimate(h=est.h.astype(np.complex64).astype(np.complex128), noise_var=est.noise_var,
                                rotation=est.rotation, error_var=est.error_var)
        refs.append((header, est32, cfo_ref, payload))
    return np.concatenate(rows), tags, refs


PORTS = ["pdus", "payload", "channel", "estimates", "lost"]


@pytest.mark.parametrize("tracking", ["linear", "per-symbol"])
@pytest.mark.parametrize("channel,snr_db,cfo,sir_db", [("flat", 5.0, 0.0, None), ("3-tap", 20.0, 0.3, None),
                                                       ("flat", 20.0, -0.2, 5.0), ("3-tap", 30.0, 0.1, 10.0)])
def test_deframer_matches_numpy(channel, snr_db, cfo, sir_db, tracking):
    rng = np.random.default_rng(int(snr_db) + len(CHANNELS[channel]))
    frames = frames_through(CHANNELS[channel], snr_db, cfo, rng, sir_db=sir_db)
    rows, tags, refs = deframer_input(frames, cfo)
    block = phy_deframer_vc(16, tracking)
    got = run_block(block, rows, tags, PORTS, len(frames))
    assert len(got["pdus"]) == len(frames) and block.frames() == len(frames) and block.errors() == 0
    assert got["lost"] == [] and len(got["payload"]) == len(got["channel"]) == len(got["estimates"]) == len(frames)
    for i, (header, est, cfo_ref, payload) in enumerate(refs):
        Y = derotate_fft(payload, LAYOUT, cfo_ref, HEADER_LEN)
        p = payload_estimate(Y, est, LAYOUT, header.k, tracking)
        w = mmse_weights(torch.from_numpy(p.h), 1.0, p.noise_var).numpy()
        meta, zhat = pmt.car(got["pdus"][i]), np.asarray(pmt.c32vector_elements(pmt.cdr(got["pdus"][i])))
        m = as_dict(meta)
        assert set(m) == {"image_id", "seq", "scheme_id", "k", "snr_db", "sinr_db", "noise_var",
                          "interference_power", "cfo", "cfo_rotation", "csi", "w", "h"}
        assert (m["image_id"], m["seq"], m["scheme_id"], m["k"], m["csi"]) == \
            (header.image_id, header.seq, header.scheme_id, header.k, "estimated")
        np.testing.assert_allclose(m["h"], p.h, rtol=0, atol=2e-5)     # unit mean power
        y = np.asarray(pmt.c32vector_elements(pmt.cdr(got["payload"][i])))
        np.testing.assert_allclose(y, p.y, rtol=0, atol=2e-5 * max(1.0, np.abs(p.y).max()))
        np.testing.assert_allclose(m["w"], w, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(zhat, w * p.y, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(w * p.y).max()))
        assert m["snr_db"] == pytest.approx(p.snr_db, abs=1e-4)
        assert m["sinr_db"] == pytest.approx(p.sinr_db, abs=1e-4)
        assert m["noise_var"] == pytest.approx(p.noise_var, rel=1e-4)
        assert m["interference_power"] == pytest.approx(p.interference_power, rel=1e-4, abs=1e-7)
        assert (m["cfo"], m["cfo_rotation"]) == (pytest.approx(cfo_ref), pytest.approx(est.rotation))
        band = np.abs(np.fft.fftshift(est.h)) / np.sqrt(p.gain)
        np.testing.assert_allclose(pmt.f32vector_elements(pmt.cdr(got["channel"][i])), band, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pmt.f32vector_elements(pmt.cdr(got["estimates"][i])), [p.snr_db, p.sinr_db],
                                   rtol=0, atol=1e-4)
        assert as_dict(pmt.car(got["payload"][i])) == {"image_id": header.image_id}
    if sir_db is not None:    # the comparison covered interference that was reported (not only zeros)
        assert any(as_dict(pmt.car(msg))["interference_power"] > 0 for msg in got["pdus"])
    np.testing.assert_allclose(block.estimates(), [(as_dict(pmt.car(m))["snr_db"], as_dict(pmt.car(m))["sinr_db"])
                                                   for m in got["pdus"]])


@pytest.mark.parametrize("tracking", ["linear", "per-symbol"])
def test_deframer_tracks_a_residual_offset_past_pi_as_numpy(tracking):
    """The payload derotated with an offset 0.05 off (0.125 rad more per symbol): the pilots'
    common phase wraps past pi within the frame and must be unwrapped as np.unwrap does."""
    rng = np.random.default_rng(13)
    frames = frames_through(CHANNELS["3-tap"], 25.0, 0.0, rng, ks=(2000, 3000))
    rows, tags, refs = deframer_input(frames, 0.0)
    tags = [tag(t.offset, "cfo", pmt.from_double(pmt.to_double(t.value) + 0.05))
            if pmt.symbol_to_string(t.key) == "cfo" else t for t in tags]
    got = run_block(phy_deframer_vc(16, tracking), rows, tags, PORTS, len(frames))
    assert len(got["pdus"]) == len(frames)
    for i, (header, est, cfo_ref, payload) in enumerate(refs):
        Y = derotate_fft(payload, LAYOUT, cfo_ref + 0.05, HEADER_LEN)
        p = payload_estimate(Y, est, LAYOUT, header.k, tracking)
        common = np.unwrap(np.angle(pilot_phases(Y, est.h, LAYOUT, HEADER_LEN, "per-symbol")[:, 0]))
        assert common.min() < -np.pi - 1             # the case wraps (past -pi by 1 rad at least)
        m = as_dict(pmt.car(got["pdus"][i]))
        np.testing.assert_allclose(m["h"], p.h, rtol=0, atol=2e-5)
        np.testing.assert_allclose(pmt.c32vector_elements(pmt.cdr(got["payload"][i])), p.y, rtol=0,
                                   atol=2e-5 * max(1.0, np.abs(p.y).max()))
        assert m["snr_db"] == pytest.approx(p.snr_db, abs=1e-4)
        zhat = np.asarray(pmt.c32vector_elements(pmt.cdr(got["pdus"][i])))
        assert 10 * np.log10(np.mean(np.abs(zhat - frames[i][1]) ** 2)) < -18   # tracked, not lost


def test_deframer_acknowledges_sequence_gaps_as_lost_and_restarts_not():
    rng = np.random.default_rng(8)
    seqs = [0, 1, 4, 5, 7, 7 + MAX_GAP + 10, 0, 2]      # 2, 3, 6 lost; a restart; a wrap; 1 lost
    frames = frames_through(CHANNELS["flat"], 20.0, 0.0, rng, ks=(100,) * len(seqs))
    rows, tags, _ = deframer_input(frames, 0.0, seqs)
    block = phy_deframer_vc(16, "linear", MAX_GAP)
    got = run_block(block, rows, tags, PORTS, len(seqs))
    assert len(got["pdus"]) == len(seqs)
    assert len(got["lost"]) == 4 and all(pmt.eq(m, pmt.PMT_T) for m in got["lost"])
    assert block.lost() == 4 and block.resyncs() == 2


def test_deframer_drops_a_payload_that_does_not_fit_its_k():
    rng = np.random.default_rng(9)
    frames = frames_through(CHANNELS["flat"], 20.0, 0.0, rng, ks=(512, 512))
    rows, tags, _ = deframer_input(frames, 0.0)
    k_tags = [i for i, t in enumerate(tags) if pmt.symbol_to_string(t.key) == "k"]
    tags[k_tags[0]] = tag(0, "k", pmt.from_long(49))   # 2 symbols' worth, sent with 11
    block = phy_deframer_vc(16, "linear")
    got = run_block(block, rows, tags, PORTS, 1)
    assert block.errors() == 1 and block.frames() == 1
    assert [as_dict(pmt.car(m))["image_id"] for m in got["pdus"]] == [1001]


def test_sync_tagger_marks_triggers_and_passes_samples():
    rng = np.random.default_rng(10)
    n = 5000
    samples = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    offset = rng.standard_normal(n).astype(np.float32)
    trigger = np.zeros(n, np.int8)
    trigger[[17, 1600, 4999]] = 1
    tb = gr.top_block()
    own = [tag(5, "rx_time", pmt.from_long(1))]
    src = blocks.vector_source_c(samples.tolist(), False, 1, own)
    tagger, sink = phy_sync_tagger_cc(), blocks.vector_sink_c()
    tb.connect(src, (tagger, 0))
    tb.connect(blocks.vector_source_f(offset.tolist()), (tagger, 1))
    tb.connect(blocks.vector_source_b(trigger.tolist()), (tagger, 2))
    tb.connect(tagger, sink)
    tb.run()
    np.testing.assert_array_equal(np.asarray(sink.data(), np.complex64), samples)
    tags = sorted((t.offset, pmt.symbol_to_string(t.key), pmt.to_python(t.value)) for t in sink.tags())
    want = [(5, "rx_time", 1)]
    for i in (17, 1600, 4999):
        want += [(i, "phy_cfo", pytest.approx(float(offset[i]))), (i, "phy_trigger", True)]
    assert tags == sorted(want, key=lambda t: (t[0], t[1]))
    assert tagger.triggers() == 3


@pytest.mark.parametrize("make,args,match", [
    (phy_header_decoder_vc, (0, 17), "cp_len must be in 1..63, got 0"),
    (phy_header_decoder_vc, (64, 17), "cp_len must be in 1..63, got 64"),
    (phy_header_decoder_vc, (16, 52), r"smoothing taps must be an integer in 0..51 \(0 = off\), got 52"),
    (phy_header_decoder_vc, (16, -1), "smoothing taps must be an integer in 0..51"),
    (phy_deframer_vc, (16, "cubic"), r"tracking must be one of \('linear', 'per-symbol'\), got 'cubic'"),
    (phy_deframer_vc, (0, "linear"), "cp_len must be in 1..63, got 0"),
    (phy_deframer_vc, (16, "linear", -1), "max_gap must be in 0..4095, got -1"),
    (phy_rx, (16, 2.5), "smoothing taps must be an integer"),
    (phy_rx, (16, 17, "cubic"), "tracking must be one of"),
    (phy_rx, (0,), "cp_len must be in 1..63"),
    (phy_rx, (16, 17, "linear", 1.5), r"threshold must be in \(0, 1\)"),
])
def test_bad_arguments_give_one_clear_value_error(make, args, match):
    with pytest.raises(ValueError, match=match):
        make(*args)


def tagged_stream(rng):
    """Frames with guards as the tagger hands them on: "phy_trigger" and "phy_cfo" where each
    starts; the third frame's header corrupted, with a second trigger inside its S&C symbol;
    a false trigger inside the fourth frame's payload. -> samples, tags, the frames' headers."""
    frames = frames_through(CHANNELS["3-tap"], 15.0, 0.2, rng, ks=(512, 98, 512, 1000, 49))
    pieces, tags, at = [np.zeros(37, np.complex64)], [], 37
    for i, (_, _, rows) in enumerate(frames):
        rows = rows.copy()
        if i == 2:
            rows[PREAMBLE_SYMBOLS + 1] *= -1
        with_cp = np.concatenate([rows[:, -LAYOUT.cp_len:], rows], axis=1).ravel()
        triggers = [at] + ([at + 40] if i == 2 else [])
        for t in triggers:
            tags += [tag(t, "phy_trigger", pmt.PMT_T), tag(t, "phy_cfo", pmt.from_double(sync_cfo(0.2, i)))]
        if i == 3:
            tags.append(tag(at + 12 * LAYOUT.symbol_len + 5, "phy_trigger", pmt.PMT_T))
        pieces += [with_cp.astype(np.complex64), np.zeros(160, np.complex64)]
        at += with_cp.size + 160
    return np.concatenate(pieces), tags, [f[0] for f in frames]


def payload_symbols_and_tags(sink):
    data = np.asarray(sink.data(), np.complex64).reshape(-1, N)
    tags = {}
    for t in sink.tags():
        tags.setdefault(t.offset, {})[pmt.symbol_to_string(t.key)] = pmt.to_python(t.value)
    return data, tags


def test_frame_demux_matches_the_stock_demux_with_the_numpy_header_decoder():
    """phy_frame_demux_cvc against header_payload_demux + phy_header_decoder (the chain it
    replaces, on the numpy reference): the same payload symbols, the same answers as tags,
    the same failed header."""
    from gnuradio import digital
    from gnuradio.semcom.phy_rx import phy_header_decoder
    samples, tags, headers = tagged_stream(np.random.default_rng(11))

    tb = gr.top_block()
    stock = digital.header_payload_demux(HEADER_LEN, N, LAYOUT.cp_len, "frame_len", "phy_trigger", True)
    stock.set_log_level("warn")
    reference, stock_sink = phy_header_decoder(LAYOUT.cp_len, SMOOTH), blocks.vector_sink_c(N)
    tb.connect(blocks.vector_source_c(samples.tolist(), False, 1, tags), stock)
    tb.connect((stock, 0), reference)
    tb.msg_connect(reference, "header_data", stock, "header_data")
    tb.connect((stock, 1), stock_sink)
    tb.start()
    deadline = time.time() + 20
    while reference.frames < 4 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    tb.stop()
    tb.wait()

    tb = gr.top_block()
    demux, sink = phy_frame_demux_cvc(LAYOUT.cp_len, SMOOTH), blocks.vector_sink_c(N)
    tb.connect(blocks.vector_source_c(samples.tolist(), False, 1, tags), demux, sink)
    tb.run()

    want, want_tags = payload_symbols_and_tags(stock_sink)
    got, got_tags = payload_symbols_and_tags(sink)
    assert reference.frames == demux.frames() == 4
    assert reference.crc_failures == demux.crc_failures() == 2        # the corrupted header, then its second trigger
    assert demux.errors() == demux.missing_cfo() == 0
    np.testing.assert_array_equal(got, want)
    assert sorted(got_tags) == sorted(want_tags)
    assert [got_tags[at]["seq"] for at in sorted(got_tags)] == [h.seq for i, h in enumerate(headers) if i != 2]
    for at, ref in want_tags.items():
        mine = got_tags[at]
        assert set(mine) == set(ref)
        for key in ("frame_len", "image_id", "seq", "scheme_id", "k"):
            assert mine[key] == ref[key], key
        for key in ("phy_noise_var", "phy_error_var"):
            assert mine[key] == pytest.approx(ref[key], rel=1e-4), key
        for key in ("cfo_rotation", "cfo"):
            assert mine[key] == pytest.approx(ref[key], abs=1e-5), key
        scale = np.sqrt(np.mean(np.abs(ref["phy_h"]) ** 2))
        np.testing.assert_allclose(mine["phy_h"], ref["phy_h"], rtol=0, atol=2e-5 * scale)


def test_frame_demux_hands_on_payloads_in_pieces():
    """A payload longer than the output buffer leaves symbol by symbol, and the deframer
    still gets the whole frame (k = 20000: 417 OFDM symbols)."""
    rng = np.random.default_rng(12)
    frames = frames_through(CHANNELS["flat"], 25.0, 0.0, rng, ks=(20000, 512))
    pieces, tags, at = [], [], 0
    for i, (_, _, rows) in enumerate(frames):
        with_cp = np.concatenate([rows[:, -LAYOUT.cp_len:], rows], axis=1).ravel().astype(np.complex64)
        tags += [tag(at, "phy_trigger", pmt.PMT_T), tag(at, "phy_cfo", pmt.from_double(0.0))]
        pieces += [with_cp, np.zeros(160, np.complex64)]
        at += with_cp.size + 160
    tb = gr.top_block()
    demux, deframer, out = phy_frame_demux_cvc(LAYOUT.cp_len, SMOOTH), phy_deframer_vc(LAYOUT.cp_len, "linear"), collector()
    tb.connect(blocks.vector_source_c(np.concatenate(pieces).tolist(), False, 1, tags), demux, deframer)
    tb.msg_connect(deframer, "pdus", out, "in")
    tb.start()
    deadline = time.time() + 20
    while len(out.got) < 2 and time.time() < deadline:
        time.sleep(0.01)
    tb.stop()
    tb.wait()
    assert [as_dict(pmt.car(m))["k"] for m in out.got] == [20000, 512]
    for (_, z, _), msg in zip(frames, out.got):
        zhat = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)))
        assert 10 * np.log10(np.mean(np.abs(zhat - z) ** 2)) < -20


def run_until(tb, done, seconds=10):
    """Start tb, wait until done() or `seconds` pass, then stop it."""
    tb.start()
    deadline = time.time() + seconds
    while not done() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    tb.stop()
    tb.wait()


def test_frame_demux_drops_a_frame_whose_offset_tag_is_not_a_number():
    """A malformed "phy_cfo" tag is that frame's error (counted), not an exception out of
    general_work that ends the block's thread: the next frame still decodes."""
    rng = np.random.default_rng(14)
    frames = frames_through(CHANNELS["flat"], 25.0, 0.0, rng, ks=(512, 98))
    pieces, tags, at = [], [], 0
    for i, (_, _, rows) in enumerate(frames):
        with_cp = np.concatenate([rows[:, -LAYOUT.cp_len:], rows], axis=1).ravel().astype(np.complex64)
        cfo = pmt.intern("not a number") if i == 0 else pmt.from_double(0.0)
        tags += [tag(at, "phy_trigger", pmt.PMT_T), tag(at, "phy_cfo", cfo)]
        pieces += [with_cp, np.zeros(160, np.complex64)]
        at += with_cp.size + 160
    tb = gr.top_block()
    demux, sink = phy_frame_demux_cvc(LAYOUT.cp_len, SMOOTH), blocks.vector_sink_c(N)
    tb.connect(blocks.vector_source_c(np.concatenate(pieces).tolist(), False, 1, tags), demux, sink)
    run_until(tb, lambda: demux.frames() >= 1)
    assert demux.errors() == 1 and demux.frames() == 1 and demux.crc_failures() == 0
    _, got_tags = payload_symbols_and_tags(sink)
    assert [t["k"] for t in got_tags.values()] == [98]


def test_header_decoder_answers_pmt_f_for_an_offset_tag_that_is_not_a_number():
    rng = np.random.default_rng(15)
    frames = frames_through(CHANNELS["flat"], 25.0, 0.0, rng, ks=(512, 98))
    rows = np.concatenate([f[2][:HEADER_LEN] for f in frames])
    tags = [tag(0, "phy_cfo", pmt.intern("not a number")), tag(HEADER_LEN, "phy_cfo", pmt.from_double(0.0))]
    block = phy_header_decoder_vc(16, SMOOTH)
    got = run_block(block, rows, tags, ["header_data"], 2)["header_data"]
    assert len(got) == 2 and pmt.eq(got[0], pmt.PMT_F) and as_dict(got[1])["k"] == 98
    assert block.errors() == 1 and block.frames() == 1 and block.crc_failures() == 0


@pytest.mark.parametrize("key,value", [("frame_len", 100_000_000), ("frame_len", 2 ** 32 + 11),
                                       ("frame_len", LAYOUT.payload_symbols(65535) + 1), ("k", 2 ** 32 + 512),
                                       ("seq", -2 ** 31)])
def test_deframer_drops_a_frame_with_out_of_range_fields(key, value):
    """Header fields no header can carry (a frame_len beyond k = 65535's, or one that wraps
    to a plausible int; a k or seq beyond their bits) drop that frame and never throw out of
    work() (a frame_len of 1e8 was a 51 GB allocation)."""
    rng = np.random.default_rng(16)
    frames = frames_through(CHANNELS["flat"], 20.0, 0.0, rng, ks=(512, 512))
    rows, tags, _ = deframer_input(frames, 0.0)
    first = [i for i, t in enumerate(tags) if t.offset == 0 and pmt.symbol_to_string(t.key) == key][0]
    tags[first] = tag(0, key, pmt.from_long(value))
    block = phy_deframer_vc(16, "linear")
    got = run_block(block, rows, tags, PORTS, 1)
    assert block.errors() == 1 and block.frames() == 1
    assert [as_dict(pmt.car(m))["image_id"] for m in got["pdus"]] == [1001]


def displaced_frames(deltas, rng, mags=(1.0, 0.6, 0.3), snr_db=25.0, cfo=0.1):
    """One frame per delta through a numpy channel (3-tap, CFO in subcarrier spacings), the
    frames 600 samples apart; the trigger (with the sync's offset) put delta samples from
    each frame's true start, as a sync trigger early or late by that much.
    -> (samples, tags, [(z, true start)])."""
    pieces, tags, frames, at = [np.zeros(300, np.complex64)], [], [], 300
    for i, delta in enumerate(deltas):
        z = sim.unit_symbols(512, rng)
        x = LAYOUT.modulate(LAYOUT.grid(pack_header(Header(scheme_id("mmse"), 2000 + i, i, 512)), z))
        pieces += [x, np.zeros(600, np.complex64)]
        frames.append((z, at))
        tags += [tag(at + delta, "phy_trigger", pmt.PMT_T), tag(at + delta, "phy_cfo", pmt.from_double(np.pi * cfo))]
        at += x.size + 600
    clean = np.concatenate(pieces)
    y = sim.through_channel(clean, np.asarray(mags) / np.linalg.norm(mags), snr_db, rng, LAYOUT, cfo)
    return y.astype(np.complex64), tags, frames


def test_fine_timing_places_frames_from_a_displaced_trigger():
    """With fine timing the demux finds each frame's start from the training pair, whatever
    the trigger's error within +-20 samples: the shift it tags is the numpy reference's
    (phy/estimate.py: fine_timing) less the back-off, which puts the windows 3 samples before
    the true start (the channel's strongest tap is its first), and every payload is the one
    sent (MMSE error at 25 dB about -24 dB). The same frames with the windows where the
    trigger says lose the payloads of the triggers more than a prefix early or late."""
    from gnuradio.semcom.phy.estimate import FINE_TIMING_BACKOFF, FINE_TIMING_SEARCH, fine_timing
    deltas = [-20, -13, -4, 0, 5, 11, 20]
    samples, tags, frames = displaced_frames(deltas, np.random.default_rng(21))

    def receive(fine):
        tb = gr.top_block()
        demux = phy_frame_demux_cvc(LAYOUT.cp_len, SMOOTH, fine)
        sink, deframer, out = blocks.vector_sink_c(N), phy_deframer_vc(LAYOUT.cp_len, "linear"), collector()
        tb.connect(blocks.vector_source_c(samples.tolist(), False, 1, tags), demux, deframer)
        tb.connect(demux, sink)
        tb.msg_connect(deframer, "pdus", out, "in")
        run_until(tb, lambda: len(out.got) >= len(deltas) and sink.nitems_read(0) > 0 and demux.frames() == len(deltas))
        return demux, sink, out.got

    demux, sink, got = receive(True)
    assert demux.frames() == len(deltas) and demux.crc_failures() == 0
    shifts = [t for t in payload_symbols_and_tags(sink)[1].values()]
    assert [s["image_id"] for s in shifts] == [2000 + i for i in range(len(deltas))]
    for (z, start), delta, answer, msg in zip(frames, deltas, shifts, got):
        trigger = start + delta
        nominal = trigger + LAYOUT.symbol_len + LAYOUT.cp_len
        peak = fine_timing(samples, nominal, LAYOUT, np.pi * 0.1, FINE_TIMING_SEARCH, FINE_TIMING_SEARCH)
        assert answer["timing_shift"] == peak - FINE_TIMING_BACKOFF
        assert trigger + answer["timing_shift"] == start - FINE_TIMING_BACKOFF
        zhat = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)))
        assert 10 * np.log10(np.mean(np.abs(zhat - z) ** 2)) < -21, delta

    _, _, got = receive(False)
    errors = {}
    for msg in got:
        i = as_dict(pmt.car(msg))["image_id"] - 2000
        zhat = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)))
        errors[deltas[i]] = 10 * np.log10(np.mean(np.abs(zhat - frames[i][0]) ** 2))
    # late triggers take in the next symbol, ones more than a prefix early the previous one
    assert all(errors.get(d, 0.0) > -15 for d in (-20, 5, 11, 20)), errors
    assert all(errors[d] < -21 for d in (-13, -4, 0)), errors


def test_fine_timing_reference_finds_the_training_pair():
    """phy/estimate.py's fine_timing on a clean frame: the shift is the trigger's error."""
    from gnuradio.semcom.phy.estimate import fine_timing
    samples, tags, frames = displaced_frames([0], np.random.default_rng(22), mags=(1.0,), snr_db=30.0, cfo=0.0)
    start = frames[0][1]
    for delta in (-24, -7, 0, 9, 24):
        nominal = start + delta + LAYOUT.symbol_len + LAYOUT.cp_len
        assert fine_timing(samples, nominal, LAYOUT, 0.0, 24, 24) == -delta


@pytest.mark.parametrize("chunk", [53, 97, 333, 1601])
def test_fine_timing_does_not_depend_on_where_the_buffers_are_cut(chunk):
    """Frames back to back (no guard), triggers up to 20 samples early or late: the demux's
    output (payload symbols and their tags) is the same whether its input comes whole or in
    pieces of `chunk` samples, and the flowgraph ends at the end of the stream."""
    rng = np.random.default_rng(23)
    deltas = [-20, 17, -9, 20, 0, -20]
    pieces, tags, at = [np.zeros(40, np.complex64)], [], 40
    for i, delta in enumerate(deltas):
        z = sim.unit_symbols(98, rng)
        x = LAYOUT.modulate(LAYOUT.grid(pack_header(Header(scheme_id("mmse"), 3000 + i, i, 98)), z))
        tags += [tag(at + delta, "phy_trigger", pmt.PMT_T), tag(at + delta, "phy_cfo", pmt.from_double(0.0))]
        pieces.append(x)
        at += x.size
    pieces.append(np.zeros(40, np.complex64))
    samples = sim.through_channel(np.concatenate(pieces), [1.0], 25.0, rng, LAYOUT).astype(np.complex64)

    def run(limit):
        tb = gr.top_block()
        src = blocks.vector_source_c(samples.tolist(), False, 1, tags)
        demux, sink = phy_frame_demux_cvc(LAYOUT.cp_len, SMOOTH, True), blocks.vector_sink_c(N)
        if limit:   # at most `limit` samples per call into the demux's (full-size) input buffer
            pace = blocks.copy(gr.sizeof_gr_complex)
            pace.set_max_noutput_items(limit)
            pace.set_min_output_buffer(8192)
            tb.connect(src, pace, demux, sink)
        else:
            tb.connect(src, demux, sink)
        tb.run()
        data, answers = payload_symbols_and_tags(sink)
        return demux.frames(), data, {at: a["timing_shift"] for at, a in answers.items()}

    whole, pieces_ = run(0), run(chunk)
    assert whole[0] == pieces_[0] == len(deltas)
    assert whole[2] == pieces_[2]
    assert sorted(whole[2].values()) == sorted(-d - 3 for d in deltas)
    np.testing.assert_array_equal(whole[1], pieces_[1])
