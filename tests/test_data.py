"""Tests of losslab.data: toy mixtures against closed forms, the real MNIST /
Fashion-MNIST files, IDX parsing and MD5 checks, offline behaviour, user files."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import math
import os
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate

from losslab.data import DATASETS, Dataset, load_dataset
from losslab.data import images as img_mod
from losslab.data import toy
from losslab.errors import UserError

DATA = Path(os.environ.get("LOSSLAB_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
HAVE_MNIST = all((DATA / "mnist" / f).is_file() for f in img_mod.IDX_FILE_NAMES)
HAVE_FASHION = all((DATA / "fashion-mnist" / f).is_file() for f in img_mod.IDX_FILE_NAMES)
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST files not in {DATA}/mnist")
needs_fashion = pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST files not in {DATA}/fashion-mnist")

# From shared/data/README.md (the published class counts of MNIST).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """Empty LOSSLAB_DATA and cache, so nothing outside tmp_path is found or written."""
    data = tmp_path / "env-data"
    cache = tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("LOSSLAB_DATA", str(data))
    monkeypatch.setenv("LOSSLAB_CACHE", str(cache))
    return tmp_path


# ----------------------------------------------------------------------------- registry


def test_registry_names_match_loaders_and_descriptions_are_one_line():
    loadable = set(toy.TOYS) | {"digits", "stacked-mnist", "random"} | set(img_mod.IDX_FILES)
    assert set(DATASETS) == loadable
    for name, desc in DATASETS.items():
        assert desc.strip() and "\n" not in desc, name


def test_unknown_name_lists_choices_and_mentions_paths():
    with pytest.raises(UserError) as e:
        load_dataset("ring9")
    msg = str(e.value)
    assert "ring9" in msg and "ring8" in msg and "fashion-mnist" in msg and ".csv" in msg and "\n" not in msg


# ----------------------------------------------------------------------------- toys


def test_ring8_has_eight_distinct_means_at_radius_2():
    ds = load_dataset("ring8")
    means = ds.modes.double()
    assert means.shape == (8, 2)
    torch.testing.assert_close(means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64), rtol=0, atol=1e-6)
    # Every pairwise angle is a multiple of pi/4 and the 8 angles are all different.
    angles = torch.atan2(means[:, 1], means[:, 0])
    k = torch.remainder(angles, 2 * math.pi) / (math.pi / 4)
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-5)
    assert sorted(int(v) % 8 for v in k.round()) == list(range(8))
    diff = (angles[:, None] - angles[None, :]) / (math.pi / 4)
    torch.testing.assert_close(diff, diff.round(), rtol=0, atol=1e-5)
    # Closest pair: neighbours on the ring, chord 2 r sin(pi / 8).
    d = torch.cdist(means, means) + torch.eye(8) * 100
    torch.testing.assert_close(d.min(), torch.tensor(4 * math.sin(math.pi / 8), dtype=torch.float64), rtol=0, atol=1e-6)
    assert ds.mode_std == 0.02
    torch.testing.assert_close(ds.weights, torch.full((8,), 1 / 8))


def test_grid25_means_are_the_grid():
    ds = load_dataset("grid25")
    got = sorted(tuple(round(float(v), 6) for v in row) for row in ds.modes)
    want = sorted(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert got == want
    assert ds.mode_std == 0.05


# Closed forms of sum_k w_k N(mu_k, s^2 I):  mean = sum w mu,  cov = s^2 I + sum w mu mu^T - mean mean^T.
# ring8: radius 2, 8 equal angles -> sum w mu mu^T = (r^2 / 2) I = 2 I.   grid25: var of {-4,-2,0,2,4} = 8.
CLOSED_FORMS = {
    "gaussian1d": ([4.0], [[1.25**2]]),
    "mixture1d": ([0.0], [[0.5**2 + 4.0]]),
    "ring8": ([0.0, 0.0], [[0.02**2 + 2.0, 0.0], [0.0, 0.02**2 + 2.0]]),
    "grid25": ([0.0, 0.0], [[0.05**2 + 8.0, 0.0], [0.0, 0.05**2 + 8.0]]),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_toy_sample_moments_match_closed_forms(name):
    ds = load_dataset(name)
    mean, cov = (np.array(v) for v in CLOSED_FORMS[name])
    n = 200_000
    x = ds.sampler(n, torch.Generator().manual_seed(123)).double().numpy()
    assert x.shape == (n, len(mean))
    # Mean: standard error sqrt(var / n); allow 5 standard errors either side.
    z_mean = (x.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
    np.testing.assert_allclose(z_mean, 0.0, atol=5.0)
    # Covariance entries: standard error of the mean of (x_i - m_i)(x_j - m_j).
    c = x - mean
    prods = c[:, :, None] * c[:, None, :]  # (n, d, d)
    z_cov = (prods.mean(0) - cov) / (prods.std(0) / np.sqrt(n))
    np.testing.assert_allclose(z_cov, 0.0, atol=5.0)
    # The stored training / test draws come from the same distribution (10,000 each).
    assert ds.train.shape == ds.test.shape == (10_000, len(mean))
    z_train = (ds.train.double().numpy().mean(0) - mean) / np.sqrt(np.diag(cov) / 10_000)
    np.testing.assert_allclose(z_train, 0.0, atol=5.0)


def test_ring8_samples_cover_every_mode_equally():
    ds = load_dataset("ring8")
    n = 80_000
    x = ds.sampler(n, torch.Generator().manual_seed(7))
    dist = torch.cdist(x, ds.modes)  # (n, 8)
    nearest = dist.argmin(1)
    frac = torch.bincount(nearest, minlength=8).double() / n
    se = math.sqrt((1 / 8) * (7 / 8) / n)
    torch.testing.assert_close(frac, torch.full((8,), 1 / 8, dtype=torch.float64), rtol=0, atol=5 * se)
    # Each sample is within 6 sigma of its mode (P(r > 6 sigma) = exp(-18) in 2-D).
    assert float(dist.min(1).values.max()) <= 6 * 0.02


@pytest.mark.parametrize("name", ["gaussian1d", "mixture1d"])
def test_pdf_integrates_to_one_and_matches_formula(name):
    ds = load_dataset(name)
    total, _ = integrate.quad(ds.pdf, -40, 40, points=[-2.0, 2.0, 4.0], limit=200)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-8)
    x = np.linspace(-6, 10, 33)
    mu, s, w = ds.modes[:, 0].double().numpy(), ds.mode_std, ds.weights.double().numpy()
    want = sum(wk * np.exp(-((x - mk) ** 2) / (2 * s**2)) / math.sqrt(2 * math.pi * s**2) for wk, mk in zip(w, mu))
    np.testing.assert_allclose(ds.pdf(x), want, rtol=1e-10, atol=1e-300)


def test_2d_toys_have_no_pdf():
    assert load_dataset("ring8").pdf is None and load_dataset("grid25").pdf is None


def test_toy_seeds_give_reproducible_independent_splits():
    a, b, c = load_dataset("ring8", seed=0), load_dataset("ring8", seed=0), load_dataset("ring8", seed=1)
    torch.testing.assert_close(a.train, b.train, rtol=0, atol=0)
    assert not torch.equal(a.train, a.test)
    assert not torch.equal(a.train, c.train)
    assert not torch.equal(a.test, c.train)  # the test draws of one seed are not the train draws of another


def test_sample_and_reference_reproducible_with_generator():
    ds = load_dataset("mixture1d")
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    torch.testing.assert_close(ds.sample(64, g(5)), ds.sample(64, g(5)), rtol=0, atol=0)
    torch.testing.assert_close(ds.reference(64, g(5)), ds.reference(64, g(5)), rtol=0, atol=0)
    assert not torch.equal(ds.sample(64, g(5)), ds.sample(64, g(6)))
    assert ds.sample(64, g(5)).shape == (64, 1)

    dg = load_dataset("digits")
    torch.testing.assert_close(dg.sample(32, g(1)), dg.sample(32, g(1)), rtol=0, atol=0)
    torch.testing.assert_close(dg.reference(32, g(1)), dg.reference(32, g(1)), rtol=0, atol=0)
    assert not torch.equal(dg.sample(32, g(1)), dg.sample(32, g(2)))
    # Without a sampler: batches are rows of train, references rows of test without repeats.
    train_rows = {r.numpy().tobytes() for r in dg.train}
    test_rows = [r.numpy().tobytes() for r in dg.test]
    assert all(r.numpy().tobytes() in train_rows for r in dg.sample(32, g(3)))
    ref = dg.reference(10_000, g(3))
    assert ref.shape == dg.test.shape  # at most len(test) rows
    assert sorted(r.numpy().tobytes() for r in ref) == sorted(test_rows)


def test_n_train_subset_is_seeded():
    a = load_dataset("digits", n_train=100, seed=1)
    b = load_dataset("digits", n_train=100, seed=1)
    c = load_dataset("digits", n_train=100, seed=2)
    full = load_dataset("digits")
    assert a.train.shape == (100, 1, 8, 8) and a.train_labels.shape == (100,)
    torch.testing.assert_close(a.train, b.train, rtol=0, atol=0)
    assert not torch.equal(a.train, c.train)
    torch.testing.assert_close(a.test, full.test, rtol=0, atol=0)  # the test split is untouched
    labels_of = {}
    for x, y in zip(full.train, full.train_labels):
        labels_of.setdefault(x.numpy().tobytes(), set()).add(int(y))
    assert all(int(y) in labels_of[x.numpy().tobytes()] for x, y in zip(a.train, a.train_labels))
    with pytest.raises(UserError):
        load_dataset("digits", n_train=0)


# ----------------------------------------------------------------------------- digits


def test_digits_shape_range_and_stratified_split():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    ref = load_digits()
    assert ds.kind == "image" and ds.shape == (1, 8, 8) and ds.num_classes == 10
    assert ds.class_names == [str(i) for i in range(10)]
    assert ds.train.shape == (1437, 1, 8, 8) and ds.test.shape == (360, 1, 8, 8)
    assert ds.train.dtype == torch.float32
    assert float(ds.train.min()) == -1.0 and float(ds.train.max()) == 1.0
    # Pixels are v / 8 - 1 for integer v in 0..16.
    v = (ds.train + 1) * 8
    torch.testing.assert_close(v, v.round(), rtol=0, atol=1e-5)
    counts = np.bincount(ref.target, minlength=10)
    test_counts = np.bincount(ds.test_labels.numpy(), minlength=10)
    np.testing.assert_array_equal(np.bincount(ds.train_labels.numpy(), minlength=10) + test_counts, counts)
    # Stratified: each class contributes 20% of its images to the test split, up to rounding.
    np.testing.assert_allclose(test_counts, 0.2 * counts, atol=1.0)


def test_digits_resize_matches_torch_interpolate():
    native, big = load_dataset("digits"), load_dataset("digits", image_size=16)
    assert big.shape == (1, 16, 16)
    want = F.interpolate(native.train[:50], size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(big.train[:50], want.clamp(-1, 1))
    # Downsampling is antialiased (differs from plain bilinear there).
    small = load_dataset("digits", image_size=4)
    want = F.interpolate(native.test, size=(4, 4), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(small.test, want.clamp(-1, 1))
    plain = F.interpolate(native.test, size=(4, 4), mode="bilinear", antialias=False, align_corners=False)
    assert (small.test - plain).abs().max() > 0.1
    with pytest.raises(UserError, match="multiple of 4.*use 12"):
        load_dataset("digits", image_size=13)


def test_resize_keeps_constant_images_constant():
    x = torch.full((3, 2, 28, 28), 0.25)
    for size in (8, 32):
        torch.testing.assert_close(img_mod.resize_images(x, size), torch.full((3, 2, size, size), 0.25))
    assert img_mod.resize_images(x, 28) is x


# ----------------------------------------------------------------------------- IDX files


def _raw_idx(path: Path, header: int) -> np.ndarray:
    """Independent reading: skip the fixed header bytes of the decompressed file."""
    return np.frombuffer(gzip.open(path).read()[header:], dtype=np.uint8)


@needs_mnist
def test_mnist_idx_parse_and_label_counts():
    d = DATA / "mnist"
    tr_x = img_mod.read_idx(d / img_mod.TRAIN_IMAGES, magic=0x803)
    tr_y = img_mod.read_idx(d / img_mod.TRAIN_LABELS, magic=0x801)
    te_x = img_mod.read_idx(d / img_mod.TEST_IMAGES, magic=0x803)
    te_y = img_mod.read_idx(d / img_mod.TEST_LABELS, magic=0x801)
    assert tr_x.shape == (60000, 28, 28) and tr_y.shape == (60000,)
    assert te_x.shape == (10000, 28, 28) and te_y.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(tr_y, minlength=10), MNIST_TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(te_y, minlength=10), MNIST_TEST_COUNTS)
    np.testing.assert_array_equal(te_y, _raw_idx(d / img_mod.TEST_LABELS, 8))


@needs_fashion
def test_fashion_mnist_has_6000_per_class():
    d = DATA / "fashion-mnist"
    tr_y = img_mod.read_idx(d / img_mod.TRAIN_LABELS, magic=0x801)
    te_y = img_mod.read_idx(d / img_mod.TEST_LABELS, magic=0x801)
    np.testing.assert_array_equal(np.bincount(tr_y, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(te_y, minlength=10), [1000] * 10)


@needs_mnist
def test_load_mnist_scaling_labels_and_layouts(monkeypatch):
    ds = load_dataset("mnist", data_dir=str(DATA))
    assert ds.kind == "image" and ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.train.shape == (60000, 1, 28, 28) and ds.test.shape == (10000, 1, 28, 28)
    assert ds.train.dtype == torch.float32 and ds.train_labels.dtype == torch.int64
    assert float(ds.train.min()) == -1.0 and float(ds.train.max()) == 1.0
    raw = _raw_idx(DATA / "mnist" / img_mod.TEST_IMAGES, 16).reshape(10000, 1, 28, 28)
    torch.testing.assert_close(ds.test[:100], torch.from_numpy(raw[:100].astype(np.float32)) / 127.5 - 1)
    np.testing.assert_array_equal(np.bincount(ds.train_labels.numpy(), minlength=10), MNIST_TRAIN_COUNTS)
    # ROOT/<file> directly, and ROOT/mnist/<file> found through LOSSLAB_DATA.
    assert img_mod.find_idx_dir("mnist", data_dir=DATA / "mnist", download=False) == DATA / "mnist"
    monkeypatch.setenv("LOSSLAB_DATA", str(DATA))
    assert img_mod.find_idx_dir("mnist", download=False) == DATA / "mnist"


@needs_fashion
def test_load_fashion_subset_and_resize():
    ds = load_dataset("fashion-mnist", data_dir=str(DATA), n_train=300, image_size=32, seed=4)
    assert ds.train.shape == (300, 1, 32, 32) and ds.test.shape == (10000, 1, 32, 32)
    assert ds.shape == (1, 32, 32) and ds.train_labels.shape == (300,)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot" and len(ds.class_names) == 10
    assert float(ds.train.min()) >= -1.0 and float(ds.train.max()) <= 1.0
    raw = _raw_idx(DATA / "fashion-mnist" / img_mod.TEST_IMAGES, 16).reshape(10000, 1, 28, 28)[:20]
    native = torch.from_numpy(raw.astype(np.float32)) / 127.5 - 1
    want = F.interpolate(native, size=(32, 32), mode="bilinear", antialias=True)
    torch.testing.assert_close(ds.test[:20], want.clamp(-1, 1))


@needs_mnist
def test_md5_accepts_real_file_and_rejects_modified_copy(tmp_path):
    src = DATA / "mnist" / img_mod.TRAIN_LABELS
    assert img_mod.verify_md5(src, "d53e105ee54ea40749a09fcbcd1e9432")
    assert img_mod.md5sum(src) == hashlib.md5(src.read_bytes()).hexdigest()
    data = bytearray(src.read_bytes())
    data[1000] ^= 0xFF
    bad = tmp_path / img_mod.TRAIN_LABELS
    bad.write_bytes(bytes(data))
    assert not img_mod.verify_md5(bad, img_mod.IDX_FILES["mnist"][img_mod.TRAIN_LABELS])


@needs_mnist
def test_corrupt_idx_files_raise_user_error_naming_the_file(tmp_path):
    real = gzip.decompress((DATA / "mnist" / img_mod.TEST_LABELS).read_bytes())
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(gzip.compress(real[:5000]))
    with pytest.raises(UserError, match="truncated.gz.*data bytes"):
        img_mod.read_idx(truncated, magic=0x801)
    too_long = tmp_path / "too_long.gz"
    too_long.write_bytes(gzip.compress(real + b"\x00"))
    with pytest.raises(UserError, match="too_long.gz.*data bytes"):
        img_mod.read_idx(too_long, magic=0x801)
    cut_stream = tmp_path / "cut_stream.gz"
    cut_stream.write_bytes((DATA / "mnist" / img_mod.TEST_LABELS).read_bytes()[:2000])
    with pytest.raises(UserError, match="cut_stream.gz"):
        img_mod.read_idx(cut_stream, magic=0x801)
    with pytest.raises(UserError, match="magic number 0x801, expected 0x803"):
        img_mod.read_idx(DATA / "mnist" / img_mod.TEST_LABELS, magic=0x803)
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(real)
    with pytest.raises(UserError, match="plain.gz"):
        img_mod.read_idx(not_gzip, magic=0x801)
    # Through load_dataset: a folder with one truncated file.
    root = tmp_path / "root"
    root.mkdir()
    for f in img_mod.IDX_FILE_NAMES:
        os.symlink(DATA / "mnist" / f, root / f)
    (root / img_mod.TEST_LABELS).unlink()
    shutil.copy(truncated, root / img_mod.TEST_LABELS)
    with pytest.raises(UserError, match=img_mod.TEST_LABELS):
        load_dataset("mnist", data_dir=str(root), download=False)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("LOSSLAB_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert img_mod.cache_dir() == tmp_path / "home" / ".cache" / "losslab" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert img_mod.cache_dir() == tmp_path / "xdg" / "losslab" / "data"
    monkeypatch.setenv("LOSSLAB_CACHE", str(tmp_path / "mine"))
    assert img_mod.cache_dir() == tmp_path / "mine" / "data"


def test_offline_without_files_gives_how_to(isolated_env, monkeypatch):
    empty = isolated_env / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as e:
        load_dataset("mnist", data_dir=str(empty), download=False)
    msg = str(e.value)
    assert "--data-dir" in msg and "LOSSLAB_DATA" in msg and "\n" not in msg
    assert all(f in msg for f in img_mod.IDX_FILE_NAMES)

    calls = []

    def offline(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(img_mod.urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match="--data-dir DIR.*LOSSLAB_DATA=DIR.*go online"):
        load_dataset("mnist", data_dir=str(empty))
    assert calls[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
    assert calls[1] == "http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz"
    assert list((isolated_env / "cache" / "data" / "mnist").iterdir()) == []  # no partial files left
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("mnist", data_dir=str(isolated_env / "nope"), download=False)


class _FakeResponse:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.data[self.pos : self.pos + n] if n >= 0 else self.data[self.pos :]
        self.pos += len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@needs_mnist
def test_download_checks_md5(isolated_env, monkeypatch):
    served = []

    def good(url, timeout=None):
        served.append(url)
        return _FakeResponse((DATA / "mnist" / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(img_mod.urllib.request, "urlopen", good)
    dest = img_mod.find_idx_dir("mnist", download=True)
    assert dest == isolated_env / "cache" / "data" / "mnist"
    assert sorted(p.name for p in dest.iterdir()) == sorted(img_mod.IDX_FILE_NAMES)
    assert all(u.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/") for u in served)
    assert img_mod.find_idx_dir("mnist", download=False) == dest  # found in the cache now

    shutil.rmtree(dest)

    def corrupt(url, timeout=None):
        data = bytearray((DATA / "mnist" / url.rsplit("/", 1)[1]).read_bytes())
        data[100] ^= 0xFF
        return _FakeResponse(bytes(data))

    monkeypatch.setattr(img_mod.urllib.request, "urlopen", corrupt)
    with pytest.raises(UserError, match="MD5"):
        load_dataset("mnist")
    assert list(dest.iterdir()) == []  # the bad download was deleted


# ----------------------------------------------------------------------------- user files


def test_csv_with_header_split_and_raw_values(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * 100 + 7
    p = tmp_path / "my.csv"
    p.write_text("a,b,c\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in x) + "\n")
    ds = load_dataset(str(p))
    assert ds.name == "my.csv" and ds.kind == "vector" and ds.shape == (3,)
    assert len(ds.train) == 45 and len(ds.test) == 5
    assert ds.modes is None and ds.sampler is None and ds.train_labels is None
    both = torch.cat([ds.train, ds.test]).double().numpy()
    np.testing.assert_allclose(both[np.lexsort(both.T[::-1])], x[np.lexsort(x.T[::-1])], rtol=1e-6)
    # Same split every time (fixed seed), whatever the run seed.
    torch.testing.assert_close(load_dataset(str(p), seed=3).test, ds.test, rtol=0, atol=0)


def test_csv_single_column_and_errors(tmp_path):
    p = tmp_path / "one.csv"
    p.write_text("\n".join(str(i) for i in range(20)) + "\n")
    ds = load_dataset(str(p))
    assert ds.shape == (1,) and len(ds.train) + len(ds.test) == 20
    assert sorted(torch.cat([ds.train, ds.test])[:, 0].tolist()) == list(range(20))

    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,oops\n")
    with pytest.raises(UserError, match=r"row 3, column 2 \(y\): 'oops'"):
        load_dataset(str(bad))
    nan = tmp_path / "nan.csv"
    nan.write_text("1,2\nnan,4\n")
    with pytest.raises(UserError, match="row 2, column 1"):
        load_dataset(str(nan))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3\n")
    with pytest.raises(UserError, match="row 2 has 1 columns"):
        load_dataset(str(ragged))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UserError, match="empty"):
        load_dataset(str(empty))
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(UserError, match="empty"):
        load_dataset(str(header_only))
    txt = tmp_path / "data.txt"
    txt.write_text("1,2\n")
    with pytest.raises(UserError, match="unsupported file type"):
        load_dataset(str(txt))


def test_npy_vectors_and_images(tmp_path):
    v = np.arange(60, dtype=np.float64).reshape(20, 3) - 30
    np.save(tmp_path / "v.npy", v)
    ds = load_dataset(str(tmp_path / "v.npy"))
    assert ds.kind == "vector" and ds.shape == (3,) and len(ds.train) == 18 and len(ds.test) == 2
    both = torch.cat([ds.train, ds.test]).double()
    torch.testing.assert_close(both[both[:, 0].argsort()], torch.from_numpy(v))

    # (N, H, W) uint8: 0 -> -1, 255 -> 1.
    g = np.zeros((10, 8, 8), dtype=np.uint8)
    g[:, :4] = 255
    np.save(tmp_path / "g.npy", g)
    ds = load_dataset(str(tmp_path / "g.npy"))
    assert ds.kind == "image" and ds.shape == (1, 8, 8)
    torch.testing.assert_close(ds.train[0, 0, :4], torch.ones(4, 8))
    torch.testing.assert_close(ds.train[0, 0, 4:], -torch.ones(4, 8))

    # (N, H, W, C) float in [0, 1]: channel c has value c / 2.
    hwc = np.broadcast_to(np.array([0.0, 0.5, 1.0], dtype=np.float32), (10, 12, 12, 3)).copy()
    np.save(tmp_path / "hwc.npy", hwc)
    ds = load_dataset(str(tmp_path / "hwc.npy"), image_size=8)
    assert ds.shape == (3, 8, 8)
    torch.testing.assert_close(ds.train[:, :, 3, 3], torch.tensor([-1.0, 0.0, 1.0]).expand(len(ds.train), 3))

    # (N, C, H, W) uint8 keeps the channel axis.
    chw = np.zeros((10, 3, 8, 8), dtype=np.uint8)
    chw[:, 2] = 255
    np.save(tmp_path / "chw.npy", chw)
    ds = load_dataset(str(tmp_path / "chw.npy"))
    assert ds.shape == (3, 8, 8)
    torch.testing.assert_close(ds.train[:, :, 0, 0], torch.tensor([-1.0, -1.0, 1.0]).expand(len(ds.train), 3))


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros(10), "shape"),
        (np.zeros((4, 2, 8, 8, 1)), "shape"),
        (np.zeros((4, 5, 8, 8)), "shape"),
        (np.full((4, 8, 8), 2.0), r"\[0, 1\]"),
        (np.zeros((4, 8, 8), dtype=np.int32), "uint8"),
        (np.zeros((4, 10, 10), dtype=np.uint8), "multiple of 4"),
        (np.zeros((4, 8, 12), dtype=np.uint8), "not square"),
        (np.array([[1.0, np.nan]] * 3), "NaN"),
        (np.zeros((0, 3)), "empty"),
    ],
)
def test_npy_errors(tmp_path, array, match):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(UserError, match=match):
        load_dataset(str(tmp_path / "x.npy"))


def test_npy_bad_image_size_suggests_multiple(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(UserError, match="image size 29 is not a multiple of 4.*use 28"):
        load_dataset(str(tmp_path / "x.npy"), image_size=29)


def _png(path: Path, array: np.ndarray, mode: str, fmt: str = "PNG") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode=mode).save(path, format=fmt)


def test_image_folder_with_class_subfolders(tmp_path):
    root = tmp_path / "pets"
    for c, value in (("cat", 51), ("dog", 204)):
        for i in range(5):
            _png(root / c / f"{i}.png", np.full((10, 14), value), "L")
    ds = load_dataset(str(root))
    assert ds.name == "pets" and ds.kind == "image" and ds.shape == (1, 28, 28)
    assert ds.class_names == ["cat", "dog"] and ds.num_classes == 2
    assert len(ds.train) == 9 and len(ds.test) == 1
    x = torch.cat([ds.train, ds.test])
    y = torch.cat([ds.train_labels, ds.test_labels])
    # Constant images stay constant through crop + resize; cat = 51 / 127.5 - 1, dog = 204 / 127.5 - 1.
    want = torch.tensor([51 / 127.5 - 1, 204 / 127.5 - 1])[y]
    torch.testing.assert_close(x.mean(dim=(1, 2, 3)), want)
    torch.testing.assert_close(x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)), torch.zeros(10), rtol=0, atol=1e-5)
    assert load_dataset(str(root), image_size=8).shape == (1, 8, 8)


def test_image_folder_rgb_vs_grayscale(tmp_path):
    flat = tmp_path / "flat"
    gray_as_rgb = np.stack([np.arange(64).reshape(8, 8) * 3] * 3, axis=-1)
    _png(flat / "a.png", gray_as_rgb, "RGB")  # RGB file with equal channels counts as grayscale
    _png(flat / "b.jpg", np.full((8, 8), 100), "L", fmt="JPEG")
    ds = load_dataset(str(flat), image_size=8)
    assert ds.shape == (1, 8, 8) and ds.train_labels is None and ds.class_names is None

    colour = np.zeros((8, 8, 3))
    colour[..., 0] = 255
    _png(flat / "c.png", colour, "RGB")
    ds = load_dataset(str(flat), image_size=8)
    assert ds.shape == (3, 8, 8)
    x = torch.cat([ds.train, ds.test])
    red = x[(x[:, 0] > 0.99).flatten(1).all(1)]
    assert len(red) == 1
    torch.testing.assert_close(red[0, 1:], -torch.ones(2, 8, 8))


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="no PNG/JPEG images"):
        load_dataset(str(empty))
    broken = tmp_path / "broken"
    _png(broken / "ok.png", np.zeros((8, 8)), "L")
    (broken / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(UserError, match="bad.png"):
        load_dataset(str(broken))
    with pytest.raises(UserError, match="image size 30 is not a multiple of 4"):
        load_dataset(str(tmp_path / "broken"), image_size=30)


def test_builtin_loaders_return_dataset_records():
    for name in ("gaussian1d", "mixture1d", "ring8", "grid25", "digits"):
        ds = load_dataset(name)
        assert isinstance(ds, Dataset) and ds.name == name
        assert tuple(ds.train.shape[1:]) == ds.shape == tuple(ds.test.shape[1:])
        assert ds.train.dtype == torch.float32 and torch.isfinite(ds.train).all()
