"""What every command-line app of the module shares: one-line argument errors and Ctrl-C."""

import argparse
import sys


def check_out_path(ap: argparse.ArgumentParser, out: str):
    """A training app's --out: a path WITHOUT extension (the app writes OUT.safetensors and
    OUT.json) whose folder exists or can be made; otherwise the parser's one-line error."""
    from pathlib import Path
    path = Path(out)
    if path.suffix in (".safetensors", ".json"):
        ap.error(f"--out is a path WITHOUT extension, got {out!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        ap.error(f"cannot create the --out folder {path.parent}: {exc.strerror}")


def name_list(ap: argparse.ArgumentParser, option: str, text: str, known) -> list:
    """A comma-separated list of names, each one of `known` (the parser's one-line error naming
    `option` otherwise), in the order given."""
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        ap.error(f"{option}: unknown {', '.join(map(repr, unknown)) or 'empty list'} (known: {', '.join(known)})")
    return names


class ArgumentParser(argparse.ArgumentParser):
    """argparse with errors as one line, "PROG: error: MESSAGE", and exit status 2 (the
    usage block is noise in a log; --help still prints all of it). Raw description text."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_main(main, what: str = "nothing was written"):
    """sys.exit(main()), with Ctrl-C as one line and exit status 130 (the shell's convention)."""
    prog = argparse.ArgumentParser().prog
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {what}", file=sys.stderr)
        sys.exit(130)
