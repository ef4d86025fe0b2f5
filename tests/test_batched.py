"""Batched seeds: K seeds of one loss trained as one ensemble equal the same seeds trained alone.

Every comparison is against the solo code path (``gan.step`` / ``diffusion.step``
/ ``train_run``), to float tolerance (the batched matrix products sum in another
order); each has a counterpart that must fail (another seed's solo run), so a
comparison that cannot tell seeds apart would be caught.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from losslab import config as C
from losslab import rundir
from losslab.compare import group_jobs
from losslab.convergence import is_converged
from losslab.data import load_dataset
from losslab.errors import UserError
from losslab.models.ensemble import EnsembleLinear, NotBatchable, ensemble_of
from losslab.models.mlp import MLPAutoencoder, MLPDiscriminator, MLPGenerator
from losslab.train import diffusion, gan
from losslab.train.batched import batchable, train_batched
from losslab.train.loop import train_run

FAMILY = {"ns": gan, "wgan-gp": gan, "dragan": gan, "ddpm": diffusion}
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def ring8():
    return load_dataset("ring8")


def cfg_of(steps=12, *sets) -> C.Config:
    return C.resolve("vector", sets=[f"train.steps={steps}", "train.batch_size=64", "train.log_every=4",
                                     "train.checkpoint_every=6", "train.n_eval=200", "model.hidden=32",
                                     "model.layers=2", "train.device=cpu", *sets])


def assert_states_close(mod, a, b, **tol) -> None:
    ta, ma = mod.state_dict(a)
    tb, mb = mod.state_dict(b)
    assert ta.keys() == tb.keys()
    assert ma == mb  # update counts, optimizer param groups, BEGAN k
    for key in ta:
        if key == "rng":
            assert torch.equal(ta[key], tb[key])  # the same draws, in the same order
        else:
            torch.testing.assert_close(ta[key], tb[key], **(tol or TOL), msg=key)


# ----------------------------------------------------------------------------- the ensemble modules


def test_ensemble_linear_is_k_linear_maps():
    torch.manual_seed(0)
    lins = [torch.nn.Linear(3, 5) for _ in range(4)]
    e = EnsembleLinear(4, 3, 5)
    with torch.no_grad():
        for k, lin in enumerate(lins):
            e.weight[k] = lin.weight.T
            e.bias[k, 0] = lin.bias
    x = torch.randn(4, 7, 3)
    want = torch.stack([lin(x[k]) for k, lin in enumerate(lins)])
    torch.testing.assert_close(e(x), want)
    with pytest.raises(AssertionError):  # member 0 is not member 1
        torch.testing.assert_close(e(x)[0], lins[1](x[0]))


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_ensemble_networks_start_as_their_solo_seeds(norm):
    gs, ds = [], []
    for s in (0, 1, 2):
        torch.manual_seed(s)
        gs.append(MLPGenerator(4, 2, 16, 2))
        ds.append(MLPDiscriminator(2, 16, 2, norm))
    eg, ed = ensemble_of(gs), ensemble_of(ds)
    z, x = torch.randn(3, 10, 4), torch.randn(3, 10, 2)
    torch.testing.assert_close(eg(z), torch.stack([g(z[k]) for k, g in enumerate(gs)]))
    torch.testing.assert_close(ed(x), torch.stack([d(x[k]) for k, d in enumerate(ds)]))
    with pytest.raises(AssertionError):
        torch.testing.assert_close(ed(x)[2], ds[0](x[2]))


def test_batchnorm_critics_are_not_batchable_and_autoencoder_critics_stack():
    with pytest.raises(NotBatchable):
        ensemble_of([MLPDiscriminator(2, 8, 2, "batch") for _ in range(2)])
    aes = [MLPAutoencoder(2, 8, 2, 2) for _ in range(3)]
    ens = ensemble_of(aes)
    x = torch.randn(3, 10, 2)
    recon, code = ens(x)
    assert recon.shape == (3, 10, 2) and code.shape == (3, 10, 2)
    for k, ae in enumerate(aes):  # member k is autoencoder k, on its own slice only
        r, c = ae(x[k])
        torch.testing.assert_close(recon[k], r)
        torch.testing.assert_close(code[k], c)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(recon[2], aes[0](x[2])[0])


# ----------------------------------------------------------------------------- the batched step


@pytest.mark.parametrize("loss", ["ns", "wgan-gp", "dragan", "ddpm"])
def test_batched_seeds_equal_their_solo_runs(ring8, loss, single_thread):
    mod, cfg, seeds, n = FAMILY[loss], cfg_of(), (0, 1, 2), 10
    batch = mod.members([mod.init_state(cfg, ring8, loss, s) for s in seeds])
    assert all(batch.stacked.values())
    solos = [mod.init_state(cfg, ring8, loss, s) for s in seeds]
    for i in range(n):
        logs, diverged = mod.step_members(batch, ring8, 64, record=i == n - 1)
        assert diverged == {}
    solo_logs = [[mod.step(st, ring8, 64, record=i == n - 1) for i in range(n)][-1] for st in solos]
    for k, st in enumerate(solos):
        batch.store(k)
        assert_states_close(mod, batch.states[k], st)
        assert logs[k].keys() == solo_logs[k].keys()
        for key in logs[k]:
            assert logs[k][key] == pytest.approx(solo_logs[k][key], rel=1e-3, abs=1e-5), key
    with pytest.raises(AssertionError):  # the comparison tells seeds apart
        assert_states_close(mod, batch.states[0], solos[1])


def test_a_seed_with_nan_weights_is_masked_and_the_others_equal_their_solo_runs(ring8, single_thread):
    cfg, seeds = cfg_of(), (0, 1, 2)
    batch = gan.members([gan.init_state(cfg, ring8, "wgan-gp", s) for s in seeds])
    with torch.no_grad():
        batch.modules["D"].net[0].weight[1, 0, 0] = float("nan")  # seed 1's critic only
    diverged = {}
    for _ in range(8):
        _, d = gan.step_members(batch, ring8, 64)
        diverged.update(d)
    assert list(diverged) == [1]
    assert diverged[1].step == 1 and "critic loss" in str(diverged[1])
    assert batch.active == [True, False, True] and [st.d_updates for st in batch.states] == [40, 0, 40]
    for k in (0, 2):
        solo = gan.init_state(cfg, ring8, "wgan-gp", seeds[k])
        for _ in range(8):
            gan.step(solo, ring8, 64)
        batch.store(k)
        assert_states_close(gan, batch.states[k], solo)
    assert all(bool(torch.isfinite(p).all()) for p in batch.modules["D"].parameters())  # slot 1 zeroed, no NaN


# ----------------------------------------------------------------------------- run directories


class _PoisonSeed:
    """ring8 whose batches turn NaN for one seed's stream after ``after`` draws of that stream."""

    def __init__(self, ds, seed: int, after: int):
        self.ds, self.key, self.after, self.calls = ds, 10_007 * seed + 1, after, 0
        for a in ("name", "shape", "kind", "train", "test", "modes", "mode_std", "weights", "pdf", "reference",
                  "train_labels", "test_labels", "num_classes", "class_names"):
            setattr(self, a, getattr(ds, a))

    def sample(self, n, g):
        x = self.ds.sample(n, g)
        if g.initial_seed() == self.key:
            self.calls += 1
            if self.calls > self.after:
                return x * float("nan")
        return x


@pytest.mark.parametrize("loss", ["ns", "ddpm"])
def test_train_batched_writes_what_train_run_writes(tmp_path, ring8, loss, single_thread):
    cfg, seeds = cfg_of(), [0, 1, 2]
    fam = FAMILY[loss].NAME
    res_b = train_batched([tmp_path / "b" / f"s{s}" for s in seeds], cfg, _PoisonSeed(ring8, 1, 4),
                          loss=loss, seeds=seeds, family=fam)
    res_s = [train_run(tmp_path / "s" / f"s{s}", cfg, _PoisonSeed(ring8, 1, 4), loss=loss, seed=s, family=fam)
             for s in seeds]
    assert [r["status"] for r in res_b] == [r["status"] for r in res_s] == ["ok", "diverged", "ok"]
    for rb, rs in zip(res_b, res_s):
        for key in ("loss", "seed", "family", "g_updates", "d_updates", "diverged_at", "error"):
            assert rb[key] == rs[key], key
    assert res_b[1]["diverged_at"] == 5  # the 5th draw of seed 1's stream is the first NaN batch
    for s in (0, 2):
        torch.testing.assert_close(rundir.read_samples(tmp_path / "b" / f"s{s}"),
                                   rundir.read_samples(tmp_path / "s" / f"s{s}"), **TOL)
        mb, ms = rundir.read_metrics(tmp_path / "b" / f"s{s}"), rundir.read_metrics(tmp_path / "s" / f"s{s}")
        assert [r["step"] for r in mb] == [r["step"] for r in ms] == [1, 4, 8, 12]
        np.testing.assert_allclose([r["g_loss"] for r in mb], [r["g_loss"] for r in ms], rtol=1e-3)
    assert [r["step"] for r in rundir.read_metrics(tmp_path / "b" / "s1")] == [1, 4]
    with pytest.raises(AssertionError):
        torch.testing.assert_close(rundir.read_samples(tmp_path / "b" / "s0"),
                                   rundir.read_samples(tmp_path / "s" / "s2"), **TOL)


class _StopAfter(Exception):
    pass


def test_interrupted_batched_job_resumes_each_seed_from_its_checkpoint(tmp_path, ring8, single_thread):
    cfg, seeds = cfg_of(), [3, 4]
    ref = train_batched([tmp_path / "ref" / f"s{s}" for s in seeds], cfg, ring8, loss="wgan-gp", seeds=seeds)
    done = [0]

    def stop(n):
        done[0] += n
        if done[0] >= 2 * 8:  # after 8 of the 12 updates; the checkpoint at 6 survives
            raise KeyboardInterrupt

    dirs = [tmp_path / "run" / f"s{s}" for s in seeds]
    with pytest.raises(KeyboardInterrupt):
        train_batched(dirs, cfg, ring8, loss="wgan-gp", seeds=seeds, progress=stop)
    assert all(rundir.load_checkpoint(d)[1]["g_updates"] == 6 for d in dirs)
    again = train_batched(dirs, cfg, ring8, loss="wgan-gp", seeds=seeds)
    assert [r["status"] for r in again] == ["ok", "ok"]
    for s, d in zip(seeds, dirs):
        torch.testing.assert_close(rundir.read_samples(d), rundir.read_samples(tmp_path / "ref" / f"s{s}"),
                                   rtol=0, atol=0)
        assert [r["step"] for r in rundir.read_metrics(d)] == [1, 4, 8, 12]


# ----------------------------------------------------------------------------- quality curves


def _curve_cfg(*sets) -> C.Config:
    return cfg_of(12, "train.curve_points=6", "train.curve_n=200", *sets)  # points at 2, 4, ..., 12


def _evaluators(cfg, ds):
    from losslab.compare import make_evaluator

    return dict(evaluate=make_evaluator(cfg, ds), curve_evaluate=make_evaluator(cfg, ds, n=cfg.train.curve_n))


@pytest.mark.parametrize("loss", ["ns", "ddpm"])
def test_batched_curves_equal_the_solo_curves(tmp_path, ring8, loss, single_thread):
    cfg, seeds, fam = _curve_cfg(), [0, 1], FAMILY[loss].NAME
    assert batchable(cfg, ring8, loss, fam) is None  # curves on (the default) still batch
    res_b = train_batched([tmp_path / "b" / f"s{s}" for s in seeds], cfg, ring8, loss=loss, seeds=seeds,
                          family=fam, **_evaluators(cfg, ring8))
    res_s = [train_run(tmp_path / "s" / f"s{s}", cfg, ring8, loss=loss, seed=s, family=fam,
                       **_evaluators(cfg, ring8)) for s in seeds]
    metric = res_s[0]["curve_metric"]
    assert metric == "w1"
    for s, rb, rs in zip(seeds, res_b, res_s):
        assert rb["status"] == rs["status"] == "ok"
        assert [p["g_updates"] for p in rb["curve"]] == [p["g_updates"] for p in rs["curve"]] == [2, 4, 6, 8, 10, 12]
        for pb, ps in zip(rb["curve"], rs["curve"]):
            assert pb.keys() == ps.keys()
            for key in pb.keys() - {"wall_seconds"}:
                assert pb[key] == pytest.approx(ps[key], rel=1e-3, abs=1e-5), (s, pb["g_updates"], key)
        assert rundir.read_curve(tmp_path / "b" / f"s{s}") == rb["curve"]
        assert rb["curve_metric"] == metric and rb["converged"] == rs["converged"]
        assert rb["converged"] == is_converged(rb["curve"], metric, False, budget=12)
        assert rb["budget"] == rs["budget"] == {"steps": 12}
        for key in rs["metrics"]:
            if isinstance(rs["metrics"][key], float):
                assert rb["metrics"][key] == pytest.approx(rs["metrics"][key], rel=1e-3, abs=1e-5), key
        # The clocks: a point's seconds are training seconds, increasing; wall = train + curve.
        walls = [p["wall_seconds"] for p in rb["curve"]]
        assert all(a < b for a, b in zip(walls, walls[1:])) and walls[-1] <= rb["train_seconds"]
        assert rb["curve_seconds"] > 0
        assert rb["train_seconds"] + rb["curve_seconds"] == pytest.approx(rb["wall_seconds"], rel=1e-9)
    with pytest.raises(AssertionError):  # the comparison tells seeds apart
        np.testing.assert_allclose([p[metric] for p in res_b[0]["curve"]], [p[metric] for p in res_s[1]["curve"]],
                                   rtol=1e-3)
    # The curve points draw no training randomness: without them the batch ends with the same samples.
    off = train_batched([tmp_path / "off" / f"s{s}" for s in seeds], _curve_cfg("train.curve_points=0"), ring8,
                        loss=loss, seeds=seeds, family=fam, **_evaluators(cfg, ring8))
    assert [r["curve"] for r in off] == [[], []] and [r["converged"] for r in off] == [None, None]
    for s in seeds:
        torch.testing.assert_close(rundir.read_samples(tmp_path / "off" / f"s{s}"),
                                   rundir.read_samples(tmp_path / "b" / f"s{s}"), rtol=0, atol=0)


def test_batched_curve_survives_resume(tmp_path, ring8, single_thread):
    cfg, seeds = _curve_cfg(), [3, 4]
    ev = _evaluators(cfg, ring8)
    whole = train_batched([tmp_path / "whole" / f"s{s}" for s in seeds], cfg, ring8, loss="wgan-gp", seeds=seeds,
                          **ev)
    done = [0]

    def stop(n):
        done[0] += n
        if done[0] >= 2 * 9:  # in update 9: after the point at 8, past the checkpoint at 6
            raise KeyboardInterrupt

    dirs = [tmp_path / "cut" / f"s{s}" for s in seeds]
    with pytest.raises(KeyboardInterrupt):
        train_batched(dirs, cfg, ring8, loss="wgan-gp", seeds=seeds, progress=stop, **ev)
    assert all([p["g_updates"] for p in rundir.read_curve(d)] == [2, 4, 6, 8] for d in dirs)
    assert all(rundir.load_checkpoint(d)[1]["g_updates"] == 6 for d in dirs)
    again = train_batched(dirs, cfg, ring8, loss="wgan-gp", seeds=seeds, **ev)  # point 8 is evaluated again
    for r, w, d in zip(again, whole, dirs):
        assert [p["g_updates"] for p in r["curve"]] == [2, 4, 6, 8, 10, 12]
        assert [p["w1"] for p in r["curve"]] == [p["w1"] for p in w["curve"]]
        assert rundir.read_curve(d) == r["curve"] and r["converged"] == w["converged"]
        assert r["curve_seconds"] > 0 and r["train_seconds"] > 0


def test_time_budgets_take_the_sequential_path(ring8):
    cfg = cfg_of(12, "train.budget_seconds=0.5")
    assert batchable(cfg, ring8, "ns", "gan") == "a time budget is measured per run (train.budget_seconds)"
    assert [len(g) for g in group_jobs(rundir.plan(["ns"], 2), cfg, ring8)] == [1, 1]


# ----------------------------------------------------------------------------- which losses batch


def test_group_jobs_batches_exactly_the_batchable_losses(ring8):
    cfg = cfg_of()
    groups = group_jobs(rundir.plan(["ns", "ebgan", "ddpm"], 3), cfg, ring8)
    assert [tuple(j.loss for j in g) for g in groups] == [("ns",) * 3, ("ebgan",) * 3, ("ddpm",) * 3]
    assert batchable(cfg, ring8, "ebgan", "gan") is None  # the vector autoencoder critic stacks
    assert batchable(cfg_of(12, "loss.critic_norm=batch"), ring8, "ns", "gan").startswith("BatchNorm")
    assert batchable(cfg_of(12, "train.batch_seeds=false"), ring8, "ns", "gan") == "train.batch_seeds is off"
    assert batchable(cfg, ring8, "simclr", "contrastive") is not None
    assert cfg.train.curve_points == 8 and batchable(cfg, ring8, "ns", "gan") is None  # curves by default
    # The most expensive task first: wgan-gp (5 critic updates with a gradient penalty per generator update)
    # before wgan (5, no penalty) before ns (1); the order within a cost is the plan's.
    costly = group_jobs(rundir.plan(["ns", "wgan", "wgan-gp", "lsgan"], 2), cfg, ring8)
    assert [g[0].loss for g in costly] == ["wgan-gp", "wgan", "ns", "lsgan"]
    off = group_jobs(rundir.plan(["ns"], 2), cfg_of(12, "train.batch_seeds=false"), ring8)
    assert [len(g) for g in off] == [1, 1]


def test_batch_seeds_and_precision_are_checked_config_fields():
    assert cfg_of().train.batch_seeds is True
    assert cfg_of(12, "train.batch_seeds=off").train.batch_seeds is False
    with pytest.raises(UserError, match="train.precision"):
        cfg_of(12, "train.precision=fp16")
    with pytest.raises(UserError, match="train.batch_seeds"):
        cfg_of(12, "train.batch_seeds=maybe")
