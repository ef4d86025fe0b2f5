"""One model-agnostic training loop: config in, run directory out.

The loop calls a *family* (:class:`Family`: :mod:`losslab.train.gan`,
:mod:`losslab.train.diffusion`, :mod:`losslab.train.contrastive`) and writes
the run directory through :mod:`losslab.rundir`, the one owner of its files:

- ``config.json`` (what was asked), ``metrics.jsonl`` (every ``log_every`` steps),
- ``checkpoint.safetensors`` every ``checkpoint_every`` steps: weights,
  optimizer and RNG state and update counts in ONE atomically written file,
- ``samples.npz`` (generative families) and ``result.json`` at the end,

so an interrupted run resumes from its last checkpoint and a finished run is
never trained again. A NaN/inf is recorded as ``status: "diverged"``.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Protocol

import torch

from losslab import rundir
from losslab.config import Config
from losslab.errors import UserError, unknown_choice
from losslab.rundir import FINAL_STATUSES, RESULT, is_finished, run_config  # noqa: F401  (re-exported)
from losslab.train import contrastive, diffusion, ebm, gan
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
    """

    NAME: str
    KEYS: frozenset[str]
    evaluate: Callable[[Any, Any], dict[str, Any]] | None
    artifacts: Callable[[Any, Any, Path], None] | None
    model_metrics: Callable[..., dict[str, Any]] | None

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


# Keys match losslab.losses.REGISTRIES.
FAMILIES: dict[str, Family] = {"gan": gan, "diffusion": diffusion, "contrastive": contrastive, "ebm": ebm}

LOOP_KEYS: frozenset[str] = frozenset(
    {"data.name", "data.data_dir", "data.image_size", "data.n_train",
     "train.steps", "train.batch_size", "train.log_every", "train.checkpoint_every", "train.threads"}
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
        if f != "gan":  # the single-network families
            single_network_lr(cfg.loss, f)


def _save_checkpoint(run_dir: Path, fam: Family, state, wall: float) -> None:
    tensors, meta = fam.state_dict(state)
    meta["wall_seconds"] = wall
    rundir.save_checkpoint(run_dir, tensors, meta)


def _try_resume(run_dir: Path, fam: Family, state) -> float:
    """Restore the last checkpoint if there is one; return the wall seconds already spent."""
    ck = rundir.load_checkpoint(run_dir)
    if ck is None:
        rundir.truncate_metrics(run_dir, None)
        return 0.0
    tensors, meta = ck
    fam.load_state_dict(state, tensors, meta)
    rundir.truncate_metrics(run_dir, state.g_updates)  # rows after the checkpoint will be produced again
    return float(meta.get("wall_seconds", 0.0))


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

    Returns:
        The result dict also written to ``run_dir/result.json``: status
        ``ok`` | ``diverged`` | ``failed``, metrics, update counts, wall seconds.

    Raises:
        UserError: ``run_dir`` holds a run of another configuration; a bad
            configuration found while building the run.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fam = get_family(family)
    rundir.write_config(run_dir, run_config(cfg, family=family, loss=loss, seed=seed, data_name=dataset.name))

    torch.set_num_threads(cfg.train.threads)
    result: dict[str, Any] = {
        "loss": loss, "seed": seed, "family": family, "status": "failed", "error": None,
        "metrics": {}, "g_updates": 0, "d_updates": 0, "wall_seconds": 0.0, "diverged_at": None,
    }
    state = None
    pending: list[dict] = []
    t0 = time.perf_counter()
    wall0 = 0.0
    try:
        state = fam.init_state(cfg, dataset, loss, seed)
        wall0 = _try_resume(run_dir, fam, state)
        if progress and state.g_updates:
            progress(state.g_updates)
        tc = cfg.train
        while state.g_updates < tc.steps:
            step_no = state.g_updates + 1
            record = step_no == 1 or step_no % tc.log_every == 0 or step_no == tc.steps
            log = fam.step(state, dataset, tc.batch_size, record=record)
            if record:
                log = {"step": step_no, "d_updates": state.d_updates, **log,
                       "wall": wall0 + time.perf_counter() - t0}
                pending.append(log)
            if progress:
                progress(1)
            if step_no % tc.checkpoint_every == 0 or step_no == tc.steps:
                rundir.append_metrics(run_dir, pending)
                pending = []
                _save_checkpoint(run_dir, fam, state, wall0 + time.perf_counter() - t0)
        rundir.append_metrics(run_dir, pending)
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
    result["wall_seconds"] = wall0 + time.perf_counter() - t0
    rundir.write_result(run_dir, result)
    return result
