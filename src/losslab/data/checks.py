"""Checks of a dataset's content before any training: refusals for data no loss can learn from, warnings
for data that is legal but odd.

The readers (:mod:`losslab.data.user`, :mod:`losslab.data.images`) refuse what
they can place in a file (a value beyond float32 at a row and column, headers
that disagree); :func:`check_content` refuses what only the whole set shows
(too few rows for a held-out reference, every row the same, splits of other
shapes, labels out of range) and returns the warnings the report's data
section shows (a constant column, a set smaller than a batch, duplicates).
"""

from __future__ import annotations

import numpy as np
import torch

from losslab.errors import UserError

__all__ = ["MIN_TEST_ROWS", "check_content", "first_bad_float32"]

MIN_TEST_ROWS = 2
"""Held-out rows an evaluation needs at least (its reference); user files keep 10% of their rows."""

FLOAT32_MAX = float(np.finfo(np.float32).max)


def first_bad_float32(a: np.ndarray) -> tuple[tuple[int, ...], str] | None:
    """The index of the first value of ``a`` that is not a finite float32, and why; None when all are.

    Returns:
        ``(index, reason)`` with reason "is NaN", "is infinite" or "does not fit float32 (|x| > 3.4e38)".
    """
    a = np.asarray(a)
    if a.dtype.kind not in "fc":
        if a.dtype.kind in "iu" and a.size and np.abs(a.astype(np.float64)).max() > FLOAT32_MAX:
            idx = np.unravel_index(int(np.argmax(np.abs(a.astype(np.float64)) > FLOAT32_MAX)), a.shape)
            return tuple(int(i) for i in idx), "does not fit float32 (|x| > 3.4e38)"
        return None
    finite = np.isfinite(a)
    big = np.zeros_like(finite) if a.dtype == np.float32 else np.abs(np.where(finite, a, 0)) > FLOAT32_MAX
    bad = ~finite | big
    if not bad.any():
        return None
    idx = np.unravel_index(int(np.argmax(bad)), a.shape)
    v = a[idx]
    why = "is NaN" if np.isnan(v) else "is infinite" if np.isinf(v) else "does not fit float32 (|x| > 3.4e38)"
    return tuple(int(i) for i in idx), why


def check_content(dataset, *, batch_size: int) -> list[str]:
    """Refuse a dataset no loss can learn from; return warnings for one that is legal but odd.

    Toy mixtures with an exact sampler are drawn afresh and only their shapes are checked.

    Refused (one line naming the data and the place): a split with rows of
    another shape than the data's; fewer than :data:`MIN_TEST_ROWS` held-out
    rows or fewer than 2 training rows; values that are not finite; every
    training row the same; labels outside ``0 .. num_classes - 1`` or of
    another count than the rows.

    Warned: fewer training rows than ``batch_size`` (every batch repeats
    rows); constant columns (vectors); fewer than half the training rows
    distinct; fewer than 100 held-out rows (noisy metrics).

    Returns:
        The warnings, one sentence each.

    Raises:
        UserError: the first refusal.
    """
    cached = getattr(dataset, "_losslab_checked", None)
    if cached is not None and cached[0] == batch_size:
        return list(cached[1])
    warns = _check(dataset, batch_size)
    try:
        dataset._losslab_checked = (batch_size, warns)
    except AttributeError:  # pragma: no cover - a frozen record
        pass
    return list(warns)


def _check(dataset, batch_size: int) -> list[str]:
    name = dataset.name
    shape = tuple(int(s) for s in dataset.shape)
    for split in ("train", "test"):
        x = getattr(dataset, split)
        if tuple(x.shape[1:]) != shape:
            raise UserError(f"data {name!r}: the {split} split has rows of shape {tuple(x.shape[1:])}, the data "
                            f"{shape}; every file and split must hold samples of one shape")
    if dataset.sampler is not None:
        return []
    train, test = dataset.train, dataset.test
    if len(test) < MIN_TEST_ROWS or len(train) < 2:
        raise UserError(f"data {name!r}: {len(train)} training and {len(test)} held-out rows; a comparison needs "
                        f"at least 2 to train on and {MIN_TEST_ROWS} held out as the evaluation's reference "
                        f"(a file of at least {10 * (MIN_TEST_ROWS - 1) + 1} rows)")
    for split, x in (("train", train), ("test", test)):
        rows = x.reshape(len(x), -1)
        if not bool(torch.isfinite(rows.sum(1)).all()) and not bool(torch.isfinite(rows).all()):
            row = int((~torch.isfinite(rows)).any(1).nonzero()[0])
            raise UserError(f"data {name!r}: {split} row {row + 1} holds a value that is not finite")
    flat = train.reshape(len(train), -1)
    if torch.equal(flat[0], flat[1]) and bool((flat == flat[:1]).all()):
        raise UserError(f"data {name!r}: all {len(train)} training rows are the same sample; there is no "
                        "distribution to learn (a loss can only copy that one row)")
    for split, x, y in (("train", train, dataset.train_labels), ("test", test, dataset.test_labels)):
        if y is None:
            continue
        if len(y) != len(x):
            raise UserError(f"data {name!r}: the {split} split has {len(x)} rows but {len(y)} labels")
        k = dataset.num_classes
        if len(y) and (int(y.min()) < 0 or (k is not None and int(y.max()) >= int(k))):
            bad = int(((y < 0) | (y >= (k if k is not None else 2 ** 62))).nonzero()[0])
            raise UserError(f"data {name!r}: {split} label {int(y[bad])} at row {bad + 1} is outside 0..{k - 1}"
                            if k is not None else f"data {name!r}: {split} label {int(y[bad])} at row {bad + 1} "
                            "is negative")
    warns = []
    if len(train) < batch_size:
        warns.append(f"only {len(train)} training rows, fewer than a batch of {batch_size}: every batch repeats "
                     "rows (sampled with replacement), so a loss can memorise the set")
    if dataset.kind == "vector":
        std = flat.double().std(0)
        const = [int(j) for j in (std == 0).nonzero().flatten()]
        if const:
            cols = ", ".join(str(j + 1) for j in const[:5]) + (", ..." if len(const) > 5 else "")
            warns.append(f"column(s) {cols} of {shape[0]} are constant: nothing to learn there, and a generator "
                         "that varies them looks worse")
    # Distinct rows, counted on a random projection of each row (equal rows project equally; distinct
    # ones collide with probability ~0): O(N d) instead of sorting the rows.
    sub = flat[:20_000]  # enough to see a set of mostly copies, at a bounded cost
    proj = sub.double() @ torch.randn(sub.shape[1], generator=torch.Generator().manual_seed(0),
                                      dtype=torch.float64)
    n_unique = len(torch.unique(proj))
    if n_unique < 0.5 * len(sub):
        warns.append(f"only {n_unique} of {len(sub)} training rows{' checked' if len(sub) < len(flat) else ''} "
                     "are distinct")
    if len(test) < 100:
        warns.append(f"only {len(test)} held-out rows as the evaluation's reference: the metrics are noisy")
    return warns
