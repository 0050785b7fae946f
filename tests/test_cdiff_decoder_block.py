"""The cdiff_decoder block (cdiff_decoder.py): in a flowgraph it returns exactly what the cdiff
scheme's receiver returns for the same equalized PDU and seed, zero-pads short PDUs (the CBR
sweep) and refuses bad parameters with one clear error."""

import math

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, gr

from gnuradio import semcom
from gnuradio.semcom.core.channel import link_powers
from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.inference.local import LocalBackend
from gnuradio.semcom.schemes.base import Observation

K = 128


def equalized_pdu(image_id, zhat, w, h, snr_db):
    meta = pmt.make_dict()
    c32 = lambda v: pmt.init_c32vector(v.size, np.ascontiguousarray(v, np.complex64))
    for key, value in (("image_id", pmt.from_long(image_id)), ("w", c32(w)), ("h", c32(h)),
                       ("snr_db", pmt.from_double(snr_db))):
        meta = pmt.dict_add(meta, pmt.intern(key), value)
    return pmt.cons(meta, c32(zhat))


def run_block(block, pdus, timeout=60):
    import time
    tb = gr.top_block()
    dbg = blocks.message_debug()
    tb.msg_connect(block, "images", dbg, "store")
    tb.start()
    try:
        for pdu in pdus:
            block._post(pmt.intern("pdus"), pdu)
        deadline = time.time() + timeout
        while dbg.num_messages() < len(pdus) and time.time() < deadline:
            time.sleep(0.02)
    finally:
        tb.stop()
        tb.wait()
    return [dbg.get_message(i) for i in range(dbg.num_messages())]


def awgn_observation(k, snr_db=10.0, seed=0):
    g = np.random.default_rng(seed)
    p = link_powers(snr_db, math.inf, 1.0)
    z = (g.standard_normal(k) + 1j * g.standard_normal(k)) / math.sqrt(2)
    n = (g.standard_normal(k) + 1j * g.standard_normal(k)) * math.sqrt(p.noise_var / 2)
    w = np.full(k, 1.0 / (1.0 + p.noise_var), np.complex64)
    return (w * (z + n)).astype(np.complex64), w, np.ones(k, np.complex64), p


@pytest.mark.parametrize("k", [K, 64])
def test_the_block_equals_the_schemes_receiver(cdiff_systems, k):
    zhat, w, h, p = awgn_observation(k)
    block = semcom.cdiff_decoder(cdiff_systems["cdiff"], "awgn", k, 3, "ddim", 5, max_batch=1)
    out = run_block(block, [equalized_pdu(7, zhat, w, h, 10.0)])
    assert len(out) == 1
    meta, image = pmt.car(out[0]), np.asarray(pmt.u8vector_elements(pmt.cdr(out[0])), np.uint8)
    assert pmt.to_long(pmt.dict_ref(meta, pmt.intern("image_id"), pmt.PMT_NIL)) == 7
    obs = Observation(zhat=torch.from_numpy(zhat[None]), w=torch.from_numpy(w[None]), h=torch.from_numpy(h[None]),
                      powers=p, snr_db=10.0, options={"steps": 3, "sampler": "ddim"}, seed=5 + 7,
                      model=cdiff_systems["cdiff"])
    want = LocalBackend("cpu").receive("cdiff", obs).images[0]
    assert np.array_equal(image, want.reshape(-1)) and image.size == 32 * 32 * 3
    assert block.nfe == 3


def test_bad_parameters_are_one_clear_error(cdiff_systems):
    with pytest.raises(ValueError, match="sampler must be one of"):
        semcom.cdiff_decoder(cdiff_systems["cdiff"], sampler="euler")
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        semcom.cdiff_decoder(cdiff_systems["cdiff"], steps=-1)
    with pytest.raises(ValueError, match="is a CDiff 'ae' system, scheme 'cdiff' needs 'cdiff'"):
        semcom.cdiff_decoder(cdiff_systems["ae"])
    with pytest.raises(CheckpointError, match="cdiff_missing: no shipped .* apps/train_cdiff.py"):
        semcom.cdiff_decoder(cdiff_systems["cdiff"] + "_missing")
