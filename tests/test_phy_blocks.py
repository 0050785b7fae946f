"""phy_tx and phy_rx (GNU Radio): the TX chain of stock blocks against the numpy reference
modulator, and the whole PHY through gr-channels' channel_model: frame detection with a
frequency offset and a random delay at 5 dB, nothing on noise alone, estimates on the PDUs."""

import time

import numpy as np
import pmt
import pytest

gr = pytest.importorskip("gnuradio.gr")
from gnuradio import blocks, channels  # noqa: E402

from gnuradio.semcom import phy_rx, phy_tx  # noqa: E402
from gnuradio.semcom.pdu_util import make_pdu, meta_get  # noqa: E402
from gnuradio.semcom.phy import sim
from gnuradio.semcom.phy.frame import OfdmLayout  # noqa: E402
from gnuradio.semcom.phy.header import Header, pack_header, scheme_id  # noqa: E402

LAYOUT = OfdmLayout()
N, K = LAYOUT.fft_len, len(LAYOUT.active_carriers)
GUARD = 160


class pdu_collector(gr.basic_block):
    def __init__(self):
        gr.basic_block.__init__(self, "pdu_collector", None, None)
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self.handle)
        self.got = []

    def handle(self, msg):
        self.got.append(msg)


class pdu_poster(gr.basic_block):
    def __init__(self):
        gr.basic_block.__init__(self, "pdu_poster", None, None)
        self.message_port_register_out(pmt.intern("out"))

    def post(self, msg):
        self.message_port_pub(pmt.intern("out"), msg)


def unit_symbols(k, rng):
    return sim.unit_symbols(k, rng)


def symbol_pdu(z, image_id, scheme="mmse"):
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(image_id))
    meta = pmt.dict_add(meta, pmt.intern("scheme"), pmt.intern(scheme))
    return make_pdu(meta, z)


def transmit(frames, backoff_db=0.0):
    """Symbol vectors -> phy_tx's output samples and its tags."""
    tb = gr.top_block()
    src, tx, sink = pdu_poster(), phy_tx(16, backoff_db, GUARD), blocks.vector_sink_c()
    tb.msg_connect(src, "out", tx, "pdus")
    tb.connect(tx, sink)
    want = sum(LAYOUT.frame_samples(z.size) + GUARD for z in frames)
    tb.start()
    for i, z in enumerate(frames):
        src.post(symbol_pdu(z, i))
    deadline = time.time() + 20
    while len(sink.data()) < want and time.time() < deadline:
        time.sleep(0.01)
    tb.stop()
    tb.wait()
    data = np.asarray(sink.data(), np.complex64)
    assert data.size == want, f"the transmitter produced {data.size} of {want} samples in 20 s"
    return data, sink.tags(), tx


def receive(samples, noise_voltage=0.0, cfo=0.0, seed=1):
    """Samples -> channel_model (noise, frequency offset) -> phy_rx; its PDUs and the block."""
    tb = gr.top_block()
    src = blocks.vector_source_c(samples.tolist(), False)
    channel = channels.channel_model(noise_voltage, cfo / N, 1.0, [1.0], seed)
    rx, out = phy_rx(16, 17, "linear", 0.3), pdu_collector()
    tb.connect(src, channel, rx)
    tb.msg_connect(rx, "pdus", out, "in")
    tb.start()
    tb.wait()
    time.sleep(0.05)
    tb.stop()
    tb.wait()
    return out.got, rx


def test_tx_matches_the_numpy_reference_and_tags_bursts():
    rng = np.random.default_rng(0)
    frames = [unit_symbols(512, rng), unit_symbols(98, rng)]
    samples, tags, tx = transmit(frames, backoff_db=3.0)
    assert samples.size == sum(LAYOUT.frame_samples(z.size) + GUARD for z in frames)   # the last guard too
    at = 0
    for i, z in enumerate(frames):
        bits = pack_header(Header(scheme_id("mmse"), i, i, z.size))
        ref = LAYOUT.modulate(LAYOUT.grid(bits, z), 3.0)
        np.testing.assert_allclose(samples[at:at + ref.size], ref, atol=2e-5)
        np.testing.assert_array_equal(samples[at + ref.size:at + ref.size + GUARD], 0)
        at += ref.size + GUARD
    lengths = [(t.offset, pmt.to_long(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "packet_len"]
    assert lengths == [(0, LAYOUT.frame_samples(512) + GUARD),
                       (LAYOUT.frame_samples(512) + GUARD, LAYOUT.frame_samples(98) + GUARD)]
    assert tx.frames == 2 and len(tx.papr_db) == 2 and all(5 < p < 15 for p in tx.papr_db)


@pytest.mark.parametrize("cfo", [-0.4, 0.0, 0.4])
def test_frames_detected_at_5_db_with_offset_and_delay(cfo):
    rng = np.random.default_rng(int(10 * cfo) + 20)
    n = 100
    frames = [unit_symbols(512, rng) for _ in range(n)]
    samples, _, _ = transmit(frames)
    lead = rng.integers(100, 900)                      # a random delay before the first frame
    samples = np.concatenate([np.zeros(lead, np.complex64), samples, np.zeros(400, np.complex64)])
    snr_db = 5.0
    noise_voltage = np.sqrt((N / K) / 10 ** (snr_db / 10))
    got, rx = receive(samples, noise_voltage, cfo, seed=int(lead))
    ids = sorted(meta_get(pmt.car(m), "image_id") for m in got)
    assert len(ids) >= 99 and len(set(ids)) == len(ids), (len(ids), rx.crc_failures)
    snr_est = np.mean([meta_get(pmt.car(m), "snr_db") for m in got])
    assert abs(snr_est - snr_db) < 0.5
    # every delivered payload is the one sent: the MMSE error at 5 dB is about -6 dB (a frame
    # turned by a wrong frequency correction would be near 0 dB). The sync's trigger has a
    # tail at 5 dB; the fine timing (phy_frame_demux_cvc) places the windows from the training
    # pair. A frame placed wrong would take in its neighbouring symbols and read a lower SNR
    # (its training pair sees part of that).
    errors = np.array([mse_db(m, frames[meta_get(pmt.car(m), "image_id")]) for m in got])
    snr_est = np.array([meta_get(pmt.car(m), "snr_db") for m in got])
    assert np.mean(errors < -4.0) >= 0.95, np.sort(errors)[-6:]
    assert np.all(snr_est[errors >= -4.0] < snr_db - 1.0), snr_est[errors >= -4.0]
    meta = pmt.car(got[0])
    assert meta_get(meta, "csi") == "estimated" and meta_get(meta, "k") == 512
    assert pmt.length(pmt.dict_ref(meta, pmt.intern("h"), pmt.PMT_NIL)) == 512


def test_noise_alone_is_never_a_frame():
    rng = np.random.default_rng(5)
    noise = ((rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000)) / np.sqrt(2)).astype(np.complex64)
    got, rx = receive(noise)
    assert got == [] and rx.frames == 0


def mse_db(msg, z):
    zhat = np.asarray(pmt.c32vector_elements(pmt.cdr(msg)))
    return 10 * np.log10(np.mean(np.abs(zhat - z) ** 2))


def test_payload_through_the_blocks_matches_the_symbols_sent():
    """100 frames at 25 dB with a frequency offset: every payload arrives intact. (With the
    stock receiver's stream oscillator, a false sync trigger inside a frame re-tuned it and
    ruined a few payloads per hundred while their headers still passed.)"""
    rng = np.random.default_rng(6)
    frames = [unit_symbols(512, rng) for _ in range(100)]
    samples, _, _ = transmit(frames)
    samples = np.concatenate([np.zeros(300, np.complex64), samples, np.zeros(400, np.complex64)])
    snr_db = 25.0
    got, rx = receive(samples, np.sqrt((N / K) / 10 ** (snr_db / 10)), 0.1)
    assert len(got) == 100 and rx.errors == 0
    errors = {meta_get(pmt.car(m), "image_id"): mse_db(m, frames[meta_get(pmt.car(m), "image_id")]) for m in got}
    worst = max(errors, key=errors.get)
    meta = next(pmt.car(m) for m in got if meta_get(pmt.car(m), "image_id") == worst)
    # the MMSE error at 25 dB with a least-squares channel (its noise sigma^2/2 * 17/52):
    # about -24 dB; a payload out of order, turned or with a wrong sign would be near 0 dB
    assert errors[worst] < -21, (worst, errors[worst], {k: meta_get(meta, k) for k in ("snr_db", "cfo", "cfo_rotation")})


def test_framer_keeps_going_past_the_sequence_field():
    """The 12-bit sequence number wraps; the framer does not stop at frame 4096."""
    from gnuradio.semcom.phy_tx import phy_framer
    framer = phy_framer()
    framer.frames = 4095
    out = []
    framer.message_port_pub = lambda port, msg: out.append(msg)
    z = unit_symbols(64, np.random.default_rng(0))
    framer.handle(symbol_pdu(z, 1))
    framer.handle(symbol_pdu(z, 2))
    assert framer.frames == 4097 and len(out) == 4      # two frames, each with its guard


def test_sequence_gaps_are_acknowledged_as_lost_and_restarts_are_not():
    from gnuradio.semcom.phy_rx import MAX_GAP, phy_deframer
    deframer = phy_deframer()
    sent = []
    deframer.message_port_pub = lambda port, msg: sent.append(pmt.symbol_to_string(port))
    for seq in (0, 1, 4, 5, 7):                            # frames 2, 3 and 6 lost
        deframer._count_gap(seq)
    assert deframer.lost == 3 and sent == ["lost"] * 3
    deframer._count_gap(7 + MAX_GAP + 10)                  # a restarted or other transmitter
    deframer._count_gap(0)                                 # wraps back: also a jump
    assert deframer.lost == 3 and deframer.resyncs == 2 and len(sent) == 3
    deframer._count_gap(2)                                 # after the wrap the count goes on
    assert deframer.lost == 4
