"""Evaluation of generated samples against a dataset: one entry point, :func:`evaluate`.

Which metrics are computed depends on the data:

==========================  =====================================================
data                        metrics (primary first)
==========================  =====================================================
vectors, d = 1              ``w1`` (exact 1-D), ``ks``, ``ks_pvalue``
vectors, d = 2              ``w1`` (exact optimal transport)
vectors, d > 2              ``swd`` (sliced W2), ``w1`` (exact OT, n <= 2,500)
vectors with mixture modes  + ``modes_covered``, ``num_modes``, ``high_quality``,
                            ``reverse_kl``, ``mode_counts`` (VEEGAN / PacGAN)
images                      ``fid`` (classifier features), ``kid``, ``kid_std``,
                            ``inception_score``, ``inception_score_std``,
                            ``precision``, ``recall``, ``density``, ``coverage``,
                            ``feature_swd``, ``classes_covered``, ``class_kl``,
                            ``class_counts``, ``feature_net``, ``classifier_net``,
                            ``n_real``; with ``full=True`` also ``feature_w1``
                            (exact OT) and ``c2st_accuracy``, ``c2st_pvalue``,
                            ``c2st_n_test`` (two-sample classifier)
Stacked MNIST               as images, with ``modes_covered``, ``num_modes``,
                            ``reverse_kl``, ``mode_counts`` over 1,000 modes
                            instead of the class keys (VEEGAN / PacGAN)
==========================  =====================================================

Every result also has ``n_eval`` (generated samples used). ``METRIC_INFO``
describes each key for the report. Image metrics are only comparable between
results with the same ``feature_net``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from losslab.data.stacked import mode_digits
from losslab.losses.families import FAMILY_SPECS
from losslab.metrics.features import STACKED_NAME, ClassifierNet, StackedDigitNet, extract, get_feature_net
from losslab.metrics.fid import (class_histogram_stats, class_stats_from_predictions, fid, fid_from_features,
                                 frechet_distance)
from losslab.metrics.images import (ImageMetrics, confident_class_stats, inception_score, kid, metrics_from_features,
                                    prdc, two_sample_accuracy)
from losslab.metrics.modes import mode_stats
from losslab.metrics.representation import METRIC_INFO_REPRESENTATION
from losslab.metrics.stacked import stacked_mnist_modes
from losslab.metrics.wasserstein import ks_1d, sliced_wasserstein, wasserstein1_1d, wasserstein_ot

__all__ = [
    "METRIC_INFO",
    "ClassifierNet",
    "ImageMetrics",
    "StackedDigitNet",
    "class_histogram_stats",
    "evaluate",
    "extract",
    "fid",
    "fid_from_features",
    "frechet_distance",
    "get_feature_net",
    "inception_score",
    "kid",
    "ks_1d",
    "metrics_from_features",
    "mode_stats",
    "prdc",
    "primary_metric",
    "sliced_wasserstein",
    "stacked_mnist_modes",
    "two_sample_accuracy",
    "wasserstein1_1d",
    "wasserstein_ot",
]

# Largest sample for exact optimal transport (cost matrix 8 * n^2 bytes = 50 MB at 2,500).
MAX_OT_SAMPLES = 2500

# higher_is_better: True / False for quality metrics, None for descriptive entries.
METRIC_INFO: dict[str, dict[str, Any]] = {
    "w1": {"description": "Wasserstein-1 distance to real samples (exact; data units)", "higher_is_better": False},
    "ks": {"description": "Kolmogorov-Smirnov statistic vs real samples (1-D)", "higher_is_better": False},
    "ks_pvalue": {"description": "KS two-sample p-value (same distribution under H0)", "higher_is_better": True},
    "swd": {"description": "sliced Wasserstein-2 distance to real samples (200 projections)",
            "higher_is_better": False},
    "modes_covered": {"description": "mixture modes with >= 1 high-quality sample (VEEGAN)", "higher_is_better": True},
    "num_modes": {"description": "number of mixture modes of the data", "higher_is_better": None},
    "high_quality": {"description": "fraction of samples within 3 std of a mode (VEEGAN)", "higher_is_better": True},
    "reverse_kl": {"description": "KL(generated || true) over modes, high-quality samples (PacGAN)",
                   "higher_is_better": False},
    "mode_counts": {"description": "high-quality samples per mode", "higher_is_better": None},
    "fid": {"description": "Frechet distance in the dataset classifier's feature space", "higher_is_better": False},
    "classes_covered": {"description": "classes to which enough generated images are classified with confidence "
                                       "(softmax >= 0.9, at least max(5, 0.2 n / K) images)",
                        "higher_is_better": True},
    "confident_counts": {"description": "generated images per class classified with softmax >= 0.9",
                         "higher_is_better": None},
    "cover_threshold": {"description": "images a class needs to count as covered: max(5, 0.2 n / K)",
                        "higher_is_better": None},
    "class_kl": {"description": "KL(generated || real) of predicted class histograms", "higher_is_better": False},
    "class_counts": {"description": "generated images per predicted class", "higher_is_better": None},
    "feature_net": {"description": "feature network of fid, kid, precision/recall/density/coverage and the "
                                   "feature-space distances (compare only results with the same one)",
                    "higher_is_better": None},
    "classifier_net": {"description": "classifier whose logits give inception_score and the class histogram",
                       "higher_is_better": None},
    "classifier_accuracy": {"description": "test accuracy of that classifier on the real test split",
                            "higher_is_better": None},
    "kid": {"description": "Kernel Inception Distance: unbiased MMD^2, cubic kernel, mean over 100 subsets "
                           "(Binkowski et al. 2018; ~0 for matching distributions)", "higher_is_better": False},
    "kid_std": {"description": "standard deviation of KID over its subsets", "higher_is_better": None},
    "inception_score": {"description": "Inception Score exp E KL(p(y|x) || p(y)) on the classifier's logits, "
                                       "1 to number of classes (Salimans et al. 2016)", "higher_is_better": True},
    "inception_score_std": {"description": "standard deviation of the Inception Score over 10 splits",
                            "higher_is_better": None},
    "precision": {"description": "fraction of generated samples inside the real k-NN manifold (Naeem et al. 2020)",
                  "higher_is_better": True},
    "recall": {"description": "fraction of real samples inside the generated k-NN manifold (Naeem et al. 2020)",
               "higher_is_better": True},
    "density": {"description": "mean number of real k-NN balls holding a generated sample, / k (1 when matching)",
                "higher_is_better": True},
    "coverage": {"description": "fraction of real k-NN balls that hold a generated sample (Naeem et al. 2020)",
                 "higher_is_better": True},
    "feature_swd": {"description": "sliced Wasserstein-2 distance in feature space (200 projections)",
                    "higher_is_better": False},
    "feature_w1": {"description": "exact Wasserstein-1 distance in feature space (optimal transport)",
                   "higher_is_better": False},
    "c2st_accuracy": {"description": "held-out accuracy of a fresh real-vs-generated classifier "
                                     "(0.5: indistinguishable; Lopez-Paz & Oquab 2017)", "higher_is_better": False},
    "c2st_pvalue": {"description": "binomial p-value of that accuracy against 0.5 (H0: same distribution)",
                    "higher_is_better": True},
    "c2st_n_test": {"description": "held-out samples of the two-sample classifier", "higher_is_better": None},
    "d_accuracy": {"description": "real-vs-fake accuracy of the trained discriminator on held-out real and "
                                  "generated samples (0.5: fooled)", "higher_is_better": False},
    "d_real_mean": {"description": "mean discriminator output on held-out real samples", "higher_is_better": None},
    "d_fake_mean": {"description": "mean discriminator output on generated samples", "higher_is_better": None},
    "n_eval": {"description": "number of generated samples evaluated", "higher_is_better": None},
    "n_real": {"description": "number of real (held-out) samples compared against", "higher_is_better": None},
    "num_classes": {"description": "number of classes of the data", "higher_is_better": None},
}

METRIC_INFO.update(METRIC_INFO_REPRESENTATION)

# domain: (lo, hi) of the values a metric can take (None: unbounded); the report clips intervals to it.
_UNIT = (0.0, 1.0)
_DOMAINS: dict[str, tuple[float | None, float | None]] = {
    **{k: (0.0, None) for k in ("w1", "swd", "reverse_kl", "fid", "class_kl", "density", "feature_swd",
                                "feature_w1", "modes_covered", "classes_covered")},
    **{k: _UNIT for k in ("ks", "ks_pvalue", "high_quality", "precision", "recall", "coverage", "c2st_accuracy",
                          "c2st_pvalue", "d_accuracy", "linear_probe", "knn", "zero_shot", "view_match",
                          "linear_probe_pixels", "linear_probe_random_encoder", "knn_pixels", "knn_random_encoder")},
    "inception_score": (1.0, None),
    "alignment": (0.0, 4.0),  # squared distance of unit vectors
    "uniformity": (None, 0.0),  # log of a mean of exp(-2 d^2) <= 1
}
for _k, _d in _DOMAINS.items():
    if _k in METRIC_INFO:
        METRIC_INFO[_k]["domain"] = _d


def primary_metric(dataset: Any = None, *, family: str = "gan", kind: str | None = None,
                   shape: Any = None) -> tuple[str, bool]:
    """Name of the metric that ranks losses, and whether higher is better: the one place that picks it.

    ================================  ==========================
    family / data                     primary metric
    ================================  ==========================
    a family's own (any part of one)  its ``FamilySpec.primary_metric``:
                                      contrastive ``("linear_probe", True)``
    images                            ``("fid", False)``
    vectors, d <= 2                   ``("w1", False)``
    vectors, d > 2                    ``("swd", False)``
    ================================  ==========================

    Parameters
    ----------
    dataset : Dataset, optional
        Gives ``kind`` and ``shape`` when they are not passed.
    family : str
        Model family, or a mixed table's ``"gan+contrastive"``.
    kind : {"vector", "image"}, optional
        Data kind.
    shape : sequence of int, optional
        Shape of one sample, ``(d,)`` for vectors (needed for them).

    Raises
    ------
    ValueError
        If the kind is neither "vector" nor "image", or a vector shape is unknown.
    """
    fixed = [FAMILY_SPECS[p].primary_metric for p in str(family).split("+")
             if p in FAMILY_SPECS and FAMILY_SPECS[p].primary_metric]
    if fixed:  # a family that fixes its metric (contrastive: the linear probe), any part of a mixed table
        return fixed[0]
    kind = kind if kind is not None else getattr(dataset, "kind", None)
    shape = shape if shape is not None else getattr(dataset, "shape", None)
    if kind == "image":
        return "fid", False
    if kind == "vector":
        if shape is None:
            raise ValueError("the primary metric of vectors needs their shape (d,)")
        return ("w1", False) if int(np.prod(shape)) <= 2 else ("swd", False)
    raise ValueError(f"unknown dataset kind {kind!r}")


def evaluate(
    dataset: Any,
    samples: Tensor | np.ndarray,
    *,
    generator: torch.Generator | None = None,
    n: int = 2500,
    feature_net: nn.Module | None = None,
    classifier: nn.Module | None = None,
    full: bool = False,
) -> dict[str, Any]:
    """Compare generated samples with real samples of ``dataset``.

    Parameters
    ----------
    dataset : Dataset-like
        ``kind`` ("vector" | "image"), ``shape``, ``reference(n, generator)``
        (real samples for evaluation), ``modes`` (K, d) / ``mode_std`` /
        ``weights`` (K,) for mixtures (or None); for images also what
        :func:`get_feature_net` needs (labels), unless ``feature_net`` is given,
        and ``test_labels`` / ``train_labels`` / ``num_classes``.
    samples : (M, *shape) tensor or array
        Generated samples (images in [-1, 1]); the first ``n`` are used.
    generator : torch.Generator, keyword-only, optional
        Draws the reference sample; default a generator seeded with 0.
    n : int, keyword-only
        Number of generated and of real samples (2,500 keeps exact OT at 50 MB).
    feature_net : nn.Module, keyword-only, optional
        Image feature network with ``num_features`` and ``name`` (FID, KID,
        PRDC, feature-space distances); default the dataset's cached classifier
        (:func:`get_feature_net`).
    classifier : nn.Module, keyword-only, optional
        Network with ``logits`` for the Inception Score and the class histogram;
        default ``feature_net`` when it has ``logits``, else the dataset's
        classifier when the data are labelled, else those metrics are skipped.
    full : bool, keyword-only
        Images: also the exact feature-space W1 (POT, on at most 2,500 rows) and
        the two-sample classifier test (trains a small CNN: seconds). Off in
        ``losslab compare``, which evaluates every run.

    Returns
    -------
    dict
        Metric name -> value; see the module docstring and ``METRIC_INFO``.

    Raises
    ------
    ValueError
        If ``samples`` contain NaN / inf, are empty, or do not have the
        dataset's shape.
    UserError
        For images without labels and without a ``feature_net`` (FID needs
        a labelled dataset), or with fewer than 2 samples.

    Warns
    -----
    UserWarning
        For images, when the sample is too small for the standard settings: fewer
        samples than features (FID), than 1,000 (the KID subset size is cut), or
        than 26,000 on Stacked MNIST (the mode-count protocol).
    """
    x = torch.as_tensor(samples).detach().to("cpu", torch.float32)
    shape = tuple(int(s) for s in dataset.shape)
    if x.ndim == 1 and shape == (1,):
        x = x[:, None]
    if x.shape[0] == 0 or tuple(x.shape[1:]) != shape:
        raise ValueError(f"samples must have shape (N, {', '.join(map(str, shape))}) with N >= 1, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("samples contain NaN or inf")
    x = x[:n]
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    ref = torch.as_tensor(dataset.reference(n, generator)).detach().to("cpu", torch.float32)
    out: dict[str, Any] = {"n_eval": int(x.shape[0])}

    if dataset.kind == "image":
        out.update(_evaluate_images(dataset, ref, x, feature_net, classifier, full=full))
        _check_not_nan(out)
        return out

    if dataset.kind != "vector":
        raise ValueError(f"unknown dataset kind {dataset.kind!r}")
    d = shape[0]
    if d == 1:
        out["w1"] = wasserstein1_1d(ref, x)
        ks = ks_1d(ref, x)
        out["ks"], out["ks_pvalue"] = ks["statistic"], ks["pvalue"]
    elif d == 2:
        out["w1"] = wasserstein_ot(ref, x)
    else:
        out["swd"] = sliced_wasserstein(ref, x)
        if max(x.shape[0], ref.shape[0]) <= MAX_OT_SAMPLES:
            out["w1"] = wasserstein_ot(ref, x)
    modes = getattr(dataset, "modes", None)
    std = getattr(dataset, "mode_std", None)
    if modes is not None and std is not None:
        out.update(mode_stats(x, modes, float(std), getattr(dataset, "weights", None)))
    _check_not_nan(out)
    return out


def _check_not_nan(out: dict[str, Any]) -> None:
    """Never hand back a NaN (math.inf is allowed and documented)."""
    for key, value in out.items():
        if isinstance(value, float) and math.isnan(value):
            raise RuntimeError(f"metric {key} is NaN")


def _evaluate_images(
    dataset: Any, ref: Tensor, x: Tensor, feature_net: nn.Module | None, classifier: nn.Module | None, *, full: bool
) -> dict[str, Any]:
    """The image branch of :func:`evaluate`: one feature pass per set, then every metric."""
    labelled = getattr(dataset, "train_labels", None) is not None
    net = feature_net if feature_net is not None else get_feature_net(dataset)
    clf = classifier
    if clf is None:
        clf = net if hasattr(net, "logits") else (get_feature_net(dataset) if labelled else None)
    metric = ImageMetrics(net, classifier=clf)  # forward passes of 1,000 images (200 through Inception)
    metric.update(ref, real=True)
    metric.update(x, real=False)

    out: dict[str, Any] = {"n_real": int(ref.shape[0])}
    out.update(metric.compute())
    f_real, f_fake, z_fake = metric.features()  # the same features, for the metrics below
    if full:
        m = MAX_OT_SAMPLES
        out["feature_w1"] = wasserstein_ot(f_real[:m], f_fake[:m])
        out.update(two_sample_accuracy(ref, x))
    out["feature_net"] = getattr(net, "name", type(net).__name__)
    if clf is None:
        return out
    out["classifier_net"] = getattr(clf, "name", type(clf).__name__)
    if getattr(clf, "test_accuracy", None) is not None:
        out["classifier_accuracy"] = float(clf.test_accuracy)
    if getattr(dataset, "name", None) == STACKED_NAME and isinstance(clf, StackedDigitNet):
        train_labels = getattr(dataset, "train_labels", None)
        probs = None
        if train_labels is not None:  # true mode distribution: product of the per-channel digit frequencies
            digits = mode_digits(train_labels)  # (N, 3)
            probs = torch.stack([torch.bincount(digits[:, c], minlength=10) for c in range(3)]).double()
        out.update(stacked_mnist_modes(x, clf.digit_net, digit_probs=probs))
        return out
    labels = getattr(dataset, "test_labels", None)
    if labels is None:
        labels = getattr(dataset, "train_labels", None)
    num_classes = getattr(dataset, "num_classes", None) or int(getattr(clf, "num_classes"))
    out.update(confident_class_stats(z_fake, int(num_classes), labels))
    out["num_classes"] = int(num_classes)
    return out
