"""What a comparison and each of its runs were made from, and what changed since.

A run directory records its data's fingerprint (SHA-256 of the loaded
tensors), the resolved configuration and the losslab version (``made_from``
in config.json, beside the config sections); compare.json records the same
for the comparison. A rerun into the same ``--out`` that differs in any of
them is refused in one line naming what changed, or, with ``--redo-changed``,
the runs whose record differs are trained again, so one table never mixes
runs made from different data or settings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from losslab import __version__, io, rundir

__all__ = ["data_fingerprint", "made_from", "redo_changed_runs", "run_changes", "spec_changes"]


def data_fingerprint(dataset) -> str:
    """SHA-256 (hex) of a dataset as it is trained on: shape, train and test rows, labels (cached on it).

    Covers user files (the bytes as loaded, so an edited CSV differs), the
    ``data.n_train`` subset and the image size, for built-in sets too.
    """
    cached = getattr(dataset, "_losslab_sha256", None)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    h.update(json.dumps([dataset.name, dataset.kind, list(dataset.shape)]).encode())
    for t in (dataset.train, dataset.test, dataset.train_labels, dataset.test_labels):
        if t is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(t.detach().cpu().numpy())
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    fp = h.hexdigest()
    try:
        dataset._losslab_sha256 = fp
    except AttributeError:  # pragma: no cover - a frozen record: computed again next time
        pass
    return fp


def made_from(dataset) -> dict[str, str]:
    """``{"data_sha256", "losslab"}``: what a run or comparison records besides its configuration."""
    return {"data_sha256": data_fingerprint(dataset), "losslab": __version__}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _changed_keys(old: dict, new: dict) -> list[str]:
    a, b = _flat(old), _flat(new)
    return [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between an existing compare.json ``old`` and the request ``new``, in words.

    Data name, data contents (fingerprint), configuration (each changed key) and
    losslab version; empty when they agree. A compare.json written before
    fingerprints were recorded has no ``made_from`` and is compared on the rest.
    """
    new = json.loads(io.dumps(new))
    changes = []
    if old.get("data") != new.get("data"):
        changes.append(f"the data ({old.get('data')!r} then, {new.get('data')!r} now)")
    a, b = old.get("made_from") or {}, new.get("made_from") or {}
    if a.get("data_sha256") and a.get("data_sha256") != b.get("data_sha256") and old.get("data") == new.get("data"):
        changes.append(f"the contents of the data {new.get('data')!r} (sha256 {a['data_sha256'][:12]} then, "
                       f"{str(b.get('data_sha256'))[:12]} now)")
    keys = _changed_keys(old.get("config") or {}, new.get("config") or {})
    if keys:
        changes.append("the settings (" + ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "") + ")")
    if a.get("losslab") and a.get("losslab") != b.get("losslab"):
        changes.append(f"the losslab version ({a['losslab']} then, {b.get('losslab')} now)")
    return changes


def run_changes(run_dir: Path, wanted: dict[str, Any]) -> list[str]:
    """What differs between a run directory's config.json and the config.json it would get now.

    Empty when the directory has no config.json (nothing trained yet) or it agrees.
    """
    path = Path(run_dir) / rundir.CONFIG
    if not path.exists():
        return []
    old = rundir.read_json_file(path)
    if not isinstance(old, dict) or not isinstance(old.get("run"), dict):
        return []  # not a run configuration: refused with its own line where the run is planned
    want = json.loads(io.dumps(wanted))
    changes = []
    a, b = old.get("made_from") or {}, want.get("made_from") or {}
    if a and a != b:  # a run written before made_from was recorded is compared on its settings alone
        if a.get("data_sha256") != b.get("data_sha256"):
            changes.append("the contents of the data")
        if a.get("losslab") != b.get("losslab"):
            changes.append(f"the losslab version ({a.get('losslab')} then, {b.get('losslab')} now)")
    rest_old = {k: v for k, v in old.items() if k != "made_from"}
    rest_new = {k: v for k, v in want.items() if k != "made_from"}
    keys = _changed_keys(rest_old, rest_new)
    if keys:
        changes.append("the settings (" + ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "") + ")")
    return changes


def redo_changed_runs(out: Path, wanted: dict[str, dict[str, Any]]) -> list[str]:
    """Delete the run directories (losslab's own, under ``OUT/runs/``) whose record differs from ``wanted``.

    Args:
        out: the comparison directory (held under :func:`losslab.rundir.lock_dir`).
        wanted: ``{run_dir relative to out: the config.json it would get now}``; None redoes the run
            whatever it records (a --search comparison whose settings changed: its tuned runs and trials
            were made under the old settings).

    Returns:
        The run directories removed (relative), to be trained again.
    """
    removed = []
    for rel, want in wanted.items():
        rd = out / rel
        if rd.is_dir() and (want is None or run_changes(rd, want)):  # None: redo whatever it records
            shutil.rmtree(rd)
            removed.append(rel)
    return removed
