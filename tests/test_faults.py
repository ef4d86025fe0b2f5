"""Fault injection: a simulated kill at EVERY write of a run, a comparison and a report.

Every file losslab writes goes through :func:`losslab.io.atomic_write_bytes`
(temp file, fsync, ``os.replace``) or :func:`losslab.io.append_jsonl`. A
reference run counts those writes; then, for each write k, a fresh run is
killed at the k-th write:

- ``before``: just before the ``os.replace`` of an atomic write (its temp file
  is left behind, as a kill leaves it: the process runs no cleanup) or before
  an append writes anything;
- ``after``: just after the ``os.replace`` / after the appended rows are fsynced;
- ``torn`` (appends only): half of the first appended line is written, no newline.

The kill is a ``BaseException`` subclass, so ``train_run``'s ``except
Exception`` (which records a failed run) does not swallow it, exactly like a
signal that ends the process. The rerun must then give what an uninterrupted
run gives: result.json's status, metrics and update counts, the metrics.jsonl
rows (without their ``wall`` clock), and, under the lock-taking entry point
(``compare.run_compare``), no temp file left behind.

The counts of writes are never asserted: they change with the loop's layout
(e.g. a one-file checkpoint instead of two files), the results must not.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import pytest

import losslab.io as lio
from losslab import compare as cmp
from losslab import config as C
from losslab import io, rundir
from losslab.train.loop import train_run

pytestmark = pytest.mark.usefixtures("single_thread")

_REAL_APPEND = lio.append_jsonl


class Killed(BaseException):
    """A simulated SIGKILL at a write (not an ``Exception``: nothing may record it)."""


class Faults:
    """Counts the writes of losslab; kills the process at write ``kill_at`` (1-based) in ``mode``."""

    def __init__(self, kill_at: int | None = None, mode: str = "before"):
        self.kill_at, self.mode = kill_at, mode
        self.events: list[tuple[str, str]] = []  # (kind, path): "write" (atomic) or "append"
        self.dead = False

    def hit(self, kind: str, path) -> bool:
        if self.dead:  # a dead process writes nothing more
            raise Killed("a write after the kill")
        self.events.append((kind, str(path)))
        return len(self.events) == self.kill_at

    def die(self):
        self.dead = True
        kind, path = self.events[-1]
        raise Killed(f"killed {self.mode} {kind} #{len(self.events)} of {path}")


class _OsInIo:
    """``os`` as losslab.io sees it: ``replace`` is a write point, ``unlink`` does nothing once killed."""

    def __init__(self, faults: Faults):
        self._f = faults

    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, src, dst):
        hit = self._f.hit("write", dst)
        if hit and self._f.mode == "before":
            self._f.die()
        os.replace(src, dst)
        if hit:
            self._f.die()

    def unlink(self, path):
        if not self._f.dead:  # the temp-file cleanup of atomic_write_bytes never runs in a killed process
            os.unlink(path)


@contextlib.contextmanager
def faults(kill_at: int | None = None, mode: str = "before"):
    """Patch every write point of losslab for the duration of the block; yields the :class:`Faults`."""
    f = Faults(kill_at, mode)

    def append(path, rows):
        rows = list(rows)
        hit = f.hit("append", path)
        if hit and mode == "before":
            f.die()
        if hit and mode == "torn" and rows:
            line = json.dumps(rows[0])
            with open(path, "a") as fh:
                fh.write(line[: len(line) // 2])
            f.die()
        _REAL_APPEND(path, rows)
        if hit:
            f.die()

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(lio, "os", _OsInIo(f))
        # append_jsonl wherever it was looked up: the io module and any `from losslab.io import append_jsonl`.
        for name, mod in list(sys.modules.items()):
            ours = name == "losslab" or name.startswith("losslab.")
            if ours and getattr(mod, "append_jsonl", None) is _REAL_APPEND:
                mp.setattr(mod, "append_jsonl", append)
        yield f
    finally:
        mp.undo()


def _tiny(steps: int = 40):
    return C.resolve("vector", sets=["data.name=ring8", f"train.steps={steps}", "train.batch_size=64",
                                     "train.log_every=5", "train.checkpoint_every=10", "train.n_eval=200",
                                     "train.threads=1", "model.hidden=32", "model.layers=2"])


def _run(run_dir: Path, cfg) -> dict:
    ds = cmp.load_data(cfg)
    return train_run(run_dir, cfg, ds, loss="ns", seed=0, family="gan", evaluate=cmp.make_evaluator(cfg, ds))


def _outcome(run_dir: Path) -> dict:
    """What must not depend on interruptions: result.json's verdict and the logged rows without clocks."""
    r = io.read_json(run_dir / rundir.RESULT)
    rows = [{k: v for k, v in row.items() if k != "wall"} for row in io.read_jsonl(run_dir / rundir.METRICS)]
    return {"status": r["status"], "metrics": r["metrics"], "g_updates": r["g_updates"],
            "d_updates": r["d_updates"], "error": r.get("error"), "rows": rows}


def _first_difference(got: dict, want: dict) -> str:
    for k in want:
        if got.get(k) != want[k]:
            if k == "rows":
                steps = [a.get("step") for a, b in zip(got[k], want[k]) if a != b]
                return f"rows differ ({len(got[k])} vs {len(want[k])} rows; first differing step {steps[:1]})"
            return f"{k}: {got.get(k)!r} != {want[k]!r}"
    return "?"


def _temps(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if io.is_stale_temp(p.name))


def _modes(kind: str) -> tuple[str, ...]:
    return ("before", "after", "torn") if kind == "append" else ("before", "after")


def test_a_kill_at_every_write_of_a_run_is_repaired_by_the_rerun(tmp_path):
    cfg = _tiny()
    with faults() as ref:
        _run(tmp_path / "ref", cfg)
    want = _outcome(tmp_path / "ref")
    assert want["status"] == "ok" and want["g_updates"] == 40 and len(want["rows"]) == 9  # steps 1, 5, ..., 40
    events = [(kind, Path(p).name) for kind, p in ref.events]
    assert ("write", rundir.RESULT) in events and ("append", rundir.METRICS) in events
    assert any(name.startswith("checkpoint") for _, name in events)

    failures = []
    for k, (kind, name) in enumerate(events, start=1):
        for mode in _modes(kind):
            rd = tmp_path / f"k{k}-{mode}"
            with pytest.raises(Killed), faults(k, mode) as f:
                _run(rd, cfg)
            assert f.events[-1] == (kind, str(rd / name)), "the writes of a run are not reproducible"
            leftovers = _temps(rd)
            assert (mode == "before" and kind == "write") == bool(leftovers), leftovers
            _run(rd, cfg)  # the rerun, uninterrupted
            got = _outcome(rd)
            if got != want:
                failures.append(f"write #{k} {kind} {name} ({mode}): {_first_difference(got, want)}")
            # The rerun leaves at most the dead write's temp file, which the lock holder removes.
            assert _temps(rd) == leftovers and sorted(map(str, io.clean_stale_temps(rd))) == \
                sorted(str(rd / p) for p in leftovers)
    assert not failures, "\n".join(failures)


def _comparable(results: dict) -> dict:
    """results.json without clock entries (wall, training and curve seconds); the rest is a function of the runs."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items()
                    if "wall" not in k and "seconds" not in k and k != "traceback"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return strip(results)


def _compare(out: Path, cfg) -> dict:
    return cmp.run_compare(cfg, losses=["ns"], seeds=1, out=out, workers=1, quiet=True, report=True)


def test_a_kill_at_every_write_of_a_comparison_and_its_report_is_repaired_by_the_rerun(tmp_path):
    """compare.json, reference.npz, the run's result.json, results.json, every figure, report.md, report.html.

    The writes inside the run directory are those of the test above; here a kill
    at each write of the comparison and the report, and at the run's last write.
    """
    cfg = _tiny(steps=20)
    with faults() as ref:
        _compare(tmp_path / "ref", cfg)
    want = _comparable(io.read_json(tmp_path / "ref" / rundir.RESULTS))
    want_run = _outcome(tmp_path / "ref/runs/ns/seed0")
    figures = sorted(p.name for p in (tmp_path / "ref/figures").iterdir())
    names = [str(Path(p).relative_to(tmp_path / "ref")) for _, p in ref.events]
    for must in (rundir.COMPARE, rundir.REFERENCE, rundir.RESULTS, "report.md", "report.html",
                 *(f"figures/{n}" for n in figures)):
        assert must in names, must
    points = [(k, kind, n) for k, ((kind, _), n) in enumerate(zip(ref.events, names), start=1)
              if not n.startswith(rundir.RUNS) or n.endswith(rundir.RESULT)]
    # Every figure is written by io.atomic_write_bytes (through report.plots.save): a kill at the first and the
    # last figure stands for the others, each of which costs two full reports and tests nothing new.
    drawn = [p for p in points if p[2].startswith("figures/")]
    points = [p for p in points if not p[2].startswith("figures/") or p in (drawn[0], drawn[-1])]
    assert len(drawn) >= 4

    failures = []
    for k, kind, name in points:
        for mode in _modes(kind):
            out = tmp_path / f"k{k}-{mode}"
            with pytest.raises(Killed), faults(k, mode):
                _compare(out, cfg)
            assert bool(_temps(out)) == (mode == "before")
            res = _compare(out, cfg)  # the rerun, uninterrupted
            problems = []
            if _comparable(res) != want or _comparable(io.read_json(out / rundir.RESULTS)) != want:
                problems.append("results.json differs")
            if _outcome(out / "runs/ns/seed0") != want_run:
                problems.append("the run differs: " + _first_difference(_outcome(out / "runs/ns/seed0"), want_run))
            if sorted(p.name for p in (out / "figures").iterdir()) != figures:
                problems.append("figures differ")
            if not ((out / "report.md").stat().st_size and (out / "report.html").stat().st_size):
                problems.append("empty report")
            if _temps(out):
                problems.append(f"temp files left: {_temps(out)}")
            if problems:
                failures.append(f"write #{k} {kind} {name} ({mode}): {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
