"""The Ray backend: the same job function as Ray tasks, on one machine or a cluster.

:func:`run_jobs` has the interface of :func:`losslab.backends.local.run_jobs`
(plus where and how to run): every job becomes one Ray task running
``job_fn(job, progress)``. It either starts a private local Ray (no address;
``workers`` CPUs) or connects to a running cluster (``address``, e.g.
``"auto"`` on a node where ``ray start`` ran, or ``"ray://host:10001"``).

A job writes only its own run directory and resumes from its last checkpoint,
so a task whose worker process or node dies is simply run again by Ray
(``max_retries``) and continues from that checkpoint. For this the output
directory must be on storage that every node sees under the same absolute
path (NFS, a shared volume): pass it as ``shared_path`` and every task checks
that it sees it before training. Progress reaches the caller through a small
Ray actor; Ctrl-C cancels the tasks (their runs keep their checkpoints).

Ray is an optional dependency (``pip install 'losslab[ray]'``); this module
imports it on first use, so importing it without Ray installed is harmless.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any, Callable, Sequence

from losslab.errors import UserError

# A task posts progress once it has this many updates to report (fewer actor calls).
PROGRESS_BATCH = 25

# Seconds between two polls of the progress actor while tasks run.
POLL_SECONDS = 0.2

# Retries of a task whose worker process (or node) died; each retry resumes from the checkpoint.
DEFAULT_MAX_RETRIES = 3

JobFn = Callable[[Any, Callable[[int], None]], Any]

__all__ = ["DEFAULT_MAX_RETRIES", "import_ray", "run_jobs"]


def import_ray():
    """The ``ray`` module.

    Raises:
        UserError: Ray is not installed (it is the optional extra ``losslab[ray]``).
    """
    try:
        import ray
    except ImportError as e:
        raise UserError("--backend ray needs Ray: pip install 'losslab[ray]'") from e
    return ray


def _progress_actor(ray):
    """A Ray actor class that keeps, per job, the most updates any attempt of it reported.

    An attempt reports its job's running total; a retry that resumes from a
    checkpoint reports the checkpoint's updates first, which are then not
    counted twice.
    """

    @ray.remote(num_cpus=0)
    class Progress:
        def __init__(self) -> None:
            self.done: dict[int, int] = {}

        def report(self, index: int, total: int) -> None:
            self.done[index] = max(self.done.get(index, 0), total)

        def totals(self) -> dict[int, int]:
            return dict(self.done)

    return Progress


def _task(job_fn: JobFn, job: Any, index: int, progress_actor, shared_path: str | None) -> Any:
    """The body of one Ray task: check the shared storage, run the job, report progress in batches."""
    import ray

    if shared_path is not None and not os.path.exists(shared_path):
        raise UserError(f"{shared_path} is not visible on node {socket.gethostname()}: with --backend ray "
                        "the --out directory must be on storage every node shares, under the same path")
    total, sent = [0], [0]

    def progress(n: int) -> None:
        total[0] += n
        if total[0] - sent[0] >= PROGRESS_BATCH:
            progress_actor.report.remote(index, total[0])
            sent[0] = total[0]

    res = job_fn(job, progress)
    if total[0] != sent[0]:  # waited for, so the caller sees it once the task is done
        ray.get(progress_actor.report.remote(index, total[0]))
    return res


def _connect(ray, address: str | None, num_cpus: int) -> bool:
    """Connect to Ray (or start a local one of ``num_cpus``); True when this call did (and must shut it down)."""
    if ray.is_initialized():  # e.g. a caller (or a test) that holds its own connection
        return False
    if address:
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=True)
        except ConnectionError as e:
            raise UserError(f"cannot connect to a Ray cluster at --address {address}: {e}") from e
        return True
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING")
    return True


def _check_feasible(ray, num_cpus: float, num_gpus: float) -> None:
    """Raise UserError when no live node has the resources one task declares (Ray would wait forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for name, need in (("CPU", num_cpus), ("GPU", num_gpus)):
        have = max((r.get(name, 0.0) for r in nodes), default=0.0)
        if need > have:
            raise UserError(f"each Ray task asks for {need:g} {name}s but the largest node has {have:g}; "
                            f"ask for fewer (train.threads sets the CPUs) or add a node with more")


def run_jobs(job_fn: JobFn, jobs: Sequence[Any], *, workers: int, advance: Callable[[int], None],
             address: str | None = None, num_cpus_per_task: float = 1, num_gpus_per_task: float = 0,
             max_retries: int = DEFAULT_MAX_RETRIES,
             shared_path: str | os.PathLike | None = None) -> list[tuple[Any, BaseException]]:
    """Run ``job_fn(job, progress)`` once for every job, each job as one Ray task.

    Parameters
    ----------
    job_fn : callable
        ``job_fn(job, progress) -> result``; it is pickled (cloudpickle) into
        the Ray workers, so it and its arguments must be importable there
        (``losslab`` installed on every node). ``progress(n)`` reports n more
        updates. It must resume from its own checkpoint: a retried task runs
        it again from the start.
    jobs : sequence
        Picklable job descriptions (e.g. :class:`losslab.rundir.Job`).
    workers : int
        Tasks at once on the local Ray started when no ``address`` is given
        (it gets ``workers * num_cpus_per_task`` CPUs); ignored on a cluster,
        whose resources decide how many tasks run at once, and when Ray is
        already initialised in this process (that connection is used as is).
    advance : callable
        ``advance(n)``, called in this process with the progress of all jobs.
    address : str, optional
        A running Ray cluster (``ray.init(address=...)``): ``"auto"``,
        ``"HOST:6379"`` or ``"ray://HOST:10001"``. None: a local Ray.
    num_cpus_per_task, num_gpus_per_task : float
        Resources each task declares (``.options(num_cpus=, num_gpus=)``);
        Ray runs a task only on a node that has them free.
    max_retries : int
        Times Ray runs a task again after its worker process or node died
        (not after an exception raised by ``job_fn``).
    shared_path : path, optional
        An absolute path the caller wrote on shared storage (e.g. the
        comparison's ``compare.json``); every task first checks it exists on
        its node.

    Returns
    -------
    list of (job, exception)
        Jobs that did not finish: the worker died more than ``max_retries``
        times, or ``job_fn`` raised an exception other than UserError.

    Raises
    ------
    UserError
        Ray is not installed; the cluster cannot be reached; no node has
        the resources a task declares (a cluster that autoscales must have
        one such node up); ``shared_path`` is relative, or not visible on a
        node; a job raised one (re-raised at once, the other tasks are
        cancelled).
    KeyboardInterrupt
        Ctrl-C or SIGTERM: the tasks are cancelled first.
    """
    if shared_path is not None and not Path(shared_path).is_absolute():
        raise UserError(f"with --backend ray the output path must be absolute (every node opens it): {shared_path}")
    jobs = list(jobs)
    if not jobs:
        return []
    ray = import_ray()
    from ray.exceptions import RayTaskError

    # A local Ray gets CPUs for `workers` tasks at once.
    started = _connect(ray, address, max(1, math.ceil(max(1, workers) * num_cpus_per_task)))
    try:
        _check_feasible(ray, num_cpus_per_task, num_gpus_per_task)
        Progress = _progress_actor(ray)
        actor = Progress.remote()
        task = ray.remote(_task).options(num_cpus=num_cpus_per_task, num_gpus=num_gpus_per_task,
                                         max_retries=max_retries, retry_exceptions=False)
        fn_ref = ray.put(job_fn)  # shipped once, not once per task
        shared = None if shared_path is None else str(shared_path)
        refs = {task.remote(fn_ref, job, i, actor, shared): i for i, job in enumerate(jobs)}
        pending = list(refs)
        seen: dict[int, int] = {}
        died: list[tuple[Any, BaseException]] = []

        def drain() -> None:
            for i, total in ray.get(actor.totals.remote()).items():
                if total > seen.get(i, 0):
                    advance(total - seen.get(i, 0))
                    seen[i] = total

        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_SECONDS)
                drain()
                for ref in done:
                    try:
                        ray.get(ref)
                    except RayTaskError as e:  # job_fn raised
                        cause = getattr(e, "cause", None) or e
                        if isinstance(cause, UserError):
                            raise cause from None
                        died.append((jobs[refs[ref]], cause))
                    except ray.exceptions.RayError as e:  # the worker or node died, retries spent
                        died.append((jobs[refs[ref]], e))
            drain()  # reports sent just before a task returned
        except BaseException:  # Ctrl-C, kill, a UserError: stop the other tasks; runs resume later
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return died
    finally:
        if started:
            ray.shutdown()
