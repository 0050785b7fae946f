"""Metrics against closed forms and the maintained libraries' defining properties."""

import math

import pytest
import torch

from gnuradio.semcom.core import metrics


def images(n=4, c=3, h=32, seed=0):
    return torch.rand(n, c, h, h, generator=torch.Generator().manual_seed(seed))


def test_psnr_closed_form():
    x = torch.full((2, 3, 8, 8), 0.5)
    y = x.clone()
    y[0] += 0.1            # MSE 0.01 -> 20 dB
    y[1, :, :4] += 0.2     # half the pixels off by 0.2 -> MSE 0.02 -> 16.99 dB
    got = metrics.psnr(y, x)
    assert got[0].item() == pytest.approx(20.0, abs=1e-4)
    assert got[1].item() == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-4)


def test_ssim_properties():
    x = images()
    assert torch.allclose(metrics.ssim(x, x), torch.ones(4), atol=1e-5)
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    s1, s2 = metrics.ssim(noisy, x), metrics.ssim(noisier, x)
    assert torch.all(s1 < 1) and torch.all(s2 < s1)


def test_ms_ssim_null_for_small_images_value_for_large():
    assert metrics.ms_ssim(images(), images(seed=1)) is None
    big = images(n=1, h=192)
    assert metrics.ms_ssim(big, big).item() == pytest.approx(1.0, abs=1e-4)


def test_lpips_real_or_null():
    x, y = images(n=2), images(n=2, seed=3)
    value = metrics.lpips(x, y)
    if value is None:  # offline without the AlexNet weights: null, not a made-up number
        assert metrics.lpips(x, x) is None
    else:
        assert torch.all(value > metrics.lpips(x, x))


def test_latent_mse_db_closed_form():
    x = torch.ones(2, 8)
    xhat = x.clone()
    xhat[0] += 0.1   # NMSE 0.01 -> -20 dB
    xhat[1] *= 2     # NMSE 1 -> 0 dB
    torch.testing.assert_close(metrics.latent_mse_db(xhat, x), torch.tensor([-20.0, 0.0]), atol=1e-4, rtol=0)
    assert metrics.db_mean([-20.0, 0.0]) == pytest.approx(10 * math.log10((0.01 + 1) / 2))


def test_shape_errors():
    with pytest.raises(ValueError):
        metrics.psnr(images(n=2), images(n=3))
    with pytest.raises(ValueError):
        metrics.latent_mse_db(torch.ones(2, 4), torch.ones(2, 6))
