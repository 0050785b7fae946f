"""Model checkpoints, one format for every model kind: NAME.safetensors + NAME.json.

No pickle anywhere: weights are safetensors, everything else is JSON. The sidecar
(format "semcom-checkpoint/1") holds

    format           "semcom-checkpoint/1"
    kind             the model kind, which says how `config` rebuilds the model: "jscc"
                     (core/jscc.py), "dit-prior" (diffusion/dit.py), "kl-vae" (nets/kl_vae.py), "classifier"
                     (nets/classifier.py); more by
                     `register_kind`
    config           the architecture config of that kind (rebuilds the model)
    schedule         the diffusion noise schedule the model was trained with, as data, e.g.
                     {"type": "vp-linear", "beta_start": 1e-4, "beta_end": 0.02,
                      "num_steps": 1000}; null for kinds without one (JSCC)
    k, cbr, channel, image_shape, role
                     informative duplicates for people reading the file, where they apply
                     (never read back: `config` is the authority)
    weights_file     NAME.safetensors; weights_sha256 its SHA-256 (detects a swapped file)
    parameters       number of parameters
    provenance       free-form: training command, data files, epochs, steps, wall time,
                     seed, test metrics, ...
    converted_from   (only in files converted from an older format) that format

Both files are written atomically (temporary file + rename, mode 0644): an interrupted save
leaves the previous files or none, never a partial one.

`load_checkpoint` raises exactly one `CheckpointError` (a ValueError) naming the file and what
is wrong for: a missing weights file, a missing or unreadable JSON sidecar, a sidecar in an old
format (with the command that converts it), a wrong format or kind, an invalid config or
schedule, a truncated or corrupt safetensors file, weights that do not match the config
(missing, unexpected or mis-shaped tensors), weights whose SHA-256 is not the recorded one,
and (for a prior with a Gaussian base) a base that is missing or not the one it was trained on.
"""

import dataclasses
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .files import atomic_path, write_text_atomic
from .jscc import JSCC, JSCCConfig, count_parameters

FORMAT = "semcom-checkpoint/1"
REQUIRED_FIELDS = ("format", "kind", "config", "schedule", "weights_file", "weights_sha256",
                   "parameters", "provenance")
# Formats before FORMAT, and the kind each held. load_checkpoint refuses them with the command
# below; apps/convert_checkpoints.py rewrites their sidecars (the weights are unchanged).
OLD_FORMATS = {"semcom-jscc/1": "jscc", "semcom-prior/1": "dit-prior"}
CONVERT_COMMAND = "python apps/convert_checkpoints.py"
FILE_MODE = 0o644  # shipped weights must be readable by everyone (safetensors alone makes 0600)

# Weights shipped with the module: <package>/checkpoints (python/semcom/checkpoints in the
# source tree, gnuradio/semcom/checkpoints when installed). core/models.py names them.
CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message names the file and the problem."""


# --------------------------------------------------------------------------- model kinds

@dataclasses.dataclass(frozen=True)
class ModelKind:
    """How a checkpoint of one kind becomes a model."""
    name: str
    build: Callable[[Any], Any]               # config object -> nn.Module (fresh weights)
    parse_config: Callable[[dict], Any]        # sidecar "config" -> config object (raises on bad)
    config_to_dict: Callable[[Any], dict]      # config object -> JSON-able dict
    describe: Callable[[Any], dict]            # config -> informative duplicates (k, cbr, ...)
    check_schedule: Optional[Callable[[Any], Any]]  # None: the kind has no schedule (null)
    # After the weights are in: link(model, config, sidecar dict, weights path) attaches what the
    # config names outside the file (a prior's Gaussian base), raising CheckpointError
    link: Optional[Callable[[Any, Any, Dict, Path], None]] = None


_KINDS: Dict[str, ModelKind] = {}

# Kinds whose code lives outside core register themselves when their module is imported; this
# table names that module (relative to this package) so the loader can import it on demand.
# Why not import them here: core is the bottom layer (diffusion imports core, never the other
# way round) and importing diffusion would make every JSCC load pay for it; why not entry
# points: one in-tree module per kind needs no packaging machinery. A new kind (KL-VAE, U-Net)
# calls register_kind in its own module and adds one line here.
_LAZY_KINDS = {"dit-prior": "..diffusion.dit", "gaussian-fit": "..diffusion.gaussian",
               "kl-vae": "..nets.kl_vae", "classifier": "..nets.classifier",
               "cdiff": "..nets.cdiff", "cdiff-autoencoder": "..nets.cdiff",
               "pixel-prior": "..diffusion.pixel_prior"}


def _default_config_to_dict(cfg) -> dict:
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    return dataclasses.asdict(cfg)


def register_kind(kind: str, build: Callable[[Any], Any], parse_config: Callable[[dict], Any], *,
                  config_to_dict: Optional[Callable[[Any], dict]] = None,
                  describe: Optional[Callable[[Any], dict]] = None,
                  check_schedule: Optional[Callable[[Any], Any]] = None,
                  link: Optional[Callable[[Any, Any, Dict, Path], None]] = None) -> ModelKind:
    """Make checkpoints of `kind` loadable: `parse_config(dict)` -> config (raising ValueError or
    TypeError on a bad one), `build(config)` -> nn.Module; `config_to_dict` inverts parse_config
    (default: config.to_dict() or dataclasses.asdict), `describe(config)` gives the informative
    sidecar fields, `check_schedule(data)` validates a schedule (raising ValueError); without it
    the kind has no schedule and its sidecars say null; `link(model, config, doc, weights)`, run
    after the weights load, attaches what the config names outside the file (raising
    CheckpointError). Registering a kind again replaces it."""
    entry = ModelKind(kind, build, parse_config, config_to_dict or _default_config_to_dict,
                      describe or (lambda cfg: {}), check_schedule, link)
    _KINDS[kind] = entry
    return entry


def known_kinds() -> List[str]:
    """Kinds registered now or loadable on demand."""
    return sorted(set(_KINDS) | set(_LAZY_KINDS))


def model_kind(kind: str) -> ModelKind:
    """The registered kind, importing the module that registers it if needed (KeyError if none)."""
    if kind not in _KINDS and kind in _LAZY_KINDS:
        importlib.import_module(_LAZY_KINDS[kind], __package__)
    if kind not in _KINDS:
        raise KeyError(f"unknown model kind {kind!r} (known: {', '.join(known_kinds())})")
    return _KINDS[kind]


def _describe_jscc(cfg: JSCCConfig) -> dict:
    return {"k": cfg.k, "cbr": cfg.cbr, "channel": cfg.channel_type,
            "image_shape": list(cfg.image_shape), "role": cfg.role}


register_kind("jscc", JSCC, JSCCConfig.from_dict, config_to_dict=JSCCConfig.to_dict,
              describe=_describe_jscc)


# --------------------------------------------------------------------------- paths

def shipped_checkpoints() -> Dict[str, Path]:
    """{name: path without extension} of the JSCC checkpoints shipped in CHECKPOINT_DIR (every
    kind: core.models.shipped())."""
    from .models import shipped
    return shipped("jscc")


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


def sha256_file(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- writing

def sidecar_doc(kind: str, config, weights_name: str, weights_sha256: str, parameters: int,
                provenance: Optional[dict] = None, schedule: Optional[dict] = None,
                info: Optional[dict] = None) -> dict:
    """The sidecar dict of a checkpoint (fields in the documented order)."""
    entry = model_kind(kind)
    if entry.check_schedule is None and schedule is not None:
        raise ValueError(f"a {kind!r} checkpoint has no noise schedule (got {schedule!r})")
    if entry.check_schedule is not None:
        if schedule is None:
            raise ValueError(f"a {kind!r} checkpoint needs its noise schedule")
        entry.check_schedule(schedule)
    doc = {"format": FORMAT, "kind": kind, "config": entry.config_to_dict(config),
           "schedule": schedule}
    doc.update(entry.describe(config))
    doc.update(info or {})
    doc.update({"weights_file": weights_name, "weights_sha256": weights_sha256,
                "parameters": int(parameters), "provenance": provenance or {}})
    return doc


def write_sidecar(path: Union[str, Path], doc: dict) -> Path:
    """Write NAME.json atomically (path with or without extension)."""
    _, sidecar = _split(path)
    write_text_atomic(sidecar, json.dumps(doc, indent=2) + "\n", mode=FILE_MODE)
    return sidecar


def save_checkpoint(path: Union[str, Path], model, config=None, provenance: Optional[dict] = None,
                    *, kind: str = "jscc", schedule: Optional[dict] = None,
                    info: Optional[dict] = None) -> Tuple[Path, Path]:
    """Write NAME.safetensors and NAME.json (path given without extension) for a model of
    `kind` (default "jscc"); config defaults to model.cfg; `info` adds informative fields."""
    from safetensors.torch import save_file

    entry = model_kind(kind)
    config = config if config is not None else model.cfg
    weights, sidecar = _split(path)  # never redirected to the shipped directory
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "kind": kind,
              "config": json.dumps(entry.config_to_dict(config), sort_keys=True)}
    with atomic_path(weights, FILE_MODE) as tmp:
        save_file(state, str(tmp), metadata=header)
        doc = sidecar_doc(kind, config, weights.name, sha256_file(tmp), count_parameters(model),
                          provenance, schedule, info)
    # The weights are in place; the sidecar that names their hash follows. A crash between the
    # two leaves a pair whose hashes disagree, which load_checkpoint reports.
    write_sidecar(sidecar, doc)
    return weights, sidecar


# --------------------------------------------------------------------------- reading

def read_json_object(sidecar: Path) -> Dict:
    """A sidecar's JSON object, of any format (the converter reads old ones too)."""
    try:
        doc = json.loads(Path(sidecar).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{sidecar}: unreadable JSON sidecar ({exc})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{sidecar}: JSON sidecar is not an object")
    return doc


def read_sidecar(path: Union[str, Path], kind: Optional[str] = None) -> Dict:
    """The parsed, checked JSON sidecar of a checkpoint (of `kind`, when given)."""
    weights, sidecar = checkpoint_paths(path)
    if not sidecar.is_file():
        raise CheckpointError(f"{sidecar}: JSON sidecar missing (it holds the model config; "
                              f"weights file {weights.name} "
                              f"{'exists' if weights.is_file() else 'is missing too'})")
    doc = read_json_object(sidecar)
    fmt = doc.get("format")
    if fmt in OLD_FORMATS:
        raise CheckpointError(f"{sidecar}: checkpoint in the old format {fmt!r} (this version "
                              f"reads {FORMAT!r}); convert it, weights unchanged, with "
                              f"`{CONVERT_COMMAND} {sidecar.with_suffix('')}`")
    if fmt != FORMAT:
        raise CheckpointError(f"{sidecar}: unsupported format {fmt!r} (expected {FORMAT!r})")
    missing = [f for f in REQUIRED_FIELDS if f not in doc]
    if missing:
        raise CheckpointError(f"{sidecar}: JSON sidecar lacks field(s) {missing}")
    if kind is not None and doc["kind"] != kind:
        raise CheckpointError(f"{sidecar}: a {doc['kind']!r} checkpoint, not {kind!r}")
    if doc["kind"] not in known_kinds():
        raise CheckpointError(f"{sidecar}: unknown model kind {doc['kind']!r} "
                              f"(known: {', '.join(known_kinds())})")
    return doc


def load_weights(path: Union[str, Path]) -> Dict:
    """{name: tensor} of NAME.safetensors, as stored (CheckpointError if unreadable)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, _ = checkpoint_paths(path)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: checkpoint weights file not found")
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: truncated or corrupt safetensors file ({exc})"
                              ) from None


def _check_state(weights: Path, sidecar: Path, state: Dict, expected: Dict):
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


def load_checkpoint(path: Union[str, Path], kind: Optional[str] = None, *,
                    verify_hash: bool = True) -> Tuple[Any, Any, Dict]:
    """Load NAME(.safetensors|.json) of any kind (or of `kind`, when given)
    -> (model in eval mode, its config object, sidecar dict)."""
    weights, sidecar = checkpoint_paths(path)
    if not weights.is_file():
        hint = ""
        if len(Path(path).parts) == 1:
            from .models import shipped
            hint = f" (shipped checkpoints: {', '.join(shipped(kind)) or 'none'})"
        raise CheckpointError(f"{weights}: checkpoint weights file not found{hint}")
    doc = read_sidecar(path, kind)
    entry = model_kind(doc["kind"])
    try:
        cfg = entry.parse_config(doc["config"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{sidecar}: invalid model config ({exc})") from None
    if entry.check_schedule is None:
        if doc["schedule"] is not None:
            raise CheckpointError(f"{sidecar}: a {doc['kind']!r} checkpoint has no noise "
                                  f"schedule, found {doc['schedule']!r}")
    else:
        try:
            entry.check_schedule(doc["schedule"])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{sidecar}: invalid noise schedule ({exc})") from None
    state = load_weights(weights)
    model = entry.build(cfg)
    _check_state(weights, sidecar, state, model.state_dict())
    if verify_hash and sha256_file(weights) != doc["weights_sha256"]:
        raise CheckpointError(f"{weights}: SHA-256 differs from the one recorded in "
                              f"{sidecar.name} (weights and sidecar are from different runs)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied
        raise CheckpointError(f"{weights}: weights do not load into the model "
                              f"({str(exc).splitlines()[0]})") from None
    if entry.link is not None:
        entry.link(model, cfg, doc, weights)
    model.eval()
    return model, cfg, doc
