"""Engines that run a comparison's independent jobs.

A backend takes a picklable *job function* ``job_fn(job, progress) -> result``
and a list of jobs, and runs every job once, reporting progress (generator,
denoiser or encoder updates done) through ``advance(n)`` in the calling
process. :mod:`losslab.backends.local` runs them in this process or in a
local process pool; :mod:`losslab.backends.ray` runs them as Ray tasks on one
machine or a cluster. Both have the interface
``run_jobs(job_fn, jobs, *, workers, advance) -> [(job, exception), ...]``,
because a job writes only its own run directory and the job function needs
nothing but its arguments; :func:`select` picks one by name.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Callable

from losslab.backends.local import default_workers, run_jobs
from losslab.errors import UserError, unknown_choice

BACKENDS = ("local", "ray")

__all__ = ["BACKENDS", "default_workers", "run_jobs", "select"]


def select(name: str = "local", *, address: str | None = None, num_cpus_per_task: float = 1,
           num_gpus_per_task: float = 0, shared_path: str | os.PathLike | None = None) -> Callable:
    """The ``run_jobs(job_fn, jobs, *, workers, advance)`` of backend ``name``.

    ``address``, the per-task resources and ``shared_path`` configure the Ray
    backend (:func:`losslab.backends.ray.run_jobs`); the local backend takes none.

    Raises:
        UserError: an unknown backend; ``address`` given to the local backend;
            Ray not installed (for "ray").
    """
    if name == "local":
        if address is not None:
            raise UserError("--address needs --backend ray")
        return run_jobs
    if name == "ray":
        from losslab.backends import ray as ray_backend

        ray_backend.import_ray()  # a missing Ray is said before any work starts
        return partial(ray_backend.run_jobs, address=address, num_cpus_per_task=num_cpus_per_task,
                       num_gpus_per_task=num_gpus_per_task, shared_path=shared_path)
    raise unknown_choice("backend", name, BACKENDS)
