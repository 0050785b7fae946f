"""In-process inference backend (CPU, or CUDA when present)."""

import threading
from typing import Dict

import numpy as np
import torch

from ..core.checkpoint import load_checkpoint
from ..core.data import to_tensor, to_uint8
from ..core.models import checkpoint_for
from ..nets.cdiff import CDiffSystem, encode_images
from ..diffusion.pixel_prior import PixelPrior, from_pixels, to_pixels
from ..nets.kl_vae import KLVAE


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class LocalBackend:
    """Runs the shipped models in this process.

    encode(model, images uint8 (N, H, W, C), snr_db) -> latents float32 (N, 2k)
    decode(model, latents float32 (N, 2k), snr_db) -> images uint8 (N, H, W, C)
    info(model) -> dict with image_shape (H, W, C), k, cbr, channel
    `model` is a JSCC model, a KL-VAE (nets/kl_vae.py: its unit-variance latent flattened
    channel-major; the SNR is not used) or a CDiff system (nets/cdiff.py: its encoder's reals;
    only the autoencoder baselines decode here, CDiff itself through its scheme). Models load on first use; a missing or broken
    checkpoint raises CheckpointError.
    """

    def __init__(self, device: str = ""):
        self.device = torch.device(device or default_device())
        self._loaded: Dict[tuple, tuple] = {}  # (kind, name) -> (model on the device, config, sidecar)
        self._lock = threading.Lock()
        self._kinds: Dict[str, str] = {}   # autoencoder name -> its checkpoint kind

    def _load(self, name: str, kind: str):
        """(model on this device, its config, its sidecar) of the checkpoint `name` of `kind`,
        loaded once. No gradients w.r.t. the weights: PiGDM/DPS differentiate w.r.t. inputs."""
        with self._lock:
            if (kind, name) not in self._loaded:
                from ..core.models import prior_path  # a missing prior's error says how to train one
                path = prior_path(name) if kind == "dit-prior" else checkpoint_for(name)
                model, cfg, doc = load_checkpoint(path, kind)
                self._loaded[kind, name] = (model.requires_grad_(False).to(self.device), cfg, doc)
            return self._loaded[kind, name]

    def _get(self, name: str):
        """A JSCC model or a KL-VAE, by its sidecar's kind (read once per name)."""
        from ..core.models import autoencoder_kind
        kind = self._kinds.get(name)
        if kind is None:
            kind = self._kinds[name] = autoencoder_kind(name)
        return self._load(name, kind)

    def info(self, name: str) -> dict:
        _, cfg, doc = self._get(name)
        c, h, w = cfg.image_shape
        return {"model": name, "image_shape": (h, w, c), "k": cfg.k, "cbr": cfg.cbr,
                "channel": getattr(cfg, "channel_type", None), "role": getattr(cfg, "role", "autoencoder")}

    @torch.no_grad()
    def encode(self, name: str, images: np.ndarray, snr_db: float) -> np.ndarray:
        model, cfg, _ = self._get(name)
        c, h, w = cfg.image_shape
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (h, w, c) or images.dtype != np.uint8:
            raise ValueError(f"model {name} takes uint8 images of shape (N, {h}, {w}, {c}), "
                             f"got {images.dtype} {images.shape}")
        x = to_tensor(images).to(self.device)
        if isinstance(model, KLVAE):
            return model.encode(x).reshape(len(x), -1).float().cpu().numpy()
        if isinstance(model, PixelPrior):   # pixel-space schemes send the pixels: the identity "code"
            return to_pixels(images).numpy()
        if isinstance(model, CDiffSystem):
            return encode_images(model, x).float().cpu().numpy()
        return model.encode(x, float(snr_db)).float().cpu().numpy()

    @torch.no_grad()
    def decode(self, name: str, latents: np.ndarray, snr_db: float) -> np.ndarray:
        model, cfg, _ = self._get(name)
        latents = np.asarray(latents, dtype=np.float32)
        if latents.ndim != 2 or latents.shape[1] != 2 * cfg.k:
            raise ValueError(f"model {name} decodes latents of shape (N, {2 * cfg.k}), "
                             f"got {latents.shape}")
        x = torch.from_numpy(latents).to(self.device)
        if isinstance(model, CDiffSystem):
            if cfg.system == "cdiff":
                raise ValueError(f"{name} decodes by reverse diffusion: receive through the cdiff scheme")
            return to_uint8((model.decoder(x) + 1).cpu() / 2)
        if isinstance(model, KLVAE):
            return to_uint8(model.decode(x.reshape(len(x), *cfg.latent_shape)).cpu())
        if isinstance(model, PixelPrior):
            return from_pixels(x, cfg.image_shape)
        return to_uint8(model.decode(x, float(snr_db)).cpu())

    # ---- what schemes call besides encode and decode (schemes.base: `models`)
    def prior(self, name: str):
        """The diffusion prior `name` on this device."""
        return self._load(name, "dit-prior")[0]

    def prior_schedule(self, name: str):
        """The noise schedule the prior `name` was trained with (its checkpoint's, as data)."""
        from ..diffusion.dit import schedule_from_data
        return schedule_from_data(self._load(name, "dit-prior")[2]["schedule"])

    def model(self, name: str, kind: str):
        """A checkpoint of any other kind (e.g. "gaussian-fit") on this device, loaded once."""
        return self._load(name, kind)[0]

    def sidecar(self, name: str, kind: str) -> dict:
        """The sidecar of that checkpoint (e.g. a CDiff system's schedule), loaded once."""
        return self._load(name, kind)[2]

    # ---- schemes
    def transmit(self, scheme: str, images: np.ndarray, tx):
        """schemes.Transmission of the registered scheme `scheme` for uint8 images (N, H, W, C)
        and a schemes.TxContext."""
        from .. import schemes
        s = schemes.check(scheme, tx.options, tx.channel_type)
        images = np.asarray(images)
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[0] < 1:
            raise ValueError(f"transmit needs uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
        return s.transmit(self, images, tx)

    @torch.no_grad()
    def receive(self, scheme: str, obs):
        """schemes.Result of the registered scheme `scheme` for a schemes.Observation."""
        from dataclasses import replace
        from .. import schemes
        s = schemes.check(scheme, obs.options, obs.channel_type)
        obs = replace(obs, zhat=obs.zhat.to(self.device))
        return s.receive(self, obs)


_SHARED: Dict[str, LocalBackend] = {}
_SHARED_LOCK = threading.Lock()


def get_backend(server: str = "", device: str = "", timeout: float = 10.0):
    """The backend for a block's `server` parameter: "" = in-process (shared per device),
    "tcp://HOST:PORT" = the inference side process there (shared per address; `timeout`
    applies when this call creates it). For a CurveZMQ server append the key files:
    "tcp://HOST:PORT?server_key=keys/server.key&client_key=keys/client.key_secret"."""
    with _SHARED_LOCK:
        key = server or (device or default_device())
        if key not in _SHARED:
            if server:
                from .client import ServerBackend
                address, curve = parse_server(server)
                _SHARED[key] = ServerBackend(address, timeout=timeout, **curve)
            else:
                _SHARED[key] = LocalBackend(key)
        return _SHARED[key]


def parse_server(server: str):
    """(address, ServerBackend CurveZMQ kwargs) of a server string; ValueError naming the
    problem (unknown field, one key without the other, unreadable key file)."""
    address, _, query = server.partition("?")
    if not address.startswith(("tcp://", "ipc://")):
        raise ValueError(f"server {server!r}: expected tcp://HOST:PORT (or ipc://PATH)")
    if not query:
        return address, {}
    fields = {}
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if not sep or name not in ("server_key", "client_key") or not value or name in fields:
            raise ValueError(f"server {server!r}: expected ?server_key=FILE&client_key=FILE, got {part!r}")
        fields[name] = value
    if set(fields) != {"server_key", "client_key"}:
        raise ValueError(f"server {server!r}: CurveZMQ needs both server_key (the server's public "
                         "key file) and client_key (this client's secret key file)")
    import zmq.auth
    try:
        server_public, _ = zmq.auth.load_certificate(fields["server_key"])
        client_public, client_secret = zmq.auth.load_certificate(fields["client_key"])
    except (OSError, ValueError) as exc:
        raise ValueError(f"server {server!r}: cannot read the key files ({exc})") from None
    if client_secret is None:
        raise ValueError(f"server {server!r}: {fields['client_key']} holds no secret key "
                         "(give the client's .key_secret file)")
    return address, {"server_public_key": server_public, "client_keys": (client_public, client_secret)}
