"""Sample-quality metrics computed on feature vectors of real and generated images.

Every function here takes features (or logits) that a feature network has
already produced, as float64, so that the network runs once per image set
and the metrics share its output. :class:`ImageMetrics` wraps them in the
torchmetrics contract (``update(images, real=...)``, ``compute()``,
``reset()``); :func:`losslab.metrics.evaluate` uses it.

============================  ==================================================
function                      metric (source)
============================  ==================================================
:func:`kid`                   Kernel Inception Distance: unbiased MMD^2, cubic
                              polynomial kernel, mean and std over subsets
                              (Binkowski et al. 2018, arXiv:1801.01401, Sec. 3;
                              kernel from ``torchmetrics``)
:func:`inception_score`       exp E_x KL(p(y|x) || p(y)) over splits
                              (Salimans et al. 2016, arXiv:1606.03498, Sec. 4)
:func:`prdc`                  precision, recall, density, coverage of k-NN balls
                              (Naeem et al. 2020, arXiv:2002.09797, Eqs. 1-4;
                              computed by the ``prdc`` package)
:func:`two_sample_accuracy`   held-out accuracy of a fresh real-vs-generated
                              classifier (Lopez-Paz & Oquab 2017, arXiv:1610.06545)
============================  ==================================================

FID lives in :mod:`losslab.metrics.fid` and the Wasserstein distances in
:mod:`losslab.metrics.wasserstein`; both accept these features too.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from typing import Any

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
from prdc import compute_prdc
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image.kid import poly_kernel

from losslab.errors import UserError
from losslab.metrics.features import ClassifierNet, accuracy, as_features, extract
from losslab.metrics.fid import class_stats_from_predictions, fid_from_features
from losslab.metrics.wasserstein import sliced_wasserstein

# Binkowski et al. 2018 (and torchmetrics / torch-fidelity): 100 subsets of 1,000.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
# Naeem et al. 2020 recommend k = 5.
PRDC_K = 5
# Salimans et al. 2016 report the mean and std over 10 splits.
IS_SPLITS = 10
# Classes covered: a class counts when at least max(COVER_MIN_SAMPLES, COVER_MIN_SHARE * M / K) of the
# M generated samples are classified to it with softmax probability >= COVER_MIN_PROB.
COVER_MIN_PROB = 0.9
COVER_MIN_SHARE = 0.2
COVER_MIN_SAMPLES = 5
# Above this many rows the full kernel matrices (8 n^2 bytes each) are not built; KID goes subset by subset.
_KID_FULL_KERNEL_MAX = 5000


# ----------------------------------------------------------------------------- KID


def kid(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: the unbiased MMD^2 with a polynomial kernel, averaged over subsets.

    For each of ``subsets`` draws, ``m = subset_size`` real and ``m`` generated
    rows are picked without replacement and

    ``MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (m (m-1))
    - 2 sum_{i, j} k(x_i, y_j) / m^2``

    with ``k(x, y) = (gamma x.y + coef)^degree``, ``gamma = 1 / F``. The draws come
    from a ``torch.Generator`` seeded with ``seed``, so the value is reproducible
    (torchmetrics draws from the global RNG). Same estimator and defaults as
    torchmetrics' ``KernelInceptionDistance``, in float64; for up to 5,000 rows the
    kernel matrices are computed once and each subset sums its block.

    Parameters
    ----------
    real : (N, F) tensor or array
        Features of real images.
    fake : (M, F) tensor or array
        Features of generated images.
    subsets : int, keyword-only
        Number of subsets, >= 1.
    subset_size : int, keyword-only
        Rows per subset, ``2 <= subset_size <= min(N, M)``.
    degree, gamma, coef : keyword-only
        Polynomial kernel ``(gamma x.y + coef)^degree``; ``gamma=None`` means ``1 / F``.
    seed : int, keyword-only
        Seed of the subset draws.

    Returns
    -------
    (float, float)
        Mean and standard deviation (``ddof=0``, as torchmetrics) of MMD^2 over the
        subsets, squared feature units. Unbiased: its expectation is 0 when both sets
        come from one distribution, so small values can be negative. Lower is better.

    Raises
    ------
    UserError
        If ``subset_size`` exceeds N or M, is below 2, or ``subsets < 1``.
    ValueError
        If the features are not 2-D, differ in width, or are not finite.

    References
    ----------
    Binkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs",
    arXiv:1801.01401, Sec. 3 (KID) and Eq. 4 (unbiased MMD^2); Gretton et al.
    2012, JMLR 13, Lemma 6.
    """
    x, y = as_features(real, "real features"), as_features(fake, "generated features")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature widths differ: {x.shape[1]} vs {y.shape[1]}")
    n, m_fake, m = x.shape[0], y.shape[0], int(subset_size)
    if int(subsets) < 1:
        raise UserError(f"KID needs at least 1 subset, got {subsets}")
    if m < 2 or m > min(n, m_fake):
        raise UserError(
            f"KID subset size {m} must be between 2 and the number of samples "
            f"({n} real, {m_fake} generated); use a smaller subset size or more samples"
        )
    g = torch.Generator().manual_seed(int(seed))
    idx_x = torch.stack([torch.randperm(n, generator=g)[:m] for _ in range(subsets)])  # (S, m)
    idx_y = torch.stack([torch.randperm(m_fake, generator=g)[:m] for _ in range(subsets)])  # (S, m)

    if max(n, m_fake) <= _KID_FULL_KERNEL_MAX:
        # Kernel matrices once; the block sum of subset S is s^T K s with s its indicator vector.
        k_xx, k_yy, k_xy = (poly_kernel(a, b, degree, gamma, coef) for a, b in ((x, x), (y, y), (x, y)))
        s_x = torch.zeros(n, subsets, dtype=torch.float64)
        s_x[idx_x.T, torch.arange(subsets)] = 1.0  # (N, S) column s = indicator of subset s
        s_y = torch.zeros(m_fake, subsets, dtype=torch.float64)
        s_y[idx_y.T, torch.arange(subsets)] = 1.0
        sum_xx = ((k_xx @ s_x) * s_x).sum(0) - (k_xx.diagonal()[:, None] * s_x).sum(0)  # (S,) i != j
        sum_yy = ((k_yy @ s_y) * s_y).sum(0) - (k_yy.diagonal()[:, None] * s_y).sum(0)
        sum_xy = ((k_xy @ s_y) * s_x).sum(0)
        values = (sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * sum_xy / m**2
    else:
        values = torch.stack([_mmd2_unbiased(x[i], y[j], degree, gamma, coef) for i, j in zip(idx_x, idx_y)])
    return float(values.mean()), float(values.std(unbiased=False))


def _mmd2_unbiased(x: Tensor, y: Tensor, degree: int, gamma: float | None, coef: float) -> Tensor:
    """Unbiased MMD^2 of two (m, F) sets (Gretton et al. 2012, Lemma 6)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = (poly_kernel(a, b, degree, gamma, coef) for a, b in ((x, x), (y, y), (x, y)))
    off_xx = k_xx.sum() - k_xx.diagonal().sum()
    off_yy = k_yy.sum() - k_yy.diagonal().sum()
    return (off_xx + off_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / m**2


# ----------------------------------------------------------------------------- Inception Score


def inception_score(logits: Tensor | np.ndarray, *, splits: int = IS_SPLITS) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` of a classifier's logits, mean and std over splits.

    The rows are cut, in order, into ``splits`` near-equal parts (as the original
    code; torchmetrics shuffles first with the global RNG); in each part
    ``p(y)`` is the mean of the rows' ``softmax`` and the score is
    ``exp(mean_x sum_y p(y|x) (log p(y|x) - log p(y)))``. Computed in float64.
    A classifier that is uniform on every image scores 1; one that is certain on
    every image, with classes equally frequent, scores the number of classes.

    Parameters
    ----------
    logits : (N, K) tensor or array
        Class logits of generated images (any additive constant per row).
    splits : int, keyword-only
        Number of parts, ``1 <= splits <= N``.

    Returns
    -------
    (float, float)
        Mean and standard deviation (``ddof=1``, as torchmetrics; 0 for one split)
        of the score over the parts, in ``[1, K]``. Higher is better.

    Raises
    ------
    UserError
        If ``splits`` is below 1 or above N.
    ValueError
        If the logits are not 2-D or not finite.

    References
    ----------
    Salimans et al. 2016, "Improved Techniques for Training GANs",
    arXiv:1606.03498, Sec. 4; Barratt & Sharma 2018, arXiv:1801.01973 (why the
    score depends on the classifier, so scores of different classifiers are not comparable).
    """
    z = as_features(logits, "logits")
    if not 1 <= int(splits) <= z.shape[0]:
        raise UserError(f"Inception Score with {splits} splits needs at least {splits} images, got {z.shape[0]}")
    log_p = torch.log_softmax(z, dim=1)  # (N, K) log p(y|x)
    scores = []
    for part in torch.tensor_split(log_p, int(splits)):
        log_py = torch.logsumexp(part, dim=0) - math.log(part.shape[0])  # (K,) log mean_x p(y|x)
        kl = (part.exp() * (part - log_py)).sum(1).mean()
        scores.append(torch.exp(kl))
    s = torch.stack(scores)
    return float(s.mean()), float(s.std()) if len(scores) > 1 else 0.0


# ----------------------------------------------------------------------------- PRDC


def prdc(real: Tensor | np.ndarray, fake: Tensor | np.ndarray, *, k: int = PRDC_K) -> dict[str, float]:
    """Precision, recall, density and coverage of generated features against real ones.

    With ``B(x, r)`` the ball around ``x`` whose radius ``r`` is the distance to the
    k-th nearest other point of the same set (Euclidean):

    * precision = fraction of generated ``y_j`` inside some real ball ``B(x_i, r_i)``
      (Eq. 1; from Kynkaanniemi et al. 2019);
    * recall = fraction of real ``x_i`` inside some generated ball (Eq. 2);
    * density = ``(1 / (k M)) sum_j #{i : y_j in B(x_i, r_i)}`` (Eq. 3), may exceed 1;
    * coverage = fraction of real ``x_i`` whose ball holds at least one generated point (Eq. 4).

    Computed by ``prdc.compute_prdc`` (the authors' package; its progress print is
    silenced). It builds three dense distance matrices: ``4 (N^2 + M^2 + N M)`` bytes.

    Parameters
    ----------
    real : (N, F) tensor or array
        Features of real images, N > k.
    fake : (M, F) tensor or array
        Features of generated images, M > k.
    k : int, keyword-only
        Neighbourhood size (the paper uses 5).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``coverage`` in [0, 1] and ``density`` >= 0 (1 for
        matching distributions); higher is better for all four.

    Raises
    ------
    UserError
        If N or M is not larger than ``k``, or ``k < 1``.
    ValueError
        If the features are not 2-D, differ in width, or are not finite.

    References
    ----------
    Naeem, Oh, Uh, Choi & Yoo 2020, "Reliable Fidelity and Diversity Metrics for
    Generative Models", arXiv:2002.09797, Eqs. 1-4; Kynkaanniemi et al. 2019,
    arXiv:1904.06991 (precision and recall).
    """
    x, y = as_features(real, "real features"), as_features(fake, "generated features")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature widths differ: {x.shape[1]} vs {y.shape[1]}")
    if int(k) < 1 or min(x.shape[0], y.shape[0]) <= int(k):
        raise UserError(
            f"precision/recall/density/coverage with k={k} need more than {k} real and generated samples, "
            f"got {x.shape[0]} and {y.shape[0]}"
        )
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
        out = compute_prdc(x.numpy(), y.numpy(), nearest_k=int(k))
    return {key: float(out[key]) for key in ("precision", "recall", "density", "coverage")}


# ----------------------------------------------------------------------------- two-sample classifier


def two_sample_accuracy(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray,
    *,
    test_fraction: float = 0.5,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Classifier two-sample test: held-out accuracy of a fresh real-vs-generated classifier.

    Equal numbers of real and generated rows are split into a training part and a
    held-out part (``test_fraction``). A fresh classifier is trained on the training
    part (images ``(N, C, H, W)``: the small CNN :class:`~losslab.metrics.features.ClassifierNet`
    with 2 classes, Adam, cross-entropy; vectors ``(N, d)``: scikit-learn's logistic
    regression on standardised inputs) and scored on the held-out part. It does not
    trust the GAN's own critic. Under the null hypothesis (same distribution) the
    held-out accuracy is ``Binomial(n_test, 1/2) / n_test``.

    Parameters
    ----------
    real, fake : (N, ...) tensors or arrays
        Real and generated samples (images in [-1, 1], or feature vectors); the
        larger set is cut to the size of the smaller.
    test_fraction : float, keyword-only
        Fraction held out, in (0, 1).
    epochs, batch_size, lr : keyword-only
        Training of the CNN.
    seed : int, keyword-only
        Seed of the split, the initial weights and the minibatch order.

    Returns
    -------
    dict
        ``c2st_accuracy`` in [0, 1] (0.5: indistinguishable, 1: always told apart),
        ``c2st_pvalue`` (one-sided binomial test of accuracy > 1/2; small means the
        generated samples are distinguishable), ``c2st_n_test`` (held-out rows).

    Raises
    ------
    UserError
        If fewer than 4 rows of either set are given.
    ValueError
        If the shapes differ or the samples are not finite.

    References
    ----------
    Lopez-Paz & Oquab 2017, "Revisiting Classifier Two-Sample Tests",
    arXiv:1610.06545, Sec. 2 (accuracy on a held-out split, binomial null).
    """
    x = torch.as_tensor(real).detach().to("cpu", torch.float32)
    y = torch.as_tensor(fake).detach().to("cpu", torch.float32)
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"real and generated samples differ in shape: {tuple(x.shape[1:])} vs {tuple(y.shape[1:])}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("samples contain NaN or inf")
    n = min(x.shape[0], y.shape[0])
    if n < 4:
        raise UserError(f"the two-sample classifier needs at least 4 real and 4 generated samples, "
                        f"got {x.shape[0]} and {y.shape[0]}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(int(seed))
    x, y = x[torch.randperm(x.shape[0], generator=g)[:n]], y[torch.randperm(y.shape[0], generator=g)[:n]]
    n_test = max(1, min(n - 1, round(n * test_fraction)))
    data = torch.cat([x, y])  # (2n, ...): real rows first
    labels = torch.cat([torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64)])
    test = torch.cat([torch.arange(n_test), n + torch.arange(n_test)])
    train = torch.cat([torch.arange(n_test, n), n + torch.arange(n_test, n)])

    if data.ndim == 4:
        acc = _cnn_accuracy(data[train], labels[train], data[test], labels[test],
                            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    else:
        flat = data.reshape(data.shape[0], -1).double().numpy()
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on separable data
            clf.fit(flat[train.numpy()], labels[train].numpy())
        acc = float(clf.score(flat[test.numpy()], labels[test].numpy()))
    n_eval = 2 * n_test
    correct = round(acc * n_eval)
    pvalue = float(scipy.stats.binomtest(correct, n_eval, 0.5, alternative="greater").pvalue)
    return {"c2st_accuracy": acc, "c2st_pvalue": pvalue, "c2st_n_test": n_eval}


def _cnn_accuracy(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, *,
                  epochs: int, batch_size: int, lr: float, seed: int) -> float:
    """Train a 2-class ClassifierNet (Adam, cross-entropy) and return its held-out accuracy."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ClassifierNet(tuple(x_train.shape[1:]), num_classes=2, num_features=64)
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(x_train.shape[0], generator=g)
        for i in range(0, x_train.shape[0], batch_size):
            idx = perm[i : i + batch_size]
            if idx.numel() < 2:  # BatchNorm needs two rows
                continue
            loss = F.cross_entropy(net.logits(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return accuracy(net, x_test, y_test)


# ----------------------------------------------------------------------------- classes covered


def confident_class_stats(
    logits: Tensor | np.ndarray,
    num_classes: int,
    real_labels: Tensor | np.ndarray | None = None,
    *,
    min_prob: float = COVER_MIN_PROB,
    min_share: float = COVER_MIN_SHARE,
    min_samples: int = COVER_MIN_SAMPLES,
) -> dict[str, Any]:
    """Classes covered by generated images, counting only confident, repeated predictions.

    A class is covered when at least ``max(min_samples, min_share * M / K)`` of the ``M``
    samples are classified to it with softmax probability ``>= min_prob`` (defaults: 0.9,
    and 5 samples or a fifth of the uniform share ``M / K``, e.g. 40 of 2,000 samples over
    10 classes). Counting a class once a single sample is argmax-classified to it made
    real digits of two classes "cover" 4 classes (misclassified strokes, and generated
    noise lands in some class), and counted blobs no person would call a digit.
    ``class_kl`` and ``class_counts`` keep the plain argmax histogram of
    :func:`losslab.metrics.fid.class_stats_from_predictions`.

    Parameters
    ----------
    logits : (M, K) tensor or array
        Classifier logits of the generated images, M >= 1, K == num_classes.
    num_classes : int
    real_labels : (N,) ints, optional
        Real labels defining ``p_real`` of ``class_kl``; None: uniform.
    min_prob : float in (0, 1], keyword-only
    min_share : float >= 0, keyword-only
    min_samples : int >= 1, keyword-only

    Returns
    -------
    dict
        ``classes_covered`` (int), ``confident_counts`` (K ints: confident predictions
        per class), ``cover_threshold`` (samples needed), ``class_kl``, ``class_counts``.

    Raises
    ------
    ValueError
        Logits not (M, K) with K == num_classes, M == 0, non-finite, or bad thresholds.

    Reference: Lin et al. 2018, "PacGAN", arXiv:1712.04086, Sec. 5 (modes covered by
    classifier predictions); the confidence and count thresholds are losslab's.
    """
    z = torch.as_tensor(logits).detach().to("cpu", torch.float64)
    if z.ndim != 2 or z.shape[1] != num_classes or z.shape[0] == 0:
        raise ValueError(f"logits must be (M >= 1, {num_classes}), got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("logits contain NaN or inf")
    if not (0.0 < min_prob <= 1.0 and min_share >= 0 and min_samples >= 1):
        raise ValueError("need 0 < min_prob <= 1, min_share >= 0, min_samples >= 1")
    prob, pred = torch.softmax(z, dim=1).max(dim=1)
    confident = np.bincount(pred[prob >= min_prob].numpy(), minlength=num_classes)
    threshold = max(float(min_samples), min_share * z.shape[0] / num_classes)
    out = class_stats_from_predictions(pred, num_classes, real_labels)
    out["classes_covered"] = int((confident >= threshold).sum())
    out["confident_counts"] = [int(c) for c in confident]
    out["cover_threshold"] = threshold
    return out


# ----------------------------------------------------------------------------- torchmetrics contract


class ImageMetrics(Metric):
    """FID, KID, Inception Score, PRDC and sliced W2 of generated vs real images, one feature pass.

    Follows the torchmetrics contract: ``update(images, real=True|False)`` runs the
    injected feature network on a batch (eval mode, no gradients) and keeps its
    float64 features (and, for generated images, the classifier's logits);
    ``compute()`` returns a dict; ``reset()`` empties it. Updating in chunks gives
    the same result as one update, and every metric is computed from the same
    features. :func:`losslab.metrics.evaluate` computes its image metrics with it.

    Parameters
    ----------
    feature_net : nn.Module
        ``forward(x) -> (n, F)`` features and int ``num_features``.
    classifier : nn.Module, keyword-only, optional
        Network with ``logits(x) -> (n, K)`` for the Inception Score; default
        ``feature_net`` when it has a ``logits`` method, else no Inception Score.
    kid_subsets, kid_subset_size : int
        See :func:`kid`; the subset size is cut to the smaller set with a warning.
    prdc_k : int
        See :func:`prdc`.
    is_splits : int
        See :func:`inception_score`; cut to the number of generated images.
    seed : int
        Seed of the KID subsets and of the sliced-Wasserstein directions.
    chunk_size : int, optional
        Images per forward pass of either network (the result does not depend on
        it, up to float32 round-off); default 200 for a network with more than 512
        features (Inception: 299x299 inputs), else 1000, chosen per network.

    Attributes
    ----------
    higher_is_better : None
        The result is a dict; ``losslab.metrics.METRIC_INFO`` gives the direction per key.
    """

    higher_is_better = None
    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        feature_net: nn.Module,
        *,
        classifier: nn.Module | None = None,
        kid_subsets: int = KID_SUBSETS,
        kid_subset_size: int = KID_SUBSET_SIZE,
        prdc_k: int = PRDC_K,
        is_splits: int = IS_SPLITS,
        seed: int = 0,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feature_net = feature_net
        if classifier is None and hasattr(feature_net, "logits"):
            classifier = feature_net
        self.classifier = classifier
        self.kid_subsets, self.kid_subset_size = int(kid_subsets), int(kid_subset_size)
        self.prdc_k, self.is_splits, self.seed, self.chunk_size = int(prdc_k), int(is_splits), int(seed), chunk_size
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")
        self.add_state("fake_logits", [], dist_reduce_fx="cat")

    def update(self, images: Tensor, real: bool) -> None:  # type: ignore[override]
        """Add a batch ``(n, C, H, W)`` of real (``real=True``) or generated images."""
        chunk = self._chunk(self.feature_net)
        if real:
            feats, _ = extract(self.feature_net, images, chunk_size=chunk)
            self.real_features.append(feats)
            return
        shared = self.classifier is self.feature_net  # one pass gives features and logits
        feats, logits = extract(self.feature_net, images, chunk_size=chunk, logits=shared)
        if self.classifier is not None and not shared:
            _, logits = extract(self.classifier, images, chunk_size=self._chunk(self.classifier), logits=True)
        self.fake_features.append(feats)
        if logits is not None:
            self.fake_logits.append(logits)

    def _chunk(self, net: nn.Module) -> int:
        """Images per forward pass of ``net``: ``chunk_size``, or 200 for wide networks, else 1000."""
        if self.chunk_size is not None:
            return self.chunk_size
        return 200 if int(getattr(net, "num_features", 0)) > 512 else 1000

    def features(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """The features seen so far: real ``(N, F)``, generated ``(M, F)`` and their logits ``(M, K)`` or None.

        Raises
        ------
        UserError
            If no real or no generated images were added.
        """
        if not self.real_features or not self.fake_features:
            raise UserError("ImageMetrics needs real and generated images before compute()")
        logits = torch.cat(self.fake_logits) if self.fake_logits else None
        return torch.cat(self.real_features), torch.cat(self.fake_features), logits

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        """All metrics of the images seen so far (see :func:`metrics_from_features`)."""
        real, fake, logits = self.features()
        return metrics_from_features(
            real, fake, logits, kid_subsets=self.kid_subsets, kid_subset_size=self.kid_subset_size,
            prdc_k=self.prdc_k, is_splits=self.is_splits, seed=self.seed,
        )


def metrics_from_features(
    real: Tensor,
    fake: Tensor,
    fake_logits: Tensor | None = None,
    *,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    prdc_k: int = PRDC_K,
    is_splits: int = IS_SPLITS,
    seed: int = 0,
) -> dict[str, Any]:
    """FID, KID, Inception Score, PRDC and sliced W2 from precomputed features.

    Parameters
    ----------
    real : (N, F) float64 tensor
        Features of real images, N >= 2.
    fake : (M, F) float64 tensor
        Features of generated images, M >= 2.
    fake_logits : (M, K) tensor, optional
        Classifier logits of the generated images (Inception Score); None skips it.
    kid_subsets, kid_subset_size, prdc_k, is_splits, seed
        As in :class:`ImageMetrics`. The KID subset size and the number of IS
        splits are cut to what the sample sizes allow, with a ``UserWarning``.

    Returns
    -------
    dict
        ``fid``, ``kid``, ``kid_std``, ``precision``, ``recall``, ``density``,
        ``coverage`` (skipped with a warning when a set has ``<= prdc_k`` rows),
        ``feature_swd`` (sliced W2 in feature space, 200 directions), and
        ``inception_score``, ``inception_score_std`` when logits are given.

    Raises
    ------
    UserError
        If either set has fewer than 2 rows.
    """
    real, fake = as_features(real, "real features"), as_features(fake, "generated features")
    n = min(real.shape[0], fake.shape[0])
    out: dict[str, Any] = {"fid": fid_from_features(real, fake)}
    size = min(kid_subset_size, n)
    if size < kid_subset_size:
        warnings.warn(f"KID subset size cut from {kid_subset_size} to {size}, the size of the smaller sample",
                      stacklevel=2)
    out["kid"], out["kid_std"] = kid(real, fake, subsets=kid_subsets, subset_size=size, seed=seed)
    if n > prdc_k:
        out.update(prdc(real, fake, k=prdc_k))
    else:
        warnings.warn(f"precision/recall/density/coverage skipped: they need more than {prdc_k} samples per set",
                      stacklevel=2)
    out["feature_swd"] = sliced_wasserstein(real, fake, seed=seed)
    if fake_logits is not None:
        splits = min(is_splits, fake_logits.shape[0])
        if splits < is_splits:
            warnings.warn(f"Inception Score splits cut from {is_splits} to {splits}", stacklevel=2)
        out["inception_score"], out["inception_score_std"] = inception_score(fake_logits, splits=splits)
    return out
