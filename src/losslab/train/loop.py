"""One model-agnostic training loop: config in, run directory out.

The loop calls a *family* (:class:`Family`: :mod:`losslab.train.gan`,
:mod:`losslab.train.diffusion`, :mod:`losslab.train.contrastive`,
:mod:`losslab.train.ebm`; the trainer named by its
:class:`~losslab.losses.families.FamilySpec`) and writes
the run directory through :mod:`losslab.rundir`, the one owner of its files:

- ``config.json`` (what was asked), ``metrics.jsonl`` (every ``log_every`` steps),
- ``curve.jsonl``: the quality curve, ``train.curve_points`` evaluations of the
  metrics spread over the budget (:func:`curve_point`, on ``train.curve_n``
  samples drawn with fixed seeds, so the points of a run and the runs of a
  seed are comparable),
- ``checkpoint.safetensors`` every ``checkpoint_every`` steps: weights,
  optimizer and RNG state and update counts in ONE atomically written file,
- ``snapshots.npz``: the family's :func:`snapshot_point` at each curve point
  (the report's pictures of how each loss learned),
- ``samples.npz`` (generative families) and ``result.json`` at the end,

so an interrupted run resumes from its last checkpoint and a finished run is
never trained again. A NaN/inf is recorded as ``status: "diverged"``.

The budget is ``train.steps`` generator updates, or with
``train.budget_seconds = S`` the wall clock: the run stops at the first
generator update after S seconds of *training* (time spent on curve points is
not counted; a resumed run counts the seconds its checkpoint had spent).
"""

from __future__ import annotations

import importlib
import math
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Protocol

import torch

from losslab import rundir
from losslab.config import Config
from losslab.convergence import is_converged
from losslab.provenance import made_from
from losslab.errors import UserError, unknown_choice
from losslab.losses import REGISTRIES
from losslab.losses.variants import base_name
from losslab.losses.families import FAMILY_SPECS
from losslab.metrics import METRIC_INFO, primary_metric
from losslab.metrics.representation import knn_accuracy, linear_probe_accuracy
from losslab.rundir import FINAL_STATUSES, RESULT, is_finished, run_config  # noqa: F401  (re-exported)
from losslab.train.common import Diverged, single_network_lr


class Family(Protocol):
    """What the loop (and ``losslab eval``) calls on a model family; a module implements it.

    A family's *state* is its own dataclass; the loop reads only its
    ``g_updates`` (the budget: generator / network updates) and ``d_updates``
    (critic updates; 0 for single-network families).

    Attributes:
        NAME: the family's name, a key of :data:`losslab.losses.REGISTRIES`.
        KEYS: the ``section.key`` config keys the family reads besides
            :data:`LOOP_KEYS` (for :func:`check_overrides`).
        evaluate: ``evaluate(state, dataset) -> metrics`` for families
            measured on the model itself (contrastive: linear probe, kNN), or
            None for generative families (measured on :meth:`sample`'s output).
        artifacts: ``artifacts(state, dataset, run_dir)`` writing the family's
            own run files for the report, or None.
        model_metrics: ``model_metrics(state, dataset, samples, *, n, seed) -> dict``,
            metrics of the trained model beside its samples' (GAN: the
            critic's accuracy) that ``losslab eval`` adds, or None.
        snapshot: ``snapshot(state, dataset, *, seed) -> dict[str, ndarray]``,
            the model at a curve point for the report's pictures of learning
            (:mod:`losslab.train.snapshot`; GAN: with its critic), or None.
    """

    NAME: str
    KEYS: frozenset[str]
    evaluate: Callable[[Any, Any], dict[str, Any]] | None
    artifacts: Callable[[Any, Any, Path], None] | None
    model_metrics: Callable[..., dict[str, Any]] | None
    snapshot: Callable[..., dict[str, Any]] | None

    def hparams(self, loss: Any, cfg: Config, dataset: Any) -> dict[str, Any]:
        """The loss's defaults merged with the user's overrides: the family's one resolution."""

    def init_state(self, cfg: Config, dataset: Any, loss: str, seed: int) -> Any:
        """Networks, optimizers and RNG of one (loss, seed) run."""

    def step(self, state: Any, data: Any, batch_size: int, *, record: bool) -> dict[str, float]:
        """One update (one generator / network update); diagnostics when ``record``."""

    def sample(self, state: Any, n: int, *, seed: int) -> torch.Tensor:
        """``n`` samples (generative) or representations (contrastive), drawn with ``seed``."""

    def nfe(self, state: Any) -> int:
        """Network evaluations per generated sample."""

    def state_dict(self, state: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON metadata) that restore the run exactly."""

    def load_state_dict(self, state: Any, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved into a state built by :meth:`init_state`."""


FAMILIES: dict[str, Family] = {name: importlib.import_module(spec.trainer) for name, spec in FAMILY_SPECS.items()}
"""A view of :data:`losslab.losses.families.FAMILY_SPECS`: family -> its trainer module."""

LOOP_KEYS: frozenset[str] = frozenset(
    {"data.name", "data.data_dir", "data.image_size", "data.n_train",
     "train.steps", "train.batch_size", "train.log_every", "train.checkpoint_every", "train.threads",
     "train.curve_points", "train.curve_n", "train.budget_seconds", "train.device", "train.batch_seeds"}
)
"""The config keys the loop (and the data loading) reads for every family."""


def get_family(name: str) -> Family:
    """The :class:`Family` module called ``name``.

    Raises:
        UserError: an unknown family.
    """
    try:
        return FAMILIES[name]
    except KeyError:
        raise unknown_choice("model family", name, FAMILIES) from None


def check_overrides(cfg: Config, families: Iterable[str], explicit: Collection[str] | Mapping[str, str]) -> None:
    """Refuse a config key the user set that no family of the comparison reads.

    Args:
        cfg: the resolved configuration (checked for ``loss.lr_g`` != ``loss.lr_d``
            when a single-network family is in the comparison).
        families: the families of the comparison's losses (e.g. from
            :func:`losslab.rundir.plan`'s jobs).
        explicit: the ``section.key`` names the user set (``--set`` and
            ``--config``; not a preset's), e.g. from
            :func:`losslab.config.explicit_keys`. A mapping gives each key's
            source for the message (default ``"--set"``).

    Raises:
        UserError: one line naming the first such key (in sorted order) and the
            families that would use it, e.g.
            ``--set loss.n_critic: not used by the diffusion family (used by: gan)``;
            or ``loss.lr_g`` and ``loss.lr_d`` differ for a single-network family.
    """
    fams = [f for f in dict.fromkeys(families)]
    for f in fams:
        get_family(f)
    for key in sorted(explicit):
        if key in LOOP_KEYS or any(key in FAMILIES[f].KEYS for f in fams):
            continue
        source = explicit[key] if isinstance(explicit, Mapping) else "--set"
        users = [name for name, fam in FAMILIES.items() if key in fam.KEYS]
        these = " or ".join(fams) + (" families" if len(fams) > 1 else " family")
        raise UserError(f"{source} {key}: not used by the {these} (used by: {', '.join(users) or 'no family'})")
    for f in fams:
        if FAMILY_SPECS[f].single_network:
            single_network_lr(cfg.loss, f)


# --------------------------------------------------------------------------- the quality curve

CONTRASTIVE_CURVE_TRAIN = 2000
"""Training images of a contrastive curve point's probes (the final evaluation uses up to 5,000)."""


def curve_steps(steps: int, points: int) -> list[int]:
    """The generator updates at which a run of ``steps`` updates evaluates its curve.

    ``round(k * steps / points)`` for k = 1..points (at least 1, duplicates
    dropped): evenly spread, the last at ``steps``. Empty when ``points`` is 0.
    """
    return sorted({max(1, round(k * steps / points)) for k in range(1, points + 1)}) if points > 0 else []


@torch.no_grad()
def _encoder_features(enc, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    was = enc.training
    enc.eval()
    dev = next(enc.parameters()).device  # on the encoder's device, returned on the CPU
    out = torch.cat([enc.features(x[i:i + batch].to(dev)).cpu() for i in range(0, len(x), batch)])
    enc.train(was)
    return out


def _contrastive_point(state, dataset, n: int, subset_seed: int = 0) -> dict[str, float]:
    """``linear_probe`` and ``knn`` of the encoder's h on fixed subsets (``subset_seed``) of ``n`` test and
    :data:`CONTRASTIVE_CURVE_TRAIN` train images: the final evaluation's probes on fewer rows."""
    g = torch.Generator().manual_seed(subset_seed)
    tr = torch.randperm(len(dataset.train), generator=g)[:CONTRASTIVE_CURVE_TRAIN]
    te = torch.randperm(len(dataset.test), generator=g)[:n]
    enc = state.model["image"]
    ftr, fte = _encoder_features(enc, dataset.train[tr]), _encoder_features(enc, dataset.test[te])
    ytr, yte = dataset.train_labels[tr], dataset.test_labels[te]
    return {"linear_probe": linear_probe_accuracy(ftr, ytr, fte, yte),
            "knn": knn_accuracy(ftr, ytr, fte, yte)}


def _scalars(m: dict) -> dict[str, float]:
    return {k: float(v) for k, v in m.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


CURVE_SECOND_DRAW = 1_000_000
"""A curve point's second, independent evaluation draws its samples with ``seed + CURVE_SECOND_DRAW``
(contrastive: its probe subsets with seed 1 instead of 0)."""


def curve_point(fam: Family, state, dataset, cfg: Config,
                evaluate: Callable[[Any, torch.Tensor], dict] | None, *, seed: int) -> dict[str, Any]:
    """The metrics of a run's model now: one point of its quality curve, with its evaluation error.

    Generative families: ``cfg.train.curve_n`` samples drawn with ``seed`` (the
    final evaluation's seed, so with ``curve_n == n_eval`` the last point equals
    the final metrics), measured by ``evaluate(dataset, samples)``. The
    contrastive family: :func:`_contrastive_point` (linear probe and kNN on
    ``curve_n`` test images; the full evaluation with its baselines would cost
    more than the budget allows for 8 points). Only numeric scalars are kept.
    The global torch RNG is restored afterwards, and warnings about the small
    sample are silenced, so a point never changes the training.

    The evaluation error: a second, independent evaluation of the same model
    (samples drawn with ``seed + CURVE_SECOND_DRAW`` against the same reference
    rows, which every point of a curve shares; contrastive: other probe
    subsets) gives ``eval_sd[metric] = |v1 - v2| / sqrt(2)``, the one-draw
    estimate of the standard deviation of a point's value (1 degree of
    freedom; :mod:`losslab.convergence` pools it over a curve's points).

    Args:
        fam: the run's family. state: its state. dataset: the run's data.
        cfg: the run's configuration. evaluate: the generative evaluator (None:
            no metrics for generative families). seed: the run's seed.

    Returns:
        ``{metric: value}``; ``{"finite": False}`` when the samples hold NaN/inf
        (the training loss did not, so the run goes on).
    """
    n = cfg.train.curve_n
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if fam.evaluate is not None:
            if getattr(dataset, "train_labels", None) is None:
                return {}
            m, m2 = _contrastive_point(state, dataset, n), _contrastive_point(state, dataset, n, subset_seed=1)
        else:
            samples = fam.sample(state, n, seed=seed)
            if not bool(torch.isfinite(samples).all()):
                return {"finite": False}
            m = evaluate(dataset, samples) if evaluate is not None else {}
            m2 = {}
            if evaluate is not None:
                again = fam.sample(state, n, seed=seed + CURVE_SECOND_DRAW)
                m2 = evaluate(dataset, again) if bool(torch.isfinite(again).all()) else {}
    point: dict[str, Any] = _scalars(m)
    second = _scalars(m2)
    sd = {k: abs(v - second[k]) / math.sqrt(2.0) for k, v in point.items()
          if k in second and METRIC_INFO.get(k, {}).get("higher_is_better") is not None}
    if sd:
        point["eval_sd"] = sd
    return point


def snapshot_point(fam: Family, state, dataset, *, seed: int) -> dict[str, Any] | None:
    """The family's snapshot of the model now (:mod:`losslab.train.snapshot`), or None when it has none.

    Like :func:`curve_point` it never changes the training: the global torch
    RNG is restored afterwards, the samples' latent codes come from ``seed``
    (the training stream is not drawn from), and no parameter keeps a gradient.
    Store the result with :func:`losslab.rundir.append_snapshot` at
    ``state.g_updates``. A snapshot that raises is skipped with a
    ``RuntimeWarning`` (None), so a picture never stops a run.
    """
    if getattr(fam, "snapshot", None) is None:
        return None
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fam.snapshot(state, dataset, seed=seed)
    except Exception as e:  # a picture must never stop the training it illustrates
        warnings.warn(f"snapshot at update {state.g_updates} skipped ({type(e).__name__}: {e})",
                      RuntimeWarning, stacklevel=2)
        return None



# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(run_dir: Path, fam: Family, state, clock: dict[str, float]) -> None:
    """Write ``state`` (the family's :meth:`~Family.state_dict`) and its clocks ``clock`` (``wall_seconds``,
    ``train_seconds``, ``curve_seconds``) as the run's one checkpoint file."""
    tensors, meta = fam.state_dict(state)
    meta.update(clock)
    rundir.save_checkpoint(run_dir, tensors, meta)


def try_resume(run_dir: Path, fam: Family, state) -> dict[str, float]:
    """Restore the last checkpoint into ``state`` if there is one; return its clocks (wall, train and curve
    seconds; zeros without one). metrics.jsonl and curve.jsonl keep only the rows up to the checkpoint
    (all of them are dropped without one): training produces the others again."""
    ck = rundir.load_checkpoint(run_dir)
    if ck is None:
        rundir.truncate_metrics(run_dir, None)
        rundir.truncate_curve(run_dir, None)
        rundir.truncate_snapshots(run_dir, None)
        return {"wall_seconds": 0.0, "train_seconds": 0.0, "curve_seconds": 0.0}
    tensors, meta = ck
    fam.load_state_dict(state, tensors, meta)
    rundir.truncate_metrics(run_dir, state.g_updates)  # rows after the checkpoint will be produced again
    rundir.truncate_curve(run_dir, state.g_updates)
    rundir.truncate_snapshots(run_dir, state.g_updates)
    wall = float(meta.get("wall_seconds", 0.0))
    return {"wall_seconds": wall, "train_seconds": float(meta.get("train_seconds", wall)),
            "curve_seconds": float(meta.get("curve_seconds", 0.0))}


def resolved_hparams(cfg: Config, dataset, family: str, loss: str) -> dict[str, Any]:
    """The run's loss hyperparameters after presets and overrides, as result.json's ``hparams`` records them.

    The family's own resolution (``hparams(spec, cfg, dataset)``), plus ``lr_scale``
    when the config sets one and the budget's ``steps`` and ``batch_size``; only
    JSON values (tuples become lists). The verdict and the report read it from
    result.json and never resolve a loss themselves.

    Raises:
        UserError: an unknown family or loss; a single-network family whose
            ``loss.lr_g`` and ``loss.lr_d`` differ.
    """
    base = base_name(loss)
    spec = REGISTRIES[family][base] if base in REGISTRIES.get(family, {}) else None
    if spec is None:
        raise unknown_choice(f"{family} loss", loss, REGISTRIES.get(family, {}))
    hp = dict(get_family(family).hparams(spec, cfg, dataset))
    if cfg.loss.lr_scale is not None:
        hp["lr_scale"] = cfg.loss.lr_scale
    hp["steps"], hp["batch_size"] = cfg.train.steps, cfg.train.batch_size
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()
            if v is None or isinstance(v, (int, float, str, bool, tuple, list))}


def train_run(
    run_dir: str | Path,
    cfg: Config,
    dataset,
    *,
    loss: str,
    seed: int,
    family: str = "gan",
    evaluate: Callable[[Any, torch.Tensor], dict] | None = None,
    progress: Callable[[int], None] | None = None,
    curve_evaluate: Callable[[Any, torch.Tensor], dict] | None = None,
) -> dict[str, Any]:
    """Train one (loss, seed) run into ``run_dir`` and return its result.json content.

    Args:
        run_dir: the run directory (created; resumed if it holds a checkpoint).
        cfg: the resolved configuration.
        dataset: a :class:`losslab.data.Dataset`.
        loss, seed, family: what to train.
        evaluate: ``evaluate(dataset, samples) -> metrics`` called at the end
            for generative families (a family with its own ``evaluate`` uses that).
        progress: called with the number of generator updates just done.
        curve_evaluate: the evaluator of the curve points (on ``train.curve_n``
            samples); default ``evaluate``.

    Returns:
        The result dict also written to ``run_dir/result.json``: status
        ``ok`` | ``diverged`` | ``failed``, metrics, update counts, wall seconds
        (``wall_seconds`` all of it; ``train_seconds`` without the curve points,
        whose cost is ``curve_seconds``), ``curve`` (the points of
        curve.jsonl: ``g_updates``, ``wall_seconds`` (training seconds at the
        point), metrics), ``curve_metric`` (the default primary metric) and
        ``converged`` (:func:`losslab.convergence.is_converged` on it; None
        when the curve cannot tell).

    Raises:
        UserError: ``run_dir`` holds a run of another configuration; a bad
            configuration found while building the run.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fam = get_family(family)
    rundir.write_config(run_dir, run_config(cfg, family=family, loss=loss, seed=seed, data_name=dataset.name,
                                  made_from=made_from(dataset)))

    torch.set_num_threads(cfg.train.threads)
    tc = cfg.train
    result: dict[str, Any] = {
        "loss": loss, "seed": seed, "family": family, "status": "failed", "error": None,
        "metrics": {}, "g_updates": 0, "d_updates": 0, "wall_seconds": 0.0, "diverged_at": None,
        "budget": {"seconds": tc.budget_seconds} if tc.budget_seconds is not None else {"steps": tc.steps},
    }
    state = None
    pending: list[dict] = []
    t0 = time.perf_counter()
    clock0 = {"wall_seconds": 0.0, "train_seconds": 0.0, "curve_seconds": 0.0}
    spent = [0.0]  # curve seconds of this session

    def clock() -> dict[str, float]:
        now = time.perf_counter() - t0
        return {"wall_seconds": clock0["wall_seconds"] + now,
                "train_seconds": clock0["train_seconds"] + now - spent[0],
                "curve_seconds": clock0["curve_seconds"] + spent[0]}

    curve_eval = curve_evaluate or evaluate
    positions = curve_steps(tc.steps, tc.curve_points)
    curve: list[dict] = []

    def add_point() -> None:
        c = time.perf_counter()
        train_s = clock()["train_seconds"]
        point = {"g_updates": state.g_updates, "wall_seconds": train_s,
                 **curve_point(fam, state, dataset, cfg, curve_eval, seed=seed)}
        rundir.append_curve(run_dir, [point])
        curve.append(point)
        snap = snapshot_point(fam, state, dataset, seed=seed)
        if snap is not None:
            rundir.append_snapshot(run_dir, state.g_updates, snap)
        spent[0] += time.perf_counter() - c

    def point_due() -> bool:
        if len(curve) >= tc.curve_points:
            return False
        if tc.budget_seconds is not None:
            return clock()["train_seconds"] * tc.curve_points >= (len(curve) + 1) * tc.budget_seconds
        return len(curve) < len(positions) and state.g_updates >= positions[len(curve)]

    def more() -> bool:
        if tc.budget_seconds is not None:  # "at the first update after S seconds": at least one update
            return state.g_updates < 1 or clock()["train_seconds"] < tc.budget_seconds
        return state.g_updates < tc.steps

    try:
        state = fam.init_state(cfg, dataset, loss, seed)
        result["hparams"] = resolved_hparams(cfg, dataset, family, loss)
        clock0 = try_resume(run_dir, fam, state)
        curve = rundir.read_curve(run_dir)
        t0 = time.perf_counter()  # the clocks count training (and curve points), not building the state
        saved = state.g_updates
        if progress and state.g_updates:
            progress(state.g_updates)
        while more():
            step_no = state.g_updates + 1
            record = step_no == 1 or step_no % tc.log_every == 0 or step_no == tc.steps
            log = fam.step(state, dataset, tc.batch_size, record=record)
            if record:
                log = {"step": step_no, "d_updates": state.d_updates, **log, "wall": clock()["wall_seconds"]}
                pending.append(log)
            if progress:
                progress(1)
            if point_due():
                add_point()
            if step_no % tc.checkpoint_every == 0:
                rundir.append_metrics(run_dir, pending)
                pending = []
                save_checkpoint(run_dir, fam, state, clock())
                saved = state.g_updates
        rundir.append_metrics(run_dir, pending)
        pending = []
        if tc.curve_points and (not curve or curve[-1]["g_updates"] != state.g_updates):
            add_point()  # a time budget ends between two due points: its last point is at the stop
        if state.g_updates != saved or tc.budget_seconds is not None:
            # A time budget: the checkpoint must hold the seconds that ended it (one saved at the last
            # update may be a hair under the budget, and a resume would train one update more).
            save_checkpoint(run_dir, fam, state, clock())
        if fam.evaluate is not None:
            # Representation families (contrastive) are measured on the model itself
            # (linear probe, kNN, ...), not on generated samples.
            result["metrics"] = fam.evaluate(state, dataset)
        else:
            samples = fam.sample(state, cfg.train.n_eval, seed=seed)
            if not bool(torch.isfinite(samples).all()):
                raise Diverged(state.g_updates, "generated samples")
            rundir.write_samples(run_dir, samples)
            if evaluate is not None:
                result["metrics"] = evaluate(dataset, samples)
        result["sampling_nfe"] = fam.nfe(state)
        if fam.artifacts is not None:  # e.g. diffusion's forward strip and reverse trajectory
            fam.artifacts(state, dataset, run_dir)
        result["status"] = "ok"
    except Diverged as e:
        rundir.append_metrics(run_dir, pending)
        result.update(status="diverged", error=str(e), diverged_at=e.step)
    except UserError:
        raise
    except Exception as e:  # a bug or a resource problem: record it, the comparison goes on
        result.update(status="failed", error=f"{type(e).__name__}: {e}",
                      traceback=traceback.format_exc(limit=8))
    if state is not None:
        result.update(g_updates=state.g_updates, d_updates=state.d_updates)
    result.update(clock())
    result.update(curve_summary(curve, dataset, family, tc))
    rundir.write_result(run_dir, result)
    return result


def curve_summary(curve: list[dict], dataset, family: str, tc) -> dict[str, Any]:
    """result.json's ``curve``, ``curve_metric`` and ``converged`` (on the budget's own axis).

    Args:
        curve: the run's curve points (curve.jsonl). dataset: its data (which
            primary metric). family: its family. tc: ``cfg.train`` (the budget).
    """
    try:
        metric, _ = primary_metric(dataset, family=family)
    except ValueError:
        return {"curve": curve, "curve_metric": None, "converged": None}
    higher = bool(METRIC_INFO.get(metric, {}).get("higher_is_better", False))
    if tc.budget_seconds is not None:
        conv = is_converged(curve, metric, higher, budget=tc.budget_seconds, axis="wall_seconds")
    else:
        conv = is_converged(curve, metric, higher, budget=tc.steps, axis="g_updates")
    return {"curve": curve, "curve_metric": metric, "converged": conv}
