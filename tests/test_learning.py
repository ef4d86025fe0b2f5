"""Pictures of learning: the snapshots taken at the curve points and the report's figures of them.

The snapshots must show the model as it is (the critic's values on the grid
are its outputs there; the arrows are the negative per-sample gradient of the
generator loss, checked against a closed form with finite differences), must
never change the training (same weights with and without them; a snapshot
that draws from the training stream is caught), and a resumed run takes the
points after its checkpoint again, ending with the same file as a run that
was never interrupted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from losslab import config as C
from losslab import rundir
from losslab.data import load_dataset
from losslab.train import diffusion, gan
from losslab.train.loop import snapshot_point, train_run
from losslab.train.snapshot import GRID_1D, GRID_2D, SNAPSHOT_IMAGES, SNAPSHOT_POINTS, SNAPSHOT_REAL, box


def tiny_cfg(steps=12, *sets) -> C.Config:
    return C.resolve("vector", sets=[f"train.steps={steps}", "train.batch_size=64", "train.log_every=4",
                                     "train.checkpoint_every=6", "train.n_eval=200", "model.hidden=32",
                                     "model.layers=2", "train.curve_points=4", "train.curve_n=200", *sets])


@pytest.fixture(scope="module")
def ring8():
    return load_dataset("ring8")


@pytest.fixture(scope="module")
def gauss1d():
    return load_dataset("gaussian1d")


# ----------------------------------------------------------------------------- what a snapshot holds


def test_gan_snapshot_1d_critic_and_push_are_the_models(gauss1d):
    cfg = tiny_cfg()
    state = gan.init_state(cfg, gauss1d, "ns", seed=0)
    for _ in range(5):
        gan.step(state, gauss1d, 64)
    grads = [None if p.grad is None else p.grad.clone() for p in [*state.G.parameters(), *state.D.parameters()]]
    snap = gan.snapshot(state, gauss1d, seed=0)
    assert snap["x"].shape == (GRID_1D,) and snap["critic"].shape == (GRID_1D,)
    assert snap["fake"].shape == (SNAPSHOT_POINTS, 1) and snap["push"].shape == (SNAPSHOT_POINTS, 1)
    assert snap["real"].shape == (SNAPSHOT_REAL, 1)
    # the generated points are the model's samples from the run's seed
    assert_close(torch.from_numpy(snap["fake"]), gan.sample(state, SNAPSHOT_POINTS, seed=0))
    # the grid spans the data (N(4, 1.25^2)) and the generated points, and the density is the data's
    assert snap["x"][0] < float(snap["real"].min()) and snap["x"][-1] > float(snap["real"].max())
    assert_close(snap["pdf"], gauss1d.pdf(snap["x"]).astype(np.float32))
    # the critic's logits on the grid
    state.D.eval()
    with torch.no_grad():
        want = state.D(torch.from_numpy(snap["x"]).reshape(-1, 1)).reshape(-1)
    state.D.train()
    assert_close(torch.from_numpy(snap["critic"]), want)
    # push = -d/dx softplus(-D(x)) = sigmoid(-D(x)) D'(x) per sample (ns_g_loss, Goodfellow et al. Sec. 3),
    # D' by central differences in float64 on a float64 copy of the critic
    d64 = state.D.double().eval()
    x = torch.from_numpy(snap["fake"]).double()
    h = 1e-4
    with torch.no_grad():
        dprime = (d64(x + h) - d64(x - h)).reshape(-1) / (2 * h)
        want_push = torch.sigmoid(-d64(x).reshape(-1)) * dprime
    state.D.float().train()
    assert_close(torch.from_numpy(snap["push"]).double().reshape(-1), want_push, rtol=1e-3, atol=1e-7)
    assert state.D.training and state.G.training  # modes restored
    for before, p in zip(grads, [*state.G.parameters(), *state.D.parameters()]):  # no parameter took a gradient
        assert (before is None and p.grad is None) or torch.equal(before, p.grad)


def test_gan_snapshot_2d_grid_is_row_major_and_arrows_point_down_the_generator_loss(ring8):
    cfg = tiny_cfg()
    state = gan.init_state(cfg, ring8, "wgan", seed=1)
    for _ in range(3):
        gan.step(state, ring8, 64)
    snap = gan.snapshot(state, ring8, seed=2)
    assert snap["critic"].shape == (GRID_2D, GRID_2D) and snap["push"].shape == (SNAPSHOT_POINTS, 2)
    i, j = 5, 40  # row i is grid_y[i], column j is grid_x[j]
    with torch.no_grad():
        v = state.D(torch.tensor([[snap["grid_x"][j], snap["grid_y"][i]]])).reshape(())
    assert_close(torch.tensor(snap["critic"][i, j]), v)
    # WGAN's generator loss is -mean D(G(z)): the push is +grad D(x); a small step along it raises D
    x = torch.from_numpy(snap["fake"][:8])
    step = 1e-3 * torch.from_numpy(snap["push"][:8])
    with torch.no_grad():
        gain = state.D(x + step).reshape(-1) - state.D(x).reshape(-1)
        assert_close(gain, (step * torch.from_numpy(snap["push"][:8])).sum(1), rtol=0.05, atol=1e-9)


def test_box_joins_data_and_generated_quantiles_and_ignores_non_finite():
    real = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    fake = torch.cat([torch.full((99, 2), 3.0), torch.tensor([[float("nan"), 0.0]])])
    lo, hi = box(real, fake)
    assert_close(torch.from_numpy(lo), torch.tensor([-0.45, -0.45], dtype=torch.float64))  # width 3, 15% pad
    assert_close(torch.from_numpy(hi), torch.tensor([3.45, 3.45], dtype=torch.float64))


def test_image_snapshot_is_16_fixed_codes_as_uint8():
    ds = load_dataset("random", n_train=64, image_size=8)
    cfg = C.resolve("image", sets=["model.z_dim=8", "data.image_size=8"])
    state = gan.init_state(cfg, ds, "ns", seed=0)
    snap = snapshot_point(gan, state, ds, seed=0)
    assert set(snap) == {"images"}
    assert snap["images"].shape == (SNAPSHOT_IMAGES, 1, 8, 8) and snap["images"].dtype == np.uint8
    want = ((gan.sample(state, SNAPSHOT_IMAGES, seed=0).clamp(-1, 1) + 1) * 127.5).round()
    assert_close(torch.from_numpy(snap["images"]).float(), want, rtol=0, atol=1.0)


# ----------------------------------------------------------------------------- the loop


def test_snapshots_are_stored_at_the_curve_points_and_never_change_training(tmp_path, ring8, monkeypatch):
    cfg = tiny_cfg()
    res = train_run(tmp_path / "with", cfg, ring8, loss="ns", seed=0)
    snaps = rundir.read_snapshots(tmp_path / "with")
    assert [p["g_updates"] for p in res["curve"]] == [3, 6, 9, 12]
    assert snaps["g_updates"].tolist() == [3, 6, 9, 12]
    assert snaps["critic"].shape == (4, GRID_2D, GRID_2D)

    monkeypatch.setattr(gan, "snapshot", None)
    train_run(tmp_path / "without", cfg, ring8, loss="ns", seed=0)
    assert rundir.read_snapshots(tmp_path / "without") is None
    a, _ = rundir.load_checkpoint(tmp_path / "with")
    b, _ = rundir.load_checkpoint(tmp_path / "without")
    for k in a:
        assert_close(a[k], b[k], rtol=0, atol=0)

    # the check can fail: a snapshot that draws from the training stream changes the weights
    def leaky(state, dataset, *, seed):
        torch.randn(1, generator=state.rng)
        return {"fake": np.zeros((1, 2), np.float32)}

    monkeypatch.setattr(gan, "snapshot", leaky)
    train_run(tmp_path / "leaky", cfg, ring8, loss="ns", seed=0)
    c, _ = rundir.load_checkpoint(tmp_path / "leaky")
    assert any(not torch.equal(a[k], c[k]) for k in a if k.startswith("G."))


def test_a_resumed_run_takes_the_snapshots_after_its_checkpoint_again(tmp_path, ring8):
    cfg = tiny_cfg()
    train_run(tmp_path / "ref", cfg, ring8, loss="ebgan", seed=4)
    calls = {"n": 0}

    def interrupt(n):
        calls["n"] += n
        if calls["n"] == 11:  # after the point at 9, the checkpoint is at 6
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tmp_path / "cut", cfg, ring8, loss="ebgan", seed=4, progress=interrupt)
    assert rundir.read_snapshots(tmp_path / "cut")["g_updates"].tolist() == [3, 6, 9]
    train_run(tmp_path / "cut", cfg, ring8, loss="ebgan", seed=4)
    ref, cut = rundir.read_snapshots(tmp_path / "ref"), rundir.read_snapshots(tmp_path / "cut")
    assert cut["g_updates"].tolist() == [3, 6, 9, 12]
    assert set(ref) == set(cut)
    for k in ref:
        np.testing.assert_array_equal(ref[k], cut[k])


def test_rundir_snapshot_file_appends_replaces_and_truncates(tmp_path):
    for g in (2, 4, 6):
        rundir.append_snapshot(tmp_path, g, {"a": np.full(3, g, np.float32)})
    rundir.append_snapshot(tmp_path, 4, {"a": np.full(3, -1, np.float32)})  # replaces 4 and drops 6
    s = rundir.read_snapshots(tmp_path)
    assert s["g_updates"].tolist() == [2, 4] and s["a"][:, 0].tolist() == [2, -1]
    with pytest.raises(ValueError, match="shape"):
        rundir.append_snapshot(tmp_path, 8, {"a": np.zeros(4, np.float32)})
    rundir.truncate_snapshots(tmp_path, 3)
    assert rundir.read_snapshots(tmp_path)["g_updates"].tolist() == [2]
    rundir.truncate_snapshots(tmp_path, None)
    assert rundir.read_snapshots(tmp_path) is None


def test_diffusion_snapshot_holds_samples_only(ring8):
    cfg = tiny_cfg(4, "diffusion.T=50", "diffusion.sample_steps=5")
    state = diffusion.init_state(cfg, ring8, "ddpm", seed=0)
    snap = diffusion.snapshot(state, ring8, seed=0)
    assert set(snap) == {"fake", "real", "grid_x", "grid_y"}
    assert_close(torch.from_numpy(snap["fake"]), diffusion.sample(state, SNAPSHOT_POINTS, seed=0))


# ----------------------------------------------------------------------------- the report's figures


def test_pick_frames_spreads_first_to_last():
    from losslab.report.learning import pick_frames

    assert pick_frames(8) == [0, 2, 5, 7]
    assert pick_frames(3) == [0, 1, 2]
    assert pick_frames(4, 4) == [0, 1, 2, 3]
    assert pick_frames(0) == []


def test_learning_figures_from_run_directories(tmp_path, ring8, gauss1d):
    from PIL import Image

    from losslab.report.learning import learning_figures
    from losslab.report.render import report_blocks, to_markdown

    train_run(tmp_path / "runs/ns/seed0", tiny_cfg(), ring8, loss="ns", seed=0)
    train_run(tmp_path / "runs/wgan/seed1", tiny_cfg(), gauss1d, loss="wgan", seed=1)
    # an image run: 3 snapshots of 16 one-channel 4x4 images, frame k all of value 80 * k
    for k, g in enumerate((5, 10, 15)):
        rundir.append_snapshot(tmp_path / "runs/ddpm/seed0", g,
                               {"images": np.full((16, 1, 4, 4), 80 * k, np.uint8)})
    runs = [{"loss": "ns", "seed": 0, "run_dir": "runs/ns/seed0", "family": "gan", "status": "ok"},
            {"loss": "wgan", "seed": 1, "run_dir": "runs/wgan/seed1", "family": "gan", "status": "ok"},
            {"loss": "ddpm", "seed": 0, "run_dir": "runs/ddpm/seed0", "family": "diffusion", "status": "ok"},
            {"loss": "hinge", "seed": 0, "run_dir": "runs/hinge/seed0", "family": "gan", "status": "failed"}]
    figs = learning_figures(tmp_path, {"runs": runs, "ranking": [{"loss": "wgan"}, {"loss": "ns"}]})
    assert [f[1] for f in figs] == ["wgan (seed 1)", "ns (seed 0)", "ddpm (seed 0)"]  # ranking order; no hinge
    for rel, _, cap in figs:
        assert (tmp_path / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and cap
    with Image.open(tmp_path / figs[2][0]) as im:  # the animation: one frame per snapshot
        assert im.n_frames == 3
        values = []
        for k in range(3):
            im.seek(k)
            values.append(im.convert("L").getpixel((2 * 3 + 1, 18 + 2 * 3 + 1)))  # inside the first tile
        assert values == [0, 80, 160]
    blocks = report_blocks({"runs": runs, "ranking": []}, [], figs)
    md = to_markdown(blocks)
    assert "## How each loss learned" in md and "figures/learning_ns.png" in md
    assert "How each loss learned" not in to_markdown(report_blocks({"runs": runs, "ranking": []}, [], []))


def test_a_failing_snapshot_is_skipped_with_a_warning_and_the_run_goes_on(tmp_path, ring8, monkeypatch):
    def broken(state, dataset, *, seed):
        raise RuntimeError("no picture")

    monkeypatch.setattr(gan, "snapshot", broken)
    with pytest.warns(RuntimeWarning, match="snapshot at update 3 skipped"):
        res = train_run(tmp_path / "r", tiny_cfg(), ring8, loss="ns", seed=0)
    assert res["status"] == "ok" and rundir.read_snapshots(tmp_path / "r") is None
