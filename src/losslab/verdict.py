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

from losslab import io, race, rundir
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
    for job in rundir.plan(rundir.candidates_of(spec), int(spec["seeds"]),
                           seed_start=int(spec.get("seed_start", 0))):
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

    limits = race_of(spec)
    seed_start = int(spec.get("seed_start", 0))
    race_rec = race.decide(race.run_values(runs, primary, higher), rundir.candidates_of(spec), seed_start=seed_start,
                           limits=limits, out=out, metric=primary)
    wanted = {(loss, s) for loss, ss in race_rec["need"].items() for s in ss}
    runs = [r for r in runs if r.get("status") != "missing" or (r["loss"], r["seed"]) in wanted]  # not asked for
    ranking = [_rank_entry(loss, runs, primary, higher) for loss in rundir.candidates_of(spec)]
    sign = -1.0 if higher else 1.0
    order = {loss: i for i, loss in enumerate(race_rec["survivors"])} if race_rec["looks"] else {}
    gone = race_rec["eliminated_at"]
    ranking.sort(key=lambda e: (e["loss"] not in order, order.get(e["loss"], 0), -gone.get(e["loss"], 0),
                                e["mean"] is None, sign * e["mean"] if e["mean"] is not None else 0.0))
    for e in ranking:
        e["race"] = ("eliminated" if e["loss"] in gone else "survivor" if e["loss"] in order else "waiting")
        e["eliminated_after"] = gone.get(e["loss"])
    race_rec["compute"] = {e["loss"]: {"seeds": e["n_runs"], "wall_seconds": float(sum(
        r.get("wall_seconds") or 0.0 for r in runs if r["loss"] == e["loss"] and r.get("status") != "missing"))}
        for e in ranking}

    first_ok = next((r for r in runs if r.get("status") == "ok"), None)
    front = pareto(ranking, runs, family=family, kind=kind)
    profile = read_profile(out)
    rec = recommend(ranking, runs, primary, higher, pareto=front, race_rec=race_rec, limits=limits)
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
        "statistics": {**lstats.STATISTICS, "pareto_metrics": front["metrics"], "race": limits.to_dict()},
        "recommendation": rec,
        "race": race_rec,
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


def _look_pairs(look: dict, values: dict[str, dict[int, float]], rows: list[tuple[str, str]],
                limits: race.Limits) -> list[dict[str, Any]]:
    """Rows of ``pairwise`` for the pairs (a, b) at one look of the race: a the better-ranked."""
    alive, seeds = look["alive"], look["seeds"]
    table = np.array([[values[loss][s] for loss in alive] for s in seeds], dtype=np.float64)  # (n, k)
    p = lstats.nemenyi_p(table)
    looks = len(limits.looks())
    out = []
    for a, b in rows:
        i, j = alive.index(a), alive.index(b)
        ga, gb = table[:, i], table[:, j]
        with np.errstate(invalid="ignore"):
            d = ga - gb
        d[np.isnan(d)] = 0.0  # both diverged: a tie
        eff = float(np.mean(d))
        fin = d[np.isfinite(d)]
        sd = float(np.std(fin, ddof=1)) if fin.size >= 2 else math.nan
        out.append({"a": a, "b": b, "n_paired": len(seeds), "look": look["n_seeds"],
                    "test": "Nemenyi after Friedman (ranks within seeds)",
                    "effect": None if math.isnan(eff) else eff,
                    "mean_ranks": [look["mean_ranks"][a], look["mean_ranks"][b]],
                    "p_value": float(p[i, j]), "p_adjusted": float(min(1.0, p[i, j] * looks)),
                    "prob_improvement": lstats.prob_improvement(ga, gb, higher=True),
                    "prob_improvement_ci": lstats.prob_improvement_ci(ga, gb, higher=True),
                    "detectable": (lstats.detectable_difference(sd, len(seeds), alpha=limits.alpha_look)
                                   if np.isfinite(d).all() else None)})
    return out


def _p_text(p: float | None) -> str:
    return "n/a" if p is None else ("< 1e-4" if p < 1e-4 else f"{p:.3g}")


def race_of(spec: dict[str, Any]) -> race.Limits:
    """The comparison's race limits from compare.json's ``race`` (a fixed design of ``seeds`` without one)."""
    r = spec.get("race")
    if isinstance(r, dict):
        keys = ("first", "step", "cap", "alpha", "delta")
        return race.Limits(**{k: r[k] for k in keys if k in r})
    return race.fixed(int(spec["seeds"]))


def recommend(ranking: list[dict], runs: list[dict], primary: str, higher: bool, *,
              pareto: dict | None = None, race_rec: dict | None = None,
              limits: race.Limits | None = None) -> dict[str, Any]:
    """Say which losses the race showed worse, which survive, and whether one won, citing the measurements.

    The decision is the race's (:func:`losslab.race.decide`; without ``race_rec`` it is computed from
    ``runs`` as a fixed design, one look at the seeds every loss has): after Friedman's test, Nemenyi's
    all-pairs comparison of mean ranks within seeds, at ``alpha / looks`` per look; a diverged run or
    an infinite metric is the worst rank.

    * ``best_group``: the losses the race did not show worse (its survivors), best mean rank first.
      Not shown worse is not shown equal: ``equivalent`` says whether paired TOST showed every pair
      of them within +-delta.
    * ``loss``: the best so far (best mean rank among the survivors); ``winner``: the same loss only
      when every other loss was shown worse, else None.
    * ``verdict``: "undertrained" (fewer than half the ok runs whose convergence could be
      determined converged), else "clear winner" (one survivor of >= 2 losses), "equivalent"
      (TOST), or "no clear winner".

    Returns:
        ``{"loss", "winner", "verdict", "best_group", "equivalent", "seeds", "pairwise": [{"a", "b",
        "n_paired", "look", "test", "effect", "mean_ranks", "p_value", "p_adjusted",
        "prob_improvement", "prob_improvement_ci", "detectable"}, ...], "reasons"}``. ``effect`` is the
        mean per-seed difference in the metric's units, positive when a is better; ``p_adjusted``
        is Nemenyi's p times the number of looks (the race rejects where it is < alpha);
        ``detectable`` the paired difference a t-test at the look's level would find with 80% power.
    """
    values = race.run_values(runs, primary, higher)
    names = [e["loss"] for e in ranking]
    if race_rec is None:
        done = [r["seed"] for r in runs if r.get("status") in rundir.FINAL_STATUSES]
        n = min((sum(1 for r in runs if r["loss"] == x and r.get("status") in rundir.FINAL_STATUSES)
                 for x in names), default=0)
        limits = race.fixed(max(n, 1))
        race_rec = race.decide(values, names, seed_start=min(done, default=0), limits=limits, metric=primary)
    limits = limits or race.Limits(**{k: race_rec["limits"][k] for k in ("first", "step", "cap", "alpha", "delta")})
    looks = race_rec["looks"]
    if not looks:
        finished = [e for e in ranking if e["mean"] is not None]
        best = finished[0]["loss"] if finished else None
        need = sum(len(v) for v in race_rec["need"].values())
        return {"loss": best, "winner": None, "verdict": "no clear winner", "best_group": [], "equivalent": None,
                "seeds": 0, "pairwise": [],
                "reasons": [f"No verdict yet: the first block of {limits.first} seeds per loss is not complete "
                            f"({need} runs missing or failed); rerun the same command to finish it."]}
    last = looks[-1]
    group = list(race_rec["survivors"])
    best = group[0]
    rows: list[dict[str, Any]] = []
    def steps(look: dict) -> list[dict]:  # the look's step-down rounds, each with the look's seeds
        return [{**r, "seeds": look["seeds"], "n_seeds": look["n_seeds"]} for r in look.get("rounds") or [look]]

    for look in looks:
        for r in steps(look):
            rows += _look_pairs(r, values, [(r["beaten_by"][x], x) for x in r["eliminated"]], limits)
    final = steps(last)[-1]  # the survivors ranked among themselves
    rows += _look_pairs(final, values, [(best, x) for x in group[1:]], limits)
    stopped = race_rec["stopped"]
    eq = race_rec["equivalence"]
    equivalent = ({"delta": eq["delta"], "source": eq["source"], "p_max": eq["p_max"],
                   "test": "paired TOST (statsmodels ttost_paired), every pair of survivors, max p < alpha"}
                  if stopped == "equivalent" else None)
    conv = [bool(r["converged"]) for r in runs if r.get("status") == "ok" and r.get("converged") is not None]
    undertrained = bool(conv) and sum(conv) < len(conv) / 2
    winner = best if stopped == "one survivor" and len(names) >= 2 else None
    verdict = ("undertrained" if undertrained else "clear winner" if winner else
               "equivalent" if equivalent else "no clear winner")
    by = {e["loss"]: e for e in ranking}
    n_last = last["n_seeds"]
    where = f"{best} has the best mean rank ({final['mean_ranks'][best]:.2f} of {len(final['alive'])}) " \
            f"after {n_last} seeds; {primary} {_ci_text(by[best])}"
    method = (f"Friedman, then Nemenyi over all pairs, step-down, at alpha {limits.alpha} / "
              f"{len(limits.looks())} looks = {limits.alpha_look:.3g} per look")
    gone = [x for x in names if x in race_rec["eliminated_at"]]
    gone_text = (", ".join(f"{x} (after {race_rec['eliminated_at'][x]} seeds)" for x in gone)) or "none"
    if undertrained:
        first = (f"Undertrained: only {sum(conv)} of {len(conv)} runs converged, so no pick is reliable at this "
                 f"budget; train longer (more --steps). Not shown worse so far: {', '.join(group)}; {where}.")
    elif winner:
        first = (f"Clear winner: {best}; every other loss was shown worse ({method}): {gone_text}; {where}.")
    elif equivalent:
        first = (f"Equivalent: {', '.join(group)} are within +-{_fmt(eq['delta'])} {primary} of each other "
                 f"(paired TOST, largest p {_p_text(eq['p_max'])}; margin: {eq['source']}); shown worse: "
                 f"{gone_text}; {where}.")
    elif race_rec["need"]:
        first = (f"No verdict yet: the race stopped before its next look ({sum(map(len, race_rec['need'].values()))} "
                 f"runs missing or failed); best so far {best}; not shown worse: {', '.join(group)}; rerun the "
                 "same command to continue.")
    else:
        sep = [r for r in rows if r["a"] == best and r["b"] in group]
        dd = [r["detectable"] for r in sep if r.get("detectable") is not None]
        x = f" (a paired difference of {_fmt(max(dd))} {primary} or more would have been found with 80% " \
            "probability, paired t approximation)" if dd else ""
        first = (f"No clear winner: {', '.join(group)} not separated after {n_last} seeds{x}; best so far {best}; "
                 f"shown worse: {gone_text} ({method}); {where}. What would decide it: "
                 f"{limits.what_decides(n_last)}.")
    reasons = [first]
    ev = _evidence(best, runs)
    if ev:
        reasons.append(f"{best}: " + "; ".join(ev) + ".")
    for r in rows:
        other = by.get(r["b"])
        if other is None:
            continue
        ci = r["prob_improvement_ci"]
        pi = f"P({r['a']} better) = {r['prob_improvement']:.2f}" + (
            f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else " (no interval from fewer than 5 seeds)")
        judged = ("shown worse" if r["b"] not in group else "not separated")
        reasons.append(f"{r['b']}: {_ci_text(other)}; {r['a']} better by {_fmt(r['effect'])} {primary} on average "
                       f"over {r['n_paired']} paired seeds (mean ranks {r['mean_ranks'][0]:.2f} vs "
                       f"{r['mean_ranks'][1]:.2f}; Nemenyi p = {_p_text(r['p_value'])}, x {len(limits.looks())} "
                       f"looks = {_p_text(r['p_adjusted'])}; {pi}): {judged}.")
    if len(group) > 1:
        cheaper = min((by[k] for k in group if k in by), key=lambda e: e["wall_seconds_mean"] or 0.0)
        reasons.append(f"Among the survivors {cheaper['loss']} is the cheapest: "
                       f"{_fmt(cheaper['wall_seconds_mean'])} s per run.")
    for e in ranking:
        if e["loss"] == best:
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
    return {"loss": best, "winner": winner, "verdict": verdict, "best_group": group, "equivalent": equivalent,
            "seeds": n_last, "pairwise": rows, "reasons": reasons}


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
