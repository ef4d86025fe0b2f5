"""Frechet distance in a classifier's feature space, and class coverage of generated images.

FID is computed by torchmetrics' ``FrechetInceptionDistance`` with an injected
feature network (no Inception, no torchvision). It is biased upwards at finite
sample sizes (Chong & Forsyth 2020, arXiv:1911.07023) and its covariances are
rank-deficient when there are no more samples than features (small n, mode
collapse): :func:`fid` warns in that case and never returns NaN.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from losslab.errors import UserError
from losslab.metrics.features import as_features, extract

# Diagonal offset of the fallback, as in the reference TTUR implementation (Heusel et al. 2017).
FALLBACK_EPS = 1e-6


def _as_images(x: Tensor | np.ndarray, name: str) -> Tensor:
    """float32 CPU tensor, checked for NaN / inf (ValueError)."""
    t = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contain NaN or inf")
    return t


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 0.0
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) with scipy's matrix square root.

    ``d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 ((S1 + eps I)(S2 + eps I))^{1/2})``.

    Parameters
    ----------
    mu1, mu2 : (F,) arrays
        Means.
    sigma1, sigma2 : (F, F) arrays
        Covariances (symmetric positive semi-definite).
    eps : float
        Offset added to both diagonals inside the square root (0: exact).

    Returns
    -------
    float
        The squared Frechet distance (FID), clamped at 0 against round-off.

    References
    ----------
    Dowson & Landau 1982; Heusel et al. 2017, arXiv:1706.08500, Eq. 6 and
    the TTUR code's ``calculate_frechet_distance`` (eps offset).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    offset = eps * np.eye(s1.shape[0])
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean).real)
    return max(value, 0.0)


class _Identity(nn.Module):
    """Features are the input: lets torchmetrics' FID run on precomputed features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: Tensor) -> Tensor:
        return x


def fid_from_features(real: Tensor | np.ndarray, fake: Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors.

    ``FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})`` with the means
    and unbiased covariances of the rows, accumulated in float64 by torchmetrics'
    ``FrechetInceptionDistance`` (the feature network injected as the identity).

    Parameters
    ----------
    real : (N, F) tensor or array
        Features of real images (any float dtype; used as float64).
    fake : (M, F) tensor or array
        Features of generated images.

    Returns
    -------
    float
        FID (squared feature units), finite and >= 0. Lower is better.

    Raises
    ------
    UserError
        If N or M is below 2 (a covariance needs two rows).
    ValueError
        If the features are not 2-D, differ in width, or are not finite.

    Warns
    -----
    UserWarning
        If ``min(N, M) <= F``: the covariances are rank-deficient and the estimate is
        strongly biased and unstable. If torchmetrics returns a non-finite value, it
        is recomputed with ``FALLBACK_EPS * I`` added to both covariances (TTUR
        reference code) and the warning says so.

    References
    ----------
    Heusel et al. 2017, arXiv:1706.08500, Eq. 6; Chong & Forsyth 2020,
    arXiv:1911.07023 (the bias at finite N).
    """
    real, fake = as_features(real, "real features"), as_features(fake, "generated features")
    n_real, n_fake = real.shape[0], fake.shape[0]
    if min(n_real, n_fake) < 2:
        raise UserError(f"FID needs at least 2 real and 2 generated images, got {n_real} and {n_fake}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature widths differ: {real.shape[1]} vs {fake.shape[1]}")
    num_features = real.shape[1]
    metric = FrechetInceptionDistance(feature=_Identity(num_features), normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    value = float(metric.compute())

    problems = []
    if min(n_real, n_fake) <= num_features:
        problems.append(
            f"FID from {min(n_real, n_fake)} samples <= {num_features} features: the covariance is "
            "rank-deficient, the estimate is strongly biased and unstable (use more samples)"
        )
    if not math.isfinite(value):
        # Recompute from torchmetrics' own float64 sums with an eps offset (TTUR code).
        mu_r = (metric.real_features_sum / n_real).numpy()
        mu_f = (metric.fake_features_sum / n_fake).numpy()
        cov_r = (metric.real_features_cov_sum.numpy() - n_real * np.outer(mu_r, mu_r)) / (n_real - 1)
        cov_f = (metric.fake_features_cov_sum.numpy() - n_fake * np.outer(mu_f, mu_f)) / (n_fake - 1)
        value = frechet_distance(mu_r, cov_r, mu_f, cov_f, eps=FALLBACK_EPS)
        problems.append(
            f"torchmetrics returned a non-finite FID; recomputed with {FALLBACK_EPS:g}*I added to both covariances"
        )
        if not math.isfinite(value):
            raise RuntimeError("FID is not finite even with a regularised covariance")
    if problems:
        warnings.warn("; ".join(problems), stacklevel=3)
    return max(value, 0.0)


def fid(
    real: Tensor | np.ndarray, fake: Tensor | np.ndarray, feature_net: nn.Module, *, chunk_size: int = 1000
) -> float:
    """Frechet distance between Gaussians fitted to the features of real and generated images.

    ``FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})`` with means
    and (unbiased) covariances of ``feature_net`` outputs, accumulated in
    float64 by torchmetrics' ``FrechetInceptionDistance`` (see :func:`fid_from_features`).

    Parameters
    ----------
    real : (N, C, H, W) tensor or array
        Real images, float, in the scale the feature network was trained on
        ([-1, 1] inside losslab); passed to the network unchanged.
    fake : (M, C, H, W) tensor or array
        Generated images, same scale.
    feature_net : nn.Module
        ``forward(x) -> (n, F)`` features and an int attribute ``num_features`` = F.
        It is put in eval mode for the computation and restored afterwards.
    chunk_size : int, keyword-only
        Images per forward pass (the result does not depend on it).

    Returns
    -------
    float
        FID (squared feature units), finite and >= 0. Lower is better.

    Raises
    ------
    UserError
        If fewer than 2 real or 2 generated images are given.
    ValueError
        If the images contain NaN or inf.

    Warns
    -----
    UserWarning
        If ``min(N, M) <= num_features`` (rank-deficient covariances), or if the
        eps-regularised fallback was needed (see :func:`fid_from_features`).

    References
    ----------
    Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge
    to a Local Nash Equilibrium", arXiv:1706.08500, Eq. 6.
    """
    real, fake = _as_images(real, "real images"), _as_images(fake, "generated images")
    if min(real.shape[0], fake.shape[0]) < 2:
        raise UserError(f"FID needs at least 2 real and 2 generated images, got {real.shape[0]} and {fake.shape[0]}")
    f_real, _ = extract(feature_net, real, chunk_size=chunk_size)
    f_fake, _ = extract(feature_net, fake, chunk_size=chunk_size)
    return fid_from_features(f_real, f_fake)


def class_stats_from_predictions(
    pred: Tensor | np.ndarray, num_classes: int, real_labels: Tensor | np.ndarray | None = None,
    *, min_count: int = 1, p_real: np.ndarray | None = None,
) -> dict:
    """:func:`class_histogram_stats` from predicted classes ``pred`` (M,) int instead of images.

    ``p_real`` (K,) probabilities, when given, replaces the histogram of ``real_labels``.
    """
    pred = torch.as_tensor(pred).long().reshape(-1).numpy()
    if pred.size == 0:
        raise ValueError("no generated images")
    counts = np.bincount(pred, minlength=num_classes).astype(np.float64)
    if counts.shape[0] != num_classes:
        raise ValueError(f"classifier predicts more than {num_classes} classes")
    if p_real is not None:
        p_real = np.asarray(p_real, dtype=np.float64)
    elif real_labels is None:
        p_real = np.full(num_classes, 1.0 / num_classes)
    else:
        labels = torch.as_tensor(real_labels).long().numpy().reshape(-1)
        if labels.size == 0 or labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"real labels must be non-empty and in [0, {num_classes})")
        p_real = np.bincount(labels, minlength=num_classes) / labels.size
    p_gen = counts / counts.sum()
    on = p_gen > 0
    with np.errstate(divide="ignore"):
        class_kl = float(np.sum(p_gen[on] * (np.log(p_gen[on]) - np.log(p_real[on]))))
    return {
        "classes_covered": int((counts >= min_count).sum()),
        "class_kl": class_kl,
        "class_counts": [int(c) for c in counts],
    }


@torch.no_grad()
def class_histogram_stats(
    fake: Tensor | np.ndarray,
    feature_net: nn.Module,
    num_classes: int,
    real_labels: Tensor | np.ndarray | None = None,
    *,
    min_count: int = 1,
    chunk_size: int = 1000,
) -> dict:
    """Classes covered by generated images and KL of their class histogram.

    The classifier's predicted classes of the generated images form
    ``p_gen``; ``class_kl = KL(p_gen || p_real) = sum_c p_gen[c] log(p_gen[c] / p_real[c])``
    (``0 log 0 = 0``), where ``p_real`` is the histogram of ``real_labels`` or
    uniform. A generator that drops classes has few ``classes_covered`` and a
    large ``class_kl`` (the "reverse KL over modes" of PacGAN on stacked MNIST).

    Parameters
    ----------
    fake : (M, C, H, W) tensor or array
        Generated images, in the classifier's input scale; M >= 1.
    feature_net : nn.Module
        Classifier with ``logits(x) -> (n, num_classes)``.
    num_classes : int
        Number of classes.
    real_labels : (N,) int tensor or array, optional
        Labels of real data defining ``p_real``; ``None`` means uniform.
    min_count : int, keyword-only
        A class is covered when predicted at least ``min_count`` times.
    chunk_size : int, keyword-only
        Images per forward pass.

    Returns
    -------
    dict
        ``classes_covered`` (int), ``class_kl`` (float, nats; ``math.inf``
        if a class absent from ``real_labels`` is predicted), ``class_counts``
        (list of ``num_classes`` ints).

    Raises
    ------
    ValueError
        If ``fake`` is empty or contains NaN / inf, or a label is outside
        ``[0, num_classes)``.

    References
    ----------
    Lin et al. 2018, "PacGAN", arXiv:1712.04086, Sec. 5 (modes covered and
    KL of the mode histogram, computed with a pretrained classifier).
    """
    x = _as_images(fake, "generated images")
    if x.shape[0] == 0:
        raise ValueError("no generated images")
    was_training = feature_net.training
    feature_net.eval()
    try:
        dev = next((p.device for p in feature_net.parameters()), torch.device("cpu"))  # runs where the net is
        pred = torch.cat([feature_net.logits(c.to(dev)).argmax(1).cpu() for c in x.split(chunk_size)])
    finally:
        feature_net.train(was_training)
    return class_stats_from_predictions(pred, num_classes, real_labels, min_count=min_count)
