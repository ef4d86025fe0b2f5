"""Statistics of a comparison: paired tests over seeds, Holm's correction, probability of improvement, Pareto front.

Pure functions on arrays of per-seed metric values; :mod:`losslab.verdict`
turns their results into the recommendation. Conventions:

* ``higher`` says whether a larger value of the metric is better. Every
  function first maps values to a "goodness" ``g = x`` (higher is better) or
  ``g = -x`` (lower is better), so "a better than b" is always ``g_a > g_b``.
* A non-finite value is the worst outcome, never a missing one: the caller
  passes ``+inf`` for a lower-is-better metric (``-inf`` for higher-is-better),
  e.g. ``reverse_kl`` with no high-quality sample. NaN is not accepted.
* Seed ``k`` of every loss is paired with seed ``k`` of every other (same data
  order and evaluation noise), so two losses are compared by their per-seed
  differences.

Sources: Holm 1979, Scand. J. Statist. 6:65-70 (step-down correction);
Agarwal et al. 2021, arXiv:2108.13264, Sec. 4 and their library rliable
(probability of improvement, stratified percentile bootstrap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as _sp

__all__ = ["ALPHA", "N_BOOT", "STATISTICS", "goodness", "holm", "paired_test", "pareto_front",
           "prob_improvement", "prob_improvement_ci"]

# Family-wise error rate of the comparisons (after Holm's correction).
ALPHA = 0.05
# Bootstrap replicates of the probability-of-improvement interval.
N_BOOT = 2000

# What results.json's ``statistics`` says about how the verdict was computed.
STATISTICS: dict[str, Any] = {
    "method": "paired t-test over seeds (scipy.stats.ttest_rel, two-sided) on the primary metric; a pair with an "
              "infinite value uses the exact two-sided sign test (scipy.stats.binomtest on the signs of the "
              "per-seed differences, ties dropped), inf counting as the worst value; no p-value with fewer "
              "than 2 paired seeds",
    "correction": "holm",
    "family": "the best loss against each other loss that finished every seed (k - 1 comparisons)",
    "alpha": ALPHA,
    "prob_improvement": "P(a better than b) = mean over all (seed of a, seed of b) pairs of [a better] + 0.5 [tie], "
                        "the Mann-Whitney U statistic / (n m), inf the worst value (Agarwal et al. 2021, "
                        f"arXiv:2108.13264); 95% percentile bootstrap interval, {N_BOOT} replicates, stratified by "
                        "loss (each loss's seeds resampled with replacement), numpy Generator seeded 0",
    "clear_winner": "best_group == [best] and every comparison with the best rests on >= 2 paired seeds",
}


def goodness(values: Sequence[float] | np.ndarray, higher: bool) -> np.ndarray:
    """Values mapped so that larger is better: ``x`` if ``higher`` else ``-x``, as float64.

    Raises:
        ValueError: a value is NaN (non-finite values must be +-inf, the worst outcome).
    """
    x = np.asarray(values, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("values contain NaN; pass the worst value (+-inf) for a run whose metric is not finite")
    return x if higher else -x


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input order (None stays None and is not counted).

    With the m p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted
    value is ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting where the
    adjusted value is < alpha controls the family-wise error rate at alpha for
    any dependence between the tests. Example: [0.01, 0.04, 0.03, 0.005] ->
    [0.03, 0.06, 0.06, 0.02].

    Source: Holm 1979, "A simple sequentially rejective multiple test
    procedure", Scand. J. Statist. 6:65-70.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    p = np.array([float(pvalues[i]) for i in idx], dtype=np.float64)
    if ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {list(p)}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj_sorted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out: list[float | None] = [None] * len(pvalues)
    for k, j in enumerate(order):
        out[idx[j]] = float(adj_sorted[k])
    return out


def paired_test(a: Sequence[float], b: Sequence[float], *, higher: bool) -> dict[str, Any]:
    """Compare two losses over paired seeds: ``a[k]`` and ``b[k]`` come from the same seed k.

    Parameters
    ----------
    a, b : (n,) sequences of float
        Per-seed values of the metric; +-inf allowed as the worst value.
    higher : bool
        Whether a larger value of the metric is better.

    Returns
    -------
    dict
        ``n`` (paired seeds), ``test`` ("paired t" | "sign" | None),
        ``effect`` (mean of the per-seed differences in the metric's units,
        positive when a is better; +-inf when a difference is infinite, None
        when infinite differences of both signs occur or n = 0), ``p_value``
        (two-sided; None for n < 2). The paired t-test
        (``scipy.stats.ttest_rel``) when every value is finite; otherwise the
        exact sign test (``scipy.stats.binomtest`` on the number of seeds where
        a is better among seeds without a tie; inf vs inf is a tie). A p-value
        that is undefined (all differences zero) is reported as 1.

    Raises
    ------
    ValueError
        ``a`` and ``b`` differ in length or contain NaN.
    """
    ga, gb = goodness(a, higher), goodness(b, higher)
    if ga.shape != gb.shape or ga.ndim != 1:
        raise ValueError(f"paired values must be two 1-D arrays of the same length, got {ga.shape} and {gb.shape}")
    n = int(ga.shape[0])
    with np.errstate(invalid="ignore"):
        d = ga - gb  # (n,) positive: a better
        d[np.isnan(d)] = 0.0  # inf - inf: both the worst value, a tie
        effect = float(np.mean(d)) if n else None  # NaN when infinite differences of both signs
    if effect is not None and math.isnan(effect):
        effect = None
    finite = bool(np.isfinite(ga).all() and np.isfinite(gb).all())
    if n < 2:
        return {"n": n, "test": None, "effect": effect, "p_value": None}
    if finite:
        if not np.any(d):
            p = 1.0
        else:
            p = float(_sp.ttest_rel(ga, gb).pvalue)
            p = 1.0 if math.isnan(p) else p
        return {"n": n, "test": "paired t", "effect": effect, "p_value": p}
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p = float(_sp.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0
    return {"n": n, "test": "sign", "effect": effect, "p_value": p}


def _prob_improvement_batch(ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """P(a better than b) per row: ga (B, n), gb (B, m) goodness values -> (B,)."""
    diff_gt = ga[:, :, None] > gb[:, None, :]  # (B, n, m)
    diff_eq = ga[:, :, None] == gb[:, None, :]  # inf == inf is a tie
    return (diff_gt.sum(axis=(1, 2)) + 0.5 * diff_eq.sum(axis=(1, 2))) / (ga.shape[1] * gb.shape[1])


def prob_improvement(a: Sequence[float], b: Sequence[float], *, higher: bool) -> float:
    """Probability that a run of loss a is better than a run of loss b, P(X_a better than X_b).

    ``mean over all (i, j) of [a_i better than b_j] + 0.5 [a_i == b_j]``, the
    Mann-Whitney U statistic of a against b divided by n m (for
    higher-is-better metrics; for lower-is-better the values are negated
    first). 0.5: neither is better; 1: every run of a beats every run of b.
    Unpaired: all n x m pairs of runs count. +-inf is the worst value and ties
    with itself.

    Source: Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
    Precipice", arXiv:2108.13264, Sec. 4 (probability of improvement).

    Raises:
        ValueError: an empty input or a NaN.
    """
    ga, gb = goodness(a, higher), goodness(b, higher)
    if ga.size == 0 or gb.size == 0:
        raise ValueError("probability of improvement needs at least one value per loss")
    return float(_prob_improvement_batch(ga[None, :], gb[None, :])[0])


def prob_improvement_ci(a: Sequence[float], b: Sequence[float], *, higher: bool, n_boot: int = N_BOOT,
                        level: float = 0.95, seed: int = 0) -> list[float] | None:
    """Percentile bootstrap interval [lo, hi] of :func:`prob_improvement`; None with fewer than 2 values per loss.

    Stratified by loss: each replicate resamples a's n values and b's m values
    with replacement, independently (``numpy.random.default_rng(seed)``), and
    recomputes P(a better than b); the interval is the ((1 - level) / 2,
    (1 + level) / 2) quantiles of the ``n_boot`` replicates (rliable's
    stratified bootstrap, Agarwal et al. 2021, arXiv:2108.13264).
    """
    ga, gb = goodness(a, higher), goodness(b, higher)
    if ga.size < 2 or gb.size < 2:
        return None
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, ga.size, size=(n_boot, ga.size))  # (B, n)
    ib = rng.integers(0, gb.size, size=(n_boot, gb.size))  # (B, m)
    reps = _prob_improvement_batch(ga[ia], gb[ib])  # (B,)
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def pareto_front(table: Sequence[Sequence[float]] | np.ndarray, higher: Sequence[bool]) -> list[int]:
    """Rows of ``table`` that no other row dominates (the Pareto front), in row order.

    Row j dominates row i when j is at least as good as i on every column and
    strictly better on one (``higher[c]`` says whether a larger value of column
    c is better; +-inf allowed as the worst value).

    Parameters
    ----------
    table : (k, c) array
        One row per loss (e.g. seed means), one column per key metric.
    higher : (c,) bools

    Raises:
        ValueError: shapes disagree or a value is NaN.
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != len(higher):
        raise ValueError(f"table must be (k, {len(higher)}), got {t.shape}")
    g = np.stack([goodness(t[:, c], bool(h)) for c, h in enumerate(higher)], axis=1) if t.size else t
    front = []
    for i in range(t.shape[0]):
        geq = (g >= g[i]).all(axis=1)  # (k,) rows at least as good everywhere
        gt = (g > g[i]).any(axis=1)  # (k,) rows strictly better somewhere
        if not (geq & gt).any():
            front.append(i)
    return front
