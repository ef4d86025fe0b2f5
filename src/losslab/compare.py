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

import json
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from losslab import io, rundir
from losslab.backends import run_jobs
from losslab.config import Config
from losslab.data import load_dataset
from losslab.errors import UserError
from losslab.metrics import evaluate
from losslab.metrics.features import get_feature_net
from losslab.train.loop import train_run
from losslab.verdict import aggregate

__all__ = ["feature_net_for", "group_jobs", "load_data", "make_evaluator", "run_compare", "run_group", "run_job",
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


def make_evaluator(cfg: Config, dataset) -> Callable[[Any, torch.Tensor], dict]:
    """evaluate(dataset, samples) for generative families; the feature net loads on first use."""
    fnet: list = []

    def _eval(ds, samples):
        if not fnet:
            fnet.append(feature_net_for(dataset))
        return evaluate(ds, samples, generator=torch.Generator().manual_seed(rundir.REFERENCE_SEED),
                        n=cfg.train.n_eval, feature_net=fnet[0])

    return _eval


def run_job(cfg: Config, out: str, job: rundir.Job, progress: Callable[[int], None]) -> dict:
    """The job function of a comparison: train and evaluate one (loss, seed) run into its directory.

    Runs the same in this process or in a worker of any backend; ``progress(n)``
    reports n more updates of the budget.
    """
    dataset = load_data(cfg)
    return train_run(Path(out) / job.run_dir, cfg, dataset, loss=job.loss, seed=job.seed, family=job.family,
                     evaluate=make_evaluator(cfg, dataset), progress=progress)


def group_jobs(jobs: list[rundir.Job], cfg: Config, dataset) -> list[tuple[rundir.Job, ...]]:
    """The jobs as backend tasks: the seeds of a loss that trains batched as one tuple, others one by one.

    A loss's seeds go together when :func:`losslab.train.batched.batchable`
    says so (vector data, MLP critics / denoisers, ``train.batch_seeds`` on).
    """
    from losslab.train.batched import batchable

    by_loss: dict[str, list[rundir.Job]] = {}
    for j in jobs:
        by_loss.setdefault(j.loss, []).append(j)
    out: list[tuple[rundir.Job, ...]] = []
    for loss, js in by_loss.items():
        if len(js) > 1 and batchable(cfg, dataset, loss, js[0].family) is None:
            out.append(tuple(js))
        else:
            out.extend((j,) for j in js)
    return out


def run_group(cfg: Config, out: str, group: tuple[rundir.Job, ...], progress: Callable[[int], None]) -> list[dict]:
    """The job function of a comparison: :func:`run_job` for one job, the batched seeds of one loss for several."""
    if len(group) == 1:
        return [run_job(cfg, out, group[0], progress)]
    from losslab.train.batched import train_batched

    dataset = load_data(cfg)
    return train_batched([Path(out) / j.run_dir for j in group], cfg, dataset, loss=group[0].loss,
                         seeds=[j.seed for j in group], family=group[0].family,
                         evaluate=make_evaluator(cfg, dataset), progress=progress)


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
               metric: str | None) -> dict[str, Any]:
    """Write ``OUT/compare.json`` (what was asked), merging losses and seeds into an existing one.

    Raises:
        UserError: ``out`` holds a comparison with another dataset or configuration, or a corrupt compare.json.
    """
    spec = {"family": rundir.families_of(losses), "data": cfg.data.name, "kind": dataset.kind,
            "shape": list(dataset.shape), "losses": losses, "seeds": seeds, "metric": metric,
            "config": cfg.to_dict()}
    path = out / rundir.COMPARE
    if path.exists():
        old = rundir.read_json_file(path)
        if not isinstance(old, dict):
            raise UserError(f"{path} is not a losslab comparison; use a new --out directory")
        for key in ("data", "config"):
            if old.get(key) != json.loads(io.dumps(spec[key])):
                raise UserError(f"{out} holds a comparison with a different {key}; use a new --out directory")
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
) -> dict[str, Any]:
    """Run every (loss, seed) job not yet finished in ``out``, then the verdict.

    Returns:
        The content of ``OUT/results.json`` (:func:`losslab.verdict.aggregate`).

    Raises:
        UserError: ``out`` holds a comparison with another dataset or budget, an
            unknown loss, or ``metric`` was not measured.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_data(cfg)
    write_spec(out, cfg, dataset, losses=losses, seeds=seeds, metric=metric)
    write_reference(out, dataset, cfg.train.n_eval)
    jobs = rundir.plan(losses, seeds)
    if dataset.kind == "image" and any(j.family != "contrastive" for j in jobs):
        feature_net_for(dataset, progress=not quiet)  # train once here, workers read the cache

    todo = [j for j in jobs if not rundir.is_finished(out / j.run_dir)]
    columns = (TextColumn("[bold]compare[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("updates"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, disable=quiet, transient=False) as bar:
        task = bar.add_task(f"{len(todo)} runs ({len(jobs) - len(todo)} done before)",
                            total=len(todo) * cfg.train.steps)
        died = run_jobs(partial(run_group, cfg, str(out)), group_jobs(todo, cfg, dataset), workers=workers,
                        advance=lambda n: bar.advance(task, n))
    for group, exc in died:  # the worker process itself died: record it; the next compare retries the job
        for job in group:
            rundir.write_result(out / job.run_dir, {
                "loss": job.loss, "seed": job.seed, "family": job.family, "status": "failed",
                "error": f"{type(exc).__name__}: {exc}", "metrics": {}})
    return aggregate(out, metric=metric)
