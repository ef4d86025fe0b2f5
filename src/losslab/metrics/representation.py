"""Quality of learned representations: linear probe, kNN, alignment and uniformity.

* :func:`linear_probe_accuracy`: multinomial logistic regression (scikit-learn)
  on frozen, standardised features; test accuracy. The standard protocol of
  self-supervised learning (SimCLR, Chen et al. 2020, arXiv:2002.05709, Sec. 4.2).
* :func:`knn_accuracy`: k-nearest-neighbour vote with cosine distance on
  features centred by the training mean (Wu et al. 2018, arXiv:1805.01978,
  Sec. 3.4 use weighted kNN on unit features).
* :func:`alignment`, :func:`uniformity`: Wang & Isola 2020, arXiv:2005.10242,
  Sec. 4.1: L_align (alpha = 2) and L_uniform (t = 2) on unit vectors.

Inputs are numpy arrays or tensors; the metrics are computed in float64.
scikit-learn's BLAS runs with as many threads as torch
(``torch.get_num_threads()``, set by the loop from ``train.threads``): on a
busy machine an unlimited BLAS pool made the probe 60 times slower (measured:
2.5 s instead of 0.04 s for the digits probe on 2 shared cores).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import pdist
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

__all__ = [
    "KNN_K",
    "METRIC_INFO_REPRESENTATION",
    "alignment",
    "chance_accuracy",
    "knn_accuracy",
    "linear_probe_accuracy",
    "uniformity",
]

KNN_K = 20
"""Neighbours of the kNN classifier."""

METRIC_INFO_REPRESENTATION: dict[str, dict[str, Any]] = {
    "linear_probe": {"description": "test accuracy of a logistic-regression probe on the frozen encoder's features",
                     "higher_is_better": True},
    "knn": {"description": f"test accuracy of a {KNN_K}-NN vote (cosine) on the frozen encoder's features",
            "higher_is_better": True},
    "alignment": {"description": "L_align: mean squared distance of two augmented views' unit embeddings "
                                 "(Wang & Isola 2020, alpha = 2)", "higher_is_better": False},
    "uniformity": {"description": "L_uniform: log mean exp(-2 ||z_i - z_j||^2) over pairs of unit embeddings "
                                  "(Wang & Isola 2020, t = 2)", "higher_is_better": False},
    "zero_shot": {"description": "CLIP zero-shot test accuracy: nearest class caption to each image",
                  "higher_is_better": True},
    "view_match": {"description": "fraction of test images whose other augmented view is the nearest of all "
                                  "views (instance retrieval)", "higher_is_better": True},
    "linear_probe_pixels": {"description": "baseline: linear-probe test accuracy on raw pixels",
                            "higher_is_better": True},
    "linear_probe_random_encoder": {"description": "baseline: linear-probe test accuracy on a randomly "
                                                   "initialised encoder of the same architecture",
                                    "higher_is_better": True},
    "knn_pixels": {"description": "baseline: kNN test accuracy on raw pixels", "higher_is_better": True},
    "knn_random_encoder": {"description": "baseline: kNN test accuracy on a randomly initialised encoder",
                           "higher_is_better": True},
    "z_std": {"description": "collapse diagnostic: mean per-dimension std of the raw test projections z "
                             "(0 = collapsed)", "higher_is_better": None},
    "z_std_unit": {"description": "collapse diagnostic: mean per-dimension std of the unit projections times "
                                  "sqrt(dim) (about 1 = spread, 0 = collapsed)", "higher_is_better": None},
    "z_cov_offdiag": {"description": "collapse diagnostic: VICReg's c(Z), the summed squared off-diagonal "
                                     "covariance of z over its dimension", "higher_is_better": None},
    "z_corr_offdiag": {"description": "collapse diagnostic: mean squared off-diagonal correlation of z "
                                      "(0 = decorrelated, 1 = dimensional collapse)", "higher_is_better": None},
    "chance": {"description": "accuracy of always predicting the most frequent training class",
               "higher_is_better": None},
    "n_probe_train": {"description": "training rows of the linear probe and kNN", "higher_is_better": None},
    "n_probe_test": {"description": "test rows of the linear probe and kNN", "higher_is_better": None},
    "dataset": {"description": "name of the dataset the representation was evaluated on", "higher_is_better": None},
}


def _f64(x: Any, name: str, ndim: int) -> np.ndarray:
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    a = a.astype(np.float64, copy=False)
    if a.ndim != ndim or len(a) == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    a = y.detach().cpu().numpy() if torch.is_tensor(y) else np.asarray(y)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    return a.astype(np.int64)


def chance_accuracy(train_y: Any, test_y: Any) -> float:
    """Test accuracy of the constant classifier that predicts the most frequent training class."""
    tr, te = np.asarray(train_y).ravel(), np.asarray(test_y).ravel()
    if len(tr) == 0 or len(te) == 0:
        raise ValueError("chance_accuracy needs non-empty label arrays")
    values, counts = np.unique(tr, return_counts=True)
    return float(np.mean(te == values[np.argmax(counts)]))


def linear_probe_accuracy(
    train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, max_iter: int = 500, C: float = 1.0
) -> float:
    """Test accuracy of a multinomial logistic regression trained on frozen features.

    Features are standardised with the training mean and standard deviation
    (scikit-learn ``StandardScaler``), then ``LogisticRegression(C, lbfgs)``;
    a probe that has not converged after ``max_iter`` iterations is used as is
    (its accuracy is a lower bound of the converged probe's).

    Parameters
    ----------
    train_x : (N, d) array
        Training features.
    train_y : (N,) int array
        Training labels (at least two classes).
    test_x : (M, d) array
    test_y : (M,) int array
    max_iter : int
        L-BFGS iterations.
    C : float
        Inverse L2 regularisation strength (scikit-learn's default 1).

    Returns
    -------
    float
        Accuracy in [0, 1].

    Raises
    ------
    ValueError
        Non-finite features, mismatched shapes, or fewer than two classes.
    """
    xtr, xte = _f64(train_x, "train_x", 2), _f64(test_x, "test_x", 2)
    ytr, yte = _labels(train_y, len(xtr), "train_y"), _labels(test_y, len(xte), "test_y")
    if len(np.unique(ytr)) < 2:
        raise ValueError("linear probe needs at least two classes in the training labels")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings(), threadpool_limits(limits=torch.get_num_threads()):
        warnings.simplefilter("ignore", ConvergenceWarning)  # documented above: a lower bound
        probe.fit(xtr, ytr)
        pred = probe.predict(xte)
    return float(np.mean(pred == yte))


def knn_accuracy(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, k: int = KNN_K) -> float:
    """Test accuracy of a k-nearest-neighbour majority vote with cosine distance.

    Both sets are centred by the training mean first (for raw pixels this
    removes the shared background, without which every MNIST image is close
    to every other in angle). Ties are broken by scikit-learn (lowest label).

    Parameters
    ----------
    train_x : (N, d) array
    train_y : (N,) int array
    test_x : (M, d) array
    test_y : (M,) int array
    k : int
        Neighbours, capped at N.

    Returns
    -------
    float
        Accuracy in [0, 1].

    Raises
    ------
    ValueError
        Non-finite features or mismatched shapes.
    """
    xtr, xte = _f64(train_x, "train_x", 2), _f64(test_x, "test_x", 2)
    ytr, yte = _labels(train_y, len(xtr), "train_y"), _labels(test_y, len(xte), "test_y")
    mu = xtr.mean(axis=0, keepdims=True)
    knn = KNeighborsClassifier(n_neighbors=min(int(k), len(xtr)), metric="cosine", algorithm="brute")
    with threadpool_limits(limits=torch.get_num_threads()):
        knn.fit(xtr - mu, ytr)
        pred = knn.predict(xte - mu)
    return float(np.mean(pred == yte))


def alignment(z1: Any, z2: Any, *, alpha: float = 2.0) -> float:
    """L_align = E_{(x, y) ~ p_pos} ||f(x) - f(y)||_2^alpha over positive pairs.

    Parameters
    ----------
    z1, z2 : (N, d) arrays
        Unit-norm embeddings; row i of both is a positive pair (two views of
        one image). Not normalised here: the definition is on the hypersphere.
    alpha : float
        Exponent (> 0); Wang & Isola use 2.

    Returns
    -------
    float
        In [0, 2^alpha] for unit vectors; 0 = perfectly aligned.

    Source: Wang & Isola 2020, arXiv:2005.10242, Sec. 4.1, definition of L_align.
    """
    a, b = _f64(z1, "z1", 2), _f64(z2, "z2", 2)
    if a.shape != b.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {a.shape} and {b.shape}")
    return float(np.mean(np.linalg.norm(a - b, axis=1) ** alpha))


def uniformity(z: Any, *, t: float = 2.0) -> float:
    """L_uniform = log E_{x, y ~ p_data i.i.d.} exp(-t ||f(x) - f(y)||_2^2) over pairs i < j.

    Parameters
    ----------
    z : (N, d) array, N >= 2
        Unit-norm embeddings of distinct data points.
    t : float
        > 0; Wang & Isola use 2.

    Returns
    -------
    float
        In [-4 t, 0] for unit vectors; lower = more uniform on the sphere.

    Source: Wang & Isola 2020, arXiv:2005.10242, Sec. 4.1, definition of
    L_uniform (their reference code averages over the pairs i < j, ``torch.pdist``).
    """
    a = _f64(z, "z", 2)
    if len(a) < 2:
        raise ValueError("uniformity needs at least two embeddings")
    sq = pdist(a, "sqeuclidean")  # (N (N - 1) / 2,)
    return float(logsumexp(-t * sq) - math.log(len(sq)))
