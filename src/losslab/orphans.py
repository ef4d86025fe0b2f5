"""Who holds a comparison's lock file, and clearing a lock kept by a leftover of a dead losslab.

Used by :func:`losslab.rundir.lock_dir`: the flock on ``OUT/.lock`` belongs to
an open file description, so a process forked from the holder keeps it after
the holder died. Linux ``/proc`` only; elsewhere nothing is found or cleared.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

__all__ = ["clear_orphan_lock", "lock_holders"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def lock_holders(path: str | Path) -> dict[int, str]:
    """The processes that hold an open descriptor of ``path``: ``{pid: command line}`` (Linux ``/proc``).

    Only processes this user may inspect are seen; empty where ``/proc`` is missing.
    """
    try:
        want = os.stat(path)
    except OSError:
        return {}
    found: dict[int, str] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                try:
                    st = os.stat(fd)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                    found[int(entry.name)] = " ".join(cmd.split())  # one line
                    break
        except OSError:  # gone, or not ours to read
            continue
    return found


def clear_orphan_lock(out: Path, path: Path, holder: str) -> str | None:
    """End the leftover helpers that hold ``OUT/.lock`` after the losslab process that took it died.

    The lock belongs to an open file description, so a process forked from the
    holder (e.g. a ``multiprocessing`` helper of an older losslab) keeps it after
    its parent is gone. When the pid recorded in the file is dead and every
    process that still holds the file is such a helper (its command line names
    losslab or Python's multiprocessing; only this user's processes are seen),
    each is named in a warning and ended (SIGKILL). Anything else is left alone
    and named in the refusal.

    Returns:
        None when the holders were ended (the caller retries the lock), else
        the one-line refusal.
    """
    import signal
    import time

    busy = f"{out} is in use by another losslab process (pid {holder}); wait for it or use another --out"
    if not holder.isdigit() or _alive(int(holder)):
        return busy
    holders = lock_holders(path)
    if not holders:
        return busy
    foreign = {pid: cmd for pid, cmd in holders.items() if "losslab" not in cmd and "multiprocessing" not in cmd}
    if foreign:
        pid, cmd = next(iter(foreign.items()))
        return (f"{path} is held by pid {pid} ({cmd[:80]}), not by the losslab process that took it "
                f"(pid {holder}, gone); end pid {pid} or use another --out")
    for pid, cmd in holders.items():
        warnings.warn(f"{path} was held by pid {pid} ({cmd[:80]}), a leftover helper of losslab pid {holder} "
                      "which is gone; ended it and took the lock", stacklevel=3)
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(_holds(p, path) for p in holders):
        time.sleep(0.05)
    return None


def _holds(pid: int, path: Path) -> bool:
    """Whether ``pid`` still holds a descriptor of ``path`` (a killed process loses them at once; a zombie too)."""
    try:
        want = os.stat(path)
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                return True
    except OSError:
        return False
    return False
