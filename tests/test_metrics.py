"""Tests of losslab.metrics: closed forms, invariants and independent references."""

from __future__ import annotations

import hashlib
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from numpy.testing import assert_allclose
from torch import nn

from losslab.errors import UserError
from losslab.metrics import (
    METRIC_INFO,
    ClassifierNet,
    class_histogram_stats,
    evaluate,
    fid,
    get_feature_net,
    ks_1d,
    mode_stats,
    primary_metric,
    sliced_wasserstein,
    wasserstein1_1d,
    wasserstein_ot,
)
from losslab.metrics import features as features_mod
from losslab.metrics.features import get_classifier_net


pytestmark = pytest.mark.usefixtures("single_thread")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def ring_modes(k: int = 8, radius: float = 2.0) -> np.ndarray:
    angles = 2 * np.pi * np.arange(k) / k  # k distinct angles
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


# ----------------------------------------------------------------------------- Wasserstein


def test_w1_between_unit_gaussians_three_apart_is_three():
    # W1(N(0,1), N(3,1)) = 3; the empirical error is O(1/sqrt(n)) ~ 0.01 at n = 20,000.
    x = rng(0).normal(0.0, 1.0, 20_000)
    y = rng(1).normal(3.0, 1.0, 20_000)
    assert_allclose(wasserstein1_1d(x, y), 3.0, atol=0.05)


def test_w1_1d_equals_exact_ot_equals_sorted_difference():
    x, y = rng(0).normal(size=300), rng(1).standard_t(3, size=300)
    sorted_formula = np.mean(np.abs(np.sort(x) - np.sort(y)))
    assert_allclose(wasserstein1_1d(x, y), sorted_formula, rtol=1e-10)
    assert_allclose(wasserstein_ot(x, y), sorted_formula, rtol=1e-9)
    # (N, 1) tensors are the same 1-D samples.
    assert_allclose(wasserstein_ot(torch.tensor(x)[:, None], torch.tensor(y)[:, None]), sorted_formula, rtol=1e-9)


def test_w1_1d_unequal_sizes_matches_exact_ot():
    x, y = rng(2).normal(size=200), rng(3).exponential(size=300)
    assert_allclose(wasserstein1_1d(x, y), wasserstein_ot(x, y), rtol=1e-9)


def test_w2_1d_is_root_mean_square_of_sorted_difference():
    x, y = rng(4).normal(size=250), rng(5).uniform(-2, 2, size=250)
    assert_allclose(wasserstein_ot(x, y, p=2), np.sqrt(np.mean((np.sort(x) - np.sort(y)) ** 2)), rtol=1e-9)


@pytest.mark.parametrize("p", [1, 2])
def test_translation_by_unit_vector_moves_wasserstein_by_one(p):
    # Translation is an optimal map, so W_p(x, x + v) = ||v|| exactly; W_p(x, x) = 0.
    x = rng(6).normal(size=(400, 2)) * [1.0, 3.0]
    v = np.array([0.6, -0.8])  # ||v|| = 1
    assert_allclose(wasserstein_ot(x, x + v, p=p), 1.0, rtol=1e-9)
    assert_allclose(wasserstein_ot(x, x, p=p), 0.0, atol=1e-12)


def test_wasserstein_ot_rejects_bad_inputs():
    with pytest.raises(ValueError):
        wasserstein_ot(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        wasserstein_ot(np.zeros((3, 2)), np.zeros((3, 2)), p=0.5)
    with pytest.raises(ValueError):
        wasserstein1_1d(np.zeros((3, 2)), np.zeros(3))


def test_sliced_wasserstein_invariances():
    x, y = rng(7).normal(size=(300, 3)), rng(8).normal(size=(300, 3)) + [1.0, 0.0, 0.5]
    v = np.array([5.0, -2.0, 1.0])
    base = sliced_wasserstein(x, y, seed=3)
    assert_allclose(sliced_wasserstein(x, x, seed=3), 0.0, atol=1e-12)
    assert_allclose(sliced_wasserstein(y, x, seed=3), base, rtol=1e-10)  # symmetric
    assert_allclose(sliced_wasserstein(x + v, y + v, seed=3), base, rtol=1e-9)  # common translation
    assert_allclose(sliced_wasserstein(2.5 * x, 2.5 * y, seed=3), 2.5 * base, rtol=1e-9)  # homogeneous


def test_sliced_wasserstein_in_one_dimension_is_exact_w2():
    x, y = rng(9).normal(size=200), rng(10).normal(1.0, 2.0, size=200)
    w2 = np.sqrt(np.mean((np.sort(x) - np.sort(y)) ** 2))
    assert_allclose(sliced_wasserstein(x[:, None], y[:, None], n_projections=10), w2, rtol=1e-9)


def test_sliced_wasserstein_of_a_translation():
    # SW_2^2(x, x + v) = E_theta[(theta . v)^2] = ||v||^2 / d for theta uniform on S^{d-1}.
    # d = 2, ||v|| = 1: SW_2 = sqrt(1/2); Monte Carlo sd of SW_2 with 2,000 slices is about 0.006.
    x = rng(11).normal(size=(200, 2))
    assert_allclose(sliced_wasserstein(x, x + [1.0, 0.0], n_projections=2000, seed=0), math.sqrt(0.5), atol=0.03)


def test_ks_matches_a_direct_computation_and_scipy():
    x, y = rng(12).normal(size=150), rng(13).normal(0.3, 1.0, size=210)
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(np.sort(x), grid, side="right") / x.size
    cdf_y = np.searchsorted(np.sort(y), grid, side="right") / y.size
    res = ks_1d(torch.tensor(x), torch.tensor(y)[:, None])
    assert_allclose(res["statistic"], np.max(np.abs(cdf_x - cdf_y)), rtol=1e-12)
    assert_allclose(res["pvalue"], scipy.stats.ks_2samp(x, y).pvalue, rtol=1e-12)
    assert_allclose(ks_1d(x, x + 100.0)["statistic"], 1.0, rtol=0)  # disjoint supports
    assert_allclose(ks_1d(x, x)["statistic"], 0.0, atol=0)


# ----------------------------------------------------------------------------- modes


def test_all_samples_in_one_mode():
    modes = ring_modes(8)
    samples = modes[3] + 0.01 * rng(14).normal(size=(500, 2))
    stats = mode_stats(samples, modes, std=0.02)
    assert stats["modes_covered"] == 1 and stats["num_modes"] == 8
    assert stats["mode_counts"] == [0, 0, 0, 500, 0, 0, 0, 0]
    assert_allclose(stats["reverse_kl"], math.log(8), rtol=1e-12)  # KL(delta_k || uniform) = log K
    assert_allclose(stats["high_quality"], 1.0, rtol=0)


def test_exact_mixture_samples_cover_all_modes():
    # High quality means ||x - mu|| <= 3 std: for isotropic 2-D Gaussians P(chi2_2 <= 9) = 1 - exp(-4.5).
    # Binomial sd at n = 20,000 is 7.4e-4; tolerance 4e-3 (> 5 sd).
    modes, std, n = ring_modes(8), 0.02, 20_000
    r = rng(15)
    k = r.integers(0, 8, size=n)
    samples = modes[k] + std * r.normal(size=(n, 2))
    stats = mode_stats(torch.tensor(samples, dtype=torch.float32), torch.tensor(modes), std)
    assert stats["modes_covered"] == 8
    assert_allclose(stats["high_quality"], 1 - math.exp(-4.5), atol=4e-3)
    # Histogram of 8 uniform counts vs uniform: E[KL] ~ (K - 1) / (2 n) = 1.75e-4.
    assert_allclose(stats["reverse_kl"], 0.0, atol=2e-3)


def test_reverse_kl_uses_the_true_weights():
    modes, std, n = ring_modes(4), 0.05, 40_000
    w = np.array([0.1, 0.2, 0.3, 0.4])
    r = rng(16)
    k = r.choice(4, size=n, p=w)
    samples = modes[k] + std * r.normal(size=(n, 2))
    assert_allclose(mode_stats(samples, modes, std, weights=w)["reverse_kl"], 0.0, atol=2e-3)
    # Against uniform weights the reverse KL is KL(w || uniform) = sum w log(4 w).
    assert_allclose(mode_stats(samples, modes, std)["reverse_kl"], np.sum(w * np.log(4 * w)), atol=3e-3)


def test_no_high_quality_sample_and_min_count():
    modes = ring_modes(4)
    far = np.full((10, 2), 100.0)
    stats = mode_stats(far, modes, std=0.1)
    assert stats["modes_covered"] == 0 and stats["mode_counts"] == [0, 0, 0, 0]
    assert_allclose(stats["high_quality"], 0.0, atol=0)
    assert stats["reverse_kl"] == math.inf
    # 5 samples on mode 0, 1 on mode 1: min_count=2 covers one mode, the default covers two.
    samples = np.concatenate([np.repeat(modes[:1], 5, axis=0), modes[1:2]])
    assert mode_stats(samples, modes, 0.1)["modes_covered"] == 2
    assert mode_stats(samples, modes, 0.1, min_count=2)["modes_covered"] == 1


def test_mode_stats_in_one_dimension_counts_by_threshold():
    modes = np.array([[-4.0], [4.0]])
    samples = np.array([-4.0, -3.0, -1.1, 0.0, 2.0, 4.5])  # std 1, n_std 3: |x - mu| <= 3
    stats = mode_stats(samples, modes, std=1.0)
    # -4, -3, -1.1 are within 3 of -4; 0.0 is 4 from both modes (not high quality); 2.0, 4.5 are near 4.
    assert stats["mode_counts"] == [3, 2]
    assert_allclose(stats["high_quality"], 5 / 6, rtol=1e-12)


# ----------------------------------------------------------------------------- FID


class LinearFeatures(nn.Module):
    """Features = flattened input (known), logits = first K features."""

    def __init__(self, num_features: int, num_classes: int = 2) -> None:
        super().__init__()
        self.num_features = num_features
        self.num_classes = num_classes
        self.name = "linear-test"
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return x.flatten(1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, : self.num_classes]


def closed_form_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))


def test_fid_of_a_set_with_itself_is_zero():
    x = torch.tensor(rng(17).normal(size=(300, 1, 2, 3)), dtype=torch.float32)
    assert_allclose(fid(x, x, LinearFeatures(6)), 0.0, atol=1e-4)


def test_fid_matches_the_gaussian_closed_form():
    r = rng(18)
    d = 5
    a = r.normal(size=(400, d)) @ r.normal(size=(d, d))
    b = 0.5 * r.normal(size=(300, d)) @ r.normal(size=(d, d)) + 1.0
    real = torch.tensor(a, dtype=torch.float32).reshape(400, 1, d, 1)
    fake = torch.tensor(b, dtype=torch.float32).reshape(300, 1, d, 1)
    expected = closed_form_fid(real.flatten(1).double().numpy(), fake.flatten(1).double().numpy())
    assert_allclose(fid(real, fake, LinearFeatures(d), chunk_size=64), expected, rtol=1e-5)


def test_fid_passes_images_to_the_net_unchanged():
    net = LinearFeatures(4)
    real = torch.linspace(-1, 1, 40).reshape(10, 1, 2, 2)
    fake = -real.flip(0)
    fid(real, fake, net, chunk_size=3)
    seen = torch.cat(net.seen)
    assert seen.dtype == torch.float32
    torch.testing.assert_close(seen, torch.cat([real, fake]), rtol=0, atol=0)


def test_fid_rank_deficient_warns_and_is_finite():
    r = rng(19)
    real = torch.tensor(r.normal(size=(10, 1, 20, 1)), dtype=torch.float32)
    fake = torch.tensor(r.normal(size=(10, 1, 20, 1)) + 2.0, dtype=torch.float32)
    with pytest.warns(UserWarning, match="rank-deficient"):
        value = fid(real, fake, LinearFeatures(20))
    assert math.isfinite(value)
    # Still the Frechet distance of the sample moments: eigvals of S1 S2 are >= 0 even if singular.
    a, b = real.flatten(1).double().numpy(), fake.flatten(1).double().numpy()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1) + np.trace(s2) - 2 * root
    assert_allclose(value, expected, rtol=1e-4)


def test_fid_falls_back_to_eps_regularised_covariances(monkeypatch):
    from torchmetrics.image.fid import FrechetInceptionDistance

    monkeypatch.setattr(FrechetInceptionDistance, "compute", lambda self: torch.tensor(float("nan")))
    r = rng(20)
    real = torch.tensor(r.normal(size=(200, 1, 3, 1)), dtype=torch.float32)
    fake = torch.tensor(2 * r.normal(size=(150, 1, 3, 1)) + 1, dtype=torch.float32)
    with pytest.warns(UserWarning, match="recomputed"):
        value = fid(real, fake, LinearFeatures(3))
    expected = closed_form_fid(real.flatten(1).double().numpy(), fake.flatten(1).double().numpy())
    assert_allclose(value, expected, rtol=1e-5)


def test_fid_input_errors():
    net = LinearFeatures(2)
    with pytest.raises(UserError):
        fid(torch.zeros(1, 1, 2, 1), torch.zeros(5, 1, 2, 1), net)
    with pytest.raises(ValueError):
        fid(torch.zeros(5, 1, 2, 1), torch.full((5, 1, 2, 1), float("nan")), net)


def one_hot_images(classes: list[int], k: int) -> torch.Tensor:
    return torch.eye(k)[classes].reshape(len(classes), 1, k, 1)


def test_class_histogram_stats_on_a_fixed_classifier():
    k = 4
    fake = one_hot_images([0] * 20 + [1] * 10, k)
    net = LinearFeatures(k, num_classes=k)
    stats = class_histogram_stats(fake, net, k)
    assert stats["class_counts"] == [20, 10, 0, 0] and stats["classes_covered"] == 2
    p = np.array([2 / 3, 1 / 3])
    assert_allclose(stats["class_kl"], np.sum(p * np.log(p / 0.25)), rtol=1e-12)
    # Against real labels with p_real = (1/2, 1/6, 1/6, 1/6).
    labels = torch.tensor([0, 0, 0, 1, 2, 3])
    q = np.array([1 / 2, 1 / 6])
    assert_allclose(class_histogram_stats(fake, net, k, labels)["class_kl"], np.sum(p * np.log(p / q)), rtol=1e-12)
    # Matching histogram -> 0; min_count threshold.
    assert_allclose(class_histogram_stats(one_hot_images([0, 0, 0, 1, 2, 3], k), net, k, labels)["class_kl"],
                    0.0, atol=1e-15)
    assert class_histogram_stats(fake, net, k, min_count=11)["classes_covered"] == 1


# ----------------------------------------------------------------------------- feature network


def test_classifier_net_shapes():
    for shape in [(1, 28, 28), (3, 10, 6)]:
        net = ClassifierNet(shape, num_classes=7, num_features=16)
        x = torch.rand(5, *shape) * 2 - 1
        assert net(x).shape == (5, 16) and net(x).dtype == torch.float32
        assert net.logits(x).shape == (5, 7)
        assert isinstance(net.num_features, int)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0  # (1797, 1, 8, 8) in [-1, 1]
    y = torch.tensor(d.target, dtype=torch.int64)
    return SimpleNamespace(name="digits", kind="image", shape=(1, 8, 8), train=x[:1400], test=x[1400:],
                           train_labels=y[:1400], test_labels=y[1400:], num_classes=10,
                           reference=lambda n, g: x[1400:][:n])


@pytest.fixture
def train_counter(monkeypatch):
    calls = []
    original = features_mod._train_classifier

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(features_mod, "_train_classifier", counting)
    return calls


def test_two_processes_asking_at_once_train_the_feature_net_once(digits, tmp_path, train_counter):
    """Two callers at once (threads here, each with its own open lock file, as two processes would have):
    the second waits on the cache entry's lock and loads what the first trained."""
    import threading

    nets = []

    def ask():
        nets.append(get_classifier_net(digits, cache_dir=tmp_path, epochs=1, batch_size=64))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(train_counter) == 1 and len(nets) == 2
    assert nets[0].sha256 == nets[1].sha256
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 1


def test_feature_net_is_trained_once_then_loaded(digits, tmp_path, train_counter):
    net = get_classifier_net(digits, cache_dir=tmp_path, epochs=3, batch_size=64)
    assert len(train_counter) == 1
    files = sorted((tmp_path / "features").iterdir())
    weights = [f for f in files if f.suffix == ".safetensors"][0]
    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["name"] == net.name and net.name.startswith("classifier-digits-")
    assert meta["epochs"] == 3 and meta["n_train"] == 1400
    # Reported accuracy is the accuracy on the test split, and the net learned (chance is 0.1).
    pred = net.logits(digits.test).argmax(1)
    assert_allclose(net.test_accuracy, (pred == digits.test_labels).double().mean().item(), rtol=1e-12)
    assert 0.8 <= net.test_accuracy <= 1.0

    again = get_classifier_net(digits, cache_dir=tmp_path, epochs=3, batch_size=64)
    assert len(train_counter) == 1  # loaded, not retrained
    assert again.name == net.name and again.test_accuracy == net.test_accuracy
    for (k1, v1), (k2, v2) in zip(net.state_dict().items(), again.state_dict().items()):
        assert k1 == k2
        torch.testing.assert_close(v1, v2, rtol=0, atol=0)

    other = get_classifier_net(digits, cache_dir=tmp_path, epochs=1, batch_size=64)
    assert len(train_counter) == 2 and other.name != net.name  # hyperparameters are part of the key


def test_corrupted_cache_is_detected_and_retrained(digits, tmp_path, train_counter, monkeypatch):
    monkeypatch.setenv("LOSSLAB_CACHE", str(tmp_path))
    net = get_classifier_net(digits, epochs=1, batch_size=64)
    weights = next((tmp_path / "features").glob("*.safetensors"))
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF  # flip the last byte of the last tensor
    weights.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="SHA-256"):
        again = get_classifier_net(digits, epochs=1, batch_size=64)
    assert len(train_counter) == 2
    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    # Same seed, same data: retraining reproduces the same weights.
    for v1, v2 in zip(net.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(v1, v2, rtol=0, atol=0)


def test_classifier_needs_labelled_images(digits, tmp_path):
    # get_feature_net trains a self-supervised network instead (tests/test_features.py)
    unlabelled = SimpleNamespace(**{**vars(digits), "train_labels": None})
    with pytest.raises(UserError, match="labelled"):
        get_classifier_net(unlabelled, cache_dir=tmp_path)
    vectors = SimpleNamespace(**{**vars(digits), "shape": (2,)})
    with pytest.raises(UserError):
        get_feature_net(vectors, cache_dir=tmp_path)


# ----------------------------------------------------------------------------- evaluate


def gaussian_dataset(d: int, modes=None, std=None) -> SimpleNamespace:
    return SimpleNamespace(name=f"gauss{d}", kind="vector", shape=(d,), modes=modes, mode_std=std, weights=None,
                           reference=lambda n, g: torch.randn(n, d, generator=g))


def test_evaluate_1d():
    ds = gaussian_dataset(1, modes=torch.zeros(1, 1), std=1.0)
    samples = torch.randn(1000, 1, generator=torch.Generator().manual_seed(5)) + 3.0
    out = evaluate(ds, samples, generator=torch.Generator().manual_seed(1), n=800)
    ref = ds.reference(800, torch.Generator().manual_seed(1))
    assert_allclose(out["w1"], wasserstein1_1d(ref, samples[:800]), rtol=1e-12)
    assert_allclose(out["w1"], 3.0, atol=0.15)
    assert_allclose(out["ks_pvalue"], scipy.stats.ks_2samp(ref[:, 0].numpy(), samples[:800, 0].numpy()).pvalue,
                    rtol=1e-10)
    assert out["n_eval"] == 800 and out["num_modes"] == 1
    assert set(out) <= set(METRIC_INFO)


def test_evaluate_2d_mixture():
    modes = torch.tensor(ring_modes(8), dtype=torch.float32)
    ds = SimpleNamespace(name="ring8", kind="vector", shape=(2,), modes=modes, mode_std=0.02, weights=torch.ones(8) / 8,
                         reference=lambda n, g: modes[torch.randint(0, 8, (n,), generator=g)]
                         + 0.02 * torch.randn(n, 2, generator=g))
    samples = ds.reference(300, torch.Generator().manual_seed(7))
    out = evaluate(ds, samples, generator=torch.Generator().manual_seed(2), n=300)
    ref = ds.reference(300, torch.Generator().manual_seed(2))
    assert_allclose(out["w1"], wasserstein_ot(ref, samples), rtol=1e-9)
    assert out["modes_covered"] == 8 and set(out) <= set(METRIC_INFO)
    assert primary_metric(ds) == ("w1", False)
    with pytest.raises(ValueError):
        evaluate(ds, torch.full((10, 2), float("inf")))
    with pytest.raises(ValueError):
        evaluate(ds, torch.zeros(10, 3))


def test_evaluate_high_dimensional_vectors(monkeypatch):
    ds = gaussian_dataset(5)
    samples = torch.randn(200, 5, generator=torch.Generator().manual_seed(3)) + 1.0
    out = evaluate(ds, samples, generator=torch.Generator().manual_seed(4), n=200)
    ref = ds.reference(200, torch.Generator().manual_seed(4))
    assert_allclose(out["swd"], sliced_wasserstein(ref, samples), rtol=1e-9)
    assert_allclose(out["w1"], wasserstein_ot(ref, samples), rtol=1e-9)
    assert primary_metric(ds) == ("swd", False) and "modes_covered" not in out
    import losslab.metrics as metrics

    monkeypatch.setattr(metrics, "MAX_OT_SAMPLES", 100)
    assert "w1" not in evaluate(ds, samples, n=200)


def test_evaluate_images_with_an_injected_feature_net():
    k = 4
    noise = 0.1 * torch.randn(100, 1, k, 1, generator=torch.Generator().manual_seed(0))
    real = one_hot_images([0, 1, 2, 3] * 25, k) + noise
    ds = SimpleNamespace(name="onehot", kind="image", shape=(1, k, 1), test_labels=torch.tensor([0, 1, 2, 3] * 25),
                         train_labels=None, num_classes=k, reference=lambda n, g: real[:n])
    # Scaled one-hot images give confident logits (softmax 1 - 3e-4 >= 0.9): classes 0 and 1 count as covered.
    fake = 10.0 * one_hot_images([0, 1] * 50, k)
    net = LinearFeatures(k, num_classes=k)
    out = evaluate(ds, fake, feature_net=net, n=100)
    assert_allclose(out["fid"], fid(real, fake, net), rtol=1e-12)
    assert out["classes_covered"] == 2 and out["class_counts"] == [50, 50, 0, 0]
    assert_allclose(out["class_kl"], math.log(2), rtol=1e-12)  # KL((1/2, 1/2) || uniform over 4)
    assert out["feature_net"] == "linear-test" and set(out) <= set(METRIC_INFO)
    assert primary_metric(ds) == ("fid", False)
    with pytest.raises(UserError, match="training images"):
        evaluate(ds, fake)  # no training images to train a feature net on, and none given


def test_metric_info_entries():
    for key, info in METRIC_INFO.items():
        assert isinstance(info["description"], str) and info["higher_is_better"] in (True, False, None), key
