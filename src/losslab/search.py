"""``losslab compare --search N``: equal-budget tuning of every loss before the final ranking.

Each loss gets the same number of trials, ``N``, each with the same budget as
a final run (``train.steps`` or ``train.budget_seconds``), over the ranges it
declares (``search_space`` of its registry entry, :mod:`losslab.losses`),
after trial 0, which trains the loss's own default setting (``params`` ``{}``,
``defaults`` true, the values it had recorded as ``setting``): a tuned loss is
then never one whose defaults did better on the validation split than every
drawn setting (a draw of 4 learning rates can miss a good default by far).
Trial 0 is not told to the sampler (it is no draw from the space). Trial ``k`` trains seed ``TRIAL_SEED + k`` (disjoint from the final seeds,
which start at ``--seed-start``) into its own run directory
``OUT/search/<loss>/trial<k>/`` as an ordinary job of the backend's
``run_jobs``. Its value is the ranked metric of its result.json; a diverged
or failed trial is told to the sampler as failed. Then each loss's best
:data:`ELITES` settings (:func:`elites`, labelled ``LOSS[key=value,...]``,
:mod:`losslab.losses.variants`) race on the final seeds as candidates of
their own (:mod:`losslab.race`), and those are ranked (:mod:`losslab.compare`).

**Trials never see the test set.** A trial is trained on the data without a
validation split of its training rows and scored on that split
(:func:`validation_data`): its reference rows are the validation rows, and
for data with an exact sampler (the toys) another draw, seeded
:data:`VALIDATION_SEED` instead of :data:`losslab.rundir.REFERENCE_SEED`.
The final runs, and the ranking, use the test reference as always.

The sampler fits the number of trials (:func:`sampler_for`). Trials are
asked in rounds of :data:`ROUND` per loss before any of the round is told, so
with ``N <= ROUND`` no result is known when a trial is asked: that is random
search, and it is named so (Optuna's ``RandomSampler``). With more trials it
is Optuna's TPE (Bergstra et al. 2011, NeurIPS) with ``n_startup_trials =
min(10, max(ROUND, N // 2))`` random trials first (Optuna's default of 10
would leave N < 10 entirely random), driven
through the ask/tell interface in rounds of :data:`ROUND` trials per loss, so
a round of every loss runs in parallel on the pool. Trial ``k``'s sampler is
seeded with ``SAMPLER_SEED + k``, and rounds have a fixed size, so the trials
depend only on ``N`` and the trials before them, not on ``--workers`` nor on an
interruption: ``OUT/search/search.json`` records each trial's parameters
before it runs, so a resumed search reads finished trials back, reruns an
unfinished one with its recorded parameters (resuming its checkpoint) and
never trains a finished one again.

A search-space key is a ``loss.*`` config field, or ``"lr"`` which sets
``loss.lr_g`` and ``loss.lr_d`` to the same value (for the single-network
families, the network's rate). The best setting reaches the final runs as
candidate labels (:func:`elites`), whose settings :func:`losslab.compare.cfg_of`
applies, so each final run's config.json records it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
import torch

from losslab import io, rundir
from losslab.backends import run_jobs as local_run_jobs
from losslab.errors import UserError
from losslab.losses import REGISTRIES, family_of, variants
from losslab.losses.variants import base_name
from losslab.metrics import METRIC_INFO

__all__ = ["ELITES", "ROUND", "SAMPLER_SEED", "TRIAL_SEED", "VALIDATION_SEED", "TrialJob", "check_losses",
           "distributions", "elites",
           "n_startup_trials", "read_search", "run_search", "sampler_for", "search_space", "to_overrides",
           "validation_data"]

TRIAL_SEED = 10_000
"""Trial k trains seed ``TRIAL_SEED + k``: disjoint from the final seeds (``--seed-start`` < 10,000)."""

SAMPLER_SEED = 0
"""Trial k's TPE sampler is seeded with ``SAMPLER_SEED + k`` (the same for every loss)."""

ROUND = 4
"""Trials asked per loss before any of them is told (the parallel batch of one round)."""

ELITES = 2
"""Settings per loss that race on the final seeds after a search (:func:`elites`): its best two."""

VALIDATION_SEED = 54_321
"""Trials draw their reference with this seed (exact samplers) or from the validation rows; never the test one."""

VALIDATION_SHARE = 0.2
"""At most this share of the training rows (and at most the test split's size) is held out for validation."""


def validation_data(dataset: Any) -> Any:
    """The data a search trial sees: training rows minus a validation split, scored on that split.

    A copy of ``dataset`` whose ``test`` (and ``test_labels``) are ``m = min(len(test),
    VALIDATION_SHARE len(train))`` training rows drawn with :data:`VALIDATION_SEED`, and whose ``train``
    (and ``train_labels``) are the other training rows. The test split is never read. An exact
    sampler (toys) is kept: trials then draw fresh training batches and a reference of their own seed
    (:data:`VALIDATION_SEED`, set by the evaluator of :func:`losslab.compare.run_job`).

    Raises:
        UserError: fewer than 10 training rows (no validation split possible).
    """
    key = id(dataset)
    if key in _VALIDATION and _VALIDATION[key][0] is dataset:  # one copy per process (images: 100s of MB)
        return _VALIDATION[key][1]
    train = dataset.train
    n = len(train)
    m = min(len(dataset.test), int(VALIDATION_SHARE * n))  # the test split's size only, never its rows
    if n < 10 or m < 2:
        raise UserError(f"--search needs a validation split of the training data; {dataset.name!r} has {n} rows")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    val, rest = perm[:m], perm[m:]
    labels = dataset.train_labels
    out = dataclasses.replace(dataset, train=train[rest], test=train[val],
                              train_labels=None if labels is None else labels[rest],
                              test_labels=None if labels is None else labels[val])
    _VALIDATION.clear()
    _VALIDATION[key] = (dataset, out)
    return out


_VALIDATION: dict[int, tuple[Any, Any]] = {}


def n_startup_trials(trials: int) -> int:
    """TPE's random start-up for ``trials`` trials per loss: ``min(10, max(ROUND, trials // 2))``."""
    return min(10, max(ROUND, trials // 2))


def sampler_for(trials: int, k: int) -> tuple[optuna.samplers.BaseSampler, str]:
    """Trial ``k``'s sampler and its honest name: random search for ``trials <= ROUND`` (every trial is
    asked before any result is known), else TPE with :func:`n_startup_trials` random trials first."""
    if trials <= ROUND:
        return (optuna.samplers.RandomSampler(seed=SAMPLER_SEED + k),
                f"random search (optuna RandomSampler(seed={SAMPLER_SEED} + trial)): with {trials} <= {ROUND} "
                "trials per loss every trial is asked before any result is known")
    n0 = n_startup_trials(trials)
    return (optuna.samplers.TPESampler(seed=SAMPLER_SEED + k, n_startup_trials=n0),
            f"optuna TPESampler(seed={SAMPLER_SEED} + trial, n_startup_trials={n0}): the first {n0} trials "
            f"random, then TPE; rounds of {ROUND}")


@dataclass(frozen=True)
class TrialJob:
    """One search trial: a :class:`losslab.rundir.Job` with its own config overrides (picklable)."""

    loss: str
    seed: int
    run_dir: str
    family: str
    overrides: tuple[tuple[str, Any], ...]


def search_space(loss: str) -> dict[str, tuple]:
    """The ranges loss ``loss`` declares for tuning (its registry entry's ``search_space``).

    Raises:
        UserError: an unknown loss; a loss that declares no range.
    """
    space = dict(getattr(REGISTRIES[family_of(loss)][base_name(loss)], "search_space", {}) or {})
    if not space:
        raise UserError(f"loss {loss!r} declares no search space; --search cannot tune it")
    return space


def check_losses(losses: list[str]) -> None:
    """Refuse a search that cannot run, before anything is written: a candidate with settings of its own
    (``LOSS[...]``: the search tunes the loss itself, and its best settings become the candidates) or a
    loss that declares no range.

    Raises:
        UserError: one line naming the loss.
    """
    for loss in losses:
        if variants.is_variant(loss):
            raise UserError(f"--search tunes each loss and races its best settings; {loss!r} has settings of "
                            f"its own: give the plain name {base_name(loss)!r}")
        search_space(loss)


def distributions(space: dict[str, tuple]) -> dict[str, BaseDistribution]:
    """Optuna distributions of a search space: "log" and "float" -> FloatDistribution, "int" -> IntDistribution.

    Raises:
        ValueError: an unknown kind or lo > hi.
    """
    out: dict[str, BaseDistribution] = {}
    for key, (kind, lo, hi) in space.items():
        if lo > hi:
            raise ValueError(f"search range of {key}: lo {lo} > hi {hi}")
        if kind == "log":
            out[key] = FloatDistribution(float(lo), float(hi), log=True)
        elif kind == "float":
            out[key] = FloatDistribution(float(lo), float(hi))
        elif kind == "int":
            out[key] = IntDistribution(int(lo), int(hi))
        else:
            raise ValueError(f"search range of {key}: unknown kind {kind!r} (log, float, int)")
    return out


def to_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """``{"section.key": value}`` config overrides of a trial's parameters (``lr`` -> ``loss.lr_g`` and ``loss.lr_d``)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "lr":
            out["loss.lr_g"] = out["loss.lr_d"] = value
        else:
            out[key if "." in key else f"loss.{key}"] = value
    return out


def default_setting(res: dict | None, space: dict[str, tuple]) -> dict[str, Any]:
    """The values the search-space keys had in the default trial's run (its result.json ``hparams``).

    ``lr`` reads ``lr_g`` (the generator's rate; GAN losses) or ``lr`` (single-network families); a
    ``loss.*`` key its own field. Keys the result does not record are left out.
    """
    hp = (res or {}).get("hparams") or {}
    out: dict[str, Any] = {}
    for key in space:
        name = key.split(".", 1)[-1]
        v = hp.get("lr_g", hp.get("lr")) if key == "lr" else hp.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


def _trial_value(res: dict | None, metric: str) -> float | None:
    if not res or res.get("status") != "ok":
        return None
    v = (res.get("metrics") or {}).get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _best(trials: list[dict], higher: bool) -> dict | None:
    done = [t for t in trials if t.get("value") is not None]
    if not done:
        return None
    return (max if higher else min)(done, key=lambda t: t["value"])


def read_search(out: str | Path) -> dict[str, Any] | None:
    """``OUT/search/search.json``, or None when the comparison ran no search."""
    path = Path(out) / rundir.SEARCH / rundir.SEARCH_RESULTS
    return rundir.read_json_file(path) if path.exists() else None


def _write(out: Path, ledger: dict[str, Any]) -> None:
    io.atomic_write_json(out / rundir.SEARCH / rundir.SEARCH_RESULTS, ledger)


def run_search(job_fn: Callable[[Any, Callable[[int], None]], Any], *, losses: list[str], trials: int,
               out: str | Path, metric: str, workers: int = 1,
               advance: Callable[[int], None] = lambda n: None,
               run_jobs: Callable[..., list] = local_run_jobs) -> dict[str, Any]:
    """Tune every loss with ``trials`` trials of the same budget; write and return ``OUT/search/search.json``.

    Parameters
    ----------
    job_fn : callable
        ``job_fn(job, progress)``, the comparison's job function
        (:func:`losslab.compare.run_job` bound to its config and ``OUT``); it
        applies a :class:`TrialJob`'s own ``overrides``.
    losses : list of str
        The losses to tune; each must declare a ``search_space``.
    trials : int
        Trials per loss (>= 1).
    out : path
        The comparison directory.
    metric : str
        The ranked metric (its ``higher_is_better`` from ``METRIC_INFO`` sets the direction).
    workers : int
        Parallel jobs of the backend.
    advance : callable
        ``advance(n)``: n more updates done (progress).
    run_jobs : callable
        The comparison's backend (:func:`losslab.backends.select`): trials run
        on the same engine as the final runs (the local pool or Ray).

    Returns
    -------
    dict
        ``{"trials": N, "metric", "higher_is_better", "trial_seed", "sampler",
        "losses": {loss: {"space", "trials": [{"number", "seed", "run_dir",
        "params", "value", "status"}], "best_params", "best_value",
        "best_trial"}}}``, N + 1 trials per loss (trial 0 the defaults, with
        ``"defaults": true`` and ``"setting"``); ``best_params`` is ``{}`` (the loss's defaults) when
        trial 0 is the best or
        no trial finished.

    Raises
    ------
    UserError
        ``trials < 1``, a loss without search space, or ``OUT`` holds a search
        with another number of trials or metric.
    """
    if trials < 1:
        raise UserError(f"--search must be >= 1, got {trials}")
    out = Path(out)
    higher = bool(METRIC_INFO.get(metric, {}).get("higher_is_better", False))
    spaces = {loss: search_space(loss) for loss in losses}
    ledger = read_search(out) or {}
    if ledger and (ledger.get("trials") != trials or ledger.get("metric") != metric):
        raise UserError(f"{out} holds a search with {ledger.get('trials')} trials on {ledger.get('metric')}; "
                        "use a new --out directory")
    ledger.update(trials=trials, metric=metric, higher_is_better=higher, trial_seed=TRIAL_SEED,
                  sampler=sampler_for(trials, 0)[1], n_startup_trials=None if trials <= ROUND else
                  n_startup_trials(trials), validation_seed=VALIDATION_SEED,
                  scored_on=f"a validation split ({VALIDATION_SHARE:.0%} of the training rows at most, seed "
                            f"{VALIDATION_SEED}; exact samplers: a reference drawn with seed {VALIDATION_SEED}), "
                            "never the test reference of the final ranking")
    ledger.setdefault("losses", {})
    optuna.logging.set_verbosity(logging.WARNING)
    studies = {}
    live: dict[tuple[str, int], optuna.trial.Trial] = {}  # trials asked in this session, told after their run
    for loss in losses:
        entry = ledger["losses"].setdefault(loss, {"trials": []})
        entry["space"] = {k: list(v) for k, v in spaces[loss].items()}
        study = optuna.create_study(direction="maximize" if higher else "minimize")
        dists = distributions(spaces[loss])
        for t in entry["trials"]:  # finished trials are read back, unfinished ones asked again as recorded
            res = rundir.read_result(out / t["run_dir"])
            if res is not None and res.get("status") in rundir.FINAL_STATUSES:
                t["value"], t["status"] = _trial_value(res, metric), res["status"]
                if t.get("defaults"):  # not a draw from the space: the sampler is not told
                    t["setting"] = default_setting(res, spaces[loss])
                    continue
                study.add_trial(create_trial(
                    state=TrialState.COMPLETE if t["value"] is not None else TrialState.FAIL,
                    value=t["value"], params=t["params"], distributions=dists))
        studies[loss] = (study, dists)

    while True:
        batch: list[TrialJob] = []
        asked: dict[str, list[dict]] = {}
        for loss in losses:
            entry, (study, dists) = ledger["losses"][loss], studies[loss]
            todo = [t for t in entry["trials"] if t.get("status") not in rundir.FINAL_STATUSES]
            if not entry["trials"]:  # trial 0: the loss's own settings, so tuning can only match or beat them
                t = {"number": 0, "seed": TRIAL_SEED, "run_dir": f"{rundir.SEARCH}/{loss}/trial0", "params": {},
                     "defaults": True, "value": None, "status": "pending"}
                entry["trials"].append(t)
                todo.append(t)
            while (sum(not t.get("defaults") for t in todo) < ROUND
                   and sum(not t.get("defaults") for t in entry["trials"]) < trials):
                k = len(entry["trials"])
                study.sampler = sampler_for(trials, k)[0]
                trial = study.ask(dists)
                live[(loss, k)] = trial
                params = dict(trial.params)
                t = {"number": k, "seed": TRIAL_SEED + k, "run_dir": f"{rundir.SEARCH}/{loss}/trial{k}",
                     "params": params, "value": None, "status": "pending"}
                entry["trials"].append(t)
                todo.append(t)
            asked[loss] = todo
            batch += [TrialJob(loss, t["seed"], t["run_dir"], family_of(loss),
                               tuple(sorted(to_overrides(t["params"]).items()))) for t in todo]
        if not batch:
            break
        _write(out, ledger)  # the parameters are on disk before their runs start
        died = run_jobs(job_fn, batch, workers=workers, advance=advance)
        dead = {job.run_dir: exc for job, exc in died}
        for loss, todo in asked.items():
            study, dists = studies[loss]
            for t in todo:
                res = rundir.read_result(out / t["run_dir"])
                if t["run_dir"] in dead or res is None:
                    t["status"] = "failed"
                else:
                    t["status"] = res.get("status", "failed")
                t["value"] = _trial_value(res, metric)
                if t.get("defaults"):  # record what the defaults were (for the figure); the sampler is not told
                    t["setting"] = default_setting(res, spaces[loss])
                    continue
                state = TrialState.COMPLETE if t["value"] is not None else TrialState.FAIL
                trial = live.pop((loss, t["number"]), None)
                if trial is not None:
                    study.tell(trial, t["value"] if state == TrialState.COMPLETE else None, state=state)
                else:  # asked before an interruption: recorded parameters
                    study.add_trial(create_trial(state=state, value=t["value"], params=t["params"],
                                                 distributions=dists))

    for loss in losses:
        entry = ledger["losses"][loss]
        best = _best(entry["trials"], higher)
        entry["best_params"] = dict(best["params"]) if best else {}
        entry["best_value"] = best["value"] if best else None
        entry["best_trial"] = best["number"] if best else None
    _write(out, ledger)
    return ledger


def elites(ledger: dict[str, Any], losses: list[str], k: int = ELITES) -> list[str]:
    """The race's candidates after a search: per loss (in ``losses`` order) its ``k`` best settings on the
    validation split, best first, as labels (:func:`losslab.losses.variants.label`: the plain name for
    the defaults of trial 0, else ``LOSS[key=value,...]``); a loss without a finished trial keeps its
    defaults (its plain name).

    The final seeds then race the settings as irace races configurations (Lopez-Ibanez et al. 2016,
    Sec. 3): one validation seed per trial chose them, the race on paired final seeds decides between
    them, and the answer is "which loss is best at its own best settings?" (Lucic et al. 2018,
    arXiv:1711.10337, Sec. 5: equal tuning budget per loss).
    """
    higher = bool(ledger.get("higher_is_better"))
    out: list[str] = []
    for loss in losses:
        trials = (ledger.get("losses", {}).get(loss) or {}).get("trials") or []
        done = sorted((t for t in trials if t.get("value") is not None),
                      key=lambda t: (-t["value"] if higher else t["value"], t["number"]))
        labels: list[str] = []
        for t in done:
            lab = variants.label(loss, {} if t.get("defaults") else dict(t.get("params") or {}))
            if lab not in labels:
                labels.append(lab)
            if len(labels) == k:
                break
        out += labels or [loss]
    return out
