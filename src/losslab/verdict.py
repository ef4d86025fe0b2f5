"""The verdict of a comparison: statistics over run directories, a ranking and the answer in words.

:func:`aggregate` reads a comparison directory and nothing else (through
:mod:`losslab.rundir`: ``compare.json``, each run's ``result.json`` and
``metrics.jsonl``, and the shape of the real samples in ``reference.npz``),
and writes ``results.json``: per run its metrics and gradient diagnosis; per
loss the seed mean of the primary metric with its 95% Student-t confidence
interval, stability, collapse rate and costs, ranked best first; a
recommendation whose reasons cite the measurements; and notes. It never
trains and never loads a data set, so ``losslab report`` rebuilds it from the
run directories alone. Words that depend on the family (budget unit, second
player, family notes) come from :func:`losslab.report.families.describe`.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from losslab import io, rundir
from losslab.convergence import extend_results
from losslab.errors import UserError
from losslab.losses import family_of
from losslab.metrics import METRIC_INFO, primary_metric
from losslab.report.families import describe

__all__ = ["VANISH_RATIO", "aggregate", "gradient_diagnosis", "mean_ci95", "recommend"]

# Counts that describe the evaluation rather than measure the model.
_BOOKKEEPING = {"n_eval", "num_modes", "num_classes", "chance", "n_probe_train", "n_probe_test", "n_real",
                "c2st_n_test", "classifier_accuracy", "kid_std", "inception_score_std"}

# A network's gradient is called "vanished" when its norm over the last quarter
# of training falls below this fraction of its norm over the first tenth.
VANISH_RATIO = 1e-2


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


def gradient_diagnosis(rows: list[dict]) -> dict[str, Any]:
    """Initial and final gradient norms of the trained network from metrics.jsonl rows, and whether it vanished.

    ``g_grad_norm_initial`` is the median of ``g_grad_norm`` over the first
    tenth of the rows, ``g_grad_norm_final`` over the last quarter;
    ``g_grad_vanished`` when final < ``VANISH_RATIO`` * initial or final < 1e-8
    (the vanishing generator gradient of a saturated discriminator, Arjovsky &
    Bottou 2017, arXiv:1701.04862, Sec. 2.2). ``d_acc_final`` is the mean
    discriminator accuracy over the last quarter (GAN only, else None).
    Empty when fewer than 4 rows log ``g_grad_norm``.
    """
    g = [r["g_grad_norm"] for r in rows if r.get("g_grad_norm") is not None]
    if len(g) < 4:
        return {}
    head = statistics.median(g[: max(1, len(g) // 10)])
    tail = statistics.median(g[-max(1, len(g) // 4):])
    acc = [r["d_acc"] for r in rows[-max(1, len(rows) // 4):] if r.get("d_acc") is not None]
    return {
        "g_grad_norm_initial": head,
        "g_grad_norm_final": tail,
        "g_grad_vanished": bool(tail < VANISH_RATIO * head or tail < 1e-8),
        "d_acc_final": float(np.mean(acc)) if acc else None,
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
    """``OUT/compare.json``.

    Raises:
        UserError: missing, unreadable or corrupt.
    """
    path = out / rundir.COMPARE
    if not path.exists():
        raise UserError(f"no comparison in {out} ({rundir.COMPARE} missing); "
                        f"run `losslab compare --out {out}` first")
    spec = rundir.read_json_file(path)
    if not isinstance(spec, dict) or not all(k in spec for k in ("losses", "seeds", "config")):
        raise UserError(f"{path} is not a losslab comparison (losses, seeds and config expected)")
    return spec


def read_runs(out: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per planned (loss, seed): its result.json plus ``run_dir`` and ``diagnostics``.

    A run without result.json is ``{"status": "missing", ...}``.

    Raises:
        UserError: a result.json that cannot be read.
    """
    runs = []
    for job in rundir.plan(spec["losses"], int(spec["seeds"]), seed_start=int(spec.get("seed_start", 0))):
        rd = out / job.run_dir
        if not (rd / rundir.RESULT).exists():
            runs.append({"loss": job.loss, "seed": job.seed, "status": "missing", "metrics": {},
                         "run_dir": job.run_dir, "error": "not run yet"})
            continue
        r = rundir.read_json_file(rd / rundir.RESULT)
        r["run_dir"] = job.run_dir
        r["diagnostics"] = gradient_diagnosis(io.read_jsonl(rd / rundir.METRICS))
        runs.append(r)
    return runs


def data_shape(out: Path, spec: dict[str, Any]) -> tuple[str, list[int] | None]:
    """(kind, shape) of the compared data: ``"vector"`` (d,) or ``"image"`` (C, H, W).

    From ``compare.json`` (``kind``, ``shape``) where it says, else from the
    real samples of ``reference.npz`` (3 dimensions per sample: images).

    Raises:
        UserError: neither file says it.
    """
    shape = None
    ref = out / rundir.REFERENCE
    if ref.exists():
        with np.load(ref) as z:
            shape = list(z["real"].shape[1:])
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

    ranking = [_rank_entry(loss, runs, primary) for loss in spec["losses"]]
    sign = -1.0 if higher else 1.0
    ranking.sort(key=lambda e: (e["mean"] is None, sign * e["mean"] if e["mean"] is not None else 0.0))

    first_ok = next((r for r in runs if r.get("status") == "ok"), None)
    results = {
        "dataset": {
            "name": spec["data"],
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
        "recommendation": recommend(ranking, runs, primary, higher),
        "notes": _notes(runs) + words.notes(ranking, runs, spec["data"]),
    }
    extend_results(out, spec, runs, results)  # converged_rate per row, budget.suggested_steps, search
    io.atomic_write_json(out / rundir.RESULTS, results)
    return results


def _rank_entry(loss: str, runs: list[dict], primary: str) -> dict[str, Any]:
    """One loss's row of the ranking: the primary metric's seed mean and CI, stability, costs."""
    rs = [r for r in runs if r["loss"] == loss and r.get("status") != "missing"]
    ok = [r for r in rs if r.get("status") == "ok" and r["metrics"].get(primary) is not None]
    vals = [float(r["metrics"][primary]) for r in ok]
    finite = [v for v in vals if math.isfinite(v)]
    mean, ci = mean_ci95(finite) if finite else (None, None)
    collapsed = [c for c in (_collapsed(r["metrics"]) for r in ok) if c is not None]
    numeric = sorted({k for r in ok for k, v in r["metrics"].items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)} - _BOOKKEEPING)
    return {
        "loss": loss,
        "mean": mean,
        "ci95": ci,
        "values": vals,
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


def recommend(ranking: list[dict], runs: list[dict], primary: str, higher: bool) -> dict[str, Any]:
    """Pick the loss to use, with reasons that cite the measurements.

    The recommended loss is the best mean of the primary metric among losses
    none of whose seeds diverged or failed (a loss that is only sometimes
    usable is not recommended over one that always is); ties within the
    confidence interval are stated, and then the cheaper loss is named.

    Returns:
        ``{"loss": name or None, "reasons": [sentence, ...]}``.
    """
    usable = [e for e in ranking if e["mean"] is not None and e["n_ok"] == e["n_runs"] and e["n_ok"] > 0]
    if not usable:
        return {"loss": None, "reasons": ["no loss finished all its seeds; see the per-run table for errors"]}
    best = usable[0]
    direction = "highest" if higher else "lowest"
    reasons = [f"{best['loss']} has the {direction} mean {primary} among losses that finished every seed: "
               f"{_ci_text(best)}."]
    ev = _evidence(best["loss"], runs)
    if ev:
        reasons.append(f"{best['loss']}: " + "; ".join(ev) + ".")
    if ranking and ranking[0]["loss"] != best["loss"] and ranking[0]["mean"] is not None:
        top = ranking[0]
        reasons.append(f"{top['loss']} has a better mean ({_ci_text(top)}) but did not finish every seed: "
                       + "; ".join(_evidence(top["loss"], runs)) + ".")
    if len(usable) > 1:
        second = usable[1]
        overlap = (best["ci95"] is not None and second["ci95"] is not None
                   and best["ci95"][0] <= second["ci95"][1] and second["ci95"][0] <= best["ci95"][1])
        if best["ci95"] is None or second["ci95"] is None:
            reasons.append(f"Runner-up {second['loss']}: {_ci_text(second)}; with a single seed there is no "
                           "confidence interval: rerun with --seeds 3 or more before trusting the order.")
        elif overlap:
            cheaper = min((best, second), key=lambda e: e["wall_seconds_mean"] or 0.0)
            reasons.append(
                f"Runner-up {second['loss']}: {_ci_text(second)}; the confidence intervals overlap, so at this "
                f"budget the two are not clearly different ({cheaper['loss']} is cheaper: "
                f"{_fmt(cheaper['wall_seconds_mean'])} s per run).")
        else:
            reasons.append(f"Runner-up {second['loss']}: {_ci_text(second)}; the confidence intervals do not overlap.")
    for e in ranking:
        if e["loss"] == best["loss"]:
            continue
        ev = _evidence(e["loss"], runs, ("diverged", "failed", "vanished"))
        if e["collapse_rate"]:
            ev.insert(0, f"mode collapse (at least one mode missed) in "
                         f"{round(e['collapse_rate'] * e['n_ok'])}/{e['n_ok']} seeds")
        if ev:
            reasons.append(f"{e['loss']}: " + "; ".join(ev) + ".")
    return {"loss": best["loss"], "reasons": reasons}


def _notes(runs: list[dict]) -> list[str]:
    notes = []
    missing = [r for r in runs if r.get("status") == "missing"]
    if missing:
        notes.append(f"{len(missing)} runs have not been run yet; rerun the same compare command to finish them.")
    return notes
