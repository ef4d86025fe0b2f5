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
images                      ``fid`` (classifier features), ``classes_covered``,
                            ``class_kl``, ``class_counts``, ``feature_net``
==========================  =====================================================

Every result also has ``n_eval`` (generated samples used). ``METRIC_INFO``
describes each key for the report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from losslab.metrics.features import ClassifierNet, get_feature_net
from losslab.metrics.fid import class_histogram_stats, fid, frechet_distance
from losslab.metrics.modes import mode_stats
from losslab.metrics.wasserstein import ks_1d, sliced_wasserstein, wasserstein1_1d, wasserstein_ot

__all__ = [
    "METRIC_INFO",
    "ClassifierNet",
    "class_histogram_stats",
    "evaluate",
    "fid",
    "frechet_distance",
    "get_feature_net",
    "ks_1d",
    "mode_stats",
    "primary_metric",
    "sliced_wasserstein",
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
    "classes_covered": {"description": "classes predicted at least once for generated images",
                        "higher_is_better": True},
    "class_kl": {"description": "KL(generated || real) of predicted class histograms", "higher_is_better": False},
    "class_counts": {"description": "generated images per predicted class", "higher_is_better": None},
    "feature_net": {"description": "name of the classifier used as FID feature network", "higher_is_better": None},
    "n_eval": {"description": "number of generated samples evaluated", "higher_is_better": None},
    "num_classes": {"description": "number of classes of the data", "higher_is_better": None},
}


def primary_metric(dataset: Any) -> tuple[str, bool]:
    """Name of the metric that ranks losses on this dataset, and whether higher is better.

    ``("w1", False)`` for vectors with d <= 2, ``("swd", False)`` for d > 2,
    ``("fid", False)`` for images.

    Raises
    ------
    ValueError
        If ``dataset.kind`` is neither "vector" nor "image".
    """
    if dataset.kind == "image":
        return "fid", False
    if dataset.kind == "vector":
        return ("w1", False) if int(np.prod(dataset.shape)) <= 2 else ("swd", False)
    raise ValueError(f"unknown dataset kind {dataset.kind!r}")


def evaluate(
    dataset: Any,
    samples: Tensor | np.ndarray,
    *,
    generator: torch.Generator | None = None,
    n: int = 2500,
    feature_net: nn.Module | None = None,
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
        FID feature network with ``num_features``, ``logits`` and ``name``;
        default the dataset's cached classifier (:func:`get_feature_net`).

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
        net = feature_net if feature_net is not None else get_feature_net(dataset)
        out["fid"] = fid(ref, x, net)
        labels = getattr(dataset, "test_labels", None)
        if labels is None:
            labels = getattr(dataset, "train_labels", None)
        num_classes = getattr(dataset, "num_classes", None) or int(getattr(net, "num_classes"))
        out.update(class_histogram_stats(x, net, num_classes, labels))
        out["num_classes"] = int(num_classes)
        out["feature_net"] = getattr(net, "name", type(net).__name__)
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
    for key, value in out.items():  # never hand back a NaN (math.inf is allowed and documented)
        if isinstance(value, float) and math.isnan(value):
            raise RuntimeError(f"metric {key} is NaN")
    return out
