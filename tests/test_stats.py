"""losslab.stats against hand-computed values and scipy as the independent reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from losslab import stats as ls

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
