"""One model-agnostic training loop: config in, run directory out.

The loop calls a *family* (a module with ``init_state``, ``step``, ``sample``,
``state_dict``, ``load_state_dict``; see :mod:`losslab.train.gan`). It writes

- ``config.json`` (what was asked), ``metrics.jsonl`` (every ``log_every`` steps),
- ``checkpoint.safetensors`` + ``checkpoint.json`` every ``checkpoint_every`` steps,
- ``samples.npz`` and ``result.json`` at the end,

so an interrupted run resumes from its last checkpoint and a finished run is
never trained again. A NaN/inf is recorded as ``status: "diverged"``.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save

from losslab import io
from losslab.config import Config
from losslab.errors import UserError
from losslab.train import contrastive, diffusion, gan
from losslab.train.steps import Diverged

# Model families: modules with init_state, step, sample, nfe, state_dict,
# load_state_dict (and optionally artifacts). Keys match losslab.losses.REGISTRIES.
FAMILIES = {"gan": gan, "diffusion": diffusion, "contrastive": contrastive}

RESULT = "result.json"
FINAL_STATUSES = ("ok", "diverged")


def run_config(cfg: Config, *, family: str, loss: str, seed: int, data_name: str) -> dict[str, Any]:
    # "run" says what was trained; the sections (data, model, train, loss, ...) how.
    return {"run": {"family": family, "loss": loss, "seed": seed, "data": data_name}, **cfg.to_dict()}


def is_finished(run_dir: str | Path) -> bool:
    """A run is finished when its result.json records ok or diverged."""
    p = Path(run_dir) / RESULT
    if not p.exists():
        return False
    try:
        return io.read_json(p).get("status") in FINAL_STATUSES
    except (OSError, ValueError):
        return False


def _save_checkpoint(run_dir: Path, fam, state, wall: float) -> None:
    tensors, meta = fam.state_dict(state)
    meta["wall_seconds"] = wall
    io.atomic_write_bytes(run_dir / "checkpoint.safetensors", save(tensors))
    io.atomic_write_json(run_dir / "checkpoint.json", meta)


def _try_resume(run_dir: Path, fam, state) -> float:
    """Restore the last checkpoint if there is one; return the wall seconds already spent."""
    ck, meta_p = run_dir / "checkpoint.safetensors", run_dir / "checkpoint.json"
    if not (ck.exists() and meta_p.exists()):
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        return 0.0
    meta = io.read_json(meta_p)
    fam.load_state_dict(state, load_file(str(ck)), meta)
    # Drop log rows written after the checkpoint: they will be produced again.
    rows = [r for r in io.read_jsonl(run_dir / "metrics.jsonl") if r.get("step", 0) <= state.g_updates]
    io.atomic_write_bytes(
        run_dir / "metrics.jsonl", "".join(io.dumps(r).replace("\n", "") + "\n" for r in rows).encode()
    )
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
        evaluate: ``evaluate(dataset, samples) -> metrics`` called at the end.
        progress: called with the number of generator updates just done.

    Returns:
        The result dict also written to ``run_dir/result.json``: status
        ``ok`` | ``diverged`` | ``failed``, metrics, update counts, wall seconds.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fam = FAMILIES[family]
    wanted = run_config(cfg, family=family, loss=loss, seed=seed, data_name=dataset.name)
    cfg_path = run_dir / "config.json"
    if cfg_path.exists() and io.read_json(cfg_path) != json.loads(io.dumps(wanted)):
        raise UserError(f"{run_dir} holds a run with a different configuration; use a new --out directory")
    io.atomic_write_json(cfg_path, wanted)

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
                io.append_jsonl(run_dir / "metrics.jsonl", pending)
                pending = []
                _save_checkpoint(run_dir, fam, state, wall0 + time.perf_counter() - t0)
        io.append_jsonl(run_dir / "metrics.jsonl", pending)
        if hasattr(fam, "evaluate"):
            # Representation families (contrastive) are measured on the model itself
            # (linear probe, kNN, ...), not on generated samples.
            result["metrics"] = fam.evaluate(state, dataset)
        else:
            samples = fam.sample(state, cfg.train.n_eval, seed=seed)
            if not bool(torch.isfinite(samples).all()):
                raise Diverged(state.g_updates, "generated samples")
            io.atomic_write_bytes(run_dir / "samples.npz", io.npz_bytes(samples=samples.numpy()))
            if evaluate is not None:
                result["metrics"] = evaluate(dataset, samples)
        result["sampling_nfe"] = fam.nfe(state)
        if hasattr(fam, "artifacts"):  # e.g. diffusion's forward strip and reverse trajectory
            fam.artifacts(state, dataset, run_dir)
        result["status"] = "ok"
    except Diverged as e:
        io.append_jsonl(run_dir / "metrics.jsonl", pending)
        result.update(status="diverged", error=str(e), diverged_at=e.step)
    except UserError:
        raise
    except Exception as e:  # a bug or a resource problem: record it, the comparison goes on
        result.update(status="failed", error=f"{type(e).__name__}: {e}",
                      traceback=traceback.format_exc(limit=8))
    if state is not None:
        result.update(g_updates=state.g_updates, d_updates=state.d_updates)
    result["wall_seconds"] = wall0 + time.perf_counter() - t0
    io.atomic_write_json(run_dir / RESULT, result)
    return result

