#!/usr/bin/env python3
"""Fill the scheme lists of the GRC block templates (*.block.yml.in) from the scheme registry.

    gen_scheme_blocks.py PYTHON_PACKAGE_DIR OUT_DIR TEMPLATE...

Run by the build (grc/CMakeLists.txt): the installed yml always list exactly the registered
schemes, so a new scheme module needs no yml edit. Placeholders, each the value of a YAML key:
@SCHEME_OPTIONS@ / @SCHEME_LABELS@ (every scheme), @PRIOR_SCHEME_OPTIONS@ /
@PRIOR_SCHEME_LABELS@ (the schemes that run diffusion priors), and a line holding only
@SCHEME_DOCS@ (each scheme, its description and options) inside a documentation block.
The registry is imported from the source tree without GNU Radio (semcom.schemes is GR-free).
"""

import importlib
import json
import sys
import types
from pathlib import Path


def registry(package_dir: Path):
    """The schemes package of the source tree, imported as semcom.schemes without running the
    package's __init__ (which exports the GNU Radio blocks)."""
    pkg = types.ModuleType("semcom")
    pkg.__path__ = [str(package_dir)]
    sys.modules.setdefault("semcom", pkg)
    try:
        return importlib.import_module("semcom.schemes")
    except ImportError as exc:
        raise SystemExit(f"gen_scheme_blocks.py: cannot import the scheme registry with {sys.executable} ({exc}); "
                         "configure CMake with -DPYTHON_EXECUTABLE=<the Python that has torch>") from None


def yaml_list(values):
    # JSON strings are valid YAML flow scalars; the values are GRC expressions: quoted names
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def fill(text: str, schemes) -> str:
    every = schemes.names()
    with_priors = [n for n in every if getattr(schemes.get(n), "priors", ())]
    values = {"@SCHEME_OPTIONS@": yaml_list(f'"{n}"' for n in every),
              "@SCHEME_LABELS@": yaml_list(every),
              "@PRIOR_SCHEME_OPTIONS@": yaml_list(f'"{n}"' for n in with_priors),
              "@PRIOR_SCHEME_LABELS@": yaml_list(with_priors)}
    out = []
    for line in text.splitlines():
        if line.strip() == "@SCHEME_DOCS@":
            indent = line[:len(line) - len(line.lstrip())]
            for name in every:
                s = schemes.get(name)
                out.append(f"{indent}{name}: {s.description}")
                if s.options:
                    opts = ", ".join(f"{o.name}={o.default}" + "".join(f" ({c}: {v})" for c, v in o.channel_defaults)
                                     for o in s.options)
                    out.append(f"{indent}    options (defaults): {opts}")
            continue
        for key, value in values.items():
            line = line.replace(key, value)
        if "@" in line and any(tok in line for tok in ("@SCHEME", "@PRIOR_SCHEME")):
            raise SystemExit(f"unknown placeholder in: {line.strip()}")
        out.append(line)
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    schemes = registry(Path(argv[0]))
    out_dir = Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for template in map(Path, argv[2:]):
        target = out_dir / template.name.removesuffix(".in")
        tmp = target.with_suffix(".tmp")
        tmp.write_text(fill(template.read_text(), schemes))
        tmp.replace(target)


if __name__ == "__main__":
    main(sys.argv[1:])
