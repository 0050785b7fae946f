"""digital_transmitter / digital_receiver: the digital baseline as GNU Radio blocks on stock gr-fec.
The transmitter's symbols are the scheme's bit for bit; through the core channel and MMSE
equalizer the receiver's images are the scheme's receiver's; a corrupted frame is lost and
scores the mean image; gr-fec's async encoder/decoder keep metadata, and its LDPC decoder (not
ours) does the decoding."""

import math
import time

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, fec, gr

from gnuradio import semcom
from gnuradio.semcom.core.channel import transmit
from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.core.equalizer import mmse_equalize
from gnuradio.semcom.digital import chain, ldpc
from gnuradio.semcom.digital_receiver import digital_deframer
from gnuradio.semcom.digital_transmitter import CodewordCollector
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.pdu_util import image_pdu, meta_get, split_image_pdu
from gnuradio.semcom.schemes.base import Observation, TxContext
from gnuradio.semcom.digital.chain import dataset_mean

K = 512


@pytest.fixture(scope="module")
def images():
    return load_dataset("sample").images[:6]


class feeder(gr.basic_block):
    """Publishes the PDUs it is handed on "pdus" (into a hier block's message port)."""

    def __init__(self):
        gr.basic_block.__init__(self, "feeder", None, None)
        self.message_port_register_out(pmt.intern("pdus"))

    def feed(self, msg):
        self.message_port_pub(pmt.intern("pdus"), msg)


def run(block, in_port, out_port, msgs, expect=None, timeout=30, before=None):
    """Feed msgs to block's in_port in a running flowgraph; the messages on out_port (once
    `expect` (default len(msgs)) arrived or after `timeout` s). `before(i)`: called before the
    i-th message, once i messages came out (a setter at run time)."""
    tb = gr.top_block()
    src, dbg = feeder(), blocks.message_debug()
    tb.msg_connect(src, "pdus", block, in_port)
    tb.msg_connect(block, out_port, dbg, "store")
    expect = len(msgs) if expect is None else expect
    tb.start()
    try:
        for i, msg in enumerate(msgs):
            if before:   # once the previous PDU is out: the setter acts on this one alone
                deadline = time.time() + timeout
                while dbg.num_messages() < i and time.time() < deadline:
                    time.sleep(0.01)
                before(i)
            src.feed(msg)
        deadline = time.time() + timeout
        while dbg.num_messages() < expect and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
    return [dbg.get_message(i) for i in range(dbg.num_messages())]


def image_pdus(images):
    return [image_pdu(pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(i)), im)
            for i, im in enumerate(images)]


def by_id(msgs, kind="c32"):
    """{image_id: (meta, vector)}."""
    out = {}
    for m in msgs:
        meta = pmt.car(m)
        if kind == "c32":
            vec = np.array(pmt.c32vector_elements(pmt.cdr(m)), np.complex64)
        else:
            vec = split_image_pdu(m, gr.logger("test"))[1]
        out[meta_get(meta, "image_id")] = (meta, vec)
    return out


def scheme_tx(images, mcs, snr_db=20.0, power=1.0, codec="webp"):
    ctx = TxContext(snr_db, "awgn", "", power=power, options={"mcs": mcs, "k": K, "codec": codec})
    return LocalBackend("cpu").transmit("digital", images, ctx)


def transmit_block(images, **kw):
    kw = dict(dict(codec="webp", mcs="16qam-1/2", k=K, snr_db=20.0), **kw)
    return by_id(run(semcom.digital_transmitter(**kw), "images", "symbols", image_pdus(images)))


# ------------------------------------------------------------------ transmitter
@pytest.mark.parametrize("mcs, codec, power", [("qpsk-3/4", "jpeg", 1.0), ("16qam-1/2", "webp", 2.0),
                                               ("64qam-5/6", "webp", 1.0)])
def test_transmitter_block_sends_the_schemes_symbols_bit_for_bit(images, mcs, codec, power):
    sent = transmit_block(images, mcs=mcs, codec=codec, power=power)
    ref = scheme_tx(images, mcs, power=power, codec=codec)
    assert sorted(sent) == list(range(len(images)))
    for i, (meta, z) in sent.items():
        assert np.array_equal(z, ref.symbols[i].numpy())
        assert meta_get(meta, "side_info") == ref.side_info[i]
        assert ref.side_info[i]["mcs"] == mcs and ref.side_info[i].get("codec") in (codec, None)   # None: nothing fit
        assert meta_get(meta, "scheme") == "digital" and meta_get(meta, "n_symbols") == K
        assert meta_get(meta, "cbr") == pytest.approx(K / images[i].size)
        for key in ("frame_seq", "codeword", "codewords", "ldpc_rate"):   # the blocks' own keys are gone
            assert pmt.is_null(pmt.dict_ref(meta, pmt.intern(key), pmt.PMT_NIL)), key


def test_adaptive_mcs_follows_the_snr_setter(images):
    """The adaptive choice is the scheme's at each SNR; below every threshold nothing is sent
    (k zeros, mcs "none"), as the scheme does."""
    tx = semcom.digital_transmitter(codec="webp", mcs="adaptive", k=K, snr_db=20.0)
    snrs = [20.0, 8.0, -5.0]
    sent = by_id(run(tx, "images", "symbols", image_pdus(images[:3]), before=lambda i: tx.set_snr_db(snrs[i])))
    for i, snr in enumerate(snrs):
        ref = scheme_tx(images[i:i + 1], "adaptive", snr_db=snr)
        assert meta_get(sent[i][0], "side_info") == ref.side_info[0]
        assert np.array_equal(sent[i][1], ref.symbols[0].numpy())
    assert meta_get(sent[2][0], "side_info") == {"mcs": "none"} and not sent[2][1].any()
    tx.set_mcs("256qam-9/10")   # logged and ignored, never raised (GUI callbacks)
    tx.set_mcs("qpsk-1/2")
    assert tx.framer.mcs == "qpsk-1/2"
    with pytest.raises(ValueError, match="carries no LDPC codeword"):
        semcom.digital_transmitter(mcs="qpsk-1/2", k=100)


# ------------------------------------------------------------------ the link
def equalized(sent, snr_db, channel_type="awgn", seed=0, corrupt=()):
    """Equalized PDUs (equalized_to_pdu's format) of the transmitter's symbol PDUs through the
    core channel and MMSE equalizer, with the Observation the scheme's receiver gets."""
    ids = sorted(sent)
    z = torch.from_numpy(np.stack([sent[i][1] for i in ids]))
    ch = transmit(z, None, snr_db, channel_type=channel_type, generator=torch.Generator().manual_seed(seed))
    zhat, w = mmse_equalize(ch.y, ch.h, ch.powers.signal_power, ch.powers.noise_var)
    g = torch.Generator().manual_seed(seed + 1)
    for row in corrupt:   # many LLRs to the wrong sign: beyond any decoder
        zhat[row] = zhat[row] * torch.where(torch.rand(z.shape[1], generator=g) < 0.3, -1.0, 1.0)
    pdus = []
    c32 = lambda v: pmt.init_c32vector(v.numel(), v.numpy().astype(np.complex64))  # noqa: E731
    for row, i in enumerate(ids):
        meta = sent[i][0]
        for key, value in (("w", c32(w[row])), ("h", c32(ch.h[row])), ("snr_db", pmt.from_double(snr_db)),
                           ("sinr_db", pmt.from_double(math.inf))):
            meta = pmt.dict_add(meta, pmt.intern(key), value)
        pdus.append(pmt.cons(meta, c32(zhat[row])))
    obs = Observation(zhat=zhat, w=w, h=ch.h, powers=ch.powers, snr_db=snr_db, channel_type=channel_type,
                      side_info=[meta_get(sent[i][0], "side_info") for i in ids])
    return pdus, obs


def receive_block(pdus, **kw):
    rx = semcom.digital_receiver(**dict(dict(codec="webp", k=K), **kw))
    return rx, by_id(run(rx, "pdus", "images", pdus, timeout=60), kind="image")


@pytest.mark.parametrize("mcs, snr_db, channel_type", [("16qam-1/2", 8.5, "awgn"), ("64qam-3/4", 30.0, "rayleigh"),
                                                       ("qpsk-3/4", math.inf, "awgn")])
def test_receiver_block_gives_the_schemes_images(images, mcs, snr_db, channel_type):
    """Near 16qam-1/2's threshold (7.5 dB) both decoders iterate (gr-fec's sum-product a few
    times, our min-sum more) and find every codeword; noiseless, the LLRs are huge (clamped
    for gr-fec). qpsk-3/4's budget holds no WebP for half the images: lost at both ends."""
    sent = transmit_block(images, mcs=mcs)
    pdus, obs = equalized(sent, snr_db, channel_type)
    obs.options = {"mcs": mcs}
    ref = LocalBackend("cpu").receive("digital", obs)
    rx, got = receive_block(pdus, snr_db=snr_db)
    assert sorted(got) == list(range(len(images)))
    assert all(np.array_equal(got[i][1], ref.images[i]) for i in got)
    assert rx.success_rate == ref.extra["success_rate"] >= 0.5
    assert rx.lost == round((1 - ref.extra["success_rate"]) * len(images))
    iterations = [meta_get(m, "ldpc_iterations") for m, _ in got.values()]
    assert min(iterations) > 0 if snr_db < math.inf else max(iterations) == 0   # 0: the hard decision was a codeword
    for i, (meta, _) in got.items():
        assert meta_get(meta, "lost") is np.array_equal(ref.images[i], dataset_mean((32, 32, 3)))
        assert meta_get(meta, "ldpc_iterations") is not None
        assert pmt.is_null(pmt.dict_ref(meta, pmt.intern("w"), pmt.PMT_NIL))


def test_a_corrupted_frame_is_lost_counted_and_scores_the_mean(images):
    sent = transmit_block(images, mcs="16qam-1/2")
    pdus, obs = equalized(sent, 25.0, corrupt=(2,))
    obs.options = {"mcs": "16qam-1/2"}
    ref = LocalBackend("cpu").receive("digital", obs)
    assert ref.extra["success_rate"] == pytest.approx(5 / 6)
    rx, got = receive_block(pdus, snr_db=25.0)
    assert np.array_equal(got[2][1], dataset_mean((32, 32, 3))) and meta_get(got[2][0], "lost") is True
    assert all(np.array_equal(got[i][1], ref.images[i]) and meta_get(got[i][0], "lost") is False
               for i in (0, 1, 3, 4, 5))
    assert (rx.delivered, rx.lost) == (5, 1) and rx.success_rate == pytest.approx(5 / 6)


def test_a_frame_sent_without_an_mcs_is_lost(images):
    sent = transmit_block(images[:2], mcs="adaptive", snr_db=-5.0)
    pdus, _ = equalized(sent, -5.0)
    rx, got = receive_block(pdus, snr_db=-5.0)
    assert all(meta_get(m, "lost") is True and np.array_equal(im, dataset_mean((32, 32, 3))) for m, im in got.values())
    assert rx.success_rate == 0.0


def test_gr_fec_decodes_not_our_decoder(images, monkeypatch):
    """The blocks hold gr-fec's objects, and the link works with ldpc.decode/encode out of reach."""
    rx = semcom.digital_receiver()
    tx = semcom.digital_transmitter(mcs="16qam-1/2")
    assert set(rx.fec_decoders) == set(ldpc.CODES) == set(tx.fec_encoders)
    assert all(isinstance(d, fec.ldpc_decoder) for d in rx.fec_decoders.values())
    assert all(isinstance(b, fec.async_decoder) for b in rx.decoders.values())
    for rate, enc in tx.fec_encoders.items():   # make_H hands back the generic_encoder interface
        code = ldpc.load_code(rate)
        assert isinstance(enc, fec.generic_encoder) and (enc.get_input_size(), enc.get_output_size()) == (code.k, code.n)
    assert all(isinstance(b, fec.async_encoder) for b in tx.encoders.values())

    def refuse(*args, **kw):
        raise AssertionError("our LDPC code was used")
    monkeypatch.setattr(ldpc, "decode", refuse)
    monkeypatch.setattr(ldpc, "encode", refuse)
    sent = transmit_block(images[:2], mcs="16qam-1/2")
    pdus, _ = equalized(sent, 20.0)
    rx, got = receive_block(pdus, snr_db=20.0)
    assert rx.delivered == 2 and sorted(got) == [0, 1]


@pytest.mark.parametrize("rate", list(ldpc.CODES))
def test_gr_fec_async_blocks_keep_metadata_and_the_decoder_outputs_the_information_bits(rate):
    """What the blocks rely on: async_encoder/async_decoder keep the PDU's metadata (the decoder
    adds "iterations"), keep the order, and ldpc_decoder outputs the k information bits
    (ldpc.info_positions of the codeword), in order; LLRs far beyond GR_FEC_LLR_MAX are clamped."""
    code = ldpc.load_code(rate)
    info = np.random.default_rng(0).integers(0, 2, (4, code.k), dtype=np.uint8)
    words = ldpc.encode(code, info)
    tx, rx = semcom.digital_transmitter(), semcom.digital_receiver()
    meta = lambda i: pmt.dict_add(pmt.make_dict(), pmt.intern("cw"), pmt.from_long(i))  # noqa: E731
    coded = run(fec.async_encoder(tx.fec_encoders[rate]), "in", "out", [pmt.cons(meta(i), pmt.init_u8vector(code.k, info[i])) for i in range(4)])
    assert [meta_get(pmt.car(m), "cw") for m in coded] == [0, 1, 2, 3]
    assert np.array_equal(np.stack([np.array(pmt.u8vector_elements(pmt.cdr(m))) for m in coded]), words)
    llr = torch.from_numpy(1e6 * (1.0 - 2.0 * words)).float()
    llr[:, 7] *= -1e-3                                  # two confidently wrong bits per codeword: gr-fec
    llr[:, 100] *= -1e-4                                # fails on them unless the LLRs are clamped
    soft = chain.gr_fec_soft(llr)
    assert np.abs(soft).max() == pytest.approx(2 * chain.GR_FEC_LLR_MAX)
    out = run(fec.async_decoder(rx.fec_decoders[rate]), "in", "out", [pmt.cons(meta(i), pmt.init_f32vector(code.n, soft[i])) for i in range(4)])
    assert [meta_get(pmt.car(m), "cw") for m in out] == [0, 1, 2, 3]
    assert all(meta_get(pmt.car(m), "iterations") >= 1 for m in out)
    assert np.array_equal(np.stack([np.array(pmt.u8vector_elements(pmt.cdr(m))) for m in out]), info)


def test_an_image_whose_codewords_never_all_come_back_does_not_block_the_others():
    def meta(seq, index, count, rate="1/2"):
        d = pmt.make_dict()
        for key, value in (("frame_seq", pmt.from_long(seq)), ("codeword", pmt.from_long(index)),
                           ("codewords", pmt.from_long(count)), ("ldpc_rate", pmt.intern(rate)),
                           ("image_id", pmt.from_long(seq))):
            d = pmt.dict_add(d, pmt.intern(key), value)
        return d
    c = CodewordCollector()
    assert c.add(meta(1, 0, 2), "a") == ([], [])                       # frame 1: codeword 1 never comes
    assert c.add(meta(3, 0, 1, "3/4"), "x")[1] == []                   # another rate's path: no verdict on 1
    assert c.add(meta(2, 1, 2), "d") == ([], []) and len(c) == 2
    done, stale = c.add(meta(2, 0, 2), "c")
    assert [parts for _, parts in done] == [["c", "d"]]
    assert [(meta_get(m, "frame_seq"), present) for m, present in stale] == [(1, 1)] and len(c) == 0
    assert c.add(meta(4, 0, 0), None)[0][0][1] == []                   # no codewords: complete at once
    # the receiver's deframer posts the given-up frame as lost, then the next one
    deframer = digital_deframer()
    k = ldpc.load_code("1/2").k
    side = pmt.to_pmt({"mcs": "qpsk-1/2"})

    def cw(seq, count):
        d = pmt.dict_add(meta(seq, 0, count), pmt.intern("side_info"), side)
        return pmt.cons(pmt.dict_add(d, pmt.intern("n_symbols"), pmt.from_long(K)), pmt.init_u8vector(k, [0] * k))
    out = run(deframer, "pdus", "images", [cw(1, 2), cw(2, 1)], expect=2)
    assert [(meta_get(pmt.car(m), "image_id"), meta_get(pmt.car(m), "lost")) for m in out] == [(1, True), (2, True)]
    assert deframer.incomplete == 1 and deframer.lost == 2   # frame 2's zero bits fail the CRC


def test_the_stream_chain_delivers_the_codecs_images(images):
    """image_source -> digital_transmitter -> PDU to stream -> fading_interference_channel_cc ->
    mmse_equalizer_cc -> equalized_to_pdu -> digital_receiver -> image_sink, paced by acks: at
    30 dB every image arrives as the codec made it (or, where nothing fitted, lost as the mean)."""
    from gnuradio import pdu
    from gnuradio.semcom.digital import codec, mcs
    tb = gr.top_block()
    source = semcom.image_source("sample", len(images), 0, "forward", 4, 30.0)
    tx = semcom.digital_transmitter("webp", "64qam-2/3", K, 30.0)
    to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, "packet_len")
    channel = semcom.fading_interference_channel_cc("awgn", 1, 30.0, math.inf, 1.0, 0)
    equalizer = semcom.mmse_equalizer_cc(1.0, 1e-3)
    to_pdu = semcom.equalized_to_pdu(30.0, math.inf)
    rx = semcom.digital_receiver("webp", K, 50, 30.0)
    sink = semcom.image_sink(with_lpips=False)
    tb.msg_connect(source, "pdus", tx, "images")
    tb.msg_connect(source, "pdus", sink, "reference")
    tb.msg_connect(tx, "symbols", to_stream, "pdus")
    tb.connect(to_stream, (channel, 0))
    tb.connect(blocks.null_source(gr.sizeof_gr_complex), (channel, 1))
    tb.connect((channel, 0), (equalizer, 0))
    tb.connect((channel, 1), (equalizer, 1))
    tb.connect((equalizer, 0), (to_pdu, 0))
    tb.connect((equalizer, 1), (to_pdu, 1))
    tb.connect((channel, 1), (to_pdu, 2))
    tb.msg_connect(to_pdu, "pdus", rx, "pdus")
    tb.msg_connect(rx, "images", sink, "pdus")
    tb.msg_connect(sink, "ack", source, "ack")
    tb.run()
    ids, _, received = sink.matched_images()
    assert ids == list(range(len(images)))
    budget = mcs.layout(mcs.get("64qam-2/3"), K).payload_bytes
    for got, image in zip(received, images):
        fit = codec.encode(image, "webp", budget)
        assert np.array_equal(got, codec.decode(fit[0], "webp", image.shape) if fit else dataset_mean(image.shape))
    assert rx.delivered == sum(codec.encode(im, "webp", budget) is not None for im in images) > 0
