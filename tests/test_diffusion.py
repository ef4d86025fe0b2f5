"""The diffusion family: objectives, registry, denoisers, the training step, sampling,
checkpoints, artifacts and the report figure."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from losslab import config as C
from losslab import schedules as S
from losslab.data import Dataset, load_dataset
from losslab.errors import UserError
from losslab.losses.diffusion import DIFFUSION_LOSSES, DiffusionLoss, DiffusionObjective, get_diffusion_loss
from losslab.models.denoiser import MLPDenoiser, UNetDenoiser, build_denoiser, timestep_embedding
from losslab.report.diffusion import plot_diffusion
from losslab.train import diffusion as D
from losslab.train.common import Diverged


def _cfg(kind: str = "vector", *sets: str) -> C.Config:
    base = ["train.steps=6", "train.batch_size=32", "diffusion.T=100", "diffusion.sample_steps=5"]
    return C.resolve(kind, sets=base + list(sets))


def _images(n: int = 64, shape=(2, 8, 8), seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g) * 2 - 1
    return Dataset(name="tiny-images", kind="image", shape=shape, train=x, test=x.flip(0))


def _vectors(x: torch.Tensor, name: str = "vectors") -> Dataset:
    return Dataset(name=name, kind="vector", shape=tuple(x.shape[1:]), train=x, test=x.flip(0))


# ----------------------------------------------------------------- registry


def test_registry_keys_and_fields():
    assert list(DIFFUSION_LOSSES) == ["ddpm", "ddpm-x0", "ddpm-v", "flow-matching", "edm"]
    assert {k: v.objective for k, v in DIFFUSION_LOSSES.items()} == {
        "ddpm": "eps", "ddpm-x0": "x0", "ddpm-v": "v", "flow-matching": "flow", "edm": "edm"}
    for name, loss in DIFFUSION_LOSSES.items():
        if loss.objective not in S.OBJECTIVES:  # the ODE-sampled objectives: tests/test_flow_edm.py
            assert loss.defaults["sampler"] in S.ODE_SAMPLERS and loss.search_space
            continue
        assert loss.name == name and "arXiv:" in loss.source and loss.summary
        d = loss.defaults
        assert d["optimizer"] == "adam" and d["lr"] > 0 and d["schedule"] in S.SCHEDULES
        assert d["sampler"] in S.SAMPLERS and d["T"] == 1000 and 0.0 <= d["eta"] <= 1.0
        assert "sample_steps" in d
        with pytest.raises(dataclasses.FrozenInstanceError):
            loss.name = "x"  # type: ignore[misc]
    assert get_diffusion_loss("ddpm-v") is DIFFUSION_LOSSES["ddpm-v"]
    with pytest.raises(UserError, match="ddpm, ddpm-v, ddpm-x0, edm, flow-matching"):
        get_diffusion_loss("ddim")


# ----------------------------------------------------------------- objectives


class _PointMassOracle(nn.Module):
    """The exact network for data that is a point mass at c, in any parametrisation."""

    def __init__(self, sch: S.Schedule, c: float, objective: str):
        super().__init__()
        self.sch, self.c, self.objective = sch, c, objective

    def forward(self, x, t):
        ab = self.sch.alpha_bar[t].reshape(-1, *([1] * (x.dim() - 1)))
        eps = (x - ab.sqrt().float() * self.c) / (1 - ab).sqrt().float()
        return S.target(self.objective, torch.full_like(x, self.c), eps, ab)


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
def test_objective_is_zero_for_the_exact_network(objective):
    sch = S.get_schedule("linear", 1000)
    obj = DiffusionObjective(sch, objective)
    x0 = torch.full((128, 1, 4, 4), -0.4)
    loss = obj(_PointMassOracle(sch, -0.4, objective), x0, generator=torch.Generator().manual_seed(0))
    assert loss.shape == (128,)
    assert_close(loss, torch.zeros(128), rtol=0, atol=1e-6)


def test_objective_closed_forms_for_a_zero_network():
    sch = S.get_schedule("cosine", 1000)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((4000, 3), 0.5)
    # x0 objective: ||x0 - 0||^2 / d = 0.25 for every sample, whatever t and eps.
    assert_close(DiffusionObjective(sch, "x0")(zero, x0, generator=g), torch.full((4000,), 0.25))
    # eps objective: E ||eps||^2 / d = 1; the batch mean of 4000 * 3 squares has std sqrt(2 / 12000).
    eps_loss = DiffusionObjective(sch, "eps")(zero, x0, generator=g)
    assert_close(eps_loss.mean().item(), 1.0, rtol=0, atol=5 * math.sqrt(2 / 12000))
    # v objective at fixed t: E v^2 = ab E eps^2 + (1 - ab) x0^2.
    t = torch.full((4000,), 300)
    ab = sch.alpha_bar[300].item()
    v_loss = DiffusionObjective(sch, "v")(zero, x0, t=t, generator=g)
    assert_close(v_loss.mean().item(), ab + (1 - ab) * 0.25, rtol=0, atol=5 * ab * math.sqrt(2 / 12000))


def test_objective_rejects_unknown_parametrisation():
    with pytest.raises(UserError, match="objective"):
        DiffusionObjective(S.get_schedule("linear", 100), "score")


# ----------------------------------------------------------------- denoisers


def test_timestep_embedding_formula():
    t = torch.tensor([0, 1, 999])
    e = timestep_embedding(t, 6)  # h = 3, w_k = 10000^(-k/3)
    w = torch.tensor([1.0, 10_000 ** (-1 / 3), 10_000 ** (-2 / 3)])
    want = torch.cat([torch.sin(t[:, None] * w), torch.cos(t[:, None] * w)], dim=1)
    assert_close(e, want)
    assert timestep_embedding(t, 7).shape == (3, 7)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8), (5, 12, 12), (2, 4, 4)])
def test_unet_shapes_any_channels(shape):
    net = build_denoiser(shape, hidden=64, layers=3, base=8)
    assert isinstance(net, UNetDenoiser)
    x = torch.randn(3, *shape)
    out = net(x, torch.tensor([0, 50, 999]))
    assert out.shape == x.shape
    assert_close(out, torch.zeros_like(x))  # zero-initialised output layer
    # Every output pixel depends on the input (skip and receptive field), after a nudge.
    nn.init.normal_(net.out.weight, std=0.1)
    x.requires_grad_(True)
    net(x, torch.tensor([0, 50, 999]))[0].sum().backward()
    assert bool((x.grad[0].abs().sum(0) > 0).all())


def test_mlp_denoiser_uses_t():
    net = build_denoiser((2,), hidden=32, layers=2)
    assert isinstance(net, MLPDenoiser)
    x = torch.randn(5, 2)
    a, b = net(x, torch.zeros(5, dtype=torch.int64)), net(x, torch.full((5,), 500))
    assert a.shape == (5, 2)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("shape", [(1, 10, 10), (1, 28, 24), (2, 3), (0,), ()])
def test_denoiser_rejects_bad_shapes(shape):
    with pytest.raises(UserError):
        build_denoiser(shape, hidden=16, layers=2)


# ----------------------------------------------------------------- config


def test_config_overrides_reach_the_run():
    ds = load_dataset("ring8")
    st = D.init_state(_cfg("vector", "diffusion.schedule=cosine", "diffusion.sampler=ddpm", "diffusion.eta=0.5"),
                      ds, "ddpm", seed=0)
    assert st.hp["schedule"] == "cosine" and st.objective.schedule.T == 100
    assert st.hp["sampler"] == "ddpm" and D.nfe(st) == 5 and st.hp["eta"] == 0.5
    # The vector preset's lr_scale multiplies the loss's lr; an explicit diffusion.lr wins.
    assert_close(st.opt.param_groups[0]["lr"], DIFFUSION_LOSSES["ddpm"].defaults["lr"] * 5.0)
    st = D.init_state(_cfg("vector", "diffusion.lr=3e-3"), ds, "ddpm", seed=0)
    assert_close(st.opt.param_groups[0]["lr"], 3e-3)
    st = D.init_state(C.resolve("image"), _images(shape=(1, 8, 8)), "ddpm", seed=0)
    assert D.nfe(st) == D.DEFAULT_SAMPLE_STEPS["image"]


@pytest.mark.parametrize(
    "item", ["diffusion.schedule=quadratic", "diffusion.sampler=rk45", "diffusion.T=1", "diffusion.eta=1.5",
             "diffusion.lr=0", "diffusion.sample_steps=0", "diffusion.foo=1"]
)
def test_config_validation(item):
    with pytest.raises(UserError):
        C.resolve("vector", sets=[item])


def test_sample_steps_beyond_T_fail_before_training():
    with pytest.raises(UserError, match="sample_steps"):
        D.init_state(_cfg("vector", "diffusion.sample_steps=500"), load_dataset("ring8"), "ddpm", seed=0)


# ----------------------------------------------------------------- family


def test_step_contract_and_buckets():
    ds = load_dataset("ring8")
    st = D.init_state(_cfg(), ds, "ddpm", seed=0)
    log = D.step(st, ds, 256, record=True)
    assert st.g_updates == 1 and st.d_updates == 0
    for key in ("g_loss", "g_grad_norm", "g_grad_mean"):
        assert math.isfinite(log[key])
    buckets = [log[f"loss_t{b}"] for b in range(D.N_BUCKETS) if f"loss_t{b}" in log]
    assert len(buckets) >= 8 and all(math.isfinite(v) and v >= 0 for v in buckets)
    assert D.step(st, ds, 256) == {} and st.g_updates == 2


def test_bucket_edges_partition_the_timesteps():
    for T in (100, 1000, 37):
        t = torch.arange(T)
        b = D._bucket_of(t, T)
        edges = torch.div(torch.arange(D.N_BUCKETS + 1) * T + D.N_BUCKETS - 1, D.N_BUCKETS, rounding_mode="floor")
        assert int(edges[0]) == 0 and int(edges[-1]) == T
        assert bool(((edges[b] <= t) & (t < edges[b + 1])).all())


def test_nonfinite_data_diverges():
    x = torch.randn(100, 2)
    ds = _vectors(x)
    st = D.init_state(_cfg(), ds, "ddpm", seed=0)
    ds.train = torch.full((100, 2), float("nan"))
    with pytest.raises(Diverged, match="update 1"):
        D.step(st, ds, 16)


def test_vectors_are_standardised_and_mapped_back():
    # An x0-predicting network that outputs 0 (in standardised units) generates the
    # training mean, whatever the noise: samples come back in data units.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g) * torch.tensor([100.0, 1.0, 0.01]) + torch.tensor([1000.0, -5.0, 0.2])
    ds = _vectors(x)
    st = D.init_state(_cfg(), ds, "ddpm-x0", seed=0)
    assert_close(st.shift[0], x.mean(0))
    assert_close(st.scale[0], torch.from_numpy(np.std(x.numpy(), axis=0, ddof=1)))
    for m in (st.net, st.ema):
        for p in m.out.parameters():
            nn.init.zeros_(p)
    out = D.sample(st, 7, seed=1)
    assert_close(out, x.mean(0).expand(7, 3))


@pytest.mark.parametrize("loss", list(DIFFUSION_LOSSES))
def test_image_family_trains_and_samples_in_range(loss):
    ds = _images()
    st = D.init_state(_cfg("image"), ds, loss, seed=0)
    for _ in range(2):
        log = D.step(st, ds, 8, record=True)
    assert math.isfinite(log["g_loss"]) and st.g_updates == 2
    x = D.sample(st, 3, seed=0)
    assert x.shape == (3, 2, 8, 8)
    assert float(x.abs().max()) <= 1.0
    assert_close(D.sample(st, 3, seed=0), x)  # the seed fixes the samples


def test_checkpoint_resumes_exactly():
    ds = load_dataset("ring8")
    cfg = _cfg()
    a = D.init_state(cfg, ds, "ddpm-v", seed=3)
    for _ in range(3):
        D.step(a, ds, 32)
    tensors, meta = D.state_dict(a)
    tensors = {k: v.clone() for k, v in tensors.items()}
    for _ in range(3):
        D.step(a, ds, 32)
    b = D.init_state(cfg, ds, "ddpm-v", seed=99)  # different init: everything must come from the checkpoint
    D.load_state_dict(b, tensors, meta)
    assert b.g_updates == 3
    for _ in range(3):
        D.step(b, ds, 32)
    for (ka, va), (kb, vb) in zip(D.state_dict(a)[0].items(), D.state_dict(b)[0].items()):
        assert ka == kb
        assert_close(va, vb, rtol=0, atol=0)


def test_learns_a_gaussian():
    # gaussian1d is N(4, 1.25^2): a short run recovers its mean and std.
    ds = load_dataset("gaussian1d")
    cfg = C.resolve("vector", sets=["model.layers=2", "diffusion.sample_steps=20"])
    st = D.init_state(cfg, ds, "ddpm", seed=0)
    for _ in range(150):
        D.step(st, ds, 128)
    x = D.sample(st, 2000, seed=0)
    assert_close(x.mean().item(), 4.0, rtol=0, atol=0.25)
    assert_close(x.std().item(), 1.25, rtol=0.2, atol=0)


def test_runs_through_the_training_loop(tmp_path, monkeypatch):
    from losslab.io import read_json, read_jsonl
    from losslab.train import loop

    monkeypatch.setitem(loop.FAMILIES, "diffusion", D)
    cfg = _cfg("vector", "train.log_every=2", "train.checkpoint_every=3", "train.n_eval=50")
    res = loop.train_run(tmp_path / "run", cfg, load_dataset("ring8"), loss="ddpm", seed=0, family="diffusion")
    assert res["status"] == "ok", res.get("error")
    assert res["g_updates"] == 6 and res["d_updates"] == 0
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 4, 6]
    assert all("g_loss" in r and "g_grad_norm" in r for r in rows)
    assert read_json(tmp_path / "run" / "config.json")["diffusion"]["T"] == 100
    with np.load(tmp_path / "run" / "samples.npz") as f:
        assert f["samples"].shape == (50, 2)


# ----------------------------------------------------------------- artifacts and figure


@pytest.mark.parametrize("which", ["ring8", "gaussian1d", "images"])
def test_artifacts_and_figure(tmp_path, which):
    ds = _images(shape=(1, 8, 8)) if which == "images" else load_dataset(which)
    kind = "image" if which == "images" else "vector"
    st = D.init_state(_cfg(kind), ds, "ddpm", seed=0)
    D.step(st, ds, 16)
    D.artifacts(st, ds, tmp_path)
    with np.load(tmp_path / "diffusion.npz", allow_pickle=False) as f:
        a = {k: f[k] for k in f.files}
    shape = tuple(ds.shape)
    k = 8 if kind == "image" else 1000
    assert a["forward_x"].shape == (len(a["forward_t"]), k, *shape) and a["forward_t"][0] == -1
    assert a["reverse_x"].shape[1:] == (k, *shape) and len(a["reverse_t"]) == a["reverse_x"].shape[0]
    assert a["reverse_t"][0] == 100 and a["reverse_t"][-1] == -1
    assert a["bucket_edges"].tolist() == list(range(0, 101, 10)) and a["bucket_loss"].shape == (10,)
    assert np.isfinite(a["bucket_loss"]).all() and str(a["objective"]) == "eps" and int(a["nfe"]) == 5
    # x_0 of the forward strip is held-out data; the last state of the chain is the output.
    ref = ds.reference(1000 if kind == "vector" else 256, torch.Generator().manual_seed(0))
    assert_close(torch.from_numpy(a["forward_x"][0]), ref[:k].float(), rtol=1e-5, atol=1e-5)
    out = plot_diffusion(tmp_path, tmp_path / "fig.png", reference={"modes": ds.modes.numpy()} if ds.modes is not None
                         else None)
    assert out is not None and out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_without_artifacts_is_none(tmp_path):
    assert plot_diffusion(tmp_path, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()
