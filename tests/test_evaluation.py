"""losslab.evaluation: features train, eval of run directories and of anyone's samples."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from losslab import io
from losslab.errors import UserError
from losslab.evaluation import (
    ACCURACY_THRESHOLDS,
    eval_run_dir,
    eval_samples,
    features_train,
    format_table,
    load_data,
    load_samples,
)
from losslab.metrics import METRIC_INFO


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The session's isolated cache (the folder conftest points LOSSLAB_CACHE to), for module fixtures."""
    return tmp_path_factory.getbasetemp() / "losslab-cache"


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache):
    """A finished 6-update GAN run on digits, evaluated as `losslab compare` evaluates it."""
    from losslab import compare as cmp
    from losslab import config as C
    from losslab.train.loop import train_run

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOSSLAB_CACHE", str(cache))
        ds = load_data("digits")
        cfg = C.resolve("image", sets=["data.name=digits", "train.steps=6", "train.batch_size=32",
                                       "train.log_every=2", "train.checkpoint_every=3", "train.n_eval=150",
                                       "model.z_dim=8"])
        run_dir = tmp_path_factory.mktemp("runs") / "ns"
        with pytest.warns(UserWarning):  # 150 samples: FID rank-deficient, KID subset cut
            res = train_run(run_dir, cfg, ds, loss="ns", seed=0, evaluate=cmp.make_evaluator(cfg, ds))
    assert res["status"] == "ok"
    return run_dir


def write_test_split(ds, path):
    """The digits test split as float images in [0, 1], shape (N, H, W)."""
    np.savez(path, images=((ds.test[:, 0].numpy() + 1.0) / 2.0).astype(np.float32))
    return path


# ----------------------------------------------------------------------------- load_samples


def test_load_samples_reads_every_documented_layout(tmp_path):
    u8 = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # (1, 2, 2)
    np.savez(tmp_path / "a.npz", images=u8)
    torch.testing.assert_close(load_samples(tmp_path / "a.npz"), torch.tensor([[[[-1.0, 1.0], [-0.6, -0.2]]]]))
    rgb = np.random.default_rng(0).uniform(0, 1, size=(3, 3, 4, 4)).astype(np.float32)  # (N, C, H, W) in [0, 1]
    np.savez(tmp_path / "b.npz", images=rgb)
    torch.testing.assert_close(load_samples(tmp_path / "b.npz"), torch.from_numpy(rgb * 2 - 1))
    np.save(tmp_path / "c.npy", rgb.transpose(0, 2, 3, 1))  # (N, H, W, C)
    torch.testing.assert_close(load_samples(tmp_path / "c.npy"), torch.from_numpy(rgb * 2 - 1))
    own = np.linspace(-1, 1, 32, dtype=np.float32).reshape(2, 1, 4, 4)  # losslab's samples.npz
    np.savez(tmp_path / "samples.npz", samples=own)
    torch.testing.assert_close(load_samples(tmp_path / "samples.npz"), torch.from_numpy(own))


def test_load_samples_reads_a_folder_of_images(tmp_path):
    from PIL import Image

    levels = [0, 85, 170, 255]
    for i, v in enumerate(levels):
        Image.fromarray(np.full((8, 8), v, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    x = load_samples(tmp_path, image_size=8)
    assert x.shape == (4, 1, 8, 8)
    torch.testing.assert_close(x[:, 0, 0, 0], torch.tensor(levels, dtype=torch.float32) / 127.5 - 1)


def test_load_samples_errors_are_one_line_user_errors(tmp_path):
    np.savez(tmp_path / "wrongkey.npz", pictures=np.zeros((2, 4, 4), np.uint8))
    np.savez(tmp_path / "range.npz", images=np.full((2, 4, 4), 2.0, np.float32))
    np.savez(tmp_path / "shape.npz", images=np.zeros((2, 5, 4, 4), np.uint8))
    np.savez(tmp_path / "nan.npz", images=np.full((2, 4, 4), np.nan, np.float32))
    (tmp_path / "x.txt").write_text("hi")
    cases = {"wrongkey.npz": "no array named 'images' .*pictures", "range.npz": r"\[0, 1\]",
             "shape.npz": "expected", "nan.npz": "not finite", "x.txt": "unsupported", "missing.npz": "no such file"}
    for name, match in cases.items():
        with pytest.raises(UserError, match=match) as e:
            load_samples(tmp_path / name)
        assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- eval --samples


def test_eval_samples_of_the_test_split_itself(digits, tmp_path):
    path = write_test_split(digits, tmp_path / "test.npz")
    out = tmp_path / "res.json"
    n = digits.test.shape[0]
    with pytest.warns(UserWarning, match="KID subset size"):
        res = eval_samples(path, "digits", out=out)
    m = res["metrics"]
    # The reference is the whole test split (in another order): the same set of images.
    assert res["n_eval"] == res["n_real"] == n == m["n_eval"] == m["n_real"]
    assert_allclose(m["fid"], 0.0, atol=1e-6)
    assert_allclose([m["precision"], m["recall"], m["coverage"]], [1.0, 1.0, 1.0], rtol=0, atol=0)
    assert_allclose(m["feature_swd"], 0.0, atol=1e-9)
    assert m["classes_covered"] == 10 and m["feature_net"].startswith("classifier-digits-")
    assert set(m) <= set(METRIC_INFO)
    saved = json.loads(out.read_text())
    assert saved["feature_net"] == m["feature_net"] and saved["n_eval"] == n and saved["metrics"]["fid"] == m["fid"]
    table = format_table(res)
    assert m["feature_net"] in table and f"generated {n}" in table and "fid" in table


def test_eval_samples_resizes_other_sizes_and_says_so(digits, tmp_path):
    big = torch.nn.functional.interpolate((digits.test + 1) / 2, size=(16, 16), mode="nearest")
    np.savez(tmp_path / "big.npz", images=big.numpy())
    with pytest.warns(UserWarning, match="resized"):
        res = eval_samples(tmp_path / "big.npz", "digits", n=200)
    assert any("resized from 16x16 to 8x8" in note for note in res["notes"])
    assert res["n_eval"] == 200 and np.isfinite(res["metrics"]["fid"])


def test_eval_samples_errors(digits, tmp_path, monkeypatch):
    np.savez(tmp_path / "rgb.npz", images=np.zeros((10, 3, 8, 8), np.uint8))
    with pytest.raises(UserError, match="3 channel"):
        eval_samples(tmp_path / "rgb.npz", "digits")
    path = write_test_split(digits, tmp_path / "t.npz")
    with pytest.raises(UserError, match="vector data"):
        eval_samples(path, "ring8")
    with pytest.raises(UserError, match="unknown feature network 'vgg'"):
        eval_samples(path, "digits", features="vgg")
    import importlib.util

    from losslab.metrics import inception

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    inception.get_inception_net.cache_clear()
    with pytest.raises(UserError, match=r"pip install 'losslab\[inception\]'"):
        eval_samples(path, "digits", features="inception")
    with pytest.raises(UserError, match="at least 2"):
        eval_samples(path, "digits", n=1)


# ----------------------------------------------------------------------------- eval RUN_DIR


def test_eval_run_dir_repeats_the_runs_result_and_adds_the_discriminator(run, tmp_path):
    from losslab import config as C
    from losslab.train import gan

    result = io.read_json(run / "result.json")
    with pytest.warns(UserWarning):
        res = eval_run_dir(run, out=tmp_path / "e.json")
    m = res["metrics"]
    for key in ("fid", "kid", "precision", "coverage", "inception_score", "class_kl"):
        assert_allclose(m[key], result["metrics"][key], rtol=1e-9, err_msg=key)
    assert res["feature_net"] == result["metrics"]["feature_net"] and res["n_eval"] == 150
    # The discriminator's accuracy: logits, threshold 0, on held-out test rows vs the run's samples.
    c = io.read_json(run / "config.json")
    cfg = C.Config()
    C.apply_overrides(cfg, {k: c[k] for k in ("data", "model", "train", "loss")}, "test")
    ds = load_data("digits")
    state = gan.init_state(cfg, ds, "ns", 0)
    from losslab import rundir

    gan.load_state_dict(state, *rundir.load_checkpoint(run))
    state.D.eval()
    with torch.no_grad():
        real = state.D(ds.reference(150, torch.Generator().manual_seed(12345)))
        fake = state.D(torch.from_numpy(np.load(run / "samples.npz")["samples"]))
    expected = (float((real > 0).sum()) + float((fake <= 0).sum())) / (real.numel() + fake.numel())
    assert_allclose(m["d_accuracy"], expected, rtol=1e-12)
    assert_allclose([m["d_real_mean"], m["d_fake_mean"]], [float(real.mean()), float(fake.mean())], rtol=1e-5)
    assert json.loads((tmp_path / "e.json").read_text())["metrics"]["d_accuracy"] == m["d_accuracy"]


def test_eval_checkpoint_without_samples_draws_the_same_samples(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "samples.npz").unlink()
    with pytest.warns(UserWarning):
        res = eval_run_dir(copy / "checkpoint.safetensors")
    assert any("from the checkpoint" in note for note in res["notes"])
    # The last checkpoint holds the final generator, so its samples are the run's samples.
    assert_allclose(res["metrics"]["fid"], io.read_json(run / "result.json")["metrics"]["fid"], rtol=1e-9)


def test_eval_run_dir_errors(run, tmp_path):
    with pytest.raises(UserError, match="config.json missing"):
        eval_run_dir(tmp_path)
    with pytest.raises(UserError, match="neither"):
        eval_run_dir(tmp_path / "nothing")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "config.json", bare / "config.json")
    with pytest.raises(UserError, match="neither samples.npz nor a checkpoint"):
        eval_run_dir(bare)


# ----------------------------------------------------------------------------- features train


def test_features_train_records_accuracy_and_checksum(digits):
    info = features_train("digits", progress=False)
    weights = info["weights"]
    assert info["sha256"] == hashlib.sha256(open(weights, "rb").read()).hexdigest()
    meta = json.loads(open(weights.replace(".safetensors", ".json")).read())
    assert meta["test_accuracy"] == info["test_accuracy"] and meta["name"] == info["name"]
    assert info["threshold"] is None and info["meets_threshold"] is None  # no requirement for digits
    assert 0.8 <= info["test_accuracy"] <= 1.0
    with pytest.raises(UserError):
        features_train("ring8")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_classifier_reaches_its_accuracy_threshold(name, mnist_dir):
    from losslab.metrics.features import accuracy, get_feature_net

    if not (mnist_dir / name / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"{name} files not found")
    info = features_train(name, data_dir=str(mnist_dir), progress=False)
    assert info["threshold"] == ACCURACY_THRESHOLDS[name] and info["meets_threshold"] is True
    assert info["threshold"] <= info["test_accuracy"] <= 1.0
    ds = load_data(name, data_dir=str(mnist_dir))
    net = get_feature_net(ds)  # from the cache: the recorded accuracy is the accuracy of these weights
    assert_allclose(accuracy(net, ds.test, ds.test_labels), info["test_accuracy"], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_stacked_mnist_test_split_covers_its_modes(mnist_dir, tmp_path):
    from losslab.data.stacked import PROTOCOL_SAMPLES

    ds = load_data("stacked-mnist", data_dir=str(mnist_dir))
    assert ds.num_classes == 1000 and ds.shape == (3, 28, 28)
    mnist = features_train("mnist", data_dir=str(mnist_dir), progress=False)  # cached by the test above
    x = ds.test[:3000]
    np.savez(tmp_path / "s.npz", images=((x.numpy() + 1) / 2).astype(np.float32))
    with pytest.warns(UserWarning, match=str(PROTOCOL_SAMPLES)):
        res = eval_samples(tmp_path / "s.npz", "stacked-mnist", data_dir=str(mnist_dir))
    m = res["metrics"]
    true_modes = len(set(ds.test_labels[:3000].tolist()))
    # The per-channel classifier is the MNIST classifier itself (one cache entry).
    assert m["num_modes"] == 1000 and m["feature_net"] == f"stacked-{mnist['name']}"
    # A ~99% digit classifier errs on ~3% of triples: the mode count is close to the true one.
    assert_allclose(m["modes_covered"], true_modes, rtol=0.05)
