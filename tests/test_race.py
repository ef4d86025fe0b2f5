"""The race's decision rule: its statistics against scipy / scikit-posthocs, and its error rates simulated.

The simulations run the rule itself (:func:`losslab.race.simulate`, the same
:func:`losslab.race.eliminate` that :func:`losslab.race.decide` runs on a
comparison's runs) on synthetic metric tables, thousands at once.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scikit_posthocs as sp
from numpy.testing import assert_allclose
from scipy import stats

from losslab import race
from losslab import stats as ls

REPS = 1000
REPS_FIXED = 4000  # one look is cheap: more replicates, a standard error of 0.0035 near 5%


def _null_rate(rng, k: int, n_cap: int, limits: race.Limits, diverge: float, reps: int = REPS) -> float:
    g = rng.normal(size=(reps, n_cap, k))
    if diverge:
        g[rng.random(g.shape) < diverge] = -np.inf  # the same chance of diverging for every loss
    alive, _ = race.simulate(g, limits)
    return float((~alive).any(1).mean())


# --------------------------------------------------------------------------- the statistics


@pytest.mark.parametrize("seed", range(6))
def test_friedman_equals_scipy_with_ties_and_infinities(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 9)), int(rng.integers(3, 8))
    x = rng.normal(size=(n, k)).round(1)  # rounding makes ties
    x[0, 1] = x[1, 2] = x[1, 0] = -np.inf  # diverged runs: the worst value, tied with each other
    q, p = ls.friedman(x[None], np.ones((1, k), dtype=bool))
    ref = stats.friedmanchisquare(*np.where(np.isinf(x), -1e9, x).T)
    assert_allclose([q[0], p[0]], [ref.statistic, ref.pvalue], rtol=1e-10)


def test_friedman_on_the_alive_columns_only_and_degenerate_tables():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 4))
    alive = np.array([[True, False, True, True]])
    q, p = ls.friedman(x[None], alive)
    ref = stats.friedmanchisquare(*x[:, [0, 2, 3]].T)
    assert_allclose([q[0], p[0]], [ref.statistic, ref.pvalue], rtol=1e-10)
    # Every value tied, or a single seed: no evidence, p = 1.
    assert ls.friedman(np.zeros((1, 4, 3)), np.ones((1, 3), bool))[1][0] == 1.0
    assert ls.friedman(x[None, :1], np.ones((1, 4), bool))[1][0] == 1.0


@pytest.mark.parametrize("shift", [0.0, 1.5])
def test_nemenyi_critical_difference_rejects_exactly_where_scikit_posthocs_p_is_below_alpha(shift):
    rng = np.random.default_rng(3)
    rejected = 0
    for _ in range(8):
        n, k = int(rng.integers(4, 12)), int(rng.integers(2, 8))
        x = rng.normal(size=(n, k)) + shift * np.arange(k)  # shift: later losses better, some pairs reject
        p = ls.nemenyi_p(x)
        assert_allclose(p, sp.posthoc_nemenyi_friedman(x).to_numpy(), rtol=1e-12)
        mr = ls.block_ranks(x[None], np.ones((1, k), bool))[0].mean(0)
        for alpha in (0.05, 0.01):
            cd = float(ls.nemenyi_cd(k, n, alpha))
            gap = np.abs(mr[:, None] - mr[None, :])
            far = gap > cd
            np.fill_diagonal(far, False)
            clear = np.abs(gap - cd) > 1e-9  # a gap exactly at the critical difference is a tie of float rounding
            assert (far == (p < alpha))[clear].all()
        rejected += int((p < 0.05).any())
    assert (rejected > 0) == (shift > 0)  # the shifted tables are not vacuous


def test_tost_and_detectable_difference_against_statsmodels_and_hand_values():
    from statsmodels.stats.power import TTestPower
    from statsmodels.stats.weightstats import ttost_paired

    a = np.array([1.0, 1.1, 0.9, 1.05, 0.97])
    b = a + np.array([0.01, -0.02, 0.015, 0.0, -0.01])
    assert_allclose(ls.tost_paired(a, b, 0.1, higher=True), ttost_paired(a, b, -0.1, 0.1)[0], rtol=1e-12)
    assert ls.tost_paired(a, b, 0.1, higher=True) < 0.05 < ls.tost_paired(a, b, 0.01, higher=True)
    assert ls.tost_paired(a[:2], b[:2], 0.1, higher=True) is None  # fewer than 3 pairs: no test
    assert ls.tost_paired([1, 2, -math.inf], [1, 2, 3], 0.1, higher=True) is None
    es = TTestPower().solve_power(nobs=6, alpha=0.01, power=0.8)
    assert_allclose(ls.detectable_difference(0.3, 6, alpha=0.01), 0.3 * es, rtol=1e-9)
    assert ls.detectable_difference(0.3, 1, alpha=0.01) is None


# --------------------------------------------------------------------------- the rule, simulated


def test_default_limits_and_looks():
    assert race.DEFAULT.looks() == [5, 8, 11]
    assert_allclose(race.DEFAULT.alpha_look, 0.05 / 3)
    assert race.fixed(4).looks() == [4]
    assert race.Limits(first=3, step=4, cap=9).looks() == [3, 7, 9]


@pytest.mark.parametrize("k", [2, 3, 5, 9, 12])
def test_under_the_null_the_race_calls_a_loss_worse_at_most_5_percent_of_the_time(k):
    rng = np.random.default_rng(100 + k)
    rates = {}
    for diverge in (0.0, 0.2):
        rates[("race", diverge)] = _null_rate(rng, k, race.DEFAULT.cap, race.DEFAULT, diverge)
        for n in (3, 5, 10, 20):  # a fixed design, --seeds n
            rates[(n, diverge)] = _null_rate(rng, k, n, race.fixed(n), diverge, REPS_FIXED)
    print(k, {str(key): round(v, 3) for key, v in rates.items()})
    # The race's rate sits near 1% (alpha / 5 per look); a fixed design's near 3-4.7% (its Friedman test).
    assert max(rates.values()) <= 0.05, rates


@pytest.mark.parametrize("k", [3, 5, 9, 12])  # 2 losses: the exact sign test at 8 and 11 seeds, power ~0.77-0.81
def test_a_loss_two_seed_sds_worse_is_eliminated_with_at_least_80_percent_probability(k):
    rng = np.random.default_rng(200 + k)
    g = rng.normal(size=(REPS, race.DEFAULT.cap, k))
    g[:, :, 0] -= 2.0  # loss 0 is 2 seed-SDs worse than the others, which are alike
    alive, seeds = race.simulate(g, race.DEFAULT)
    power = float((~alive[:, 0]).mean())
    wrong = float((~alive[:, 1:]).any(1).mean())  # an alike loss eliminated (partial null)
    print(k, power, wrong, seeds.mean())
    assert power >= 0.80
    assert wrong <= 0.05


def test_a_diverged_run_is_simply_the_worst_rank():
    # Loss 0 is worse on every seed, one of its seeds diverged (-inf): ranks treat it like any last place.
    g = np.tile(np.arange(5.0), (11, 1))[None]  # (1, 11, 5): loss j better than j - 1 on every seed
    g[0, 4, 0] = -np.inf
    alive, seeds = race.simulate(g, race.DEFAULT)
    assert alive[0].tolist() == [False, False, False, False, True] and seeds[0] <= 11


def test_decide_runs_the_same_rule_as_the_simulation_and_names_the_next_block():
    rng = np.random.default_rng(11)
    losses = ["a", "b", "c", "d"]
    for rep in range(12):
        g = rng.normal(size=(race.DEFAULT.cap, 4)) + rng.choice([0.0, 1.5], size=4)
        values = {loss: {10 + s: float(g[s, i]) for s in range(race.DEFAULT.cap)} for i, loss in enumerate(losses)}
        rec = race.decide(values, losses, seed_start=10, limits=race.Limits(delta=1e-9))
        alive, seeds = race.simulate(g[None], race.DEFAULT)
        assert set(rec["survivors"]) == {x for x, a in zip(losses, alive[0]) if a}
        assert rec["looks"][-1]["n_seeds"] == seeds[0]
        assert rec["need"] == {}
    # Only the first block finished: the race asks for the next three seeds of the losses still in it.
    values = {"a": {0: 1.0, 1: 1.1, 2: 0.9, 3: 1.2, 4: 1.0}, "b": {0: 0.5, 1: 0.7, 2: 0.6, 3: 0.4, 4: 0.8}}
    rec = race.decide(values, ["a", "b"], seed_start=0)
    assert rec["stopped"] is None and rec["need"] == {"a": [5, 6, 7], "b": [5, 6, 7]}
    assert rec["looks"][0]["eliminated"] == []  # 5 seeds: the exact sign test's smallest p, 0.0625, is not < 0.0167


def test_two_losses_get_the_exact_sign_test():
    rng = np.random.default_rng(5)
    for _ in range(10):
        n = int(rng.integers(2, 12))
        x = rng.normal(size=(n, 2)).round(0)  # ties are dropped
        x[rng.random(n) < 0.2, 0] = -np.inf
        _, p = ls.friedman(x[None], np.ones((1, 2), bool))
        w, l_ = int((x[:, 0] > x[:, 1]).sum()), int((x[:, 0] < x[:, 1]).sum())
        ref = stats.binomtest(w, w + l_, 0.5).pvalue if w + l_ else 1.0
        assert_allclose(p[0], ref, rtol=1e-10)


@pytest.mark.parametrize("k, alike", [(5, 2), (9, 2), (12, 2), (12, 6), (9, 3)])
def test_the_step_down_keeps_alike_losses_under_partial_nulls(k, alike):
    """Some losses alike, the others far worse and spread (each 3 seed-SDs below the next): the step-down
    removes the far ones first, then compares the rest with the smaller critical difference of fewer
    losses; it must still call one of the alike losses worse in at most 5% of the races."""
    rng = np.random.default_rng(300 + 10 * k + alike)
    g = rng.normal(size=(REPS, race.DEFAULT.cap, k))
    g[:, :, alike:] -= 3.0 * np.arange(1, k - alike + 1)
    alive, _ = race.simulate(g, race.DEFAULT)
    wrong = float((~alive[:, :alike]).any(1).mean())
    gone = float((~alive[:, alike:]).mean())
    print(k, alike, wrong, gone)
    assert wrong <= 0.05
    assert gone >= 0.95  # and the far-worse ones do go


def test_the_step_down_separates_what_one_round_over_all_losses_cannot():
    # 12 losses in a strict order on all 11 seeds. Over all 12, Nemenyi's CD at alpha 0.05/3 is 5.5 mean ranks:
    # one round shows only l0-l5 worse than l11. Re-ranked among the six left (CD 2.5), then three (1.2), then
    # two (the sign test, 11 of 11 seeds), every loss but the best is shown worse.
    g = np.tile(np.arange(12.0), (11, 1))  # (11 seeds, 12 losses): loss j better than j - 1 on every seed
    one = race.rounds(g, [f"l{j}" for j in range(12)], race.DEFAULT.alpha_look)
    first = one[0]
    assert_allclose(first["cd"], ls.nemenyi_cd(12, 11, race.DEFAULT.alpha_look))
    assert first["mean_ranks"]["l11"] == 1.0 and first["mean_ranks"]["l0"] == 12.0  # Demsar: 1 = best
    assert set(first["eliminated"]) == {f"l{j}" for j in range(12) if 11 - j > first["cd"]}
    assert len(one) >= 3 and one[-1]["eliminated"] == []
    gone = {x for r in one for x in r["eliminated"]}
    assert gone == {f"l{j}" for j in range(11)}  # every round re-ranks: in the end only the best is left
    assert one[-1]["alive"] == ["l11"]
    alive, _ = race.simulate(g[None], race.fixed(11))
    assert alive[0].tolist() == [False] * 11 + [True]
