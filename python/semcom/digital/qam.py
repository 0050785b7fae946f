"""Gray-mapped square QAM and its max-log LLRs (GNU Radio-free).

M = 4, 16, 64 (m = log2 M bits per symbol); the first m/2 bits of a symbol pick the in-phase
level, the last m/2 the quadrature level, each through a binary-reflected Gray code on the PAM
levels -(L-1), ..., L-1 (L = sqrt M), scaled to unit mean power (E|s|^2 = 1).

LLRs follow ldpc.py's convention, LLR = log P(b = 0 | y) / P(b = 1 | y) (positive: 0). For an
observation y = s + n with n ~ CN(0, v) (v per symbol: the equalised noise sigma^2 / |h|^2),
max-log gives

    LLR_b(y) = (min_{s: b=1} |y - s|^2 - min_{s: b=0} |y - s|^2) / v,

which is exact for QPSK: LLR = -2 sqrt(2) Re(y) / v for its first bit (a 0 is the negative level).
"""

import math

import torch

ORDERS = (4, 16, 64)


def bits_per_symbol(order: int) -> int:
    if order not in ORDERS:
        raise ValueError(f"QAM order must be one of {ORDERS}, got {order}")
    return int(math.log2(order))


def _gray_pam(bits_per_axis: int) -> torch.Tensor:
    """(L,) the PAM level (unscaled, odd integers) of each Gray-coded axis index."""
    levels = 2 ** bits_per_axis
    index = torch.arange(levels)
    gray = index ^ (index >> 1)                 # level position i carries the Gray word gray[i]
    level_of_word = torch.empty(levels, dtype=torch.long)
    level_of_word[gray] = index
    return (2 * level_of_word - (levels - 1)).double()


def constellation(order: int) -> torch.Tensor:
    """(M,) complex128 points, unit mean power; point j carries the m bits of j (MSB first)."""
    m = bits_per_symbol(order)
    half = m // 2
    pam = _gray_pam(half)
    words = torch.arange(order)
    i_word, q_word = words >> half, words & ((1 << half) - 1)
    points = torch.complex(pam[i_word], pam[q_word])
    return points / points.abs().square().mean().sqrt()


def _labels(order: int) -> torch.Tensor:
    """(M, m) bool: the bits of each point's index, MSB first."""
    m = bits_per_symbol(order)
    return (torch.arange(order)[:, None] >> torch.arange(m - 1, -1, -1)[None]) & 1 == 1


def modulate(bits: torch.Tensor, order: int) -> torch.Tensor:
    """bits (..., B) with B a multiple of m, values 0/1 -> complex64 symbols (..., B / m)."""
    m = bits_per_symbol(order)
    bits = torch.as_tensor(bits)
    if bits.shape[-1] % m:
        raise ValueError(f"{bits.shape[-1]} bits do not fill whole {order}-QAM symbols of {m} bits")
    if bits.numel() and not bool(((bits == 0) | (bits == 1)).all()):
        raise ValueError("bits must be 0 or 1")
    groups = bits.reshape(bits.shape[:-1] + (-1, m)).long()
    index = (groups << torch.arange(m - 1, -1, -1)).sum(-1)
    return constellation(order).to(torch.complex64)[index]


def llr_maxlog(y: torch.Tensor, noise_var: torch.Tensor, order: int) -> torch.Tensor:
    """Max-log LLRs (..., S * m) of symbols y (..., S) with per-symbol noise variance
    `noise_var` (broadcast to y; > 0), bits in modulate()'s order."""
    y = torch.as_tensor(y)
    if not y.is_complex():
        raise ValueError("y must be complex")
    v = torch.as_tensor(noise_var, dtype=torch.float64).to(y.device)
    if v.numel() and not bool((v > 0).all()):
        raise ValueError("the noise variance must be > 0")
    points = constellation(order).to(y.device)
    labels = _labels(order).to(y.device)
    d = (y.to(torch.complex128)[..., None] - points).abs().square()      # (..., S, M)
    llr = torch.stack([d[..., labels[:, b]].amin(-1) - d[..., ~labels[:, b]].amin(-1)
                       for b in range(labels.shape[1])], -1)               # (..., S, m)
    llr = llr / torch.broadcast_to(v, y.shape)[..., None]
    return llr.reshape(y.shape[:-1] + (-1,)).float()
