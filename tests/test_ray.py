"""The Ray backend: the same comparison as the process pool, on a local Ray and a two-node cluster.

Needs Ray (the ``test`` extra installs it); without it only the tests that need
no Ray run. Ray starts slowly on a small machine, so one Ray (a local one, then
a two-node ``ray.cluster_utils.Cluster``) serves every test of this module in turn.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from losslab import backends, rundir
from losslab import compare as cmp
from losslab import config as C
from losslab.backends import ray as ray_backend
from losslab.cli import main
from losslab.errors import UserError

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install 'losslab[ray]')")

LOSSES = ["ns", "hinge"]
SEEDS = 1
STEPS = 50
SETS = [f"train.steps={STEPS}", "train.batch_size=64", "train.log_every=10", "train.checkpoint_every=20",
        "train.n_eval=300", "model.hidden=32", "model.layers=2"]


def _cfg():
    return C.resolve("vector", sets=SETS)


def _runs(out: Path) -> dict:
    """(loss, seed) -> what a run's result must repeat on any backend: status, update counts, metrics."""
    res = json.loads((out / rundir.RESULTS).read_text())
    return {(r["loss"], r["seed"]): {k: r[k] for k in ("status", "g_updates", "d_updates", "metrics")}
            for r in res["runs"]}


def _assert_same_runs(got: dict, want: dict) -> None:
    from losslab.losses import GAN_LOSSES

    assert got.keys() == want.keys()
    for key, w in want.items():
        g = got[key]
        n_critic = GAN_LOSSES[key[0]].defaults["n_critic"]  # critic updates per generator update
        assert (g["status"], g["g_updates"], g["d_updates"]) == (w["status"], w["g_updates"], w["d_updates"]) \
            == ("ok", STEPS, STEPS * n_critic), key
        assert g["metrics"].keys() == w["metrics"].keys() and w["metrics"], key
        for name, value in w["metrics"].items():  # same seeds, same arithmetic: equal to rounding
            np.testing.assert_allclose(np.asarray(g["metrics"][name], dtype=np.float64),
                                       np.asarray(value, dtype=np.float64), rtol=1e-6, atol=1e-9,
                                       err_msg=f"{key} {name}")


# --------------------------------------------------------------------------- without Ray


def test_select_routes_by_name_and_rejects_bad_options(tmp_path):
    assert backends.select("local") is backends.run_jobs
    with pytest.raises(UserError, match="--address needs --backend ray"):
        backends.select("local", address="auto")
    with pytest.raises(UserError, match="unknown backend 'dask'; choose from: local, ray"):
        backends.select("dask")
    with pytest.raises(UserError, match="must be absolute"):
        ray_backend.run_jobs(lambda job, progress: None, [1], workers=1, advance=print,
                             shared_path="relative/compare.json")


def test_missing_ray_is_a_user_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'losslab\[ray\]'"):
        backends.select("ray")
    with pytest.raises(SystemExit) as e:
        main(["compare", "--losses", "ns", "--seeds", "1", "--steps", "2", "--backend", "ray",
              "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "losslab[ray]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before any work


# --------------------------------------------------------------------------- one Ray per engine


@pytest.fixture(scope="module")
def pool_runs(tmp_path_factory):
    """The reference: the same comparison on the local process pool (2 workers)."""
    out = tmp_path_factory.mktemp("pool")
    cmp.run_compare(_cfg(), losses=LOSSES, seeds=SEEDS, out=out, workers=2, quiet=True)
    return _runs(out)


@pytest.fixture(scope="module", params=["local", "cluster"])
def engine(request):
    """A local Ray with 2 CPUs, then a two-node cluster (head + 1 worker node, 1 CPU each)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'losslab[ray]')")
    from ray import cloudpickle

    # The job functions of this module travel to the workers by value: tests/ is not importable there.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    store = 80 * 1024**2  # tiny objects only; keep the shared memory small
    if request.param == "local":
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=store, log_to_driver=False)
        yield "local"
        ray.shutdown()
        return
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=store)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield "cluster"
    finally:
        ray.shutdown()
        cluster.shutdown()


@needs_ray
def test_cli_compare_on_ray_repeats_the_process_pool(engine, pool_runs, tmp_path, capsys):
    out = tmp_path / "ray-out"
    main(["compare", "--losses", ",".join(LOSSES), "--seeds", str(SEEDS), "--backend", "ray",
          "--out", str(out), "--quiet", *[a for s in SETS for a in ("--set", s)]])
    _assert_same_runs(_runs(out), pool_runs)
    assert (out / "report.html").is_file()  # `losslab report` reads the Ray output as it is
    assert "report:" in capsys.readouterr().out


def _dies_once(marker: str, kill_at: int, cfg, out, job, progress):
    """:func:`losslab.compare.run_job` whose worker process exits at update ``kill_at``, once.

    The first attempt of loss "ns" kills its own process (as an OOM kill or a lost
    node would); the retry writes the update count it resumed from to ``marker.resumed``.
    """
    from losslab.compare import run_job  # in the worker: the real one (the test patches the caller's)

    done = [0]

    def counting(n: int) -> None:
        if job.loss == "ns" and done[0] == 0 and os.path.exists(marker):
            Path(marker + ".resumed").write_text(str(n))
        done[0] += n
        progress(n)
        if job.loss == "ns" and done[0] >= kill_at and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)

    return run_job(cfg, out, job, counting)


def _group_dies_once(marker: str, kill_at: int, cfg, out, group, progress, overrides=None):
    """compare's job function (:func:`losslab.compare.run_group`) with each job run by :func:`_dies_once`."""
    return [_dies_once(marker, kill_at, cfg, out, job, progress) for job in group]


@needs_ray
def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(engine, pool_runs, tmp_path, monkeypatch):
    if engine == "cluster":  # retries are Ray's own, the same on one node or two; keep CI's time for the rest
        pytest.skip("the retry is tested on the local Ray")
    marker = str(tmp_path / "killed")
    # The backend ships compare's job function (run_group) by reference; patch it, not run_job.
    monkeypatch.setattr(cmp, "run_group", partial(_group_dies_once, marker, 30))
    out = tmp_path / "ray-out"
    cmp.run_compare(_cfg(), losses=LOSSES, seeds=SEEDS, out=out, workers=2, quiet=True, backend="ray")
    assert Path(marker).is_file()  # the worker did die
    # The retry resumed from the last checkpoint before update 30 (checkpoint_every=20), not from 0.
    assert Path(marker + ".resumed").read_text() == "20"
    _assert_same_runs(_runs(out), pool_runs)


def _flaky(marker_dir: str, job, progress):
    """A resumable stand-in job: 100 updates; attempt 1 dies after 40, attempt 2 'resumes' at 40."""
    marker = Path(marker_dir) / f"job{job}"
    if not marker.exists():
        Path(marker_dir, f"node{job}").write_text(_node_id())
        progress(40)
        marker.write_text("died")
        time.sleep(0.5)
        os._exit(1)
    progress(40)  # what a resumed run reports first: the updates of its checkpoint
    time.sleep(1.0)  # both tasks run at once (one per CPU, one per node on the cluster)
    progress(60)
    if job == 2:
        raise ValueError("a bug in one job")
    return job


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


@needs_ray
def test_progress_counts_a_retried_job_once_and_errors_are_reported(engine, tmp_path):
    seen: list[int] = []
    died = ray_backend.run_jobs(partial(_flaky, str(tmp_path)), [1, 2], workers=2, advance=seen.append)
    assert sum(seen) == 2 * 100  # the 40 updates before the crash are not counted again
    assert [(job, type(exc).__name__) for job, exc in died] == [(2, "ValueError")]
    assert "a bug in one job" in str(died[0][1])
    if engine == "cluster":  # one CPU per node: the first attempts ran at once, on the two nodes
        assert (tmp_path / "node1").read_text() != (tmp_path / "node2").read_text()


def _user_error(job, progress):
    raise UserError(f"bad job {job}")


@needs_ray
def test_user_error_in_a_task_is_raised_and_impossible_tasks_are_refused(engine, tmp_path):
    if engine == "cluster":
        pytest.skip("error routing does not depend on the number of nodes; tested on the local Ray")
    with pytest.raises(UserError, match="bad job 7"):
        ray_backend.run_jobs(_user_error, [7], workers=2, advance=print)
    with pytest.raises(UserError, match="must be on storage every node shares"):
        ray_backend.run_jobs(_user_error, [1], workers=2, advance=print,
                             shared_path=str(tmp_path / "not-there" / rundir.COMPARE))
    # A task no node can hold would wait forever: refused (each node here has 1-2 CPUs, no GPU).
    with pytest.raises(UserError, match="asks for 1 GPUs but the largest node has 0"):
        ray_backend.run_jobs(_user_error, [1], workers=2, advance=print, num_gpus_per_task=1)
    with pytest.raises(UserError, match="asks for 3 CPUs but the largest node has [12]"):
        ray_backend.run_jobs(_user_error, [1], workers=2, advance=print, num_cpus_per_task=3)
