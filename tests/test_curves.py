"""Quality curves, the converged rule, time budgets, seed ranges and paired initial weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from losslab import compare as cmp
from losslab import config as C
from losslab import rundir
from losslab.convergence import converged_rate, is_converged, mean_curve, suggested_budget
from losslab.errors import UserError
from losslab.train import gan
from losslab.train import loop
from losslab.train.loop import curve_steps, train_run


def _cfg(steps=40, *extra):
    return C.resolve("vector", sets=[f"train.steps={steps}", "train.batch_size=64", "train.log_every=5",
                                     "train.checkpoint_every=20", "train.n_eval=300", "train.curve_n=300",
                                     "model.hidden=32", "model.layers=2", *extra])


def _run(tmp, cfg, loss="ns", seed=0, progress=None):
    ds = cmp.load_data(cfg)
    return train_run(tmp, cfg, ds, loss=loss, seed=seed, evaluate=cmp.make_evaluator(cfg, ds),
                     curve_evaluate=cmp.make_evaluator(cfg, ds, n=cfg.train.curve_n), progress=progress)


def _pts(ys, budget=800, key="w1"):
    return [{"g_updates": budget * (i + 1) / len(ys), key: y} for i, y in enumerate(ys)]


# --------------------------------------------------------------------------- the rule, on synthetic curves

def test_converged_rule_on_synthetic_curves():
    flat = _pts([5, 4, 3, 2.5, 2.2, 2.1, 2.08, 2.07])  # last quarter: 2.1 -> 2.07, 1.4% better
    falling = _pts([8, 7, 6, 5, 4, 3, 2, 1])  # 3 -> 1: 67% better
    assert is_converged(flat, "w1", False) is True
    assert is_converged(falling, "w1", False) is False
    # Worse at the end: more budget would not help -> converged.
    assert is_converged(_pts([5, 4, 3, 2, 1, 1, 1.5, 2]), "w1", False) is True
    # Just either side of 5%: a straight line past half the budget, 1.0 at 0.75 B, 4.9% vs 5.1% per quarter.
    assert is_converged(_pts([2, 2, 2, 2, 1.0245, 1.0, 0.9755, 0.951]), "w1", False) is True
    assert is_converged(_pts([2, 2, 2, 2, 1.0255, 1.0, 0.9745, 0.949]), "w1", False) is False
    # Higher is better: the mirror image.
    assert is_converged(_pts([0.1, 0.2, 0.4, 0.6, 0.7, 0.8, 0.81, 0.82], key="acc"), "acc", True) is True
    assert is_converged(_pts([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], key="acc"), "acc", True) is False
    # Undeterminable: one point; no point after 0.75 B of a longer budget.
    assert is_converged(_pts([1.0]), "w1", False) is None
    assert is_converged(_pts([3, 2, 1, 1], budget=400), "w1", False, budget=800) is None
    assert converged_rate([{"converged": True}, {"converged": False}, {"converged": None}, {}]) == 0.5
    assert converged_rate([{}]) is None


def test_suggested_budget_extrapolates_the_shrinking_improvement():
    # Third quarter 2.5 -> 2.0 (r1 = 0.2), last 2.0 -> 1.85 (r2 = 0.075); q = 0.375:
    # 0.075 q^n < 0.05 first at n = 1 -> 800 (1 + 1/4) = 1000.
    s = suggested_budget({"a": [_pts([5, 4, 3, 2.5, 2.2, 2.0, 1.9, 1.85])]}, "w1", False, 800)
    assert s["value"] == 1000
    # Not shrinking (a growing relative gain per quarter) -> more than 4x: the cap, marked capped; converged ->
    # the budget; the max over losses.
    s = suggested_budget({"a": [_pts([8, 7, 6, 5, 4, 3, 2, 1])], "b": [_pts([5, 4, 3, 2.5, 2.2, 2.1, 2.08, 2.07])]},
                         "w1", False, 800)
    assert s["per_loss"] == {"a": 3200.0, "b": 800.0} and s["value"] == 3200 and s["capped_losses"] == ["a"]
    m = mean_curve([_pts([1, 2]), _pts([3, 4])], "w1")
    torch.testing.assert_close(torch.as_tensor(m["mean"]), torch.tensor([2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(torch.as_tensor(m["std"]), torch.tensor([1.0, 1.0], dtype=torch.float64))


def test_curve_steps_spread_evenly_and_end_at_the_budget():
    assert curve_steps(1500, 8) == [188, 375, 562, 750, 938, 1125, 1312, 1500]
    assert curve_steps(3, 8) == [1, 2, 3]
    assert curve_steps(100, 0) == []


# --------------------------------------------------------------------------- a run's curve

def test_run_curve_has_8_points_last_equals_final_and_does_not_change_training(tmp_path, single_thread):
    cfg = _cfg()
    res = _run(tmp_path / "a", cfg)
    assert res["status"] == "ok"
    curve = res["curve"]
    assert [p["g_updates"] for p in curve] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert all(a["wall_seconds"] < b["wall_seconds"] for a, b in zip(curve, curve[1:]))
    # curve_n == n_eval and the same sample seed and reference seed: the last point IS the final evaluation.
    assert curve[-1]["w1"] == res["metrics"]["w1"]
    assert curve[-1]["modes_covered"] == res["metrics"]["modes_covered"]
    assert rundir.read_curve(tmp_path / "a") == json.loads(json.dumps(curve))
    # Each point carries its evaluation error from a second, independent draw: positive for W1 (another
    # sample of the same model lies elsewhere), 0 for nothing that is not a ranked metric.
    assert all(p["eval_sd"]["w1"] > 0 and set(p["eval_sd"]) <= {"w1", "modes_covered", "high_quality",
                                                               "reverse_kl"} for p in curve)
    # converged, by the rule written out: the last point against the one at 0.75 B = 30 updates, within
    # max(5%, 2 sqrt(2) s), s the RMS of eval_sd over the points past B / 2
    start, end = curve[5]["w1"], curve[-1]["w1"]
    s_pool = (sum(p["eval_sd"]["w1"] ** 2 for p in curve[4:]) / 4) ** 0.5
    assert res["curve_metric"] == "w1"
    assert res["converged"] is ((start - end) <= max(0.05 * abs(start), 2 * 2 ** 0.5 * s_pool))
    assert res["curve_seconds"] > 0 and res["train_seconds"] + res["curve_seconds"] == pytest.approx(
        res["wall_seconds"], rel=1e-6)
    # The curve draws no training randomness: without it the run ends with the same samples.
    off = _run(tmp_path / "b", _cfg(40, "train.curve_points=0"))
    assert off["curve"] == [] and off["converged"] is None
    torch.testing.assert_close(rundir.read_samples(tmp_path / "a"), rundir.read_samples(tmp_path / "b"))


def test_curves_switched_off_do_not_make_the_verdict_undertrained(tmp_path, single_thread):
    """train.curve_points=0 is the documented way to switch curves off: every run's convergence is then
    undetermined (None), which must count neither way (it made every such comparison 'undertrained')."""
    res = cmp.run_compare(_cfg(10, "train.curve_points=0"), losses=["ns", "hinge"], seeds=2, out=tmp_path,
                          quiet=True)
    assert all(r["converged"] is None for r in res["runs"])
    assert res["recommendation"]["verdict"] != "undertrained"
    assert all(e["converged_rate"] is None for e in res["ranking"])
    assert res["budget"]["suggested_steps"] is None and res["noise_floor_curve"] is None


def test_curve_survives_resume(tmp_path, single_thread):
    cfg = _cfg()
    whole = _run(tmp_path / "whole", cfg)

    def stop_at_27(n, seen=[0]):
        seen[0] += n
        if seen[0] >= 27:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # after the point at 25, past the checkpoint at 20
        _run(tmp_path / "cut", cfg, progress=stop_at_27)
    assert [p["g_updates"] for p in rundir.read_curve(tmp_path / "cut")] == [5, 10, 15, 20, 25]
    res = _run(tmp_path / "cut", cfg)  # resumes at the checkpoint of update 20; point 25 is evaluated again
    assert [p["g_updates"] for p in res["curve"]] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [p["w1"] for p in res["curve"]] == [p["w1"] for p in whole["curve"]]


def test_budget_seconds_stops_early_and_records_the_updates(tmp_path, single_thread):
    cfg = _cfg(100_000, "train.budget_seconds=0.5")
    res = _run(tmp_path, cfg)
    assert res["status"] == "ok" and res["budget"] == {"seconds": 0.5}
    assert 1 <= res["g_updates"] < 100_000
    assert res["train_seconds"] >= 0.5
    ck = rundir.load_checkpoint(tmp_path)[1]
    assert ck["g_updates"] == res["g_updates"] and ck["train_seconds"] >= 0.5
    assert res["curve"][-1]["g_updates"] == res["g_updates"] and 1 <= len(res["curve"]) <= 8
    # Resume counts the seconds already spent: a finished budget trains no more.
    (tmp_path / rundir.RESULT).unlink()
    again = _run(tmp_path, cfg)
    assert again["g_updates"] == res["g_updates"]


# --------------------------------------------------------------------------- seeds

def test_seed_start_plans_seeds_and_the_verdict_reads_them_back(tmp_path, single_thread):
    jobs = rundir.plan(["ns"], 2, seed_start=3)
    assert [(j.seed, j.run_dir) for j in jobs] == [(3, "runs/ns/seed3"), (4, "runs/ns/seed4")]
    cfg = _cfg(10, "train.curve_points=2")
    res = cmp.run_compare(cfg, losses=["ns"], seeds=1, out=tmp_path, quiet=True, seed_start=3)
    assert [(r["seed"], r["status"]) for r in res["runs"]] == [(3, "ok")]
    assert json.loads((tmp_path / rundir.COMPARE).read_text())["seed_start"] == 3
    assert res["budget"]["seed_start"] == 3 and "converged_rate" in res["ranking"][0]
    assert (tmp_path / "runs/ns/seed3/result.json").exists() and not (tmp_path / "runs/ns/seed0").exists()
    with pytest.raises(UserError, match="seeds start at 3"):
        cmp.run_compare(cfg, losses=["ns"], seeds=1, out=tmp_path, quiet=True, seed_start=0)


def test_same_seed_gives_every_loss_the_same_initial_generator(single_thread):
    cfg = _cfg()
    ds = cmp.load_data(cfg)
    # Different critics (discriminator with/without layer norm, autoencoder) and n_critic:
    # G is built first after torch.manual_seed(seed), so its initial weights match.
    states = {loss: gan.init_state(cfg, ds, loss, 7) for loss in ("ns", "wgan-gp", "ebgan")}
    ref = states["ns"].G.state_dict()
    for loss in ("wgan-gp", "ebgan"):
        for k, v in states[loss].G.state_dict().items():
            torch.testing.assert_close(v, ref[k], rtol=0, atol=0)
    other = gan.init_state(cfg, ds, "ns", 8).G.state_dict()
    assert any(not torch.equal(v, ref[k]) for k, v in other.items())


def test_contrastive_curve_uses_a_probe_on_a_subset(tmp_path, monkeypatch, single_thread):
    """Each point probes curve_n test and at most CONTRASTIVE_CURVE_TRAIN train images: the subsets of seed 0,
    and for the second evaluation draw those of seed 1; the point's value is the first probe's accuracy."""
    cfg = C.Config()
    cfg.data.name = "digits"
    cfg.train.steps, cfg.train.batch_size, cfg.train.curve_points, cfg.train.curve_n = 6, 32, 2, 200
    ds = cmp.load_data(cfg)
    seen = []
    real_probe = loop.linear_probe_accuracy

    def probe(ftr, ytr, fte, yte):
        acc = real_probe(ftr, ytr, fte, yte)
        seen.append((len(ftr), yte.clone(), acc))
        return acc

    monkeypatch.setattr(loop, "linear_probe_accuracy", probe)
    res = train_run(tmp_path, cfg, ds, loss="nt-xent", seed=0, family="contrastive")
    assert res["status"] == "ok" and res["curve_metric"] == "linear_probe"
    assert [p["g_updates"] for p in res["curve"]] == [3, 6]
    want = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        torch.randperm(len(ds.train), generator=g)  # the train subset is drawn first
        want.append(ds.test_labels[torch.randperm(len(ds.test), generator=g)[:200]])
    assert len(seen) >= 4  # two draws per point (the final evaluation probes on its own rows afterwards)
    for i, p in enumerate(res["curve"]):
        (n0, y0, acc0), (n1, y1, acc1) = seen[2 * i], seen[2 * i + 1]
        assert n0 == n1 == min(loop.CONTRASTIVE_CURVE_TRAIN, len(ds.train)) == 1437
        torch.testing.assert_close(y0, want[0])
        torch.testing.assert_close(y1, want[1])
        assert p["linear_probe"] == acc0
        np.testing.assert_allclose(p["eval_sd"]["linear_probe"], abs(acc0 - acc1) / 2 ** 0.5, rtol=1e-12)
