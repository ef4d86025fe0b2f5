"""Statistics of a comparison: rank tests over seeds (Friedman, Nemenyi), equivalence (TOST), the
detectable difference, probability of improvement, Pareto front.

Pure functions on arrays of per-seed metric values; :mod:`losslab.race`
decides with the rank tests, :mod:`losslab.verdict` turns the race into the
recommendation. Conventions:

* ``higher`` says whether a larger value of the metric is better. Every
  function first maps values to a "goodness" ``g = x`` (higher is better) or
  ``g = -x`` (lower is better), so "a better than b" is always ``g_a > g_b``.
* A non-finite value is the worst outcome, never a missing one: the caller
  passes ``+inf`` for a lower-is-better metric (``-inf`` for higher-is-better),
  e.g. ``reverse_kl`` with no high-quality sample. NaN is not accepted.
* Seed ``k`` of every loss is paired with seed ``k`` of every other (same data
  order and evaluation noise), so two losses are compared by their per-seed
  differences.

Sources: Demsar 2006, JMLR 7:1-30 (Friedman, Nemenyi);
Agarwal et al. 2021, arXiv:2108.13264, Sec. 4 and their library rliable
(probability of improvement, stratified percentile bootstrap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scikit_posthocs as _sp_posthocs
from scipy import stats as _sp
from statsmodels.stats.power import TTestPower as _TTestPower
from statsmodels.stats.weightstats import ttost_paired as _ttost_paired

__all__ = ["ALPHA", "MIN_BOOT", "N_BOOT", "STATISTICS", "block_ranks", "detectable_difference", "friedman",
           "goodness", "nemenyi_cd", "nemenyi_p", "pareto_front", "prob_improvement",
           "prob_improvement_ci", "tost_paired"]

# Family-wise error rate of a comparison (the race's alpha over all its looks).
ALPHA = 0.05
# Bootstrap replicates of the probability-of-improvement interval.
N_BOOT = 2000
# Fewest values per loss for a bootstrap interval.
MIN_BOOT = 5

# What results.json's ``statistics`` says about how the verdict was computed.
STATISTICS: dict[str, Any] = {
    "method": "a race over paired seeds (losslab.race; F-Race, Birattari et al. 2002): after each block of seeds, "
              "Friedman's test over the losses still in the race (ranks within seeds, ties averaged; the exact "
              "sign test for two losses), then Nemenyi's all-pairs comparison of mean ranks (Demsar 2006, JMLR "
              "7:1-30), repeated on the losses left (re-ranked among themselves) until a round shows none worse; "
              "a diverged run or an infinite metric is the worst rank",
    "correction": "Nemenyi's all-pairs family in each round of a look's step-down; Bonferroni over the race's "
                  "looks (alpha / number of looks per look)",
    "family": "every pair of losses still in the race at that look",
    "alpha": ALPHA,
    "equivalence": "paired TOST (statsmodels ttost_paired) on every pair of survivors (intersection-union: "
                   "max p < alpha), margin from --equivalence, the metric's noise floor, or half the pooled seed SD",
    "detectable": "the paired difference a two-sided paired t-test at the look's level finds with 80% power "
                  "(statsmodels TTestPower), from the sd of the per-seed differences",
    "prob_improvement": "P(a better than b) = mean over all (seed of a, seed of b) pairs of [a better] + 0.5 [tie], "
                        "the Mann-Whitney U statistic / (n m), inf the worst value (Agarwal et al. 2021, "
                        f"arXiv:2108.13264); 95% percentile bootstrap interval, {N_BOOT} replicates, stratified by "
                        "loss, numpy Generator seeded 0; none with fewer than 5 seeds per loss (a bootstrap of 3 "
                        "values has 10 distinct resamples)",
    "clear_winner": "the race showed every other loss worse (one survivor of two or more losses)",
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
    """Percentile bootstrap interval [lo, hi] of :func:`prob_improvement`; None with fewer than 5 values per loss.

    A percentile bootstrap of n values has only C(2n - 1, n) distinct resamples (10 for n = 3, 35 for
    n = 4), so its interval is degenerate there (e.g. [1, 1] from 3 seeds that all win): none is given.

    Stratified by loss: each replicate resamples a's n values and b's m values
    with replacement, independently (``numpy.random.default_rng(seed)``), and
    recomputes P(a better than b); the interval is the ((1 - level) / 2,
    (1 + level) / 2) quantiles of the ``n_boot`` replicates (rliable's
    stratified bootstrap, Agarwal et al. 2021, arXiv:2108.13264).
    """
    ga, gb = goodness(a, higher), goodness(b, higher)
    if ga.size < MIN_BOOT or gb.size < MIN_BOOT:
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


# --------------------------------------------------------------------------- rank tests over blocks (the race)
#
# A "table" is (R, n, k): R independent tables (R = 1 for a real comparison,
# R = thousands in the simulation tests), n seeds (blocks) by k losses
# (treatments) of goodness values (higher is better, -inf the worst), and an
# ``alive`` mask (R, k) of the losses still in the race. Ranks are taken among
# the alive losses only, within each seed, ties averaged (-inf ties -inf).

def block_ranks(g: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Within-seed ranks among the alive losses, 1 = worst, ties averaged; 0 for losses not alive.

    Parameters
    ----------
    g : (R, n, k) float
        Goodness values (higher is better); -inf allowed, NaN not.
    alive : (R, k) bool

    Returns
    -------
    (R, n, k) float64: rank of loss i in seed s among alive losses =
    1 + #(alive j worse) + 0.5 #(alive j != i tied), as ``scipy.stats.rankdata(method="average")``.
    """
    g = np.asarray(g, dtype=np.float64)
    a = np.asarray(alive, dtype=bool)[:, None, None, :]  # (R, 1, 1, k) over j
    less = ((g[..., None, :] < g[..., :, None]) & a).sum(-1)  # (R, n, k): alive j with g_j < g_i
    tie = ((g[..., None, :] == g[..., :, None]) & a).sum(-1) - 1  # alive j != i tied with i
    return np.where(np.asarray(alive, dtype=bool)[:, None, :], 1.0 + less + 0.5 * tie, 0.0)


def friedman(g: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Friedman's chi-square test over the alive losses of each table, corrected for ties.

    Q = (12 / (n k (k + 1)) sum_j R_j^2 - 3 n (k + 1)) / (1 - sum (t^3 - t) / (n k (k^2 - 1))),
    R_j the rank sum of loss j over the n seeds, t the sizes of the tie groups;
    p = P(chi2_{k-1} >= Q). Equals ``scipy.stats.friedmanchisquare`` for k >= 3
    (which needs k >= 3). For k = 2 Friedman's test is the sign test, and p is
    the exact two-sided sign test's (``scipy.stats.binomtest`` on the wins among
    seeds without a tie), since the chi-square approximation is liberal at few
    seeds. p = 1 where every value ties, or fewer than 2 losses or seeds.

    Returns
    -------
    (stat (R,), p (R,))

    Source: Friedman 1937, JASA 32:675-701; Demsar 2006, JMLR 7:1-30, Sec. 3.2.2.
    """
    g = np.asarray(g, dtype=np.float64)
    alive = np.asarray(alive, dtype=bool)
    n = g.shape[1]
    k = alive.sum(1).astype(np.float64)  # (R,)
    r = block_ranks(g, alive)
    rs = r.sum(1)  # (R, k) rank sums
    a = alive[:, None, None, :]
    t = ((g[..., None, :] == g[..., :, None]) & a).sum(-1)  # (R, n, k) size of i's tie group
    ties = np.where(alive[:, None, :], t.astype(np.float64) ** 2 - 1.0, 0.0).sum((1, 2))  # sum (t^3 - t)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = 1.0 - ties / (n * k * (k * k - 1.0))
        q = (12.0 / (n * k * (k + 1.0)) * (rs ** 2).sum(1) - 3.0 * n * (k + 1.0)) / c
        ok = (k >= 2) & (n >= 2) & (c > 1e-12)
        q = np.where(ok, np.maximum(q, 0.0), 0.0)
        p = np.where(ok, _sp.chi2.sf(q, np.maximum(k - 1.0, 1.0)), 1.0)
    # k = 2: the chi-square approximation of the sign test is liberal at few seeds (5 of 5 wins: 0.025,
    # exactly 0.0625), so two losses get the exact two-sided sign test (binomial, ties dropped).
    two = alive.sum(1) == 2
    if two.any():
        wins = ((r[:, :, :, None] > r[:, :, None, :]) & alive[:, None, :, None] & alive[:, None, None, :]).sum(1)
        w = wins.max(axis=(1, 2)).astype(np.float64)  # (R,) the larger win count of the pair
        m = (wins + np.swapaxes(wins, 1, 2)).max(axis=(1, 2)).astype(np.float64)  # seeds without a tie
        exact = np.where(m > 0, np.minimum(1.0, 2.0 * _sp.binom.cdf(m - w, m, 0.5)), 1.0)
        p = np.where(two & ok, exact, p)
    return q, p


def tost_paired(a: Sequence[float], b: Sequence[float], delta: float, *, higher: bool) -> float | None:
    """p-value of the paired two one-sided tests (TOST) that |mean(a - b)| < ``delta``; None if not testable.

    ``statsmodels.stats.weightstats.ttost_paired(a, b, -delta, delta)``: both
    one-sided paired t-tests must reject at alpha, so "equivalent within
    +-delta" is claimed when the returned p < alpha. None with fewer than 3
    paired values, an infinite value, or delta <= 0. Differences that are all
    identical give p = 0 if inside the margin, 1 if not.

    Source: Schuirmann 1987, J. Pharmacokinet. Biopharm. 15:657-680.
    """
    ga, gb = goodness(a, higher), goodness(b, higher)
    if ga.size < 3 or not (np.isfinite(ga).all() and np.isfinite(gb).all()) or not delta > 0:
        return None
    d = ga - gb
    if float(np.std(d)) == 0.0:
        return 0.0 if abs(float(d[0])) < delta else 1.0
    p = float(_ttost_paired(ga, gb, -float(delta), float(delta))[0])
    return 1.0 if math.isnan(p) else p


def detectable_difference(sd_diff: float, n: int, *, alpha: float, power: float = 0.8) -> float | None:
    """The paired mean difference that a two-sided paired t-test at ``alpha`` finds with ``power``.

    ``statsmodels.stats.power.TTestPower().solve_power(nobs=n, alpha=alpha, power=power)`` gives the
    standardised effect size; times the sd of the per-seed differences. None for n < 2 or sd 0 / not finite.
    """
    if n < 2 or not math.isfinite(sd_diff) or sd_diff <= 0:
        return None
    try:
        es = float(_TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="two-sided"))
    except (ValueError, RuntimeError):
        return None
    return es * sd_diff if math.isfinite(es) else None


def nemenyi_cd(k: int | np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Nemenyi's critical difference of mean ranks: q_alpha(k, inf) / sqrt(2) * sqrt(k (k + 1) / (6 n)).

    q_alpha is the upper-alpha quantile of the studentized range of k means
    (``scipy.stats.studentized_range.ppf(1 - alpha, k, inf)``); two losses whose
    mean ranks over n seeds differ by more than this differ at family-wise level
    alpha over all k (k - 1) / 2 pairs. Infinite for k < 2.

    Source: Nemenyi 1963; Demsar 2006, JMLR 7:1-30, Sec. 3.2.2, Eq. on p. 11.
    """
    k = np.asarray(k, dtype=np.int64)
    q = np.array([_q_alpha(int(x), float(alpha)) for x in k.ravel()]).reshape(k.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return q / math.sqrt(2.0) * np.sqrt(k * (k + 1.0) / (6.0 * n))


_Q_CACHE: dict[tuple[int, float], float] = {}


def _q_alpha(k: int, alpha: float) -> float:
    if k < 2:
        return math.inf
    key = (k, alpha)
    if key not in _Q_CACHE:
        _Q_CACHE[key] = float(_sp.studentized_range.ppf(1.0 - alpha, k, np.inf))
    return _Q_CACHE[key]


def nemenyi_p(g: np.ndarray) -> np.ndarray:
    """Nemenyi's all-pairs p-values after Friedman for one (n, k) table of goodness values (-inf allowed).

    ``scikit_posthocs.posthoc_nemenyi_friedman``: p = P(studentized range of k
    means > sqrt(2) |Rbar_i - Rbar_j| / sqrt(k (k + 1) / (6 n))); single-step,
    family-wise over all pairs. -inf is replaced by a value below every finite
    one first (ranks only). Returns (k, k), 1 on the diagonal.

    Source: Demsar 2006, JMLR 7:1-30, Sec. 3.2.2.
    """
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] < 2 or g.shape[0] < 1:
        return np.ones((g.shape[-1], g.shape[-1]))
    fin = g[np.isfinite(g)]
    low = (float(fin.min()) if fin.size else 0.0) - 1.0
    x = np.where(np.isneginf(g), low, g)
    return np.asarray(_sp_posthocs.posthoc_nemenyi_friedman(x), dtype=np.float64)
