"""The run directory and the comparison directory: the one owner of their files.

Every module that writes or reads a run goes through this one: the training
loop writes a run, ``compare`` plans jobs and checks which are finished, the
verdict and the report read runs back, ``losslab eval`` restores one. No other
module spells a file name of a run directory.

Layout::

    OUT/                          a comparison (losslab compare --out OUT)
      compare.json                what was asked: data, losses, seeds, config      (compare)
      reference.npz               real samples (and true modes / density) for the report (compare)
      data_profile.json           what the data is like: modes, separation, intrinsic dim, tails (compare)
      ladder.json                 image data, generative losses: the feature net and the quality
                                  ladder's rungs in its space (compare)
      results.json                runs, ranking, recommendation                    (verdict)
      report.md, report.html      the report                                       (report)
      runs/<loss>/seed<k>/        one run (below)
      search/search.json          --search: per loss its trials (params, value) and best params (search)
      search/<loss>/trial<k>/     one tuning trial: a run directory (below)             (search)

    RUN/                          one (loss, seed) run
      config.json                 {"run": {family, loss, seed, data}, data: {...}, model: {...}, ...}  (loop)
      metrics.jsonl               one JSON object per logged step                  (loop)
      curve.jsonl                 the quality curve: one evaluation per curve point (loop)
      checkpoint.safetensors      weights, optimizer and RNG state, step counts: ONE file,
                                  written atomically (the metadata lives in its header)  (loop)
      samples.npz                 "samples": (n, *shape) generated at the end      (loop)
      snapshots.npz               the model at each curve point, for the report's pictures of
                                  learning: "g_updates" (S,) and each key stacked (S, ...)  (loop)
      result.json                 status, metrics, update counts, wall seconds     (loop)
      diffusion.npz / embedding.npz   family artifacts for the report              (the family)
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from losslab import io
from losslab.config import SECTIONS, Config, apply_overrides
from losslab.data.profile import profile as profile_data
from losslab.errors import UserError
from losslab.losses import REGISTRIES, family_of
from losslab.orphans import clear_orphan_lock, lock_holders  # noqa: F401  (lock_holders re-exported)
from losslab.metrics.features import STACKED_NAME
from losslab.metrics.ladder import quality_ladder

# ----------------------------------------------------------------------------- file names

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.safetensors"
SAMPLES = "samples.npz"
RESULT = "result.json"
COMPARE = "compare.json"
RESULTS = "results.json"
REFERENCE = "reference.npz"
PROFILE = "data_profile.json"
LADDER = "ladder.json"
RUNS = "runs"
CURVE = "curve.jsonl"
SEARCH = "search"
SEARCH_RESULTS = "search.json"
SNAPSHOTS = "snapshots.npz"
DIFFUSION_ARTIFACTS = "diffusion.npz"
"""A diffusion run's forward strip, reverse chain and bucket losses (``losslab.train.diffusion.artifacts``)."""
EMBEDDING = "embedding.npz"
"""A contrastive run's 2-D PCA of test embeddings (``losslab.train.contrastive.artifacts``)."""
EBM_ARTIFACTS = "ebm.json"
"""An EBM run's sampler and failure signatures (``losslab.train.ebm.artifacts``)."""

FINAL_STATUSES = ("ok", "diverged")

# Seed of the evaluation's real reference rows and noise: compare, eval and the
# report all use it, so a re-evaluation repeats the run's result.json.
REFERENCE_SEED = 12345

# Key of the JSON metadata stored in the checkpoint's safetensors header.
_META_KEY = "losslab"


# ----------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One (loss, seed) run of a comparison; ``run_dir`` is relative to the comparison's OUT."""

    loss: str
    seed: int
    run_dir: str
    family: str = "gan"


def run_path(loss: str, seed: int) -> str:
    """The run directory of (loss, seed) relative to a comparison's OUT."""
    return f"{RUNS}/{loss}/seed{seed}"


def plan(losses: list[str], seeds: int, *, seed_start: int = 0) -> list[Job]:
    """One job per (loss, seed), seeds ``seed_start .. seed_start + seeds - 1``.

    Each loss is trained by the family whose registry holds it.

    Raises:
        UserError: an unknown loss name.
    """
    return [Job(loss, s, run_path(loss, s), family_of(loss))
            for loss in losses for s in range(seed_start, seed_start + seeds)]


def families_of(losses: list[str]) -> str:
    """"gan", "diffusion", or "gan+diffusion" for a table that mixes them (registry order)."""
    fams = {family_of(loss) for loss in losses}
    return "+".join(f for f in REGISTRIES if f in fams)


# ----------------------------------------------------------------------------- config.json


def run_config(cfg: Config, *, family: str, loss: str, seed: int, data_name: str,
               made_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of a run's config.json: ``run`` says what was trained; the sections how; ``made_from``
    (when given: the data's fingerprint and the losslab version, :func:`losslab.provenance.made_from`) from what."""
    extra = {"made_from": made_from} if made_from is not None else {}
    return {"run": {"family": family, "loss": loss, "seed": seed, "data": data_name}, **extra, **cfg.to_dict()}


@dataclass(frozen=True)
class RunInfo:
    """What a run directory says about itself (from its config.json)."""

    run_dir: Path
    family: str
    loss: str
    seed: int
    data: str
    config: dict[str, Any]

    def cfg(self) -> Config:
        """The run's resolved :class:`~losslab.config.Config`, rebuilt from config.json."""
        cfg = Config()
        apply_overrides(cfg, {k: self.config[k] for k in SECTIONS if isinstance(self.config.get(k), dict)},
                        str(self.run_dir / CONFIG))
        return cfg


def resolve_run_dir(path: str | Path) -> Path:
    """The run directory of ``path``: the directory itself, or the folder of its checkpoint file.

    Raises:
        UserError: not a directory holding a config.json.
    """
    p = Path(path).expanduser()
    if p.is_file() and p.name == CHECKPOINT:
        p = p.parent
    if not p.is_dir():
        raise UserError(f"{path} is neither a run directory nor a {CHECKPOINT} file")
    if not (p / CONFIG).is_file():
        raise UserError(f"{p} is not a run directory ({CONFIG} missing)")
    return p


def read_run(path: str | Path) -> RunInfo:
    """Read a run directory's config.json.

    Raises:
        UserError: not a run directory, an unreadable or malformed config.json,
            or a loss name that no registry knows.
    """
    rd = resolve_run_dir(path)
    c = read_json_file(rd / CONFIG)
    run = c.get("run") if isinstance(c, dict) else None
    if not isinstance(run, dict) or not all(k in run for k in ("family", "loss", "seed", "data")):
        raise UserError(f"{rd / CONFIG}: no 'run' section with family, loss, seed and data; "
                        "was it written by another version of losslab?")
    family_of(run["loss"])  # unknown loss -> UserError listing the known ones
    return RunInfo(run_dir=rd, family=str(run["family"]), loss=str(run["loss"]), seed=int(run["seed"]),
                   data=str(run["data"]), config=c)


def write_config(run_dir: Path, wanted: dict[str, Any]) -> None:
    """Write config.json, refusing a run directory that holds a run of another configuration.

    Raises:
        UserError: ``run_dir`` already holds a different configuration.
    """
    path = Path(run_dir) / CONFIG
    want = json.loads(io.dumps(wanted))
    old = read_json_file(path) if path.exists() else None
    if isinstance(old, dict) and "made_from" not in old:  # written before made_from was recorded
        want.pop("made_from", None)
    if old is not None and old != want:
        raise UserError(f"{run_dir} holds a run with a different configuration or data; use a new --out "
                        "directory (or losslab compare --redo-changed)")
    io.atomic_write_json(path, wanted)


# ----------------------------------------------------------------------------- result.json


def read_json_file(path: str | Path) -> Any:
    """Read a JSON file that losslab wrote.

    Raises:
        UserError: unreadable (OS error) or not valid JSON, naming the file.
    """
    try:
        return io.read_json(path)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is corrupt ({type(e).__name__}: {e}); delete it to redo that step") from None


def read_result(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's result.json, or None when the run has none (not finished) or it is unreadable."""
    p = Path(run_dir) / RESULT
    if not p.exists():
        return None
    try:
        r = io.read_json(p)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return r if isinstance(r, dict) else None


def is_finished(run_dir: str | Path) -> bool:
    """Whether a run directory holds a finished run (result.json records ok or diverged): the one place
    that decides it. A corrupt result.json counts as not finished.

    A result.json that is not a readable JSON object is reported with a
    warning and the run is trained again (it resumes from its checkpoint), which
    rewrites it. A corrupt config.json is a UserError (train_run could not tell
    whether the directory holds this run).
    """
    run_dir = Path(run_dir)
    path = run_dir / RESULT
    if path.exists():
        try:
            r = read_json_file(path)
        except UserError as e:
            warnings.warn(f"{e.args[0].split(';')[0]}; the run is trained again", stacklevel=2)
            return False
        if not isinstance(r, dict):
            warnings.warn(f"{path} is not a run result (not a JSON object); the run is trained again",
                          stacklevel=2)
            return False
        if r.get("status") in FINAL_STATUSES:
            return True
    cfg_path = run_dir / CONFIG
    if cfg_path.exists():
        c = read_json_file(cfg_path)
        if not isinstance(c, dict) or not isinstance(c.get("run"), dict):
            raise UserError(f"{cfg_path} is not a run configuration (a JSON object with 'run' expected); "
                            "delete it and rerun the same command to redo that run")
    return False


def write_result(run_dir: str | Path, result: dict[str, Any]) -> None:
    io.atomic_write_json(Path(run_dir) / RESULT, result)


# ----------------------------------------------------------------------------- metrics.jsonl, samples.npz


def append_metrics(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Append logged steps to metrics.jsonl (fsynced: a crash loses at most the last line)."""
    io.append_jsonl(Path(run_dir) / METRICS, rows)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl (none when absent; a torn last line is skipped)."""
    return io.read_jsonl(Path(run_dir) / METRICS)


def truncate_metrics(run_dir: str | Path, step: int | None) -> None:
    """Keep the metrics.jsonl rows with ``row["step"] <= step`` (atomically); ``None`` deletes the file.

    On resume from a checkpoint at generator update ``step`` the rows logged
    after it are dropped: training produces them again.
    """
    path = Path(run_dir) / METRICS
    if step is None:
        path.unlink(missing_ok=True)
        return
    rows = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    io.atomic_write_bytes(path, "".join(io.dumps(r).replace("\n", "") + "\n" for r in rows).encode())


def append_curve(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Append quality-curve points to curve.jsonl (fsynced, like metrics.jsonl)."""
    io.append_jsonl(Path(run_dir) / CURVE, rows)


def read_curve(run_dir: str | Path) -> list[dict[str, Any]]:
    """The quality-curve points of curve.jsonl (none when absent; a torn last line is skipped)."""
    return io.read_jsonl(Path(run_dir) / CURVE)


def truncate_curve(run_dir: str | Path, g_updates: int | None) -> None:
    """Keep the curve points with ``row["g_updates"] <= g_updates``; ``None`` deletes curve.jsonl.

    On resume from a checkpoint the points after it are evaluated again.
    """
    path = Path(run_dir) / CURVE
    if g_updates is None:
        path.unlink(missing_ok=True)
        return
    rows = [r for r in read_curve(run_dir) if r.get("g_updates", 0) <= g_updates]
    io.atomic_write_bytes(path, "".join(io.dumps(r).replace("\n", "") + "\n" for r in rows).encode())


def write_samples(run_dir: str | Path, samples: torch.Tensor) -> None:
    """Write samples.npz: array ``samples`` (n, *shape), atomically."""
    io.atomic_write_bytes(Path(run_dir) / SAMPLES, io.npz_bytes(samples=samples.detach().cpu().numpy()))


def read_samples(run_dir: str | Path) -> torch.Tensor | None:
    """The run's generated samples (n, *shape) from samples.npz, or None when it has none."""
    path = Path(run_dir) / SAMPLES
    if not path.exists():
        return None
    import numpy as np

    with np.load(path) as z:
        return torch.from_numpy(z["samples"])


# ----------------------------------------------------------------------------- snapshots.npz


def read_snapshots(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's snapshots: ``{"g_updates": (S,) int64, key: (S, ...) array}``, or None when it has none.

    Row ``s`` of every key belongs to the snapshot at generator update
    ``g_updates[s]`` (increasing). An unreadable file counts as none.
    """
    path = Path(run_dir) / SNAPSHOTS
    if not path.exists():
        return None
    import numpy as np

    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        warnings.warn(f"{path} is unreadable ({type(e).__name__}: {e}); ignored", stacklevel=2)
        return None


def append_snapshot(run_dir: str | Path, g_updates: int, snap: dict[str, Any]) -> None:
    """Add the snapshot at generator update ``g_updates`` to snapshots.npz (rewritten atomically).

    Snapshots at or after ``g_updates`` already in the file (a resumed run
    evaluates them again) are replaced. ``snap``'s arrays must have the same
    keys and shapes at every point of a run (they are stacked).

    Raises:
        ValueError: ``snap`` does not match the snapshots already stored.
    """
    import numpy as np

    old = read_snapshots(run_dir) or {}
    keep = np.asarray(old.get("g_updates", np.zeros(0, np.int64))) < g_updates
    keys = set(snap)
    if keep.any() and keys != set(old) - {"g_updates"}:
        raise ValueError(f"snapshot keys {sorted(keys)} differ from the stored {sorted(set(old) - {'g_updates'})}")
    out = {"g_updates": np.append(np.asarray(old.get("g_updates", []), np.int64)[keep], np.int64(g_updates))}
    for k, v in snap.items():
        v = np.asarray(v)
        prev = np.asarray(old[k])[keep] if keep.any() else np.zeros((0, *v.shape), v.dtype)
        if prev.shape[1:] != v.shape:
            raise ValueError(f"snapshot {k!r} has shape {v.shape}, the stored ones {prev.shape[1:]}")
        out[k] = np.concatenate([prev, v[None]])
    io.atomic_write_bytes(Path(run_dir) / SNAPSHOTS, io.npz_bytes(**out))


def truncate_snapshots(run_dir: str | Path, g_updates: int | None) -> None:
    """Keep the snapshots at ``<= g_updates`` (atomically); ``None`` deletes snapshots.npz.

    On resume from a checkpoint the snapshots after it are taken again.
    """
    path = Path(run_dir) / SNAPSHOTS
    if g_updates is None:
        path.unlink(missing_ok=True)
        return
    old = read_snapshots(run_dir)
    if old is None:
        return
    keep = old["g_updates"] <= g_updates
    if keep.all():
        return
    io.atomic_write_bytes(path, io.npz_bytes(**{k: v[keep] for k, v in old.items()}))


# ----------------------------------------------------------------------------- checkpoint


def save_checkpoint(run_dir: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write the run state as ONE safetensors file, its JSON ``meta`` in the header, atomically.

    Weights, optimizer state, RNG state and step counts can therefore never
    disagree after a crash: a reader sees the old checkpoint or the new one.
    """
    blob = save(tensors, metadata={_META_KEY: io.dumps(meta)})
    io.atomic_write_bytes(Path(run_dir) / CHECKPOINT, blob)


def load_checkpoint(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The run state saved by :func:`save_checkpoint`, or None when there is none.

    A checkpoint that cannot be read (truncated, not a safetensors file, no
    metadata) is discarded with a warning, and the run restarts from scratch.
    """
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[_META_KEY])
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
        if not isinstance(meta, dict):
            raise ValueError("metadata is not an object")
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as e:
        warnings.warn(f"{path} is unreadable ({type(e).__name__}: {e}); discarded, the run restarts", stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    return tensors, meta


# ----------------------------------------------------------------------------- temp files

FIGURES = "figures"


def clean_temps(out: str | Path) -> list[Path]:
    """Remove the temp files of interrupted writes from a comparison directory, and from nowhere else.

    Looks in ``OUT`` itself (not below) and in the folders losslab writes below
    it (``runs/``, ``search/``, ``figures/``); only names with losslab's own
    prefix go (:func:`losslab.io.is_stale_temp`). Call it holding :func:`lock_dir`.

    Returns:
        The files removed.
    """
    out = Path(out)
    removed = io.clean_stale_temps(out, recursive=False)
    for sub in (RUNS, SEARCH, FIGURES):
        if (out / sub).is_dir() and not (out / sub).is_symlink():
            removed += io.clean_stale_temps(out / sub)
    return removed


# Every name a comparison writes directly in OUT (besides LOCK): a folder holding one of them but no
# compare.json is not a comparison, and losslab would overwrite the user's file.
OWN_NAMES = (COMPARE, REFERENCE, PROFILE, LADDER, RESULTS, RUNS, SEARCH, FIGURES, "report.md", "report.html")


def check_out(out: str | Path) -> Path:
    """Check a comparison's ``--out`` before anything is written there.

    An empty path (an unset shell variable) is refused rather than taken as the
    working directory; an existing folder must be a directory, and either a
    comparison (it holds compare.json) or a folder where no file losslab writes
    exists yet: a folder of other files is used and those files are never touched.

    Returns:
        The absolute path.

    Raises:
        UserError: one line naming the problem.
    """
    if not str(out).strip():
        raise UserError("--out is empty (an unset shell variable?); give a directory for the comparison")
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory; give a directory (new or a previous --out)")
    if out.is_dir() and not (out / COMPARE).exists():
        clash = [n for n in OWN_NAMES if os.path.lexists(out / n)]
        if clash:
            raise UserError(f"--out {out} is not a losslab comparison ({COMPARE} missing) but holds {clash[0]}, "
                            "which a comparison would overwrite; use a new --out directory")
    return out


# ----------------------------------------------------------------------------- the comparison's own files


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
    io.atomic_write_bytes(out / REFERENCE, io.npz_bytes(**arrays))


def write_profile(out: Path, dataset, *, notes: list[str] | None = None) -> dict[str, Any] | None:
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
    path = out / PROFILE
    if path.exists():
        try:
            old = read_json_file(path)
        except UserError:
            old = None
        if isinstance(old, dict) and old.get("name") == dataset.name:
            return old
    try:
        prof = profile_data(dataset, seed=0)
    except UserError as e:
        warnings.warn(f"no data profile: {e}", stacklevel=2)
        return None
    if notes:  # legal but odd data (losslab.data.checks.check_content): shown in the report's data section
        prof["warnings"] = list(notes)
    io.atomic_write_json(path, prof)
    return prof


LADDER_MAX_N = 2000
"""At most this many images per ladder rung (the run's ``n_eval`` otherwise): 7 + 10 sets of n images."""


def write_ladder(out: Path, dataset, feature_net, *, n: int, quiet: bool = True) -> dict[str, Any] | None:
    """Write ``OUT/ladder.json``: the feature network and the quality ladder's rungs in its space.

    The rungs (:func:`losslab.metrics.ladder.quality_ladder`) are measured with
    the runs' feature network, ``min(n, LADDER_MAX_N)`` images per set and the
    seed :data:`losslab.REFERENCE_SEED`, so the verdict can place each
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
    path = out / LADDER
    if path.exists():
        try:
            old = read_json_file(path)
        except UserError:
            old = None
        if isinstance(old, dict) and (old.get("feature_net") or {}).get("name") == name and old.get("n_eval") == n:
            return old
    t0 = time.perf_counter()
    try:
        rungs = quality_ladder(dataset, feature_net, n=n, seed=REFERENCE_SEED)
    except UserError as e:
        warnings.warn(f"no quality ladder: {e}", stacklevel=2)
        return None
    quality = getattr(feature_net, "quality", None)
    acc = getattr(feature_net, "test_accuracy", None)
    content = {"feature_net": {"name": name, "quality": dict(quality) if quality else None,
                               "test_accuracy": None if acc is None else float(acc)},
               "n_eval": n, "n": rungs[0]["n"], "seed": REFERENCE_SEED,
               "seconds": round(time.perf_counter() - t0, 3),
               "rungs": [{**r, "fid_range": list(r["fid_range"])} for r in rungs]}
    io.atomic_write_json(path, content)
    if not quiet:
        print(f"quality ladder: {len(rungs)} rungs of {rungs[0]['n']} images in {content['seconds']:.1f} s",
              file=sys.stderr)
    return content


def write_spec(out: Path, cfg: Config, dataset, *, losses: list[str], seeds: int,
               metric: str | None, seed_start: int = 0, search_trials: int | None = None,
               race_limits: Any = None, made_from: dict[str, Any] | None = None,
               replace: bool = False) -> dict[str, Any]:
    """Write ``OUT/compare.json`` (what was asked), merging losses and seeds into an existing one.

    Records ``seed_start`` (the final seeds are ``seed_start .. seed_start + seeds - 1``; for a race
    ``seeds`` is its cap), ``search`` (``--search``'s trials per loss, or None), ``race``
    (:meth:`losslab.race.Limits.to_dict` of ``race_limits``, or None for a fixed design) and
    ``made_from`` (the data's fingerprint and the losslab version, :func:`losslab.provenance.made_from`)
    when given. With ``replace`` (``--redo-changed`` after :func:`losslab.compare.check_rerun`) an
    existing comparison of other inputs is replaced by this request, and its data profile and
    quality ladder are removed to be measured again.

    Raises:
        UserError: ``out`` holds a comparison with another dataset, configuration,
            first seed or search, or a corrupt compare.json.
    """
    spec = {"family": families_of(losses), "data": cfg.data.name, "kind": dataset.kind,
            "shape": list(dataset.shape), "losses": losses, "seeds": seeds, "seed_start": seed_start,
            "search": search_trials, "metric": metric, "config": cfg.to_dict(),
            "race": race_limits.to_dict() if race_limits is not None else None}
    if made_from is not None:
        spec["made_from"] = made_from
    path = out / COMPARE
    if replace:
        for name in (PROFILE, LADDER):
            (out / name).unlink(missing_ok=True)
    elif path.exists():
        old = read_json_file(path)
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
            spec["race"] = race_limits.fixed_for(spec["seeds"]).to_dict()
        spec["family"] = families_of(spec["losses"])
        if isinstance(old.get("candidates"), list):  # a --search's raced settings (write_candidates)
            spec["candidates"] = old["candidates"]
    io.atomic_write_json(path, spec)
    return spec


def write_candidates(out: Path, candidates: list[str]) -> None:
    """Record in ``OUT/compare.json`` the candidates the comparison ranks when they are not its ``losses``:
    after ``--search``, each loss's best settings as ``LOSS[key=value]`` labels (:func:`losslab.search.elites`)."""
    path = out / COMPARE
    spec = read_json_file(path)
    spec["candidates"] = list(candidates)
    io.atomic_write_json(path, spec)


def candidates_of(spec: dict[str, Any]) -> list[str]:
    """What a comparison ranks: compare.json's ``candidates`` (after ``--search``), else its ``losses``."""
    c = spec.get("candidates")
    return list(c) if isinstance(c, list) and c else list(spec["losses"])


# ----------------------------------------------------------------------------- lock

import contextlib  # noqa: E402  (this section's own imports, kept with it)
from collections.abc import Iterator  # noqa: E402

LOCK = ".lock"


@contextlib.contextmanager
def lock_dir(out: str | Path) -> Iterator[Path]:
    """Hold an exclusive OS lock on a comparison directory for the duration of a ``with`` block.

    ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``OUT/.lock`` (created if needed, never
    deleted: deleting it would let two processes lock two different files). The
    kernel drops the lock when its holder exits in any way, SIGKILL included, so a
    killed compare never blocks the next one. The file holds the holder's pid, only
    to name it in the error. Forked children share the lock (they keep it until they
    exit too), so losslab starts its helpers with exec (``spawn``), which do not
    inherit it; a lock still held by a leftover helper after the pid in the file
    died is cleared with a warning (:func:`losslab.orphans.clear_orphan_lock`). Where ``fcntl`` is
    missing (Windows) nothing is locked.

    Parameters
    ----------
    out : path-like
        The directory (created with its parents if missing).

    Yields
    ------
    Path
        The lock file ``OUT/.lock``.

    Raises
    ------
    UserError
        ``OUT is in use by another losslab process (pid N); wait for it or use another --out``,
        or ``OUT`` exists and is not a directory.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; give a directory as --out")
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by exec'd children
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                why = clear_orphan_lock(out, path, holder)
                if why is not None:
                    raise UserError(why) from None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise UserError(f"{out} is in use by another losslab process (pid {holder}); wait for it "
                                    "or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released: no stale pid for the next reader
    finally:
        os.close(fd)  # closing the last descriptor releases the flock

