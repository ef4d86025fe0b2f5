"""The local backend: jobs inline in this process, or in a pool of worker processes.

:func:`run_jobs` runs the same job function on either path. Workers are
started with ``spawn`` (no forked torch or thread state), report progress
through a queue the parent drains, and end themselves when the parent is
gone, so a killed ``losslab compare`` leaves no orphans; an interrupted job
keeps its last checkpoint and resumes on the next run.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence

from losslab.errors import UserError

# At most this many workers by default: more processes than this rarely pay on
# one machine (each job already uses its own thread budget).
MAX_DEFAULT_WORKERS = 8

# A worker posts progress once it has this many updates to report (fewer queue messages).
PROGRESS_BATCH = 25

JobFn = Callable[[Any, Callable[[int], None]], Any]


def default_workers() -> int:
    """Parallel jobs when ``--workers`` is not given: the CPU cores, at least 1, at most 8."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def run_jobs(job_fn: JobFn, jobs: Sequence[Any], *, workers: int,
             advance: Callable[[int], None]) -> list[tuple[Any, BaseException]]:
    """Run ``job_fn(job, progress)`` once for every job; inline when ``workers <= 1`` or one job.

    Parameters
    ----------
    job_fn : callable
        ``job_fn(job, progress) -> result``, a module-level function (or a
        ``functools.partial`` of one) so that it pickles into a worker;
        ``progress(n)`` reports n more updates done.
    jobs : sequence
        Picklable job descriptions (e.g. :class:`losslab.rundir.Job`).
    workers : int
        Worker processes, capped at ``len(jobs)``.
    advance : callable
        ``advance(n)``, called in this process with the progress of all jobs.

    Returns
    -------
    list of (job, exception)
        Jobs whose worker process died (the job function did not return);
        empty on the inline path, where an exception propagates.

    Raises
    ------
    UserError
        A job raised one (re-raised at once; the other workers are stopped).
    KeyboardInterrupt
        Ctrl-C or SIGTERM: the running workers are terminated first.
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            job_fn(job, advance)
        return []
    return _run_pool(job_fn, list(jobs), min(workers, len(jobs)), advance)


def die_with_parent(parent: int) -> None:
    """In a helper process: end this process when ``parent`` (the process that started it) is gone.

    A killed ``losslab compare`` (SIGKILL, the OOM killer, a closed terminal)
    cannot shut its helpers down; without this they would train on, or sleep
    forever on a dead queue. On Linux the kernel sends SIGKILL at the parent's
    death (``prctl(PR_SET_PDEATHSIG)``, see prctl(2)); everywhere a daemon thread
    also polls ``os.getppid()`` once a second. A parent that died before this
    call ends the process at once. The run directory keeps its last checkpoint,
    so the next ``compare`` resumes the job.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl: the thread below
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True, name="losslab-parent-watch").start()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# The worker's end of the progress queue, set by _init_worker.
_PROGRESS: Any = None


def _in_worker(job_fn: JobFn, job: Any) -> tuple[Any, int, int]:
    """Run one job in a worker process; progress goes to the pool's queue in batches.

    Returns ``(result, posted, rest)``: the updates posted on the queue and those
    not yet posted (the parent adds them, and waits for the posted ones to arrive).
    """
    buf, posted = [0], [0]

    def progress(n: int) -> None:
        buf[0] += n
        if buf[0] >= PROGRESS_BATCH:
            _PROGRESS.put(buf[0])
            posted[0] += buf[0]
            buf[0] = 0

    res = job_fn(job, progress)
    return res, posted[0], buf[0]


def _init_worker(parent: int, queue, counter) -> None:
    """Pool initializer: die with ``parent``, keep the progress queue, take this worker's index (0, 1, ...).

    ``train.device=auto`` maps the index to a GPU (``LOSSLAB_WORKER_INDEX``).
    """
    global _PROGRESS
    die_with_parent(parent)
    _PROGRESS = queue
    with counter.get_lock():
        os.environ["LOSSLAB_WORKER_INDEX"] = str(counter.value)
        counter.value += 1


def _run_pool(job_fn: JobFn, jobs: list, workers: int, advance: Callable[[int], None]) -> list:
    # Only "spawn" workers and no Manager: a forked helper would inherit the flock on OUT/.lock
    # (rundir.lock_dir) and keep it after this process dies; a spawned one execs a fresh interpreter,
    # which gets only the descriptors multiprocessing passes it (the lock's is close-on-exec).
    ctx = mp.get_context("spawn")
    died: list[tuple[Any, BaseException]] = []
    q, counter = ctx.Queue(), ctx.Value("i", 0)
    posted, got = [0], [0]  # updates the finished jobs posted on the queue; updates taken from it
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(), q, counter))
    pending: set = set()
    try:
        futures = {pool.submit(_in_worker, job_fn, j): j for j in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            got[0] += _drain(q, advance)
            for f in done:
                exc = f.exception()
                if isinstance(exc, UserError):
                    raise exc
                if exc is not None:  # the worker itself died; its job stays unfinished
                    died.append((futures[f], exc))
                else:
                    posted[0] += f.result()[1]
                    advance(f.result()[2])
        got[0] += _drain(q, advance, wait_for=posted[0] - got[0])
    except BaseException:  # Ctrl-C / kill: stop the running jobs now; they resume from checkpoints
        for f in pending:
            f.cancel()
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        try:  # a signal during the first submit leaves the pool's manager thread created but not started:
            pool.shutdown(wait=True, cancel_futures=True)  # joining it raises, which must not replace the signal
        except RuntimeError:
            pass
        raise
    pool.shutdown(wait=True)
    q.close()
    return died


def _drain(q, advance: Callable[[int], None], wait_for: int = 0) -> int:
    """Pass the progress on the queue to ``advance``; wait (at most 5 s) until ``wait_for`` updates came.

    Returns the updates taken from the queue.
    """
    total = 0
    while True:
        try:
            n = q.get(timeout=5.0) if total < wait_for else q.get_nowait()
        except queue_mod.Empty:
            return total
        advance(n)
        total += n
