"""``losslab compare``: losses x seeds on one dataset, equal budget, then the verdict.

This module runs jobs and nothing else. It checks and writes the
comparison's ``compare.json`` and ``reference.npz`` (file names and job plan
from :mod:`losslab.rundir`), runs every (loss, seed) job not yet finished on
a backend (:mod:`losslab.backends.local`), and hands the run directories to
:func:`losslab.verdict.aggregate`, which writes ``results.json``. Each job
writes only its own run directory ``OUT/runs/<loss>/seed<k>/``, so finished
runs are never trained again and rerunning an interrupted comparison with
the same ``--out`` resumes it.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from losslab import io, rundir, search
from losslab.backends import run_jobs
from losslab.config import Config, apply_overrides, validate
from losslab.data import load_dataset
from losslab.errors import UserError
from losslab.metrics import evaluate, primary_metric
from losslab.metrics.features import get_feature_net
from losslab.train.loop import train_run
from losslab.verdict import aggregate

__all__ = ["feature_net_for", "load_data", "make_evaluator", "run_compare", "run_job", "with_overrides",
           "write_reference"]


# --------------------------------------------------------------------------- data and evaluation

@lru_cache(maxsize=4)
def _dataset(name: str, data_dir: str | None, image_size: int | None, n_train: int | None):
    return load_dataset(name, data_dir=data_dir, image_size=image_size, n_train=n_train)


def load_data(cfg: Config):
    """The dataset of ``cfg.data`` (cached per process: a worker loads it once for all its jobs)."""
    d = cfg.data
    return _dataset(d.name, d.data_dir, d.image_size, d.n_train)


def feature_net_for(dataset, *, progress: bool = False):
    """The FID feature network for image data (trained once, then cached); None for vectors."""
    if dataset.kind != "image":
        return None
    return get_feature_net(dataset, progress=progress)


def make_evaluator(cfg: Config, dataset, *, n: int | None = None) -> Callable[[Any, torch.Tensor], dict]:
    """evaluate(dataset, samples) for generative families on ``n`` generated and ``n`` real samples
    (default ``train.n_eval``; the curve points use ``train.curve_n``); the feature net loads on first use."""
    fnet: list = []
    n = cfg.train.n_eval if n is None else n

    def _eval(ds, samples):
        if not fnet:
            fnet.append(feature_net_for(dataset))
        return evaluate(ds, samples, generator=torch.Generator().manual_seed(rundir.REFERENCE_SEED),
                        n=n, feature_net=fnet[0])

    return _eval


def with_overrides(cfg: Config, overrides: dict[str, Any] | None) -> Config:
    """A copy of ``cfg`` with ``{"section.key": value}`` applied and checked (a tuned loss's settings).

    Raises:
        UserError: an unknown key or a value outside the field's domain.
    """
    if not overrides:
        return cfg
    tables: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        tables.setdefault(section, {})[name] = value
    out = apply_overrides(copy.deepcopy(cfg), tables, "search")
    validate(out)
    return out


def run_job(cfg: Config, out: str, job: rundir.Job | search.TrialJob, progress: Callable[[int], None], *,
            overrides: dict[str, dict[str, Any]] | None = None) -> dict:
    """The job function of a comparison: train and evaluate one (loss, seed) run into its directory.

    Runs the same in this process or in a worker of any backend; ``progress(n)``
    reports n more updates of the budget. ``overrides`` maps a loss to
    ``{"section.key": value}`` settings of that loss only (``--search``'s best
    settings); a job with its own ``overrides`` (a search trial,
    :class:`losslab.search.TrialJob`) uses those. They are applied to the
    run's config, so its config.json records them.
    """
    dataset = load_data(cfg)
    own = getattr(job, "overrides", None)
    run_cfg = with_overrides(cfg, dict(own) if own else (overrides or {}).get(job.loss))
    return train_run(Path(out) / job.run_dir, run_cfg, dataset, loss=job.loss, seed=job.seed, family=job.family,
                     evaluate=make_evaluator(run_cfg, dataset), progress=progress,
                     curve_evaluate=make_evaluator(run_cfg, dataset, n=run_cfg.train.curve_n))


# --------------------------------------------------------------------------- the comparison directory

def write_reference(out: Path, dataset, n: int) -> None:
    """Real samples (and the true mixture / density) for the report, which never loads data.

    ``OUT/reference.npz``: ``real`` (n, *shape) float32 (images: at most the
    test split), and where the data has them ``modes`` (K, d), ``mode_std``,
    and for 1-D vectors with a density ``pdf_x``, ``pdf_y`` (400,).
    """
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
    io.atomic_write_bytes(out / rundir.REFERENCE, io.npz_bytes(**arrays))


def write_spec(out: Path, cfg: Config, dataset, *, losses: list[str], seeds: int,
               metric: str | None, seed_start: int = 0, search_trials: int | None = None) -> dict[str, Any]:
    """Write ``OUT/compare.json`` (what was asked), merging losses and seeds into an existing one.

    Records ``seed_start`` (the final seeds are ``seed_start .. seed_start + seeds - 1``)
    and ``search`` (``--search``'s trials per loss, or None).

    Raises:
        UserError: ``out`` holds a comparison with another dataset, configuration,
            first seed or search, or a corrupt compare.json.
    """
    spec = {"family": rundir.families_of(losses), "data": cfg.data.name, "kind": dataset.kind,
            "shape": list(dataset.shape), "losses": losses, "seeds": seeds, "seed_start": seed_start,
            "search": search_trials, "metric": metric, "config": cfg.to_dict()}
    path = out / rundir.COMPARE
    if path.exists():
        old = rundir.read_json_file(path)
        if not isinstance(old, dict):
            raise UserError(f"{path} is not a losslab comparison; use a new --out directory")
        for key in ("data", "config"):
            if old.get(key) != json.loads(io.dumps(spec[key])):
                raise UserError(f"{out} holds a comparison with a different {key}; use a new --out directory")
        if int(old.get("seed_start", 0)) != seed_start:
            raise UserError(f"{out} holds a comparison whose seeds start at {old.get('seed_start', 0)}, not "
                            f"{seed_start}; use a new --out directory")
        if old.get("search") != search_trials:
            raise UserError(f"{out} holds a comparison with --search {old.get('search')}, not {search_trials}; "
                            "use a new --out directory")
        spec["losses"] = list(dict.fromkeys(old.get("losses", []) + losses))
        spec["seeds"] = max(seeds, int(old.get("seeds", seeds)))
        spec["family"] = rundir.families_of(spec["losses"])
    io.atomic_write_json(path, spec)
    return spec


def run_compare(
    cfg: Config,
    *,
    losses: list[str],
    seeds: int,
    out: str | Path,
    workers: int = 1,
    quiet: bool = False,
    metric: str | None = None,
    seed_start: int = 0,
    search_trials: int | None = None,
) -> dict[str, Any]:
    """Run every (loss, seed) job not yet finished in ``out``, then the verdict.

    Parameters
    ----------
    cfg : Config
        The resolved configuration; its budget is ``train.steps`` updates, or
        ``train.budget_seconds`` of training per run when set.
    losses, seeds, out, workers, quiet, metric
        What to compare, where, and how (see ``losslab compare --help``).
    seed_start : int
        The final runs train seeds ``seed_start .. seed_start + seeds - 1``.
    search_trials : int, optional
        ``--search N``: first tune every loss with N equal-budget trials on
        seeds from :data:`losslab.search.TRIAL_SEED` (:func:`losslab.search.run_search`),
        then train the final seeds with each loss's best setting.

    Returns
    -------
    dict
        The content of ``OUT/results.json`` (:func:`losslab.verdict.aggregate`).

    Raises
    ------
    UserError
        ``out`` holds a comparison with another dataset, budget, first seed or
        search, an unknown loss, ``seed_start`` < 0 or overlapping the trial
        seeds, or ``metric`` was not measured.
    """
    if seed_start < 0:
        raise UserError(f"--seed-start must be >= 0, got {seed_start}")
    if search_trials is not None and seed_start + seeds > search.TRIAL_SEED:
        raise UserError(f"with --search the final seeds must stay below the trial seeds ({search.TRIAL_SEED}); "
                        f"got --seed-start {seed_start} --seeds {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_data(cfg)
    write_spec(out, cfg, dataset, losses=losses, seeds=seeds, metric=metric, seed_start=seed_start,
               search_trials=search_trials)
    write_reference(out, dataset, cfg.train.n_eval)
    jobs = rundir.plan(losses, seeds, seed_start=seed_start)
    if dataset.kind == "image" and any(j.family != "contrastive" for j in jobs):
        feature_net_for(dataset, progress=not quiet)  # train once here, workers read the cache

    per_run = None if cfg.train.budget_seconds is not None else cfg.train.steps  # None: a time budget
    columns = (TextColumn("[bold]compare[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("updates"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    overrides: dict[str, dict[str, Any]] = {}
    with Progress(*columns, disable=quiet, transient=False) as bar:
        if search_trials is not None:
            ranked = metric or primary_metric(dataset, family=rundir.families_of(losses))[0]
            stask = bar.add_task(f"search: {search_trials} trials x {len(losses)} losses",
                                 total=None if per_run is None else search_trials * len(losses) * per_run)
            ledger = search.run_search(partial(run_job, cfg, str(out)), losses=losses, trials=search_trials,
                                       out=out, metric=ranked, workers=workers,
                                       advance=lambda n: bar.advance(stask, n))
            overrides = search.final_overrides(ledger)
        todo = [j for j in jobs if not rundir.is_finished(out / j.run_dir)]
        task = bar.add_task(f"{len(todo)} runs ({len(jobs) - len(todo)} done before)",
                            total=None if per_run is None else len(todo) * per_run)
        died = run_jobs(partial(run_job, cfg, str(out), overrides=overrides), todo, workers=workers,
                        advance=lambda n: bar.advance(task, n))
    for job, exc in died:  # the worker process itself died: record it; the next compare retries the job
        rundir.write_result(out / job.run_dir, {
            "loss": job.loss, "seed": job.seed, "family": job.family, "status": "failed",
            "error": f"{type(exc).__name__}: {exc}", "metrics": {}})
    return aggregate(out, metric=metric)
