"""Classification losses and their building blocks, written to stay finite.

Every loss is a keyword-only pure function returning a scalar tensor (the mean
over the batch) that the optimiser *minimises*, in nats. The building blocks
are written out in their numerically stable forms so that a reader can see why
they are stable; the tests check each against ``torch.nn.functional``.

What the inputs mean:

* **logits** ``z``: unbounded real numbers; the model's probability is
  ``sigmoid(z)`` (binary) or ``softmax(z)`` (``K`` classes, last dimension).
* **probabilities** ``p`` in ``[0, 1]`` (``bce`` only): already squashed, so
  the loss must clamp them before taking a log, and it cannot recover a
  gradient once ``sigmoid`` has saturated to exactly 0 or 1. Prefer
  :func:`bce_with_logits`.
* **targets**: ``bce``/``bce-with-logits`` take probabilities in ``[0, 1]``
  (hard 0/1 labels or soft labels); ``focal`` takes hard 0/1 labels; ``cce``
  takes a distribution over classes per row (one-hot or soft); ``sparse-cce``
  takes integer class indices.

The three stability tricks used throughout:

1. ``sigmoid``/``softplus`` only ever evaluate ``exp(-|z|)`` (in ``(0, 1]``),
   never ``exp(|z|)``, which overflows at ``|z| > 88`` in float32.
2. ``log(sigmoid(z)) = -softplus(-z)`` and ``log(1 - sigmoid(z)) = -softplus(z)``
   are computed from the logit, never from the rounded probability.
3. ``softmax``/``log_softmax`` subtract the row maximum first (the result is
   shift-invariant), so the largest exponent is ``exp(0) = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from losslab.errors import UserError

# --------------------------------------------------------------------------- building blocks


def _neg_abs(z: Tensor) -> Tensor:
    """``-|z|`` with the one-sided derivative ``-1`` at ``z = 0`` (``abs`` has 0 there).

    Keeping a non-zero derivative at 0 makes the derivatives of
    :func:`sigmoid` and :func:`softplus` exact at ``z = 0`` as well.
    """
    return torch.where(z >= 0, -z, z)


def sigmoid(z: Tensor) -> Tensor:
    """Logistic function ``1 / (1 + exp(-z))``, stable for any ``z``.

    With ``e = exp(-|z|)`` in ``(0, 1]``: ``sigmoid(z) = 1 / (1 + e)`` for
    ``z >= 0`` and ``e / (1 + e)`` for ``z < 0``. Both branches are finite for
    every input (no ``exp`` of a large positive number), so neither the value
    nor the gradient ``sigmoid(z) (1 - sigmoid(z))`` can become inf or NaN.

    Parameters
    ----------
    z : Tensor, any shape
        Logits.

    Returns
    -------
    Tensor, same shape as ``z``
        Probabilities in ``[0, 1]`` (exactly 0 or 1 only where the float type
        cannot represent the difference, e.g. ``z < -104`` in float32).

    References
    ----------
    Bishop 2006, "Pattern Recognition and Machine Learning", Sec. 4.2 (Eq. 4.59).
    """
    e = torch.exp(_neg_abs(z))
    return torch.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(z: Tensor) -> Tensor:
    """``log(1 + exp(z))`` as ``max(z, 0) + log1p(exp(-|z|))``, stable for any ``z``.

    ``softplus(z) = -log(sigmoid(-z))``: the binary cross-entropy of logit
    ``z`` against target 0. Its derivative is ``sigmoid(z)``.

    Parameters
    ----------
    z : Tensor, any shape
        Logits.

    Returns
    -------
    Tensor, same shape as ``z``
        Values > 0 (in nats); ``~ z`` for large ``z``, ``~ exp(z)`` for very negative ``z``.

    References
    ----------
    Dugas et al. 2001, "Incorporating second-order functional knowledge for
    better option pricing" (NIPS 13): the softplus function.
    """
    log1p_e = torch.log1p(torch.exp(_neg_abs(z)))
    return torch.where(z >= 0, z + log1p_e, log1p_e)


def log_sigmoid(z: Tensor) -> Tensor:
    """``log(sigmoid(z)) = -softplus(-z)``, finite for any ``z`` (no ``log(0)``).

    Parameters
    ----------
    z : Tensor, any shape
        Logits.

    Returns
    -------
    Tensor, same shape as ``z``
        Log-probabilities <= 0 (in nats).
    """
    return -softplus(-z)


def logit(p: Tensor, eps: float | None = None) -> Tensor:
    """Inverse of :func:`sigmoid`: ``log(p / (1 - p)) = log(p) - log1p(-p)``.

    ``log1p(-p)`` keeps full precision for small ``p``. The endpoints map to
    ``-inf`` (``p = 0``) and ``+inf`` (``p = 1``) unless ``eps`` clamps ``p``
    into ``[eps, 1 - eps]`` first (as ``torch.logit`` does).

    Parameters
    ----------
    p : Tensor, any shape
        Probabilities in ``[0, 1]``.
    eps : float, optional
        Clamp bound in ``[0, 0.5)``.

    Returns
    -------
    Tensor, same shape as ``p``
        Logits (in nats of odds).

    Raises
    ------
    ValueError
        If any ``p`` is outside ``[0, 1]`` or NaN (the logit would be NaN).
    UserError
        If ``eps`` is outside ``[0, 0.5)``.
    """
    _check_probabilities(p, "p")
    if eps is not None:
        if not 0.0 <= eps < 0.5:
            raise UserError(f"logit eps must be in [0, 0.5), got {eps}")
        p = p.clamp(eps, 1.0 - eps)
    return torch.log(p) - torch.log1p(-p)


def log_softmax(z: Tensor, dim: int = -1) -> Tensor:
    """``log softmax(z) = (z - m) - log(sum exp(z - m))`` with ``m = max(z)``.

    Subtracting the (detached) row maximum changes nothing mathematically
    (softmax is shift-invariant; the derivatives with respect to ``m`` cancel)
    but makes the largest exponent ``exp(0) = 1``: no overflow, and at least
    one term of the sum is 1, so the log never sees 0.

    Parameters
    ----------
    z : Tensor, shape (..., K, ...)
        Logits; classes along ``dim``.
    dim : int
        The class dimension.

    Returns
    -------
    Tensor, same shape as ``z``
        Log-probabilities <= 0 whose ``exp`` sums to 1 along ``dim``.

    References
    ----------
    Goodfellow, Bengio & Courville 2016, "Deep Learning", Sec. 4.1 (softmax
    overflow and underflow).
    """
    m = z.amax(dim=dim, keepdim=True).detach()  # (..., 1, ...) row maximum
    shifted = z - m
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def softmax(z: Tensor, dim: int = -1) -> Tensor:
    """``exp(z - m) / sum exp(z - m)`` with ``m = max(z)`` along ``dim``.

    Parameters
    ----------
    z : Tensor, shape (..., K, ...)
        Logits; classes along ``dim``.
    dim : int
        The class dimension.

    Returns
    -------
    Tensor, same shape as ``z``
        Probabilities in ``[0, 1]`` summing to 1 along ``dim``.

    References
    ----------
    Bridle 1990, "Probabilistic interpretation of feedforward classification
    network outputs"; Goodfellow, Bengio & Courville 2016, Sec. 4.1.
    """
    e = torch.exp(z - z.amax(dim=dim, keepdim=True).detach())
    return e / e.sum(dim=dim, keepdim=True)


# --------------------------------------------------------------------------- checks


def _check_same_shape(a: Tensor, b: Tensor, a_name: str, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} has shape {tuple(a.shape)} but {b_name} has {tuple(b.shape)}")


def _check_probabilities(p: Tensor, name: str) -> None:
    if not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError(f"{name} must lie in [0, 1] (and not be NaN)")


def _check_label_smoothing(label_smoothing: float) -> None:
    if not 0.0 <= label_smoothing <= 1.0:
        raise UserError(f"label_smoothing must be in [0, 1], got {label_smoothing}")


def _check_logits_2d(logits: Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, K), got {tuple(logits.shape)}")


# --------------------------------------------------------------------------- binary losses


def bce(*, probs: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """Binary cross-entropy on probabilities, clamped: ``-mean(y log p + (1 - y) log(1 - p))``.

    ``p`` is clamped into ``[eps, 1 - eps]`` before the logs (the Keras
    convention), so the loss is at most ``-log(eps)`` (16.1 nats for the
    default) and never inf. Where the clamp is active the gradient is exactly
    0: once ``sigmoid`` has rounded a logit to a probability of 0 or 1 no
    clamp can bring the learning signal back. That is why models should output
    logits and use :func:`bce_with_logits`.

    Agrees with ``torch.nn.functional.binary_cross_entropy`` for ``p`` in
    ``[eps, 1 - eps]``; outside, torch clamps each log at -100 instead.

    Parameters
    ----------
    probs : Tensor, any shape
        Predicted probabilities of class 1, in ``[0, 1]``.
    target : Tensor, same shape
        Target probabilities in ``[0, 1]`` (hard 0/1 labels or soft labels).
    eps : float
        Clamp bound in ``(0, 0.5)``; 1e-7 by default (float32 resolves ``1 - 1e-7``).

    Returns
    -------
    Tensor
        Scalar >= 0 (nats), the mean over all elements.

    Raises
    ------
    ValueError
        If shapes differ or a probability is outside ``[0, 1]`` / NaN.
    UserError
        If ``eps`` is outside ``(0, 0.5)``.

    References
    ----------
    Bishop 2006, "Pattern Recognition and Machine Learning", Eq. 4.90
    (cross-entropy error for logistic regression); clamping as in Keras'
    ``binary_crossentropy`` (Chollet et al. 2015).
    """
    _check_same_shape(probs, target, "probs", "target")
    _check_probabilities(probs, "probs")
    _check_probabilities(target, "target")
    if not 0.0 < eps < 0.5:
        raise UserError(f"bce eps must be in (0, 0.5), got {eps}")
    p = probs.clamp(eps, 1.0 - eps)
    return -(target * torch.log(p) + (1.0 - target) * torch.log1p(-p)).mean()


def bce_with_logits(*, logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy from logits, ``mean(softplus(z) - y z)``.

    ``-y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)) = y softplus(-z) +
    (1 - y) softplus(z) = softplus(z) - y z`` (using ``softplus(-z) =
    softplus(z) - z``); with the stable :func:`softplus` this is the familiar
    ``max(z, 0) - z y + log(1 + exp(-|z|))``. Finite for any logit, and its
    gradient ``(sigmoid(z) - y) / N`` never vanishes on a wrong confident
    prediction. Equals ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : Tensor, any shape
        Logits ``z`` of class 1.
    target : Tensor, same shape
        Target probabilities in ``[0, 1]``.

    Returns
    -------
    Tensor
        Scalar >= 0 (nats).

    Raises
    ------
    ValueError
        If shapes differ or a target is outside ``[0, 1]``.

    References
    ----------
    Bishop 2006, Eq. 4.90 and 4.91 (gradient ``(y_n - t_n) phi_n``).
    """
    _check_same_shape(logits, target, "logits", "target")
    _check_probabilities(target, "target")
    return (softplus(logits) - target * logits).mean()


def focal(*, logits: Tensor, target: Tensor, gamma: float = 2.0, alpha: float | None = 0.25) -> Tensor:
    """Binary focal loss ``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)``, mean over elements.

    ``p_t = p`` for ``y = 1`` and ``1 - p`` for ``y = 0``; ``alpha_t = alpha``
    for ``y = 1`` and ``1 - alpha`` for ``y = 0``. With ``s = 2y - 1`` every
    factor is computed from the logit: ``log p_t = log_sigmoid(s z)`` and
    ``(1 - p_t)^gamma = exp(gamma * log_sigmoid(-s z))``, so value and gradient
    are finite for any ``z`` and any ``gamma >= 0`` (a plain ``(1 - p_t)^gamma``
    has an infinite derivative at ``p_t = 1`` when ``gamma < 1``).
    ``gamma = 0, alpha = None`` is :func:`bce_with_logits`.

    Note: the paper normalises the summed loss by the number of positive
    anchors; this function returns the plain mean, like the other losses here.

    Parameters
    ----------
    logits : Tensor, any shape
        Logits ``z`` of class 1.
    target : Tensor, same shape
        Hard labels, each exactly 0 or 1.
    gamma : float
        Focusing parameter >= 0 (2 in the paper's best setting).
    alpha : float or None
        Weight in ``[0, 1]`` of the positive class (0.25 in the paper), or
        None for no class weighting.

    Returns
    -------
    Tensor
        Scalar >= 0 (nats, down-weighted).

    Raises
    ------
    ValueError
        If shapes differ or a target is not 0 or 1.
    UserError
        If ``gamma < 0`` or ``alpha`` is outside ``[0, 1]``.

    References
    ----------
    Lin et al. 2017, "Focal Loss for Dense Object Detection", arXiv:1708.02002,
    Eq. 5 (alpha-balanced focal loss), Sec. 5.1 (gamma = 2, alpha = 0.25).
    """
    _check_same_shape(logits, target, "logits", "target")
    if not bool(((target == 0) | (target == 1)).all()):
        raise ValueError("focal loss targets must be 0 or 1")
    if not gamma >= 0.0:
        raise UserError(f"focal gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise UserError(f"focal alpha must be in [0, 1] or None, got {alpha}")
    s = 2.0 * target - 1.0  # +1 for positives, -1 for negatives
    log_pt = log_sigmoid(s * logits)  # log p_t
    modulating = torch.exp(gamma * log_sigmoid(-s * logits))  # (1 - p_t)^gamma
    loss = -modulating * log_pt
    if alpha is not None:
        loss = torch.where(target == 1, alpha * loss, (1.0 - alpha) * loss)  # alpha_t
    return loss.mean()


# --------------------------------------------------------------------------- multi-class losses


def cce(*, logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Categorical cross-entropy with distribution targets, ``-mean_n sum_k q_nk log softmax(z_n)_k``.

    With label smoothing ``e`` the target becomes ``q' = (1 - e) q + e / K``
    (Szegedy et al.: ``q'(k) = (1 - e) delta_{k,y} + e u(k)`` with the uniform
    ``u = 1/K``), so the optimum logit gap stays finite:
    ``log((1 - e + e/K) / (e/K))`` for a one-hot target. Equals
    ``torch.nn.functional.cross_entropy(logits, target, label_smoothing=e)``
    with probability targets.

    Parameters
    ----------
    logits : Tensor, shape (N, K)
        Unnormalised class scores.
    target : Tensor, shape (N, K)
        One-hot rows (or any distribution over the K classes per row).
    label_smoothing : float
        ``e`` in ``[0, 1]``; 0.1 in Szegedy et al.

    Returns
    -------
    Tensor
        Scalar >= 0 (nats).

    Raises
    ------
    ValueError
        If ``logits`` is not 2-D or the shapes differ.
    UserError
        If ``label_smoothing`` is outside ``[0, 1]``.

    References
    ----------
    Bishop 2006, Eq. 4.108 (multiclass cross-entropy); Szegedy et al. 2016,
    "Rethinking the Inception Architecture", arXiv:1512.00567, Sec. 7
    (label-smoothing regularization).
    """
    _check_logits_2d(logits)
    _check_same_shape(logits, target, "logits", "target")
    _check_label_smoothing(label_smoothing)
    k = logits.shape[1]
    q = (1.0 - label_smoothing) * target + label_smoothing / k  # (N, K) smoothed targets
    return -(q * log_softmax(logits, dim=1)).sum(dim=1).mean()


def sparse_cce(*, logits: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Categorical cross-entropy with integer targets, ``-mean_n log softmax(z_n)_{y_n}``.

    With label smoothing ``e``: ``(1 - e) * (-log p_y) + e * mean_k(-log p_k)``,
    the same value as :func:`cce` on the one-hot encoding of ``target``, and as
    ``torch.nn.functional.cross_entropy(logits, target, label_smoothing=e)``.

    Parameters
    ----------
    logits : Tensor, shape (N, K)
        Unnormalised class scores.
    target : Tensor, shape (N,), integer
        Class indices in ``[0, K)``.
    label_smoothing : float
        ``e`` in ``[0, 1]``.

    Returns
    -------
    Tensor
        Scalar >= 0 (nats).

    Raises
    ------
    ValueError
        If ``logits`` is not 2-D, ``target`` is not an integer tensor of shape
        ``(N,)``, or a class index is out of range.
    UserError
        If ``label_smoothing`` is outside ``[0, 1]``.

    References
    ----------
    Bishop 2006, Eq. 4.108; Szegedy et al. 2016, arXiv:1512.00567, Sec. 7.
    """
    _check_logits_2d(logits)
    _check_label_smoothing(label_smoothing)
    n, k = logits.shape
    if target.shape != (n,) or target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(
            f"target must be integer class indices of shape ({n},), got {target.dtype} {tuple(target.shape)}"
        )
    if n and not bool(((target >= 0) & (target < k)).all()):
        raise ValueError(f"class indices must lie in [0, {k})")
    log_p = log_softmax(logits, dim=1)  # (N, K)
    nll = -log_p.gather(1, target.long().unsqueeze(1)).squeeze(1)  # (N,) -log p_y
    uniform = -log_p.mean(dim=1)  # (N,) cross-entropy against the uniform u = 1/K
    return ((1.0 - label_smoothing) * nll + label_smoothing * uniform).mean()


def smoothed_optimal_logit_gap(num_classes: int, label_smoothing: float) -> float:
    """Logit gap ``z_y - z_k`` at which label-smoothed cross-entropy is minimal.

    The minimum of ``-sum_k q'_k log softmax(z)_k`` is at ``softmax(z) = q'``,
    i.e. ``z_y - z_k = log(q'_y / q'_k) = log((1 - e + e/K) / (e/K))``; it is
    ``+inf`` without smoothing (the loss keeps pushing the logits apart).

    Parameters
    ----------
    num_classes : int
        ``K`` >= 2.
    label_smoothing : float
        ``e`` in ``[0, 1]``.

    Returns
    -------
    float
        The gap in nats (``inf`` for ``e = 0``).

    Raises
    ------
    UserError
        If ``num_classes < 2`` or ``label_smoothing`` is outside ``[0, 1]``.

    References
    ----------
    Szegedy et al. 2016, arXiv:1512.00567, Sec. 7.
    """
    _check_label_smoothing(label_smoothing)
    if num_classes < 2:
        raise UserError(f"need at least 2 classes, got {num_classes}")
    if label_smoothing == 0.0:
        return math.inf
    u = label_smoothing / num_classes
    return math.log((1.0 - label_smoothing + u) / u)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ClassificationLoss:
    """One classification loss and what it expects.

    Attributes
    ----------
    name : str
        CLI name (the key in :data:`CLASSIFICATION_LOSSES`).
    fn : callable
        Keyword-only pure function returning a scalar tensor.
    input : str
        What the model must output: "logits" | "probabilities".
    target : str
        "binary" (0/1 or soft, same shape as the input) | "one-hot" ((N, K)
        rows) | "index" ((N,) integers).
    defaults : dict
        Keyword hyperparameters of ``fn`` and their defaults (copy before changing).
    summary : str
        One line.
    source : str
        "Author et al. YEAR, arXiv:XXXX.XXXXX, Eq. N".
    """

    name: str
    fn: Callable[..., Tensor]
    input: str
    target: str
    defaults: dict = field(hash=False)
    summary: str
    source: str


CLASSIFICATION_LOSSES: dict[str, ClassificationLoss] = {
    "bce": ClassificationLoss(
        name="bce",
        fn=bce,
        input="probabilities",
        target="binary",
        defaults={"eps": 1e-7},
        summary="binary cross-entropy on probabilities, clamped to [eps, 1 - eps]",
        source="Bishop 2006, PRML Eq. 4.90; clamping as in Keras (Chollet et al. 2015)",
    ),
    "bce-with-logits": ClassificationLoss(
        name="bce-with-logits",
        fn=bce_with_logits,
        input="logits",
        target="binary",
        defaults={},
        summary="binary cross-entropy from logits: softplus(z) - y z, finite for any z",
        source="Bishop 2006, PRML Eqs. 4.90-4.91",
    ),
    "cce": ClassificationLoss(
        name="cce",
        fn=cce,
        input="logits",
        target="one-hot",
        defaults={"label_smoothing": 0.0},
        summary="categorical cross-entropy against one-hot (or soft) targets, optional label smoothing",
        source="Bishop 2006, PRML Eq. 4.108; Szegedy et al. 2016, arXiv:1512.00567, Sec. 7",
    ),
    "sparse-cce": ClassificationLoss(
        name="sparse-cce",
        fn=sparse_cce,
        input="logits",
        target="index",
        defaults={"label_smoothing": 0.0},
        summary="categorical cross-entropy against integer labels, optional label smoothing",
        source="Bishop 2006, PRML Eq. 4.108; Szegedy et al. 2016, arXiv:1512.00567, Sec. 7",
    ),
    "focal": ClassificationLoss(
        name="focal",
        fn=focal,
        input="logits",
        target="binary",
        defaults={"gamma": 2.0, "alpha": 0.25},
        summary="alpha-balanced focal loss: cross-entropy down-weighted by (1 - p_t)^gamma",
        source="Lin et al. 2017, arXiv:1708.02002, Eq. 5",
    ),
}


__all__ = [
    "CLASSIFICATION_LOSSES",
    "ClassificationLoss",
    "bce",
    "bce_with_logits",
    "cce",
    "focal",
    "log_sigmoid",
    "log_softmax",
    "logit",
    "sigmoid",
    "smoothed_optimal_logit_gap",
    "softmax",
    "softplus",
    "sparse_cce",
]
