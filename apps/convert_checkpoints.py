#!/usr/bin/env python3
"""Convert checkpoints from the old formats to the one format "semcom-checkpoint/1".

Old sidecars: "semcom-jscc/1" (JSCC models) and "semcom-prior/1" (diffusion priors). Only the
JSON sidecar is rewritten (atomically); the weights file is not touched, so the tensors stay
bit-identical (its SHA-256 is checked against the old sidecar's where that has one, and
recorded). The old `meta` becomes `provenance` unchanged; a prior's noise schedule, recorded
as prose in its meta, becomes data ({"type": "vp-linear", ...}); the converted model is then
loaded once to check it. Files already in the new format are left alone.

  .venv/bin/python apps/convert_checkpoints.py                 # every shipped checkpoint
  .venv/bin/python apps/convert_checkpoints.py path/to/NAME    # NAME.json + NAME.safetensors
  .venv/bin/python apps/convert_checkpoints.py --check         # exit 1 unless all are new
"""

import argparse
import sys
from pathlib import Path

from gnuradio.semcom.core import checkpoint as ck
from gnuradio.semcom.core.jscc import JSCCConfig
from gnuradio.semcom.core.files import write_bytes_atomic
from gnuradio.semcom.core.models import RESUME_SUFFIX
from gnuradio.semcom.diffusion.dit import LINEAR_SCHEDULE, DiTConfig

SOURCE_DIR = Path(__file__).resolve().parents[1] / "python" / "semcom" / "checkpoints"
# What train_prior.py wrote into a semcom-prior/1 sidecar's meta for its (only) schedule.
OLD_PRIOR_SCHEDULES = {"VP linear betas 1e-4..0.02, 1000 steps": LINEAR_SCHEDULE}


def default_paths():
    """The shipped checkpoints: of the source tree when run from it, else of the installed module
    (not the resume files of a training run writing into that folder: they are no checkpoint)."""
    folder = SOURCE_DIR if SOURCE_DIR.is_dir() else ck.CHECKPOINT_DIR
    return sorted(p.with_suffix("") for p in folder.glob("*.json") if not p.stem.endswith(RESUME_SUFFIX))


def convert_doc(old: dict, weights: Path) -> dict:
    """The "semcom-checkpoint/1" sidecar of an old-format sidecar `old` whose weights are the
    file `weights` (ValueError when it cannot be converted faithfully)."""
    fmt = old.get("format")
    if fmt not in ck.OLD_FORMATS:
        raise ValueError(f"format {fmt!r} is not an old checkpoint format ({', '.join(ck.OLD_FORMATS)})")
    kind = ck.OLD_FORMATS[fmt]
    for field in ("config", "parameters", "meta"):
        if field not in old:
            raise ValueError(f"the {fmt} sidecar lacks {field!r}")
    meta = old["meta"]
    sha = ck.sha256_file(weights)
    if old.get("weights_sha256") not in (None, sha):
        raise ValueError(f"{weights.name}: SHA-256 differs from the one the old sidecar records")
    if kind == "jscc":
        JSCCConfig.from_dict(old["config"])  # checks it; the config itself is kept verbatim
        schedule = None
        info = {f: old[f] for f in ("k", "cbr", "channel", "image_shape", "role") if f in old}
    else:
        cfg = DiTConfig(**old["config"])
        text = meta.get("schedule")
        if text not in OLD_PRIOR_SCHEDULES:
            raise ValueError(f"cannot tell the noise schedule from meta.schedule = {text!r} "
                             f"(known: {list(OLD_PRIOR_SCHEDULES)})")
        schedule = dict(OLD_PRIOR_SCHEDULES[text])
        info = {"k": cfg.latent_dim // 2}
        info.update({f: meta[f] for f in ("role", "channel") if f in meta})
    doc = {"format": ck.FORMAT, "kind": kind, "config": old["config"], "schedule": schedule}
    doc.update(info)
    doc.update({"weights_file": weights.name, "weights_sha256": sha,
                "parameters": old["parameters"], "provenance": meta, "converted_from": fmt})
    return doc


def convert(path) -> str:
    """Convert one checkpoint in place; returns what was done (ValueError when it cannot be)."""
    weights, sidecar = ck.checkpoint_paths(path)
    if not weights.is_file() or not sidecar.is_file():
        raise ValueError(f"{sidecar.with_suffix('')}: needs both NAME.json and NAME.safetensors")
    old = ck.read_json_object(sidecar)
    if old.get("format") == ck.FORMAT:
        ck.load_checkpoint(weights)
        return "already in the new format"
    before = ck.load_weights(weights)
    try:
        doc = convert_doc(old, weights)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{sidecar}: {exc}") from None
    original = sidecar.read_bytes()
    ck.write_sidecar(sidecar, doc)
    try:
        model, _, _ = ck.load_checkpoint(weights, doc["kind"])
        state = model.state_dict()
        if set(state) != set(before) or any(not state[n].equal(before[n]) for n in before):
            raise ck.CheckpointError(f"{weights}: the converted model's tensors differ from the file's")
    except ck.CheckpointError:
        write_bytes_atomic(sidecar, original, mode=ck.FILE_MODE)  # put the old sidecar back
        raise
    return f"converted {old['format']} -> {ck.FORMAT} (kind {doc['kind']})"


def check(path) -> str:
    """'' when the checkpoint is in the new format and loads, else what is wrong."""
    try:
        ck.load_checkpoint(path)
        return ""
    except ck.CheckpointError as exc:
        return str(exc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", help="checkpoints (NAME, NAME.json or NAME.safetensors); "
                                             "default: every shipped one")
    ap.add_argument("--check", action="store_true", help="convert nothing; exit 1 unless every "
                                                         "checkpoint is in the new format and loads")
    args = ap.parse_args(argv)
    paths = args.paths or default_paths()
    if not paths:
        print("no checkpoints found", file=sys.stderr)
        return 1
    failed = 0
    for path in paths:
        name = Path(path).with_suffix("").name if Path(path).suffix in (".json", ".safetensors") else Path(path).name
        if args.check:
            problem = check(path)
            print(f"{name}: {'ok (' + ck.FORMAT + ')' if not problem else problem}")
        else:
            try:
                print(f"{name}: {convert(path)}")
                problem = ""
            except (ValueError, OSError) as exc:  # CheckpointError is a ValueError
                problem = str(exc)
                print(f"{name}: NOT converted: {problem}", file=sys.stderr)
        failed += bool(problem)
    if failed:
        print(f"{failed} of {len(paths)} checkpoint(s) {'not in ' + ck.FORMAT if args.check else 'failed'}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
