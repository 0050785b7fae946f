#!/usr/bin/env python3
"""Make the digital baseline's LDPC codes (python/semcom/digital/codes/*.alist) with GNU Radio's
own generator, gnuradio.fec.LDPC.Generate_LDPC_matrix_functions. One seeded command:

  OMP_NUM_THREADS=1 .venv/bin/python apps/make_ldpc_codes.py --seed 0

For each rate R in 1/2, 2/3, 3/4, 5/6 (row weight q = 6, 9, 12, 18): a regular Gallager
parity-check matrix, n = 1008, column weight 3 (the stock regular_LDPC_code_contructor's
construction, written out here because the stock one divides with "/" and fails on Python 3:
the block-diagonal band of q ones per row, then 2 column permutations of it by numpy's
shuffle), its permutations repaired to have no 4-cycles (girth >= 6; --allow-4-cycles keeps
the plain draw, which at q = 18 has equal columns, i.e. codewords of weight 2 and an error
floor); get_full_rank_H_matrix (removes the dependent rows, so k = n - m is a little above
n (1 - 3/q)); get_best_matrix(H, --iterations) (the approximate triangular form with the
smallest gap of that many greedy tries, which gr-fec's ldpc_H_matrix encoder needs);
write_alist_file to n_NNNN_k_KKKK_gap_GG.alist, the stock codes' naming. numpy's global RNG
(the one the stock functions draw from) is seeded with (--seed, q) before each code, so every
code is reproducible on its own. The stock module also uses numpy names it never imports
(zeros, array, dot, ...); they are supplied to it here.

About 6 minutes on one core (rate 1/2 half of it). Each new file is written to a temporary name,
checked (it reads back with the stated n and k; H is full rank over GF(2) and, unless
--allow-4-cycles, free of 4-cycles; gr-fec's ldpc_H_matrix encoder with the gap makes
systematic codewords of it) and only then renamed. An existing code for the same n and rate that differs (another name or other
bytes) is kept, and the run fails, unless --force replaces it. Prints the CODES table for
python/semcom/digital/ldpc.py.
"""

import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from gnuradio.semcom.core.cli import ArgumentParser, name_list, run_main

OUT_DIR = Path(__file__).resolve().parents[1] / "python" / "semcom" / "digital" / "codes"
COLUMN_WEIGHT = 3
ROW_WEIGHTS = {"1/2": 6, "2/3": 9, "3/4": 12, "5/6": 18}
NUMPY_NAMES = ("zeros", "array", "vstack", "dot", "eye", "zeros_like", "concatenate", "identity", "linalg")


def parse_args(argv=None):
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--out-dir", default=str(OUT_DIR), help=f"folder of the alist files (default {OUT_DIR})")
    ap.add_argument("--rates", default=",".join(ROW_WEIGHTS), help="comma-separated rates (default all)")
    ap.add_argument("--n", type=int, default=1008, help="codeword length (a multiple of every row weight)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=100, help="greedy triangulation tries per code")
    ap.add_argument("--allow-4-cycles", action="store_true", help="the plain stock draw, 4-cycles and all")
    ap.add_argument("--force", action="store_true", help="replace an existing, different code of a rate")
    args = ap.parse_args(argv)
    args.rates = name_list(ap, "--rates", args.rates, list(ROW_WEIGHTS))
    bad = [r for r in args.rates if args.n % ROW_WEIGHTS[r]]
    if args.n < 1 or bad:
        ap.error(f"--n {args.n} is not a positive multiple of the row weight of {', '.join(bad) or 'every rate'}")
    if args.iterations < 1:
        ap.error("--iterations must be >= 1")
    return args


def stock_generator():
    """gnuradio.fec.LDPC's generator functions, with the numpy names the module lacks."""
    from gnuradio.fec.LDPC import Generate_LDPC_matrix_functions as gen
    for name in NUMPY_NAMES:
        if not hasattr(gen, name):
            setattr(gen, name, getattr(np, name))
    return gen


def gallager_matrix(n: int, p: int, q: int, girth6: bool) -> np.ndarray:
    """(n p / q, n) float: Gallager's regular construction as in the stock
    regular_LDPC_code_contructor: the first band of n / q rows holds ones at columns
    i q .. i q + q - 1 of row i; each further band is the first with its columns in the order of
    one running permutation, np.random.shuffle'd afresh for the band. With girth6 each shuffled
    permutation is then repaired (remove_4_cycles)."""
    band_rows = [np.arange(n) // q]      # per band: the row (within the band) of every column
    order = np.arange(n)
    for _ in range(p - 1):
        np.random.shuffle(order)
        if girth6:
            remove_4_cycles(order, band_rows, q)
        band_rows.append(order // q)
    H = np.zeros((p * (n // q), n))
    for b, rows in enumerate(band_rows):
        H[b * (n // q) + rows, np.arange(n)] = 1
    return H


def remove_4_cycles(order: np.ndarray, earlier_bands: list, q: int, max_passes: int = 1000):
    """Swap entries of `order` (a band's permutation; column c lies in row order[c] // q) until
    no two columns that share a row of an earlier band share a row of this one: no 4-cycles,
    girth >= 6, so no two columns are equal (a plain random draw at q = 18 has some: codewords
    of weight 2). Each conflicting column swaps with a random partner (numpy's global RNG) where
    the swap leaves both without conflict, so conflicts only decrease."""
    rows = order // q

    def clashes(col, row, leaving):
        members = np.flatnonzero(rows == row)
        members = members[(members != col) & (members != leaving)]
        return any((earlier[members] == earlier[col]).any() for earlier in earlier_bands)

    for _ in range(max_passes):
        conflicted = [c for c in range(len(order)) if clashes(c, rows[c], c)]
        if not conflicted:
            return
        for c in conflicted:
            partner = np.random.randint(len(order))
            if (rows[c] != rows[partner] and clashes(c, rows[c], c) and not clashes(c, rows[partner], partner)
                    and not clashes(partner, rows[c], c)):
                order[[c, partner]] = order[[partner, c]]
                rows[[c, partner]] = rows[[partner, c]]
    raise RuntimeError(f"no 4-cycle-free band found in {max_passes} passes")


def existing_codes(out_dir: Path, n: int, rate: str) -> list:
    """Files in out_dir named for length n whose k / n is nearest to `rate` of all ROW_WEIGHTS."""
    nominal = {r: 1 - COLUMN_WEIGHT / q for r, q in ROW_WEIGHTS.items()}
    found = []
    for path in sorted(out_dir.glob(f"n_{n:04d}_k_*_gap_*.alist")):
        k = int(re.search(r"_k_(\d+)_", path.name).group(1))
        if min(nominal, key=lambda r: abs(nominal[r] - k / n)) == rate:
            found.append(path)
    return found


def check_code(path: Path, n: int, k: int, gap: int, girth6: bool):
    """The written file: reads back as stated, full rank, no 4-cycles where asked, gr-fec
    encodes with it."""
    from gnuradio import blocks, fec, gr
    from gnuradio.semcom.digital import ldpc
    code = ldpc.read_alist(path)
    if (code.n, code.k, code.m) != (n, k, n - k) or code.k != n - ldpc.gf2_rank(code.H):
        raise RuntimeError(f"{path}: reads back as n {code.n}, k {code.k}, m {code.m}, not full rank n - k")
    overlap = code.H.T.astype(np.float32) @ code.H.astype(np.float32)
    np.fill_diagonal(overlap, 0)
    if girth6 and overlap.max() > 1:
        raise RuntimeError(f"{path}: two columns share {overlap.max()} checks (a 4-cycle)")
    info = np.random.default_rng(0).integers(0, 2, (4, k), dtype=np.uint8)
    tb = gr.top_block()
    sink = blocks.vector_sink_b()
    tb.connect(blocks.vector_source_b(info.ravel().tolist(), False),
               fec.encoder(fec.ldpc_par_mtrx_encoder.make_H(fec.ldpc_H_matrix(str(path), gap)),
                           gr.sizeof_char, gr.sizeof_char), sink)
    tb.run()
    words = np.array(sink.data(), np.uint8).reshape(len(info), n)
    if ldpc.syndrome(code, words).any() or not np.array_equal(words[:, n - k:], info):
        raise RuntimeError(f"{path}: gr-fec's encoder does not make systematic codewords with gap {gap}")


def make_code(gen, n: int, rate: str, seed: int, iterations: int, girth6: bool, out_dir: Path):
    """(temporary path of the checked alist, its final name)."""
    q = ROW_WEIGHTS[rate]
    np.random.seed([seed, q])
    t0 = time.time()
    H = gallager_matrix(n, COLUMN_WEIGHT, q, girth6)
    full = gen.get_full_rank_H_matrix(H)
    print(f"  {rate}: {H.shape[0]} x {n} Gallager matrix, {H.shape[0] - full.shape[0]} dependent rows removed "
          f"({time.time() - t0:.0f} s); {iterations} triangulation tries ...", flush=True)
    best = gen.get_best_matrix(full, iterations)
    if not best:
        raise RuntimeError(f"rate {rate}: no triangulation with an invertible phi in {iterations} tries")
    H, gap = best
    k = n - H.shape[0]
    name = f"n_{n:04d}_k_{k:04d}_gap_{gap:02d}.alist"
    tmp = out_dir / f".{name}.tmp{os.getpid()}"
    try:
        gen.write_alist_file(str(tmp), H)
        check_code(tmp, n, k, gap, girth6)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"  {rate}: k {k}, gap {gap} ({time.time() - t0:.0f} s)", flush=True)
    return tmp, name


def main(argv=None):
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = stock_generator()
    table, refused = {}, []
    for rate in args.rates:
        try:
            tmp, name = make_code(gen, args.n, rate, args.seed, args.iterations, not args.allow_4_cycles,
                                          out_dir)
        except RuntimeError as exc:
            print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
            return 1
        target = out_dir / name
        old = existing_codes(out_dir, args.n, rate)
        same = old == [target] and target.read_bytes() == tmp.read_bytes()
        if old and not same and not args.force:
            tmp.unlink()
            refused.append(f"{rate}: made {name}, but {', '.join(p.name for p in old)} exists (--force replaces it)")
            continue
        for path in old:
            if path != target:
                path.unlink()
        tmp.replace(target)
        table[rate] = name
        print(f"{rate}: {target}" + (" (unchanged)" if same else ""), flush=True)
    if table:
        print("CODES = {\n" + "".join(f'    "{r}": "{table[r]}",\n' for r in table) + "}")
    for line in refused:
        print(f"refused {line}", file=sys.stderr)
    return 1 if refused else 0


if __name__ == "__main__":
    run_main(main, "the files written so far stay; none is half-written")
