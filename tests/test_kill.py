"""Kill the ``losslab compare`` command itself (not a simulated fault) while its worker pool trains.

One comparison directory, interrupted by SIGKILL, SIGTERM, SIGINT and SIGHUP at
different moments (during the set-up, while the workers train), each time
rerun with the same command. After every kill no process of that command is
left (its descendants, and nothing that names its ``--out``), its lock is free,
and the last rerun gives the results an uninterrupted comparison gives.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from losslab import api, io, rundir
from losslab.rundir import lock_dir

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and POSIX signals")

_SETS = ["train.n_eval=200", "train.curve_n=100", "train.curve_points=2", "model.hidden=32", "model.layers=2",
         "train.batch_size=64", "train.log_every=10", "train.checkpoint_every=25", "train.threads=1"]
_STEPS = 300


def _argv(out: Path) -> list[str]:
    sets = [a for s in _SETS for a in ("--set", s)]
    return ["compare", "--data", "ring8", "--losses", "ns,lsgan", "--seeds", "1", "--steps", str(_STEPS),
            "--workers", "2", "--quiet", "--out", str(out), *sets]


def _sigint_default() -> None:
    """In the child before exec: SIGINT back to its default, so Python turns it into KeyboardInterrupt.

    A suite started in the background (``make test &``, nohup) has SIGINT ignored, the child inherits
    that, and Python then leaves it ignored (as it should for a user's background command)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "losslab", *_argv(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_sigint_default)


def _descendants(pid: int) -> dict[int, str]:
    """``{pid: start time}`` of every process below ``pid`` (from /proc/*/stat)."""
    parent: dict[int, int] = {}
    start: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry.name)], start[int(entry.name)] = int(fields[1]), fields[19]
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, ppid in parent.items():
            if ppid == p and child not in found:
                found[child] = start[child]
                frontier.append(child)
    return found


def _still_running(procs: dict[int, str]) -> list[int]:
    """The processes of ``procs`` that still exist (same pid and start time), zombies excluded."""
    left = []
    for pid, started in procs.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[19] == started and fields[0] != "Z":
            left.append(pid)
    return left


def _rows(out: Path) -> dict[str, int]:
    """Logged rows per unfinished run (metrics.jsonl grows at every checkpoint)."""
    rows = {}
    for run in sorted((out / rundir.RUNS).glob("*/seed*")):
        if not (run / rundir.RESULT).exists():
            rows[str(run)] = len(io.read_jsonl(run / rundir.METRICS))
    return rows


def _lock_pid(out: Path) -> int | None:
    try:
        text = (out / rundir.LOCK).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _wait_for(cond, p: subprocess.Popen, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert p.poll() is None, f"the comparison ended before {what}: {p.communicate()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _kill_at(out: Path, sig: int, moment: str) -> bool:
    """Start the command, send ``sig`` at ``moment``; check that nothing of it is left. True if it trained."""
    before = _rows(out)
    p = _start(out)
    if moment == "setup":  # it holds the lock: the set-up under it (compare.json, profile, starting the pool)
        _wait_for(lambda: _lock_pid(out) == p.pid, p, "the lock")
    else:  # a checkpoint written since this command started, in a run that is not finished
        _wait_for(lambda: any(n > before.get(k, 0) for k, n in _rows(out).items()), p, "a new checkpoint")
    helpers = _descendants(p.pid)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), (sig, p.returncode, err)
    if sig != signal.SIGKILL:
        # The CLI's own last word. A worker that was being spawned when the signal came can print its start-up
        # EOFError traceback after it (multiprocessing's spawn handshake cut short; known, not yet fixed).
        lines = err.strip().splitlines()
        said = lines.index("losslab: interrupted; rerun the same command to resume")
        assert all("losslab" not in x for x in lines[said + 1:]), err
    deadline = time.monotonic() + 30
    while _still_running(helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _still_running(helpers), f"{signal.Signals(sig).name} at {moment}: helpers left"
    pgrep = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True)
    assert pgrep.stdout.strip() == "", f"processes naming {out} left: {pgrep.stdout}"
    with lock_dir(out):  # no lock outlives its holder
        pass
    return moment != "setup"


def _comparable(res: dict) -> dict:
    """results.json without its clocks: wall and training seconds, and the sentences built on them."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if "wall" not in k and "seconds" not in k}
        if isinstance(x, list):  # which loss "is the cheapest" is a matter of the clock too
            return [strip(v) for v in x if not (isinstance(v, str) and re.search(r"cheapest|s per run", v))]
        return x
    return strip(res)


@pytest.mark.slow
def test_killed_compare_with_a_worker_pool_resumes_and_leaves_no_process(tmp_path):
    out = tmp_path / "killed-compare-out"
    for sig, moment in ((signal.SIGKILL, "training"), (signal.SIGTERM, "setup"),
                        (signal.SIGINT, "training"), (signal.SIGHUP, "training")):
        _kill_at(out, sig, moment)
    resumed = {run: n for run, n in _rows(out).items() if n}
    assert resumed, "no run was interrupted mid-training"
    p = _start(out)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    got = io.read_json(out / rundir.RESULTS)
    assert sorted(r["loss"] for r in got["runs"]) == ["lsgan", "ns"]
    assert all(r["status"] == "ok" and r["g_updates"] == _STEPS for r in got["runs"])
    # The uninterrupted reference: the same comparison in this process (the same job function).
    want = api.compare("ring8", losses="ns,lsgan", seeds=1, steps=_STEPS, sets=_SETS, out=tmp_path / "ref",
                       workers=1, report=False)
    assert _comparable(got) == _comparable(want)
