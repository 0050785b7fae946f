"""The scheme registry: every system the link can host, by name (GNU Radio-free).

A scheme is a transmitter + receiver pair with typed options (base.py: Scheme, Option, and
the TxContext / Observation / Result that cross the link, each with one wire form). Every
module of this package registers its schemes when the package is imported, so adding a
scheme is adding a module here (plus its checkpoints, tests and docs row); run_link, the
batch engine, the inference server, the GRC blocks and the benchmarks walk this registry.

    from gnuradio.semcom import schemes
    schemes.names()                      # ['cddm', 'icdm', ..., 'lmmse', 'mmse']
    scheme = schemes.check("icdm", {"steps": "30"})   # ValueError for a bad name or option
"""

import importlib
import logging
import pkgutil
import sys
from typing import Dict, Optional

from .base import Observation, Option, Result, Scheme, Transmission, TxContext, parse_options  # noqa: F401

SCHEMES: Dict[str, Scheme] = {}
_NOT_SCHEMES = {"base", "link_sim"}   # modules of this package that define no scheme (link_sim: the batch engine)


def register(scheme: Scheme) -> Scheme:
    if not scheme.name or scheme.name in SCHEMES:
        raise ValueError(f"scheme {scheme.name!r} is unnamed or already registered")
    SCHEMES[scheme.name] = scheme
    return scheme


def names() -> list:
    return sorted(SCHEMES)


def get(name: str) -> Scheme:
    if name not in SCHEMES:
        missing = "".join(f"; module {m} left out: {why}" for m, why in UNAVAILABLE.items())
        raise ValueError(f"unknown receiver scheme {name!r} (available: {', '.join(names())}{missing})")
    return SCHEMES[name]


def check(name: str, options: Optional[dict] = None, channel_type: Optional[str] = None) -> Scheme:
    """The scheme called `name`, after checking `options` against it (ValueError otherwise)."""
    scheme = get(name)
    scheme.option_values(options, channel_type)
    return scheme


def run_record(run_info) -> dict:
    """core.version.run_record with the scheme's options resolved against its defaults (those
    of `prior_channel`, else `channel`) and an empty `user_model` as the scheme's default model
    for the channel and k: what reproduces a run. ValueError for an unknown scheme or bad
    options."""
    from ..core.version import run_record as record
    run = dict(run_info or {})
    if run.get("receiver"):
        given = run.get("receiver_options") or {}
        given = parse_options(given) if isinstance(given, str) else dict(given)
        channel = run.get("prior_channel") or run.get("channel")
        run["receiver_options"] = get(run["receiver"]).option_values(given, channel)
        run.setdefault("scheme", run["receiver"])
        if run.get("user_model") == "" and run.get("channel"):   # "" = the scheme's own: record which
            run["user_model"] = get(run["receiver"]).default_model(run["channel"], run.get("k"))
    return record(run)


def help_text() -> str:
    """Each scheme with its options and defaults (run_link --help)."""
    lines = []
    for name in names():
        s = SCHEMES[name]
        lines.append(f"  {name}: {s.description}")
        for o in s.options:
            extra = f" one of {'/'.join(map(str, o.choices))}" if o.choices else ""
            per_channel = "".join(f", {c}: {v}" for c, v in o.channel_defaults)
            lines.append(f"      {o.name}={o.default}{per_channel} ({type(o.default).__name__}{extra}) {o.help}")
    return "\n".join(lines)


UNAVAILABLE: Dict[str, str] = {}   # scheme module -> why it did not import (a missing optional package)


def discover() -> list:
    """Import the modules of this package not imported yet (each registers its schemes);
    their names. Runs when the package is imported. A module that cannot be imported (an
    optional dependency missing) is left out with one warning, kept in UNAVAILABLE, and the
    other schemes stay usable."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        name = f"{__name__}.{module.name}"
        if module.name in _NOT_SCHEMES or module.name.startswith("_") or name in sys.modules \
                or module.name in UNAVAILABLE:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            UNAVAILABLE[module.name] = str(exc)
            logging.getLogger("semcom.schemes").warning("scheme module %s left out: %s", module.name, exc)
            continue
        found.append(module.name)
    return found


discover()
