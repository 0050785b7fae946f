"""JSCC checkpoints: NAME.safetensors (weights) + NAME.json (config, provenance, metrics).

No pickle anywhere: weights are safetensors, everything else is JSON. The sidecar holds

    format           "semcom-jscc/1"
    config           the JSCCConfig (rebuilds the architecture)
    k, cbr, channel  duplicated from the config for people reading the file
    weights_file     NAME.safetensors; weights_sha256 its SHA-256 (detects a swapped file)
    parameters       number of parameters
    meta             free-form provenance: training command, data files, epochs, steps,
                     wall time, seed, test PSNR per SNR, ...

`load_checkpoint` raises exactly one `CheckpointError` (a ValueError) naming the file and what
is wrong for: a missing weights file, a missing or unreadable JSON sidecar, a truncated or
corrupt safetensors file, and weights that do not match the config (missing, unexpected or
mis-shaped tensors).
"""

import hashlib
import json
from pathlib import Path
from typing import Dict, Optional, Tuple, Union


from .jscc import JSCC, JSCCConfig, count_parameters

FORMAT = "semcom-jscc/1"
REQUIRED_FIELDS = ("format", "config", "k", "cbr", "channel", "weights_file",
                   "weights_sha256", "parameters", "meta")


# Weights shipped with the module: <package>/checkpoints (python/semcom/checkpoints in the
# source tree, gnuradio/semcom/checkpoints when installed).
CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message names the file and the problem."""


def shipped_checkpoints() -> Dict[str, Path]:
    """{name: path without extension} of the JSCC checkpoints shipped in CHECKPOINT_DIR
    (the diffusion priors beside them, prior_*, are models.list_priors())."""
    return {p.stem: p.with_suffix("") for p in sorted(CHECKPOINT_DIR.glob("jscc_*.json"))}


def _split(path: Union[str, Path]) -> Tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.parent / (p.name + ".safetensors"), p.parent / (p.name + ".json")


def checkpoint_paths(path: Union[str, Path]) -> Tuple[Path, Path]:
    """NAME, NAME.safetensors or NAME.json -> (NAME.safetensors, NAME.json).

    A bare name with no directory part (e.g. "jscc_user_awgn_k512") that does not exist in
    the working directory refers to a shipped checkpoint in CHECKPOINT_DIR.
    """
    weights, sidecar = _split(path)
    if (len(Path(path).parts) == 1 and not weights.exists() and not sidecar.exists()
            and (CHECKPOINT_DIR / sidecar.name).exists()):
        weights, sidecar = CHECKPOINT_DIR / weights.name, CHECKPOINT_DIR / sidecar.name
    return weights, sidecar


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: Union[str, Path], model: JSCC, config: Optional[JSCCConfig] = None,
                    meta: Optional[dict] = None) -> Tuple[Path, Path]:
    """Write NAME.safetensors and NAME.json (path given without extension)."""
    from safetensors.torch import save_file

    config = config or model.cfg
    weights, sidecar = _split(path)  # never redirected to the shipped directory
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"format": FORMAT, "config": config.to_json()})
    weights.chmod(0o644)  # safetensors creates 0600 files; shipped weights must be readable
    doc = {
        "format": FORMAT,
        "config": config.to_dict(),
        "k": config.k,
        "cbr": config.cbr,
        "channel": config.channel_type,
        "image_shape": list(config.image_shape),
        "role": config.role,
        "weights_file": weights.name,
        "weights_sha256": _sha256(weights),
        "parameters": count_parameters(model),
        "meta": meta or {},
    }
    tmp = sidecar.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(sidecar)
    return weights, sidecar


def read_sidecar(path: Union[str, Path]) -> Dict:
    """The parsed, checked JSON sidecar of a checkpoint."""
    weights, sidecar = checkpoint_paths(path)
    if not sidecar.is_file():
        raise CheckpointError(f"{sidecar}: JSON sidecar missing (it holds the model config; "
                              f"weights file {weights.name} "
                              f"{'exists' if weights.is_file() else 'is missing too'})")
    try:
        doc = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{sidecar}: unreadable JSON sidecar ({exc})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{sidecar}: JSON sidecar is not an object")
    missing = [f for f in REQUIRED_FIELDS if f not in doc]
    if missing:
        raise CheckpointError(f"{sidecar}: JSON sidecar lacks field(s) {missing}")
    if doc["format"] != FORMAT:
        raise CheckpointError(f"{sidecar}: unsupported format {doc['format']!r} "
                              f"(expected {FORMAT!r})")
    return doc


def load_checkpoint(path: Union[str, Path], verify_hash: bool = True
                    ) -> Tuple[JSCC, JSCCConfig, Dict]:
    """Load NAME(.safetensors|.json) -> (model in eval mode, config, sidecar dict)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, sidecar = checkpoint_paths(path)
    if not weights.is_file():
        hint = ""
        if len(Path(path).parts) == 1:
            hint = f" (shipped checkpoints: {', '.join(shipped_checkpoints()) or 'none'})"
        raise CheckpointError(f"{weights}: checkpoint weights file not found{hint}")
    doc = read_sidecar(path)
    try:
        cfg = JSCCConfig.from_dict(doc["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{sidecar}: invalid model config ({exc})") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: truncated or corrupt safetensors file ({exc})"
                              ) from None
    model = JSCC(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{n}: file {tuple(state[n].shape)} vs config {tuple(t.shape)}"
              for n, t in expected.items() if n in state and state[n].shape != t.shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s) e.g. {unexpected[:3]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) e.g. {shapes[:3]}")
        raise CheckpointError(f"{weights}: weights do not match the config in {sidecar.name} "
                              f"({'; '.join(parts)})")
    if verify_hash and doc.get("weights_sha256") and _sha256(weights) != doc["weights_sha256"]:
        raise CheckpointError(f"{weights}: SHA-256 differs from the one recorded in "
                              f"{sidecar.name} (weights and sidecar are from different runs)")
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, cfg, doc
