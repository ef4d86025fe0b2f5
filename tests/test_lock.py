"""rundir.lock_dir: one losslab process per --out, and a killed holder never blocks the next one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from losslab.errors import UserError
from losslab.rundir import LOCK, lock_dir, lock_holders

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="POSIX flock")

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from losslab.rundir import lock_dir
    with lock_dir(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(600)
    """
)


def _holder(out):
    """A separate Python process that takes the lock and sleeps; returns once it holds it."""
    p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "locked", line
    return p


def test_second_process_is_refused_and_a_killed_holder_frees_the_lock(tmp_path):
    out = tmp_path / "out"
    p = _holder(out)
    try:
        with pytest.raises(UserError) as e:
            with lock_dir(out):
                pass
        assert str(e.value) == (
            f"{out} is in use by another losslab process (pid {p.pid}); wait for it or use another --out"
        )
    finally:
        p.send_signal(signal.SIGKILL)  # no cleanup code runs in the holder
        p.wait(timeout=30)
        p.stdout.close()
    assert p.returncode == -signal.SIGKILL
    assert (out / LOCK).exists()  # the file stays; its lock went with the process
    with lock_dir(out) as path:
        assert path == out / LOCK
        assert path.read_text() == f"{os.getpid()}\n"
    assert (out / LOCK).read_text() == ""  # released: no stale pid


def test_lock_is_exclusive_within_one_process_and_reusable_after_release(tmp_path):
    with lock_dir(tmp_path / "a"):
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):
            with lock_dir(tmp_path / "a"):
                pass
        with lock_dir(tmp_path / "b"):  # another --out is independent
            pass
    with lock_dir(tmp_path / "a"):
        pass


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with lock_dir(tmp_path):
            raise RuntimeError("boom")
    with lock_dir(tmp_path):
        pass


def test_out_that_is_a_file_is_a_user_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"):
        with lock_dir(f):
            pass
    assert f.read_text() == "x"


_FORKER = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from losslab.rundir import lock_dir
    with lock_dir(sys.argv[1]):
        if sys.argv[2] == "fork":  # a forked helper shares the lock's open file description
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
        else:  # a foreign program handed the descriptor
            fd = [int(f) for f in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{f}")
                  == os.path.realpath(os.path.join(sys.argv[1], ".lock"))][0]
            subprocess.Popen(["sleep", "600"], pass_fds=[fd])
        print("locked", flush=True)
        time.sleep(600)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize("helper", ["fork", "foreign"])
def test_a_lock_kept_by_a_leftover_of_a_dead_holder(tmp_path, helper):
    """The holder dies (SIGKILL) and a process it started keeps the lock: a losslab helper is named and ended,
    anything else is named in the refusal and left alone."""
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-c", _FORKER, str(out), helper], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    holders = lock_holders(out / LOCK)
    orphans = set(holders) - {p.pid}
    assert len(orphans) == 1
    orphan = orphans.pop()
    # the warning quotes the first 80 characters of the command line, which depend on where the clone lies
    shown = re.escape(holders[orphan][:80])
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()
    try:
        if helper == "fork":
            assert "losslab" in holders[orphan]
            with pytest.warns(UserWarning, match=rf"held by pid {orphan} \({shown}\), a leftover helper of "
                                                 rf"losslab pid {p.pid} which is gone; ended it"):
                with lock_dir(out):
                    pass
            assert orphan not in lock_holders(out / LOCK)
        else:
            with pytest.raises(UserError) as e:
                with lock_dir(out):
                    pass
            assert str(e.value) == (f"{out / LOCK} is held by pid {orphan} (sleep 600), not by the losslab "
                                    f"process that took it (pid {p.pid}, gone); end pid {orphan} or use another --out")
            assert orphan in lock_holders(out / LOCK)
    finally:
        try:
            os.kill(orphan, signal.SIGKILL)
        except ProcessLookupError:
            pass
