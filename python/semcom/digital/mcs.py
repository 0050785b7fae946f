"""Modulation and coding schemes of the digital baseline, the adaptive choice among them, and
the capacity bound of the "ideal digital" reference (GNU Radio-free).

An MCS is a Gray QAM order and an LDPC code rate (ldpc.py's shipped n = 1008 codes). The
adaptive choice takes, for the SNR the transmitter knows, the MCS with the most payload bytes
among those whose measured threshold (the lowest SNR with a codeword error rate <= 10 % on that
channel type, mcs_thresholds.json, made by apps/measure_mcs.py) is at or below it.
"""

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from .frame import Layout

THRESHOLDS = Path(__file__).with_name("mcs_thresholds.json")


@dataclass(frozen=True)
class Mcs:
    name: str
    order: int        # QAM points
    rate: str         # LDPC code rate, a key of ldpc.load_code


MCS = (Mcs("qpsk-1/2", 4, "1/2"), Mcs("qpsk-3/4", 4, "3/4"), Mcs("16qam-1/2", 16, "1/2"),
       Mcs("16qam-3/4", 16, "3/4"), Mcs("64qam-2/3", 64, "2/3"), Mcs("64qam-3/4", 64, "3/4"),
       Mcs("64qam-5/6", 64, "5/6"))
BY_NAME = {m.name: m for m in MCS}


def get(name: str) -> Mcs:
    if name not in BY_NAME:
        raise ValueError(f"unknown MCS {name!r} (expected one of {', '.join(BY_NAME)})")
    return BY_NAME[name]


def fixed(name: str, k: int) -> Mcs:
    """The MCS called `name`, which must carry at least one codeword in k symbols (ValueError)."""
    chosen = get(name)
    if layout(chosen, k).codewords < 1:
        raise ValueError(f"{name} carries no LDPC codeword in {k} symbols")
    return chosen


def layout(mcs: Mcs, k: int) -> Layout:
    from . import ldpc
    from .qam import bits_per_symbol
    code = ldpc.load_code(mcs.rate)
    return Layout(int(k), bits_per_symbol(mcs.order), code.n, code.k)


@lru_cache(maxsize=1)
def thresholds() -> dict:
    """{channel type: {MCS name: threshold SNR dB or None (never reached)}} as measured."""
    if not THRESHOLDS.is_file():
        raise FileNotFoundError(f"{THRESHOLDS} is missing: run apps/measure_mcs.py")
    return json.loads(THRESHOLDS.read_text())["thresholds_db"]


def adaptive(snr_db: float, channel_type: str, k: int) -> Optional[Mcs]:
    """The MCS with the most payload bytes whose threshold on `channel_type` is <= snr_db and
    whose codewords fit k symbols; None where none qualifies (the image is not sent)."""
    table = thresholds()[channel_type]
    fit = [m for m in MCS if table.get(m.name) is not None and table[m.name] <= snr_db
           and layout(m, k).codewords >= 1]
    return max(fit, key=lambda m: layout(m, k).payload_bytes, default=None)


def capacity_bits_per_symbol(snr_db: float, channel_type: str) -> float:
    """log2(1 + snr) on AWGN; the ergodic E[log2(1 + snr |h|^2)] = e^{1/snr} E1(1/snr) / ln 2 on
    i.i.d. Rayleigh (every image's code spans many independent fades)."""
    snr = 10 ** (float(snr_db) / 10)
    if channel_type == "awgn":
        return math.log2(1 + snr)
    if channel_type == "rayleigh":
        from ..core.precoding import exp1
        return math.exp(1 / snr) * exp1(1 / snr) / math.log(2)
    raise ValueError(f"unknown channel type {channel_type!r}")


def capacity_bytes(snr_db: float, channel_type: str, k: int) -> int:
    """The byte budget of k channel uses at capacity (the ideal digital reference)."""
    return int(k * capacity_bits_per_symbol(snr_db, channel_type) // 8)
