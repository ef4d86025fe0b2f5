"""The training loop and the adversarial step.

The step tests instrument one GAN step (the data, G, D and the critic's
optimizer record what they see) and check it against independent
computations: fresh z for the generator, no change of D in the generator
update, each critic gradient is that of its own loss, a fresh real batch per
critic update, BEGAN's k from this step's energies, the logged W1 estimate.
Each check also runs on a deliberately broken step and must fail there
(``pytest.raises(AssertionError)``), so none of them can pass vacuously.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from losslab import config as C
from losslab import io, rundir
from losslab.data import load_dataset
from losslab.losses import GAN_LOSSES
from losslab.train import gan
from losslab.train.common import grad_stats
from losslab.train.loop import train_run


def tiny_cfg(steps=12, *sets, **train) -> C.Config:
    cfg = C.resolve("vector", sets=[f"train.steps={steps}", "train.batch_size=64", "train.log_every=4",
                                    "train.checkpoint_every=6", "train.n_eval=200", "model.hidden=32",
                                    "model.layers=2", *sets])
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


@pytest.fixture(scope="module")
def ring8():
    return load_dataset("ring8")


# ----------------------------------------------------------------------------- instrumentation


class _Data:
    """The dataset, recording every batch it hands out; ``reuse``: always the first one."""

    def __init__(self, ds, reuse: bool = False):
        self.ds, self.reuse, self.batches = ds, reuse, []
        self.name, self.shape, self.kind = ds.name, ds.shape, ds.kind

    def sample(self, n, g):
        x = self.batches[0].clone() if self.reuse and self.batches else self.ds.sample(n, g)
        self.batches.append(x.clone())
        return x


class _Tap(nn.Module):
    """Forwards to ``net`` and records (input, grad enabled, output) of every call."""

    def __init__(self, net: nn.Module, on_grad_call=None):
        super().__init__()
        self.net, self.calls, self.on_grad_call = net, [], on_grad_call

    def forward(self, x):
        if torch.is_grad_enabled() and self.on_grad_call is not None:
            self.on_grad_call()
        out = self.net(x)
        det = tuple(o.detach().clone() for o in out) if isinstance(out, tuple) else out.detach().clone()
        self.calls.append((x.detach().clone(), torch.is_grad_enabled(), det))
        return out


class _Rec:
    """One GAN state instrumented: ``data``, ``G``/``D`` taps, and per critic update the
    parameters (by name, as used in its forward passes) and gradients at ``opt_d.step``."""

    def __init__(self, state, ds, *, reuse_batches: bool = False):
        self.state, self.inner_d = state, state.D
        self.data = _Data(ds, reuse=reuse_batches)
        self.d_steps: list[dict] = []
        self.d_before_g: list[torch.Tensor] | None = None
        self.g_before_g: list[torch.Tensor] | None = None
        state.G = _Tap(state.G, on_grad_call=self._snap)
        state.D = _Tap(state.D)
        orig = state.opt_d.step

        def d_step(*a, **k):
            self.d_steps.append({"params": {n: p.detach().clone() for n, p in self.inner_d.named_parameters()},
                                 "grads": [p.grad.clone() for p in self.inner_d.parameters()]})
            return orig(*a, **k)

        state.opt_d.step = d_step

    def _snap(self):  # the generator's update begins: its one call with autograd on
        self.d_before_g = [p.detach().clone() for p in self.inner_d.parameters()]
        self.g_before_g = [p.detach().clone() for p in self.state.G.parameters()]

    def step(self, batch_size=32, record=False):
        self.state.G.calls.clear()
        self.state.D.calls.clear()
        self.data.batches.clear()
        self.d_steps.clear()
        return gan.step(self.state, self.data, batch_size, record=record)

    def d(self, params, x):
        """The critic's output with the given parameters, recomputed independently of the step."""
        return functional_call(self.inner_d, params, (x,)).reshape(-1)


def _state(ring8, loss, *sets):
    return gan.init_state(tiny_cfg(4, *sets), ring8, loss, seed=1)


# ----------------------------------------------------------------------------- the checks


def check_fresh_z(rec: _Rec, n_critic: int) -> None:
    rec.step()
    critic_z = [z for z, grad, _ in rec.state.G.calls if not grad]
    gen_z = [z for z, grad, _ in rec.state.G.calls if grad]
    assert len(critic_z) == n_critic and len(gen_z) == 1
    for z in critic_z:  # the generator's update draws its own z (Algorithm 1, line 9)
        assert not torch.equal(z, gen_z[0])


def check_g_step_leaves_d(rec: _Rec) -> None:
    rec.step()
    after = list(rec.inner_d.parameters())
    for before, p in zip(rec.d_before_g, after, strict=True):
        torch.testing.assert_close(p.detach(), before, rtol=0, atol=0)
    g_after = list(rec.state.G.parameters())
    assert any(not torch.equal(b, p.detach()) for b, p in zip(rec.g_before_g, g_after))  # G did move


def check_critic_gradient_is_its_own(rec: _Rec) -> None:
    """ns: each critic update's gradient is that of softplus(-D(x)).mean() + softplus(D(x_fake)).mean() alone."""
    for _ in range(2):  # the second step follows a generator update, whose backward also reached D
        rec.step()
        fakes = [out for _, grad, out in rec.state.G.calls if not grad]
        assert len(rec.d_steps) == len(fakes) == len(rec.data.batches)
        for rec_d, x, x_fake in zip(rec.d_steps, rec.data.batches, fakes):
            params = {n: p.requires_grad_(True) for n, p in rec_d["params"].items()}
            loss = F.softplus(-rec.d(params, x)).mean() + F.softplus(rec.d(params, x_fake)).mean()
            expected = torch.autograd.grad(loss, list(params.values()))
            for g, e in zip(rec_d["grads"], expected, strict=True):
                torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def check_fresh_real_batch(rec: _Rec, n_critic: int) -> None:
    rec.step()
    real = [x for x, _, _ in rec.state.D.calls[0:2 * n_critic:2]]  # ns: D(x_i), D(G(z_i)) per update, then D(G(z))
    assert len(real) == n_critic
    for i in range(n_critic):
        torch.testing.assert_close(real[i], rec.data.batches[i], rtol=0, atol=0)
        for j in range(i):
            assert not torch.equal(real[i], real[j])


def check_began_k(rec: _Rec, k0: float) -> None:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) with the L1 energies of this step."""
    st = rec.state
    st.began.k = k0
    rec.step()  # warm-up step: the check is on a step that follows another one
    k_before = st.began.k
    rec.step()
    (x, _, (recon_x, _)), _, (g_fake, _, (recon_g, _)) = st.D.calls  # n_critic = 1: real, fake, generator's fake
    e_real = (x - recon_x).abs().flatten(1).mean(1).double().mean()  # L(v) = |v - D(v)| (eta = 1), per sample
    e_fake = (g_fake - recon_g).abs().flatten(1).mean(1).double().mean()
    gamma, lam = st.hp["gamma"], st.hp["lambda_k"]
    expected = min(max(k_before + lam * (gamma * float(e_real) - float(e_fake)), 0.0), 1.0)
    assert 0.0 < expected < 1.0 and abs(expected - k_before) > 1e-4  # the clip is not what decides
    torch.testing.assert_close(st.began.k, expected, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- tests of the step


def test_generator_update_uses_fresh_z(ring8):
    check_fresh_z(_Rec(_state(ring8, "ns", "loss.n_critic=3"), ring8), 3)


def test_fresh_z_check_fails_when_the_critic_z_is_reused(ring8, monkeypatch):
    class _ReusingZ:  # torch, except that randn hands out the first z again
        def __init__(self):
            self.z = None

        def __getattr__(self, name):
            return getattr(torch, name)

        def randn(self, *size, generator=None):
            if self.z is None:
                self.z = torch.randn(*size, generator=generator)
            return self.z.clone()

    monkeypatch.setattr(gan, "torch", _ReusingZ())
    with pytest.raises(AssertionError):
        check_fresh_z(_Rec(_state(ring8, "ns", "loss.n_critic=3"), ring8), 3)


def test_generator_update_changes_no_critic_parameter(ring8):
    for loss in ("ns", "wgan", "wgan-gp", "ebgan"):
        check_g_step_leaves_d(_Rec(_state(ring8, loss), ring8))


def test_g_step_check_fails_when_the_generator_optimizer_also_moves_d(ring8):
    st = _state(ring8, "ns")
    st.opt_g = torch.optim.Adam(list(st.G.parameters()) + list(st.D.parameters()), lr=1e-2)
    rec = _Rec(st, ring8)
    rec.state.D.requires_grad_ = lambda flag=True: rec.state.D  # and D's weights take G's gradient
    with pytest.raises(AssertionError):
        check_g_step_leaves_d(rec)


def test_each_critic_gradient_is_that_of_its_own_loss(ring8):
    check_critic_gradient_is_its_own(_Rec(_state(ring8, "ns", "loss.n_critic=2"), ring8))


def test_critic_gradient_check_fails_without_zeroing_the_gradient(ring8):
    st = _state(ring8, "ns", "loss.n_critic=2")
    st.opt_d.zero_grad = lambda set_to_none=True: None  # the generator's backward leaks into D's next update
    with pytest.raises(AssertionError):
        check_critic_gradient_is_its_own(_Rec(st, ring8))


def test_each_critic_update_sees_a_fresh_real_batch(ring8):
    check_fresh_real_batch(_Rec(_state(ring8, "ns", "loss.n_critic=3"), ring8), 3)


def test_fresh_batch_check_fails_when_one_batch_serves_every_critic_update(ring8):
    with pytest.raises(AssertionError):
        check_fresh_real_batch(_Rec(_state(ring8, "ns", "loss.n_critic=3"), ring8, reuse_batches=True), 3)


def test_began_k_follows_this_steps_energies(ring8):
    check_began_k(_Rec(_state(ring8, "began", "loss.lambda_k=0.1"), ring8), k0=0.5)


def test_began_k_check_fails_on_the_previous_steps_energies(ring8):
    st = _state(ring8, "began", "loss.lambda_k=0.1")
    update, prev = st.began.update, []

    def stale(e_real, e_fake):  # a k update one step late
        prev.append((e_real, e_fake))
        update(*prev[-2] if len(prev) > 1 else prev[-1])

    st.began.update = stale
    with pytest.raises(AssertionError):
        check_began_k(_Rec(st, ring8), k0=0.5)


def test_w_estimate_is_mean_critic_on_real_minus_on_fake(ring8):
    # The logged diagnostics describe the last critic update, recomputed here from its
    # batch, its generated samples and the critic's parameters in that forward pass.
    rec = _Rec(_state(ring8, "wgan-gp", "loss.n_critic=2"), ring8)
    log = rec.step(record=True)
    x = rec.data.batches[-1]
    x_fake = [out for _, grad, out in rec.state.G.calls if not grad][-1]
    with torch.no_grad():
        d_real = rec.d(rec.d_steps[-1]["params"], x).double().mean()
        d_fake = rec.d(rec.d_steps[-1]["params"], x_fake).double().mean()
    assert abs(float(d_real - d_fake)) > 1e-3  # not trivially zero
    torch.testing.assert_close(log["w_estimate"], float(d_real - d_fake), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close([log["d_real"], log["d_fake"]], [float(d_real), float(d_fake)], rtol=1e-5, atol=1e-6)


def test_wgan_critic_weights_stay_clipped(ring8):
    cfg = tiny_cfg(steps=5)
    state = gan.init_state(cfg, ring8, "wgan", seed=0)
    assert isinstance(state.opt_d, torch.optim.RMSprop)  # as in the paper, not Adam
    before = [p.detach().clone() for p in state.D.parameters()]
    for _ in range(5):
        gan.step(state, ring8, 64)
    c = state.hp["clip"]
    assert c == 0.01
    # At least one weight sits at the bound: the clip acted, and no weight is beyond it.
    assert max(float(p.detach().abs().max()) for p in state.D.parameters()) == pytest.approx(c, rel=1e-6)
    for p in state.D.parameters():
        assert float(p.detach().abs().max()) <= c + 1e-12
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, state.D.parameters()))


def test_grad_stats_is_global_norm_and_mean():
    lin = torch.nn.Linear(3, 2)
    lin.weight.grad = torch.tensor([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    lin.bias.grad = torch.tensor([12.0, 0.0])
    norm, mean = grad_stats(lin)
    torch.testing.assert_close(norm, 13.0)  # sqrt(9 + 16 + 144)
    torch.testing.assert_close(mean, 19.0 / 8)


# ----------------------------------------------------------------------------- the loop


@pytest.mark.parametrize("loss", list(GAN_LOSSES))
def test_every_loss_trains_with_equal_generator_budget(tmp_path, ring8, loss):
    res = train_run(tmp_path / loss, tiny_cfg(), ring8, loss=loss, seed=0)
    assert res["status"] == "ok", res.get("error")
    n_critic = GAN_LOSSES[loss].defaults["n_critic"]
    # The budget: exactly `steps` generator updates; critic updates are n_critic per step.
    assert (res["g_updates"], res["d_updates"]) == (12, 12 * n_critic)
    rows = rundir.read_metrics(tmp_path / loss)
    assert [r["step"] for r in rows] == [1, 4, 8, 12]
    assert [r["d_updates"] for r in rows] == [n_critic * s for s in (1, 4, 8, 12)]


class _PoisonAfter:
    """A dataset wrapper whose batches become NaN after `k` calls."""

    def __init__(self, ds, k):
        self.ds, self.k, self.calls = ds, k, 0
        self.name, self.shape, self.kind = ds.name, ds.shape, ds.kind

    def __getattr__(self, name):  # everything else (train, labels, reference, ...) is ring8's
        return getattr(self.ds, name)

    def sample(self, n, g):
        self.calls += 1
        x = self.ds.sample(n, g)
        return x * float("nan") if self.calls > self.k else x


def test_nan_is_recorded_as_diverged(tmp_path, ring8):
    res = train_run(tmp_path / "r", tiny_cfg(), _PoisonAfter(ring8, 7), loss="ns", seed=0)
    assert res["status"] == "diverged"
    assert res["diverged_at"] == 8  # the 8th generator update sees the first NaN batch
    assert io.read_json(tmp_path / "r" / "result.json")["status"] == "diverged"
    assert not (tmp_path / "r" / "samples.npz").exists()


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, ring8):
    cfg = tiny_cfg(steps=12)
    ref = train_run(tmp_path / "ref", cfg, ring8, loss="wgan-gp", seed=3)
    assert ref["status"] == "ok"

    calls = {"n": 0}

    def interrupt(n):
        calls["n"] += n
        if calls["n"] == 9:  # after the checkpoint at update 6
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tmp_path / "cut", cfg, ring8, loss="wgan-gp", seed=3, progress=interrupt)
    _, meta = rundir.load_checkpoint(tmp_path / "cut")
    assert (meta["g_updates"], meta["d_updates"]) == (6, 30)
    assert not (tmp_path / "cut" / "checkpoint.json").exists()  # one file holds the whole state
    res = train_run(tmp_path / "cut", cfg, ring8, loss="wgan-gp", seed=3)
    assert res["status"] == "ok" and res["g_updates"] == 12 and res["d_updates"] == 60
    a, _ = rundir.load_checkpoint(tmp_path / "ref")
    b, _ = rundir.load_checkpoint(tmp_path / "cut")
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)  # weights, optimizer state, RNG
    steps = [r["step"] for r in rundir.read_metrics(tmp_path / "cut")]
    assert steps == [1, 4, 8, 12]  # rows after the checkpoint were not duplicated
    assert io.read_json(tmp_path / "ref" / "result.json")["metrics"] == res["metrics"]


def test_unreadable_checkpoint_restarts_the_run(tmp_path, ring8):
    cfg = tiny_cfg(steps=6)
    ref = train_run(tmp_path / "ref", cfg, ring8, loss="ns", seed=0)
    run = tmp_path / "r"
    train_run(run, cfg, ring8, loss="ns", seed=0)
    (run / "result.json").unlink()
    (run / "checkpoint.safetensors").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="unreadable"):
        res = train_run(run, cfg, ring8, loss="ns", seed=0)
    assert res["g_updates"] == 6 and [r["step"] for r in rundir.read_metrics(run)] == [1, 4, 6]
    a, _ = rundir.load_checkpoint(tmp_path / "ref")
    b, _ = rundir.load_checkpoint(run)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_changed_config_in_same_dir_is_refused(tmp_path, ring8):
    from losslab.errors import UserError

    train_run(tmp_path / "r", tiny_cfg(steps=4), ring8, loss="ns", seed=0)
    with pytest.raises(UserError, match="different configuration"):
        train_run(tmp_path / "r", tiny_cfg(steps=5), ring8, loss="ns", seed=0)


# ----------------------------------------------------------------------------- no wasted work


def _steps_with_d_grads(ring8, loss, n, *, freeze_d: bool):
    """``n`` steps; the critic's gradients right after its last update, and D's after the step."""
    st = gan.init_state(tiny_cfg(4), ring8, loss, seed=2)
    if not freeze_d:  # the old step: D's weights also took gradients in the generator update
        st.D.requires_grad_ = lambda flag=True: st.D
    seen = []
    inner = st.opt_d.step

    def spy(*a, **k):
        seen[:] = [p.grad.clone() for p in st.D.parameters()]
        return inner(*a, **k)

    st.opt_d.step = spy
    for _ in range(n):
        gan.step(st, ring8, 64)
    return st, seen, [p.grad for p in st.D.parameters()]


@pytest.mark.parametrize("loss", ["ns", "wgan-gp", "ebgan", "began"])
def test_generator_update_gives_d_no_gradient_and_the_same_numbers(ring8, loss):
    st, critic_grads, after = _steps_with_d_grads(ring8, loss, 3, freeze_d=True)
    for a, b in zip(critic_grads, after, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)  # the G update added nothing to D.grad
    old, old_critic, old_after = _steps_with_d_grads(ring8, loss, 3, freeze_d=False)
    assert any(not torch.equal(a, b) for a, b in zip(old_critic, old_after))  # the old step did
    for p, q in zip([*st.G.parameters(), *st.D.parameters()], [*old.G.parameters(), *old.D.parameters()]):
        torch.testing.assert_close(p, q, rtol=0, atol=0)  # bitwise the same training


def test_divergence_checked_once_per_update_reports_the_solo_step_and_critic_updates(tmp_path, ring8):
    # wgan-gp: 5 data draws per generator update; the 8th draw is the first NaN batch,
    # i.e. the 3rd critic update of generator update 2 (7 critic updates completed before it).
    res = train_run(tmp_path / "r", tiny_cfg(), _PoisonAfter(ring8, 7), loss="wgan-gp", seed=0)
    assert res["status"] == "diverged" and res["diverged_at"] == 2
    assert res["d_updates"] == 7 and res["g_updates"] == 1
    assert "critic loss is not finite at generator update 2" in res["error"]


# ----------------------------------------------------------------------------- R1 / R2 and relativistic pairing


def _zc(rec: _Rec, params, x) -> torch.Tensor:
    """mean_i ||grad_x D(x_i)||^2 with the given critic parameters (an independent R1/R2)."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(rec.d(params, x).sum(), x, create_graph=True)
    return g.pow(2).sum(1).mean()


def check_zero_centred_penalties(rec: _Rec, r1: float, r2: float) -> None:
    """r3gan: the critic's gradient is that of rpgan_d_loss + r1/2 R1(x) + r2/2 R2(G(z))."""
    from losslab.losses import gan as gan_losses

    rec.step()
    fakes = [out for _, grad, out in rec.state.G.calls if not grad]
    assert len(rec.d_steps) == len(fakes) == 1
    x, x_fake = rec.data.batches[0], fakes[0]
    params = {n: p.requires_grad_(True) for n, p in rec.d_steps[0]["params"].items()}
    loss = (gan_losses.rpgan_d_loss(d_real=rec.d(params, x), d_fake=rec.d(params, x_fake))
            + r1 / 2 * _zc(rec, params, x) + r2 / 2 * _zc(rec, params, x_fake))
    expected = torch.autograd.grad(loss, list(params.values()))
    for g, e in zip(rec.d_steps[0]["grads"], expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def test_r1_and_r2_enter_the_critic_gradient_with_gamma_over_two(ring8):
    rec = _Rec(_state(ring8, "r3gan", "loss.r1_gamma=0.7", "loss.r2_gamma=0.3"), ring8)
    check_zero_centred_penalties(rec, 0.7, 0.3)
    with pytest.raises(AssertionError):  # the check sees the penalties: without them it fails
        check_zero_centred_penalties(_Rec(_state(ring8, "r3gan", "loss.r1_gamma=0.7", "loss.r2_gamma=0.3"), ring8),
                                     0.0, 0.0)


def test_ns_takes_r1_through_loss_r1_gamma(ring8):
    cfg = tiny_cfg(4, "loss.r1_gamma=2.5", "loss.critic_norm=none")
    assert gan.init_state(cfg, ring8, "ns", seed=1).hp["r1_gamma"] == 2.5
    assert gan.init_state(tiny_cfg(4), ring8, "ns", seed=1).hp["r1_gamma"] == 0.0


def test_relativistic_generator_pairs_its_fakes_with_a_fresh_real_batch(ring8):
    from losslab.losses import gan as gan_losses

    rec = _Rec(_state(ring8, "r3gan"), ring8)
    g_inner = rec.state.G.net
    g_grads = []
    orig = rec.state.opt_g.step

    def g_step(*a, **k):
        g_grads.append([p.grad.clone() for p in g_inner.parameters()])
        return orig(*a, **k)

    rec.state.opt_g.step = g_step
    rec.step()
    assert len(rec.data.batches) == 2  # the critic's real batch, then the generator's own
    x_g = rec.data.batches[1]
    assert not torch.equal(x_g, rec.data.batches[0])
    (z,) = [z for z, grad, _ in rec.state.G.calls if grad]
    d_params = dict(zip([n for n, _ in rec.inner_d.named_parameters()], rec.d_before_g))
    g_params = {n: p.clone().requires_grad_(True)
                for (n, _), p in zip(g_inner.named_parameters(), rec.g_before_g, strict=True)}
    fake = functional_call(g_inner, g_params, (z,))
    loss = gan_losses.rpgan_g_loss(d_fake=rec.d(d_params, fake), d_real=rec.d(d_params, x_g))
    expected = torch.autograd.grad(loss, list(g_params.values()))
    for g, e in zip(g_grads[0], expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
    # the critic's batch would give another gradient: the check can tell them apart
    wrong = torch.autograd.grad(gan_losses.rpgan_g_loss(d_fake=rec.d(d_params, functional_call(g_inner, g_params, (z,))),
                                                        d_real=rec.d(d_params, rec.data.batches[0])),
                                list(g_params.values()))
    assert any(not torch.allclose(g, w, rtol=1e-5, atol=1e-7) for g, w in zip(g_grads[0], wrong))


def test_new_losses_batch_over_members_like_the_others(ring8):
    from losslab.train.batched import batchable

    for loss in ("r1", "rpgan", "r3gan"):  # the member step takes R1/R2 and the paired real batch
        assert batchable(tiny_cfg(4), ring8, loss, "gan") is None
