"""Offline semantic and perceptual metrics from the module's shipped CIFAR-10 classifier
(GNU Radio-free). These are MODULE-SPECIFIC PROXIES: they work where LPIPS cannot (its backbone
downloads at first use), they are not LPIPS and not FID, and they are not comparable with
numbers from other papers; compare schemes with them only within this module.

All take float images (N, 3, 32, 32) in [0, 1] (the received and the sent image); other shapes
(MNIST, larger images) give None: the classifier only knows CIFAR-10.

- `accuracy` (per image 1 or 0; a row reports the mean): the classifier's top-1 class of the
  received image agrees with its top-1 class of the sent image. Needs no labels, so it works on
  any image set; it measures whether the meaning survived, not whether the classifier is right.
- `label_accuracy` (per image 1 or 0): the top-1 class of the received image is the true label
  (where the data has labels): the "semantic fidelity" of semantic-communication papers, capped
  by the classifier's own test accuracy (in its checkpoint's provenance).
- `feature_dist` (per image, >= 0; 0 for identical images): LPIPS's construction without its
  learned linear weights. For each of the classifier's feature maps (three convolutional stages
  and the patch tokens after each transformer block), unit-normalise every spatial position's
  channel vector, take the squared distance between received and sent, average over positions;
  then average over the layers. Each term lies in [0, 4].
- `frechet_dist` (per set of images): the Fréchet distance between Gaussians fitted to the
  classifier's embeddings (the normalised class token) of the received and of the sent images,
  ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2). FID's formula in other
  features; biased upwards for small sets (report the image count beside it).

A missing classifier checkpoint gives None and one warning, as LPIPS does offline.
"""

from typing import Dict, List, Optional

import numpy as np
import torch

from .metrics import LazyNet
from .models import classifier_name

CLASSIFIER = classifier_name("cifar10")   # the shipped checkpoint these metrics read
IMAGE_SHAPE = (3, 32, 32)
BATCH = 500
PROXY_NOTE = ("accuracy, label_accuracy, feature_dist and frechet_dist are module-specific proxies "
              f"computed with the shipped CIFAR-10 classifier {CLASSIFIER} (not LPIPS, not FID; "
              "CIFAR-shaped images only, else null)")


def _load_classifier():
    from ..nets.classifier import load_classifier
    return load_classifier(CLASSIFIER)[0]


def _expected_errors():
    from .checkpoint import CheckpointError
    return (CheckpointError,)


_CLASSIFIER = LazyNet(_load_classifier, "semantic metrics", _expected_errors())


def applies(images: torch.Tensor) -> bool:
    return images.ndim == 4 and tuple(images.shape[1:]) == IMAGE_SHAPE


@torch.no_grad()
def classifier_features(images: torch.Tensor, model=None) -> Optional[Dict]:
    """{"maps": [per layer (N, C, h, w)], "embedding": (N, D), "logits": (N, classes)} of a batch,
    in chunks of BATCH images; None when the images are not CIFAR-shaped or there is no model."""
    if not applies(images):
        return None
    model = model if model is not None else _CLASSIFIER.net(images.device)
    if model is None:
        return None
    parts = []
    for i in range(0, len(images), BATCH):
        f = model.forward_features(images[i:i + BATCH].float())
        parts.append({"maps": f["maps"], "embedding": f["embedding"], "logits": model.logits_from(f)})
    return {"maps": [torch.cat([p["maps"][j] for p in parts]) for j in range(len(parts[0]["maps"]))],
            "embedding": torch.cat([p["embedding"] for p in parts]),
            "logits": torch.cat([p["logits"] for p in parts])}


def _unit(fmap: torch.Tensor) -> torch.Tensor:
    return fmap / fmap.norm(dim=1, keepdim=True).clamp_min(1e-10)


def feature_distance(maps_a: List[torch.Tensor], maps_b: List[torch.Tensor]) -> torch.Tensor:
    """Per image: mean over layers of the position-averaged squared distance of unit-normalised
    channel vectors (LPIPS's form, uniform layer weights)."""
    if len(maps_a) != len(maps_b) or not maps_a:
        raise ValueError("need the same, non-empty list of feature maps for both image sets")
    terms = [(_unit(a.double()) - _unit(b.double())).square().sum(1).flatten(1).mean(1)
             for a, b in zip(maps_a, maps_b)]
    return torch.stack(terms).mean(0)


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (N, D), N >= 2 each.
    The trace of the matrix square root is taken exactly as sum sqrt(eig(S_a^1/2 S_b S_a^1/2))
    (symmetric PSD, so eigh; tiny negative eigenvalues from rounding are clipped)."""
    a, b = np.asarray(emb_a, np.float64), np.asarray(emb_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two (N >= 2, D) embedding sets of one D, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    trace_root = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(np.square(mu_a - mu_b).sum() + np.trace(s_a) + np.trace(s_b) - 2 * trace_root)


def semantic_metrics(x: torch.Tensor, ref: torch.Tensor, labels: Optional[np.ndarray] = None) -> Dict:
    """Per-image lists `accuracy`, `label_accuracy` (None without labels) and `feature_dist`,
    and the set's `frechet_dist` (None for fewer than 2 images); every value None where the
    metrics do not apply (see the module docstring)."""
    if x.shape != ref.shape:
        raise ValueError(f"received and sent batches differ in shape: {tuple(x.shape)} vs {tuple(ref.shape)}")
    if labels is not None and len(labels) != len(x):
        raise ValueError(f"{len(labels)} labels for {len(x)} images")
    none = {"accuracy": None, "label_accuracy": None, "feature_dist": None, "frechet_dist": None}
    fx = classifier_features(x)
    if fx is None or len(x) == 0:
        return none
    fr = classifier_features(ref)
    top_x, top_r = fx["logits"].argmax(1), fr["logits"].argmax(1)
    out = {"accuracy": (top_x == top_r).double().tolist(),
           "label_accuracy": None if labels is None else
           (top_x.cpu().numpy() == np.asarray(labels)).astype(np.float64).tolist(),
           "feature_dist": feature_distance(fx["maps"], fr["maps"]).tolist(),
           "frechet_dist": None}
    if len(x) >= 2:
        out["frechet_dist"] = frechet_distance(fx["embedding"].cpu().numpy(), fr["embedding"].cpu().numpy())
    return out
