"""Contrastive and CLIP losses, and the registry of contrastive losses losslab compares.

Every function is pure and keyword-only and returns a scalar tensor (the mean
over pairs, triplets or anchors). Embeddings are **L2-normalised inside**, so
every loss works on the unit hypersphere: a cosine similarity ``s`` in
[-1, 1] and the squared Euclidean distance ``2 - 2 s`` in [0, 4] describe the
same geometry, and margins and temperatures mean the same thing for every
encoder.

Where the positives come from (built by :mod:`losslab.train.contrastive`):

* ``pairwise-bce``, ``contrastive``: N positive pairs (two augmented views of one
  image) and N negative pairs (views of two different images);
* ``triplet``: anchor = view 1, positive = view 2 of the same image, negative =
  view 2 of another image (``mining="random"``) or the hardest negative in the
  batch (``mining="batch-hard"``);
* ``nt-xent`` / ``info-nce``: the other view is the positive, the rest of the
  batch the negatives;
* ``supcon``: every view of every image with the same class label is a positive;
* ``clip``: an image and the caption of its class ("a photo of the digit seven");
  every caption of the image's class in the batch is a positive (UniCL's
  label-aware targets), not only the one drawn for it;
* ``siglip``: the two views as the two towers; all n^2 pairs of the batch, the
  diagonal positive (:mod:`losslab.losses.contrastive_ssl`);
* ``barlow-twins``, ``vicreg``: the two views, no negatives at all
  (:mod:`losslab.losses.contrastive_ssl`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.errors import unknown_choice
from losslab.losses.contrastive_ssl import barlow_twins_loss, siglip_loss, vicreg_loss
from losslab.losses.variants import base_name

__all__ = [
    "CONTRASTIVE_LOSSES",
    "CONTRASTIVE_LOSS_NAMES",
    "ContrastiveLoss",
    "INPUT_SCHEMES",
    "barlow_twins_loss",
    "batch_hard_triplet_loss",
    "clip_loss",
    "contrastive_loss",
    "get_contrastive_loss",
    "info_nce_loss",
    "nt_xent_loss",
    "pairwise_bce_loss",
    "siglip_loss",
    "supcon_loss",
    "triplet_loss",
    "vicreg_loss",
]


def _unit(z: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    return F.normalize(z, dim=-1, eps=1e-12)


def _sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise squared Euclidean distance of unit vectors, ``2 - 2 cos``, (N,)."""
    return (_unit(a) - _unit(b)).pow(2).sum(dim=-1)


def pairwise_bce_loss(*, a: Tensor, b: Tensor, same: Tensor, temperature: float = 1.0) -> Tensor:
    """Pairwise binary cross-entropy on cosine similarities (the study's form).

    ``mean_i BCEWithLogits(cos(a_i, b_i) / tau, same_i)``: a pair is classified
    as "same" or "different" with its cosine similarity as the logit.

    Parameters
    ----------
    a, b : (N, d) tensors
        Embeddings of the two members of each pair (normalised inside).
    same : (N,) tensor
        1 for a positive pair (same image / class), 0 for a negative pair.
    temperature : float
        tau > 0. With tau = 1 (the study's form) the logit is confined to
        [-1, 1], the predicted probability to [0.27, 0.73], and the loss cannot
        fall below ``softplus(-1) = 0.313``.

    Returns
    -------
    Scalar tensor.

    Source: the binary "same / not same" objective of siamese networks
    (Bromley et al. 1993, "Signature verification using a Siamese time delay
    neural network"; Koch et al. 2015, "Siamese neural networks for one-shot
    image recognition", Eq. 1, sigmoid of a learned similarity with BCE).
    """
    logits = F.cosine_similarity(a, b, dim=-1) / temperature
    return F.binary_cross_entropy_with_logits(logits, same.to(logits.dtype))


def contrastive_loss(*, a: Tensor, b: Tensor, same: Tensor, margin: float = 1.0) -> Tensor:
    """Margin contrastive loss  ``mean( same * D^2 / 2 + (1 - same) * max(0, m - D)^2 / 2 )``.

    ``D = ||a/|a| - b/|b|||_2`` in [0, 2]. Positive pairs are pulled together;
    negative pairs are pushed apart until they are at least ``m`` apart, and
    cost nothing beyond (the hinge point ``D = m``).

    Parameters
    ----------
    a, b : (N, d) tensors
        Embeddings of the two members of each pair (normalised inside).
    same : (N,) tensor
        1 for a similar pair, 0 for a dissimilar pair (Hadsell et al.'s
        ``Y = 1 - same``).
    margin : float
        m >= 0, in units of distance on the unit sphere (orthogonal unit
        vectors are sqrt(2) = 1.41 apart).

    Returns
    -------
    Scalar tensor.

    Source: Hadsell, Chopra, LeCun 2006, "Dimensionality reduction by learning
    an invariant mapping", CVPR, Eq. 4 (squared-margin form).
    """
    d2 = _sq_dist(a, b)
    d = d2.clamp_min(1e-12).sqrt()  # no infinite gradient of sqrt at D = 0
    same = same.to(d2.dtype)
    return (0.5 * same * d2 + 0.5 * (1.0 - same) * F.relu(margin - d).pow(2)).mean()


def triplet_loss(*, anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 0.2) -> Tensor:
    """Triplet loss ``mean_i max(0, ||a_i - p_i||^2 - ||a_i - n_i||^2 + alpha)``.

    On unit vectors (normalised inside), as FaceNet constrains its embedding to
    the hypersphere. The loss is 0 once the negative is farther than the
    positive by at least the margin (the hinge point).

    Parameters
    ----------
    anchor, positive, negative : (N, d) tensors
    margin : float
        alpha >= 0 on squared distances in [0, 4].

    Returns
    -------
    Scalar tensor.

    Source: Schroff, Kalenichenko, Philbin 2015, FaceNet, arXiv:1503.03832,
    Eq. 1 and Sec. 3 (alpha = 0.2).
    """
    return F.relu(_sq_dist(anchor, positive) - _sq_dist(anchor, negative) + margin).mean()


def batch_hard_triplet_loss(*, z: Tensor, labels: Tensor, margin: float = 0.2) -> Tensor:
    """Batch-hard triplet loss: each anchor with its farthest positive and nearest negative.

    ``mean_i max(0, max_{p: y_p = y_i, p != i} D_ip - min_{n: y_n != y_i} D_in + alpha)``
    with ``D`` the squared Euclidean distance of unit vectors (the distance of
    :func:`triplet_loss`, so the margin means the same; Hermans et al. use the
    plain Euclidean distance). Anchors without a positive or a negative in the
    batch are left out.

    Parameters
    ----------
    z : (M, d) tensor
        Embeddings of all views in the batch (normalised inside).
    labels : (M,) int64 tensor
        Identity of each row: the image index for self-supervised views, the
        class for supervised ones.
    margin : float
        alpha >= 0.

    Returns
    -------
    Scalar tensor.

    Raises
    ------
    ValueError
        If no anchor has both a positive and a negative.

    Source: Hermans, Beyer, Leibe 2017, "In defense of the triplet loss for
    person re-identification", arXiv:1703.07737, Eq. 5 (batch hard).
    """
    u = _unit(z)
    d = (2.0 - 2.0 * u @ u.T).clamp_min(0.0)  # (M, M) squared distances
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    pos = same & ~eye
    neg = ~same
    valid = pos.any(dim=1) & neg.any(dim=1)
    if not bool(valid.any()):
        raise ValueError("batch_hard_triplet_loss: no anchor has both a positive and a negative in the batch")
    hardest_pos = d.masked_fill(~pos, float("-inf")).amax(dim=1)
    hardest_neg = d.masked_fill(~neg, float("inf")).amin(dim=1)
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def info_nce_loss(*, query: Tensor, key: Tensor, temperature: float = 0.07) -> Tensor:
    """InfoNCE with in-batch negatives: cross-entropy of ``cos(q_i, k_j) / tau`` with target ``j = i``.

    ``-mean_i log( exp(s_ii / tau) / sum_j exp(s_ij / tau) )``: for each query,
    its own key is the positive and the N - 1 other keys are the negatives
    (one direction only: queries from view 1, keys from view 2).

    Parameters
    ----------
    query, key : (N, d) tensors
        Row i of ``key`` is the positive of row i of ``query`` (normalised inside).
    temperature : float
        tau > 0.

    Returns
    -------
    Scalar tensor.

    Source: van den Oord, Li, Vinyals 2018, "Representation learning with
    contrastive predictive coding", arXiv:1807.03748, Eq. 4; the cosine /
    temperature form and tau = 0.07 of MoCo (He et al. 2020, arXiv:1911.05722,
    Eq. 1 and Sec. 3.3).
    """
    logits = _unit(query) @ _unit(key).T / temperature  # (N, N)
    return F.cross_entropy(logits, torch.arange(len(query), device=query.device))


def nt_xent_loss(*, z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent: normalised temperature-scaled cross-entropy over 2N views.

    For each of the 2N views k, the other view of the same image is the
    positive and the remaining 2N - 2 views are the negatives:
    ``l(i, j) = -log( exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau) )``,
    averaged over all 2N ordered positive pairs.

    Parameters
    ----------
    z1, z2 : (N, d) tensors
        Projections of the two augmented views; row i of both is image i.
    temperature : float
        tau > 0.

    Returns
    -------
    Scalar tensor.

    Source: Chen, Kornblith, Norouzi, Hinton 2020, SimCLR, arXiv:2002.05709,
    Eq. 1 and Algorithm 1 (tau = 0.5 for CIFAR-10, Appendix B.9).
    """
    n = len(z1)
    u = _unit(torch.cat([z1, z2]))  # (2N, d)
    logits = u @ u.T / temperature  # (2N, 2N)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))  # k != i
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    return F.cross_entropy(logits, target)


def supcon_loss(*, z: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss L^sup_out: every same-class view is a positive.

    ``L = mean_i  -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / tau) / sum_{a in A(i)} exp(s_ia / tau) )``
    with ``A(i)`` all rows but i and ``P(i)`` the rows of A(i) with i's label.
    Anchors without a positive are left out (the paper sums over anchors; the
    mean keeps the scale independent of the batch size).

    Parameters
    ----------
    z : (M, d) tensor
        Projections of all views of the batch (normalised inside).
    labels : (M,) int64 tensor
        Class label of each row.
    temperature : float
        tau > 0.

    Returns
    -------
    Scalar tensor.

    Raises
    ------
    ValueError
        If no row has a positive (every label is unique).

    Source: Khosla et al. 2020, "Supervised contrastive learning",
    arXiv:2004.11362, Eq. 2 (L^sup_out). The default tau = 0.1 is losslab's
    choice for small batches (the loss-level default of the registry).
    """
    u = _unit(z)
    m = len(u)
    eye = torch.eye(m, dtype=torch.bool, device=u.device)
    logits = (u @ u.T / temperature).masked_fill(eye, float("-inf"))  # a in A(i): a != i
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        raise ValueError("supcon_loss: no row has a positive (every label in the batch is unique)")
    mean_log_prob_pos = log_prob.masked_fill(~pos, 0.0).sum(dim=1)[has] / n_pos[has]
    return -mean_log_prob_pos.mean()


def clip_loss(
    *, image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor | float, labels: Tensor | None = None
) -> Tensor:
    """CLIP's symmetric cross-entropy over the N x N image-text logits, label-aware when given labels.

    ``logits = s * cos(I_i, T_j)``; the loss is the mean of the loss over rows
    (image -> text) and over columns (text -> image).

    * ``labels=None`` (CLIP): row i's target is column i, the one matched
      caption; every other caption of the batch is a negative, even one of the
      same class.
    * ``labels`` given (UniCL): every caption whose label equals the image's is
      a positive. Row i's target is the normalised indicator
      ``q_ik = [y_k = y_i] / |P(i)|``, ``P(i) = {k : y_k = y_i}`` (i itself
      included), and likewise for column j over the images with its label.
      The returned value is the cross-entropy against ``q`` **minus the
      entropy of q** (``log |P(i)|`` per row), i.e. the mean of
      ``KL(q_i || softmax(logits_i))`` over both directions. The subtracted
      term depends on the labels only, so the gradients are exactly those of
      UniCL's loss; it makes the minimum 0, reached when each image's softmax
      is uniform over the captions of its class (a perfect class embedding
      with a large scale). UniCL's own value is this plus
      ``mean_i log |P(i)|``; with arange targets the same perfect class
      embedding keeps ``mean_i log |P(i)|`` of loss (1.93 nats on average for
      batches of 64 drawn uniformly from 10 classes).

    With all labels distinct both forms are the same number.

    Parameters
    ----------
    image_emb, text_emb : (N, d) tensors
        Row i of both is a matched image-caption pair (normalised inside).
    logit_scale : scalar tensor or float
        The multiplier ``s = exp(t) > 0`` (CLIP learns ``t``, initialised to
        ``log(1 / 0.07)``, and clips ``s`` at 100). Gradients flow to it when
        it is a tensor that requires them.
    labels : (N,) integer tensor, optional
        Class of pair i (the image's label, whose caption ``text_emb[i]``
        describes). Keyword-only; None keeps CLIP's ``arange(N)`` targets.

    Returns
    -------
    Scalar tensor, in nats per pair and direction.

    Raises
    ------
    ValueError
        ``labels`` is not of shape (N,).

    Source: Radford et al. 2021, CLIP, arXiv:2103.00020, Figure 3 (pseudocode)
    and Sec. 2.5 (temperature initialisation and clipping); the label-aware
    targets: Yang et al. 2022, UniCL, arXiv:2204.03610, Sec. 3.2, the
    bidirectional image-label contrastive loss L_BiC = L_i2t + L_t2i with
    P(i) = {k in B : y_k = y_i}. UniCL sums over the batch and adds the two
    directions; here both are averaged, as CLIP's pseudocode does, so the
    value matches CLIP's scale.
    """
    logits = logit_scale * _unit(image_emb) @ _unit(text_emb).T  # (N, N)
    n = len(image_emb)
    if labels is None:
        target = torch.arange(n, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    if labels.shape != (n,):
        raise ValueError(f"clip_loss: labels must have shape ({n},), got {tuple(labels.shape)}")
    same = (labels[:, None] == labels[None, :]).to(logits.dtype)  # (N, N), symmetric, diagonal 1
    n_pos = same.sum(dim=1)  # |P(i)| = |Q(i)| >= 1
    q = same / n_pos[:, None]  # row i: the target distribution of image i (and, by symmetry, of caption i)
    log_n_pos = n_pos.log()  # entropy of each row of q

    def kl(lg: Tensor) -> Tensor:  # mean_i KL(q_i || softmax(lg_i)) = CE(q_i, p_i) - H(q_i)
        return (-(q * F.log_softmax(lg, dim=1)).sum(dim=1) - log_n_pos).mean()

    return 0.5 * (kl(logits) + kl(logits.T))


@dataclass(frozen=True)
class ContrastiveLoss:
    """One contrastive objective as a comparable "loss" of losslab.

    Attributes
    ----------
    name : str
        CLI name (the key in :data:`CONTRASTIVE_LOSSES`).
    fn : callable
        The pure keyword-only loss function of this module.
    defaults : dict
        ``optimizer`` ("adam"), ``lr``, ``betas``; loss hyperparameters
        ``temperature`` (tau > 0), ``margin`` (>= 0), ``mining`` ("random" |
        "batch-hard", triplet); ``needs_labels`` (True: positives are defined
        by class labels, supcon); ``text`` (True: image-caption pairs and a
        text encoder, clip) with ``logit_scale_init`` and ``logit_scale_max``.
        Copy before changing it.
    summary : str
        One line for ``losslab list``.
    source : str
        "Author et al. YEAR, arXiv:XXXX.XXXXX, Eq. N".
    inputs : str
        What one batch feeds ``fn`` (one of :data:`INPUT_SCHEMES`):

        * ``"pairs"``: ``(a, b, same)``, N positive pairs (the two views of an
          image) then N negative pairs (view 1, view 2 of another image);
        * ``"triplet"``: ``(anchor, positive, negative)`` = (view 1, view 2,
          view 2 of another image); ``mining="batch-hard"`` uses
          :func:`batch_hard_triplet_loss` on all 2N views instead;
        * ``"views"``: the two views' projections ``(z1, z2)``;
        * ``"labels"``: ``(z, labels)``, all 2N views and their class labels;
        * ``"text"``: ``(image, text, labels)``: embeddings of an image and a
          caption of its class, the images' class labels (same-class captions
          are positives), plus ``logit_scale`` from the model.
    args : tuple of str
        The keyword names under which ``fn`` takes the scheme's tensors, in
        the order listed above.
    hparams : tuple of str
        Keys of ``defaults`` passed to ``fn`` by name (``temperature``, ``margin``).
    search_space : dict
        What ``losslab compare --search`` tunes (see :class:`losslab.losses.GANLoss`).
    learnable : tuple of (str, str)
        Scalars the loss learns beside the encoder: ``(keyword of fn, key of
        defaults holding its initial value)``, e.g. SigLIP's
        ``(("t_prime", "t_prime_init"), ("bias", "bias_init"))``. The family
        trains them with the encoder and passes them to ``fn`` by keyword.
    """

    name: str
    fn: Callable[..., Tensor]
    defaults: dict = field(hash=False)
    summary: str
    source: str
    inputs: str
    args: tuple[str, ...]
    hparams: tuple[str, ...] = ()
    search_space: dict = field(default_factory=dict, hash=False)
    learnable: tuple[tuple[str, str], ...] = ()


INPUT_SCHEMES = ("pairs", "triplet", "views", "labels", "text")
"""The input schemes of :attr:`ContrastiveLoss.inputs`."""


# Adam with lr 1e-3 (Kingma & Ba 2015, arXiv:1412.6980, Sec. 2 defaults) for
# every loss: SimCLR's LARS at lr 0.3 x batch / 256 is tuned for ResNets and
# batches of 4,096; losslab trains a small CNN with batches of 64 to 256.
_ADAM = {"optimizer": "adam", "lr": 1e-3, "betas": (0.9, 0.999), "needs_labels": False, "text": False}

# --search: Adam's learning rate a decade either side of its 1e-3; the temperature
# over the range SimCLR sweeps (Chen et al. 2020, Table 5: 0.05 to 1).
_LR_SPACE = {"lr": ("log", 1e-4, 1e-2)}
_TAU_SPACE = {**_LR_SPACE, "temperature": ("log", 0.05, 1.0)}

CONTRASTIVE_LOSSES: dict[str, ContrastiveLoss] = {
    "pairwise-bce": ContrastiveLoss(
        name="pairwise-bce",
        fn=pairwise_bce_loss,
        # tau = 1 is the study's form (raw cosine as the logit); see the docstring
        # of pairwise_bce_loss for the loss floor it implies.
        defaults={**_ADAM, "temperature": 1.0},
        summary="cosine similarity of a pair as a logit, BCE on same/different (the study's form)",
        source="Koch et al. 2015, siamese networks, Eq. 1; Bromley et al. 1993",
        inputs="pairs", args=("a", "b", "same"), hparams=("temperature",),
        search_space=_LR_SPACE,
    ),
    "contrastive": ContrastiveLoss(
        name="contrastive",
        fn=contrastive_loss,
        # m = 1 on the unit sphere: negatives are pushed to cos <= 0.5.
        defaults={**_ADAM, "margin": 1.0},
        summary="margin contrastive loss: pull positives together, push negatives beyond m",
        source="Hadsell, Chopra, LeCun 2006, CVPR, Eq. 4",
        inputs="pairs", args=("a", "b", "same"), hparams=("margin",),
        search_space=_LR_SPACE,
    ),
    "triplet": ContrastiveLoss(
        name="triplet",
        fn=triplet_loss,
        # FaceNet's alpha = 0.2 on squared distances of unit vectors; batch-hard
        # mining (Hermans et al. 2017, arXiv:1703.07737) with mining="batch-hard".
        defaults={**_ADAM, "margin": 0.2, "mining": "random"},
        summary="triplet margin loss on anchor/positive/negative (random or batch-hard negatives)",
        source="Schroff et al. 2015, arXiv:1503.03832, Eq. 1; Hermans et al. 2017, arXiv:1703.07737, Eq. 5",
        inputs="triplet", args=("anchor", "positive", "negative"), hparams=("margin",),
        search_space=_LR_SPACE,
    ),
    "nt-xent": ContrastiveLoss(
        name="nt-xent",
        fn=nt_xent_loss,
        defaults={**_ADAM, "temperature": 0.5},  # SimCLR's CIFAR-10 setting (App. B.9)
        summary="SimCLR: softmax over 2N views, the other view of the same image is the positive",
        source="Chen et al. 2020, arXiv:2002.05709, Eq. 1",
        inputs="views", args=("z1", "z2"), hparams=("temperature",),
        search_space=_TAU_SPACE,
    ),
    "info-nce": ContrastiveLoss(
        name="info-nce",
        fn=info_nce_loss,
        defaults={**_ADAM, "temperature": 0.07},  # MoCo's tau (He et al. 2020, Sec. 3.3)
        summary="InfoNCE: cross-entropy of view-1 queries over view-2 keys, in-batch negatives",
        source="van den Oord et al. 2018, arXiv:1807.03748, Eq. 4",
        inputs="views", args=("query", "key"), hparams=("temperature",),
        search_space=_TAU_SPACE,
    ),
    "supcon": ContrastiveLoss(
        name="supcon",
        fn=supcon_loss,
        defaults={**_ADAM, "temperature": 0.1, "needs_labels": True},  # our tau (see supcon_loss)
        summary="supervised contrastive: all same-class views are positives (uses labels)",
        source="Khosla et al. 2020, arXiv:2004.11362, Eq. 2",
        inputs="labels", args=("z", "labels"), hparams=("temperature",),
        search_space=_TAU_SPACE,
    ),
    "clip": ContrastiveLoss(
        name="clip",
        fn=clip_loss,
        defaults={**_ADAM, "text": True, "logit_scale_init": 1.0 / 0.07, "logit_scale_max": 100.0},
        summary="CLIP: symmetric cross-entropy between images and class captions (same-class captions "
        "are positives), learnable scale",
        source="Radford et al. 2021, arXiv:2103.00020, Figure 3, Sec. 2.5; label-aware targets: "
        "Yang et al. 2022 (UniCL), arXiv:2204.03610, Sec. 3.2",
        inputs="text", args=("image_emb", "text_emb", "labels"),
        search_space=_LR_SPACE,
    ),
    "siglip": ContrastiveLoss(
        name="siglip",
        fn=siglip_loss,
        # Zhai et al. 2023, Algorithm 1 / Sec. 3.2: t' = log 10 (t = 10), b = -10.
        defaults={**_ADAM, "t_prime_init": math.log(10.0), "bias_init": -10.0},
        summary="SigLIP: sigmoid BCE on all n^2 view pairs (diagonal positive), learnable temperature and bias",
        source="Zhai et al. 2023, arXiv:2303.15343, Algorithm 1",
        inputs="views", args=("x", "y"), learnable=(("t_prime", "t_prime_init"), ("bias", "bias_init")),
        search_space=_LR_SPACE,
    ),
    "barlow-twins": ContrastiveLoss(
        name="barlow-twins",
        fn=barlow_twins_loss,
        defaults={**_ADAM, "lambd": 5e-3},  # the paper's lambda (Sec. 4)
        summary="Barlow Twins: cross-correlation of the two views' standardised embeddings to the identity",
        source="Zbontar et al. 2021, arXiv:2103.03230, Eqs. 1-2",
        inputs="views", args=("z1", "z2"), hparams=("lambd",),
        search_space=_LR_SPACE,
    ),
    "vicreg": ContrastiveLoss(
        name="vicreg",
        fn=vicreg_loss,
        # Bardes et al. 2022, Sec. 4.3: lambda = mu = 25, nu = 1; gamma 1, eps 1e-4 (Eq. 1).
        defaults={**_ADAM, "inv_coeff": 25.0, "var_coeff": 25.0, "cov_coeff": 1.0, "std_target": 1.0,
                  "eps": 1e-4},
        summary="VICReg: invariance + variance hinge + covariance penalty on the two views, no negatives",
        source="Bardes et al. 2022, arXiv:2105.04906, Eqs. 1-6",
        inputs="views", args=("z1", "z2"), hparams=("inv_coeff", "var_coeff", "cov_coeff", "std_target", "eps"),
        search_space=_LR_SPACE,
    ),
}

CONTRASTIVE_LOSS_NAMES: tuple[str, ...] = tuple(CONTRASTIVE_LOSSES)

def get_contrastive_loss(name: str) -> ContrastiveLoss:
    """The :class:`ContrastiveLoss` registered under ``name``.

    Raises
    ------
    UserError
        If ``name`` is unknown; the message lists the valid names.
    """
    try:
        return CONTRASTIVE_LOSSES[base_name(name)]
    except (KeyError, TypeError):
        raise unknown_choice("loss", name, CONTRASTIVE_LOSSES) from None
