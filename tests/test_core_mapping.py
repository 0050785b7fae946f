import pytest
import torch

from gnuradio.semcom.core.mapping import (complex_to_real, from_symbols, real_to_complex,
                                          to_symbols)


def test_first_half_real_second_half_imaginary():
    s = torch.tensor([1.0, 2.0, 3.0, 4.0])
    z, scale = to_symbols(s, power=1.0)
    expected = torch.tensor([1 + 3j, 2 + 4j], dtype=torch.complex64)
    assert torch.allclose(z / scale, expected)


@pytest.mark.parametrize("power", [1.0, 0.5, 4.0])
def test_power_normalised_per_image(power):
    s = torch.randn(7, 512, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 8)[:, None]
    z, scale = to_symbols(s, power)
    assert z.shape == (7, 256) and scale.shape == (7,)
    torch.testing.assert_close(z.abs().square().mean(-1), torch.full((7,), power), rtol=1e-5, atol=0)


def test_round_trip_and_real_form():
    s = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
    z, scale = to_symbols(s)
    torch.testing.assert_close(from_symbols(z, scale), s, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(real_to_complex(complex_to_real(z)), z)


@pytest.mark.parametrize("bad, err", [
    (torch.zeros(8), ValueError),             # cannot be normalised
    (torch.ones(7), ValueError),              # odd length
    (torch.ones(4, dtype=torch.int32), TypeError),
])
def test_bad_latents(bad, err):
    with pytest.raises(err):
        to_symbols(bad)


def test_bad_power_and_scale():
    with pytest.raises(ValueError):
        to_symbols(torch.ones(4), power=0.0)
    with pytest.raises(ValueError):
        from_symbols(torch.ones(2, dtype=torch.complex64), scale=-1.0)
