"""Racing the losses on paired seeds: who gets the next seeds, and who is shown worse.

A comparison is a race (F-Race, Birattari et al. 2002, GECCO, "A racing
algorithm for configuring metaheuristics"; irace, Lopez-Ibanez et al. 2016,
Oper. Res. Perspect. 3:43-58): every loss trains the first block of seeds
(``first``), then after each block the losses still in the race are compared
on the seeds they share, and the losses shown worse get no more seeds. The
contenders get ``step`` more seeds per block until one survives, the
survivors are shown equivalent within a margin (paired TOST), or ``cap``
seeds are reached.

The test after each block (a *look*), on the alive losses' per-seed values
ranked within each seed (a diverged run, or a run whose metric is infinite,
is simply the worst value, ties averaged):

1. Friedman's chi-square test (:func:`losslab.stats.friedman`), and if it
   rejects,
2. Nemenyi's all-pairs comparison of mean ranks (:func:`losslab.stats.nemenyi_cd`,
   Demsar 2006, JMLR 7:1-30, Sec. 3.2.2): a loss is *worse* when some other
   alive loss has a mean rank better by more than the critical difference.
   All pairs, not "the best against the rest", so picking the best from the
   same data costs no error rate.
3. Step-down: the losses shown worse leave, and 1-2 are repeated on the rest,
   ranked among themselves, until a round shows none worse (:func:`eliminate`).
   With many losses Nemenyi's critical difference is wide (12 losses, 5 seeds:
   8.2 mean ranks); once the far-worse losses have left, the ones in between
   are compared with the critical difference of fewer losses.

Both at ``alpha / L`` for L planned looks (Bonferroni over the looks), so the
chance that a race calls any loss worse when all are alike is at most
``alpha`` = 0.05 for every number of losses and seeds (measured in
``tests/test_race.py``; the rates are in docs/ARCHITECTURE.md). A fixed
design (``--seeds N``) is a race with one look at N seeds.

The race is a deterministic function of the finished runs (:func:`decide`),
so a resumed comparison continues it from its run directories.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from losslab import rundir
from losslab import stats as lstats
from losslab.errors import UserError

try:  # the noise floor of each metric (losslab.noise_floor), where this version has it
    from losslab.noise_floor import noise_floor as _noise_floor_margin
except ImportError:  # pragma: no cover - until the noise floor lands
    _noise_floor_margin = None

__all__ = ["DEFAULT", "EQUIVALENCE_SD_FRACTION", "Limits", "decide", "eliminate", "equivalence_margin", "fixed",
           "rounds", "run_values", "simulate"]

EQUIVALENCE_SD_FRACTION = 0.5
"""Without a noise floor and without ``--equivalence``, the equivalence margin is this fraction of the pooled
seed standard deviation of the survivors (within-loss, ddof 1)."""


@dataclass(frozen=True)
class Limits:
    """The race's schedule and error rate.

    first : seeds every loss trains before the first look (>= 2).
    step : seeds added per block to the losses still in the race (0: one look, a fixed design).
    cap : most seeds any loss gets.
    alpha : family-wise error rate over the whole race (every look, every pair).
    delta : equivalence margin in the metric's units; None: the noise floor, else
        :data:`EQUIVALENCE_SD_FRACTION` x the pooled seed SD.
    """

    first: int = 5
    step: int = 3
    cap: int = 11
    alpha: float = 0.05
    delta: float | None = None

    def looks(self) -> list[int]:
        """Seeds at each look: first, first + step, ..., cap."""
        if self.step <= 0 or self.first >= self.cap:
            return [self.first]
        out = list(range(self.first, self.cap + 1, self.step))
        return out if out[-1] == self.cap else out + [self.cap]

    @property
    def alpha_look(self) -> float:
        """The level of each look's tests: alpha / number of looks (Bonferroni over the looks)."""
        return self.alpha / len(self.looks())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "looks": self.looks(), "alpha_look": self.alpha_look}

    def what_decides(self, n_seeds: int) -> str:
        """What a user can do when the losses left are not separated after ``n_seeds`` (the last look).

        A fixed design grows in place (a larger ``--seeds`` keeps the runs done; an ``--equivalence``
        margin may be added). A race that reached its cap does not: its looks spent the error rate for
        this schedule, so more seeds or a margin chosen now would be a new race, in a new ``--out``.
        """
        if self.step <= 0 or self.first >= self.cap:
            return (f"more seeds (rerun with --seeds {2 * n_seeds}: the runs done are kept) or an equivalence "
                    "margin (--equivalence DELTA)")
        return (f"the race reached its cap of {n_seeds} seeds; a new race in a new --out, with an equivalence "
                f"margin chosen before seeing these results (--equivalence DELTA), or a fixed design of more "
                f"seeds (--seeds {2 * n_seeds})")

    def fixed_for(self, seeds: int) -> "Limits":
        """The fixed design of ``seeds`` seeds at this alpha and delta (a fixed comparison given more seeds)."""
        return fixed(seeds, self.alpha, self.delta)


DEFAULT = Limits()
"""5 seeds, then 3 more per block up to 11 (looks at 5, 8 and 11 seeds, alpha 0.05 / 3 each): chosen by
simulation (tests/test_race.py) so that a loss 2 seed-SDs worse than the rest is eliminated with >= 80%
probability for 3 to 12 losses (0.85-0.92 in 1,000 replicates; 2 losses, the exact sign test: 0.77-0.81).
A first look at 3 seeds was dropped: with 9
losses Nemenyi's critical difference at 3 seeds and alpha 0.01 (8.03 mean ranks) exceeds the largest possible
gap (8), so that look could never eliminate a loss and only spent a share of alpha."""


def fixed(seeds: int, alpha: float = 0.05, delta: float | None = None) -> Limits:
    """A fixed design: every loss trains ``seeds`` seeds, one look at the end."""
    return Limits(first=seeds, step=0, cap=seeds, alpha=alpha, delta=delta)


def check_limits(lim: Limits) -> None:
    """Raises UserError: first < 1, cap < first, step < 0, alpha outside (0, 1), delta <= 0."""
    if lim.first < 1 or lim.cap < lim.first or lim.step < 0:
        raise UserError(f"race limits need 1 <= first <= cap and step >= 0, got first {lim.first}, "
                        f"step {lim.step}, cap {lim.cap}")
    if not 0 < lim.alpha < 1:
        raise UserError(f"alpha must lie in (0, 1), got {lim.alpha}")
    if lim.delta is not None and not (math.isfinite(lim.delta) and lim.delta > 0):
        raise UserError(f"--equivalence must be a positive number, got {lim.delta}")


# --------------------------------------------------------------------------- the decision rule (vectorised)

def _one_round(g: np.ndarray, alive: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One Friedman + Nemenyi test over the ``alive`` losses (ranked among themselves): (worse, friedman p)."""
    n = g.shape[1]
    _, pf = lstats.friedman(g, alive)
    mr = lstats.block_ranks(g, alive).sum(1) / max(n, 1)  # (R, k) mean ranks, higher is better
    cd = lstats.nemenyi_cd(alive.sum(1), n, alpha)  # (R,)
    gap = mr[:, None, :] - mr[:, :, None]  # (R, i, j): how much better j is than i
    beaten = ((gap > cd[:, None, None]) & alive[:, None, :]).any(-1)
    worse = beaten & alive & (pf < alpha)[:, None] & (alive.sum(1) >= 2)[:, None]
    return worse, pf


def eliminate(g: np.ndarray, alive: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One look: which alive losses are shown worse. Friedman gate, then Nemenyi over all alive pairs, step-down.

    A round tests the losses still standing, ranked among themselves within each seed: Friedman's test,
    and if it rejects, a loss is worse when another has a mean rank better by more than Nemenyi's critical
    difference for that many losses. The losses shown worse leave and the round is repeated on the rest
    (re-ranked, with the smaller critical difference of fewer losses) until a round shows none worse: a
    step-down over nested sets in the manner of Ryan-Einot-Gabriel-Welsch (Einot & Gabriel 1975, JASA
    70:574-583). Each round is a level-``alpha`` test of its own set, and the first round is the plain
    Friedman + Nemenyi test, so when all losses are alike the chance of calling any worse is the same
    as without the step-down; its rates under partial nulls (some losses alike, the rest far worse) are
    simulated in ``tests/test_race.py``.

    Parameters
    ----------
    g : (R, n, k) goodness values (higher is better, -inf the worst) of R tables.
    alive : (R, k) bool, the losses in the race.
    alpha : the level of this look.

    Returns
    -------
    (worse (R, k) bool, friedman p (R,) of the first round).
    """
    g = np.asarray(g, dtype=np.float64)
    cur = np.asarray(alive, dtype=bool).copy()
    worse = np.zeros_like(cur)
    pf0 = None
    for _ in range(cur.shape[1]):
        w, pf = _one_round(g, cur, alpha)
        if pf0 is None:
            pf0 = pf
        if not w.any():
            break
        worse |= w
        cur &= ~w
    return worse, pf0


def rounds(table: np.ndarray, names: Sequence[str], alpha: float) -> list[dict[str, Any]]:
    """The rounds of :func:`eliminate` on one (n, k) table, for the record.

    Returns
    -------
    list of dict
        One per round: ``alive`` (names), ``mean_ranks`` {name: mean rank among them, 1 = best, as
        Demsar 2006 writes them}, ``friedman_p``, ``cd`` (Nemenyi's critical difference, None when
        infinite), ``eliminated`` (names shown worse in this round), ``beaten_by`` {name: the round's
        best-ranked loss}. The last round eliminates none (or has fewer than two losses).
    """
    names = list(names)
    cur = np.ones((1, len(names)), dtype=bool)
    g = np.asarray(table, dtype=np.float64)[None]
    n = g.shape[1]
    out = []
    while True:
        w, pf = _one_round(g, cur, alpha)
        alive = [x for x, a in zip(names, cur[0]) if a]
        k = len(alive)
        mr = lstats.block_ranks(g, cur)[0].mean(0)  # higher is better
        ranks = {x: float(k + 1 - mr[i]) for i, x in enumerate(names) if cur[0, i]}
        top = min(ranks, key=lambda x: ranks[x]) if ranks else None
        gone = [x for x, ww in zip(names, w[0]) if ww]
        cd = float(lstats.nemenyi_cd(k, n, alpha)) if k >= 2 else math.inf
        out.append({"alive": alive, "mean_ranks": ranks, "friedman_p": float(pf[0]),
                    "cd": cd if math.isfinite(cd) else None, "eliminated": gone,
                    "beaten_by": {x: top for x in gone}})
        if not gone:
            return out
        cur &= ~w


def simulate(g: np.ndarray, limits: Limits = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """Run the race's rule on R synthetic tables at once (no equivalence stop: more looks, more chances to err).

    Parameters
    ----------
    g : (R, cap, k) goodness values per table, seed, loss.

    Returns
    -------
    (alive (R, k) bool at the end, seeds (R,) the seeds the contenders reached).
    """
    g = np.asarray(g, dtype=np.float64)
    R, _, k = g.shape
    alive = np.ones((R, k), dtype=bool)
    seeds = np.zeros(R, dtype=np.int64)
    for n in limits.looks():
        racing = alive.sum(1) >= 2
        seeds = np.where(racing, n, seeds)
        worse, _ = eliminate(g[:, :n], alive, limits.alpha_look)
        alive &= ~(worse & racing[:, None])
    return alive, seeds


# --------------------------------------------------------------------------- the race of one comparison

def run_values(runs: Sequence[Mapping[str, Any]], metric: str, higher: bool) -> dict[str, dict[int, float]]:
    """Per loss, per seed the goodness value (higher is better) of each finished run.

    ``ok`` runs: the metric (negated when lower is better); a null or absent
    metric is -inf (the worst). ``diverged`` runs: -inf. Failed and missing
    runs have no value (the race waits for them).
    """
    out: dict[str, dict[int, float]] = {}
    for r in runs:
        st = r.get("status")
        if st not in rundir.FINAL_STATUSES:
            continue
        v = (r.get("metrics") or {}).get(metric) if st == "ok" else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            gv = float(v) if higher else -float(v)
        else:
            gv = -math.inf
        out.setdefault(str(r["loss"]), {})[int(r["seed"])] = gv
    return out


def equivalence_margin(limits: Limits, out: Path | None, metric: str, table: np.ndarray | None = None
                       ) -> tuple[float | None, str]:
    """The equivalence margin delta and where it comes from: ``--equivalence``, the noise floor, or the seed SD.

    The noise floor (``OUT/noise_floor.json`` through ``losslab.noise_floor.noise_floor``) where the
    comparison measured one; else :data:`EQUIVALENCE_SD_FRACTION` x the pooled within-loss seed SD of
    ``table`` ((n, k) goodness, finite values only); None when none can be formed.
    """
    if limits.delta is not None:
        return float(limits.delta), "given (--equivalence)"
    if out is not None and _noise_floor_margin is not None:
        path = Path(out) / "noise_floor.json"
        if path.exists():
            try:
                nf = rundir.read_json_file(path)
            except UserError:
                nf = None
            if isinstance(nf, dict):
                d = _noise_floor_margin({"noise_floor": nf.get("metrics") or {}}, metric)
                if d is not None:
                    return float(d), "the metric's noise floor"
    if table is not None and table.shape[0] >= 2 and np.isfinite(table).all():
        sd = float(np.sqrt(np.mean(np.var(table, axis=0, ddof=1))))
        if sd > 0:
            return EQUIVALENCE_SD_FRACTION * sd, f"{EQUIVALENCE_SD_FRACTION} x the pooled seed SD"
    return None, "none"


def _equivalent(table: np.ndarray, delta: float | None, alpha: float) -> tuple[bool, float | None]:
    """All pairs of columns equivalent within delta by paired TOST (intersection-union: max p < alpha)."""
    k = table.shape[1]
    if delta is None or k < 2:
        return False, None
    ps = []
    for i in range(k):
        for j in range(i + 1, k):
            p = lstats.tost_paired(table[:, i], table[:, j], delta, higher=True)
            if p is None:
                return False, None
            ps.append(p)
    pmax = max(ps)
    return pmax < alpha, pmax


def decide(values: Mapping[str, Mapping[int, float]], losses: Sequence[str], *, seed_start: int,
           limits: Limits = DEFAULT, out: Path | None = None, metric: str = "") -> dict[str, Any]:
    """The race so far, from the finished runs' values: its looks, survivors and the jobs it needs next.

    Parameters
    ----------
    values : {loss: {seed: goodness}} from :func:`run_values` (higher is better, -inf the worst).
    losses : the losses of the comparison, in order.
    seed_start : the first seed; look n uses seeds seed_start .. seed_start + n - 1.
    limits : the schedule (:class:`Limits`).
    out, metric : where to find the noise floor for the equivalence margin (:func:`equivalence_margin`).

    Returns
    -------
    dict
        ``limits``, ``looks`` (per look done: ``n_seeds``, ``alive``, ``mean_ranks``
        {loss: mean rank among the alive, 1 = best}, ``means`` {loss: mean goodness, or None with
        an infinite value}, ``friedman_p``, ``cd`` (Nemenyi's critical difference) of the look's first
        round, ``eliminated`` (every round's), ``beaten_by`` {loss: the best-ranked loss of the round
        that showed it worse}, ``rounds`` (:func:`rounds`: the step-down's rounds)), ``survivors``
        (ranked by their mean rank among themselves at the last look, best first), ``eliminated_at`` {loss: seeds when shown worse},
        ``seeds_per_loss``, ``stopped`` ("one survivor" | "equivalent" | "seed cap" | None while
        running), ``equivalence`` ({"delta", "source", "p_max"} at the last look), ``need``
        {loss: [seeds]} the runs the next look waits for (empty once stopped).
    """
    alive = [str(x) for x in losses]
    looks: list[dict[str, Any]] = []
    eliminated_at: dict[str, int] = {}
    stopped, need, equiv = None, {}, {"delta": None, "source": "none", "p_max": None}
    last_mr: dict[str, float] = {}
    for n in limits.looks():
        seeds = list(range(seed_start, seed_start + n))
        missing = {loss: [s for s in seeds if s not in values.get(loss, {})] for loss in alive}
        missing = {loss: s for loss, s in missing.items() if s}
        if missing:
            need = missing
            break
        table = np.array([[values[loss][s] for loss in alive] for s in seeds], dtype=np.float64)  # (n, k)
        rr = rounds(table, alive, limits.alpha_look)
        gone = [loss for r in rr for loss in r["eliminated"]]
        looks.append({
            "n_seeds": n, "seeds": seeds, "alive": list(alive),
            "mean_ranks": rr[0]["mean_ranks"],
            "means": {loss: (float(np.mean(table[:, i])) if np.isfinite(table[:, i]).all() else None)
                      for i, loss in enumerate(alive)},
            "friedman_p": rr[0]["friedman_p"], "cd": rr[0]["cd"],
            "eliminated": gone, "beaten_by": {x: top for r in rr for x, top in r["beaten_by"].items()},
            "rounds": rr,
        })
        for loss in gone:
            eliminated_at[loss] = n
        keep = [i for i, loss in enumerate(alive) if loss not in gone]
        alive = [alive[i] for i in keep]
        last_mr = dict(rr[-1]["mean_ranks"])  # among the survivors, 1 = best
        sub = table[:, keep]
        delta, source = equivalence_margin(limits, out, metric, sub)
        ok, pmax = _equivalent(sub, delta, limits.alpha)
        equiv = {"delta": delta, "source": source, "p_max": pmax}
        looks[-1]["equivalent_p_max"] = pmax
        if len(alive) <= 1:
            stopped = "one survivor"
        elif ok:
            stopped = "equivalent"
        elif n >= limits.cap or n == limits.looks()[-1]:
            stopped = "seed cap"
        if stopped:
            break
    def _key(loss: str) -> tuple[float, float]:  # best (lowest) mean rank first; a tie goes to the better mean
        v = [values[loss][s] for s in range(seed_start, seed_start + looks[-1]["n_seeds"])] if looks else [0.0]
        return last_mr.get(loss, 0.0), -float(np.mean(v))

    survivors = sorted(alive, key=_key)
    counted = {loss: sum(1 for s in values.get(loss, {}) if seed_start <= s) for loss in losses}
    return {"limits": limits.to_dict(), "looks": looks, "survivors": survivors, "eliminated_at": eliminated_at,
            "seeds_per_loss": counted, "stopped": stopped, "equivalence": equiv,
            "need": {} if stopped else need}
