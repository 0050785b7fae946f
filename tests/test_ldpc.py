"""digital/ldpc.py: the shipped codes, the encoder bit for bit against gr-fec's two LDPC
encoders, the min-sum decoder on its own and against gr-fec's soft decoder on the same noisy
observations."""

import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest
import torch

from gnuradio.semcom.digital import ldpc

RATES = list(ldpc.CODES)
ROW_WEIGHTS = {"1/2": 6, "2/3": 9, "3/4": 12, "5/6": 18}
# BPSK Eb/N0 (dB) per rate at which the seeded batches below decode completely while the
# channel's hard decision has errors in every codeword.
EBN0_DB = {"1/2": 3.0, "2/3": 3.5, "3/4": 4.0, "5/6": 4.5}


def bpsk_awgn(codewords: np.ndarray, rate: float, ebn0_db: float, seed: int) -> torch.Tensor:
    """BPSK (0 -> +1, 1 -> -1) through real AWGN at Eb/N0: the LLRs 2 y / sigma^2 (float32)."""
    sigma = np.sqrt(1 / (2 * rate * 10 ** (ebn0_db / 10)))
    y = 1.0 - 2.0 * codewords + sigma * np.random.default_rng(seed).standard_normal(codewords.shape)
    return torch.from_numpy(2 * y / sigma ** 2).float()


def random_info(code, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (count, code.k), dtype=np.uint8)


def _through_gr_fec(source, block, rows: int, width: int) -> np.ndarray:
    """source -> fec block -> vector sink in a top block: (rows, width) uint8."""
    from gnuradio import blocks, gr
    tb = gr.top_block()
    sink = blocks.vector_sink_b()
    tb.connect(source, block, sink)
    tb.run()
    return np.array(sink.data(), np.uint8).reshape(rows, width)


def gr_fec_encode(encoder, info: np.ndarray, n: int) -> np.ndarray:
    """(B, k) bits through fec.encoder(encoder) -> (B, n)."""
    from gnuradio import blocks, fec, gr
    return _through_gr_fec(blocks.vector_source_b(info.ravel().tolist()),
                           fec.encoder(encoder, gr.sizeof_char, gr.sizeof_char), len(info), n)


def gr_fec_decode(decoder, soft: np.ndarray, k: int) -> np.ndarray:
    """(B, n) soft values through fec.decoder(decoder) -> (B, k) information bits."""
    from gnuradio import blocks, fec, gr
    return _through_gr_fec(blocks.vector_source_f(soft.ravel().tolist()),
                           fec.decoder(decoder, gr.sizeof_float, gr.sizeof_char), len(soft), k)


# ---------------------------------------------------------------- the shipped codes
@pytest.mark.parametrize("rate", RATES)
def test_shipped_codes(rate):
    code = ldpc.load_code(rate)
    q = ROW_WEIGHTS[rate]
    assert code.n == 1008 and code.H.shape == (code.m, code.n) and code.m == code.n - code.k
    assert ldpc.gf2_rank(code.H) == code.m                        # full rank
    assert 0 <= code.k - code.n * Fraction(rate) <= 4             # dependent rows removed: k a bit above
    assert (code.H.sum(axis=1) == q).all() and code.H.sum(axis=0).max() == 3
    overlap = code.H.T.astype(np.float32) @ code.H.astype(np.float32)
    np.fill_diagonal(overlap, 0)
    assert overlap.max() == 1                                     # no 4-cycles: no equal columns
    assert code.name == ldpc.CODES[rate] == f"n_1008_k_{code.k:04d}_gap_{code.gap:02d}.alist"
    assert ldpc.load_code(rate) is code                           # cached
    assert list(ldpc.info_positions(code)) == list(range(code.m, code.n))


def test_unknown_rate():
    with pytest.raises(ValueError, match="shipped: 1/2, 2/3, 3/4, 5/6"):
        ldpc.load_code("1/3")


def test_read_alist_small(tmp_path):
    path = tmp_path / "n_0004_k_0002_gap_01.alist"
    path.write_text("4 2\n2 3\n1 1 2 1\n2 3\n1\n2\n1 2\n2\n1 3\n2 3 4\n")
    code = ldpc.read_alist(path)
    assert (code.n, code.k, code.m, code.gap) == (4, 2, 2, 1)
    assert code.H.tolist() == [[1, 0, 1, 0], [0, 1, 1, 1]]
    # MacKay's zero padding after a list's entries is allowed
    path.write_text("4 2\n2 3\n1 1 2 1\n2 3\n1 0\n2 0\n1 2\n2 0\n1 3 0\n2 3 4\n")
    assert ldpc.read_alist(path).H.tolist() == code.H.tolist()


@pytest.mark.parametrize("text, reason", [
    ("", "first lines"),
    ("4 2\n2 3\n1 1 2 1\n2 3\n1\n2\n1 2\n2\n1 3\n", "index lines"),                  # a row list missing
    ("4 2\n2 3\n1 1 2 1\n2 3\n1\n2\n1 2\n2\n1 3\n2 3 4\n5\n", "index lines"),        # trailing data
    ("4 2\n2 3\n1 1 2 1\n2 3\n1\n2\n1 x\n2\n1 3\n2 3 4\n", "not an integer"),
    ("4 2\n2 3\n1 1 2 1\n2 3\n1\n3\n1 2\n2\n1 3\n2 3 4\n", "column 2"),              # row index 3 > m
    ("4 2\n2 3\n1 1 2 1\n2 3\n1\n2\n1 2\n2\n1 4\n2 3 4\n", "different matrices"),
    ("4 2\n2 3\n1 1 2\n2 3\n1\n2\n1 2\n2\n1 3\n2 3 4\n", "weights"),
    ("4 2\n2 3\n1 1 2 1\n2 3\n1\n2\n1 1\n2\n1 3\n2 3 4\n", "column 3"),              # repeated index
])
def test_read_alist_malformed(tmp_path, text, reason):
    path = tmp_path / "bad.alist"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"bad\.alist: not a valid alist file: .*{reason}"):
        ldpc.read_alist(path)


# ---------------------------------------------------------------- encoder
@pytest.mark.parametrize("rate", RATES)
def test_encode_gives_codewords(rate):
    code = ldpc.load_code(rate)
    info = random_info(code, 32, seed=1)
    words = ldpc.encode(code, info)
    assert words.shape == (32, code.n) and words.dtype == np.uint8
    assert not ldpc.syndrome(code, words).any()
    assert np.array_equal(words[:, ldpc.info_positions(code)], info)
    assert np.array_equal(ldpc.encode(code, info[:3] ^ info[3:6]), words[:3] ^ words[3:6])   # linear
    assert np.array_equal(ldpc.encode(code, info.astype(bool)), words)


@pytest.mark.parametrize("rate", RATES)
def test_encode_matches_gr_fec(rate):
    """Bit for bit: gr-fec's Richardson-Urbanke encoder (ldpc_H_matrix with the file's gap) and
    its generator-matrix encoder (ldpc_encoder_make) on the same alist and information bits."""
    from gnuradio import fec
    code = ldpc.load_code(rate)
    info = random_info(code, 8, seed=2)
    ours = ldpc.encode(code, info)
    ru = fec.ldpc_par_mtrx_encoder.make_H(fec.ldpc_H_matrix(str(code.path), code.gap))
    assert np.array_equal(gr_fec_encode(ru, info, code.n), ours)
    assert np.array_equal(gr_fec_encode(fec.ldpc_encoder_make(str(code.path)), info, code.n), ours)


@pytest.mark.parametrize("shape, dtype, value, message", [
    ((0,), np.uint8, 0, r"shape \(B, K\)"),
    ((2, -1), np.uint8, 0, r"shape \(B, K\)"),
    ((2, 0), np.uint8, 2, "bits 0/1"),
    ((2, 0), np.float32, 0, "bits 0/1"),
])
def test_encode_bad_input(shape, dtype, value, message):
    """Shapes relative to k: (k,), (2, k - 1), (2, k)."""
    code = ldpc.load_code("1/2")
    bad = np.full(tuple(code.k + d if i == len(shape) - 1 else d for i, d in enumerate(shape)), value, dtype)
    with pytest.raises(ValueError, match=message.replace("K", str(code.k))):
        ldpc.encode(code, bad)


# ---------------------------------------------------------------- decoder
def test_decode_noiseless():
    code = ldpc.load_code("1/2")
    words = ldpc.encode(code, random_info(code, 16, seed=3))
    llr = torch.from_numpy(8.0 * (1.0 - 2.0 * words))
    bits, ok, iterations = ldpc.decode(code, llr)
    assert ok.all() and (iterations == 0).all() and np.array_equal(bits.numpy(), words)
    # half the codewords with one weak, wrong bit: one iteration mends it
    llr[::2, 5] = -0.1 * llr[::2, 5].sign()
    bits, ok, iterations = ldpc.decode(code, llr)
    assert ok.all() and iterations.tolist() == [1, 0] * 8 and np.array_equal(bits.numpy(), words)


@pytest.mark.parametrize("rate", RATES)
def test_decode_corrects_awgn(rate):
    code = ldpc.load_code(rate)
    words = ldpc.encode(code, random_info(code, 24, seed=4))
    llr = bpsk_awgn(words, code.rate, EBN0_DB[rate], seed=5)
    assert ((llr.numpy() < 0) != words).any(axis=1).all()        # every hard decision is wrong somewhere
    bits, ok, iterations = ldpc.decode(code, llr, max_iter=50)
    assert ok.all() and np.array_equal(bits.numpy(), words)
    assert 1 <= iterations.min() and iterations.max() < 50


def test_decode_reports_failure():
    code = ldpc.load_code("1/2")
    llr = torch.randn(8, code.n, generator=torch.Generator().manual_seed(6))
    bits, ok, iterations = ldpc.decode(code, llr, max_iter=20)
    assert not ok.any() and (iterations == 20).all() and bits.shape == (8, code.n)
    assert ldpc.syndrome(code, bits.numpy()).any(axis=1).all()


def test_decode_input_forms():
    """numpy or torch, float32 or float64, an empty batch; results on the input's device."""
    code = ldpc.load_code("3/4")
    words = ldpc.encode(code, random_info(code, 4, seed=7))
    llr = bpsk_awgn(words, code.rate, EBN0_DB["3/4"], seed=8)
    ref = ldpc.decode(code, llr)
    for other in (llr.double(), llr.numpy()):
        out = ldpc.decode(code, other)
        assert all(torch.equal(a, b) for a, b in zip(out, ref))
    empty = ldpc.decode(code, torch.zeros(0, code.n))
    assert empty.bits.shape == (0, code.n) and empty.ok.shape == (0,)
    if torch.cuda.is_available():
        out = ldpc.decode(code, llr.cuda())
        assert out.bits.is_cuda and torch.equal(out.bits.cpu(), ref.bits) and torch.equal(out.ok.cpu(), ref.ok)


@pytest.mark.parametrize("llr, kwargs, message", [
    (torch.zeros(2, 1007), {}, r"shape \(B, 1008\)"),
    (torch.zeros(1008), {}, r"shape \(B, 1008\)"),
    (torch.zeros(2, 1008, dtype=torch.int32), {}, "finite floats"),
    (torch.full((2, 1008), float("nan")), {}, "finite floats"),
    (torch.zeros(2, 1008), {"max_iter": -1}, "max_iter"),
    (torch.zeros(2, 1008), {"scale": 0.0}, "scale"),
])
def test_decode_bad_input(llr, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ldpc.decode(ldpc.load_code("1/2"), llr, **kwargs)


@pytest.mark.parametrize("rate", ["1/2", "5/6"])
def test_decode_agrees_with_gr_fec(rate):
    """The same codewords and noisy observations through gr-fec's sum-product decoder (fed
    x = -2 sigma^2 LLR, its convention) and ours: wherever gr-fec's information bits are right,
    our codeword is the transmitted one; at this SNR gr-fec gets most of them."""
    from gnuradio import fec
    code = ldpc.load_code(rate)
    info = random_info(code, 20, seed=9)
    words = ldpc.encode(code, info)
    llr = bpsk_awgn(words, code.rate, EBN0_DB[rate] - 0.5, seed=10)
    sigma_arg = 0.8
    theirs = gr_fec_decode(fec.ldpc_decoder.make(str(code.path), sigma_arg, 50),
                           -2 * sigma_arg ** 2 * llr.numpy(), code.k)
    gr_ok = (theirs == info).all(axis=1)
    bits, ok, _ = ldpc.decode(code, llr, max_iter=50)
    ours_right = (bits.numpy() == words).all(axis=1)
    assert gr_ok.sum() >= 15
    assert ours_right[gr_ok].all() and ok[torch.from_numpy(gr_ok)].all()


@pytest.mark.slow
def test_ldpc_is_gnu_radio_free():
    """A fresh interpreter that refuses every gnuradio.* module but the package, digital and ldpc."""
    script = textwrap.dedent("""
        import importlib.abc, sys
        ALLOWED = ("gnuradio.semcom", "gnuradio.semcom.digital", "gnuradio.semcom.digital.ldpc")
        class NoGnuRadio(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "pmt" or (name.startswith("gnuradio.") and name not in ALLOWED):
                    raise ModuleNotFoundError(f"blocked {name}", name=name)
        sys.meta_path.insert(0, NoGnuRadio())
        import torch
        from gnuradio.semcom.digital import ldpc
        code = ldpc.load_code("2/3")
        words = ldpc.encode(code, torch.randint(0, 2, (2, code.k)).numpy())
        assert ldpc.decode(code, 4.0 * (1.0 - 2.0 * torch.from_numpy(words).float())).ok.all()
        print("gr-free ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "gr-free ok" in out.stdout, out.stderr
