"""The comparison: jobs, aggregation, confidence intervals, recommendation, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from losslab import compare as cmp
from losslab import config as C
from losslab import io
from losslab.errors import UserError


def test_mean_ci95_matches_scipy_t_interval():
    vals = [0.31, 0.42, 0.27, 0.5]
    m, (lo, hi) = cmp.mean_ci95(vals)
    ref = stats.t.interval(0.95, len(vals) - 1, loc=np.mean(vals), scale=stats.sem(vals))
    np.testing.assert_allclose([m, lo, hi], [np.mean(vals), *ref], rtol=1e-12)
    assert cmp.mean_ci95([2.0]) == (2.0, None)


def test_gradient_diagnosis_flags_a_vanished_generator_gradient():
    rows = [{"g_grad_norm": 1.0 * 10 ** (-i / 10), "d_acc": 1.0} for i in range(40)]
    d = cmp.gradient_diagnosis(rows)
    assert d["g_grad_vanished"] is True
    # median of the first 4 rows: the mean of the middle two
    np.testing.assert_allclose(d["g_grad_norm_initial"], (10 ** -0.1 + 10 ** -0.2) / 2, rtol=1e-12)
    flat = [{"g_grad_norm": 0.5 + 0.01 * (i % 3)} for i in range(40)]
    assert cmp.gradient_diagnosis(flat)["g_grad_vanished"] is False


def _fake_compare(out, runs):
    """A compare directory written by hand: (loss, seed, status, w1, modes_covered)."""
    losses = list(dict.fromkeys(r[0] for r in runs))
    seeds = max(r[1] for r in runs) + 1
    io.atomic_write_json(out / "compare.json", {"family": "gan", "data": "ring8", "losses": losses,
                                                "seeds": seeds, "metric": None,
                                                "config": C.Config().to_dict()})
    for loss, seed, status, w1, modes in runs:
        metrics = {"w1": w1, "modes_covered": modes, "num_modes": 8} if status == "ok" else {}
        io.atomic_write_json(out / f"runs/{loss}/seed{seed}/result.json", {
            "loss": loss, "seed": seed, "status": status, "metrics": metrics, "g_updates": 10,
            "d_updates": 10, "wall_seconds": 1.0, "diverged_at": 5 if status == "diverged" else None})


def test_ranking_and_recommendation_from_run_dirs_alone(tmp_path):
    _fake_compare(tmp_path, [
        ("ns", 0, "ok", 0.30, 8), ("ns", 1, "ok", 0.34, 8), ("ns", 2, "ok", 0.32, 7),
        ("hinge", 0, "ok", 0.10, 8), ("hinge", 1, "diverged", None, None), ("hinge", 2, "ok", 0.12, 8),
        ("lsgan", 0, "ok", 0.60, 3), ("lsgan", 1, "ok", 0.70, 2), ("lsgan", 2, "ok", 0.65, 8),
    ])
    res = cmp.aggregate(tmp_path)
    assert [e["loss"] for e in res["ranking"]] == ["hinge", "ns", "lsgan"]  # by mean W1, lower first
    ns = next(e for e in res["ranking"] if e["loss"] == "ns")
    np.testing.assert_allclose(ns["mean"], 0.32, rtol=1e-12)
    np.testing.assert_allclose(ns["collapse_rate"], 1 / 3, rtol=1e-12)
    hinge = res["ranking"][0]
    np.testing.assert_allclose(hinge["stability"], 2 / 3, rtol=1e-12)
    # hinge is best on average but diverged once: the recommendation is ns, and says why.
    rec = res["recommendation"]
    assert rec["loss"] == "ns"
    text = " ".join(rec["reasons"])
    assert "diverged in 1/3 seeds" in text and "8/8, 8/8, 7/8" in text
    assert "lsgan: mode collapse (at least one mode missed) in 2/3 seeds" in text
    assert json.loads((tmp_path / "results.json").read_text())["ranking"][0]["loss"] == "hinge"


def test_unknown_metric_lists_the_measured_ones(tmp_path):
    _fake_compare(tmp_path, [("ns", 0, "ok", 0.3, 8)])
    with pytest.raises(UserError, match="choose from: modes_covered, num_modes, w1"):
        cmp.aggregate(tmp_path, metric="fid")


def _tiny(steps=8):
    return C.resolve("vector", sets=[f"train.steps={steps}", "train.batch_size=64", "train.log_every=4",
                                     "train.checkpoint_every=4", "train.n_eval=300", "model.hidden=32",
                                     "model.layers=2"])


def test_tiny_compare_end_to_end_and_resume(tmp_path):
    cfg = _tiny()
    res = cmp.run_compare(cfg, losses=["ns", "wgan-gp"], seeds=2, out=tmp_path, quiet=True)
    assert {(r["loss"], r["seed"], r["status"]) for r in res["runs"]} == {
        (l, s, "ok") for l in ("ns", "wgan-gp") for s in (0, 1)}
    for r in res["runs"]:
        assert r["metrics"]["num_modes"] == 8 and 0 <= r["metrics"]["modes_covered"] <= 8
        assert r["metrics"]["w1"] > 0
    wgp = next(e for e in res["ranking"] if e["loss"] == "wgan-gp")
    assert wgp["d_updates_mean"] == 8 * 5
    assert res["budget"]["g_updates"] == 8
    with np.load(tmp_path / "reference.npz") as z:
        assert z["real"].shape == (300, 2) and z["modes"].shape == (8, 2)
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
