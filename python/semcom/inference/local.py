"""In-process inference backend (CPU, or CUDA when present)."""

import threading
from typing import Dict

import numpy as np
import torch

from ..core.checkpoint import load_checkpoint
from ..core.data import to_tensor, to_uint8
from ..core.models import checkpoint_for


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class LocalBackend:
    """Runs the shipped models in this process.

    encode(model, images uint8 (N, H, W, C), snr_db) -> latents float32 (N, 2k)
    decode(model, latents float32 (N, 2k), snr_db) -> images uint8 (N, H, W, C)
    info(model) -> dict with image_shape (H, W, C), k, cbr, channel
    Models load on first use; a missing or broken checkpoint raises CheckpointError.
    """

    def __init__(self, device: str = ""):
        self.device = torch.device(device or default_device())
        self._models: Dict[str, tuple] = {}
        self._lock = threading.Lock()

    def _get(self, name: str):
        with self._lock:
            if name not in self._models:
                model, cfg, doc = load_checkpoint(checkpoint_for(name))
                self._models[name] = (model.to(self.device), cfg, doc)
            return self._models[name]

    def info(self, name: str) -> dict:
        _, cfg, doc = self._get(name)
        c, h, w = cfg.image_shape
        return {"model": name, "image_shape": (h, w, c), "k": cfg.k, "cbr": cfg.cbr,
                "channel": cfg.channel_type, "role": cfg.role}

    @torch.no_grad()
    def encode(self, name: str, images: np.ndarray, snr_db: float) -> np.ndarray:
        model, cfg, _ = self._get(name)
        c, h, w = cfg.image_shape
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (h, w, c) or images.dtype != np.uint8:
            raise ValueError(f"model {name} takes uint8 images of shape (N, {h}, {w}, {c}), "
                             f"got {images.dtype} {images.shape}")
        x = to_tensor(images).to(self.device)
        return model.encode(x, float(snr_db)).float().cpu().numpy()

    @torch.no_grad()
    def decode(self, name: str, latents: np.ndarray, snr_db: float) -> np.ndarray:
        model, cfg, _ = self._get(name)
        latents = np.asarray(latents, dtype=np.float32)
        if latents.ndim != 2 or latents.shape[1] != 2 * cfg.k:
            raise ValueError(f"model {name} decodes latents of shape (N, {2 * cfg.k}), "
                             f"got {latents.shape}")
        x = torch.from_numpy(latents).to(self.device)
        return to_uint8(model.decode(x, float(snr_db)).cpu())


_SHARED: Dict[str, LocalBackend] = {}
_SHARED_LOCK = threading.Lock()


def get_backend(server: str = "", device: str = "", timeout: float = 10.0):
    """The backend for a block's `server` parameter: "" = in-process (shared per device),
    "tcp://HOST:PORT" = the inference side process there (shared per address; `timeout`
    applies when this call creates it)."""
    with _SHARED_LOCK:
        key = server or (device or default_device())
        if key not in _SHARED:
            if server:
                from .client import ServerBackend
                _SHARED[key] = ServerBackend(server, timeout=timeout)
            else:
                _SHARED[key] = LocalBackend(key)
        return _SHARED[key]
