"""Quality curves read back: has a run converged, what budget do the curves suggest.

Pure functions on the ``curve`` lists that :func:`losslab.train.loop.train_run`
writes into each run's result.json (points ``{"g_updates", "wall_seconds",
<metric>: value, ...}``), and :func:`extend_results`, which adds what they say
(and ``--search``'s trials) to results.json. No model, no data: the verdict
and the report call them on run directories alone.

The rules (also in docs/ARCHITECTURE.md):

- **evaluation error** (:func:`eval_sd`): each curve point carries ``eval_sd``
  (:func:`losslab.train.loop.curve_point`: two independent evaluations of the
  same model, ``|v1 - v2| / sqrt 2``); a curve's evaluation standard deviation
  ``s`` pools them over its points in the second half of the budget, where
  convergence is judged (root mean square: one degree of freedom per point;
  all points when fewer than 2 lie there). Points without it (runs of older
  versions) give ``s = 0``.
- **converged** (:func:`is_converged`): let ``B`` be the run's budget on the
  axis it was measured in (generator updates for ``--steps``, training seconds
  for ``--budget-seconds``). The last quarter's change is read from the trend
  of the curve's end: a least-squares line through the points past ``0.5 B``
  (at least 4 of them; the default 8 evenly spaced points give 4, over the
  last 3/8 of the budget), its improvement over a quarter of the budget ``g =
  slope B / 4`` in the metric's better direction, its level ``v`` at ``0.75
  B``. The run has **not** converged when that improvement is larger than
  ``CONVERGED_REL |v|`` (5%) and than ``t SE(g)``, with ``SE(g)`` from the
  points' scatter about the line (``s / sqrt(Sxx) B / 4``, ``s`` the residual
  standard deviation, at least the evaluation standard deviation) and ``t``
  the one-sided 95% quantile of Student's t with ``n - 2`` degrees of freedom:
  a one-sided t-test of the slope at 5% (:data:`ALPHA`). The scatter about the
  line holds what makes a GAN's curve noisy, the model moving from one point
  to the next as well as the evaluation's own error; measured on the default
  comparison (docs/demo.md), the two evaluation draws of a point differ by
  about 0.01-0.05 W1 while a flat curve's points jump by 0.3-0.5, so a rule
  that knows only the evaluation error calls such a flat curve "not
  converged" whenever its last point happens to be lower (simulated in
  tests/test_convergence.py: at most 5% of flat curves with iid noise of
  either kind are called not converged). What it can find (simulated, 8
  points, 2,000 curves each): with points scattering 5% of their value, a
  steady improvement of 20% per quarter is called not converged 85% of the
  time, 10% per quarter 28%; with 2% scatter, 10% per quarter 93%. A curve that gets worse counts as
  converged (more budget would not help it). With fewer than 4 points past
  ``0.5 B``: the last point against the last point at or before ``0.75 B``,
  within ``max(CONVERGED_REL |v0|, SE_MULT sqrt(2) s)`` (``s`` the evaluation
  standard deviation). Undetermined (``None``) with no point at or before
  ``0.75 B``, no point after it, or a non-finite value past 0.5 B; an
  undetermined run is neither converged nor not (:func:`converged_rate` skips
  it).
- The verdict recomputes every run's ``converged`` on the **ranked** metric
  (``--metric``) from its curve (:func:`recheck_convergence`); the run's own
  result.json holds it for the family's default metric.
- **suggested budget** (:func:`suggested_budget`): per loss, the mean curve
  over its seeds (points aligned by index; its evaluation error ``s / sqrt
  k`` for ``k`` seeds). A converged mean curve needs no more than the current
  budget ``B``. One that has not converged is extrapolated: with ``r1`` its
  relative change over the third quarter and ``r2`` over the last (each: the
  point at the quarter's end against the one at its start), if ``0 < r2 <
  r1`` the improvement is taken to shrink by ``q = r2 / r1`` per quarter and
  to fall within the convergence tolerance ``t`` (as above, relative) after
  ``n = ceil(log(t / r2) / log q)`` more quarters: the need is ``B (1 + n /
  4)``, at most ``MAX_FACTOR B``. A curve whose improvement does not shrink
  (accelerating or steady) needs more than ``MAX_FACTOR B``: its need is
  ``MAX_FACTOR B`` marked ``capped`` ("more than 4x the budget"). The need
  grows with ``r2`` and falls with ``r1`` (monotone), and never exceeds the
  cap. The suggestion is the largest need over the losses, rounded up to a
  whole update (or second).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from losslab import rundir

__all__ = ["ALPHA", "CONVERGED_REL", "MIN_TREND_POINTS", "quarter_trend", "MAX_FACTOR", "SE_MULT", "converged_rate", "eval_sd", "extend_results", "is_converged",
           "mean_curve", "recheck_convergence", "suggested_budget"]

CONVERGED_REL = 0.05
"""Relative change over the last quarter of the budget within which a run counts as converged (or SE_MULT SEs)."""

SE_MULT = 2.0
"""... or within this many standard errors of the difference of two curve points (curves too short for a trend)."""

ALPHA = 0.05
"""One-sided level of the test of the trend past half the budget: how often a flat curve is called not converged."""

MIN_TREND_POINTS = 4
"""Points past half the budget needed for the trend rule (2 degrees of freedom for its scatter)."""

MAX_FACTOR = 4
"""The suggested budget is at most this many times the current one; beyond it the report says "more than 4x"."""


def _values(curve: list[dict], metric: str, axis: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(float(p[axis]), float(p[metric])) for p in curve
           if p.get(axis) is not None and isinstance(p.get(metric), (int, float)) and not isinstance(p[metric], bool)]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = np.array(pts, dtype=np.float64).T
    return x, y


def eval_sd(curve: list[dict], metric: str, *, after: float | None = None, axis: str = "g_updates") -> float:
    """The curve's evaluation standard deviation of ``metric``: the root mean square of its points' ``eval_sd``.

    With ``after``, only the points past that position on ``axis`` (the noise near the end of a curve,
    where it is judged: earlier points at other levels can have another noise), unless fewer than 2
    such points carry one. 0.0 when no point carries one (older runs: the rule falls back to the 5%
    threshold alone).
    """
    def sds(points):
        return [float(p["eval_sd"][metric]) for p in points
                if isinstance((p.get("eval_sd") or {}).get(metric), (int, float))
                and math.isfinite(float(p["eval_sd"][metric]))]

    v = sds(curve)
    if after is not None:
        late = sds([p for p in curve if isinstance(p.get(axis), (int, float)) and p[axis] > after + 1e-9])
        v = late if len(late) >= 2 else v
    return float(math.sqrt(np.mean(np.square(v)))) if v else 0.0


def _gain(start: float, end: float, higher: bool) -> float:
    """Relative improvement of ``end`` over ``start`` (positive: better)."""
    diff = (end - start) if higher else (start - end)
    if abs(start) < 1e-12:
        return 0.0 if diff <= 0 else math.inf
    return diff / abs(start)


def _point_at(x: np.ndarray, y: np.ndarray, at: float) -> float | None:
    """The value of the last point at or before ``at`` (None: none)."""
    before = np.flatnonzero(x <= at + 1e-9)
    return float(y[before[-1]]) if len(before) else None


def _tolerance(start: float, sd: float, rel: float) -> float:
    """The change within which a quarter counts as flat, in the metric's units: max(rel |start|, 2 SE)."""
    return max(rel * abs(start), SE_MULT * math.sqrt(2.0) * sd)


def is_converged(curve: list[dict], metric: str, higher: bool, *, budget: float | None = None,
                 axis: str = "g_updates", rel: float = CONVERGED_REL, sd: float | None = None) -> bool | None:
    """Whether the metric stopped improving over the last quarter of the budget (rule in the module docstring).

    Parameters
    ----------
    curve : list of dict
        Curve points with ``axis`` and ``metric`` keys (and ``eval_sd``), in training order.
    metric : str
        The ranked metric (e.g. ``"w1"``).
    higher : bool
        Whether higher values of ``metric`` are better.
    budget : float, optional
        The budget ``B`` on ``axis``; default the last point's position.
    axis : {"g_updates", "wall_seconds"}
        Where the budget is measured.
    rel : float
        The relative threshold (default 5%).
    sd : float, optional
        The evaluation standard deviation of one point; default :func:`eval_sd` of ``curve``.

    Returns
    -------
    bool or None
        None when the curve cannot tell (see the module docstring).
    """
    x, y = _values(curve, metric, axis)
    if len(x) < 2:
        return None
    b = float(budget) if budget is not None else float(x[-1])
    cut = 0.75 * b
    after = np.flatnonzero(x > cut + 1e-9)
    start = _point_at(x, y, cut)
    if start is None or len(after) == 0:
        return None
    half = x > 0.5 * b + 1e-9
    if not np.isfinite(y[half]).all() or not math.isfinite(start):
        return None
    s = eval_sd(curve, metric, after=0.5 * b, axis=axis) if sd is None else float(sd)
    if int(half.sum()) >= MIN_TREND_POINTS:
        trend = quarter_trend(x[half], y[half], b, higher, sd=s)
        return bool(not (trend["gain"] > rel * abs(trend["level"]) and trend["gain"] > trend["threshold"]))
    end = float(y[after[-1]])
    change = (end - start) if higher else (start - end)
    return bool(change <= _tolerance(start, s, rel))


def quarter_trend(x: np.ndarray, y: np.ndarray, budget: float, higher: bool, *, sd: float = 0.0,
                  alpha: float = ALPHA) -> dict[str, float]:
    """The improvement per quarter of the budget of a least-squares line through ``(x, y)``, and its test.

    Parameters
    ----------
    x, y : (n,) arrays, n >= 3
        Positions on the budget axis and the metric's values (finite).
    budget : float
        The budget ``B`` (the quarter is ``B / 4``).
    higher : bool
        Whether higher values are better.
    sd : float
        A floor for the points' standard deviation (their evaluation error).
    alpha : float
        One-sided level of the test of the slope.

    Returns
    -------
    dict
        ``gain`` (slope x B / 4 in the better direction; negative: getting
        worse), ``level`` (the line at 0.75 B), ``se`` (the standard error of
        ``gain``: the residual standard deviation, at least ``sd``, over
        sqrt(Sxx), x B / 4), ``df`` (n - 2) and ``threshold`` (``t_{1-alpha,
        df} se``: a larger gain is a significant improvement).

    Raises
    ------
    ValueError
        Fewer than 3 points, or all at one position.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    sxx = float(np.sum((x - x.mean()) ** 2))
    if n < 3 or sxx <= 0:
        raise ValueError(f"a trend needs 3 or more points at 2 or more positions, got {n}")
    slope = float(np.sum((x - x.mean()) * (y - y.mean())) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    df = n - 2
    s_res = math.sqrt(float(np.sum((y - intercept - slope * x) ** 2)) / df)
    se = max(s_res, float(sd)) / math.sqrt(sxx) * budget / 4
    gain = (slope if higher else -slope) * budget / 4
    return {"gain": gain, "level": intercept + slope * 0.75 * budget, "se": se, "df": float(df),
            "threshold": float(stats.t.ppf(1 - alpha, df)) * se}


def converged_rate(runs: Iterable[dict]) -> float | None:
    """Share of the runs with ``converged`` True among those where it is known (None: none known)."""
    flags = [r.get("converged") for r in runs if r.get("converged") is not None]
    return (sum(bool(f) for f in flags) / len(flags)) if flags else None


def recheck_convergence(runs: list[dict], metric: str, higher: bool, spec: dict[str, Any]) -> None:
    """Set each ok run's ``converged`` on the ranked ``metric`` from its curve (in place).

    The run wrote it for its family's default metric; ``--metric`` ranks on
    another. A run whose curve lacks ``metric`` gets None (undetermined:
    neither converged nor not); a run without a curve keeps what it wrote
    (None from the loop). Each recomputed run gets ``converged_metric``.
    """
    train = spec["config"]["train"]
    seconds = train.get("budget_seconds")
    axis, budget = ("wall_seconds", float(seconds)) if seconds is not None else ("g_updates", float(train["steps"]))
    for r in runs:
        if r.get("status") != "ok":
            continue
        curve = r.get("curve") or []
        if curve:
            r["converged"] = is_converged(curve, metric, higher, budget=budget, axis=axis)
            r["converged_metric"] = metric


def mean_curve(curves: list[list[dict]], metric: str, axis: str = "g_updates") -> dict[str, Any] | None:
    """Mean and spread of a loss's curves over its seeds, points aligned by index.

    Returns
    -------
    dict or None
        ``x`` (mean position on ``axis``), ``mean``, ``std`` (ddof 0), ``lo``,
        ``hi`` (min and max over seeds), each of length the shortest curve,
        and ``eval_sd`` (float: the evaluation standard deviation of the mean,
        :func:`eval_sd` pooled over the seeds / sqrt(seeds)); None when no
        curve has the metric.
    """
    pairs = [(_values(c, metric, axis), eval_sd(c, metric, after=0.5 * max((float(p.get(axis) or 0) for p in c),
                                                                          default=0.0), axis=axis))
             for c in curves]
    pairs = [(x, y, s) for (x, y), s in pairs if len(x)]
    if not pairs:
        return None
    n = min(len(x) for x, _, _ in pairs)
    xs = np.stack([x[:n] for x, _, _ in pairs])
    ys = np.stack([y[:n] for _, y, _ in pairs])
    sd = math.sqrt(float(np.mean([s * s for _, _, s in pairs])) / len(pairs))
    return {"x": xs.mean(0), "mean": ys.mean(0), "std": ys.std(0), "lo": ys.min(0), "hi": ys.max(0), "eval_sd": sd}


def _need(x: np.ndarray, y: np.ndarray, sd: float, higher: bool, budget: float, rel: float) -> tuple[float, bool]:
    """The budget one mean curve needs, and whether it is capped (rule in the module docstring)."""
    cap = float(MAX_FACTOR * budget)
    pts = [{"b": float(a), "v": float(v)} for a, v in zip(x, y)]
    if is_converged(pts, "v", higher, budget=budget, axis="b", rel=rel, sd=sd):
        return float(budget), False
    v_half, v_3q, v_end = (_point_at(x, y, f * budget) for f in (0.5, 0.75, 1.0))
    if v_half is None or v_3q is None or v_end is None:
        return cap, True
    r1, r2 = _gain(v_half, v_3q, higher), _gain(v_3q, v_end, higher)
    t = _tolerance(v_3q, sd, rel) / max(abs(v_3q), 1e-12)  # the tolerance, relative to the value
    if r2 <= t:
        return float(budget), False
    if not (r2 < r1) or not math.isfinite(r1):
        return cap, True  # not shrinking: nothing to extrapolate within the cap
    n = math.ceil(math.log(t / r2) / math.log(r2 / r1))
    need = budget * (1 + max(n, 1) / 4)
    return (min(need, cap), need >= cap)


def suggested_budget(curves_by_loss: dict[str, list[list[dict]]], metric: str, higher: bool, budget: float,
                     *, axis: str = "g_updates", rel: float = CONVERGED_REL) -> dict[str, Any]:
    """The budget the mean curves suggest (rule in the module docstring).

    Parameters
    ----------
    curves_by_loss : dict
        Loss name -> the curves of its finished runs.
    metric, higher, axis, rel : see :func:`is_converged`.
    budget : float
        The current budget on ``axis`` (updates or seconds).

    Returns
    -------
    dict
        ``value`` (int updates or float seconds, at most ``MAX_FACTOR``
        budgets; None when no loss has a curve), ``capped`` (True when the
        largest need is beyond the cap: "more than 4x the budget"),
        ``per_loss`` (loss -> its need, None when it has no curve),
        ``capped_losses`` and ``rule`` (one sentence).
    """
    per_loss: dict[str, float | None] = {}
    capped: list[str] = []
    for loss, curves in curves_by_loss.items():
        m = mean_curve(curves, metric, axis)
        if m is None or len(m["x"]) < 2 or not np.isfinite(m["mean"]).all():
            per_loss[loss] = None
            continue
        per_loss[loss], cap = _need(m["x"], m["mean"], m["eval_sd"], higher, float(budget), rel)
        if cap:
            capped.append(loss)
    needs = [v for v in per_loss.values() if v is not None]
    value: float | int | None = None
    if needs:
        value = int(math.ceil(max(needs))) if axis == "g_updates" else float(math.ceil(max(needs)))
    return {"value": value, "capped": bool(capped), "capped_losses": capped, "per_loss": per_loss,
            "rule": f"the largest need over the losses: the current budget for a converged mean curve; else "
                    f"the budget at which its per-quarter improvement, shrinking as from the third to the last "
                    f"quarter, falls within the convergence tolerance (max of {rel:.0%} and {SE_MULT:g} standard "
                    f"errors), at most {MAX_FACTOR}x the budget; a curve whose improvement does not shrink needs "
                    f"more than {MAX_FACTOR}x"}


def extend_results(out: str | Path, spec: dict[str, Any], runs: list[dict], results: dict[str, Any]) -> None:
    """Add the curves' verdict and the search to a results.json dict (in place).

    - each ranking row: ``converged_rate`` (:func:`converged_rate` of the loss's ok runs);
    - ``budget``: ``seed_start``, ``seconds`` (the time budget, or None),
      ``suggested_steps`` (updates) or, for a time budget, ``suggested_seconds``,
      ``suggested_capped`` (the need is more than ``MAX_FACTOR`` budgets) and
      ``suggested_rule`` (:func:`suggested_budget` on the ranked metric);
    - ``search``: ``OUT/search/search.json`` when the comparison ran ``--search``, else None.
    """
    metric = results["primary_metric"]["name"]
    higher = bool(results["primary_metric"]["higher_is_better"])
    ok = [r for r in runs if r.get("status") == "ok"]
    for row in results["ranking"]:
        row["converged_rate"] = converged_rate(r for r in ok if r.get("loss") == row["loss"])
    train = spec["config"]["train"]
    seconds = train.get("budget_seconds")
    axis, budget = ("wall_seconds", float(seconds)) if seconds is not None else ("g_updates", float(train["steps"]))
    curves = {loss: [r["curve"] for r in ok if r.get("loss") == loss and r.get("curve")]
              for loss in rundir.candidates_of(spec)}
    sug = suggested_budget({k: v for k, v in curves.items() if v}, metric, higher, budget, axis=axis)
    b = results["budget"]
    b.update(seed_start=int(spec.get("seed_start", 0)), seconds=seconds, suggested_rule=sug["rule"])
    b["suggested_seconds" if seconds is not None else "suggested_steps"] = sug["value"]
    b["suggested_capped"] = sug["capped"]  # True: "more than MAX_FACTOR x the budget"
    path = Path(out) / rundir.SEARCH / rundir.SEARCH_RESULTS
    results["search"] = rundir.read_json_file(path) if path.exists() else None
