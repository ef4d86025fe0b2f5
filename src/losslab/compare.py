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
import math
import shutil
import warnings
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from losslab import backends, provenance, race, rundir, search
from losslab.config import Config, apply_overrides, validate
from losslab.data import load_dataset
from losslab.data.checks import check_content
from losslab.errors import UserError
from losslab.losses import GAN_LOSSES, family_of, get_spec
from losslab.losses import variants
from losslab.losses.variants import base_name
from losslab.memory import check_sizes
from losslab.metrics import MAX_OT_SAMPLES, METRIC_INFO, evaluate, primary_metric
from losslab.metrics.features import STACKED_NAME
from losslab.metrics.representation import METRIC_INFO_REPRESENTATION
from losslab.metrics.features import get_feature_net
from losslab.noise_floor import write_noise_floor
from losslab.train.batched import batchable, train_batched
from losslab.train.common import resolve_device
from losslab.train.loop import train_run
from losslab.verdict import aggregate

__all__ = ["check_family_data", "check_metric", "check_request", "feature_net_for", "group_jobs", "load_data",
           "make_evaluator", "measured_metrics", "rebuild", "run_compare", "run_group", "run_job", "with_overrides",
           "check_rerun", "comparison_spec", "stale_runs"]


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


def make_evaluator(cfg: Config, dataset, *, n: int | None = None,
                   reference_seed: int = rundir.REFERENCE_SEED) -> Callable[[Any, torch.Tensor], dict]:
    """evaluate(dataset, samples) for generative families on ``n`` generated and ``n`` real samples
    (default ``train.n_eval``; the curve points use ``train.curve_n``), the real ones drawn with
    ``reference_seed`` (search trials: :data:`losslab.search.VALIDATION_SEED`); the feature net (of
    ``dataset``) loads on first use."""
    fnet: list = []
    n = cfg.train.n_eval if n is None else n

    def _eval(ds, samples):
        if not fnet:  # cached on the CPU, run on train.device
            net = feature_net_for(dataset)
            fnet.append(net.to(resolve_device(cfg.train.device)) if net is not None else None)
        return evaluate(ds, samples, generator=torch.Generator().manual_seed(reference_seed),
                        n=n, feature_net=fnet[0])

    return _eval


def with_overrides(cfg: Config, overrides: dict[str, Any] | None, *, source: str = "search") -> Config:
    """A copy of ``cfg`` with ``{"section.key": value}`` applied and checked (a candidate's or a trial's settings).

    Raises:
        UserError: an unknown key or a value outside the field's domain, the message led by ``source``.
    """
    if not overrides:
        return cfg
    tables: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        tables.setdefault(section, {})[name] = value
    out = apply_overrides(copy.deepcopy(cfg), tables, source)
    validate(out)
    return out


def cfg_of(cfg: Config, loss: str) -> Config:
    """The config candidate ``loss`` trains with: ``cfg`` with its variant's settings
    (``LOSS[key=value,...]``, :mod:`losslab.losses.variants`); ``cfg`` itself for a plain loss name.

    Raises:
        UserError: a malformed label, an unknown key or an out-of-domain value (naming the label).
    """
    settings = variants.parse(loss)[1]
    if not settings:
        return cfg
    try:
        return with_overrides(cfg, settings, source=f"loss {loss}")
    except UserError as e:
        raise UserError(str(e) if str(e).startswith(f"loss {loss}") else f"loss {loss}: {e}") from None


def run_job(cfg: Config, out: str, job: rundir.Job | search.TrialJob, progress: Callable[[int], None], *,
            overrides: dict[str, dict[str, Any]] | None = None) -> dict:
    """The job function of a comparison: train and evaluate one (loss, seed) run into its directory.

    Runs the same in this process or in a worker of any backend; ``progress(n)``
    reports n more updates of the budget. ``overrides`` maps a loss to
    ``{"section.key": value}`` settings of that loss only (``--search``'s best
    settings); a job with its own ``overrides`` (a search trial,
    :class:`losslab.search.TrialJob`) uses those. They are applied to the
    run's config, so its config.json records them. A search trial trains and is scored on
    :func:`losslab.search.validation_data` with the reference seed
    :data:`losslab.search.VALIDATION_SEED`: it never reads the test reference.
    """
    dataset = load_data(cfg)
    own = getattr(job, "overrides", None)
    run_cfg = with_overrides(cfg_of(cfg, job.loss), dict(own) if own else (overrides or {}).get(job.loss))
    data, ref = dataset, rundir.REFERENCE_SEED
    if isinstance(job, search.TrialJob):
        data, ref = search.validation_data(dataset), search.VALIDATION_SEED
    return train_run(Path(out) / job.run_dir, run_cfg, data, loss=job.loss, seed=job.seed, family=job.family,
                     evaluate=make_evaluator(run_cfg, dataset, reference_seed=ref), progress=progress,
                     curve_evaluate=make_evaluator(run_cfg, dataset, n=run_cfg.train.curve_n, reference_seed=ref))


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
    if not get_spec(family).generates:  # measured on the model itself (contrastive)
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
        if get_spec(family).generates and dataset.kind == "image" and dataset.name != STACKED_NAME:
            labels = getattr(dataset, "train_labels", None)
            if labels is not None and int(torch.as_tensor(labels).max()) < 1:
                raise UserError(f"loss {loss}: the {family} family is evaluated by FID on a classifier's "
                                f"features, and {dataset.name!r} has a single class to train it on (put the "
                                "images in one subfolder per class, or all in one folder without classes)")
        try:
            with torch.random.fork_rng(devices=[]):
                FAMILIES[family].init_state(cfg_of(cfg, loss), dataset, loss, 0)
        except UserError as e:
            raise UserError(f"loss {loss}: {e}") from None


def check_batch_size(cfg: Config, losses: list[str], kind: str) -> None:
    """``train.batch_size >= 2`` wherever a network of ``losses`` uses BatchNorm.

    BatchNorm in training mode needs more than one value per channel: a GAN critic
    whose ``critic_norm`` (the user's, else the loss's default) is "batch", and the
    image GAN generator (DCGAN-style BatchNorm, :mod:`losslab.models.conv`).

    Parameters
    ----------
    cfg : Config
        The resolved config.
    losses : list of str
        Loss names (any registry); unknown names are left to the caller's check.
    kind : str
        "vector" or "image".

    Raises
    ------
    UserError
        ``train.batch_size = 1: must be >= 2 for loss NAME (BatchNorm ...)``.
    """
    if cfg.train.batch_size >= 2:
        return
    for name in losses:
        spec = GAN_LOSSES.get(base_name(name))
        if spec is None:
            continue
        norm = cfg_of(cfg, name).loss.critic_norm or spec.defaults.get("critic_norm", "none")
        if norm == "batch" or kind == "image":
            where = "critic" if norm == "batch" else "image generator"
            raise UserError(
                f"train.batch_size = {cfg.train.batch_size}: must be >= 2 for loss {name} "
                f"(its {where} uses BatchNorm, which needs more than one sample per batch)"
            )


def check_request(cfg: Config, dataset, losses: list[str], *, metric: str | None = None) -> None:
    """Every check of a comparison (or a single run) that needs no file: run it before writing any.

    :func:`losslab.data.checks.check_content` (its warnings go to ``warnings.warn``),
    :func:`check_batch_size`, :func:`check_family_data` and,
    when given, :func:`check_metric`.

    Raises:
        UserError: the first problem, one line.
    """
    for w in check_content(dataset, batch_size=cfg.train.batch_size):  # refusals raise; oddities warn
        warnings.warn(f"data {dataset.name!r}: {w}", stacklevel=2)
    check_sizes(cfg, dataset, device=str(resolve_device(cfg.train.device)))  # before any allocation
    check_batch_size(cfg, losses, dataset.kind)
    if metric is not None:
        check_metric(metric, losses, dataset, n_eval=cfg.train.n_eval)
    check_family_data(cfg, dataset, losses)


def _finished(out: Path, jobs: list[rundir.Job]) -> list[dict[str, Any]]:
    """The result.json of every job whose run finished (:func:`losslab.rundir.is_finished`; a corrupt one is not, with a warning)."""
    done = []
    for j in jobs:
        if rundir.is_finished(out / j.run_dir):
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
        if len(js) > 1 and batchable(cfg_of(cfg, loss), dataset, loss, js[0].family) is None:
            out.append(tuple(js))
        else:
            out.extend((j,) for j in js)
    # The most expensive first (longest processing time first, Graham 1969): a block of the race ends when its
    # last task does, and a costly group started last would leave the other workers idle while it runs.
    return sorted(out, key=lambda g: -len(g) * _relative_cost(g[0].loss, cfg_of(cfg, g[0].loss)))


def _relative_cost(loss: str, cfg: Config) -> float:
    """A rough cost of one run of ``loss`` per generator update, for ordering tasks only: a GAN loss's
    critic updates per generator update + 1, doubled with a gradient penalty (a second backward); 1 else."""
    spec = GAN_LOSSES.get(base_name(loss))
    if spec is None:
        return 1.0
    n_critic = cfg.loss.n_critic if cfg.loss.n_critic is not None else spec.defaults.get("n_critic", 1)
    return (n_critic + 1) * (2.0 if spec.penalty else 1.0)


def run_group(cfg: Config, out: str, group: tuple[rundir.Job, ...], progress: Callable[[int], None], *,
              overrides: dict[str, dict[str, Any]] | None = None) -> list[dict]:
    """The job function of a comparison: :func:`run_job` for one job, the batched seeds of one loss for several.

    ``overrides`` as in :func:`run_job` (one loss per group, so one setting for all its seeds).
    """
    if len(group) == 1:
        return [run_job(cfg, out, group[0], progress, overrides=overrides)]
    dataset = load_data(cfg)
    run_cfg = with_overrides(cfg_of(cfg, group[0].loss), (overrides or {}).get(group[0].loss))
    return train_batched([Path(out) / j.run_dir for j in group], run_cfg, dataset, loss=group[0].loss,
                         seeds=[j.seed for j in group], family=group[0].family,
                         evaluate=make_evaluator(run_cfg, dataset), progress=progress,
                         curve_evaluate=make_evaluator(run_cfg, dataset, n=run_cfg.train.curve_n))


# --------------------------------------------------------------------------- the comparison directory

def comparison_spec(cfg: Config, dataset, *, losses: list[str], seeds: int, metric: str | None,
                    seed_start: int = 0, search_trials: int | None = None) -> dict[str, Any]:
    """The compare.json of a request: what was asked and what it is made from (:mod:`losslab.provenance`)."""
    return {"family": rundir.families_of(losses), "data": cfg.data.name, "kind": dataset.kind,
            "shape": list(dataset.shape), "losses": losses, "seeds": seeds, "seed_start": seed_start,
            "search": search_trials, "metric": metric, "config": cfg.to_dict(),
            "made_from": provenance.made_from(dataset)}


def check_rerun(out: Path, spec: dict[str, Any], *, redo_changed: bool = False) -> list[str]:
    """Refuse a request that differs from the comparison already in ``out``; nothing is written.

    Returns:
        What changed (empty for a new or an identical comparison); with
        ``redo_changed`` the caller redoes the runs instead of refusing.

    Raises:
        UserError: ``out`` holds a comparison of other data, data contents,
            settings or losslab version (one line naming the first changes),
            another first seed or search, or a corrupt compare.json.
    """
    path = out / rundir.COMPARE
    if not path.exists():
        return []
    old = rundir.read_json_file(path)
    if not isinstance(old, dict):
        raise UserError(f"{path} is not a losslab comparison; use a new --out directory")
    if int(old.get("seed_start", 0)) != spec["seed_start"]:
        raise UserError(f"{out} holds a comparison whose seeds start at {old.get('seed_start', 0)}, not "
                        f"{spec['seed_start']}; use a new --out directory")
    if old.get("search") != spec["search"]:
        raise UserError(f"{out} holds a comparison with --search {old.get('search')}, not {spec['search']}; "
                        "use a new --out directory")
    changes = provenance.spec_changes(old, spec)
    if changes and not redo_changed:
        raise UserError(f"{out} holds a comparison made from other inputs: {'; '.join(changes)} changed; use a "
                        "new --out directory, or --redo-changed to train its runs again")
    return changes


def stale_runs(out: Path, cfg: Config, dataset, jobs: list[rundir.Job]) -> dict[str, dict[str, Any]]:
    """``{run_dir: the config.json it would get now}`` for the jobs whose directory records something else."""
    mf = provenance.made_from(dataset)
    stale = {}
    for j in jobs:
        want = rundir.run_config(cfg_of(cfg, j.loss), family=j.family, loss=j.loss, seed=j.seed,
                                 data_name=dataset.name, made_from=mf)
        if provenance.run_changes(out / j.run_dir, want):
            stale[j.run_dir] = want
    return stale


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
    redo_changed: bool = False,
    checked: bool = False,
    race_limits: race.Limits | None = None,
) -> dict[str, Any]:
    """Run the (loss, seed) jobs the race asks for in ``out``, then the verdict (and the report).

    Everything that needs no file is checked first (:func:`check_request`), so
    a refused comparison writes nothing. Then, holding the lock on ``out``
    (:func:`losslab.rundir.lock_dir`), it removes the temp files an
    interrupted write left (:func:`losslab.rundir.clean_temps`), writes
    compare.json, reference.npz and data_profile.json (:func:`write_profile`), trains the unfinished runs, writes
    results.json and, with ``report``, the report
    (:func:`losslab.report.build_report`). A run whose result.json is corrupt
    is trained again with a warning (see :func:`losslab.rundir.is_finished`).

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
    redo_changed : bool
        ``out`` holds a comparison or runs made from other data, settings or
        losslab version (:mod:`losslab.provenance`): train those runs again
        instead of refusing.
    race_limits : losslab.race.Limits, optional
        Race the losses (:mod:`losslab.race`): every loss trains ``first`` seeds, then after each
        block the losses shown worse stop and the rest get ``step`` more, up to ``cap`` (``seeds``
        is then ignored). None: a fixed design of ``seeds`` seeds per loss (one look).
        Rerunning continues the race from the finished runs (:func:`losslab.race.decide`).
    search_trials : int, optional
        ``--search N``: first tune every loss with N equal-budget trials on
        seeds from :data:`losslab.search.TRIAL_SEED` (:func:`losslab.search.run_search`),
        then train the final seeds with each loss's best setting.
    checked : bool
        The caller already ran :func:`check_request` on ``cfg`` and ``losses``
        (:func:`losslab.api.prepare` does): it is not run twice.

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
    if search_trials is not None:
        search.check_losses(losses)
    if search_trials is not None and seed_start + seeds > search.TRIAL_SEED:
        raise UserError(f"with --search the final seeds must stay below the trial seeds ({search.TRIAL_SEED}); "
                        f"got --seed-start {seed_start} --seeds {seeds}")
    out = rundir.check_out(out)  # absolute: the job function may run in another working directory or node
    run_jobs = backends.select(backend, address=address, num_cpus_per_task=cfg.train.threads,
                               shared_path=out / rundir.COMPARE if backend == "ray" else None)
    _dataset.cache_clear()  # a file edited since an earlier comparison in this process is read again
    dataset = load_data(cfg)
    if not checked:
        check_request(cfg, dataset, losses, metric=metric)
    # A corrupt or foreign compare.json, or one made from other inputs: refused before any write.
    changed = check_rerun(out, comparison_spec(cfg, dataset, losses=losses, seeds=seeds, metric=metric,
                                               seed_start=seed_start, search_trials=search_trials),
                          redo_changed=redo_changed)
    if search_trials is None:
        stale = stale_runs(out, cfg, dataset, rundir.plan(losses, seeds, seed_start=seed_start))
    else:  # tuned runs record the search's settings, not cfg's: a changed --search comparison is redone whole
        stale = {j.run_dir: None for j in rundir.plan(losses, seeds, seed_start=seed_start)} if changed else {}
    if stale and not redo_changed:
        rd = next(iter(stale))
        raise UserError(f"{out / rd} was made from other inputs: "
                        f"{'; '.join(provenance.run_changes(out / rd, stale[rd]))} changed; use a new --out "
                        "directory, or --redo-changed to train the changed runs again")
    with rundir.lock_dir(out):
        rundir.clean_temps(out)
        rundir.write_spec(out, cfg, dataset, losses=losses, seeds=seeds, metric=metric, seed_start=seed_start,
                          search_trials=search_trials, made_from=provenance.made_from(dataset),
                          race_limits=limits, replace=bool(changed))
        if redo_changed:
            if search_trials is not None and changed and (out / rundir.SEARCH).is_dir():
                shutil.rmtree(out / rundir.SEARCH)  # its trials ran under the old settings
            redone = provenance.redo_changed_runs(out, stale)
            if redone:
                warnings.warn(f"--redo-changed: training {len(redone)} run(s) again: {', '.join(redone)}",
                              stacklevel=2)
        rundir.write_reference(out, dataset, cfg.train.n_eval)
        rundir.write_profile(out, dataset, notes=check_content(dataset, batch_size=cfg.train.batch_size))
        jobs = rundir.plan(losses, seeds, seed_start=seed_start)
        if dataset.kind == "image" and any(get_spec(j.family).generates for j in jobs):
            fnet = feature_net_for(dataset, progress=not quiet)  # train once here, workers read the cache
            rundir.write_ladder(out, dataset, fnet, n=cfg.train.n_eval, quiet=quiet)
        if any(get_spec(j.family).generates for j in jobs):  # a perfect generator's scores (losslab.noise_floor)
            write_noise_floor(out, dataset, evaluate=make_evaluator(cfg, dataset), n=cfg.train.n_eval,
                              curve_evaluate=make_evaluator(cfg, dataset, n=cfg.train.curve_n),
                              curve_n=cfg.train.curve_n if cfg.train.curve_points else None, quiet=quiet)

        per_run = None if cfg.train.budget_seconds is not None else cfg.train.steps  # None: a time budget
        columns = (TextColumn("[bold]compare[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("updates"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, disable=quiet, transient=False) as bar:
            if search_trials is not None:
                ranked = metric or primary_metric(dataset, family=rundir.families_of(losses))[0]
                stask = bar.add_task(f"search: {search_trials} trials x {len(losses)} losses",
                                     total=None if per_run is None else search_trials * len(losses) * per_run)
                ledger = search.run_search(partial(run_job, cfg, str(out)), losses=losses, trials=search_trials,
                                           out=out, metric=ranked, workers=workers,
                                           advance=lambda n: bar.advance(stask, n), run_jobs=run_jobs)
                losses = search.elites(ledger, losses)  # each loss's best settings race as candidates
                rundir.write_candidates(out, losses)
                jobs = rundir.plan(losses, seeds, seed_start=seed_start)
            ranked = metric or primary_metric(dataset, family=rundir.families_of(losses))[0]
            higher = bool(METRIC_INFO.get(ranked, {}).get("higher_is_better", False))
            tried: set[str] = set()
            while True:  # one block of the race per pass; a fixed design is one block
                state = race.decide(race.run_values(_finished(out, jobs), ranked, higher), losses,
                                    seed_start=seed_start, limits=limits, out=out, metric=ranked)
                want = {(loss, s) for loss, ss in state["need"].items() for s in ss}
                todo = [j for j in jobs if (j.loss, j.seed) in want and not rundir.is_finished(out / j.run_dir)]
                todo = [j for j in todo if j.run_dir not in tried]  # a run that failed in this pass waits for a rerun
                if not todo:
                    break
                tried |= {j.run_dir for j in todo}
                n_look = max(s for _, s in want) - seed_start + 1
                task = bar.add_task(f"{len(todo)} runs, seeds up to {n_look} of {len(state['need'])} losses",
                                    total=None if per_run is None else len(todo) * per_run)
                died = run_jobs(partial(run_group, cfg, str(out)),
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

            build_report(out, workers=min(workers, backends.default_workers()))  # drawn on this machine
    return results


def rebuild(out_dir: str | Path) -> dict[str, Path]:
    """``losslab report OUT``: results.json and the report again, from the run directories alone.

    Holds :func:`losslab.rundir.lock_dir` on ``OUT`` throughout and first
    removes the temp files of interrupted writes (:func:`losslab.rundir.clean_temps`),
    then runs :func:`losslab.verdict.aggregate` and :func:`build_report`.

    Returns
    -------
    dict
        :func:`losslab.report.report_paths`.

    Raises
    ------
    UserError
        ``OUT`` is not a directory, is in use by another losslab process, or
        holds a missing or corrupt comparison file (one line naming it).
    """
    from losslab.report import build_report  # as in run_compare: workers never load the plotting

    out = Path(out_dir)
    if not out.is_dir():
        raise UserError(f"no such directory: {out}")
    if not (out / rundir.COMPARE).is_file() and not (out / rundir.RUNS).is_dir():  # before the lock file is made
        raise UserError(f"{out} is not a losslab comparison ({rundir.COMPARE} and {rundir.RUNS}/ missing); give "
                        "the --out of a losslab compare")
    with rundir.lock_dir(out):
        rundir.clean_temps(out)
        aggregate(out)
        return build_report(out, workers=backends.default_workers())
