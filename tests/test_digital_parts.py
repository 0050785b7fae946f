"""The digital baseline's GNU Radio-free parts: Gray QAM and its LLRs against closed forms, the
framing's rate matching and CRC, and the codecs' byte budget and round trip."""

import itertools
import math

import numpy as np
import pytest
import torch

from gnuradio.semcom.core.datasets import load_dataset
from gnuradio.semcom.digital import codec, frame, qam


@pytest.mark.parametrize("order", qam.ORDERS)
def test_constellation_is_gray_unit_power_and_modulate_maps_bits_to_its_points(order):
    points = qam.constellation(order)
    m = qam.bits_per_symbol(order)
    assert points.abs().square().mean().item() == pytest.approx(1.0)
    assert len(set(points.tolist())) == order
    # Gray: nearest neighbours (distance of one level step) differ in exactly one bit
    step = (points.real.unique()[1] - points.real.unique()[0]).item()
    for a, b in itertools.combinations(range(order), 2):
        if abs(abs(points[a] - points[b]).item() - step) < 1e-9:
            assert bin(a ^ b).count("1") == 1
    bits = torch.tensor([(j >> s) & 1 for j in range(order) for s in range(m - 1, -1, -1)])
    torch.testing.assert_close(qam.modulate(bits, order), points.to(torch.complex64))
    with pytest.raises(ValueError, match="do not fill whole"):
        qam.modulate(torch.zeros(m + 1, dtype=torch.long), order)
    with pytest.raises(ValueError, match="0 or 1"):
        qam.modulate(torch.full((m,), 2), order)


def test_qpsk_llr_is_the_exact_closed_form_and_16qam_matches_a_brute_force_max_log():
    g = torch.Generator().manual_seed(0)
    y = torch.complex(torch.randn(50, generator=g), torch.randn(50, generator=g))
    v = torch.rand(50, generator=g) + 0.1
    llr = qam.llr_maxlog(y, v, 4).reshape(50, 2).double()
    # bits (0, 0) are the point (-1 - j) / sqrt 2: a 0 on either axis is its negative level, so
    # LLR = log P(0) / P(1) = -2 sqrt(2) y / v on that axis (exact for QPSK)
    assert qam.constellation(4)[0].item() == pytest.approx(complex(-1, -1) / math.sqrt(2))
    want = torch.stack([y.real, y.imag], -1).double() * (-2 * math.sqrt(2)) / v[:, None].double()
    torch.testing.assert_close(llr, want, rtol=1e-5, atol=1e-5)
    points, m = qam.constellation(16), 4
    llr16 = qam.llr_maxlog(y, v, 16).reshape(50, m).double()
    for s in range(50):
        d = (y[s].to(torch.complex128) - points).abs().square()
        for b in range(m):
            has = torch.tensor([(j >> (m - 1 - b)) & 1 for j in range(16)]) == 1
            assert llr16[s, b].item() == pytest.approx(((d[has].min() - d[~has].min()) / v[s]).item(), rel=1e-5)
    with pytest.raises(ValueError, match="> 0"):
        qam.llr_maxlog(y, torch.zeros(50), 4)


def test_llr_signs_decide_the_sent_bits_without_noise():
    g = torch.Generator().manual_seed(1)
    for order in qam.ORDERS:
        bits = torch.randint(0, 2, (3, 60 * qam.bits_per_symbol(order)), generator=g)
        llr = qam.llr_maxlog(qam.modulate(bits, order), torch.full((3, 60), 0.01), order)
        assert torch.equal((llr < 0).long(), bits)


@pytest.mark.parametrize("k, m", [(512, 2), (512, 4), (512, 6), (256, 6), (98, 6), (100, 2)])
def test_rate_matching_never_exceeds_the_symbol_budget(k, m):
    lay = frame.Layout(k, m, 1008, 504)
    assert lay.codewords * lay.n <= k * m and (lay.codewords + 1) * lay.n > k * m
    if lay.codewords:
        cw = np.zeros((lay.codewords, lay.n), np.uint8)
        assert frame.fill_and_scramble(cw, lay).shape == (k * m,)
        assert len(frame.pack(b"x" * lay.payload_bytes, lay).reshape(-1)) == lay.codewords * lay.info_bits
        with pytest.raises(ValueError, match="exceeds the budget"):
            frame.pack(b"x" * (lay.payload_bytes + 1), lay)
    else:
        with pytest.raises(ValueError, match="hold no codeword"):
            frame.pack(b"", lay)


def test_frames_round_trip_and_a_flipped_bit_fails_the_crc():
    lay = frame.Layout(512, 4, 1008, 504)
    payload = bytes(range(100))
    info = frame.pack(payload, lay)
    assert frame.unpack(info, lay) == payload
    for pos in (0, 17, 8 * 50 + 3, 8 * 105):         # the length field, the payload, the CRC
        bad = info.copy().reshape(-1)
        bad[pos] ^= 1
        assert frame.unpack(bad, lay) is None
    scrambled = frame.fill_and_scramble(np.zeros((lay.codewords, lay.n), np.uint8), lay)
    assert 0.4 < scrambled.mean() < 0.6          # the fill is scrambled too: the power stays
    llr = torch.from_numpy(1.0 - 2.0 * scrambled.astype(np.float32))   # noiseless, LLR > 0 for 0
    assert (frame.descramble_llr(llr, lay) > 0).all()
    # the 802.11 sequence's first bits from the all-ones state (IEEE 802.11-2016, 17.3.5.5)
    assert frame.scrambler(16).tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 0]


@pytest.mark.parametrize("name", codec.CODECS)
def test_codec_search_never_exceeds_the_budget_and_round_trips(name):
    images = load_dataset("sample").images[:4]
    for budget in (40, 120, 320):
        fits = 0
        for image in images:
            fit = codec.encode(image, name, budget)
            if fit is None:
                assert len(codec.payload_at(image, name, 1)) > budget   # not even the lowest quality fits
                continue
            fits += 1
            payload, quality = fit
            assert len(payload) <= budget
            better = [q for q in codec.QUALITIES if q > quality and len(codec.payload_at(image, name, q)) <= budget]
            assert not better                        # the highest quality that fits
            out = codec.decode(payload, name, image.shape)
            assert out.shape == image.shape and out.dtype == np.uint8
            psnr = 10 * np.log10(255 ** 2 / np.mean((out.astype(float) - image) ** 2))
            assert psnr > 15
        assert fits == len(images) or budget < 120   # 120 and 320 bytes hold every one of these images
    # what does not parse is refused (libjpeg decodes any scan bytes to some image: the CRC
    # before the codec is what catches corrupted frames)
    for bad in (b"", b"\x00scan" if name == "jpeg" else b"\x07garbage"):
        with pytest.raises(codec.CodecError):
            codec.decode(bad, name, images[0].shape)
    with pytest.raises(ValueError, match="unknown codec"):
        codec.encode(images[0], "bmp", 100)
