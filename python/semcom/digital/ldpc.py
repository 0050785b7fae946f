"""LDPC codes of the digital baseline: alist files, gr-fec's encoder, a batched min-sum decoder
(GNU Radio-free: numpy and torch only).

Codes. The shipped codes (codes/, `CODES`, `load_code`) all have n = 1008 and were made once by
apps/make_ldpc_codes.py with GNU Radio's own generator (gnuradio.fec.LDPC): regular Gallager
codes of column weight 3 and row weight 6, 9, 12 or 18 without 4-cycles, their dependent rows
removed (so k is a little above n (1 - 3/q)), rows and columns permuted into the form gr-fec's
Richardson-Urbanke encoder needs,

    H = [T A B]   T: t x t upper triangular with a unit diagonal, t = m - gap,
        [E C D]   the gap in the file name (n_NNNN_k_KKKK_gap_GG.alist).

Encoder. A codeword is c = [p, s]: the k information bits s at the LAST k positions
(`info_positions`), the parity p = H_p^-1 H_s s (mod 2) first, with H = [H_p | H_s] and H_p the
first m = n - k columns, invertible over GF(2). gr-fec's ldpc_par_mtrx_encoder on
ldpc_H_matrix(alist, gap) puts s there too and back-substitutes through T; since the parity of a
given s is unique, the codewords are the same bit for bit.

Decoder. Normalized min-sum with flooding, batched over codewords:

    variable -> check  q_vc = L_v + sum_{c' != c} r_c'v
    check -> variable  r_cv = scale * prod_{v' != v} sign(q_v'c) * min_{v' != v} |q_v'c|
    decision           bit v = 1 where L_v + sum_c r_cv < 0

A codeword stops at the first iteration whose decision has a zero syndrome (iteration 0 is the
channel's own decision); `ok` says it got there.

LLR convention: L = log P(b = 0 | y) / P(b = 1 | y), positive for 0 (BPSK 0 -> +1, 1 -> -1 in
real noise of variance sigma^2: L = 2 y / sigma^2). gr-fec 3.10.5's fec.ldpc_decoder.make(alist,
sigma, max_iter) reads soft values x that are positive for 1: it negates x and forms the
likelihood ratio P(1) / P(0) = exp(x / (2 sigma^2)), so x = -2 sigma^2 L hands it exactly the
LLR L (raw BPSK samples x = 2b - 1 + noise with the noise's sigma carry a quarter of it).
"""

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch

CODES_DIR = Path(__file__).with_name("codes")
CODES = {
    "1/2": "n_1008_k_0506_gap_13.alist",
    "2/3": "n_1008_k_0674_gap_05.alist",
    "3/4": "n_1008_k_0758_gap_02.alist",
    "5/6": "n_1008_k_0842_gap_02.alist",
}
LLR_MAX = 1e4          # |LLR| clamp (a degree-1 check sends this: it knows its bit)
DEFAULT_SCALE = 0.8    # min-sum normalization (0.8 beat 0.75 on every shipped code)


@dataclass(eq=False)
class LdpcCode:
    """A binary LDPC code: parity-check matrix H (m, n) uint8 (read-only), k = n - rank(H)."""
    name: str
    n: int
    k: int
    H: np.ndarray
    gap: Optional[int] = None
    path: Optional[Path] = None
    _graphs: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def m(self) -> int:
        return self.H.shape[0]

    @property
    def rate(self) -> float:
        return self.k / self.n

    @cached_property
    def parity_map(self) -> np.ndarray:
        """(m, k) uint8 P with parity p = P s (mod 2): H = [H_p | H_s] row-reduced to [I | P]."""
        reduced, pivots = gf2_row_reduce(self.H)
        if pivots != list(range(self.m)):
            raise ValueError(f"{self.name}: H's first {self.m} columns are not invertible over GF(2) "
                             "(H is not full rank, or not in gr-fec's systematic form)")
        out = np.ascontiguousarray(reduced[:, self.m:])
        out.flags.writeable = False
        return out

    @cached_property
    def info_positions(self) -> np.ndarray:
        out = np.arange(self.n - self.k, self.n)
        out.flags.writeable = False
        return out


class Decoded(NamedTuple):
    bits: torch.Tensor        # (B, n) uint8: the codeword estimate (the last decision where not ok)
    ok: torch.Tensor          # (B,) bool: zero syndrome
    iterations: torch.Tensor  # (B,) int64: iterations run (0: the channel decision was a codeword)


def gf2_row_reduce(matrix: np.ndarray):
    """Gauss-Jordan over GF(2), pivots taken column by column from the left: (the reduced row
    echelon form (rows, cols) uint8 with its zero rows last, the list of pivot columns). Rows
    are bit-packed, so a row operation is one XOR of cols/8 bytes."""
    matrix = np.asarray(matrix)
    n_rows, n_cols = matrix.shape
    rows = np.packbits(matrix.astype(bool), axis=1)
    pivots = []
    for col in range(n_cols):
        r = len(pivots)
        if r == n_rows:
            break
        byte, mask = col >> 3, np.uint8(0x80 >> (col & 7))
        hits = np.flatnonzero(rows[r:, byte] & mask)
        if hits.size == 0:
            continue
        if hits[0]:
            rows[[r, r + hits[0]]] = rows[[r + hits[0], r]]
        others = np.flatnonzero(rows[:, byte] & mask)
        rows[others[others != r]] ^= rows[r]
        pivots.append(col)
    return np.unpackbits(rows, axis=1, count=n_cols), pivots


def gf2_rank(matrix: np.ndarray) -> int:
    return len(gf2_row_reduce(matrix)[1])


def read_alist(path) -> LdpcCode:
    """The code of an alist file (MacKay's format: "n m", "max column weight, max row weight",
    the n column weights, the m row weights, n lines of 1-based row indices, m lines of column
    indices; zero padding after a list's entries allowed). The gap comes from a "_gap_G" in the
    file name. A malformed file is one ValueError naming it."""
    path = Path(path)
    text = path.read_text()

    def bad(reason):
        return ValueError(f"{path}: not a valid alist file: {reason}")

    try:
        lines = [[int(tok) for tok in line.split()] for line in text.splitlines()]
    except ValueError:
        raise bad("a token that is not an integer") from None
    if len(lines) < 4 or len(lines[0]) != 2 or len(lines[1]) != 2:
        raise bad("the first lines must be 'n m' and 'max column weight, max row weight'")
    (n, m), (max_col, max_row) = lines[0], lines[1]
    if n < 1 or m < 1:
        raise bad(f"sizes n = {n}, m = {m}")
    col_weights, row_weights = lines[2], lines[3]
    if len(col_weights) != n or len(row_weights) != m:
        raise bad(f"{len(col_weights)} column and {len(row_weights)} row weights for n = {n}, m = {m}")
    if min(col_weights) < 0 or max(col_weights) != max_col or min(row_weights) < 0 or max(row_weights) != max_row:
        raise bad("weights disagree with the stated maxima or are negative")
    lists = lines[4:]
    if len(lists) < n + m or any(lists[n + m:]):
        raise bad(f"expected {n} column and {m} row index lines, got {len(lists)} lines")

    def matrix_from(index_lines, weights, bound, what):
        out = np.zeros((len(weights), bound), np.uint8)
        for i, (entries, w) in enumerate(zip(index_lines, weights)):
            idx, padding = entries[:w], entries[w:]
            if len(idx) != w or any(padding) or len(set(idx)) != w or not all(1 <= j <= bound for j in idx):
                raise bad(f"{what} {i + 1}: {w} distinct indices in 1..{bound} expected, got {entries}")
            out[i, np.asarray(idx, int) - 1] = 1
        return out

    H = matrix_from(lists[:n], col_weights, m, "column").T
    if not np.array_equal(H, matrix_from(lists[n:n + m], row_weights, n, "row")):
        raise bad("the column and row index lists describe different matrices")
    H = np.ascontiguousarray(H)
    H.flags.writeable = False
    gap = re.search(r"_gap_(\d+)", path.name)
    return LdpcCode(name=path.name, n=n, k=n - gf2_rank(H), H=H,
                    gap=int(gap.group(1)) if gap else None, path=path)


@lru_cache(maxsize=None)
def load_code(rate: str) -> LdpcCode:
    """The shipped n = 1008 code of a rate in CODES ("1/2", "2/3", "3/4", "5/6")."""
    if rate not in CODES:
        raise ValueError(f"no shipped LDPC code of rate {rate!r} (shipped: {', '.join(CODES)})")
    return read_alist(CODES_DIR / CODES[rate])


def info_positions(code: LdpcCode) -> np.ndarray:
    """(k,) the codeword positions of the information bits, in order: codeword[:, info_positions]."""
    return code.info_positions


def _check_bits(bits, width: int, what: str) -> np.ndarray:
    arr = np.asarray(bits)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{what} must have shape (B, {width}), got {arr.shape}")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)) or (arr.size and not np.isin(arr, (0, 1)).all()):
        raise ValueError(f"{what} must be integer bits 0/1, got dtype {arr.dtype}"
                         + (f" with values {np.unique(arr)[:8]}" if arr.size and arr.dtype != bool else ""))
    return arr.astype(np.uint8)


def encode(code: LdpcCode, info_bits) -> np.ndarray:
    """(B, k) 0/1 integer bits -> (B, n) uint8 codewords [parity, info], as gr-fec's encoders."""
    s = _check_bits(info_bits, code.k, "info_bits")
    parity = (s.astype(np.float32) @ code.parity_map.T.astype(np.float32)) % 2   # exact: sums <= k
    return np.concatenate([parity.astype(np.uint8), s], axis=1)


def syndrome(code: LdpcCode, codewords) -> np.ndarray:
    """(B, n) bits -> (B, m) uint8 H c (mod 2)."""
    c = _check_bits(codewords, code.n, "codewords")
    return ((c.astype(np.float32) @ code.H.T.astype(np.float32)) % 2).astype(np.uint8)


def _padded(groups, size: int, fill: int) -> np.ndarray:
    """Index lists of unequal length -> (len(groups), max length) int64, padded with `fill`."""
    width = max((len(g) for g in groups), default=0)
    out = np.full((len(groups), max(width, 1)), fill, np.int64)
    for i, g in enumerate(groups):
        out[i, :len(g)] = g
    return out


def _graph(code: LdpcCode, device: torch.device) -> dict:
    """The Tanner graph as index tensors on `device` (cached). Edges are numbered check by check;
    padded slots point at one extra edge / variable past the end."""
    key = str(device)
    if key not in code._graphs:
        check_of_edge, var_of_edge = np.nonzero(code.H)
        n_edges = len(var_of_edge)
        starts = np.searchsorted(check_of_edge, np.arange(code.m + 1))
        check_edges = _padded([np.arange(starts[c], starts[c + 1]) for c in range(code.m)], code.m, n_edges)
        order = np.argsort(var_of_edge, kind="stable")
        var_starts = np.searchsorted(var_of_edge[order], np.arange(code.n + 1))
        var_edges = _padded([order[var_starts[v]:var_starts[v + 1]] for v in range(code.n)], code.n, n_edges)
        slot_of_edge = np.flatnonzero(check_edges.reshape(-1) < n_edges)   # check-major: edge e's slot
        check_vars = np.where(check_edges < n_edges, np.append(var_of_edge, code.n)[check_edges], code.n)
        t = lambda a: torch.as_tensor(a, dtype=torch.long, device=device)  # noqa: E731
        code._graphs[key] = dict(n_edges=n_edges, var_of_edge=t(var_of_edge), check_edges=t(check_edges),
                                 var_edges=t(var_edges), slot_of_edge=t(slot_of_edge), check_vars=t(check_vars))
    return code._graphs[key]


def _syndrome_ok(hard: torch.Tensor, g: dict) -> torch.Tensor:
    """(A, n) uint8 decisions -> (A,) bool: every check satisfied."""
    ext = torch.cat([hard, hard.new_zeros(hard.shape[0], 1)], dim=1)
    return ~(ext[:, g["check_vars"]].sum(dim=2) % 2).bool().any(dim=1)


def _check_update(q: torch.Tensor, g: dict, scale: float) -> torch.Tensor:
    """Min-sum check -> variable messages (A, E) from variable -> check messages (A, E)."""
    a = q.shape[0]
    padded = torch.cat([q, q.new_full((a, 1), float("inf"))], dim=1)[:, g["check_edges"]]   # (A, m, d)
    mag, neg = padded.abs(), padded < 0
    min1, arg1 = mag.min(dim=2, keepdim=True)
    min2 = mag.scatter(2, arg1, float("inf")).amin(dim=2, keepdim=True).clamp(max=LLR_MAX)
    slot = torch.arange(mag.shape[2], device=q.device)
    out_mag = torch.where(slot == arg1, min2, min1) * scale
    out_neg = neg ^ (neg.sum(dim=2, keepdim=True) % 2).bool()
    return torch.where(out_neg, -out_mag, out_mag).reshape(a, -1)[:, g["slot_of_edge"]]


def decode(code: LdpcCode, llr, max_iter: int = 50, scale: float = DEFAULT_SCALE) -> Decoded:
    """Normalized min-sum decoding of (B, n) LLRs (log P(0)/P(1), a float tensor or array; on
    the tensor's device) -> Decoded(bits (B, n) uint8, ok (B,) bool, iterations (B,) int64).
    LLRs are clamped to +-LLR_MAX; each codeword stops once its syndrome is zero."""
    llr = torch.as_tensor(llr)
    if llr.ndim != 2 or llr.shape[1] != code.n:
        raise ValueError(f"llr must have shape (B, {code.n}), got {tuple(llr.shape)}")
    if not llr.is_floating_point() or not bool(torch.isfinite(llr).all()):
        raise ValueError(f"llr must be finite floats, got dtype {llr.dtype}")
    if int(max_iter) != max_iter or max_iter < 0 or not 0 < scale <= 1:
        raise ValueError(f"need max_iter >= 0 and 0 < scale <= 1, got {max_iter}, {scale}")
    g = _graph(code, llr.device)
    channel = llr.float().clamp(-LLR_MAX, LLR_MAX)
    bits = (channel < 0).to(torch.uint8)
    ok = _syndrome_ok(bits, g)
    iterations = torch.zeros(len(bits), dtype=torch.long, device=llr.device)
    active = torch.nonzero(~ok).squeeze(1)
    channel = channel[active]
    posterior = channel
    r = channel.new_zeros(len(active), g["n_edges"])
    for it in range(1, int(max_iter) + 1):
        if len(active) == 0:
            break
        r = _check_update(posterior[:, g["var_of_edge"]] - r, g, scale)
        posterior = channel + torch.cat([r, r.new_zeros(len(r), 1)], dim=1)[:, g["var_edges"]].sum(dim=2)
        hard = (posterior < 0).to(torch.uint8)
        done = _syndrome_ok(hard, g)
        bits[active] = hard
        ok[active] = done
        iterations[active] = it
        keep = ~done
        active, channel, posterior, r = active[keep], channel[keep], posterior[keep], r[keep]
    return Decoded(bits, ok, iterations)
