"""rundir.lock_dir: one losslab process per --out, and a killed holder never blocks the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from losslab.errors import UserError
from losslab.rundir import LOCK, lock_dir

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
