"""JSCNA-AD's attention-driven step allocation (GNU Radio-free; spec ../shared/papers/jscna_ad.md
§2 eqs. 10-11 and the spatial-mask reverse process, reconstructed).

- `patch_importance(attention)`: I_j, the mean over query tokens of the attention paid to patch
  j (eq. 10), from one layer's attention (N, heads, 1 + P, 1 + P) with a class token first,
  averaged over heads; or the class token's row alone (`cls=True`).
- `allocate_steps(importance, s_min, s_max)`: S_j = S_min + round((S_max - S_min) * I~_j) with
  I~ the per-image min-max normalisation (eq. 11): the most important patch gets S_max, the
  least S_min.
- `ddim_grid(t_start, s_max)`: the global grid tau_i = round(t* (1 - i / S_max)), i = 0..S_max.

Patch j is active for iterations i < S_j (a DDIM update tau_i -> tau_{i+1}; at i = S_j - 1 it
jumps to 0, i.e. takes its x0 estimate); the sampler itself lives with the scheme (issue 16).
"""

import torch


def patch_importance(attention: torch.Tensor, cls: bool = False) -> torch.Tensor:
    """(N, P) importance of the P patch tokens from attention weights (N, heads, T, T), T = 1 + P
    (class token first): mean over heads, then over all query tokens (eq. 10) or the class
    token's row (`cls`)."""
    if attention.ndim != 4 or attention.shape[-1] != attention.shape[-2] or attention.shape[-1] < 2:
        raise ValueError(f"need attention weights (N, heads, T, T) with T >= 2, got {tuple(attention.shape)}")
    a = attention.mean(1)
    return a[:, 0, 1:] if cls else a[:, :, 1:].mean(1)


def allocate_steps(importance: torch.Tensor, s_min: int, s_max: int) -> torch.Tensor:
    """(N, P) long: S_j = S_min + round((S_max - S_min) I~_j), I~ = (I - min) / (max - min + 1e-8)
    per image, so every S_j lies in [S_min, S_max]."""
    if not 1 <= s_min <= s_max:
        raise ValueError(f"need 1 <= s_min <= s_max, got {s_min}, {s_max}")
    if importance.ndim != 2:
        raise ValueError(f"importance must be (N, P), got {tuple(importance.shape)}")
    lo = importance.min(1, keepdim=True).values
    hi = importance.max(1, keepdim=True).values
    norm = (importance - lo) / (hi - lo + 1e-8)
    return s_min + torch.round((s_max - s_min) * norm).long()


def ddim_grid(t_start: int, s_max: int) -> list:
    """tau_i = round(t* (1 - i / S_max)), i = 0..S_max (descending from t* to 0)."""
    if t_start < 0 or s_max < 1:
        raise ValueError(f"need t* >= 0 and S_max >= 1, got {t_start}, {s_max}")
    return [round(t_start * (1 - i / s_max)) for i in range(s_max + 1)]
