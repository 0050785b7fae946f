"""The offline semantic metrics (core/semantic.py) and their classifier (nets/classifier.py):
closed forms for the Fréchet distance and the feature distance, the classifier's attention and
checkpoint, and the shipped classifier against chance and its own provenance."""

import json
import math

import numpy as np
import pytest
import torch

from gnuradio.semcom.core import metrics, semantic
from gnuradio.semcom.core.checkpoint import CheckpointError
from gnuradio.semcom.core.data import load_images, to_tensor
from gnuradio.semcom.core.models import checkpoint_for, classifier_name
from gnuradio.semcom.nets import classifier as cls_net


def tiny_classifier(depth=1):
    torch.manual_seed(0)
    return cls_net.SemanticClassifier(cls_net.ClassifierConfig(stem_widths=(4, 8, 16), depth=depth, heads=2)).eval()


# ------------------------------------------------------------------ Fréchet distance: closed forms

def test_frechet_distance_of_a_set_with_itself_is_zero_and_of_a_shift_is_the_squared_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 6)) @ rng.standard_normal((6, 6))
    assert abs(semantic.frechet_distance(a, a)) < 1e-9
    shift = rng.standard_normal(6)
    assert semantic.frechet_distance(a, a + shift) == pytest.approx(np.square(shift).sum(), rel=1e-9)


def test_frechet_distance_of_a_scaled_set_matches_its_closed_form():
    # b = s a: S_b = s^2 S_a, (S_a^1/2 S_b S_a^1/2)^1/2 = s S_a, so
    # FD = (1 - s)^2 (|mu_a|^2 + tr S_a).
    rng = np.random.default_rng(1)
    a = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 5)) + 0.7
    s = 1.8
    expected = (1 - s) ** 2 * (np.square(a.mean(0)).sum() + np.trace(np.cov(a, rowvar=False)))
    assert semantic.frechet_distance(a, s * a) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_scipy_sqrtm_on_general_covariances():
    from scipy import linalg
    rng = np.random.default_rng(2)
    a = rng.standard_normal((400, 8)) @ rng.standard_normal((8, 8))
    b = rng.standard_normal((400, 8)) @ rng.standard_normal((8, 8)) + 0.3
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    oracle = (np.square(a.mean(0) - b.mean(0)).sum() + np.trace(s_a + s_b)
              - 2 * np.trace(linalg.sqrtm(s_a @ s_b)).real)
    assert semantic.frechet_distance(a, b) == pytest.approx(oracle, rel=1e-7)


def test_frechet_distance_refuses_too_few_or_mismatched_embeddings():
    with pytest.raises(ValueError, match="N >= 2"):
        semantic.frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="N >= 2"):
        semantic.frechet_distance(np.zeros((5, 4)), np.zeros((5, 3)))


# ------------------------------------------------------------------ the feature distance

def test_feature_distance_closed_forms():
    rng = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 5, 4, 4, generator=rng), torch.randn(3, 7, 2, 2, generator=rng)]
    torch.testing.assert_close(semantic.feature_distance(a, a), torch.zeros(3, dtype=torch.float64))
    # unit-normalised per position: a positive rescaling of a position's channel vector is free,
    # the opposite vector is the farthest (|u - (-u)|^2 = 4 in every layer)
    scale = [torch.rand(3, 1, m.shape[2], m.shape[3], generator=rng) + 0.1 for m in a]
    torch.testing.assert_close(semantic.feature_distance(a, [m * s for m, s in zip(a, scale)]),
                               torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(semantic.feature_distance(a, [-m for m in a]), torch.full((3,), 4.0, dtype=torch.float64))
    # one layer: the mean over positions of |u - v|^2 = 2 - 2 cos
    b = [torch.randn(3, 5, 4, 4, generator=rng)]
    ua, ub = a[0] / a[0].norm(dim=1, keepdim=True), b[0] / b[0].norm(dim=1, keepdim=True)
    expected = (2 - 2 * (ua * ub).sum(1)).flatten(1).mean(1).double()
    torch.testing.assert_close(semantic.feature_distance(a[:1], b), expected)
    with pytest.raises(ValueError, match="same, non-empty"):
        semantic.feature_distance(a, a[:1])


# ------------------------------------------------------------------ the classifier network

def test_classifier_attention_is_a_distribution_over_the_patches_and_shapes_are_checked():
    model = tiny_classifier(depth=2)
    x = torch.rand(4, 3, 32, 32)
    f = model.forward_features(x)
    assert f["attention"].shape == (4, 8, 8)
    torch.testing.assert_close(f["attention"].sum((1, 2)), torch.ones(4))
    assert (f["attention"] >= 0).all()
    assert [m.shape[1:] for m in f["maps"]] == [(4, 32, 32), (8, 16, 16), (16, 8, 8), (16, 8, 8), (16, 8, 8)]
    assert model(x).shape == (4, 10)
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        model(torch.rand(4, 1, 28, 28))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="divisible"):
        cls_net.ClassifierConfig(stem_widths=(4, 8, 15), heads=2)


def test_classifier_checkpoint_round_trip(tmp_path):
    model = tiny_classifier()
    cls_net.save_classifier(tmp_path / "c", model, {"training_command": "test"})
    loaded, doc = cls_net.load_classifier(tmp_path / "c")
    assert doc["kind"] == "classifier" and doc["image_shape"] == [3, 32, 32]
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(CheckpointError, match="not found"):
        cls_net.load_classifier(tmp_path / "missing")


# ------------------------------------------------------------------ metrics through image_metrics

def test_semantic_metrics_do_not_apply_to_other_shapes_and_check_their_inputs():
    grey = torch.rand(3, 1, 28, 28)
    out = semantic.semantic_metrics(grey, grey)
    assert out == {"accuracy": None, "label_accuracy": None, "feature_dist": None, "frechet_dist": None}
    m = metrics.image_metrics(grey, grey, with_lpips=False)
    assert all(m[key] is None for key in metrics.SEMANTIC_KEYS)
    with pytest.raises(ValueError, match="labels"):
        semantic.semantic_metrics(torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32), labels=np.zeros(2))
    off = metrics.image_metrics(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), with_lpips=False,
                                with_semantic=False)
    assert all(off[key] is None for key in metrics.SEMANTIC_KEYS)


@pytest.fixture(scope="module")
def cifar_held_out():
    data = load_images("cifar10_test[0:500]")
    return to_tensor(data.images), data.labels


def test_identical_images_score_full_agreement_and_zero_distances(cifar_held_out):
    x, labels = cifar_held_out
    out = metrics.image_metrics(x[:64], x[:64], with_lpips=False, labels=labels[:64])
    assert out["accuracy"] == [1.0] * 64
    assert max(out["feature_dist"]) < 1e-12
    # 0 up to rounding: float64 eigenvalues of a rank-deficient (64 images, 128 dims) covariance,
    # whose ~1e-16-relative errors the square roots amplify to ~1e-8 of its trace
    emb = semantic.classifier_features(x[:64])["embedding"].double().numpy()
    assert abs(out["frechet_dist"]) < 1e-6 * np.trace(np.cov(emb, rowvar=False))
    assert set(out["label_accuracy"]) <= {0.0, 1.0}


def test_the_metrics_worsen_with_noise(cifar_held_out):
    """More pixel noise: agreement falls, the feature and Fréchet distances grow (64 images,
    noise std 0.03 -> 0.1 -> 0.3: steps far above the metrics' sampling spread)."""
    x = cifar_held_out[0][:64]
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    rows = [semantic.semantic_metrics((x + s * noise).clamp(0, 1), x) for s in (0.03, 0.1, 0.3)]
    acc = [np.mean(r["accuracy"]) for r in rows]
    dist = [np.mean(r["feature_dist"]) for r in rows]
    fd = [r["frechet_dist"] for r in rows]
    assert acc[0] >= acc[1] > acc[2]
    assert dist[0] < dist[1] < dist[2]
    assert fd[0] < fd[1] < fd[2]


def test_shipped_classifier_beats_chance_and_matches_its_recorded_test_accuracy(cifar_held_out):
    """On 500 test images: far above chance (0.1; binomial std 0.013), and within 4 binomial
    standard deviations of the test accuracy its training recorded on all 10 000 test images."""
    x, labels = cifar_held_out
    model, doc = cls_net.load_classifier(classifier_name("cifar10"))
    with torch.no_grad():
        acc = float((model(x).argmax(1).numpy() == labels).mean())
    recorded = doc["provenance"]["test_accuracy"]["value"]
    assert doc["provenance"]["test_accuracy"]["images"] == 10000
    assert acc > 0.1 + 10 * math.sqrt(0.1 * 0.9 / len(x))
    assert abs(acc - recorded) <= 4 * math.sqrt(recorded * (1 - recorded) / len(x))
    sidecar = json.loads(checkpoint_for(classifier_name("cifar10")).with_suffix(".json").read_text())
    assert sidecar["provenance"]["training_command"].startswith("python apps/train_classifier.py")


def test_a_network_that_cannot_load_is_null_with_one_warning_and_one_attempt(caplog):
    calls = []

    def load():
        calls.append(1)
        raise CheckpointError("classifier_x.safetensors: checkpoint weights file not found")

    lazy = metrics.LazyNet(load, "semantic metrics", (CheckpointError,))
    with caplog.at_level("WARNING", logger="semcom.metrics"):
        assert lazy.net("cpu") is None and lazy.net("cpu") is None
    assert len(calls) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "semantic metrics unavailable, reported as null (CheckpointError: classifier_x.safetensors: "
        "checkpoint weights file not found)"]
    with pytest.raises(RuntimeError):   # an unexpected error is not swallowed
        metrics.LazyNet(lambda: (_ for _ in ()).throw(RuntimeError("bug")), "x", (CheckpointError,)).net("cpu")
