"""The JSCC models shipped with the module, by name (GNU Radio-free).

A model name is the stem of a checkpoint in python/semcom/checkpoints/ (NAME.safetensors +
NAME.json), e.g. "jscc_user_awgn_k512". A path to a checkpoint elsewhere works as a name too.
"""

from pathlib import Path
from typing import List, Tuple

from .checkpoint import CheckpointError, checkpoint_paths

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"


def _shipped(prefix: str) -> List[str]:
    """Stems of the complete (sidecar + weights) checkpoints named PREFIX* in CHECKPOINT_DIR."""
    return sorted(p.stem for p in CHECKPOINT_DIR.glob(f"{prefix}*.json")
                  if (p.with_suffix(".safetensors")).exists())


def list_models() -> List[str]:
    """The shipped JSCC models (the diffusion priors, prior_*, are listed by list_priors)."""
    return _shipped("jscc_")


def list_priors() -> List[str]:
    return _shipped("prior_")


def prior_name(role: str, channel_type: str, k: int) -> str:
    return f"prior_{role}_{channel_type}_k{k}"


def prior_for(role: str, channel_type: str, k: int) -> Path:
    """The shipped diffusion prior of the user's latents ("user", trained on the user encoder
    for that channel) or of the interference ("interferer", channel gain folded in)."""
    return prior_path(prior_name(role, channel_type, k))


def prior_path(name: str) -> Path:
    """The shipped diffusion prior `name` (path without extension); CheckpointError if absent."""
    weights, _ = checkpoint_paths(CHECKPOINT_DIR / name)
    if not weights.exists():
        raise CheckpointError(f"{weights}: no shipped diffusion prior {name!r} "
                              f"(available: {', '.join(list_priors()) or 'none'}; train one with apps/train_prior.py)")
    return weights.with_suffix("")


def checkpoint_for(name: str) -> Path:
    """NAME (shipped) or a path to NAME[.safetensors|.json] -> path without extension."""
    candidate = Path(name)
    if candidate.suffix in (".safetensors", ".json") or candidate.parent != Path("."):
        weights, _ = checkpoint_paths(candidate)
        if not weights.exists():
            raise CheckpointError(f"{weights}: checkpoint weights file not found")
        return weights.with_suffix("")
    weights, _ = checkpoint_paths(CHECKPOINT_DIR / name)
    if not weights.exists():
        raise CheckpointError(f"{weights}: no shipped model {name!r} "
                              f"(available: {', '.join(list_models()) or 'none'})")
    return weights.with_suffix("")


def default_k(image_shape) -> int:
    """The shipped models' symbol count for an image shape (H, W, C): CBR 1/6 for 32x32 RGB,
    1/8 for 28x28 grey."""
    return 98 if tuple(image_shape)[-1] == 1 else 512


def default_models(channel_type: str, k: int, image_shape=(32, 32, 3)) -> Tuple[str, str]:
    """(user, interferer) model names for a channel, symbol count and image shape (H, W, C)."""
    grey = tuple(image_shape)[-1] == 1
    user = f"jscc_user_mnist_{channel_type}_k{k}" if grey else f"jscc_user_{channel_type}_k{k}"
    # One interferer per k: the interference is another JSCC system, whatever our channel.
    interferer = f"jscc_interferer_mnist_awgn_k{k}" if grey else f"jscc_interferer_awgn_k{k}"
    return user, interferer
