"""The data profile (losslab.data.profile) and its advice table, against known truths."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from losslab.cli import main
from losslab.data import Dataset, load_dataset
from losslab.data.advice import ADVICE, advise, compare_commands
from losslab.data.profile import (
    OUTLIER_Z,
    class_balance,
    mode_separation,
    profile,
    tail_statistics,
    twonn_dimension,
)
from losslab.losses import REGISTRIES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy_profiles():
    return {name: profile(load_dataset(name), seed=0) for name in ("gaussian1d", "mixture1d", "ring8", "grid25")}


@pytest.mark.parametrize("name", ["gaussian1d", "mixture1d", "ring8", "grid25"])
def test_num_modes_of_the_toys_is_their_true_count(name, toy_profiles):
    true_k = len(load_dataset(name).modes)  # 1, 2, 8, 25 from toy.py
    p = toy_profiles[name]
    assert p["num_modes"] == true_k and isinstance(p["num_modes"], int)
    assert p["num_modes_capped"] is False


@pytest.mark.parametrize("name, expected", [
    ("mixture1d", 4.0 / 0.5),  # means -2, 2; std 0.5
    ("ring8", 2 * 2.0 * math.sin(math.pi / 8) / 0.02),  # chord between neighbours on radius 2 over std 0.02
    ("grid25", 2.0 / 0.05),  # grid step over std
])
def test_separation_matches_the_closed_form(name, expected, toy_profiles):
    torch.testing.assert_close(toy_profiles[name]["separation_min"], expected, rtol=0.05, atol=0.0)


def test_one_mode_has_no_separation_and_intrinsic_dims_of_toys(toy_profiles):
    assert toy_profiles["gaussian1d"]["separation_min"] is None
    assert 0.85 <= toy_profiles["gaussian1d"]["intrinsic_dim"] <= 1.15
    assert 1.7 <= toy_profiles["ring8"]["intrinsic_dim"] <= 2.3  # 2-D blobs


def test_profile_is_deterministic_and_json_ready():
    ds = load_dataset("ring8")
    a, b = profile(ds, seed=3, max_samples=500), profile(ds, seed=3, max_samples=500)
    assert json.dumps(a, allow_nan=False) == json.dumps(b, allow_nan=False)
    assert a["n_used"] == 500 and a["dim"] == 2 and a["shape"] == [2]
    for field in ("num_modes", "separation", "intrinsic_dim", "tails"):
        assert set(a["methods"][field]) == {"method", "source"}


def test_digits_has_ten_classes_as_modes_and_their_balance():
    ds = load_dataset("digits")
    p = profile(ds)
    assert p["num_modes"] == 10 and "classes" in p["methods"]["num_modes"]["method"]
    counts = np.bincount(ds.train_labels.numpy(), minlength=10)
    assert p["class_balance"]["counts"] == counts.tolist()
    torch.testing.assert_close(p["class_balance"]["min_max_ratio"], counts.min() / counts.max())
    assert (p["channels"], p["height"], p["width"]) == (1, 8, 8)
    assert 0.0 < p["sparsity"] < 0.5 and 0.0 < p["mean_intensity"] < 1.0


def test_class_balance_closed_form():
    labels = np.array([0] * 10 + [1] * 30 + [2] * 60)
    cb = class_balance(labels)
    assert cb["counts"] == [10, 30, 60]
    torch.testing.assert_close(cb["min_max_ratio"], 10 / 60)
    p = np.array([0.1, 0.3, 0.6])
    torch.testing.assert_close(cb["normalized_entropy"], float(-(p * np.log(p)).sum() / np.log(3)))
    torch.testing.assert_close(class_balance(np.array([0, 1, 2, 0, 1, 2]))["normalized_entropy"], 1.0)
    assert class_balance(np.array([0, 0, 1]), num_classes=3)["counts"] == [2, 1, 0]  # empty class counts 0


def test_mode_separation_closed_form():
    means = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 10.0]])  # distances 5, 10, sqrt(45)
    smin, smed = mode_separation(means, np.array([4.0, 4.0, 4.0]), np.ones(3))  # pooled std 2
    torch.testing.assert_close((smin, smed), (2.5, math.sqrt(45) / 2))
    assert mode_separation(means[:1], np.array([1.0]), np.ones(1)) is None


def _plane_in_10d(n, rng):
    basis, _ = np.linalg.qr(rng.normal(size=(10, 2)))  # (10, 2) orthonormal columns
    return rng.uniform(-1, 1, size=(n, 2)) @ basis.T + 5.0  # (n, 10) on a 2-D affine plane


@pytest.mark.parametrize("make, lo, hi", [
    (_plane_in_10d, 1.7, 2.3),
    (lambda n, rng: np.stack([np.cos(t := rng.uniform(0, 4 * np.pi, n)), np.sin(t), 0.3 * t], 1), 0.85, 1.15),  # helix
    (lambda n, rng: rng.normal(size=(n, 5)), 4.2, 5.8),
])
def test_twonn_recovers_the_manifold_dimension(make, lo, hi):
    x = make(2000, np.random.default_rng(0))
    d = twonn_dimension(x)
    assert lo <= d <= hi
    torch.testing.assert_close(twonn_dimension(10.0 * x - 3.0), d)  # ratios of distances: scale/shift invariant


def test_twonn_drops_duplicates():
    x = _plane_in_10d(1000, np.random.default_rng(1))
    d = twonn_dimension(np.concatenate([x, x[:100]]))  # 100 exact duplicates have r1 = 0
    assert math.isfinite(d) and 1.7 <= d <= 2.3


def test_heavy_tails_student_t_versus_gaussian():
    rng = np.random.default_rng(0)
    gauss = tail_statistics(rng.normal(size=(20000, 3)))
    t2 = tail_statistics(rng.standard_t(df=2, size=(20000, 3)))
    # Gaussian: P(|Z| > 3) = 0.27%, excess kurtosis 0.
    torch.testing.assert_close(gauss["outlier_share"], 2 * stats.norm.sf(OUTLIER_Z), rtol=0.25, atol=0.0)
    assert abs(gauss["kurtosis_max"]) < 0.2 and not gauss["heavy_tailed"]
    # Student-t(2): MAD = t.ppf(0.75), so the share is 2 sf(3 * 1.4826 * t.ppf(0.75)) ~ 6%.
    expected = 2 * stats.t.sf(OUTLIER_Z * 1.4826 * stats.t.ppf(0.75, 2), 2)
    torch.testing.assert_close(t2["outlier_share"], expected, rtol=0.1, atol=0.0)
    assert t2["heavy_tailed"] and t2["kurtosis_max"] > 10


def _image_dataset(train, labels=None):
    return Dataset(name="synthetic", kind="image", shape=tuple(train.shape[1:]), train=train, test=train[:10],
                   train_labels=labels, num_classes=None if labels is None else int(labels.max()) + 1)


def test_sparsity_and_mean_intensity_with_a_constant_border():
    g = torch.Generator().manual_seed(0)
    x = -torch.ones(500, 1, 8, 8)  # black border
    x[:, :, 2:6, 2:6] = torch.rand(500, 1, 4, 4, generator=g) * 2 - 1  # 16 noisy pixels, uniform on [-1, 1]
    p = profile(_image_dataset(x))
    torch.testing.assert_close(p["sparsity"], 48 / 64)  # 48 constant border pixels
    torch.testing.assert_close(p["mean_intensity"], 16 / 64 * 0.5, atol=0.01, rtol=0.0)
    assert isinstance(p["num_modes"], int) and p["class_balance"] is None


def test_advice_names_real_losses_and_sources():
    for row in ADVICE:
        assert set(row.losses) <= set(REGISTRIES[row.family]), row.losses
        assert row.sources and all(s.strip() for s in row.sources)
        assert all("arXiv:" in s or s.startswith("docs/demo.md") for s in row.sources)
    assert (REPO / "docs" / "demo.md").exists()


def test_advice_follows_the_profile(toy_profiles):
    ring = toy_profiles["ring8"]["advice"]
    assert [r["family"] for r in ring] == ["gan"] and "wgan-gp" in ring[0]["losses"]
    assert toy_profiles["gaussian1d"]["advice"] == []  # no sourced row for one Gaussian
    assert compare_commands("ring8", ring) == ["losslab compare --data ring8 --losses r3gan,r1,wgan-gp"]
    assert compare_commands("my data.csv", []) == ["losslab compare --data 'my data.csv'"]
    image_rows = advise({"kind": "image", "num_modes": 10, "separation_min": 3.0})
    assert {r["family"] for r in image_rows} == {"gan", "diffusion"}


# --- the CLI ------------------------------------------------------------------------------------------


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "losslab", "profile", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def _blobs_csv(path):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = centres[rng.integers(0, 3, 600)] + rng.normal(size=(600, 2))
    np.savetxt(path, x, delimiter=",", header="x,y", comments="")


def _png_folder(root):
    rng = np.random.default_rng(0)
    for c, name in enumerate(["dark", "light"]):
        (root / name).mkdir(parents=True)
        for i in range(15):
            img = rng.integers(0, 60, size=(8, 8)) + 150 * c
            Image.fromarray(img.astype(np.uint8), mode="L").save(root / name / f"{i}.png")


@pytest.mark.parametrize("kind", ["csv", "npy", "png"])
def test_cli_profile_writes_json(kind, tmp_path):
    if kind == "csv":
        data, want = tmp_path / "blobs.csv", 3
        _blobs_csv(data)
    elif kind == "npy":
        data, want = tmp_path / "imgs.npy", None
        np.save(data, np.random.default_rng(0).integers(0, 256, size=(100, 8, 8)).astype(np.uint8))
    else:
        data, want = tmp_path / "pngs", 2  # two class subfolders
        _png_folder(data)
    out = tmp_path / "p.json"
    r = _cli(data, "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "What to try first" in r.stdout and "losslab compare --data" in r.stdout
    p = json.loads(out.read_text())
    assert isinstance(p["num_modes"], int) and isinstance(p["advice"], list)
    if want is not None:
        assert p["num_modes"] == want
    assert p["kind"] == ("vector" if kind == "csv" else "image")


def test_cli_profile_bad_path_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", str(tmp_path / "missing.csv")])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("losslab: error:") and len(err.strip().splitlines()) == 1
