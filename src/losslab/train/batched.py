"""Batched seeds: the K seeds of one loss trained together in one worker, as K members of one step.

Each family writes its update once, over a leading member axis
(:mod:`losslab.train.members`; ``fam.members(states)`` and
``fam.step_members``); a solo run is the same step with M = 1. This module is
only the orchestration of K run directories around that step: it builds each
seed's solo state (``init_state``, resumed from its checkpoint), makes them
members, runs the member step, and writes each seed's metrics, curve points,
snapshots, checkpoints, samples and result through the solo code into the
seed's own run directory, so ``losslab report``, ``eval`` and resume work
unchanged; a seed trained batched and the same seed trained alone agree to
float rounding (the stacked matrix products sum in another order).

What is batched (:func:`batchable`): vector data whose networks stack (each
family's ``stack_blocker``: GAN losses with a discriminator critic without
BatchNorm; the diffusion losses). Autoencoder critics (ebgan, began),
BatchNorm critics, images, the contrastive and EBM families take the
sequential path (one :func:`~losslab.train.loop.train_run` per seed, spread
over the workers), where the member step would only loop.

Quality curves and snapshots are batched: at
:func:`~losslab.train.loop.curve_steps` each active seed's slot is copied to
its solo state and measured there by :func:`~losslab.train.loop.curve_point`
and :func:`~losslab.train.loop.snapshot_point`, so a seed's curve and
pictures equal its solo run's (to float rounding). Time budgets
(``train.budget_seconds``) are not: they take the sequential path. A batched
seed's cost is a share of shared work, and what one second buys a seed would
then depend on K (more seeds, cheaper updates) and on whether its loss
happens to batch, so losses would get unequal numbers of updates for the same
budget and a seed's result would depend on how many seeds ran beside it. The
time budget is equal wall clock *per run*, measured with the run alone on its
worker; step budgets (the default) gain the whole speed-up and lose nothing.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from losslab import rundir
from losslab.config import Config
from losslab.errors import UserError
from losslab.models.ensemble import NotBatchable
from losslab.train.common import Diverged
from losslab.train.loop import (curve_point, curve_steps, curve_summary, get_family, run_config, save_checkpoint,
                                snapshot_point, train_run, try_resume)

__all__ = ["batchable", "train_batched"]


def batchable(cfg: Config, dataset, loss: str, family: str) -> str | None:
    """None when the seeds of ``loss`` train as one stacked ensemble, else why not (a short phrase).

    A time budget (``train.budget_seconds``) is never batched: it is equal
    wall clock per run, measured with the run alone (see the module's notes).

    Args:
        cfg: the resolved configuration (``train.batch_seeds``, ``train.budget_seconds``).
        dataset: the :class:`losslab.data.Dataset` (its ``kind``).
        loss, family: the loss and its family's name; the family's
            ``stack_blocker(cfg, dataset, loss)`` says whether its networks stack.
    """
    if not getattr(cfg.train, "batch_seeds", True):
        return "train.batch_seeds is off"
    if cfg.train.budget_seconds is not None:
        return "a time budget is measured per run (train.budget_seconds)"
    if dataset.kind != "vector":
        return "image data (convolutional networks)"
    blocker = getattr(get_family(family), "stack_blocker", None)
    if blocker is None:
        return f"the {family} family"
    return blocker(cfg, dataset, loss)


# ----------------------------------------------------------------------------- run directories


def train_batched(
    run_dirs: Sequence[str | Path],
    cfg: Config,
    dataset,
    *,
    loss: str,
    seeds: Sequence[int],
    family: str = "gan",
    evaluate: Callable[[Any, torch.Tensor], dict] | None = None,
    progress: Callable[[int], None] | None = None,
    curve_evaluate: Callable[[Any, torch.Tensor], dict] | None = None,
) -> list[dict[str, Any]]:
    """Train the seeds of one loss into their run directories, batched when possible.

    The run directories get exactly what :func:`~losslab.train.loop.train_run`
    writes (config.json, metrics.jsonl, curve.jsonl, checkpoints, samples,
    result.json with its ``curve``, ``curve_metric``, ``converged`` and
    ``budget``), each through the solo state of its seed. The quality curve
    is evaluated at the same updates as ``train_run``'s
    (:func:`~losslab.train.loop.curve_steps`), by
    :func:`~losslab.train.loop.curve_point` on the seed's solo state (its
    slot copied out first; the global torch RNG is restored around a point, so
    points never change the training). Falls back to one ``train_run`` per
    seed when :func:`batchable` says no, for a single seed, or when the seeds'
    checkpoints are at different updates.

    Clocks: the batch's training time (everything but the curve points and
    the final evaluations) is shared; each seed is charged 1/K of it.
    ``train_seconds`` of a seed is that share plus its own final evaluation,
    ``curve_seconds`` the time of its own curve points, ``wall_seconds`` their
    sum; a curve point's ``wall_seconds`` is the seed's ``train_seconds`` then.

    Args:
        run_dirs: one directory per seed.
        cfg, dataset, loss, family, evaluate, progress, curve_evaluate: as for ``train_run``.
        seeds: the seeds, in the order of ``run_dirs``.

    Returns:
        The K result dicts (also written to each ``result.json``).

    Raises:
        UserError: a run directory holds another configuration; a bad configuration.
    """
    run_dirs = [Path(r) for r in run_dirs]

    def sequential() -> list[dict[str, Any]]:
        return [train_run(rd, cfg, dataset, loss=loss, seed=s, family=family, evaluate=evaluate,
                          progress=progress, curve_evaluate=curve_evaluate) for rd, s in zip(run_dirs, seeds)]

    if len(seeds) < 2 or batchable(cfg, dataset, loss, family) is not None:
        return sequential()
    fam = get_family(family)
    torch.set_num_threads(cfg.train.threads)
    t0 = time.perf_counter()
    states, clock0, curves = [], [], []
    for rd, seed in zip(run_dirs, seeds):
        rd.mkdir(parents=True, exist_ok=True)
        rundir.write_config(rd, run_config(cfg, family=family, loss=loss, seed=seed, data_name=dataset.name))
        st = fam.init_state(cfg, dataset, loss, seed)
        clock0.append(try_resume(rd, fam, st))
        curves.append(rundir.read_curve(rd))
        states.append(st)
    try:
        ms = fam.members(states)
    except (NotBatchable, ValueError):
        return sequential()  # e.g. checkpoints at different updates: each resumes on its own
    g_updates = states[0].g_updates
    if progress and g_updates:
        progress(g_updates * ms.m)
    k, tc = ms.m, cfg.train
    curve_eval = curve_evaluate or evaluate
    positions = curve_steps(tc.steps, tc.curve_points)
    results: list[dict[str, Any] | None] = [None] * k
    pending: list[list[dict]] = [[] for _ in range(k)]
    curve_spent = [0.0] * k  # each seed's curve seconds in this session
    t_train: list[float] = []  # the batch's training seconds of this session, once training ends

    def shared() -> float:
        """The batch's training seconds in this session (curve points excluded), all seeds together."""
        return t_train[0] if t_train else time.perf_counter() - t0 - sum(curve_spent)

    def clock(i: int, extra: float = 0.0) -> dict[str, float]:
        """Seed i's clocks: its 1/K share of the batch's training time, its own curve points, ``extra``."""
        share = shared() / k + extra
        return {"wall_seconds": clock0[i]["wall_seconds"] + share + curve_spent[i],
                "train_seconds": clock0[i]["train_seconds"] + share,
                "curve_seconds": clock0[i]["curve_seconds"] + curve_spent[i]}

    def base(i: int) -> dict[str, Any]:
        return {"loss": loss, "seed": seeds[i], "family": family, "status": "failed", "error": None,
                "metrics": {}, "g_updates": 0, "d_updates": 0, "wall_seconds": 0.0, "diverged_at": None,
                "budget": {"steps": tc.steps}}

    def finish(i: int, res: dict[str, Any], extra: float = 0.0) -> None:
        rundir.append_metrics(run_dirs[i], pending[i])
        pending[i] = []
        res.update(clock(i, extra))
        res.update(curve_summary(curves[i], dataset, family, tc))
        rundir.write_result(run_dirs[i], res)
        results[i] = res

    def add_point(i: int) -> None:
        """Seed i's curve point and snapshot now (its slot is in ``states[i]``), as ``train_run``'s ``add_point``."""
        c = time.perf_counter()
        point = {"g_updates": g_updates, "wall_seconds": clock(i)["train_seconds"],
                 **curve_point(fam, states[i], dataset, cfg, curve_eval, seed=seeds[i])}
        rundir.append_curve(run_dirs[i], [point])
        curves[i].append(point)
        snap = snapshot_point(fam, states[i], dataset, seed=seeds[i])
        if snap is not None:
            rundir.append_snapshot(run_dirs[i], g_updates, snap)
        curve_spent[i] += time.perf_counter() - c

    def point_due(i: int) -> bool:
        n = len(curves[i])
        return n < len(positions) and g_updates >= positions[n]

    try:
        while g_updates < tc.steps and any(ms.active):
            step_no = g_updates + 1
            record = step_no == 1 or step_no % tc.log_every == 0 or step_no == tc.steps
            logs, diverged = fam.step_members(ms, dataset, tc.batch_size, record=record)
            g_updates = step_no
            for i, e in diverged.items():
                finish(i, {**base(i), "status": "diverged", "error": str(e), "diverged_at": e.step,
                           "g_updates": step_no - 1, "d_updates": states[i].d_updates})
            active = [i for i in range(k) if ms.active[i]]
            if record:
                for i in active:
                    pending[i].append({"step": step_no, "d_updates": states[i].d_updates, **logs[i],
                                       "wall": clock(i)["wall_seconds"]})
            if progress:
                progress(len(active))
            stored: set[int] = set()
            for i in active:
                if point_due(i):
                    ms.store(i)
                    stored.add(i)
                    add_point(i)
            if step_no % tc.checkpoint_every == 0 or step_no == tc.steps:
                for i in active:
                    if i not in stored:
                        ms.store(i)
                    rundir.append_metrics(run_dirs[i], pending[i])
                    pending[i] = []
                    save_checkpoint(run_dirs[i], fam, states[i], clock(i))
    except UserError:
        raise
    except Exception as e:  # a bug or a resource problem: every unfinished seed records it
        for i in range(k):
            if results[i] is None:
                ms.store(i)
                finish(i, {**base(i), "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8),
                           "g_updates": states[i].g_updates, "d_updates": states[i].d_updates})
        return results  # type: ignore[return-value]

    t_train.append(shared())
    # The end of every surviving seed, by the solo code on its solo state.
    for i in range(k):
        if results[i] is not None:
            continue
        ms.store(i)
        st, res = states[i], base(i)
        t1 = time.perf_counter()
        try:
            samples = fam.sample(st, tc.n_eval, seed=seeds[i])
            if not bool(torch.isfinite(samples).all()):
                raise Diverged(st.g_updates, "generated samples")
            rundir.write_samples(run_dirs[i], samples)
            if evaluate is not None:
                res["metrics"] = evaluate(dataset, samples)
            res["sampling_nfe"] = fam.nfe(st)
            if fam.artifacts is not None:
                fam.artifacts(st, dataset, run_dirs[i])
            res["status"] = "ok"
        except Diverged as e:
            res.update(status="diverged", error=str(e), diverged_at=e.step)
        except UserError:
            raise
        except Exception as e:
            res.update(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
        res.update(g_updates=st.g_updates, d_updates=st.d_updates)
        finish(i, res, extra=time.perf_counter() - t1)
    return results  # type: ignore[return-value]
