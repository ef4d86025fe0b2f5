"""One step per family over a member axis: member k of M runs equals the solo run of seed k.

Every loss of every family runs M = 3 members for a few updates and is
compared with three solo runs (weights, optimizer state, RNG state, update
counts, the logged diagnostics of every update, snapshots); each comparison has
a counterpart that must fail (member 0 against seed 1's solo run). The solo
step (M = 1) reproduces the step as it was before the member axis
(tests/data/solo_reference.npz, written by tests/data/make_solo_reference.py).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from losslab import config as C
from losslab import rundir
from losslab.data import load_dataset
from losslab.losses import REGISTRIES
from losslab.models.ensemble import EnsembleAutoencoder, EnsembleLinear, MemberLoop
from losslab.train import contrastive, diffusion, ebm, gan
from losslab.train.batched import train_batched
from losslab.train.loop import get_family, train_run

DATA = Path(__file__).with_name("data")
TOL = dict(rtol=1e-4, atol=1e-5)
SEEDS = (0, 1, 2)

VECTOR_SETS = ["train.batch_size=32", "model.hidden=16", "model.layers=2", "model.z_dim=4", "train.device=cpu",
               "train.log_every=1", "train.checkpoint_every=100", "train.n_eval=100",
               "ebm.langevin_steps=3", "ebm.sample_steps=5", "ebm.buffer_size=64"]


@pytest.fixture(scope="module")
def ring8():
    return load_dataset("ring8")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def vector_cfg(*sets: str) -> C.Config:
    return C.resolve("vector", sets=[*VECTOR_SETS, *sets])


def assert_states_close(mod, a, b, **tol) -> None:
    ta, ma = mod.state_dict(a)
    tb, mb = mod.state_dict(b)
    assert ta.keys() == tb.keys()
    floats = {k for k, v in ma.items() if isinstance(v, float)}  # BEGAN's k: float rounding
    assert {k: v for k, v in ma.items() if k not in floats} == {k: v for k, v in mb.items() if k not in floats}
    assert {k: ma[k] for k in floats} == pytest.approx({k: mb[k] for k in floats}, rel=1e-5, abs=1e-8)
    for key in ta:
        if key == "rng":
            assert torch.equal(ta[key], tb[key])  # the same draws, in the same order
        else:
            torch.testing.assert_close(ta[key], tb[key], **(tol or TOL), msg=key)


def assert_logs_close(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for la, lb in zip(a, b):
        assert la.keys() == lb.keys()
        for key in la:
            assert la[key] == pytest.approx(lb[key], rel=1e-3, abs=1e-5), key


def run_members(mod, cfg, ds, loss, n, bs):
    ms = mod.members([mod.init_state(cfg, ds, loss, s) for s in SEEDS])
    logs = []
    for _ in range(n):
        step_logs, diverged = mod.step_members(ms, ds, bs, record=True)
        assert diverged == {}
        logs.append(step_logs)
    for k in range(ms.m):
        ms.store(k)
    return ms, [[lg[k] for lg in logs] for k in range(ms.m)]


def run_solo(mod, cfg, ds, loss, seed, n, bs):
    st = mod.init_state(cfg, ds, loss, seed)
    return st, [mod.step(st, ds, bs, record=True) for _ in range(n)]


def check_parity(mod, cfg, ds, loss, n, bs):
    ms, member_logs = run_members(mod, cfg, ds, loss, n, bs)
    solos = [run_solo(mod, cfg, ds, loss, s, n, bs) for s in SEEDS]
    for k, (st, logs) in enumerate(solos):
        assert_states_close(mod, ms.states[k], st)
        assert_logs_close(member_logs[k], logs)
        assert member_logs[k][-1], "the last update logged its diagnostics"
        if mod.snapshot is not None:
            a, b = mod.snapshot(ms.states[k], ds, seed=k), mod.snapshot(st, ds, seed=k)
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_allclose(a[key], b[key], **TOL, err_msg=key)
    with pytest.raises(AssertionError):  # the comparison tells seeds apart
        assert_states_close(mod, ms.states[0], solos[1][0])
    return ms


# ----------------------------------------------------------------------------- every loss of every family


def test_every_loss_of_every_family_is_covered():
    covered = set(GAN) | set(DIFFUSION) | set(EBM) | set(CONTRASTIVE)
    assert covered == set(REGISTRIES["gan"]) | set(REGISTRIES["diffusion"]) | set(REGISTRIES["ebm"]) \
        | set(REGISTRIES["contrastive"])


GAN = sorted(REGISTRIES["gan"])
DIFFUSION = sorted(REGISTRIES["diffusion"])
EBM = sorted(REGISTRIES["ebm"])
CONTRASTIVE = sorted(REGISTRIES["contrastive"])


@pytest.mark.parametrize("loss", GAN)
def test_gan_members_equal_their_solo_runs(ring8, loss, single_thread):
    ms = check_parity(gan, vector_cfg(), ring8, loss, 3, 32)
    spec = REGISTRIES["gan"][loss]
    assert ms.stacked["G"] and ms.stacked["D"]  # the vector autoencoder critics (ebgan, began) stack too
    assert not isinstance(ms.modules["D"], MemberLoop)
    assert isinstance(ms.modules["D"], EnsembleAutoencoder) == (spec.critic == "autoencoder")


@pytest.mark.parametrize("loss", DIFFUSION)
def test_diffusion_members_equal_their_solo_runs(ring8, loss, single_thread):
    ms = check_parity(diffusion, vector_cfg("diffusion.T=50", "diffusion.sample_steps=10"), ring8, loss, 3, 32)
    assert ms.stacked == {"net": True, "ema": True}


@pytest.mark.parametrize("loss", EBM)
def test_ebm_members_equal_their_solo_runs(ring8, loss, single_thread):
    check_parity(ebm, vector_cfg(), ring8, loss, 2, 32)


@pytest.mark.parametrize("loss", CONTRASTIVE)
def test_contrastive_members_equal_their_solo_runs(digits, loss, single_thread):
    cfg = C.Config()
    cfg.train.device = "cpu"
    check_parity(contrastive, cfg, digits, loss, 2, 16)


# ----------------------------------------------------------------------------- M = 1 is the step as it was


def _reference_script():
    spec = importlib.util.spec_from_file_location("make_solo_reference", DATA / "make_solo_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("loss", ["ns", "wgan-gp", "ddpm"])
def test_one_member_reproduces_the_solo_runs_from_before_the_member_axis(ring8, loss, single_thread):
    """50 updates of M = 1 (the members' own step function, as the batched path calls it) against the
    solo runs recorded from the code before the member axis: every kept weight and every logged value
    within 1e-5 (CPU, one thread)."""
    ref = np.load(DATA / "solo_reference.npz")
    script = _reference_script()
    meta = json.loads(str(ref["meta"]))
    fam = get_family(script.LOSSES[loss])
    cfg = C.resolve("vector", sets=meta["sets"])
    ms = fam.members([fam.init_state(cfg, ring8, loss, meta["seed"])])
    assert ms.m == 1 and not any(ms.stacked.values())
    logs = []
    for _ in range(meta["steps"]):
        step_logs, diverged = fam.step_members(ms, ring8, cfg.train.batch_size, record=True)
        assert diverged == {}
        logs.append(step_logs[0])
    want_logs = json.loads(str(ref["logs"]))[loss]
    assert [lg.keys() for lg in logs] == [lg.keys() for lg in want_logs]
    for got, want in zip(logs, want_logs):
        np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], rtol=1e-5, atol=1e-5)
    tensors, _ = fam.state_dict(ms.states[0])
    stride = meta["stride"][loss]
    keys = [k for k in ref.files if k.startswith(loss + "/")]
    assert len(keys) == len([k for k in tensors if ".state." not in k and k != "rng"])
    for key in keys:
        got = tensors[key[len(loss) + 1:]].numpy().ravel()[::stride]
        np.testing.assert_allclose(got, ref[key], rtol=1e-5, atol=1e-5, err_msg=key)


# ----------------------------------------------------------------------------- per-member hyperparameters


def test_members_with_different_penalty_weights_and_learning_rates_equal_their_solo_runs(ring8, single_thread):
    """wgan-gp with gp_lambda 1 and 10: one stacked program, gp_lambda an (M,) tensor. ns with two critic
    learning rates: the critics run as a loop over their own optimizers, the generators stay stacked."""
    cfgs = [vector_cfg("loss.gp_lambda=1"), vector_cfg("loss.gp_lambda=10")]
    ms = gan.members([gan.init_state(c, ring8, "wgan-gp", s) for c, s in zip(cfgs, (0, 1))])
    assert ms.stacked == {"G": True, "D": True}
    assert ms.hp("gp_lambda").tolist() == [1.0, 10.0]
    cfgs_lr = [vector_cfg("loss.lr_d=1e-3"), vector_cfg("loss.lr_d=1e-2")]
    ms_lr = gan.members([gan.init_state(c, ring8, "ns", s) for c, s in zip(cfgs_lr, (0, 1))])
    assert ms_lr.stacked == {"G": True, "D": False}
    for batch, loss, cs in ((ms, "wgan-gp", cfgs), (ms_lr, "ns", cfgs_lr)):
        for _ in range(3):
            gan.step_members(batch, ring8, 32)
        for k, c in enumerate(cs):
            batch.store(k)
            solo = gan.init_state(c, ring8, loss, k)
            for _ in range(3):
                gan.step(solo, ring8, 32)
            assert_states_close(gan, batch.states[k], solo)
    other = gan.init_state(cfgs[0], ring8, "wgan-gp", 1)  # seed 1 with member 0's weight
    for _ in range(3):
        gan.step(other, ring8, 32)
    with pytest.raises(AssertionError):
        assert_states_close(gan, ms.states[1], other)


# ----------------------------------------------------------------------------- every path: clip_share, snapshots


def test_batched_runs_log_clip_share_and_take_the_solo_snapshots(tmp_path, ring8, single_thread):
    cfg = vector_cfg("train.steps=6", "train.curve_points=2", "train.curve_n=100", "train.log_every=3")
    seeds = [0, 1]
    for loss in ("wgan", "ns"):
        train_batched([tmp_path / loss / "b" / f"s{s}" for s in seeds], cfg, ring8, loss=loss, seeds=seeds)
        for s in seeds:
            train_run(tmp_path / loss / "s" / f"s{s}", cfg, ring8, loss=loss, seed=s)
            b, o = tmp_path / loss / "b" / f"s{s}", tmp_path / loss / "s" / f"s{s}"
            rows_b, rows_s = rundir.read_metrics(b), rundir.read_metrics(o)
            assert [r["step"] for r in rows_b] == [r["step"] for r in rows_s] == [1, 3, 6]
            assert all(("clip_share" in r) == (loss == "wgan") for r in rows_b)
            np.testing.assert_allclose([r.get("clip_share", 0) for r in rows_b],
                                       [r.get("clip_share", 0) for r in rows_s], rtol=1e-6)
            sb, ss = rundir.read_snapshots(b), rundir.read_snapshots(o)
            assert sb is not None and sb.keys() == ss.keys() and {"critic", "push", "fake"} <= sb.keys()
            assert sb["g_updates"].tolist() == [3, 6]
            for key in sb:
                np.testing.assert_allclose(sb[key], ss[key], **TOL, err_msg=key)
    wgan_rows = rundir.read_metrics(tmp_path / "wgan" / "b" / "s0")
    assert all(0.0 <= r["clip_share"] <= 1.0 for r in wgan_rows) and wgan_rows[-1]["clip_share"] > 0


# ----------------------------------------------------------------------------- bf16 on every path


def _first_linear_dtypes(module: torch.nn.Module) -> tuple[list[torch.dtype], object]:
    first = next(m for m in module.modules() if isinstance(m, (torch.nn.Linear, EnsembleLinear)))
    seen: list[torch.dtype] = []
    return seen, first.register_forward_hook(lambda m, i, out: seen.append(out.dtype))


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("loss", ["ns", "ddpm"])
def test_bf16_autocasts_the_matrix_products_on_the_solo_and_batched_paths(ring8, m, loss, single_thread):
    """The first layer computes in bfloat16 under ``train.precision=bf16`` (float32 without); the weights
    differ from fp32 training by more than float rounding and stay finite."""
    out = {}
    mod, net, key = (gan, "G", "G.net.0.weight") if loss == "ns" else (diffusion, "net", "net.inp.weight")
    for precision in ("fp32", "bf16"):
        cfg = vector_cfg(f"train.precision={precision}", "diffusion.T=50", "diffusion.sample_steps=10")
        ms = mod.members([mod.init_state(cfg, ring8, loss, s) for s in SEEDS[:m]])
        seen, hook = _first_linear_dtypes(ms.modules[net])
        for _ in range(5):
            _, diverged = mod.step_members(ms, ring8, 32)
            assert diverged == {}
        hook.remove()
        assert set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}
        for k in range(m):
            ms.store(k)
        out[precision] = [mod.state_dict(st)[0][key] for st in ms.states]
    for a, b in zip(out["fp32"], out["bf16"]):
        assert bool(torch.isfinite(b).all())
        assert float((a - b).abs().max()) > 1e-5  # bf16 rounding (fp32 repeats itself exactly)
        torch.testing.assert_close(b, a, rtol=0.0, atol=0.05)  # ... yet the same training


# ----------------------------------------------------------------------------- hooks for new declarations


def _relativistic_g_loss(*, d_fake, d_real):
    """RaGAN's generator loss (Jolicoeur-Martineau 2018, arXiv:1807.00734, Eq. 4 with the NS form)."""
    return F.softplus(-(d_fake - d_real.mean())).mean() + F.softplus(d_real - d_fake.mean()).mean()


def test_a_declared_relativistic_generator_loss_gets_the_critic_on_reals_on_every_path(ring8, single_thread):
    """g_needs_real: the generator update draws a real batch after its z and passes the critic's outputs
    as d_real; members equal their solo runs, and the real batch changes the training (the stream moved)."""
    loss = dataclasses.replace(REGISTRIES["gan"]["ns"], name="rel-test", g_loss=_relativistic_g_loss,
                               g_needs_real=True)
    cfg = vector_cfg()

    def state(seed):
        st = gan.init_state(cfg, ring8, "ns", seed)
        st.loss = loss
        return st

    ms = gan.members([state(s) for s in SEEDS])
    for _ in range(3):
        logs, diverged = gan.step_members(ms, ring8, 32, record=True)
        assert diverged == {}
    plain = gan.init_state(cfg, ring8, "ns", 0)
    for k, seed in enumerate(SEEDS):
        ms.store(k)
        solo = state(seed)
        for _ in range(3):
            solo_log = gan.step(solo, ring8, 32, record=True)
        assert_states_close(gan, ms.states[k], solo)
        assert logs[k]["g_loss"] == pytest.approx(solo_log["g_loss"], rel=1e-4)
    for _ in range(3):
        gan.step(plain, ring8, 32)
    assert not torch.equal(gan.state_dict(plain)[0]["rng"], gan.state_dict(ms.states[0])[0]["rng"])
