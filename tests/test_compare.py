"""The comparison: jobs on the local backend, the comparison directory, resume (statistics: test_verdict)."""

from __future__ import annotations

import numpy as np
import pytest

from losslab import compare as cmp
from losslab import config as C
from losslab import io, rundir
from losslab.backends import default_workers, run_jobs
from losslab.errors import UserError


def test_plan_comes_from_rundir_and_names_each_run_directory():
    jobs = rundir.plan(["ns", "ddpm"], 2)
    assert [(j.loss, j.seed, j.run_dir, j.family) for j in jobs] == [
        ("ns", 0, "runs/ns/seed0", "gan"), ("ns", 1, "runs/ns/seed1", "gan"),
        ("ddpm", 0, "runs/ddpm/seed0", "diffusion"), ("ddpm", 1, "runs/ddpm/seed1", "diffusion")]


def test_local_backend_runs_every_job_inline_with_its_progress():
    seen, done = [], []
    died = run_jobs(lambda job, progress: (seen.append(job), progress(job)), [3, 5, 7], workers=1,
                    advance=done.append)
    assert died == [] and seen == [3, 5, 7] and done == [3, 5, 7]
    assert 1 <= default_workers() <= 8


def _tiny(steps=8):
    return C.resolve("vector", sets=[f"train.steps={steps}", "train.batch_size=64", "train.log_every=4",
                                     "train.checkpoint_every=4", "train.n_eval=300", "model.hidden=32",
                                     "model.layers=2"])


def test_tiny_compare_end_to_end_and_resume(tmp_path):
    cfg = _tiny()
    res = cmp.run_compare(cfg, losses=["ns", "wgan-gp"], seeds=2, out=tmp_path, quiet=True)
    assert {(r["loss"], r["seed"], r["status"]) for r in res["runs"]} == {
        (l, s, "ok") for l in ("ns", "wgan-gp") for s in (0, 1)}
    with np.load(tmp_path / rundir.REFERENCE) as z:
        modes, std = z["modes"].astype(np.float64), float(z["mode_std"])
    for r in res["runs"]:
        # The mode counts in result.json are those of the run's own samples.npz, recounted here by
        # hand: nearest ring mode, high quality within 3 std (VEEGAN, arXiv:1705.07761, Sec. 5.1).
        with np.load(tmp_path / r["run_dir"] / rundir.SAMPLES) as z:
            x = z["samples"].astype(np.float64)
        dist = np.linalg.norm(x[:, None, :] - modes[None], axis=2)
        near, hq = dist.argmin(axis=1), dist.min(axis=1) <= 3 * std
        counts = np.bincount(near[hq], minlength=8)
        m = r["metrics"]
        assert m["num_modes"] == 8 and m["mode_counts"] == counts.tolist()
        assert m["modes_covered"] == int((counts > 0).sum())
        np.testing.assert_allclose(m["high_quality"], hq.mean(), rtol=1e-12)
        assert m["w1"] > 0
    wgp = next(e for e in res["ranking"] if e["loss"] == "wgan-gp")
    assert wgp["d_updates_mean"] == 8 * 5
    assert res["budget"]["g_updates"] == 8
    with np.load(tmp_path / rundir.REFERENCE) as z:
        assert z["real"].shape == (300, 2) and z["modes"].shape == (8, 2)
    spec = io.read_json(tmp_path / rundir.COMPARE)
    assert (spec["family"], spec["kind"], spec["shape"], spec["losses"]) == ("gan", "vector", [2], ["ns", "wgan-gp"])
    # Resume: nothing is trained again.
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*/result.json")}
    cmp.run_compare(cfg, losses=["ns", "wgan-gp"], seeds=2, out=tmp_path, quiet=True)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*/result.json")} == stamp
    # A different budget in the same directory is refused rather than mixed.
    with pytest.raises(UserError, match="different config"):
        cmp.run_compare(_tiny(steps=9), losses=["ns"], seeds=1, out=tmp_path, quiet=True)


def test_compare_with_two_workers(tmp_path):
    res = cmp.run_compare(_tiny(steps=4), losses=["hinge", "lsgan"], seeds=1, out=tmp_path, workers=2,
                          quiet=True)
    assert [r["status"] for r in res["runs"]] == ["ok", "ok"]


@pytest.mark.slow
def test_tiny_compare_on_real_mnist(tmp_path, mnist_dir):
    from losslab.data import load_dataset

    ds = load_dataset("mnist", data_dir=str(mnist_dir))
    # The files hold what shared/data/README.md says they hold.
    assert tuple(ds.train.shape) == (60000, 1, 28, 28) and tuple(ds.test.shape) == (10000, 1, 28, 28)
    counts = np.bincount(ds.train_labels.numpy(), minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    cfg = C.resolve("image", sets=["data.name=mnist", f"data.data_dir={mnist_dir}", "data.n_train=2000",
                                   "train.steps=3", "train.n_eval=500", "train.log_every=1"])
    res = cmp.run_compare(cfg, losses=["ns"], seeds=1, out=tmp_path, quiet=True)
    run = res["runs"][0]
    assert run["status"] == "ok", run.get("error")
    assert run["metrics"]["fid"] > 0 and run["metrics"]["feature_net"].startswith("classifier-")
    with np.load(tmp_path / "runs/ns/seed0/samples.npz") as z:
        s = z["samples"]
    assert s.shape == (500, 1, 28, 28) and s.min() >= -1 and s.max() <= 1


@pytest.mark.slow
def test_killed_compare_stops_its_workers_and_resumes(tmp_path):
    """`kill` (SIGTERM) on a running compare: exit 130 promptly, no orphan workers, rerun finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    args = [sys.executable, "-m", "losslab", "compare", "--losses", "ns,hinge", "--seeds", "1", "--workers", "2",
            "--out", str(out), "--quiet", "--set", "train.steps=4000", "--set", "train.checkpoint_every=50",
            "--set", "model.hidden=16", "--set", "train.batch_size=32"]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    ck = out / "runs/ns/seed0/checkpoint.safetensors"
    while not ck.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert ck.exists(), "no checkpoint written"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 130
    assert "rerun the same command to resume" in p.stderr.read()
    alive = ["?"]
    for _ in range(50):  # workers are terminated, or notice their parent is gone within a second
        alive = subprocess.run(["pgrep", "-s", str(p.pid)], capture_output=True, text=True).stdout.split()
        if not alive:
            break
        time.sleep(0.2)
    assert alive == []
    assert not (out / "runs/ns/seed0/result.json").exists()
    from losslab import rundir

    done_before = rundir.load_checkpoint(ck.parent)[1]["g_updates"]
    assert 50 <= done_before < 4000
    # Resume with a budget the first run had: the config must match, so rerun the same command.
    p2 = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert p2.returncode == 0, p2.stderr
    res = io.read_json(out / "runs/ns/seed0/result.json")
    assert res["status"] == "ok" and res["g_updates"] == 4000
    assert os.path.exists(out / "report.html")
