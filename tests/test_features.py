"""Feature networks for any image data: SimCLR on unlabelled images, the calibrated space, blur, coverage."""

from __future__ import annotations

import hashlib
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

from losslab.data import load_dataset
from losslab.metrics import features as features_mod
from losslab.metrics.features import CalibratedNet, ClassifierNet, get_feature_net, ssl_quality
from losslab.metrics.ssl import SimCLREncoder, gaussian_blur
from losslab.metrics.images import confident_class_stats
from losslab.metrics.representation import alignment, uniformity


@pytest.fixture(scope="module")
def digit_images() -> torch.Tensor:
    x = load_digits().images.astype(np.float32)  # (1797, 8, 8) in [0, 16]
    return torch.from_numpy(x / 8.0 - 1.0)[:, None]  # (1797, 1, 8, 8) in [-1, 1]


def unlabelled(x: torch.Tensor, name: str = "my-pngs") -> SimpleNamespace:
    return SimpleNamespace(name=name, kind="image", shape=tuple(x.shape[1:]), train=x[:-200], test=x[-200:],
                           train_labels=None, test_labels=None, num_classes=None)


# ----------------------------------------------------------------------------- blur


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7])
def test_gaussian_blur_matches_scipy(sigma):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    r = math.ceil(3 * sigma)
    # torch "reflect" padding is scipy's "mirror"; scipy's radius is int(truncate * sigma + 0.5).
    ref = scipy.ndimage.gaussian_filter(x.numpy().astype(np.float64), sigma=(0, 0, sigma, sigma), mode="mirror",
                                        truncate=(r - 0.25) / sigma)
    torch.testing.assert_close(gaussian_blur(x, sigma).double(), torch.from_numpy(ref), atol=1e-5, rtol=0)


def test_gaussian_blur_per_image_sigma_and_constants():
    x = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    sig = torch.tensor([0.7, 0.8, 0.9])  # same radius ceil(3 sigma) = 3 for all
    out = gaussian_blur(x, sig)
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], gaussian_blur(x[i : i + 1], float(sig[i])), atol=1e-6, rtol=0)
    const = torch.full((2, 2, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 1.3), const, atol=1e-6, rtol=0)  # weights sum to 1
    with pytest.raises(ValueError):
        gaussian_blur(x, 0.0)


# ----------------------------------------------------------------------------- SSL quality


class _Constant(nn.Module):
    num_features = 4

    def forward(self, x):
        return torch.ones(x.shape[0], 4)


class _Flatten(nn.Module):
    num_features = 64

    def forward(self, x):
        return x.flatten(1)


def test_ssl_quality_closed_forms(digit_images):
    x = digit_images[:50]
    q = ssl_quality(_Constant(), x)
    # every view-2 embedding is equally near every view-1 one: argmax picks index 0, so only image 0 agrees
    assert q["view_knn_agreement"] == pytest.approx(1 / 50, abs=0)
    assert q["alignment"] == pytest.approx(0.0, abs=1e-12)
    assert q["uniformity"] == pytest.approx(0.0, abs=1e-12)
    # raw pixels: the figures are those of representation.alignment / uniformity on unit rows
    q = ssl_quality(_Flatten(), x, seed=3)
    v1, v2 = features_mod.ssl_views(x, torch.Generator().manual_seed(3))
    u1 = torch.nn.functional.normalize(v1.flatten(1).double(), dim=1).numpy()
    u2 = torch.nn.functional.normalize(v2.flatten(1).double(), dim=1).numpy()
    assert q["alignment"] == pytest.approx(alignment(u1, u2), rel=1e-9)
    assert q["uniformity"] == pytest.approx(uniformity(u1), rel=1e-9)
    # nearest view-1 neighbour of each view-2 embedding by cosine, in numpy: the share that is its own view
    nearest = np.argmax(u2 @ u1.T, axis=1)
    assert q["view_knn_agreement"] == pytest.approx(float(np.mean(nearest == np.arange(50))), abs=0)
    assert q["n"] == 50


# ----------------------------------------------------------------------------- SimCLR feature net


@pytest.fixture
def ssl_counter(monkeypatch):
    calls = []
    original = features_mod.train_simclr

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(features_mod, "train_simclr", counting)
    return calls


def test_unlabelled_images_get_a_cached_simclr_net(digit_images, tmp_path, ssl_counter, single_thread):
    ds = unlabelled(digit_images)
    net = get_feature_net(ds, cache_dir=tmp_path, ssl_steps=60)
    assert isinstance(net, SimCLREncoder) and not hasattr(net, "logits")
    assert len(ssl_counter) == 1
    weights = next((tmp_path / "features").glob("simclr-*.safetensors"))
    meta = json.loads(weights.with_suffix(".json").read_text())
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["sha256"] == sha == net.sha256
    assert net.name == f"simclr-{sha[:8]} on my-pngs" == meta["name"]
    f = net(digit_images[:10])
    torch.testing.assert_close(f.norm(dim=1), torch.ones(10), atol=1e-5, rtol=0)  # unit rows
    q = net.quality
    # 1,000 images: the 200 test rows topped up with the first 800 training rows, views seeded 0
    held = torch.cat([ds.test, ds.train[:800]])
    again = ssl_quality(net, held, seed=0)
    assert q["n"] == again["n"] == 1000
    for key in ("view_knn_agreement", "alignment", "uniformity"):
        np.testing.assert_allclose(q[key], again[key], rtol=1e-6, atol=1e-9, err_msg=key)
    assert q["view_knn_agreement"] >= 20 / 1000  # learned something: chance is 1/1000

    again = get_feature_net(ds, cache_dir=tmp_path, ssl_steps=60)
    assert len(ssl_counter) == 1 and again.name == net.name and again.quality == q
    torch.testing.assert_close(again(digit_images[:10]), f, atol=0, rtol=0)

    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="SHA-256"):
        get_feature_net(ds, cache_dir=tmp_path, ssl_steps=60)
    assert len(ssl_counter) == 2


def test_folder_of_flat_pngs_gets_a_feature_net(digit_images, tmp_path, single_thread):
    folder = tmp_path / "my-pngs"
    folder.mkdir()
    for i, img in enumerate(digit_images[:240]):
        Image.fromarray(((img[0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(folder / f"{i:03d}.png")
    ds = load_dataset(str(folder), image_size=8)
    assert ds.train_labels is None
    net = get_feature_net(ds, cache_dir=tmp_path / "cache", ssl_steps=10)
    assert net.name.startswith("simclr-") and net.name.endswith(" on my-pngs")
    f = net(ds.test)
    assert f.shape == (len(ds.test), net.num_features) and torch.isfinite(f).all()


def test_calibrated_net_has_two_unit_halves_and_the_classifiers_logits(digit_images):
    torch.manual_seed(0)
    clf, ssl = ClassifierNet((1, 8, 8), 10, 16).eval(), SimCLREncoder((1, 8, 8), 24).eval()
    clf.name, ssl.name = "classifier-x", "simclr-y on x"
    net = CalibratedNet(clf, ssl)
    f = net(digit_images[:7])
    assert f.shape == (7, 40) and net.num_features == 40 and net.name == "classifier-x + simclr-y on x"
    torch.testing.assert_close(f[:, :16].norm(dim=1), torch.ones(7), atol=1e-5, rtol=0)
    torch.testing.assert_close(f[:, 16:].norm(dim=1), torch.ones(7), atol=1e-5, rtol=0)
    torch.testing.assert_close(net.logits(digit_images[:7]), clf.logits(digit_images[:7]), atol=0, rtol=0)


# ----------------------------------------------------------------------------- classes covered


def test_confident_coverage_counts_confident_repeated_classes_only():
    m, k = 200, 10
    z = torch.zeros(m, k)
    z[:100, 0] = 10.0  # 100 confident 0s
    z[100:180, 1] = 10.0  # 80 confident 1s
    z[180:190, 2] = 10.0  # 10 confident 2s; the bar is max(5, 0.2 * 200 / 10) = 5
    z[190:, 3] = 1.0  # 10 unconfident 3s: p = e / (e + 9) = 0.23
    out = confident_class_stats(z, k)
    assert out["cover_threshold"] == 5.0
    assert out["classes_covered"] == 3
    assert out["confident_counts"][:4] == [100, 80, 10, 0]
    assert out["class_counts"][:4] == [100, 80, 10, 10]  # the argmax histogram is unchanged
    # more samples raise the bar: 2,000 samples need 40 per class
    out = confident_class_stats(z.repeat(10, 1), k)
    assert out["cover_threshold"] == pytest.approx(40.0) and out["classes_covered"] == 3
    z[180:190, 2] = 2.0  # p = e^2 / (e^2 + 9) = 0.45 < 0.9
    assert confident_class_stats(z, k)["classes_covered"] == 2
    with pytest.raises(ValueError):
        confident_class_stats(z[:, :5], k)
