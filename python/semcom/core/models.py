"""The models shipped with the module, by name (GNU Radio-free): the one place names are made.

A model name is the stem of a checkpoint in python/semcom/checkpoints/ (NAME.safetensors +
NAME.json, format in core/checkpoint.py), e.g. "jscc_user_awgn_k512". A path to a checkpoint
elsewhere works as a name too. Names are composed only here:

    jscc_model_name(role, channel_type, k, image_shape)   jscc_{role}[_mnist]_{channel}_k{k}
    prior_name(role, channel_type, k)                      prior_{role}_{channel}_k{k}
    gaussian_name(role, channel_type, k)                   gauss_{role}_{channel}_k{k}
    vae_name(dataset, k)                                    vae_{dataset}_k{k}
    vae_prior_name(vae), vae_gaussian_name(vae)            prior_{vae}, gauss_{vae}
    jscc_model_for(role, channel_type, k, image_shape)    the model a role uses on a channel
    default_models(channel_type, k, image_shape)          (user, interferer) of a link

and the shipped files are listed by kind with `shipped(kind)`.
"""

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .checkpoint import CHECKPOINT_DIR, CheckpointError, checkpoint_paths

# The name prefix of each kind's shipped checkpoints (a sidecar's own "kind" field is the
# authority; the prefix only spares reading every sidecar to list one kind).
KIND_PREFIX = {"jscc": "jscc_", "dit-prior": "prior_", "gaussian-fit": "gauss_", "kl-vae": "vae_",
               "classifier": "classifier_", "cdiff": "cdiff_", "cdiff-autoencoder": "cdiff_",
               "pixel-prior": "pixel_prior_"}
CDIFF_SYSTEMS = {"cdiff": "cdiff", "ae": "cdiff-autoencoder", "vae": "cdiff-autoencoder"}   # system -> kind
# OUT.resume.{safetensors,json}: an unfinished training run writing OUT (core/resume.py), never a model
RESUME_SUFFIX = ".resume"
VAE_DATASETS = ("cifar10",)
CLASSIFIER_DATASETS = ("cifar10",)
ROLES = ("user", "interferer")


def _grey(image_shape) -> bool:
    return tuple(image_shape)[-1] == 1


def jscc_model_name(role: str, channel_type: str, k: int,
                    image_shape: Sequence[int] = (32, 32, 3)) -> str:
    """The name of the JSCC model of a role ("user" or "interferer") trained on a channel with
    k symbols, for images of shape (H, W, C): 32x32 RGB is CIFAR-10, grey images are MNIST."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    data = "mnist_" if _grey(image_shape) else ""
    return f"jscc_{role}_{data}{channel_type}_k{int(k)}"


def jscc_fixed_snr_name(channel_type: str, k: int, snr_db: float) -> str:
    """The user's JSCC model trained at one SNR only (the "DeepJSCC@SNR" baseline of the DNSC
    paper), beside the SNR-adaptive one of jscc_model_name."""
    if float(snr_db) != int(snr_db):
        raise ValueError(f"the fixed training SNR is a whole number of dB, got {snr_db}")
    return f"{jscc_model_name('user', channel_type, k)}_snr{int(snr_db)}"


def cdiff_name(system: str, channel_type: str, k: int) -> str:
    """A CDiff system (nets/cdiff.py): "cdiff" (encoder + conditional diffusion decoder), "ae"
    (the matched autoencoder) or "vae" (the VAE baseline), trained through `channel_type`."""
    if system not in CDIFF_SYSTEMS:
        raise ValueError(f"system must be one of {tuple(CDIFF_SYSTEMS)}, got {system!r}")
    return f"cdiff_{'' if system == 'cdiff' else system + '_'}{channel_type}_k{int(k)}"


def classifier_name(dataset: str = "cifar10") -> str:
    """The small classifier of `dataset` (nets/classifier.py): the offline semantic metrics'
    network (core/semantic.py) and JSCNA-AD's patch importance."""
    if dataset not in CLASSIFIER_DATASETS:
        raise ValueError(f"dataset must be one of {CLASSIFIER_DATASETS}, got {dataset!r}")
    return f"classifier_{dataset}"


def prior_name(role: str, channel_type: str, k: int) -> str:
    """The name of the diffusion prior of the user's latents or of the interference."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return f"prior_{role}_{channel_type}_k{int(k)}"


def gaussian_name(role: str, channel_type: str, k: int) -> str:
    """The name of the full-covariance Gaussian fitted to the user's latents or to the
    interference (apps/fit_gaussian.py), the control of the prior of the same role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return f"gauss_{role}_{channel_type}_k{int(k)}"


def vae_prior_name(vae: str) -> str:
    """The diffusion prior of a KL-VAE's per-image-normalised latents (dnsc's de-noiser); beside
    the VAE where that is a path."""
    return str(Path(vae).with_name(f"prior_{Path(vae).name}"))


def vae_gaussian_name(vae: str) -> str:
    """The full-covariance Gaussian fitted to the same latents (the de-noiser's control); beside
    the VAE where that is a path."""
    return str(Path(vae).with_name(f"gauss_{Path(vae).name}"))


def pixel_prior_name(dataset: str = "cifar10") -> str:
    """The pixel-space diffusion prior of `dataset` (diffusion/pixel_prior.py): jscna-ad-pixel's."""
    if dataset not in VAE_DATASETS:
        raise ValueError(f"dataset must be one of {VAE_DATASETS}, got {dataset!r}")
    return f"pixel_prior_{dataset}"


def vae_name(dataset: str, k: int) -> str:
    """The name of the KL-VAE (nets/kl_vae.py) trained on `dataset` whose latent is k complex
    symbols: the autoencoder the `dnsc` and JSCNA-AD schemes send the latent of."""
    if dataset not in VAE_DATASETS:
        raise ValueError(f"dataset must be one of {VAE_DATASETS}, got {dataset!r}")
    return f"vae_{dataset}_k{int(k)}"


def shipped(kind: Optional[str] = None) -> Dict[str, Path]:
    """{name: path without extension} of the complete (sidecar + weights) checkpoints shipped in
    CHECKPOINT_DIR, of one kind ("jscc", "dit-prior") or of every kind (None)."""
    if kind is None:
        prefixes = tuple(KIND_PREFIX.values())
    elif kind in KIND_PREFIX:
        prefixes = (KIND_PREFIX[kind],)
    else:  # a kind without a naming convention: ask the sidecars
        prefixes = ("",)
    out = {}
    for sidecar in sorted(CHECKPOINT_DIR.glob("*.json")):
        if not sidecar.stem.startswith(prefixes) or not sidecar.with_suffix(".safetensors").exists():
            continue
        if sidecar.stem.endswith(RESUME_SUFFIX):  # a training run in progress beside the models
            continue
        if kind is not None and _sidecar_kind(sidecar) != kind:   # (kinds may share a prefix)
            continue
        out[sidecar.stem] = sidecar.with_suffix("")
    return out


def _sidecar_kind(sidecar: Path) -> Optional[str]:
    try:
        return json.loads(sidecar.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


# (a pixel prior is the source model of the pixel-space schemes: its code is the pixels themselves)
AUTOENCODER_KINDS = ("jscc", "kl-vae", "cdiff", "cdiff-autoencoder", "pixel-prior")


def autoencoder_kind(name: str) -> str:
    """The kind of the autoencoder checkpoint `name` ("jscc", "kl-vae", ..., from its sidecar);
    CheckpointError for a missing file or another kind."""
    sidecar = checkpoint_paths(checkpoint_for(name))[1]
    kind = _sidecar_kind(sidecar)
    if kind not in AUTOENCODER_KINDS:
        raise CheckpointError(f"{sidecar}: a {kind or 'unreadable'} checkpoint, not an autoencoder "
                              f"({' or '.join(AUTOENCODER_KINDS)})")
    return kind


def cdiff_system(name: str) -> str:
    """The CDiff system ("cdiff", "ae" or "vae", from its sidecar) of checkpoint `name`;
    CheckpointError for a missing file or a checkpoint that is not a CDiff system."""
    sidecar = checkpoint_paths(checkpoint_for(name))[1]
    try:
        doc = json.loads(sidecar.read_text())
        kind, system = doc.get("kind"), doc["config"]["system"]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        kind, system = _sidecar_kind(sidecar), None
    if kind not in ("cdiff", "cdiff-autoencoder") or CDIFF_SYSTEMS.get(system) != kind:
        raise CheckpointError(f"{sidecar}: a {kind or 'unreadable'} checkpoint, not a CDiff system "
                              f"({', '.join(CDIFF_SYSTEMS)})")
    return system


def list_models() -> List[str]:
    """The shipped JSCC models (the diffusion priors are listed by list_priors)."""
    return list(shipped("jscc"))


def list_priors() -> List[str]:
    """The shipped diffusion priors."""
    return list(shipped("dit-prior"))


def prior_for(role: str, channel_type: str, k: int) -> Path:
    """The shipped diffusion prior of the user's latents ("user", trained on the user encoder
    for that channel) or of the interference ("interferer", channel gain folded in)."""
    return prior_path(prior_name(role, channel_type, k))


def prior_path(name: str) -> Path:
    """The shipped diffusion prior `name` (path without extension); CheckpointError if absent."""
    if Path(name).parent != Path("."):   # a prior elsewhere, by path (e.g. beside its KL-VAE)
        return checkpoint_for(name)
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
    return 98 if _grey(image_shape) else 512


# One interferer per k: the interference is another JSCC system, whatever our channel.
INTERFERER_CHANNEL = "awgn"


def jscc_model_for(role: str, channel_type: str, k: int, image_shape: Sequence[int] = (32, 32, 3)) -> str:
    """The JSCC model a role uses on a channel (and whose latents its prior learns): the user's
    model for that channel; the interferer's one model (AWGN-trained) whatever the channel."""
    return jscc_model_name(role, INTERFERER_CHANNEL if role == "interferer" else channel_type, k,
                           image_shape)


def default_models(channel_type: str, k: int, image_shape=(32, 32, 3)) -> Tuple[str, str]:
    """(user, interferer) model names for a channel, symbol count and image shape (H, W, C)."""
    return (jscc_model_name("user", channel_type, k, image_shape),
            jscc_model_for("interferer", channel_type, k, image_shape))
