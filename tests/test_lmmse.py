"""lmmse: the DeepJSCC link with the interference-aware linear MMSE receiver, against its
closed form."""

import math

import pytest
import torch

from gnuradio.semcom import schemes
from gnuradio.semcom.core.channel import link_powers, transmit
from gnuradio.semcom.core.equalizer import mmse_equalize
from gnuradio.semcom.core.mapping import complex_to_real


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_lmmse_is_the_interference_aware_linear_mmse(channel):
    """On unit-power Gaussian signal and interference, lmmse applies w_l = sqrt(Ps) h* /
    (Ps|h|^2 + Pi + s2) to y (checked against that formula), and its error per symbol is the
    closed form E[1 - Ps|h|^2 / (Ps|h|^2 + Pi + s2)], below the interference-unaware mmse's."""
    n, k, snr, sinr = 64, 512, 15.0, 0.0
    g = torch.Generator().manual_seed(4)
    z, u = (torch.complex(torch.randn(n, k, generator=g), torch.randn(n, k, generator=g)) / math.sqrt(2)
            for _ in range(2))
    out = transmit(z, u, snr, sinr, channel, 1, generator=g)
    p = out.powers
    zhat, w = mmse_equalize(out.y, out.h, p.signal_power, p.noise_var)
    obs = schemes.Observation(zhat, w, out.h, p, snr, sinr, channel)
    latents, nfe = schemes.get("lmmse").clean(obs, None)
    gain = p.signal_power * out.h.abs().square()
    w_l = math.sqrt(p.signal_power) * out.h.conj() / (gain + p.interference_power + p.noise_var)
    torch.testing.assert_close(latents, complex_to_real(w_l * out.y).float(), rtol=1e-5, atol=1e-6)
    err = (latents - complex_to_real(z)).square().sum(-1).mean().item() / k
    closed = (1 - gain / (gain + p.interference_power + p.noise_var)).mean().item()
    assert nfe == 0 and err == pytest.approx(closed, rel=0.03)
    mmse_err = (complex_to_real(zhat) - complex_to_real(z)).square().sum(-1).mean().item() / k
    assert err < mmse_err
    no_interferer = schemes.Observation(zhat, w, out.h, link_powers(snr), snr, math.inf, channel)
    torch.testing.assert_close(schemes.get("lmmse").clean(no_interferer, None)[0], complex_to_real(zhat).float())
    # Weights other than the MMSE ones (an equalizer told another noise variance): still w_l y.
    zhat2, w2 = mmse_equalize(out.y, out.h, p.signal_power, 4 * p.noise_var)
    other = schemes.Observation(zhat2, w2, out.h, p, snr, sinr, channel)
    torch.testing.assert_close(schemes.get("lmmse").clean(other, None)[0], complex_to_real(w_l * out.y).float(),
                               rtol=1e-5, atol=1e-6)
