"""Quality curves read back: has a run converged, what budget do the curves suggest.

Pure functions on the ``curve`` lists that :func:`losslab.train.loop.train_run`
writes into each run's result.json (points ``{"g_updates", "wall_seconds",
<metric>: value, ...}``), and :func:`extend_results`, which adds what they say
(and ``--search``'s trials) to results.json. No model, no data: the verdict
and the report call them on run directories alone.

The rules (also in docs/ARCHITECTURE.md):

- **converged** (:func:`is_converged`): let ``B`` be the run's budget on the
  axis it was measured in (generator updates for ``--steps``, training seconds
  for ``--budget-seconds``) and ``v0`` the metric at the start of the last
  quarter (the last curve point at or before ``0.75 B``). The run converged when
  the best value among the curve points after ``0.75 B`` improves on ``v0`` by
  less than :data:`CONVERGED_REL` = 5% of ``|v0|`` (lower-is-better metrics:
  ``(v0 - min) / |v0| < 0.05``; higher-is-better: ``(max - v0) / |v0| < 0.05``).
  A curve that gets worse in the last quarter counts as converged (more budget
  would not help it). Undetermined (``None``) with no point at or before
  ``0.75 B``, no point after it, or a non-finite value there.
- **suggested budget** (:func:`suggested_budget`): per loss, the mean curve
  over its seeds (points aligned by index). A converged mean curve needs no
  more than the current budget ``B``. One that has not converged is
  extrapolated: with ``r1`` its relative improvement over the third quarter
  and ``r2`` over the last (each: best point of the quarter against the value
  at its start), if ``0 < r2 < r1`` the improvement is taken to shrink by
  ``q = r2 / r1`` per quarter, and it falls below 5% after
  ``n = ceil(log(0.05 / r2) / log q)`` more quarters: the need is
  ``B (1 + n / 4)``; otherwise (not shrinking, or undeterminable) ``2 B``.
  The suggestion is the largest need over the losses, rounded up to a whole
  update (or second).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from losslab import rundir

__all__ = ["CONVERGED_REL", "converged_rate", "extend_results", "is_converged", "mean_curve", "suggested_budget"]

CONVERGED_REL = 0.05
"""Relative improvement over the last quarter of the budget below which a run counts as converged."""


def _values(curve: list[dict], metric: str, axis: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(float(p[axis]), float(p[metric])) for p in curve
           if p.get(axis) is not None and isinstance(p.get(metric), (int, float)) and not isinstance(p[metric], bool)]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = np.array(pts, dtype=np.float64).T
    return x, y


def _gain(start: float, best: float, higher: bool) -> float:
    """Relative improvement of ``best`` over ``start`` (positive: better)."""
    diff = (best - start) if higher else (start - best)
    if abs(start) < 1e-12:
        return 0.0 if diff <= 0 else math.inf
    return diff / abs(start)


def _quarter_gain(x: np.ndarray, y: np.ndarray, lo: float, hi: float, higher: bool) -> float | None:
    """Relative improvement of the best point in (lo, hi] over the last point at or before lo."""
    before = np.flatnonzero(x <= lo + 1e-9)
    inside = np.flatnonzero((x > lo + 1e-9) & (x <= hi + 1e-9))
    if len(before) == 0 or len(inside) == 0:
        return None
    tail = y[inside]
    return _gain(float(y[before[-1]]), float(tail.max() if higher else tail.min()), higher)


def is_converged(curve: list[dict], metric: str, higher: bool, *, budget: float | None = None,
                 axis: str = "g_updates", rel: float = CONVERGED_REL) -> bool | None:
    """Whether the metric stopped improving over the last quarter of the budget (rule in the module docstring).

    Parameters
    ----------
    curve : list of dict
        Curve points with ``axis`` and ``metric`` keys, in training order.
    metric : str
        The ranked metric (e.g. ``"w1"``).
    higher : bool
        Whether higher values of ``metric`` are better.
    budget : float, optional
        The budget ``B`` on ``axis``; default the last point's position.
    axis : {"g_updates", "wall_seconds"}
        Where the budget is measured.
    rel : float
        The relative-improvement threshold (default 5%).

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
    before, after = np.flatnonzero(x <= cut + 1e-9), np.flatnonzero(x > cut + 1e-9)
    if len(before) == 0 or len(after) == 0:
        return None
    start, tail = y[before[-1]], y[after]
    if not (math.isfinite(start) and np.isfinite(tail).all()):
        return None
    best = float(tail.max() if higher else tail.min())
    return bool(_gain(float(start), best, higher) < rel)


def converged_rate(runs: Iterable[dict]) -> float | None:
    """Share of the runs with ``converged`` True among those where it is known (None: none known)."""
    flags = [r.get("converged") for r in runs if r.get("converged") is not None]
    return (sum(bool(f) for f in flags) / len(flags)) if flags else None


def mean_curve(curves: list[list[dict]], metric: str, axis: str = "g_updates") -> dict[str, np.ndarray] | None:
    """Mean and spread of a loss's curves over its seeds, points aligned by index.

    Returns
    -------
    dict or None
        ``x`` (mean position on ``axis``), ``mean``, ``std`` (ddof 0), ``lo``,
        ``hi`` (min and max over seeds), each of length the shortest curve;
        None when no curve has the metric.
    """
    pairs = [_values(c, metric, axis) for c in curves]
    pairs = [(x, y) for x, y in pairs if len(x)]
    if not pairs:
        return None
    n = min(len(x) for x, _ in pairs)
    xs = np.stack([x[:n] for x, _ in pairs])
    ys = np.stack([y[:n] for _, y in pairs])
    return {"x": xs.mean(0), "mean": ys.mean(0), "std": ys.std(0), "lo": ys.min(0), "hi": ys.max(0)}


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
        ``value`` (int updates or float seconds; None when no loss has a
        curve), ``per_loss`` (loss -> its need, None when it has no curve) and
        ``rule`` (one sentence).
    """
    per_loss: dict[str, float | None] = {}
    for loss, curves in curves_by_loss.items():
        m = mean_curve(curves, metric, axis)
        if m is None or len(m["x"]) < 2 or not np.isfinite(m["mean"]).all():
            per_loss[loss] = None
            continue
        pts = [{axis: float(a), metric: float(v)} for a, v in zip(m["x"], m["mean"])]
        if is_converged(pts, metric, higher, budget=budget, axis=axis, rel=rel):
            per_loss[loss] = float(budget)
            continue
        r1 = _quarter_gain(m["x"], m["mean"], 0.5 * budget, 0.75 * budget, higher)
        r2 = _quarter_gain(m["x"], m["mean"], 0.75 * budget, budget, higher)
        need = 2.0 * budget
        if r1 is not None and r2 is not None and 0 < r2 < r1 and math.isfinite(r1):
            n = math.ceil(math.log(rel / r2) / math.log(r2 / r1))
            need = budget * (1 + max(n, 1) / 4)
        per_loss[loss] = need
    needs = [v for v in per_loss.values() if v is not None]
    value: float | int | None = None
    if needs:
        value = int(math.ceil(max(needs))) if axis == "g_updates" else float(math.ceil(max(needs)))
    return {"value": value, "per_loss": per_loss,
            "rule": f"the largest need over the losses: the current budget for a converged mean curve; else "
                    f"the budget at which its per-quarter improvement, shrinking as from the third to the last "
                    f"quarter, falls below {rel:.0%} (2x the budget when it does not shrink)"}


def extend_results(out: str | Path, spec: dict[str, Any], runs: list[dict], results: dict[str, Any]) -> None:
    """Add the curves' verdict and the search to a results.json dict (in place).

    - each ranking row: ``converged_rate`` (:func:`converged_rate` of the loss's ok runs);
    - ``budget``: ``seed_start``, ``seconds`` (the time budget, or None),
      ``suggested_steps`` (updates) or, for a time budget, ``suggested_seconds``,
      and ``suggested_rule`` (:func:`suggested_budget` on the ranked metric);
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
    curves = {loss: [r["curve"] for r in ok if r.get("loss") == loss and r.get("curve")] for loss in spec["losses"]}
    sug = suggested_budget({k: v for k, v in curves.items() if v}, metric, higher, budget, axis=axis)
    b = results["budget"]
    b.update(seed_start=int(spec.get("seed_start", 0)), seconds=seconds, suggested_rule=sug["rule"])
    b["suggested_seconds" if seconds is not None else "suggested_steps"] = sug["value"]
    path = Path(out) / rundir.SEARCH / rundir.SEARCH_RESULTS
    results["search"] = rundir.read_json_file(path) if path.exists() else None
