"""Engines that run a comparison's independent jobs.

A backend takes a picklable *job function* ``job_fn(job, progress) -> result``
and a list of jobs, and runs every job once, reporting progress (generator,
denoiser or encoder updates done) through ``advance(n)`` in the calling
process. :mod:`losslab.backends.local` runs them in this process or in a
local process pool; another engine (Ray) can sit behind the same
``run_jobs(job_fn, jobs, *, workers, advance)``, because a job writes only
its own run directory and the job function needs nothing but its arguments.
"""

from losslab.backends.local import default_workers, run_jobs

__all__ = ["default_workers", "run_jobs"]
