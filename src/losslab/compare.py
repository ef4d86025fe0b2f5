"""``losslab compare``: losses x seeds on one dataset, equal budget, then a ranking.

Each (loss, seed) job is independent and writes only its own run directory
``OUT/runs/<loss>/seed<k>/``; :func:`aggregate` reads those directories alone
and writes ``OUT/results.json`` (ranking with 95% confidence intervals across
seeds, stability, collapse rate, and a recommendation with the measured
evidence). Finished runs are never trained again, so rerunning an interrupted
comparison with the same ``--out`` resumes it.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import statistics
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

from losslab import io
from losslab.config import Config
from losslab.errors import UserError
from losslab.train.loop import is_finished, train_run

# Counts that describe the evaluation rather than measure the model.
_BOOKKEEPING = {"n_eval", "num_modes", "num_classes", "chance", "n_probe_train", "n_probe_test", "n_real",
                "c2st_n_test", "classifier_accuracy", "kid_std", "inception_score_std"}

# A generator gradient is called "vanished" when its norm over the last quarter
# of training falls below this fraction of its norm over the first tenth.
VANISH_RATIO = 1e-2


@dataclass(frozen=True)
class Job:
    loss: str
    seed: int
    run_dir: str  # relative to OUT
    family: str = "gan"


def plan(losses: list[str], seeds: int) -> list[Job]:
    """One job per (loss, seed); each loss is trained by the family whose registry holds it."""
    from losslab.losses import family_of

    return [Job(loss, s, f"runs/{loss}/seed{s}", family_of(loss)) for loss in losses for s in range(seeds)]


def families_of(losses: list[str]) -> str:
    """"gan", "diffusion", or "gan+diffusion" for a table that mixes them."""
    from losslab.losses import REGISTRIES, family_of

    fams = {family_of(loss) for loss in losses}
    return "+".join(f for f in REGISTRIES if f in fams)


# --------------------------------------------------------------------------- data and evaluation

@lru_cache(maxsize=4)
def _dataset(name: str, data_dir: str | None, image_size: int | None, n_train: int | None):
    from losslab.data import load_dataset

    return load_dataset(name, data_dir=data_dir, image_size=image_size, n_train=n_train)


def load_data(cfg: Config):
    d = cfg.data
    return _dataset(d.name, d.data_dir, d.image_size, d.n_train)


def feature_net_for(dataset, *, progress: bool = False):
    """The FID feature network for image data (trained once, then cached); None for vectors."""
    if dataset.kind != "image":
        return None
    from losslab.metrics.features import get_feature_net

    return get_feature_net(dataset, progress=progress)


def make_evaluator(cfg: Config, dataset) -> Callable[[Any, torch.Tensor], dict]:
    """evaluate(dataset, samples) for generative families; the feature net loads on first use."""
    from losslab.metrics import evaluate

    fnet: list = []

    def _eval(ds, samples):
        if not fnet:
            fnet.append(feature_net_for(dataset))
        return evaluate(ds, samples, generator=torch.Generator().manual_seed(12345),
                        n=cfg.train.n_eval, feature_net=fnet[0])

    return _eval


def _exit_with_parent(parent: int) -> None:
    """In a worker: end this process when the comparison that started it is gone.

    A killed ``losslab compare`` (SIGKILL, a closed terminal) cannot shut its
    pool down; without this its workers would train on, or block forever on
    the dead progress queue. The run directory keeps its last checkpoint, so
    the next ``compare`` resumes the job.
    """
    import threading
    import time

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True, name="losslab-parent-watch").start()


def _run_job(cfg: Config, out: str, job: Job, queue=None, parent: int | None = None) -> dict:
    """Run one job (in this process or a worker); report progress through ``queue``."""
    if parent is not None:
        _exit_with_parent(parent)
    dataset = load_data(cfg)
    buf = [0]

    def progress(n: int) -> None:
        buf[0] += n
        if queue is not None and buf[0] >= 25:
            queue.put(buf[0])
            buf[0] = 0

    res = train_run(Path(out) / job.run_dir, cfg, dataset, loss=job.loss, seed=job.seed,
                    family=job.family, evaluate=make_evaluator(cfg, dataset), progress=progress)
    if queue is not None and buf[0]:
        queue.put(buf[0])
    return res


# --------------------------------------------------------------------------- running

def write_reference(out: Path, dataset, n: int) -> None:
    """Real samples (and the true mixture / density) for the report, which never loads data."""
    g = torch.Generator().manual_seed(0)
    real = dataset.reference(min(n, len(dataset.test)) if dataset.kind == "image" else n, g)
    arrays: dict[str, np.ndarray] = {"real": real.numpy().astype(np.float32)}
    if dataset.modes is not None:
        arrays["modes"] = np.asarray(dataset.modes, dtype=np.float32)
        arrays["mode_std"] = np.asarray(dataset.mode_std, dtype=np.float32)
    if dataset.pdf is not None and dataset.kind == "vector" and dataset.shape[0] == 1:
        r = real.numpy().ravel()
        lo, hi = np.quantile(r, [0.0005, 0.9995])
        pad = 0.25 * (hi - lo)
        x = np.linspace(lo - pad, hi + pad, 400)
        arrays["pdf_x"], arrays["pdf_y"] = x, np.asarray(dataset.pdf(x), dtype=np.float64)
    io.atomic_write_bytes(out / "reference.npz", io.npz_bytes(**arrays))


def run_compare(
    cfg: Config,
    *,
    losses: list[str],
    seeds: int,
    out: str | Path,
    workers: int = 1,
    quiet: bool = False,
    metric: str | None = None,
) -> dict[str, Any]:
    """Run every (loss, seed) job not yet finished in ``out``, then aggregate.

    Raises:
        UserError: ``out`` holds a comparison with another dataset or budget.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_data(cfg)
    family = families_of(losses)
    spec = {"family": family, "data": cfg.data.name, "losses": losses, "seeds": seeds,
            "metric": metric, "config": cfg.to_dict()}
    spec_path = out / "compare.json"
    if spec_path.exists():
        old = io.read_json(spec_path)
        for key in ("data", "config"):
            if old.get(key) != json.loads(io.dumps(spec[key])):
                raise UserError(f"{out} holds a comparison with a different {key}; use a new --out directory")
        spec["losses"] = list(dict.fromkeys(old.get("losses", []) + losses))
        spec["seeds"] = max(seeds, int(old.get("seeds", seeds)))
        spec["family"] = families_of(spec["losses"])
    io.atomic_write_json(spec_path, spec)
    write_reference(out, dataset, cfg.train.n_eval)
    if dataset.kind == "image" and any(j.family != "contrastive" for j in plan(losses, 1)):
        feature_net_for(dataset, progress=not quiet)  # train once here, workers read the cache

    jobs = plan(losses, seeds)
    todo = [j for j in jobs if not is_finished(out / j.run_dir)]
    total = len(todo) * cfg.train.steps
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = (TextColumn("[bold]compare[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("updates"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, disable=quiet, transient=False) as bar:
        task = bar.add_task(f"{len(todo)} runs ({len(jobs) - len(todo)} done before)", total=total)
        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                bar.update(task, description=f"{job.loss} seed {job.seed}")
                _run_inline(cfg, out, job, lambda n: bar.advance(task, n))
        else:
            _run_pool(cfg, out, todo, min(workers, len(todo)), lambda n: bar.advance(task, n))
    results = aggregate(out, metric=metric)
    return results


def _run_inline(cfg, out, job, advance) -> dict:
    dataset = load_data(cfg)
    return train_run(Path(out) / job.run_dir, cfg, dataset, loss=job.loss, seed=job.seed, family=job.family,
                     evaluate=make_evaluator(cfg, dataset), progress=advance)


def _run_pool(cfg, out, todo, workers, advance) -> None:
    ctx = mp.get_context("spawn")
    with mp.Manager() as manager:
        q = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_run_job, cfg, str(out), j, q, os.getpid()): j for j in todo}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    while not q.empty():
                        advance(q.get_nowait())
                    for f in done:
                        exc = f.exception()
                        if isinstance(exc, UserError):
                            raise exc
                        if exc is not None:  # the worker itself died; the run stays unfinished
                            j = futures[f]
                            io.atomic_write_json(out / j.run_dir / "result.json", {
                                "loss": j.loss, "seed": j.seed, "family": j.family, "status": "failed",
                                "error": f"{type(exc).__name__}: {exc}", "metrics": {}})
            except BaseException:  # Ctrl-C / kill: stop the running jobs now; they resume from checkpoints
                for f in pending:
                    f.cancel()
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                raise


# --------------------------------------------------------------------------- aggregation

def mean_ci95(values: list[float]) -> tuple[float, list[float] | None]:
    """Mean and the 95% Student-t confidence interval of the mean (None for n < 2).

    CI = mean +- t_{0.975, n-1} * s / sqrt(n), s the sample standard deviation.
    """
    m = float(np.mean(values))
    n = len(values)
    if n < 2:
        return m, None
    s = float(np.std(values, ddof=1))
    h = float(stats.t.ppf(0.975, n - 1)) * s / math.sqrt(n)
    return m, [m - h, m + h]


def gradient_diagnosis(rows: list[dict]) -> dict[str, Any]:
    """Initial and final generator gradient norms from metrics.jsonl rows, and whether it vanished."""
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
    if metrics.get("num_modes") and metrics.get("modes_covered") is not None and metrics["num_modes"] > 1:
        return metrics["modes_covered"] < metrics["num_modes"]
    if metrics.get("num_classes") and metrics.get("classes_covered") is not None:
        return metrics["classes_covered"] < metrics["num_classes"]
    return None


def aggregate(out: str | Path, *, metric: str | None = None) -> dict[str, Any]:
    """Read every run directory under ``out`` and write ``out/results.json``.

    Raises:
        UserError: ``out`` holds no comparison, or ``metric`` was not measured.
    """
    out = Path(out)
    spec_path = out / "compare.json"
    if not spec_path.exists():
        raise UserError(f"no comparison in {out} (compare.json missing); run `losslab compare --out {out}` first")
    spec = io.read_json(spec_path)
    metric = metric or spec.get("metric")
    runs = []
    for job in plan(spec["losses"], spec["seeds"]):
        rd = out / job.run_dir
        if not (rd / "result.json").exists():
            runs.append({"loss": job.loss, "seed": job.seed, "status": "missing", "metrics": {},
                         "run_dir": job.run_dir, "error": "not run yet"})
            continue
        r = io.read_json(rd / "result.json")
        r["run_dir"] = job.run_dir
        r["diagnostics"] = gradient_diagnosis(io.read_jsonl(rd / "metrics.jsonl"))
        runs.append(r)

    cfg = spec["config"]
    ok_metrics = [r["metrics"] for r in runs if r.get("status") == "ok" and r.get("metrics")]
    from losslab.metrics import METRIC_INFO

    if any("linear_probe" in m for m in ok_metrics):  # representation learning (contrastive)
        kind, default_primary = "image", "linear_probe"
    elif any("fid" in m for m in ok_metrics):
        kind, default_primary = "image", "fid"
    else:
        kind = "vector"
        default_primary = "w1" if any("w1" in m for m in ok_metrics) else "swd"
    primary = metric or default_primary
    if ok_metrics and not any(primary in m for m in ok_metrics):
        measured = sorted({k for m in ok_metrics for k, v in m.items() if isinstance(v, (int, float))})
        raise UserError(f"metric {primary!r} was not measured; choose from: {', '.join(measured)}")
    info = METRIC_INFO.get(primary, {})
    higher = bool(info.get("higher_is_better", False))

    ranking = []
    for loss in spec["losses"]:
        rs = [r for r in runs if r["loss"] == loss and r.get("status") != "missing"]
        ok = [r for r in rs if r.get("status") == "ok" and r["metrics"].get(primary) is not None]
        vals = [float(r["metrics"][primary]) for r in ok]
        finite = [v for v in vals if math.isfinite(v)]
        mean, ci = mean_ci95(finite) if finite else (None, None)
        collapsed = [c for c in (_collapsed(r["metrics"]) for r in ok) if c is not None]
        numeric = sorted({k for r in ok for k, v in r["metrics"].items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)} - _BOOKKEEPING)
        ranking.append({
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
            "family": plan([loss], 1)[0].family,
            "sampling_nfe": next((r["sampling_nfe"] for r in rs if r.get("sampling_nfe")), None),
            "metrics_mean": {k: float(np.mean([r["metrics"][k] for r in ok if r["metrics"].get(k) is not None]))
                             for k in numeric if any(r["metrics"].get(k) is not None for r in ok)},
            "vanished_rate": (sum(bool(r.get("diagnostics", {}).get("g_grad_vanished")) for r in rs) / len(rs))
            if rs else None,
        })
    sign = -1.0 if higher else 1.0
    ranking.sort(key=lambda e: (e["mean"] is None, sign * e["mean"] if e["mean"] is not None else 0.0))

    first_ok = next((r for r in runs if r.get("status") == "ok"), None)
    results = {
        "dataset": {
            "name": spec["data"],
            "kind": kind,
            "shape": _shape_of(out),
            "num_modes": (first_ok or {}).get("metrics", {}).get("num_modes"),
            "feature_net": (first_ok or {}).get("metrics", {}).get("feature_net"),
        },
        "family": spec["family"],
        "budget": {"g_updates": cfg["train"]["steps"], "batch_size": cfg["train"]["batch_size"],
                   "note": "every loss gets the same number of generator updates; "
                           "critic updates and wall seconds are reported beside it"},
        "primary_metric": {"name": primary, "higher_is_better": higher,
                           "description": info.get("description", primary)},
        "runs": runs,
        "ranking": ranking,
        "recommendation": recommend(ranking, runs, primary, higher),
        "notes": _notes(runs) + _family_notes(ranking, spec["data"]),
    }
    io.atomic_write_json(out / "results.json", results)
    return results


def _shape_of(out: Path) -> list[int] | None:
    p = out / "reference.npz"
    if not p.exists():
        return None
    with np.load(p) as z:
        return list(z["real"].shape[1:])


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


def _evidence(loss: str, runs: list[dict]) -> list[str]:
    """Measured facts about one loss's runs, as short phrases."""
    rs = [r for r in runs if r["loss"] == loss and r.get("status") != "missing"]
    ok = [r for r in rs if r.get("status") == "ok"]
    out = []
    modes = [(r["metrics"].get("modes_covered"), r["metrics"].get("num_modes")) for r in ok]
    if modes and all(m is not None and k for m, k in modes) and modes[0][1] > 1:
        out.append("modes covered per seed: " + ", ".join(f"{m}/{k}" for m, k in modes))
    hq = [r["metrics"].get("high_quality") for r in ok if r["metrics"].get("high_quality") is not None]
    if hq:
        out.append(f"high-quality samples {100 * float(np.mean(hq)):.0f}% on average")
    cls = [(r["metrics"].get("classes_covered"), r["metrics"].get("num_classes")) for r in ok]
    if cls and all(c is not None and k for c, k in cls):
        out.append("classes covered per seed: " + ", ".join(f"{c}/{k}" for c, k in cls))
    div = [r for r in rs if r.get("status") == "diverged"]
    if div:
        out.append(f"diverged in {len(div)}/{len(rs)} seeds (at generator update "
                   + ", ".join(str(r.get("diverged_at")) for r in div) + ")")
    failed = [r for r in rs if r.get("status") == "failed"]
    if failed:
        out.append(f"failed in {len(failed)}/{len(rs)} seeds ({failed[0].get('error')})")
    van = [r for r in rs if r.get("diagnostics", {}).get("g_grad_vanished")]
    if van:
        d = van[0]["diagnostics"]
        out.append(f"generator gradient vanished in {len(van)}/{len(rs)} seeds (norm "
                   f"{_fmt(d['g_grad_norm_initial'])} -> {_fmt(d['g_grad_norm_final'])})")
    return out


def recommend(ranking: list[dict], runs: list[dict], primary: str, higher: bool) -> dict[str, Any]:
    """Pick the loss to use, with reasons that cite the measurements.

    The recommended loss is the best mean of the primary metric among losses
    none of whose seeds diverged or failed (a loss that is only sometimes
    usable is not recommended over one that always is); ties within the
    confidence interval are stated, and then the cheaper loss is named.
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
        ev = [x for x in _evidence(e["loss"], runs) if x.startswith(("diverged", "failed", "generator gradient"))]
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


def _family_notes(ranking: list[dict], data: str) -> list[str]:
    """Notes a family adds from measurements (e.g. why random data cannot teach a contrastive encoder)."""
    from losslab.train.contrastive import random_data_note

    notes = []
    for e in ranking:
        if e.get("family") == "contrastive" and e.get("metrics_mean"):
            note = random_data_note(e["metrics_mean"], data=data)
            if note and note not in notes:
                notes.append(f"{e['loss']}: {note}")
    return notes


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))
