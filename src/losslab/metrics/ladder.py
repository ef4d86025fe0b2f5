"""A quality ladder: FID / KID of known degradations of the real data, in the run's feature space.

A FID of 40 means nothing on its own: its scale depends on the feature
network, the data and the sample size. The ladder measures, with the same
feature network, the same reference rows and the same sample size as a run,
how far a few *known* image sets lie from the reference, from "as good as real
data" to "no data at all":

=========================  ====================================================
rung                       images (n of each, drawn from the dataset itself)
=========================  ====================================================
``test split``             other rows of the test split (the reference's own
                           distribution: the floor, FID bias at this n)
``train rows``             rows of the training split
``noisy real``             train rows + Gaussian noise, sigma 0.25 on [-1, 1]
``blurred real``           train rows, Gaussian blur (sigma 1 pixel)
``two classes``            train rows of two classes only, half each; the
                           mean over the pairs (c_i, c_i+1) of the m classes
``one class``              train rows of one class only; the mean over the
                           m classes
``uniform noise``          pixels i.i.d. uniform on [-1, 1]
=========================  ====================================================

The class rungs average over ``m = min(K, 10)`` classes (the largest ones, ties in
a seeded random order) because the distance of a single class depends on which
class it is: on Fashion-MNIST the T-shirts alone lie nearer the whole set than
T-shirts and trousers (FID 0.62 vs 0.64 in the calibrated space), while on
average one class lies farther than two, as a person expects. Each class rung
also reports ``fid_range`` (min, max over its sets).

The reference is ``n`` rows of the test split (as in :func:`losslab.metrics.evaluate`);
the ``test split`` rung takes ``n`` *other* test rows when the split holds
``2 n``, else half of it for each. Classes come from the labels; an
unlabelled dataset is split into ``k = 10`` k-means clusters of its
features (scikit-learn ``KMeans``, seeded), which play the classes' part.

A person orders these sets as the table does; a feature space in which FID
orders them the same way is "calibrated" for this data
(:mod:`losslab.metrics.features` documents the one losslab uses).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor, nn

from losslab.errors import UserError
from losslab.metrics.features import extract
from losslab.metrics.ssl import gaussian_blur
from losslab.metrics.fid import fid_from_features
from losslab.metrics.images import kid

__all__ = ["LADDER_RUNGS", "NOISE_SIGMA", "BLUR_SIGMA", "gaussian_blur", "ladder_images", "place_on_ladder",
           "quality_ladder"]

LADDER_RUNGS = ("test split", "train rows", "noisy real", "blurred real", "two classes", "one class",
                "uniform noise")
NOISE_SIGMA = 0.25  # on the [-1, 1] pixel scale
BLUR_SIGMA = 1.0  # pixels
_KMEANS_K = 10


def _class_sets(dataset: Any, n: int, g: torch.Generator, feature_net: nn.Module | None,
                seed: int) -> tuple[list[Tensor], str]:
    """``n`` training rows of each of the ``m = min(K, 10)`` largest classes, and where the classes came from."""
    train = dataset.train
    if getattr(dataset, "train_labels", None) is None:
        if feature_net is None:
            raise UserError("an unlabelled dataset needs a feature_net to find the ladder's classes")
        pool = train[torch.randperm(len(train), generator=g)[: min(len(train), 20 * n)]]
        feats, _ = extract(feature_net, pool)
        km = KMeans(n_clusters=min(_KMEANS_K, len(pool)), n_init=3, random_state=seed).fit(feats.numpy())
        cls, source = km.labels_.astype(np.int64), f"{km.n_clusters} k-means clusters"
    else:
        pool, cls, source = train, torch.as_tensor(dataset.train_labels).long().numpy(), "labels"
    counts = np.bincount(cls)
    tie = torch.rand(len(counts), generator=g).numpy()
    order = np.lexsort((tie, -counts))[: _KMEANS_K]  # largest first, ties in a seeded random order
    order = order[counts[order] > 0]
    if len(order) < 2:
        raise UserError(f"the quality ladder needs at least 2 classes; {dataset.name!r} has {len(order)}")
    sets = []
    for c in order:
        idx = torch.as_tensor(np.flatnonzero(cls == c))
        take = idx[torch.randint(len(idx), (n,), generator=g)] if len(idx) < n else \
            idx[torch.randperm(len(idx), generator=g)[:n]]
        sets.append(pool[take])
    return sets, source


def _pairs(sets: list[Tensor]) -> list[Tensor]:
    """Two-class sets: the first half of class i's rows and the second half of class i+1's (cyclic)."""
    m, n = len(sets), sets[0].shape[0]
    pairs = [(i, (i + 1) % m) for i in range(m if m > 2 else 1)]
    return [torch.cat([sets[i][: n // 2], sets[j][n // 2 :]]) for i, j in pairs]


def ladder_images(dataset: Any, *, n: int, seed: int = 0, feature_net: nn.Module | None = None,
                  ) -> tuple[Tensor, dict[str, list[Tensor]], str]:
    """The reference rows and the image sets of every rung (see the module table).

    Parameters
    ----------
    dataset : Dataset-like
        Image dataset with ``train`` (N, C, H, W) and ``test`` (M, C, H, W) in [-1, 1];
        ``train_labels`` or None (then ``feature_net`` is needed for the k-means classes).
    n : int
        Images per set and in the reference (cut to half the test split and to the train split).
    seed : int
        Seeds every draw.
    feature_net : nn.Module, optional
        Embeds the training rows for k-means when the dataset has no labels.

    Returns
    -------
    (reference, rungs, class_source)
        ``reference`` (n', C, H, W); ``rungs`` maps each name of :data:`LADDER_RUNGS` to a
        list of image sets (one set, or one per class / pair for the class rungs);
        ``class_source`` is ``"labels"`` or ``"10 k-means clusters"``.

    Raises
    ------
    UserError
        Not an image dataset, fewer than 4 test rows, fewer than 2 classes, or an
        unlabelled dataset without ``feature_net``.
    """
    if len(tuple(dataset.shape)) != 3:
        raise UserError(f"the quality ladder needs images (C, H, W); {dataset.name!r} has shape {dataset.shape}")
    g = torch.Generator().manual_seed(seed)
    test, train = dataset.test, dataset.train
    if len(test) < 4:
        raise UserError(f"the quality ladder needs at least 4 test images; {dataset.name!r} has {len(test)}")
    n = int(min(n, len(test) // 2, len(train)))
    perm = torch.randperm(len(test), generator=g)
    reference, other_test = test[perm[:n]], test[perm[n : 2 * n]]
    rows = train[torch.randperm(len(train), generator=g)[:n]]
    noise = torch.randn(rows.shape, generator=g) * NOISE_SIGMA
    uniform = torch.rand(rows.shape, generator=g) * 2 - 1
    sets, source = _class_sets(dataset, n, g, feature_net, seed)
    rungs = {
        "test split": [other_test],
        "train rows": [rows],
        "noisy real": [(rows + noise).clamp(-1.0, 1.0)],
        "blurred real": [gaussian_blur(rows, BLUR_SIGMA).clamp(-1.0, 1.0)],
        "two classes": _pairs(sets),
        "one class": sets,
        "uniform noise": [uniform],
    }
    return reference, rungs, source


def quality_ladder(dataset: Any, feature_net: nn.Module, *, n: int = 2000, seed: int = 0,
                   kid_subsets: int = 50) -> list[dict[str, Any]]:
    """FID and KID of every rung of the ladder against ``n`` test rows, in ``feature_net``'s space.

    Parameters
    ----------
    dataset : Dataset-like
        See :func:`ladder_images`.
    feature_net : nn.Module
        The network that embeds the run's samples (``forward(x) -> (n, F)``).
    n : int, keyword-only
        Images per set and in the reference (default 2,000; use the run's ``n_eval``
        so the rungs carry the same sample-size bias as the run).
    seed : int, keyword-only
        Seeds the draws and the KID subsets.
    kid_subsets : int, keyword-only
        Subsets of KID (subset size ``min(1000, n)``).

    Returns
    -------
    list of dict
        One dict per rung, in the order of :data:`LADDER_RUNGS`: ``rung`` (name), ``fid``,
        ``kid`` (floats; for the class rungs the means over their sets), ``fid_range``
        ((min, max) over the sets), ``sets`` (how many), ``n`` (images per set),
        ``classes`` (where the classes came from) and ``feature_net`` (its ``name``).
        Cost: one feature pass over about ``(m + 5) n`` images (m <= 10 classes).

    Raises
    ------
    UserError
        See :func:`ladder_images`.
    """
    reference, rungs, source = ladder_images(dataset, n=n, seed=seed, feature_net=feature_net)
    f_ref, _ = extract(feature_net, reference)
    m = reference.shape[0]
    name = getattr(feature_net, "name", type(feature_net).__name__)
    cache: dict[int, Tensor] = {}  # the pair sets reuse the class sets' rows: embed each image set once
    for x in rungs["one class"]:
        cache[id(x)], _ = extract(feature_net, x)
    out = []
    for rung in LADDER_RUNGS:
        fids, kids = [], []
        for i, x in enumerate(rungs[rung]):
            if rung == "two classes":
                sets = rungs["one class"]
                j = (i + 1) % len(sets)
                f = torch.cat([cache[id(sets[i])][: m // 2], cache[id(sets[j])][m // 2 :]])
            else:
                f = cache[id(x)] if id(x) in cache else extract(feature_net, x)[0]
            fids.append(float(fid_from_features(f_ref, f)))
            kids.append(kid(f_ref, f, subsets=kid_subsets, subset_size=min(1000, m), seed=seed)[0])
        out.append({"rung": rung, "fid": float(np.mean(fids)), "kid": float(np.mean(kids)),
                    "fid_range": (min(fids), max(fids)), "sets": len(fids), "n": m, "classes": source,
                    "feature_net": name})
    return out


def place_on_ladder(fid: float, ladder: list[dict[str, Any]]) -> str:
    """Where a FID falls among the rungs (sorted by FID), in words.

    Returns ``"below 'test split'"``, ``"between 'blurred real' and 'two classes'"``,
    ``"at 'one class'"`` (within 1% of a rung's FID) or ``"beyond 'uniform noise'"``.
    Raises ``ValueError`` on an empty ladder or a non-finite ``fid``.
    """
    if not ladder:
        raise ValueError("empty ladder")
    if not math.isfinite(fid):
        raise ValueError(f"FID must be finite, got {fid}")
    rungs = sorted(ladder, key=lambda r: r["fid"])
    for r in rungs:
        if abs(fid - r["fid"]) <= 0.01 * max(abs(r["fid"]), 1e-12):
            return f"at '{r['rung']}'"
    if fid < rungs[0]["fid"]:
        return f"below '{rungs[0]['rung']}'"
    for lo, hi in zip(rungs, rungs[1:]):
        if lo["fid"] < fid < hi["fid"]:
            return f"between '{lo['rung']}' and '{hi['rung']}'"
    return f"beyond '{rungs[-1]['rung']}'"
