"""``losslab compare``: losses x seeds on one dataset, equal budget, then the verdict.

This module runs jobs and nothing else. It checks and writes the
comparison's ``compare.json`` and ``reference.npz`` (file names and job plan
from :mod:`losslab.rundir`), runs every (loss, seed) job not yet finished on
a backend (:mod:`losslab.backends.local` or :mod:`losslab.backends.ray`), and hands the run directories to
:func:`losslab.verdict.aggregate`, which writes ``results.json``. Each job
writes only its own run directory ``OUT/runs/<loss>/seed<k>/``, so finished
runs are never trained again and rerunning an interrupted comparison with
the same ``--out`` resumes it.

Nothing is written before everything that can be checked is checked
(:func:`check_request`: batch size, family against data, ``--metric``), so a
refused command leaves no directory behind. From its first write to its
report, a comparison holds :func:`losslab.rundir.lock_dir` on ``OUT``: a
second ``losslab compare`` or ``losslab report`` into the same directory is
refused with one line, and the temporary files of an interrupted write are
removed before anything else.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
import warnings
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from losslab import backends, io, race, rundir, search
from losslab.config import Config, apply_overrides, check_batch_size, validate
from losslab.data import load_dataset
from losslab.data.profile import profile as profile_data
from losslab.errors import UserError
from losslab.losses import family_of
from losslab.metrics import MAX_OT_SAMPLES, METRIC_INFO, evaluate, primary_metric
from losslab.metrics.features import STACKED_NAME
from losslab.metrics.representation import METRIC_INFO_REPRESENTATION
from losslab.metrics.features import get_feature_net
from losslab.metrics.ladder import quality_ladder
from losslab.train.batched import batchable, train_batched
from losslab.train.common import resolve_device
from losslab.train.loop import train_run
from losslab.verdict import aggregate

__all__ = ["check_family_data", "check_metric", "check_request", "feature_net_for", "group_jobs", "load_data",
           "make_evaluator", "measured_metrics", "run_compare", "run_group", "run_job", "with_overrides",
           "write_ladder", "write_profile", "write_reference"]


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
        if not fnet:  # cached on the CPU, run on train.device
            net = feature_net_for(dataset)
            fnet.append(net.to(resolve_device(cfg.train.device)) if net is not None else None)
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


# --------------------------------------------------------------------------- checks before any write

# Keys of METRIC_INFO that a generative run in a comparison never measures on images:
_VECTOR_ONLY = frozenset({"w1", "ks", "ks_pvalue", "swd", "high_quality"})  # vectors (metrics.evaluate)
_EVAL_ONLY = frozenset({"d_accuracy", "d_real_mean", "d_fake_mean"})  # the critic's, `losslab eval` only
_FULL_ONLY = frozenset({"feature_w1", "c2st_accuracy", "c2st_pvalue", "c2st_n_test"})  # evaluate(full=True)
_MODE_KEYS = frozenset({"modes_covered", "num_modes", "high_quality", "reverse_kl", "mode_counts"})


def measured_metrics(family: str, dataset, *, n_eval: int) -> frozenset[str]:
    """Names of the metrics a run of ``family`` on ``dataset`` records in its result.json.

    Derived from :data:`losslab.metrics.METRIC_INFO` and the rules of
    :func:`losslab.metrics.evaluate` (exact for vectors):

    - contrastive: the representation metrics (linear probe, kNN, alignment, ...);
      ``zero_shot`` only for CLIP, so it is included here;
    - generative on vectors (d,): ``w1``, ``ks``, ``ks_pvalue`` (d = 1); ``w1``
      (d = 2); ``swd`` and, when ``n_eval <= 2500``, ``w1`` (d > 2); the mode
      statistics when the data are a known mixture; ``n_eval``;
    - generative on images: every other metric of METRIC_INFO except the
      vector-only ones, the critic's (``losslab eval`` only) and those of
      ``evaluate(full=True)`` (an upper bound: class or mode keys depend on the data).
    """
    if family == "contrastive":
        return frozenset(METRIC_INFO_REPRESENTATION)
    if dataset.kind == "vector":
        d = math.prod(int(s) for s in dataset.shape)
        names = {"n_eval"}
        if d == 1:
            names |= {"w1", "ks", "ks_pvalue"}
        elif d == 2:
            names |= {"w1"}
        else:
            names |= {"swd"} | ({"w1"} if n_eval <= MAX_OT_SAMPLES else set())
        if getattr(dataset, "modes", None) is not None and getattr(dataset, "mode_std", None) is not None:
            names |= _MODE_KEYS
        return frozenset(names)
    return frozenset(set(METRIC_INFO) - set(METRIC_INFO_REPRESENTATION) - _VECTOR_ONLY - _EVAL_ONLY - _FULL_ONLY)


def check_metric(metric: str, losses: list[str], dataset, *, n_eval: int) -> None:
    """Refuse a ``--metric`` that cannot rank these losses on this data, before any training.

    Raises:
        UserError: an unknown name, a descriptive entry (a count or a name,
            ``higher_is_better`` None), or a metric that none of the losses'
            families measures on this data; the message lists the usable names.
    """
    measured: set[str] = set()
    for fam in dict.fromkeys(family_of(n) for n in losses):
        measured |= measured_metrics(fam, dataset, n_eval=n_eval)
    usable = sorted(m for m in measured if METRIC_INFO.get(m, {}).get("higher_is_better") is not None)
    choices = f"choose from: {', '.join(usable)}"
    if metric not in METRIC_INFO:
        raise UserError(f"--metric {metric!r} is not a losslab metric; {choices}")
    if METRIC_INFO[metric].get("higher_is_better") is None:
        raise UserError(f"--metric {metric!r} describes the evaluation and cannot rank losses; {choices}")
    if metric not in measured:
        raise UserError(f"--metric {metric!r} is not measured for {rundir.families_of(losses)} losses on "
                        f"{dataset.kind} data {dataset.name!r}; {choices}")


def check_family_data(cfg: Config, dataset, losses: list[str]) -> None:
    """Refuse a loss whose family cannot train or be evaluated on ``dataset``, before any write.

    Each loss's family builds its run state once (``init_state(cfg, dataset,
    loss, 0)``, the check every run makes first: contrastive losses need
    labelled images, CLIP class names, diffusion a valid schedule and sampler,
    every family a supported data shape and hyperparameters in range), with the
    global RNG restored afterwards; and a generative family on labelled images
    needs at least 2 classes to train the FID feature network's classifier
    (:func:`losslab.metrics.get_feature_net`; unlabelled images get a
    self-supervised SimCLR network instead).

    Raises:
        UserError: the family's own one-line message, prefixed with the loss.
    """
    from losslab.train.loop import FAMILIES

    for loss in losses:
        family = family_of(loss)
        if family != "contrastive" and dataset.kind == "image" and dataset.name != STACKED_NAME:
            labels = getattr(dataset, "train_labels", None)
            if labels is not None and int(torch.as_tensor(labels).max()) < 1:
                raise UserError(f"loss {loss}: the {family} family is evaluated by FID on a classifier's "
                                f"features, and {dataset.name!r} has a single class to train it on (put the "
                                "images in one subfolder per class, or all in one folder without classes)")
        try:
            with torch.random.fork_rng(devices=[]):
                FAMILIES[family].init_state(cfg, dataset, loss, 0)
        except UserError as e:
            raise UserError(f"loss {loss}: {e}") from None


def check_request(cfg: Config, dataset, losses: list[str], *, metric: str | None = None) -> None:
    """Every check of a comparison (or a single run) that needs no file: run it before writing any.

    :func:`losslab.config.check_batch_size`, :func:`check_family_data` and,
    when given, :func:`check_metric`.

    Raises:
        UserError: the first problem, one line.
    """
    check_batch_size(cfg, losses, dataset.kind)
    if metric is not None:
        check_metric(metric, losses, dataset, n_eval=cfg.train.n_eval)
    check_family_data(cfg, dataset, losses)


def _is_done(run_dir: Path) -> bool:
    """Whether a job's run directory holds a finished run; a corrupt result.json counts as not finished.

    A result.json that is not a readable JSON object is reported with a
    warning and the run is trained again (it resumes from its checkpoint), which
    rewrites it. A corrupt config.json is a UserError (train_run could not tell
    whether the directory holds this run).
    """
    path = run_dir / rundir.RESULT
    if path.exists():
        try:
            r = rundir.read_json_file(path)
        except UserError as e:
            warnings.warn(f"{e.args[0].split(';')[0]}; the run is trained again", stacklevel=2)
            return False
        if not isinstance(r, dict):
            warnings.warn(f"{path} is not a run result (not a JSON object); the run is trained again",
                          stacklevel=2)
            return False
        if r.get("status") in rundir.FINAL_STATUSES:
            return True
    cfg_path = run_dir / rundir.CONFIG
    if cfg_path.exists():
        c = rundir.read_json_file(cfg_path)
        if not isinstance(c, dict) or not isinstance(c.get("run"), dict):
            raise UserError(f"{cfg_path} is not a run configuration (a JSON object with 'run' expected); "
                            "delete it and rerun the same command to redo that run")
    return False


def _finished(out: Path, jobs: list[rundir.Job]) -> list[dict[str, Any]]:
    """The result.json of every job whose run finished (:func:`_is_done`; a corrupt one is not, with a warning)."""
    done = []
    for j in jobs:
        if _is_done(out / j.run_dir):
            r = rundir.read_json_file(out / j.run_dir / rundir.RESULT)
            done.append({**r, "loss": j.loss, "seed": j.seed})
    return done


def group_jobs(jobs: list[rundir.Job], cfg: Config, dataset) -> list[tuple[rundir.Job, ...]]:
    """The jobs as backend tasks: the seeds of a loss that trains batched as one tuple, others one by one.

    A loss's seeds go together when :func:`losslab.train.batched.batchable`
    says so (vector data, MLP critics / denoisers, ``train.batch_seeds`` on).
    """
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


def run_group(cfg: Config, out: str, group: tuple[rundir.Job, ...], progress: Callable[[int], None], *,
              overrides: dict[str, dict[str, Any]] | None = None) -> list[dict]:
    """The job function of a comparison: :func:`run_job` for one job, the batched seeds of one loss for several.

    ``overrides`` as in :func:`run_job` (one loss per group, so one setting for all its seeds).
    """
    if len(group) == 1:
        return [run_job(cfg, out, group[0], progress, overrides=overrides)]
    dataset = load_data(cfg)
    run_cfg = with_overrides(cfg, (overrides or {}).get(group[0].loss))
    return train_batched([Path(out) / j.run_dir for j in group], run_cfg, dataset, loss=group[0].loss,
                         seeds=[j.seed for j in group], family=group[0].family,
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


def write_profile(out: Path, dataset) -> dict[str, Any] | None:
    """``OUT/data_profile.json``: the data profile (:func:`losslab.data.profile.profile`, seed 0), once.

    A profile already there (a resumed comparison: the same data, compare.json
    refuses another) is kept; a missing or unreadable one is computed (a few
    seconds) and written atomically. Data the profile cannot describe (fewer
    than 10 training rows) gets no file and a warning: the verdict then
    states no expectations.

    Returns
    -------
    dict or None
        The profile, or None when there is none.
    """
    path = out / rundir.PROFILE
    if path.exists():
        try:
            old = rundir.read_json_file(path)
        except UserError:
            old = None
        if isinstance(old, dict) and old.get("name") == dataset.name:
            return old
    try:
        prof = profile_data(dataset, seed=0)
    except UserError as e:
        warnings.warn(f"no data profile: {e}", stacklevel=2)
        return None
    io.atomic_write_json(path, prof)
    return prof


LADDER_MAX_N = 2000
"""At most this many images per ladder rung (the run's ``n_eval`` otherwise): 7 + 10 sets of n images."""


def write_ladder(out: Path, dataset, feature_net, *, n: int, quiet: bool = True) -> dict[str, Any] | None:
    """Write ``OUT/ladder.json``: the feature network and the quality ladder's rungs in its space.

    The rungs (:func:`losslab.metrics.ladder.quality_ladder`) are measured with
    the runs' feature network, ``min(n, LADDER_MAX_N)`` images per set and the
    seed :data:`losslab.rundir.REFERENCE_SEED`, so the verdict can place each
    loss's FID among them. An existing file for the same feature network and
    ``n_eval`` is kept (a resumed comparison does not measure it again).

    Keys: ``feature_net`` (``name``, ``quality``: the SimCLR half's
    :func:`~losslab.metrics.features.ssl_quality` or null, ``test_accuracy`` of
    the classifier or null), ``n_eval`` (the images asked for), ``n`` (images
    per set: at most half the test split), ``seed``, ``seconds`` (wall time of
    the measurement) and ``rungs`` (the list of rung dicts).

    Returns the written (or kept) content, or None where no ladder applies:
    vectors, Stacked MNIST (its feature network reads digits per channel), or a
    dataset the ladder refuses (fewer than 4 test images or 2 classes; warned).
    """
    if feature_net is None or dataset.kind != "image" or dataset.name == STACKED_NAME:
        return None
    n = int(min(n, LADDER_MAX_N))
    name = getattr(feature_net, "name", type(feature_net).__name__)
    path = out / rundir.LADDER
    if path.exists():
        try:
            old = rundir.read_json_file(path)
        except UserError:
            old = None
        if isinstance(old, dict) and (old.get("feature_net") or {}).get("name") == name and old.get("n_eval") == n:
            return old
    t0 = time.perf_counter()
    try:
        rungs = quality_ladder(dataset, feature_net, n=n, seed=rundir.REFERENCE_SEED)
    except UserError as e:
        warnings.warn(f"no quality ladder: {e}", stacklevel=2)
        return None
    quality = getattr(feature_net, "quality", None)
    acc = getattr(feature_net, "test_accuracy", None)
    content = {"feature_net": {"name": name, "quality": dict(quality) if quality else None,
                               "test_accuracy": None if acc is None else float(acc)},
               "n_eval": n, "n": rungs[0]["n"], "seed": rundir.REFERENCE_SEED,
               "seconds": round(time.perf_counter() - t0, 3),
               "rungs": [{**r, "fid_range": list(r["fid_range"])} for r in rungs]}
    io.atomic_write_json(path, content)
    if not quiet:
        print(f"quality ladder: {len(rungs)} rungs of {rungs[0]['n']} images in {content['seconds']:.1f} s",
              file=sys.stderr)
    return content


def write_spec(out: Path, cfg: Config, dataset, *, losses: list[str], seeds: int,
               metric: str | None, seed_start: int = 0, search_trials: int | None = None,
               race_limits: race.Limits | None = None) -> dict[str, Any]:
    """Write ``OUT/compare.json`` (what was asked), merging losses and seeds into an existing one.

    Records ``seed_start`` (the final seeds are ``seed_start .. seed_start + seeds - 1``; for a race
    ``seeds`` is its cap), ``search`` (``--search``'s trials per loss, or None) and ``race``
    (:meth:`losslab.race.Limits.to_dict`, or None for a fixed design).

    Raises:
        UserError: ``out`` holds a comparison with another dataset, configuration,
            first seed or search, or a corrupt compare.json.
    """
    spec = {"family": rundir.families_of(losses), "data": cfg.data.name, "kind": dataset.kind,
            "shape": list(dataset.shape), "losses": losses, "seeds": seeds, "seed_start": seed_start,
            "search": search_trials, "metric": metric, "config": cfg.to_dict(),
            "race": race_limits.to_dict() if race_limits is not None else None}
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
        both_fixed = ((old.get("race") or {}).get("step", 0) == 0  # fixed designs (or one before the race)
                      and (spec["race"] or {}).get("step", 0) == 0)
        if old.get("race") != json.loads(io.dumps(spec["race"])) and not both_fixed:
            was = "a race" if old.get("race") else "a fixed design"
            raise UserError(f"{out} holds {was} with other seed limits; rerun it as it was started, "
                            "or use a new --out directory")
        spec["losses"] = list(dict.fromkeys(old.get("losses", []) + losses))
        spec["seeds"] = max(seeds, int(old.get("seeds", seeds)))
        if both_fixed and race_limits is not None:  # more seeds for a fixed design: one look at them all
            spec["race"] = race.fixed(spec["seeds"], race_limits.alpha, race_limits.delta).to_dict()
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
    backend: str = "local",
    address: str | None = None,
    report: bool = False,
    seed_start: int = 0,
    search_trials: int | None = None,
    race_limits: race.Limits | None = None,
) -> dict[str, Any]:
    """Run the (loss, seed) jobs the race asks for in ``out``, then the verdict (and the report).

    Everything that needs no file is checked first (:func:`check_request`), so
    a refused comparison writes nothing. Then, holding the lock on ``out``
    (:func:`losslab.rundir.lock_dir`), it removes the temp files an
    interrupted write left (:func:`losslab.io.clean_stale_temps`), writes
    compare.json, reference.npz and data_profile.json (:func:`write_profile`), trains the unfinished runs, writes
    results.json and, with ``report``, the report
    (:func:`losslab.report.build_report`). A run whose result.json is corrupt
    is trained again with a warning (see :func:`_is_done`).

    ``backend`` "local" (a process pool of ``workers``) or "ray" (Ray tasks: a
    local Ray of ``workers`` CPUs, or the cluster at ``address``; ``out`` must
    then be on storage every node shares), see :func:`losslab.backends.select`.

    Parameters
    ----------
    cfg : Config
        The resolved configuration; its budget is ``train.steps`` updates, or
        ``train.budget_seconds`` of training per run when set.
    losses, seeds, out, workers, quiet, metric
        What to compare, where, and how (see ``losslab compare --help``).
    seed_start : int
        The final runs train seeds ``seed_start .. seed_start + seeds - 1``.
    race_limits : losslab.race.Limits, optional
        Race the losses (:mod:`losslab.race`): every loss trains ``first`` seeds, then after each
        block the losses shown worse stop and the rest get ``step`` more, up to ``cap`` (``seeds``
        is then ignored). None: a fixed design of ``seeds`` seeds per loss (one look).
        Rerunning continues the race from the finished runs (:func:`losslab.race.decide`).
    search_trials : int, optional
        ``--search N``: first tune every loss with N equal-budget trials on
        seeds from :data:`losslab.search.TRIAL_SEED` (:func:`losslab.search.run_search`),
        then train the final seeds with each loss's best setting.

    Returns
    -------
    dict
        The content of ``OUT/results.json`` (:func:`losslab.verdict.aggregate`).

    Raises:
        UserError: ``out`` is in use by another losslab process, holds a
            comparison with another dataset, budget, first seed or search, or a
            corrupt compare.json or config.json; an unknown loss; a loss that
            cannot train on the data; a ``metric`` that these losses do not
            measure; ``seed_start`` < 0 or overlapping the trial seeds; an
            unknown backend, Ray missing, or ``out`` not visible on a Ray node.
    """
    if seed_start < 0:
        raise UserError(f"--seed-start must be >= 0, got {seed_start}")
    limits = race_limits if race_limits is not None else race.fixed(seeds)
    race.check_limits(limits)
    seeds = limits.cap
    if search_trials is not None and seed_start + seeds > search.TRIAL_SEED:
        raise UserError(f"with --search the final seeds must stay below the trial seeds ({search.TRIAL_SEED}); "
                        f"got --seed-start {seed_start} --seeds {seeds}")
    out = Path(out).absolute()  # the job function may run in another working directory or on another node
    run_jobs = backends.select(backend, address=address, num_cpus_per_task=cfg.train.threads,
                               shared_path=out / rundir.COMPARE if backend == "ray" else None)
    dataset = load_data(cfg)
    check_request(cfg, dataset, losses, metric=metric)
    if (out / rundir.COMPARE).exists():  # a corrupt or foreign compare.json: refused before any write
        old = rundir.read_json_file(out / rundir.COMPARE)
        if not isinstance(old, dict):
            raise UserError(f"{out / rundir.COMPARE} is not a losslab comparison; use a new --out directory")
    with rundir.lock_dir(out):
        io.clean_stale_temps(out)
        write_spec(out, cfg, dataset, losses=losses, seeds=seeds, metric=metric, seed_start=seed_start,
                   search_trials=search_trials, race_limits=limits)
        write_reference(out, dataset, cfg.train.n_eval)
        write_profile(out, dataset)  # before the jobs: the verdict reads it
        jobs = rundir.plan(losses, seeds, seed_start=seed_start)
        if dataset.kind == "image" and any(j.family != "contrastive" for j in jobs):
            fnet = feature_net_for(dataset, progress=not quiet)  # train once here, workers read the cache
            write_ladder(out, dataset, fnet, n=cfg.train.n_eval, quiet=quiet)

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
                                           advance=lambda n: bar.advance(stask, n), run_jobs=run_jobs)
                overrides = search.final_overrides(ledger)
            ranked = metric or primary_metric(dataset, family=rundir.families_of(losses))[0]
            higher = bool(METRIC_INFO.get(ranked, {}).get("higher_is_better", False))
            tried: set[str] = set()
            while True:  # one block of the race per pass; a fixed design is one block
                state = race.decide(race.run_values(_finished(out, jobs), ranked, higher), losses,
                                    seed_start=seed_start, limits=limits, out=out, metric=ranked)
                want = {(loss, s) for loss, ss in state["need"].items() for s in ss}
                todo = [j for j in jobs if (j.loss, j.seed) in want and not _is_done(out / j.run_dir)]
                todo = [j for j in todo if j.run_dir not in tried]  # a run that failed in this pass waits for a rerun
                if not todo:
                    break
                tried |= {j.run_dir for j in todo}
                n_look = max(s for _, s in want) - seed_start + 1
                task = bar.add_task(f"{len(todo)} runs, seeds up to {n_look} of {len(state['need'])} losses",
                                    total=None if per_run is None else len(todo) * per_run)
                died = run_jobs(partial(run_group, cfg, str(out), overrides=overrides),
                                group_jobs(todo, cfg, dataset), workers=workers,
                                advance=lambda n, task=task: bar.advance(task, n))
                for group, exc in died:  # the worker itself died: record it; the next compare retries the job
                    for job in group:
                        rundir.write_result(out / job.run_dir, {
                            "loss": job.loss, "seed": job.seed, "family": job.family, "status": "failed",
                            "error": f"{type(exc).__name__}: {exc}", "metrics": {}})
        results = aggregate(out, metric=metric)
        if report:
            from losslab.report import build_report

            build_report(out)
    return results
