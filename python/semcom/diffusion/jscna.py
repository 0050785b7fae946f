"""JSCNA-AD's attention-driven adaptive denoising (GNU Radio-free; spec ../shared/papers/jscna_ad.md
§2 eqs. 10-11 and the spatial-mask reverse process, reconstructed).

- `patch_importance(attention)`: I_j, the mean over query tokens of the attention paid to patch
  j (eq. 10), from one layer's attention (N, heads, 1 + P, 1 + P) with a class token first,
  averaged over heads; or the class token's row alone (`cls=True`).
- `allocate_steps(importance, s_min, s_max)`: S_j = S_min + round((S_max - S_min) * I~_j) with
  I~ the per-image min-max normalisation (eq. 11): the most important patch gets S_max, the
  least S_min.
- `adaptive_ddim(eps_tokens, x, schedule, timesteps, steps)`: the spatial-mask reverse process.
  Token j takes DDIM (eta = 0) updates on the global grid `timesteps` (iteration i at
  timesteps[i]) while i < S_j; at its last iteration it keeps its x0 estimate. A frozen token
  enters later iterations at their noise level as sqrt(abar) x0_j + sqrt(1 - abar) eps_j with
  its last estimates: under DDIM that is exactly the path it would follow if its eps stopped
  changing. The network is asked only for the active tokens' eps (`eps_tokens` gets the mask),
  so the cost is the sum of the S_j ("patch-NFE"), not S_max full passes. With every S_j equal
  to len(timesteps) it is plain DDIM on that grid. Each image may have its own grid (its own
  start step): one call then serves a batch whose images start at different steps.
- `ddim_inversion(eps, x0, schedule, s, steps)`: the transmitter's deterministic noise adding
  (the spec's reading R2): DDIM (eta = 0) run upwards, x_0 -> x_s, on the grid the receiver's
  DDIM would take downwards (schedule.timesteps(steps, s) reversed); `steps` network calls.
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


def adaptive_ddim(eps_tokens, x: torch.Tensor, schedule, timesteps: list, steps: torch.Tensor,
                  first_eps: torch.Tensor = None):
    """(x0 estimate (N, P, d), token evaluations per image (N,)) of the masked reverse process
    from x (N, P, d), the token view of the state at timesteps[0]. `steps` (N, P): S_j, clipped
    to [1, len(timesteps)]. eps_tokens(x, t, active) -> (N, P, d) eps, read only where `active`
    (N, P) bool; `first_eps`: eps at timesteps[0] for every token, already computed (it is then
    not asked for again, and not counted). `timesteps`: one grid (distinct, descending) for
    every image, eps_tokens then gets each iteration's step as an int; or one grid per image (a
    list of N such lists, e.g. each image from its own start step), eps_tokens then gets the
    iteration's (N,) steps, and an image's S_j are clipped to its own grid's length."""
    if x.ndim != 3 or steps.shape != x.shape[:2]:
        raise ValueError(f"need x (N, P, d) and steps (N, P), got {tuple(x.shape)} and {tuple(steps.shape)}")
    per_image = bool(timesteps) and isinstance(timesteps[0], (list, tuple))
    grids = [list(g) for g in timesteps] if per_image else [list(timesteps)]
    if per_image and len(grids) != x.shape[0]:
        raise ValueError(f"{len(grids)} grids for {x.shape[0]} images")
    for g in grids:
        if not g or g != sorted(set(g), reverse=True):
            raise ValueError(f"timesteps must be distinct and descending, got {g}")
    length = max(len(g) for g in grids)
    if per_image:   # a shorter grid repeats its last step: its image is done by then
        grid = torch.tensor([g + [g[-1]] * (length - len(g)) for g in grids], device=x.device)
        own = torch.tensor([len(g) for g in grids], device=x.device)[:, None]
        s = torch.minimum(steps.to(x.device).clamp_min(1), own)
    else:
        s = steps.clamp(1, length).to(x.device)
    x0 = torch.zeros_like(x)
    eps = torch.zeros_like(x)
    evaluations = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    abar = schedule.alphas_cumprod

    def level(i):   # (the step(s) of iteration i, abar there: a number or (N, 1, 1))
        if per_image:
            t = grid[:, i]
            return t, abar.to(x.device)[t].to(x.dtype)[:, None, None]
        return grids[0][i], abar[grids[0][i]].item()

    for i in range(length):
        active = s > i
        if not bool(active.any()):
            break
        t, a = level(i)
        if i == 0 and first_eps is not None:
            e = first_eps
        else:
            e = eps_tokens(x, t, active)
            evaluations += active.sum(1)
        mask = active[..., None]
        eps = torch.where(mask, e, eps)
        x0 = torch.where(mask, (x - (1 - a) ** 0.5 * e) / a ** 0.5, x0)
        if i + 1 < length:
            a_next = level(i + 1)[1]
            x = a_next ** 0.5 * x0 + (1 - a_next) ** 0.5 * eps
    return x0, evaluations


def active_index(active: torch.Tensor):
    """(index (N, M) long, valid (N, M) bool) of each image's active tokens, M the most any image
    has: the token-subset form the latent DiT takes (LatentDiT.residual_tokens)."""
    count = active.sum(1)
    m = max(int(count.max()), 1)
    order = torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, :m]
    valid = torch.arange(m, device=active.device)[None] < count[:, None]
    return order, valid


def ddim_inversion(eps, x0: torch.Tensor, schedule, s: int, steps: int) -> torch.Tensor:
    """x_s from x_0 by deterministic DDIM inversion: at each point of the ascending grid
    0, t_1, ..., s (schedule.timesteps(steps, s) reversed, 0 first) the update
    x_next = sqrt(abar_next) x0_hat + sqrt(1 - abar_next) eps(x, t) with x0_hat the Tweedie
    estimate there, i.e. DDIM's eta = 0 step taken upwards. x_0 enters as the state at step 0
    (abar_0 = 1 - beta_0, as diffusers' inversion does)."""
    from .samplers import ddim_step
    if not 0 < s < schedule.num_steps:
        raise ValueError(f"DDIM inversion needs 0 < s < {schedule.num_steps}, got {s}")
    grid = sorted({0, *schedule.timesteps(steps, s)})
    x = x0
    for t, t_next in zip(grid[:-1], grid[1:]):
        x = ddim_step(schedule, x, eps(x, t), t, t_next)
    return x


def token_groups(count: torch.Tensor, max_groups: int = 3) -> list:
    """Row indices of `count` (N,) active tokens per image split into at most `max_groups`
    groups of similar counts, chosen to minimise the padded work sum_g |g| max_g(count) of one
    token-subset call per group (active_index pads every image to its group's largest); rows
    with no active token are left out. The split points run over the distinct counts (at most
    tokens + 1 of them), so the cost does not grow with N."""
    rows = torch.nonzero(count > 0).flatten()
    if rows.numel() == 0:
        return []
    values, sizes = torch.unique(count[rows], return_counts=True)   # ascending distinct counts
    c, m = values.tolist(), sizes.tolist()
    n = len(c)
    below = [0]
    for size in m:
        below.append(below[-1] + size)   # rows with a count among the first j distinct values
    # best[g][j]: the least padded work of the first j distinct counts in g groups; a group
    # ending at distinct count j - 1 costs (its rows) * c[j - 1]
    inf = float("inf")
    best = [[0.0] + [inf] * n] + [[inf] * (n + 1) for _ in range(max_groups)]
    cut = [[0] * (n + 1) for _ in range(max_groups + 1)]
    for g in range(1, max_groups + 1):
        for j in range(1, n + 1):
            for i in range(g - 1, j):
                cost = best[g - 1][i] + (below[j] - below[i]) * c[j - 1]
                if cost < best[g][j]:
                    best[g][j], cut[g][j] = cost, i
    g = min(range(1, max_groups + 1), key=lambda k: (best[k][n], k))
    bounds, j = [], n
    while g > 0:
        i = cut[g][j]
        bounds.append((c[i], c[j - 1]))
        j, g = i, g - 1
    counts = count[rows]
    return [rows[(counts >= lo) & (counts <= hi)] for lo, hi in reversed(bounds)]
