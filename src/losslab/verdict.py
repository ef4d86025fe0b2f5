"""The verdict of a comparison: statistics over run directories, a ranking and the answer in words.

:func:`aggregate` reads a comparison directory and nothing else (through
:mod:`losslab.rundir`: ``compare.json``, each run's ``result.json`` and
``metrics.jsonl``, the shape of the real samples in ``reference.npz`` and the
data profile in ``data_profile.json``),
and writes ``results.json``: per run its metrics and gradient diagnosis; per
loss the seed mean of the primary metric with its 95% Student-t confidence
interval, stability, collapse rate and costs, ranked best first; paired
tests over seeds with Holm's correction, the best group and the verdict
(:mod:`losslab.stats`); the Pareto front over the family's key metrics; a
recommendation whose reasons cite the measurements and the data profile; the
literature's expectations for data of this profile, each tested against the
runs (:mod:`losslab.expectations`); and notes. It never
trains and never loads a data set, so ``losslab report`` rebuilds it from the
run directories alone. Words that depend on the family (budget unit, second
player, family notes) come from :func:`losslab.report.families.describe`.
"""

from __future__ import annotations

import math
import statistics
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from losslab import io, rundir
from losslab.diagnose import D_ACC_WINNING
from losslab import stats as lstats
from losslab.convergence import extend_results, recheck_convergence
from losslab.errors import UserError
from losslab.expectations import check_expectations, profile_reasons
from losslab.losses import FAMILY_SPECS, family_of
from losslab.metrics import METRIC_INFO, primary_metric
from losslab.noise_floor import add_noise_floor
from losslab.report.answer import add_answer
from losslab.report.families import describe

__all__ = ["D_ACC_WINNING", "VANISH_RATIO", "add_ladder", "aggregate", "gradient_diagnosis", "mean_ci95", "pareto",
           "recommend"]

# Counts that describe the evaluation rather than measure the model.
_BOOKKEEPING = {"n_eval", "num_modes", "num_classes", "chance", "n_probe_train", "n_probe_test", "n_real",
                "c2st_n_test", "classifier_accuracy", "kid_std", "inception_score_std"}

# A network's gradient is called "vanished" when its norm over the last quarter
# of training falls below this fraction of its norm over the first tenth.
VANISH_RATIO = 1e-2
# ... and only while the critic is winning: its real-vs-fake accuracy over the last quarter is at
# least losslab.diagnose.D_ACC_WINNING.


# --------------------------------------------------------------------------- statistics

def mean_ci95(values: list[float]) -> tuple[float, list[float] | None]:
    """Mean and the 95% Student-t confidence interval of the mean (None for n < 2).

    CI = mean +- t_{0.975, n-1} * s / sqrt(n), s the sample standard deviation
    (ddof = 1); e.g. Wasserman, *All of Statistics* (2004), Sec. 10.3.
    """
    m = float(np.mean(values))
    n = len(values)
    if n < 2:
        return m, None
    s = float(np.std(values, ddof=1))
    h = float(stats.t.ppf(0.975, n - 1)) * s / math.sqrt(n)
    return m, [m - h, m + h]


def gradient_diagnosis(rows: list[dict], *, family: str | None = None) -> dict[str, Any]:
    """Initial and final gradient norms of the trained network from metrics.jsonl rows, and whether it vanished.

    ``g_grad_norm_initial`` is the median of ``g_grad_norm`` over the first
    tenth of the rows, ``g_grad_norm_final`` over the last quarter;
    ``d_acc_final`` is the mean discriminator real-vs-fake accuracy ``d_acc``
    over the last quarter (None where not logged). ``g_grad_vanished`` is the
    vanishing generator gradient of a saturated discriminator (Arjovsky &
    Bottou 2017, arXiv:1701.04862, Sec. 2.2), so it needs all three of: a
    critic (a family with a second player, the GAN; with ``family`` None or unknown, a run that logs
    ``d_acc``, which only the GAN step does), the critic winning
    (``d_acc_final >= D_ACC_WINNING`` = 0.9), and the generator's gradient
    collapsing (final < ``VANISH_RATIO`` * initial = 1e-2 x, or final < 1e-8).
    A converged run whose gradient shrinks while D is fooled (d_acc ~ 0.5) and
    any diffusion or contrastive run are never flagged.
    Empty when fewer than 4 rows log ``g_grad_norm``.
    """
    g = [r["g_grad_norm"] for r in rows if r.get("g_grad_norm") is not None]
    if len(g) < 4:
        return {}
    head = statistics.median(g[: max(1, len(g) // 10)])
    tail = statistics.median(g[-max(1, len(g) // 4):])
    acc = [r["d_acc"] for r in rows[-max(1, len(rows) // 4):] if r.get("d_acc") is not None]
    d_acc = float(np.mean(acc)) if acc else None
    spec = FAMILY_SPECS.get(family) if family is not None else None
    critic = spec.second_player is not None if spec is not None else d_acc is not None
    winning = critic and d_acc is not None and d_acc >= D_ACC_WINNING
    return {
        "g_grad_norm_initial": head,
        "g_grad_norm_final": tail,
        "g_grad_vanished": bool(winning and (tail < VANISH_RATIO * head or tail < 1e-8)),
        "d_acc_final": d_acc,
    }


def _collapsed(metrics: dict) -> bool | None:
    """Did a run miss a mode (mixtures) or a class (images)? None when not measured."""
    if metrics.get("num_modes") and metrics.get("modes_covered") is not None and metrics["num_modes"] > 1:
        return metrics["modes_covered"] < metrics["num_modes"]
    if metrics.get("num_classes") and metrics.get("classes_covered") is not None:
        return metrics["classes_covered"] < metrics["num_classes"]
    return None


# --------------------------------------------------------------------------- reading run directories

def read_spec(out: Path) -> dict[str, Any]:
    """``OUT/compare.json``, checked: ``losses`` (names), ``seeds`` (>= 1), ``config`` with ``train``.

    Raises:
        UserError: missing, unreadable, corrupt, or not of that shape; one line
            naming the file and what to do.
    """
    path = out / rundir.COMPARE
    if not path.exists():
        raise UserError(f"no comparison in {out} ({rundir.COMPARE} missing); "
                        f"run `losslab compare --out {out}` first")
    spec = rundir.read_json_file(path)
    ok = (isinstance(spec, dict)
          and isinstance(spec.get("losses"), list) and spec["losses"]
          and all(isinstance(n, str) for n in spec["losses"])
          and isinstance(spec.get("seeds"), int) and not isinstance(spec["seeds"], bool) and spec["seeds"] >= 1
          and isinstance(spec.get("config"), dict) and isinstance(spec["config"].get("train"), dict)
          and all(k in spec["config"]["train"] for k in ("steps", "batch_size")))
    if not ok:
        raise UserError(f"{path} is not a losslab comparison (an object with losses, seeds and config expected); "
                        f"delete it and rerun the same `losslab compare --out {out}` command to rewrite it")
    return spec


def read_result_file(path: Path) -> dict[str, Any]:
    """One run's result.json, checked: a JSON object with a ``status`` and a ``metrics`` object.

    Raises:
        UserError: unreadable, corrupt, or not of that shape; one line naming
            the file and what to do (``losslab compare`` trains such a run again).
    """
    r = rundir.read_json_file(path)
    if not (isinstance(r, dict) and isinstance(r.get("status"), str)
            and isinstance(r.get("metrics", {}), dict)):
        raise UserError(f"{path} is not a run result (an object with status and metrics expected); "
                        "delete it and rerun the same `losslab compare` command to redo that run")
    r.setdefault("metrics", {})
    return r


def read_runs(out: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per planned (loss, seed): its result.json plus ``run_dir`` and ``diagnostics``.

    A run without result.json is ``{"status": "missing", ...}``.

    Raises:
        UserError: a result.json that cannot be read or is not a run result
            (:func:`read_result_file`).
    """
    runs = []
    for job in rundir.plan(spec["losses"], int(spec["seeds"]), seed_start=int(spec.get("seed_start", 0))):
        rd = out / job.run_dir
        if not (rd / rundir.RESULT).exists():
            runs.append({"loss": job.loss, "seed": job.seed, "status": "missing", "metrics": {},
                         "run_dir": job.run_dir, "error": "not run yet"})
            continue
        r = read_result_file(rd / rundir.RESULT)
        r.setdefault("loss", job.loss)
        r.setdefault("seed", job.seed)
        r["run_dir"] = job.run_dir
        r["diagnostics"] = gradient_diagnosis(io.read_jsonl(rd / rundir.METRICS), family=r.get("family"))
        runs.append(r)
    return runs


def read_profile(out: Path) -> dict[str, Any] | None:
    """``OUT/data_profile.json`` (written by :func:`losslab.rundir.write_profile`), or None.

    None when the file is missing (a comparison of an older version) or
    unreadable, with a warning in that case: the profile only adds to the
    verdict, and the next ``losslab compare`` into ``OUT`` writes it again.
    """
    path = out / rundir.PROFILE
    if not path.exists():
        return None
    try:
        p = rundir.read_json_file(path)
    except UserError as e:
        warnings.warn(f"{e}; the verdict goes without the data profile", stacklevel=2)
        return None
    return p if isinstance(p, dict) else None


def data_shape(out: Path, spec: dict[str, Any]) -> tuple[str, list[int] | None]:
    """(kind, shape) of the compared data: ``"vector"`` (d,) or ``"image"`` (C, H, W).

    From the real samples of ``reference.npz`` where it exists (3 dimensions
    per sample: images), else from ``compare.json`` (``kind``, ``shape``).

    Raises:
        UserError: neither file says it; a corrupt reference.npz, or one
            without an array ``real`` of shape (n, d) or (n, C, H, W).
    """
    shape = None
    ref = out / rundir.REFERENCE
    if ref.exists():
        redo = f"delete it and rerun the same `losslab compare --out {out}` command to rewrite it"
        try:
            real = io.read_npz(ref, keys=("real",)).get("real")
        except UserError as e:  # corrupt or truncated
            raise UserError(f"{str(e).split('; ')[0]}; {redo}") from None
        if real is None or real.ndim not in (2, 4) or len(real) == 0:
            got = "no array 'real'" if real is None else f"'real' of shape {tuple(real.shape)}"
            raise UserError(f"{ref}: {got}, expected (n, d) or (n, C, H, W); {redo}")
        shape = list(real.shape[1:])
    shape = shape if shape is not None else spec.get("shape")
    kind = spec.get("kind") or (None if shape is None else ("image" if len(shape) == 3 else "vector"))
    if kind is None:
        raise UserError(f"cannot tell whether {spec.get('data')!r} is vectors or images: {ref} is missing; "
                        f"rerun `losslab compare --out {out}`")
    return kind, shape


# --------------------------------------------------------------------------- the verdict

def aggregate(out: str | Path, *, metric: str | None = None) -> dict[str, Any]:
    """Read every run directory under ``out`` and write ``out/results.json``.

    Parameters
    ----------
    out : str or Path
        A comparison directory (``losslab compare --out``).
    metric : str, optional
        Primary metric of the ranking; default ``compare.json``'s ``metric``,
        else :func:`losslab.metrics.primary_metric` of the family and data.

    Returns
    -------
    dict
        The content of results.json (schema in docs/ARCHITECTURE.md).

    Raises
    ------
    UserError
        ``out`` holds no comparison, a file is corrupt, or ``metric`` was not measured.
    """
    out = Path(out)
    spec = read_spec(out)
    metric = metric or spec.get("metric")
    runs = read_runs(out, spec)
    family = spec.get("family") or rundir.families_of(spec["losses"])
    words = describe(family)
    kind, shape = data_shape(out, spec)

    cfg = spec["config"]
    ok_metrics = [r["metrics"] for r in runs if r.get("status") == "ok" and r.get("metrics")]
    primary = metric or primary_metric(family=family, kind=kind, shape=shape)[0]
    if ok_metrics and not any(primary in m for m in ok_metrics):
        measured = sorted({k for m in ok_metrics for k, v in m.items() if isinstance(v, (int, float))})
        raise UserError(f"metric {primary!r} was not measured; choose from: {', '.join(measured)}")
    info = METRIC_INFO.get(primary, {})
    higher = bool(info.get("higher_is_better", False))
    recheck_convergence(runs, primary, higher, spec)  # each run's converged on the ranked metric, not the default

    ranking = [_rank_entry(loss, runs, primary, higher) for loss in spec["losses"]]
    sign = -1.0 if higher else 1.0
    ranking.sort(key=lambda e: (e["mean"] is None, sign * e["mean"] if e["mean"] is not None else 0.0))

    first_ok = next((r for r in runs if r.get("status") == "ok"), None)
    front = pareto(ranking, runs, family=family, kind=kind)
    profile = read_profile(out)
    rec = recommend(ranking, runs, primary, higher, pareto=front)
    expected = check_expectations(profile, ranking, runs, recommendation=rec, primary=primary)
    rec["reasons"][1:1] = profile_reasons(profile, expected)  # after the verdict: the data, then the literature
    results = {
        "dataset": {
            "name": spec.get("data"),
            "kind": kind,
            "shape": shape,
            "num_modes": (first_ok or {}).get("metrics", {}).get("num_modes"),
            "feature_net": (first_ok or {}).get("metrics", {}).get("feature_net"),
        },
        "family": family,
        "budget": {"g_updates": cfg["train"]["steps"], "batch_size": cfg["train"]["batch_size"],
                   "note": words.budget_note},
        "primary_metric": {"name": primary, "higher_is_better": higher,
                           "description": info.get("description", primary)},
        "runs": runs,
        "ranking": ranking,
        "statistics": {**lstats.STATISTICS, "pareto_metrics": front["metrics"]},
        "recommendation": rec,
        "pareto_front": front["losses"],
        "data_profile": profile,
        "expectations": expected,
        "notes": _notes(runs) + words.notes(ranking, runs, spec.get("data", "")),
    }
    add_ladder(out, results)  # the quality ladder's rungs and each loss's place among them
    add_noise_floor(out, results)  # a perfect generator's scores: noise_floor, noise_floor_curve
    extend_results(out, spec, runs, results)  # converged_rate per row, budget.suggested_steps, search
    add_answer(out, results)  # findings per run, effective hyperparameters, the answer in words
    io.atomic_write_json(out / rundir.RESULTS, results)
    return results


def add_ladder(out: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Copy ``OUT/ladder.json`` into ``results`` and place each loss's mean FID on it (in place).

    Sets ``results["ladder"]`` (the file's content: ``feature_net``, ``n``,
    ``seed``, ``seconds``, ``rungs``; see :func:`losslab.rundir.write_ladder`),
    ``results["dataset"]["feature_net_quality"]`` (the SimCLR half's quality
    figures, or null) and, on each ranking row whose ok runs measured ``fid``
    **in the ladder's feature network**, ``fid_mean`` (the seed mean of ``fid``)
    and ``ladder_place`` (:func:`losslab.metrics.ladder.place_on_ladder`, e.g.
    ``"between 'blurred real' and 'two classes'"``). Rows measured with another
    feature network get no place: FIDs of different spaces are not comparable.
    No file (vectors, contrastive losses, an older comparison): nothing is added.
    An unreadable file is a ``UserError``.
    """
    path = Path(out) / rundir.LADDER
    if not path.exists():
        return results
    ladder = rundir.read_json_file(path)
    if not isinstance(ladder, dict) or not isinstance(ladder.get("rungs"), list) or not ladder["rungs"]:
        raise UserError(f"{path} is not a quality ladder (a JSON object with 'rungs'); delete it and rerun "
                        "losslab compare with the same --out to measure it again")
    from losslab.metrics.ladder import place_on_ladder

    results["ladder"] = ladder
    net = ladder.get("feature_net") or {}
    if isinstance(results.get("dataset"), dict):
        results["dataset"]["feature_net_quality"] = net.get("quality")
    for row in results.get("ranking") or []:
        fids = [r["metrics"]["fid"] for r in results.get("runs") or []
                if r.get("loss") == row.get("loss") and r.get("status") == "ok" and r.get("metrics")
                and r["metrics"].get("feature_net") == net.get("name")
                and isinstance(r["metrics"].get("fid"), (int, float)) and math.isfinite(r["metrics"]["fid"])]
        if fids:
            row["fid_mean"] = float(np.mean(fids))
            row["ladder_place"] = place_on_ladder(row["fid_mean"], ladder["rungs"])
    return results


def _seed_value(metrics: dict, key: str, higher: bool) -> float:
    """A run's value of ``key``; null (how JSON writes inf) or non-finite is the worst value, +-inf."""
    v = metrics.get(key)
    worst = -math.inf if higher else math.inf
    return worst if v is None or not math.isfinite(float(v)) else float(v)


def _rank_entry(loss: str, runs: list[dict], primary: str, higher: bool) -> dict[str, Any]:
    """One loss's row of the ranking: the primary metric's seed mean and CI, stability, costs.

    A run whose primary metric is present but infinite (null in result.json,
    e.g. reverse_kl with no high-quality sample) counts with the worst value:
    ``mean`` is then +-inf (null on disk), ``ci95`` None, and ``n_inf`` counts
    those seeds; ``values`` are in the order of ``seeds``.
    """
    rs = [r for r in runs if r["loss"] == loss and r.get("status") != "missing"]
    ok = [r for r in rs if r.get("status") == "ok" and primary in r["metrics"]]
    vals = [_seed_value(r["metrics"], primary, higher) for r in ok]
    n_inf = sum(not math.isfinite(v) for v in vals)
    if not vals:
        mean, ci = None, None
    elif n_inf:  # the mean of a sample holding the worst value is that value
        mean, ci = (-math.inf if higher else math.inf), None
    else:
        mean, ci = mean_ci95(vals)
    collapsed = [c for c in (_collapsed(r["metrics"]) for r in ok) if c is not None]
    numeric = sorted({k for r in ok for k, v in r["metrics"].items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)} - _BOOKKEEPING)
    return {
        "loss": loss,
        "mean": mean,
        "ci95": ci,
        "values": vals,
        "seeds": [r["seed"] for r in ok],
        "n_inf": n_inf,
        "n_ok": len(ok),
        "n_runs": len(rs),
        "stability": (sum(r.get("status") != "diverged" for r in rs) / len(rs)) if rs else None,
        "collapse_rate": (sum(collapsed) / len(collapsed)) if collapsed else None,
        "wall_seconds_mean": float(np.mean([r.get("wall_seconds", 0.0) for r in rs])) if rs else None,
        "d_updates_mean": float(np.mean([r.get("d_updates", 0) for r in rs])) if rs else None,
        "family": family_of(loss),
        "sampling_nfe": next((r["sampling_nfe"] for r in rs if r.get("sampling_nfe")), None),
        "metrics_mean": {k: float(np.mean([r["metrics"][k] for r in ok if r["metrics"].get(k) is not None]))
                         for k in numeric if any(r["metrics"].get(k) is not None for r in ok)},
        "vanished_rate": (sum(bool(r.get("diagnostics", {}).get("g_grad_vanished")) for r in rs) / len(rs))
        if rs else None,
    }


# --------------------------------------------------------------------------- the answer in words

def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}" if abs(x) < 100 else f"{x:.1f}"
    return f"{x:.2e}"


def _ci_text(e: dict) -> str:
    if e.get("n_inf"):
        return f"{_fmt(e['mean'])} ({e['n_inf']} of {e['n_ok']} seeds infinite, the worst value)"
    if e["ci95"] is None:
        return f"{_fmt(e['mean'])} (one seed, no CI)"
    lo, hi = e["ci95"]
    return f"{_fmt(e['mean'])} (95% CI {_fmt(lo)} to {_fmt(hi)}, {e['n_ok']} seeds)"


def _evidence_items(loss: str, runs: list[dict]) -> list[tuple[str, str]]:
    """Measured facts about one loss's runs as (kind, phrase); kinds: modes, quality, classes,
    diverged, failed, vanished. The network is named in the loss's family's words."""
    network = describe(family_of(loss)).network
    rs = [r for r in runs if r["loss"] == loss and r.get("status") != "missing"]
    ok = [r for r in rs if r.get("status") == "ok"]
    out = []
    modes = [(r["metrics"].get("modes_covered"), r["metrics"].get("num_modes")) for r in ok]
    if modes and all(m is not None and k for m, k in modes) and modes[0][1] > 1:
        out.append(("modes", "modes covered per seed: " + ", ".join(f"{m}/{k}" for m, k in modes)))
    hq = [r["metrics"].get("high_quality") for r in ok if r["metrics"].get("high_quality") is not None]
    if hq:
        out.append(("quality", f"high-quality samples {100 * float(np.mean(hq)):.0f}% on average"))
    cls = [(r["metrics"].get("classes_covered"), r["metrics"].get("num_classes")) for r in ok]
    if cls and all(c is not None and k for c, k in cls):
        out.append(("classes", "classes covered per seed: " + ", ".join(f"{c}/{k}" for c, k in cls)))
    div = [r for r in rs if r.get("status") == "diverged"]
    if div:
        out.append(("diverged", f"diverged in {len(div)}/{len(rs)} seeds (at {network} update "
                    + ", ".join(str(r.get("diverged_at")) for r in div) + ")"))
    failed = [r for r in rs if r.get("status") == "failed"]
    if failed:
        out.append(("failed", f"failed in {len(failed)}/{len(rs)} seeds ({failed[0].get('error')})"))
    van = [r for r in rs if r.get("diagnostics", {}).get("g_grad_vanished")]
    if van:
        d = van[0]["diagnostics"]
        out.append(("vanished", f"{network} gradient vanished in {len(van)}/{len(rs)} seeds (norm "
                    f"{_fmt(d['g_grad_norm_initial'])} -> {_fmt(d['g_grad_norm_final'])})"))
    return out


def _evidence(loss: str, runs: list[dict], kinds: tuple[str, ...] | None = None) -> list[str]:
    """The phrases of :func:`_evidence_items`, all or those of ``kinds``."""
    return [text for kind, text in _evidence_items(loss, runs) if kinds is None or kind in kinds]


def _pairwise(usable: list[dict], higher: bool) -> list[dict[str, Any]]:
    """The best row of ``usable`` (its first) against every other: paired test over common seeds,
    Holm-adjusted over these k - 1 comparisons, and the probability of improvement with its bootstrap
    interval.

    Comparisons with the best are the family that decides the best group (which losses are
    significantly worse than the best); correcting over all k (k - 1) / 2 pairs instead would
    spend the error rate on questions the verdict does not ask (Holm 1979, Scand. J. Statist. 6:65-70).
    """
    rows = []
    a = usable[0]
    for b in usable[1:]:
        sa, sb = dict(zip(a["seeds"], a["values"])), dict(zip(b["seeds"], b["values"]))
        common = sorted(set(sa) & set(sb), key=str)
        t = lstats.paired_test([sa[k] for k in common], [sb[k] for k in common], higher=higher)
        rows.append({"a": a["loss"], "b": b["loss"], "n_paired": t["n"], "test": t["test"],
                     "effect": t["effect"], "p_value": t["p_value"],
                     "prob_improvement": lstats.prob_improvement(a["values"], b["values"], higher=higher),
                     "prob_improvement_ci": lstats.prob_improvement_ci(a["values"], b["values"], higher=higher)})
    for r, p in zip(rows, lstats.holm([r["p_value"] for r in rows])):
        r["p_adjusted"] = p
    return rows


def _p_text(p: float | None) -> str:
    return "n/a" if p is None else ("< 1e-4" if p < 1e-4 else f"{p:.3g}")


def recommend(ranking: list[dict], runs: list[dict], primary: str, higher: bool, *,
              pareto: dict | None = None) -> dict[str, Any]:
    """Pick the loss to use and say how sure the pick is, with reasons that cite the measurements.

    The best loss is the best mean of the primary metric among losses none of
    whose seeds diverged or failed (a loss that is only sometimes usable is
    not recommended over one that always is). Every pair of those losses is
    compared with the best over paired seeds (:func:`losslab.stats.paired_test`),
    the k - 1 p-values Holm-adjusted (:func:`losslab.stats.holm`).

    * ``best_group``: the best and every loss not significantly worse than it
      (Holm-adjusted p >= ``ALPHA`` = 0.05, or no p-value), in ranking order.
    * ``verdict``: "undertrained" when ok runs carry ``converged`` and fewer
      than half of them converged (skipped when no run carries it); else
      "clear winner" iff ``best_group == [best]``, the best has >= 2 seeds and
      every comparison with it rests on >= 2 paired seeds; else "no clear winner".

    Returns:
        ``{"loss": best or None, "verdict": str, "best_group": [loss, ...],
        "pairwise": [{"a", "b", "n_paired", "test", "effect", "p_value",
        "p_adjusted", "prob_improvement", "prob_improvement_ci"}, ...],
        "reasons": [sentence, ...]}``; the first reason states the verdict and
        the best group. ``effect`` is the mean per-seed difference in the
        metric's units, positive when a is better.
    """
    usable = [e for e in ranking if e["mean"] is not None and e["n_ok"] == e["n_runs"] and e["n_ok"] > 0]
    if not usable:
        return {"loss": None, "verdict": "no clear winner", "best_group": [], "pairwise": [],
                "reasons": ["no loss finished all its seeds; see the per-run table for errors"]}
    best = usable[0]
    by = {e["loss"]: e for e in usable}
    pairs = _pairwise(usable, higher)
    vs_best = [r for r in pairs if r["a"] == best["loss"]]
    worse = {r["b"] for r in vs_best if r["p_adjusted"] is not None and r["p_adjusted"] < lstats.ALPHA
             and (r["effect"] is None or r["effect"] > 0)}
    group = [e["loss"] for e in usable if e["loss"] not in worse]
    tested = best["n_ok"] >= 2 and all(r["n_paired"] >= 2 for r in vs_best)
    conv = [bool(r["converged"]) for r in runs if r.get("status") == "ok" and r.get("converged") is not None]
    undertrained = bool(conv) and sum(conv) < len(conv) / 2
    verdict = ("undertrained" if undertrained else
               "clear winner" if group == [best["loss"]] and tested else "no clear winner")

    direction = "highest" if higher else "lowest"
    m = sum(r["p_value"] is not None for r in pairs)
    n_tests = f"{m} paired test" + ("s" if m != 1 else "")
    where = (f"{best['loss']} has the {direction} mean {primary} among losses that finished every seed: "
             f"{_ci_text(best)}")
    group_text = ", ".join(group)
    if undertrained:
        first = (f"Undertrained: only {sum(conv)} of {len(conv)} finished runs converged, so no pick is "
                 f"reliable at this budget; train longer (more --steps). Best group so far: {group_text}; {where}.")
    elif verdict == "clear winner":
        first = (f"Clear winner: {best['loss']} (best group: {group_text}); {where}; every other loss that finished "
                 f"every seed is significantly worse (Holm-adjusted p < {lstats.ALPHA} over {n_tests}).")
    elif not tested:
        first = (f"No clear winner: best group {group_text}; {where}; with fewer than 2 paired seeds there is no "
                 "test: rerun with --seeds 3 or more before trusting the order.")
    else:
        first = (f"No clear winner: best group {group_text} (not significantly worse than {best['loss']} at "
                 f"Holm-adjusted p >= {lstats.ALPHA} over {n_tests}); {where}.")
    reasons = [first]
    ev = _evidence(best["loss"], runs)
    if ev:
        reasons.append(f"{best['loss']}: " + "; ".join(ev) + ".")
    if ranking and ranking[0]["loss"] != best["loss"] and ranking[0]["mean"] is not None:
        top = ranking[0]
        reasons.append(f"{top['loss']} has a better mean ({_ci_text(top)}) but did not finish every seed: "
                       + "; ".join(_evidence(top["loss"], runs)) + ".")
    for r in vs_best:
        other = by[r["b"]]
        if r["p_value"] is None:
            reasons.append(f"{r['b']}: {_ci_text(other)}; {r['n_paired']} paired seed(s) with {best['loss']}, "
                           "too few for a test.")
            continue
        ci = r["prob_improvement_ci"]
        pi = f"P({best['loss']} better) = {r['prob_improvement']:.2f}" + (
            f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        test = "paired t-test" if r["test"] == "paired t" else "sign test (infinite values)"
        judged = "significantly worse" if r["b"] not in group else "not significantly different"
        reasons.append(f"{r['b']}: {_ci_text(other)}; {best['loss']} better by {_fmt(r['effect'])} {primary} on "
                       f"average over {r['n_paired']} paired seeds ({test} p = {_p_text(r['p_value'])}, "
                       f"Holm-adjusted {_p_text(r['p_adjusted'])}; {pi}): {judged}.")
    if len(group) > 1:
        cheaper = min((by[k] for k in group), key=lambda e: e["wall_seconds_mean"] or 0.0)
        reasons.append(f"Within the best group {cheaper['loss']} is the cheapest: "
                       f"{_fmt(cheaper['wall_seconds_mean'])} s per run.")
    for e in ranking:
        if e["loss"] == best["loss"]:
            continue
        ev = _evidence(e["loss"], runs, ("diverged", "failed", "vanished"))
        if e["collapse_rate"]:
            ev.insert(0, f"mode collapse (at least one mode missed) in "
                         f"{round(e['collapse_rate'] * e['n_ok'])}/{e['n_ok']} seeds")
        if ev:
            reasons.append(f"{e['loss']}: " + "; ".join(ev) + ".")
    if pareto and len(pareto["losses"]) > 1:
        goals = "; ".join(f"for {_GOALS.get(k, k)}: {', '.join(v)}" for k, v in pareto["best_for"].items())
        reasons.append(f"No single loss is best on every goal (Pareto front over the seed means of "
                       f"{', '.join(pareto['metrics'])}: {', '.join(pareto['losses'])}): {goals}.")
    return {"loss": best["loss"], "verdict": verdict, "best_group": group, "pairwise": pairs, "reasons": reasons}


# Key metrics of the Pareto front per kind of data (a family that fixes its own, e.g. contrastive,
# names them in its FamilySpec), and their names as goals.
_PARETO_KEYS = {"mixture": ("w1", "modes_covered", "high_quality", "reverse_kl"),
                "image": ("fid", "precision", "recall", "coverage"),
                "vector": ("w1", "swd")}
_GOALS = {"w1": "W1", "swd": "SWD", "modes_covered": "mode coverage", "high_quality": "sample quality",
          "reverse_kl": "reverse KL", "fid": "FID", "precision": "precision", "recall": "recall",
          "coverage": "coverage", "linear_probe": "linear probe", "knn": "kNN"}


def pareto(ranking: list[dict], runs: list[dict], *, family: str, kind: str) -> dict[str, Any]:
    """The Pareto front of the losses that finished every seed over the family's key metrics (seed means).

    Key metrics: a family's own ``pareto_metrics`` (:class:`~losslab.losses.families.FamilySpec`;
    contrastive ``linear_probe, knn``, any part of a mixed ``family``); images ``fid``
    (lower is better), ``precision, recall, coverage``; mixtures (``num_modes``
    > 1) ``w1``, ``modes_covered``, ``high_quality``, ``reverse_kl``; other
    vectors ``w1, swd``; of those, the ones every candidate measured.
    Directions from :data:`losslab.metrics.METRIC_INFO`; an infinite (null)
    seed value is the worst value, so its mean is too.

    Returns:
        ``{"metrics": [key, ...], "losses": [front, ranking order],
        "best_for": {key: [losses with the best seed mean]}}``.
    """
    cands = [e for e in ranking if e["mean"] is not None and e["n_ok"] == e["n_runs"] and e["n_ok"] > 0]
    ok = [r for r in runs if r.get("status") == "ok" and r.get("metrics")]
    fixed = [FAMILY_SPECS[p].pareto_metrics for p in str(family).split("+")
             if p in FAMILY_SPECS and FAMILY_SPECS[p].pareto_metrics]
    if fixed:
        wanted = fixed[0]
    elif kind == "image":
        wanted = _PARETO_KEYS["image"]
    else:
        wanted = _PARETO_KEYS["mixture" if any((r["metrics"].get("num_modes") or 0) > 1 for r in ok) else "vector"]
    keys, table = [], []
    for key in wanted:
        higher = bool(METRIC_INFO.get(key, {}).get("higher_is_better", False))
        col = []
        for e in cands:
            vals = [_seed_value(r["metrics"], key, higher)
                    for r in ok if r["loss"] == e["loss"] and key in r["metrics"]]
            col.append(float(np.mean(vals)) if vals else None)
        if cands and all(v is not None for v in col):
            keys.append(key)
            table.append(col)
    if not keys:
        return {"metrics": [], "losses": [e["loss"] for e in cands[:1]], "best_for": {}}
    t = np.array(table).T  # (losses, keys)
    hib = [bool(METRIC_INFO[k]["higher_is_better"]) for k in keys]
    front = [cands[i]["loss"] for i in lstats.pareto_front(t, hib)]
    best_for = {}
    for c, (k, h) in enumerate(zip(keys, hib)):
        top = t[:, c].max() if h else t[:, c].min()
        best_for[k] = [cands[i]["loss"] for i in range(len(cands)) if t[i, c] == top]
    return {"metrics": keys, "losses": front, "best_for": best_for}


def _notes(runs: list[dict]) -> list[str]:
    notes = []
    missing = [r for r in runs if r.get("status") == "missing"]
    if missing:
        notes.append(f"{len(missing)} runs have not been run yet; rerun the same compare command to finish them.")
    return notes
