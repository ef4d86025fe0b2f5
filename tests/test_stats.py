"""losslab.stats against hand-computed values and scipy as the independent reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from losslab import stats as ls

# --------------------------------------------------------------------------- Holm 1979


def test_holm_matches_hand_computed_values():
    # Sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> running max 0.06).
    assert_allclose(ls.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    # 0.02 x 2 = 0.04, then 0.6 x 1; capped at 1 (0.6 x 2 = 1.2); None is left out of the family (m = 2, not 3).
    assert_allclose(ls.holm([0.6, 0.02]), [0.6, 0.04], rtol=1e-12)
    assert_allclose(ls.holm([0.7, 0.6]), [1.0, 1.0], rtol=1e-12)
    out = ls.holm([0.02, None, 0.04])
    assert out[1] is None
    assert_allclose([out[0], out[2]], [0.04, 0.04], rtol=1e-12)
    assert ls.holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ls.holm([1.5])


def test_holm_rejects_exactly_what_the_step_down_procedure_rejects():
    # Step-down by hand at alpha 0.05, m = 5: 0.001 < 0.01 (reject), 0.011 < 0.0125 (reject),
    # 0.02 >= 0.01667 (stop): the first two are rejected, the rest retained.
    p = [0.02, 0.001, 0.3, 0.011, 0.04]
    adj = np.array(ls.holm(p))
    assert list(adj < 0.05) == [False, True, False, True, False]


# --------------------------------------------------------------------------- paired tests


def test_paired_t_test_matches_the_t_distribution_by_hand_and_scipy():
    a, b = [0.30, 0.34, 0.32], [0.60, 0.70, 0.65]  # lower is better: a better in every seed
    r = ls.paired_test(a, b, higher=False)
    # d = b - a = [0.30, 0.36, 0.33]: mean 0.33, s = 0.03, t = 0.33 / (0.03 / sqrt 3) on 2 degrees of freedom.
    t = 0.33 / (0.03 / math.sqrt(3))
    assert r["n"] == 3 and r["test"] == "paired t"
    assert_allclose(r["effect"], 0.33, rtol=1e-12)
    assert_allclose(r["p_value"], 2 * stats.t.sf(t, 2), rtol=1e-9)
    assert_allclose(r["p_value"], stats.ttest_rel(a, b).pvalue, rtol=1e-9)
    # Swapping the pair flips the effect, not the two-sided p-value; higher-is-better flips the sign too.
    s = ls.paired_test(b, a, higher=False)
    assert_allclose([s["effect"], s["p_value"]], [-0.33, r["p_value"]], rtol=1e-9)
    h = ls.paired_test(a, b, higher=True)
    assert_allclose([h["effect"], h["p_value"]], [-0.33, r["p_value"]], rtol=1e-9)


def test_paired_test_without_enough_seeds_or_difference():
    assert ls.paired_test([0.1], [0.2], higher=False) == {"n": 1, "test": None, "effect": pytest.approx(0.1),
                                                          "p_value": None}
    assert ls.paired_test([], [], higher=False)["effect"] is None
    same = ls.paired_test([0.1, 0.2], [0.1, 0.2], higher=False)
    assert same["p_value"] == 1.0 and same["effect"] == 0.0
    with pytest.raises(ValueError, match="same length"):
        ls.paired_test([0.1, 0.2], [0.1], higher=False)
    with pytest.raises(ValueError, match="NaN"):
        ls.paired_test([0.1, float("nan")], [0.1, 0.2], higher=False)


def test_an_infinite_value_is_the_worst_and_uses_the_sign_test():
    inf = math.inf
    # b is infinite (the worst, lower is better) in all 6 seeds: a wins 6 of 6, p = 2 / 2^6 = 0.03125.
    r = ls.paired_test([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [inf] * 6, higher=False)
    assert r["test"] == "sign" and r["effect"] == inf
    assert_allclose(r["p_value"], 2 / 64, rtol=1e-12)
    # inf vs inf is a tie and is dropped: wins 2, losses 1 -> two-sided binomial p = 1.
    r = ls.paired_test([inf, 1.0, 2.0, 0.5], [inf, 2.0, 3.0, 0.1], higher=False)
    assert r["test"] == "sign"
    assert_allclose(r["p_value"], stats.binomtest(2, 3, 0.5).pvalue, rtol=1e-12)
    assert_allclose(r["p_value"], 1.0, rtol=1e-12)
    assert_allclose(r["effect"], (0 + 1 + 1 - 0.4) / 4, rtol=1e-12)
    # Infinite differences of both signs: no mean effect.
    assert ls.paired_test([inf, 1.0], [1.0, inf], higher=False)["effect"] is None
    # Higher is better: -inf is the worst.
    r = ls.paired_test([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [-inf] * 6, higher=True)
    assert r["effect"] == inf and r["p_value"] == pytest.approx(2 / 64, rel=1e-12)


# --------------------------------------------------------------------------- probability of improvement


def test_prob_improvement_by_hand():
    # x = [1, 2, 3] vs y = [2, 2, 5], higher better: 1 beats none; 2 ties twice (0.5 + 0.5);
    # 3 beats 2 and 2: (0 + 1 + 2) / 9.
    assert_allclose(ls.prob_improvement([1, 2, 3], [2, 2, 5], higher=True), 3 / 9, rtol=1e-12)
    assert_allclose(ls.prob_improvement([1, 2, 3], [2, 2, 5], higher=False), 6 / 9, rtol=1e-12)
    # inf is the worst value (lower is better) and ties with itself: (0 + 0.5 + 1 + 1) / 4.
    assert_allclose(ls.prob_improvement([math.inf, 1.0], [2.0, math.inf], higher=False), 0.625, rtol=1e-12)
    with pytest.raises(ValueError, match="at least one"):
        ls.prob_improvement([], [1.0], higher=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prob_improvement_equals_mann_whitney_u_over_nm(seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(0.3, 0.1, size=5), 2)  # rounding makes ties
    y = np.round(rng.normal(0.35, 0.1, size=7), 2)
    u = stats.mannwhitneyu(x, y).statistic
    assert_allclose(ls.prob_improvement(x, y, higher=True), u / (5 * 7), rtol=1e-12)
    u_lower = stats.mannwhitneyu(-x, -y).statistic
    assert_allclose(ls.prob_improvement(x, y, higher=False), u_lower / 35, rtol=1e-12)
    assert_allclose(ls.prob_improvement(x, y, higher=True) + ls.prob_improvement(y, x, higher=True), 1.0,
                    rtol=1e-12)


def test_prob_improvement_ci_is_the_stratified_percentile_bootstrap():
    x, y = np.array([0.1, 0.3, 0.2, 0.5, 0.45]), np.array([0.25, 0.4, 0.35, 0.3, 0.5, 0.15])
    lo, hi = ls.prob_improvement_ci(x, y, higher=True, n_boot=300, seed=7)
    # Reference: the same draws (a's seeds, then b's, with replacement), each replicate scored by Mann-Whitney U.
    rng = np.random.default_rng(7)
    ia, ib = rng.integers(0, 5, size=(300, 5)), rng.integers(0, 6, size=(300, 6))
    reps = [stats.mannwhitneyu(x[i], y[j]).statistic / 30 for i, j in zip(ia, ib)]
    assert_allclose([lo, hi], np.quantile(reps, [0.025, 0.975]), rtol=1e-12)
    assert lo < ls.prob_improvement(x, y, higher=True) < hi
    # Fewer than 5 seeds per loss: no interval. (Changed with the race: this test asserted [1, 1] from 2 seeds,
    # a bootstrap of 2 values that has 3 distinct resamples and says nothing about the uncertainty.)
    assert ls.prob_improvement_ci([1.0, 2.0], [0.1, 0.2], higher=True) is None
    assert ls.prob_improvement_ci([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4, 0.5], higher=True) is None
    assert ls.prob_improvement_ci([1.0] * 5, [0.1] * 5, higher=True) == [1.0, 1.0]
    # Seeded: another seed draws other resamples, and a different interval here.
    assert ls.prob_improvement_ci(x, y, higher=True, seed=1) != ls.prob_improvement_ci(x, y, higher=True, seed=2)


# --------------------------------------------------------------------------- Pareto front


def test_pareto_front_on_a_hand_made_table():
    # columns: w1 (lower better), modes_covered (higher), high_quality (higher)
    table = [
        [0.10, 5, 0.90],  # 0: best w1
        [0.30, 8, 0.80],  # 1: best coverage
        [0.35, 8, 0.70],  # 2: dominated by 1 (worse w1 and quality, equal coverage)
        [0.20, 6, 0.95],  # 3: best quality
        [0.10, 5, 0.90],  # 4: equal to 0: neither dominates the other
        [math.inf, 8, 0.99],  # 5: infinite w1 is the worst, but best quality keeps it on the front
    ]
    assert ls.pareto_front(table, [False, True, True]) == [0, 1, 3, 4, 5]
    assert ls.pareto_front([[0.3, 8, 0.8], [0.35, 8, 0.7]], [False, True, True]) == [0]
    assert ls.pareto_front(np.zeros((0, 2)), [False, True]) == []
    with pytest.raises(ValueError, match="table must be"):
        ls.pareto_front([[1.0, 2.0]], [True])
