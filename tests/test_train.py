"""The training loop and the adversarial step: budgets, clipping, divergence, resume."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from losslab import config as C
from losslab import io
from losslab.data import load_dataset
from losslab.losses import GAN_LOSSES
from losslab.train import gan
from losslab.train.loop import train_run
from losslab.train.steps import grad_stats


def tiny_cfg(steps=12, **train) -> C.Config:
    cfg = C.resolve("vector", sets=[f"train.steps={steps}", "train.batch_size=64", "train.log_every=4",
                                    "train.checkpoint_every=6", "train.n_eval=200", "model.hidden=32",
                                    "model.layers=2"])
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


@pytest.fixture(scope="module")
def ring8():
    return load_dataset("ring8")


@pytest.mark.parametrize("loss", list(GAN_LOSSES))
def test_every_loss_trains_with_equal_generator_budget(tmp_path, ring8, loss):
    cfg = tiny_cfg()
    res = train_run(tmp_path / loss, cfg, ring8, loss=loss, seed=0)
    assert res["status"] == "ok", res.get("error")
    n_critic = GAN_LOSSES[loss].defaults["n_critic"]
    # The budget: exactly `steps` generator updates; critic updates are n_critic per step.
    assert (res["g_updates"], res["d_updates"]) == (12, 12 * n_critic)
    rows = io.read_jsonl(tmp_path / loss / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 4, 8, 12]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_acc", "g_grad_norm", "g_grad_mean",
                "d_grad_norm", "d_grad_mean"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert all(0.0 <= r["d_acc"] <= 1.0 for r in rows)
    if GAN_LOSSES[loss].output == "logit":
        assert all(0.0 < r["p_real"] < 1.0 for r in rows)
    if GAN_LOSSES[loss].output == "critic":
        torch.testing.assert_close(rows[-1]["w_estimate"], rows[-1]["d_real"] - rows[-1]["d_fake"])
    if loss == "began":
        assert all(0.0 <= r["k"] <= 1.0 for r in rows)


def test_wgan_critic_weights_stay_clipped(ring8):
    cfg = tiny_cfg(steps=5)
    state = gan.init_state(cfg, ring8, "wgan", seed=0)
    assert isinstance(state.opt_d, torch.optim.RMSprop)  # as in the paper, not Adam
    for _ in range(5):
        gan.step(state, ring8, 64)
    c = state.hp["clip"]
    assert c == 0.01
    for p in state.D.parameters():
        assert float(p.detach().abs().max()) <= c + 1e-12


def test_grad_stats_is_global_norm_and_mean():
    lin = torch.nn.Linear(3, 2)
    lin.weight.grad = torch.tensor([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    lin.bias.grad = torch.tensor([12.0, 0.0])
    norm, mean = grad_stats(lin)
    torch.testing.assert_close(norm, 13.0)  # sqrt(9 + 16 + 144)
    torch.testing.assert_close(mean, 19.0 / 8)


class _PoisonAfter:
    """A dataset wrapper whose batches become NaN after `k` calls."""

    def __init__(self, ds, k):
        self.ds, self.k, self.calls = ds, k, 0
        self.name, self.shape, self.kind = ds.name, ds.shape, ds.kind

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
    assert io.read_json(tmp_path / "cut" / "checkpoint.json")["g_updates"] == 6
    res = train_run(tmp_path / "cut", cfg, ring8, loss="wgan-gp", seed=3)
    assert res["status"] == "ok" and res["g_updates"] == 12 and res["d_updates"] == 60
    a = load_file(str(tmp_path / "ref" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoint.safetensors"))
    for k in a:
        if k.startswith(("G.", "D.")):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    steps = [r["step"] for r in io.read_jsonl(tmp_path / "cut" / "metrics.jsonl")]
    assert steps == [1, 4, 8, 12]  # rows after the checkpoint were not duplicated


def test_changed_config_in_same_dir_is_refused(tmp_path, ring8):
    from losslab.errors import UserError

    train_run(tmp_path / "r", tiny_cfg(steps=4), ring8, loss="ns", seed=0)
    with pytest.raises(UserError, match="different configuration"):
        train_run(tmp_path / "r", tiny_cfg(steps=5), ring8, loss="ns", seed=0)
