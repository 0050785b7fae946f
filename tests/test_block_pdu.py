"""symbol_mapper / symbol_demapper / gaussian_latent_source, alone and through the link."""

import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr, pdu

from gnuradio import semcom
from gnuradio.semcom.pdu_util import make_pdu


def post_and_collect(block, msgs, out_port="pdus"):
    """Post messages to a block's "pdus" port in a running flowgraph; return what it emits."""
    tb = gr.top_block()
    dbg = blocks.message_debug()
    tb.msg_connect(block, out_port, dbg, "store")
    tb.start()
    try:
        for m in msgs:
            block._post(pmt.intern("pdus"), m)
        deadline = time.time() + 5
        while time.time() < deadline:
            time.sleep(0.05)
            if dbg.num_messages() >= len(msgs) or time.time() > deadline - 4.5:
                break
    finally:
        tb.stop()
        tb.wait()
    return [dbg.get_message(i) for i in range(dbg.num_messages())]


def meta_of(**kw):
    d = pmt.make_dict()
    for k, v in kw.items():
        d = pmt.dict_add(d, pmt.intern(k), pmt.to_pmt(v))
    return d


def test_mapper_normalises_and_demapper_inverts(rng):
    latent = (3 * rng.standard_normal(128)).astype(np.float32)
    out = post_and_collect(semcom.symbol_mapper(power=2.0), [make_pdu(meta_of(image_id=5), latent)])
    assert len(out) == 1
    meta, z = pmt.car(out[0]), np.array(pmt.c32vector_elements(pmt.cdr(out[0])))
    assert len(z) == 64 and np.mean(np.abs(z) ** 2) == pytest.approx(2.0, rel=1e-5)
    assert pmt.to_long(pmt.dict_ref(meta, pmt.intern("image_id"), pmt.PMT_NIL)) == 5
    assert pmt.to_long(pmt.dict_ref(meta, pmt.intern("n_symbols"), pmt.PMT_NIL)) == 64
    back = post_and_collect(semcom.symbol_demapper(), out)
    np.testing.assert_allclose(pmt.f32vector_elements(pmt.cdr(back[0])), latent, rtol=1e-5, atol=1e-5)


def test_garbage_is_dropped_and_valid_pdus_still_pass(rng):
    good = make_pdu(meta_of(image_id=1), rng.standard_normal(8).astype(np.float32))
    garbage = [pmt.intern("hello"), pmt.cons(pmt.PMT_NIL, pmt.init_u8vector(4, [1, 2, 3, 4])),
               make_pdu(pmt.make_dict(), np.zeros(8, np.float32)),  # cannot be normalised
               make_pdu(pmt.make_dict(), np.ones(7, np.float32))]   # odd length
    out = post_and_collect(semcom.symbol_mapper(), garbage + [good])
    assert len(out) == 1
    # The demapper needs the power scale unless told not to undo it.
    no_scale = make_pdu(pmt.make_dict(), np.ones(4, np.complex64))
    assert post_and_collect(semcom.symbol_demapper(), [no_scale]) == []
    assert len(post_and_collect(semcom.symbol_demapper(undo_scale=False), [no_scale])) == 1


def test_constructor_errors():
    with pytest.raises(ValueError):
        semcom.symbol_mapper(power=0)
    with pytest.raises(ValueError):
        semcom.gaussian_latent_source(n_symbols=0)
    with pytest.raises(ValueError):
        semcom.gaussian_latent_source(max_in_flight=0)


def build_link(k, count, snr_db, sinr_db, channel="rayleigh", max_in_flight=4):
    """Two Gaussian users -> mappers -> stock PDU<->stream blocks -> channel -> MMSE -> demapper."""
    tb = gr.top_block()
    # A Python block must stay referenced while its flowgraph lives: GNU Radio keeps only
    # the C++ side, and a collected Python block crashes the scheduler thread calling it.
    user = semcom.gaussian_latent_source(k, count, 1, max_in_flight)
    interferer = semcom.gaussian_latent_source(k, count, 2, max_in_flight)
    ch = semcom.fading_interference_channel_cc(channel, 1, snr_db, sinr_db, 1.0, 3)
    eq = semcom.mmse_equalizer_cc(1.0, ch.noise_var())
    to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, "packet_len")
    demapper = semcom.symbol_demapper()
    tb.keep = [user, interferer, demapper]
    sent, received = blocks.message_debug(), blocks.message_debug()
    for i, src in enumerate((user, interferer)):
        mapper = semcom.symbol_mapper()
        tb.keep.append(mapper)
        to_stream = pdu.pdu_to_tagged_stream(gr.types.complex_t, "packet_len")
        tb.msg_connect(src, "pdus", mapper, "pdus")
        tb.msg_connect(mapper, "pdus", to_stream, "pdus")
        tb.connect(to_stream, (ch, i))
        tb.msg_connect(demapper, "ack", src, "ack")
    tb.msg_connect(user, "pdus", sent, "store")
    tb.connect((ch, 0), (eq, 0))
    tb.connect((ch, 1), (eq, 1))
    tb.connect((eq, 0), to_pdu)
    tb.connect((eq, 1), blocks.null_sink(gr.sizeof_gr_complex))
    tb.msg_connect(to_pdu, "pdus", demapper, "pdus")
    tb.msg_connect(demapper, "pdus", received, "store")
    return tb, sent, received


def test_link_runs_to_completion_without_losing_pdus():
    count, k = 60, 256
    tb, sent, received = build_link(k, count, snr_db=40.0, sinr_db=float("inf"))
    tb.run()  # returns by itself: the sources say "done" once every PDU was acknowledged
    assert received.num_messages() == sent.num_messages() == count
    for i in range(count):
        tx, rx = sent.get_message(i), received.get_message(i)
        meta = pmt.car(rx)
        assert pmt.to_long(pmt.dict_ref(meta, pmt.intern("image_id"), pmt.PMT_NIL)) == i
        err = np.array(pmt.f32vector_elements(pmt.cdr(rx))) - np.array(pmt.f32vector_elements(pmt.cdr(tx)))
        power = np.mean(np.array(pmt.f32vector_elements(pmt.cdr(tx))) ** 2)
        # Rayleigh at 40 dB, MMSE: the latent error is far below the latent power.
        assert np.mean(err ** 2) < 0.01 * power


def test_interference_raises_latent_error():
    errs = {}
    for sinr in (float("inf"), 0.0):
        tb, sent, received = build_link(128, 20, snr_db=20.0, sinr_db=sinr, channel="awgn")
        tb.run()
        e = [np.mean((np.array(pmt.f32vector_elements(pmt.cdr(received.get_message(i))))
                      - np.array(pmt.f32vector_elements(pmt.cdr(sent.get_message(i))))) ** 2)
             for i in range(20)]
        errs[sinr] = np.mean(e)
    # AWGN, unit-power symbols: error ~ 1/SINR in symbol units (x 1/scale^2 ~ latent power).
    assert errs[0.0] > 30 * errs[float("inf")]


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
@pytest.mark.parametrize("snr_db, sinr_db", [(10.0, float("inf")), (20.0, 0.0)])
def test_gaussian_link_latent_error_matches_closed_form(channel, snr_db, sinr_db):
    """The whole GNU Radio chain (mapper, stock PDU blocks, channel, MMSE, demapper)
    reproduces the MMSE error predicted in closed form."""
    from gnuradio.semcom.core.equalizer import mmse_symbol_error
    tb = semcom.gaussian_link(512, 40, snr_db, sinr_db, channel, seed=5)
    tb.run()
    sent, received = tb.latents()
    assert len(sent) == 40
    mse = np.mean((received - sent) ** 2) / np.mean(sent ** 2)
    # 20480 symbols: ~1 % sampling error at 10 dB; the heavy Rayleigh/interference tail needs more.
    assert 10 * np.log10(mse) == pytest.approx(10 * np.log10(mmse_symbol_error(channel, snr_db, sinr_db)), abs=0.3)
