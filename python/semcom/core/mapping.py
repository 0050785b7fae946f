"""Latent vector <-> power-normalised complex symbols.

An encoder emits a real vector s of length 2k; the symbols are z = s[:k] + j s[k:]
(first half real, second half imaginary), scaled per image so that mean|z|^2 = P.
The scale is returned so a receiver that is told it can undo it.
"""

import math

import torch

# Latents are power-normalised per image (mean |z|^2 = 1), so each real dimension has
# variance 1/2; diffusion priors run on unit-variance latents: physical = LATENT_SCALE * diffusion.
LATENT_SCALE = 1.0 / math.sqrt(2.0)


def complex_to_real(z: torch.Tensor) -> torch.Tensor:
    """[Re z; Im z] along the last axis (the real-valued form used by Lemma 1)."""
    return torch.cat([z.real, z.imag], dim=-1)


def real_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Inverse of complex_to_real: (..., 2k) real -> (..., k) complex."""
    k = x.shape[-1] // 2
    return torch.complex(x[..., :k], x[..., k:])


def to_symbols(latent: torch.Tensor, power: float = 1.0):
    """Map real latents (..., 2k) to complex symbols (..., k) with mean |z|^2 = power.

    Returns (z, scale): z = scale * (s[:k] + j s[k:]), scale of shape (...).
    """
    latent = torch.as_tensor(latent)
    if not latent.is_floating_point():
        raise TypeError(f"latent must be a real floating tensor, got {latent.dtype}")
    if latent.ndim < 1 or latent.shape[-1] == 0 or latent.shape[-1] % 2:
        raise ValueError(f"latent length must be even and > 0, got shape {tuple(latent.shape)}")
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    z = real_to_complex(latent)
    mean_power = z.abs().square().mean(dim=-1)
    if not torch.all(mean_power > 0):
        raise ValueError("an all-zero latent cannot be power-normalised")
    scale = torch.sqrt(power / mean_power)
    return z * scale.unsqueeze(-1), scale


def from_symbols(z: torch.Tensor, scale=1.0) -> torch.Tensor:
    """Inverse of to_symbols: complex (..., k) -> real (..., 2k), divided by scale."""
    z = torch.as_tensor(z)
    if not z.is_complex():
        raise TypeError(f"symbols must be complex, got {z.dtype}")
    scale = torch.as_tensor(scale, dtype=z.real.dtype)
    if not torch.all(scale > 0):
        raise ValueError(f"scale must be > 0, got {scale}")
    return complex_to_real(z) / scale.unsqueeze(-1)
