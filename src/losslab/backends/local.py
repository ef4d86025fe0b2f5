"""The local backend: jobs inline in this process, or in a pool of worker processes.

:func:`run_jobs` runs the same job function on either path. Workers are
started with ``spawn`` (no forked torch or thread state), report progress
through a queue the parent drains, and end themselves when the parent is
gone, so a killed ``losslab compare`` leaves no orphans; an interrupted job
keeps its last checkpoint and resumes on the next run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
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


def _exit_with_parent(parent: int) -> None:
    """In a worker: end this process when the process that started it is gone.

    A killed ``losslab compare`` (SIGKILL, a closed terminal) cannot shut its
    pool down; without this its workers would train on, or block forever on
    the dead progress queue. The run directory keeps its last checkpoint, so
    the next ``compare`` resumes the job.
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True, name="losslab-parent-watch").start()


def _in_worker(job_fn: JobFn, job: Any, queue, parent: int) -> Any:
    """Run one job in a worker process; progress goes to ``queue`` in batches."""
    _exit_with_parent(parent)
    buf = [0]

    def progress(n: int) -> None:
        buf[0] += n
        if buf[0] >= PROGRESS_BATCH:
            queue.put(buf[0])
            buf[0] = 0

    res = job_fn(job, progress)
    if buf[0]:
        queue.put(buf[0])
    return res


def _number_worker(counter, lock) -> None:
    """Pool initializer: give this worker its index (0, 1, ...); ``train.device=auto`` maps it to a GPU."""
    with lock:
        os.environ["LOSSLAB_WORKER_INDEX"] = str(counter.value)
        counter.value += 1


def _run_pool(job_fn: JobFn, jobs: list, workers: int, advance: Callable[[int], None]) -> list:
    ctx = mp.get_context("spawn")
    died: list[tuple[Any, BaseException]] = []
    with mp.Manager() as manager:
        q = manager.Queue()
        counter, lock = manager.Value("i", 0), manager.Lock()
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_number_worker,
                                 initargs=(counter, lock)) as pool:
            futures = {pool.submit(_in_worker, job_fn, j, q, os.getpid()): j for j in jobs}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    while not q.empty():
                        advance(q.get_nowait())
                    for f in done:
                        exc = f.exception()
                        if isinstance(exc, UserError):
                            raise exc
                        if exc is not None:  # the worker itself died; its job stays unfinished
                            died.append((futures[f], exc))
                while not q.empty():
                    advance(q.get_nowait())
            except BaseException:  # Ctrl-C / kill: stop the running jobs now; they resume from checkpoints
                for f in pending:
                    f.cancel()
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                raise
    return died
