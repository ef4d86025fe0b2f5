"""Figures of the race (:mod:`losslab.race`): survivors per block, seeds and compute per loss, and the
critical-difference diagram.

Drawn from ``results.json``'s ``race`` (its looks, with each alive loss's mean rank and mean value, the
seeds and wall seconds per loss) and the runs' values; never through ``pyplot``'s figure registry.

Sources: irace's plot of the race (Lopez-Ibanez et al. 2016, Oper. Res. Perspect. 3:43-58, Fig. 2);
the critical-difference diagram of Demsar 2006, JMLR 7:1-30, Fig. 1, drawn by
``scikit_posthocs.critical_difference_diagram``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from matplotlib.figure import Figure

from losslab import race as lrace
from losslab import stats as lstats
from losslab.report.plots import note, save
from losslab.report.style import color

__all__ = ["plot_cd", "plot_race", "race_figures"]


def _metric_value(g: float | None, higher: bool) -> float | None:
    """A look's mean goodness back in the metric's units (None: an infinite value)."""
    if g is None or not math.isfinite(g):
        return None
    return g if higher else -g


def plot_race(results: dict[str, Any], path: Path) -> Path:
    """Left: each loss's seed mean of the primary metric at every look it was alive for (x = seeds),
    a cross where it was shown worse; right: the seeds each loss received and the wall seconds it spent."""
    rc = results.get("race") or {}
    looks = rc.get("looks") or []
    pm = results.get("primary_metric") or {}
    primary, higher = str(pm.get("name") or "?"), bool(pm.get("higher_is_better"))
    losses = [str(e.get("loss")) for e in results.get("ranking") or []]
    fig = Figure(figsize=(11.0, 0.45 * max(len(losses), 4) + 1.6))
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1.0]})
    if not looks:
        note(ax, "no look of the race yet (its first block is not complete)")
    for i, loss in enumerate(losses):
        xs, ys = [], []
        for lk in looks:
            if loss in lk.get("alive", []):
                v = _metric_value((lk.get("means") or {}).get(loss), higher)
                if v is not None:
                    xs.append(lk["n_seeds"])
                    ys.append(v)
        if not xs:
            continue
        ax.plot(xs, ys, "-o", color=color(i), ms=4, lw=1.2, label=loss)
        if loss in (rc.get("eliminated_at") or {}):
            ax.plot(xs[-1], ys[-1], "x", color="#b00", ms=10, mew=2)
        else:
            ax.annotate(loss, (xs[-1], ys[-1]), xytext=(4, 0), textcoords="offset points", fontsize=8,
                        va="center", color=color(i))
    ax.set_xlabel("seeds per loss at the look")
    ax.set_ylabel(f"seed mean of {primary} ({'higher' if higher else 'lower'} is better)")
    ax.set_title("The race: the losses alive at each look (x: shown worse)")
    if looks:
        ax.set_xticks([lk["n_seeds"] for lk in looks])
        ax.legend(fontsize=7, ncol=2, loc="best")
    comp = rc.get("compute") or {}
    ys = np.arange(len(losses))
    seeds = [float((comp.get(x) or {}).get("seeds") or 0) for x in losses]
    secs = [float((comp.get(x) or {}).get("wall_seconds") or 0.0) for x in losses]
    bx.barh(ys, seeds, color=[color(i) for i in range(len(losses))])
    for y, n, s in zip(ys, seeds, secs):
        bx.text(n, y, f" {n:.0f} seeds, {s:.0f} s", va="center", fontsize=8)
    bx.set_yticks(ys, losses)
    bx.invert_yaxis()
    bx.set_xlim(0, max(seeds + [1.0]) * 1.6)
    bx.set_xlabel("seeds received (label: wall seconds of training spent)")
    bx.set_title("Seeds and compute per loss")
    return save(fig, path)


def plot_cd(results: dict[str, Any], path: Path, *, values: dict[str, dict[int, float]]) -> Path | None:
    """The critical-difference diagram of the first look: every loss's mean rank over the first block's
    seeds (all losses ran them), losses that Nemenyi's test does not separate at that look's level joined
    by a bar. None when the race has no look with two or more losses."""
    rc = results.get("race") or {}
    looks = rc.get("looks") or []
    if not looks or len(looks[0].get("alive") or []) < 2:
        return None
    lk = looks[0]
    alive, seeds = lk["alive"], lk["seeds"]
    table = np.array([[values[x][s] for x in alive] for s in seeds], dtype=np.float64)  # (n, k) goodness
    p = lstats.nemenyi_p(table)
    k = len(alive)
    ranks = pd.Series({x: float(lk["mean_ranks"][x]) for x in alive})  # 1 = best, as Demsar draws it
    sig = pd.DataFrame(p, index=alive, columns=alive)
    alpha = float((rc.get("limits") or {}).get("alpha_look") or 0.05)
    fig = Figure(figsize=(9.0, 0.32 * k + 1.6))
    ax = fig.subplots()
    sp.critical_difference_diagram(ranks, sig, alpha=alpha, ax=ax, label_fmt_left="{label} ({rank:.2f})",
                                   label_fmt_right="({rank:.2f}) {label}")
    ax.set_title(f"Critical difference (Nemenyi, alpha {alpha:.3g}) after the first {len(seeds)} seeds: "
                 "mean rank, 1 = best")
    return save(fig, path)


def race_figures(figdir: Path, results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Draw the race's figures under ``figdir``; returns (relpath, heading, caption) for the report."""
    rc = results.get("race")
    if not isinstance(rc, dict) or not rc.get("limits"):
        return []
    pm = results.get("primary_metric") or {}
    values = lrace.run_values(results.get("runs") or [], str(pm.get("name")), bool(pm.get("higher_is_better")))
    lim = rc["limits"]
    figs = []
    plot_race(results, figdir / "race.png")
    n_looks = len(lim.get("looks") or [])
    figs.append(("figures/race.png", "The race",
                 f"Left: each loss's seed mean at every look it took part in (looks at {lim.get('looks')} seeds); "
                 "a cross marks the look where Friedman's test and Nemenyi's comparison showed it worse "
                 f"(alpha {lim.get('alpha')} over {n_looks} look(s), {lim.get('alpha_look'):.3g} each); a loss "
                 "with an infinite value at a look has no point there. Right: the seeds each loss received "
                 "and the training seconds they cost. Stopped: " + str(rc.get("stopped") or "not yet") + "."))
    if plot_cd(results, figdir / "critical_difference.png", values=values) is not None:
        figs.append(("figures/critical_difference.png", "Critical-difference diagram",
                     "Mean ranks within seeds over the seeds every loss ran (the first block); a bar joins losses "
                     "that Nemenyi's test over all of them does not separate at the level of one look (Demsar "
                     "2006). The race's step-down then re-ranks the losses left among themselves, with the smaller "
                     "critical difference of fewer losses, so it can separate losses a bar joins here; later looks "
                     "rank only the survivors: see the race above and the Recommendation."))
    return figs

