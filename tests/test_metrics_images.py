"""Image metrics: closed forms, invariants, independent references (torchmetrics, scipy, numpy)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg
import torch
from numpy.testing import assert_allclose
from torch import nn

from losslab.errors import UserError
from losslab.metrics import (
    METRIC_INFO,
    ImageMetrics,
    StackedDigitNet,
    evaluate,
    extract,
    fid_from_features,
    inception_score,
    kid,
    metrics_from_features,
    prdc,
    stacked_mnist_modes,
    two_sample_accuracy,
)
from losslab.metrics import images as images_mod


pytestmark = pytest.mark.usefixtures("single_thread")


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


class Identity(nn.Module):
    """Feature net for torchmetrics' classes: features (or logits) are the input."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class LinearNet(nn.Module):
    """A fixed random linear feature net on images with a classifier head."""

    def __init__(self, shape=(1, 4, 4), num_features: int = 6, num_classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        d = int(np.prod(shape))
        self.w = nn.Parameter(torch.randn(d, num_features, generator=g), requires_grad=False)
        self.h = nn.Parameter(torch.randn(num_features, num_classes, generator=g), requires_grad=False)
        self.num_features, self.num_classes, self.name = num_features, num_classes, "linear-net"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x) @ self.h


# ----------------------------------------------------------------------------- FID


def features_with_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> torch.Tensor:
    """n rows whose sample mean is exactly ``mean`` and unbiased sample covariance exactly ``cov``."""
    z = np.random.default_rng(seed).normal(size=(n, mean.size))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened: cov(z) = I
    return torch.tensor(mean + z @ np.linalg.cholesky(cov).T)


def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian(500, 8, 0)
    assert_allclose(fid_from_features(x, x), 0.0, atol=1e-8)
    assert_allclose(fid_from_features(x, x[torch.randperm(500)]), 0.0, atol=1e-8)  # order does not matter


def test_fid_of_two_gaussians_equals_the_closed_form():
    # Diagonal covariances: FID = |mu1 - mu2|^2 + sum_i (s1_i - s2_i)^2 (standard deviations s).
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    mu1, mu2 = np.zeros(3), np.array([1.0, -2.0, 0.0])
    a = features_with_moments(400, mu1, np.diag(s1**2), 1)
    b = features_with_moments(300, mu2, np.diag(s2**2), 2)
    assert_allclose(fid_from_features(a, b), np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2), rtol=1e-9)
    # Full covariances: against Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) with scipy's sqrtm.
    r = np.random.default_rng(3)
    c1, c2 = (m @ m.T + 0.1 * np.eye(4) for m in (r.normal(size=(4, 4)), r.normal(size=(4, 4))))
    m1, m2 = r.normal(size=4), r.normal(size=4)
    root = scipy.linalg.sqrtm(c1)
    expected = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(root @ c2 @ root).real)
    got = fid_from_features(features_with_moments(500, m1, c1, 4), features_with_moments(600, m2, c2, 5))
    assert_allclose(got, expected, rtol=1e-8)


def test_fid_warns_when_samples_do_not_exceed_features():
    with pytest.warns(UserWarning, match="rank-deficient"):
        value = fid_from_features(gaussian(8, 10, 0), gaussian(8, 10, 1))
    assert math.isfinite(value)


# ----------------------------------------------------------------------------- KID


def test_kid_subsets_match_torchmetrics_poly_mmd(monkeypatch):
    from torchmetrics.image.kid import poly_mmd

    x, y = gaussian(120, 5, 0), gaussian(90, 5, 1, shift=0.3)
    g = torch.Generator().manual_seed(7)  # the draws kid(seed=7) makes, in its order
    ix = [torch.randperm(120, generator=g)[:40] for _ in range(6)]
    iy = [torch.randperm(90, generator=g)[:40] for _ in range(6)]
    ref = torch.stack([poly_mmd(x[i], y[j]) for i, j in zip(ix, iy)])
    mean, std = kid(x, y, subsets=6, subset_size=40, seed=7)  # kernel matrices once, block sums
    assert_allclose([mean, std], [float(ref.mean()), float(ref.std(unbiased=False))], rtol=1e-10)
    monkeypatch.setattr(images_mod, "_KID_FULL_KERNEL_MAX", 0)  # subset by subset
    assert_allclose(kid(x, y, subsets=6, subset_size=40, seed=7), [mean, std], rtol=1e-10)


def test_kid_on_whole_sets_matches_torchmetrics_class():
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = gaussian(60, 4, 0), gaussian(60, 4, 1, shift=0.5)
    metric = KernelInceptionDistance(feature=Identity(4), subsets=1, subset_size=60)
    metric.update(x, real=True)
    metric.update(y, real=False)
    expected, _ = metric.compute()  # one subset of all rows: permutation does not matter
    assert_allclose(kid(x, y, subsets=1, subset_size=60)[0], float(expected), rtol=1e-10)


def test_kid_is_unbiased_on_one_distribution():
    # Mean of the full-sample U-statistic over independent draws is 0 (a V-statistic would be ~ +0.08 here).
    values = np.array([kid(gaussian(200, 5, 2 * s), gaussian(200, 5, 2 * s + 1), subsets=1, subset_size=200)[0]
                       for s in range(20)])
    assert_allclose(values.mean(), 0.0, atol=3 * values.std(ddof=1) / math.sqrt(len(values)))
    shifted = kid(gaussian(200, 5, 100), gaussian(200, 5, 101, shift=1.0), subsets=1, subset_size=200)[0]
    assert shifted > 10 * values.std(ddof=1)


# ----------------------------------------------------------------------------- Inception Score


def test_inception_score_of_a_uniform_classifier_is_one():
    assert_allclose(inception_score(torch.zeros(50, 7), splits=5), (1.0, 0.0), atol=1e-12)


def test_inception_score_of_a_perfect_classifier_on_balanced_classes_is_the_class_count():
    k = 4
    logits = 1e3 * torch.eye(k).repeat(25, 1)  # certain, each class 25 times
    assert_allclose(inception_score(logits, splits=1)[0], k, rtol=1e-10)
    # Certain predictions with class frequencies p: IS = exp(H(p)); p = (1/2, 1/4, 1/4) -> 2^1.5.
    skewed = 1e3 * torch.eye(3)[[0, 0, 1, 2] * 10]
    assert_allclose(inception_score(skewed, splits=1)[0], 2**1.5, rtol=1e-10)


def test_inception_score_matches_torchmetrics():
    from torchmetrics.image.inception import InceptionScore

    logits = gaussian(300, 6, 3) * 2.0
    metric = InceptionScore(feature=Identity(6), splits=1)
    metric.update(logits)
    expected, _ = metric.compute()
    assert_allclose(inception_score(logits, splits=1)[0], float(expected), rtol=1e-10)
    # Several splits: mean and std (ddof=1) of the per-split scores, parts taken in order.
    parts = [inception_score(p, splits=1)[0] for p in torch.tensor_split(logits, 3)]
    assert_allclose(inception_score(logits, splits=3), (np.mean(parts), np.std(parts, ddof=1)), rtol=1e-10)


# ----------------------------------------------------------------------------- PRDC


def test_prdc_against_hand_computed_values():
    # k = 1. Real radii (distance to the nearest other real point): 1, 1, 1, 1, 7.
    # Generated points 0.4, 2.9, 20 (their radii 2.5, 2.5, 17.1).
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = torch.tensor([[0.4], [2.9], [20.0]])
    out = prdc(real, fake, k=1)
    # precision: 0.4 (ball of 0) and 2.9 (ball of 3) are inside a real ball, 20 is not -> 2/3
    # recall: every real point lies in some generated ball -> 1
    # density: 0.4 in the balls of 0 and 1, 2.9 in those of 2 and 3, 20 in none -> (2 + 2 + 0) / 3
    # coverage: the nearest generated point is inside the ball of 0, 1, 2, 3 but not of 10 -> 4/5
    assert_allclose([out["precision"], out["recall"], out["density"], out["coverage"]],
                    [2 / 3, 1.0, 4 / 3, 4 / 5], rtol=1e-12)


def test_prdc_of_identical_sets():
    x = gaussian(100, 3, 5)
    out = prdc(x, x, k=5)
    assert_allclose([out["precision"], out["recall"], out["coverage"]], [1.0, 1.0, 1.0], rtol=0, atol=0)


# ----------------------------------------------------------------------------- errors on small samples


def test_clear_errors_on_too_few_samples():
    x = gaussian(10, 3, 0)
    with pytest.raises(UserError, match="at least 2"):
        fid_from_features(x[:1], x)
    with pytest.raises(UserError, match="subset size 20"):
        kid(x, x, subset_size=20)
    with pytest.raises(UserError, match="subset size 1 "):
        kid(x, x, subset_size=1)
    with pytest.raises(UserError, match="k=5"):
        prdc(x[:5], x, k=5)
    with pytest.raises(UserError, match="splits"):
        inception_score(x, splits=11)
    with pytest.raises(UserError, match="at least 4"):
        two_sample_accuracy(x[:3], x)
    with pytest.raises(UserError, match="before compute"):
        ImageMetrics(LinearNet()).compute()
    with pytest.raises(ValueError, match="NaN"):
        fid_from_features(torch.full((5, 3), float("nan")), x)


# ----------------------------------------------------------------------------- torchmetrics contract


def test_chunked_updates_equal_one_update():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(60, 1, 4, 4, generator=g) * 2 - 1
    fake = torch.rand(45, 1, 4, 4, generator=g) * 1.6 - 0.8
    net = LinearNet()
    opts = dict(kid_subsets=10, kid_subset_size=40, prdc_k=3, is_splits=3)
    one = ImageMetrics(net, **opts)
    one.update(real, real=True)
    one.update(fake, real=False)
    chunked = ImageMetrics(net, chunk_size=4, **opts)
    for part in real.split(7):
        chunked.update(part, real=True)
    for part in fake.split(11):
        chunked.update(part, real=False)
    a, b = one.compute(), chunked.compute()
    assert a.keys() == b.keys() and {"fid", "kid", "inception_score", "precision", "feature_swd"} <= set(a)
    for key in a:  # float32 features: chunked matrix products may differ in the last bits
        assert_allclose(b[key], a[key], rtol=1e-6, atol=1e-12, err_msg=key)
    assert_allclose(a["fid"], fid_from_features(net(real), net(fake)), rtol=1e-6)  # same FID as the function
    chunked.reset()
    assert chunked.real_features == [] and chunked.fake_features == []


class FeaturesOnly(nn.Module):
    """A feature net without a classifier head (as the Inception features)."""

    def __init__(self, num_features: int = 5) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.w = nn.Parameter(torch.randn(16, num_features, generator=g), requires_grad=False)
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.flatten(1) @ self.w)


def test_image_metrics_takes_the_inception_score_from_the_classifier():
    g = torch.Generator().manual_seed(3)
    real = torch.rand(50, 1, 4, 4, generator=g) * 2 - 1
    fake = torch.rand(40, 1, 4, 4, generator=g) * 2 - 1
    clf = LinearNet()
    opts = dict(kid_subsets=5, kid_subset_size=30, prdc_k=3, is_splits=4)
    metric = ImageMetrics(FeaturesOnly(), classifier=clf, **opts)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    out = metric.compute()
    want_is = inception_score(clf.logits(fake).double(), splits=4)
    assert_allclose((out["inception_score"], out["inception_score_std"]), want_is, rtol=1e-6)
    f_real, f_fake, logits = metric.features()
    assert_allclose(f_fake.numpy(), torch.tanh(fake.flatten(1) @ metric.feature_net.w).numpy(), rtol=1e-6)
    assert_allclose(logits.numpy(), clf.logits(fake).numpy(), rtol=1e-6)
    assert_allclose(out["fid"], fid_from_features(f_real, f_fake), rtol=1e-12)
    alone = ImageMetrics(FeaturesOnly(), **opts)  # no logits anywhere: no Inception Score
    alone.update(real, real=True)
    alone.update(fake, real=False)
    assert "inception_score" not in alone.compute() and alone.features()[2] is None


def test_extract_restores_training_mode_and_gives_float64():
    net = LinearNet().train()
    feats, logits = extract(net, torch.zeros(3, 1, 4, 4), logits=True)
    assert net.training and feats.dtype == torch.float64 and logits.shape == (3, 3)


# ----------------------------------------------------------------------------- two-sample classifier


def test_two_sample_classifier_on_vectors():
    same = two_sample_accuracy(gaussian(400, 2, 0), gaussian(400, 2, 1))
    assert_allclose(same["c2st_accuracy"], 0.5, atol=0.1)  # 4 standard errors at 400 held-out rows
    apart = two_sample_accuracy(gaussian(400, 2, 0), gaussian(400, 2, 1, shift=20.0))
    assert_allclose(apart["c2st_accuracy"], 1.0, rtol=0, atol=0)
    assert_allclose(apart["c2st_pvalue"], 0.5**400, rtol=1e-6)  # P(Binomial(400, 1/2) = 400)


def test_two_sample_classifier_on_images_tells_shifted_images_apart():
    g = torch.Generator().manual_seed(0)
    real = 0.1 * torch.randn(120, 1, 8, 8, generator=g) - 0.5
    fake = 0.1 * torch.randn(120, 1, 8, 8, generator=g) + 0.5
    out = two_sample_accuracy(real, fake, epochs=2)
    assert_allclose(out["c2st_accuracy"], 1.0, atol=0.02)  # at most 2 of the 120 held-out images misclassified
    assert out["c2st_n_test"] == 120  # half of each set of 120 is held out


# ----------------------------------------------------------------------------- evaluate (images)


def test_evaluate_images_reports_every_metric_with_the_feature_net():
    g = torch.Generator().manual_seed(1)
    real = torch.rand(80, 1, 4, 4, generator=g) * 2 - 1
    ds = SimpleNamespace(name="toyimg", kind="image", shape=(1, 4, 4), test_labels=None, train_labels=None,
                         num_classes=3, reference=lambda n, gen: real[:n])
    fake = torch.rand(80, 1, 4, 4, generator=g) * 2 - 1
    with pytest.warns(UserWarning, match="KID subset size"):
        out = evaluate(ds, fake, n=80, feature_net=LinearNet())
    assert out["feature_net"] == "linear-net" == out["classifier_net"] and out["n_real"] == 80
    assert {"fid", "kid", "kid_std", "inception_score", "precision", "recall", "density", "coverage",
            "feature_swd", "classes_covered", "class_kl"} <= set(out) <= set(METRIC_INFO)
    assert "c2st_accuracy" not in out and "feature_w1" not in out  # the expensive extras are opt-in
    with pytest.warns(UserWarning):
        full = evaluate(ds, fake, n=80, feature_net=LinearNet(), full=True)
    assert {"feature_w1", "c2st_accuracy", "c2st_pvalue"} <= set(full) <= set(METRIC_INFO)
    assert_allclose(full["fid"], out["fid"], rtol=1e-12)


def test_evaluate_images_equals_the_metrics_of_the_extracted_features():
    # evaluate goes through ImageMetrics; the numbers are those of metrics_from_features on one feature pass.
    g = torch.Generator().manual_seed(2)
    real = torch.rand(120, 1, 4, 4, generator=g) * 2 - 1
    fake = torch.rand(120, 1, 4, 4, generator=g) * 1.6 - 0.7
    labels = torch.arange(120) % 3
    ds = SimpleNamespace(name="toyimg", kind="image", shape=(1, 4, 4), test_labels=labels, train_labels=labels,
                         num_classes=3, reference=lambda n, gen: real[:n])
    net, clf = FeaturesOnly(), LinearNet()
    with pytest.warns(UserWarning, match="KID subset size"):
        out = evaluate(ds, fake, n=120, feature_net=net, classifier=clf)
        want = metrics_from_features(extract(net, real)[0], extract(net, fake)[0],
                                     extract(clf, fake, logits=True)[1])
    for key, value in want.items():
        assert out[key] == value, key  # bit for bit: the same features, the same code
    counts = np.bincount(clf.logits(fake).argmax(1).numpy(), minlength=3)
    assert out["class_counts"] == counts.tolist() and out["classifier_net"] == "linear-net"


# ----------------------------------------------------------------------------- Stacked MNIST


class IntensityDigitNet(nn.Module):
    """Digit 'classifier' on (n, 1, H, W): the class is round(10 * mean intensity in [0, 1)) -> 0..9."""

    num_features, num_classes, name, test_accuracy = 2, 10, "intensity", None

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([m, -m], 1)

    def logits(self, x):
        target = (x.flatten(1).mean(1) * 10).round().clamp(0, 9).long()
        return 10.0 * torch.nn.functional.one_hot(target, 10).float()


def digit_image(d: int) -> torch.Tensor:
    return torch.full((1, 4, 4), d / 10.0)


def test_stacked_builder_and_per_channel_modes():
    from losslab.data.stacked import build_stacked_mnist, mode_digits, stack_digits

    digits = torch.arange(10).repeat(3)  # 30 single-channel "digits"
    images = torch.stack([digit_image(int(d)) for d in digits])
    x, y = stack_digits(images, digits, seed=4)
    assert x.shape == (30, 3, 4, 4) and y.shape == (30,)
    for c in range(3):  # each channel is the digit set in some order, and its pixels encode the label
        torch.testing.assert_close(torch.sort(x[:, c, 0, 0]).values, torch.sort(images[:, 0, 0, 0]).values)
        torch.testing.assert_close(x[:, c, 0, 0], mode_digits(y)[:, c].float() / 10.0)
    mnist = SimpleNamespace(name="mnist", train=images, test=images[:10], train_labels=digits,
                            test_labels=digits[:10])
    ds = build_stacked_mnist(mnist, n_train=50, seed=1)
    assert ds.num_classes == 1000 and ds.shape == (3, 4, 4) and ds.train.shape[0] == 50 and ds.test.shape[0] == 10
    net = StackedDigitNet(IntensityDigitNet())
    assert torch.equal(net.logits(ds.train).argmax(1), ds.train_labels)  # argmax over 1,000 = per-channel argmax
    assert net(ds.train).shape == (50, 6)


def test_stacked_mode_count_and_kl():
    net = IntensityDigitNet()
    one_mode = torch.stack([torch.cat([digit_image(1), digit_image(2), digit_image(3)])] * 40)
    with pytest.warns(UserWarning, match="26000"):
        out = stacked_mnist_modes(one_mode, net)
    assert out["modes_covered"] == 1 and out["mode_counts"][123] == 40
    assert_allclose(out["reverse_kl"], math.log(1000), rtol=1e-12)  # KL(point mass || uniform over 1,000)
    two = torch.cat([one_mode, torch.stack([torch.cat([digit_image(0)] * 3)] * 40)])
    p = np.full(10, 0.05)
    p[0] = 0.55  # digit frequencies: the true probability of mode 000 is 0.55^3, of mode 123 0.05^3
    with pytest.warns(UserWarning):
        out = stacked_mnist_modes(two, net, digit_probs=torch.tensor(p))
    expected = 0.5 * math.log(0.5 / 0.55**3) + 0.5 * math.log(0.5 / 0.05**3)
    assert out["modes_covered"] == 2 and out["num_modes"] == 1000
    assert_allclose(out["reverse_kl"], expected, rtol=1e-12)


# ----------------------------------------------------------------------------- Inception extra


def tf1_resize_reference(x: np.ndarray, size: int) -> np.ndarray:
    """TensorFlow 1 ResizeBilinear (align_corners=False, no half-pixel centres), written out in numpy."""
    n, c, h, w = x.shape
    out = np.empty((n, c, size, size))
    for i in range(size):
        sy = i * h / size
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(size):
            sx = j * w / size
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = x[:, :, y0, x0] * (1 - fx) + x[:, :, y0, x1] * fx
            bottom = x[:, :, y1, x0] * (1 - fx) + x[:, :, y1, x1] * fx
            out[:, :, i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("h, w, size", [(5, 5, 13), (8, 6, 11), (28, 28, 31), (12, 12, 12)])
def test_tf1_resize_matches_the_tensorflow_formula(h, w, size):
    from losslab.metrics.inception import tf1_resize_bilinear

    x = np.random.default_rng(0).uniform(0, 255, size=(2, 3, h, w))
    got = tf1_resize_bilinear(torch.tensor(x), size).numpy()
    assert_allclose(got, tf1_resize_reference(x, size), rtol=0, atol=1e-9)


def test_inception_missing_extra_and_bad_checksum_are_clear_errors(monkeypatch, tmp_path):
    import importlib.util

    from losslab.metrics import inception

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    inception.get_inception_net.cache_clear()
    with pytest.raises(UserError, match=r"losslab\[inception\]"):
        inception.get_inception_net()
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(nn.Flatten()), str(path))
    with pytest.raises(UserError, match="SHA-1"):
        inception.load_inception(path)


def test_inception_preprocessing_quantises_repeats_resizes_and_normalises(tmp_path):
    from losslab.metrics.inception import load_inception

    class Probe(nn.Module):  # stand-in for the TorchScript network: returns what it is fed
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :, :2, :2].reshape(x.shape[0], -1)

    path = tmp_path / "probe.pt"
    torch.jit.save(torch.jit.script(Probe()), str(path))
    net = load_inception(path, sha1=None)
    x = torch.full((2, 1, 28, 28), 0.3)  # uint8 level round(1.3 * 127.5) = 166
    seen = net.preprocess(x)
    assert seen.shape == (2, 3, 299, 299)
    torch.testing.assert_close(net(x), torch.full((2, 12), (166 - 128) / 128), rtol=0, atol=1e-6)
    with pytest.raises(UserError, match="1 or 3"):
        net.preprocess(torch.zeros(2, 2, 8, 8))
