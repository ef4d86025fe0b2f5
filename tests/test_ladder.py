"""The quality ladder: rungs built from the data, placement of a FID, and the calibrated order on real data."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from losslab.data import load_dataset
from losslab.errors import UserError
from losslab.metrics.features import get_feature_net
from losslab.metrics.fid import class_stats_from_predictions
from losslab.metrics.images import confident_class_stats
from losslab.metrics.ladder import LADDER_RUNGS, NOISE_SIGMA, ladder_images, place_on_ladder, quality_ladder

LADDER = [{"rung": r, "fid": f} for r, f in zip(LADDER_RUNGS, [0.1, 0.2, 1.0, 0.5, 3.0, 6.0, 9.0])]


@pytest.mark.parametrize(
    ("fid", "words"),
    [
        (0.05, "below 'test split'"),
        (0.1, "at 'test split'"),
        (0.7, "between 'blurred real' and 'noisy real'"),
        (4.0, "between 'two classes' and 'one class'"),
        (6.03, "at 'one class'"),
        (20.0, "beyond 'uniform noise'"),
    ],
)
def test_place_on_ladder(fid, words):
    assert place_on_ladder(fid, LADDER) == words


def test_place_on_ladder_rejects_nonsense():
    with pytest.raises(ValueError):
        place_on_ladder(1.0, [])
    with pytest.raises(ValueError):
        place_on_ladder(float("nan"), LADDER)


def _toy_labelled(n_train=600, n_test=300, classes=3, seed=0):
    """Images whose every pixel is label / 10 (so a rung's classes can be read off its pixels)."""
    g = torch.Generator().manual_seed(seed)
    y_tr = torch.randint(classes, (n_train,), generator=g)
    y_tr[:3] = torch.tensor([0, 0, 1])
    y_te = torch.randint(classes, (n_test,), generator=g)
    # class 0 is the largest
    y_tr[torch.rand(n_train, generator=g) < 0.3] = 0
    img = lambda y: (y.float() / 10)[:, None, None, None].expand(-1, 1, 8, 8).clone()  # noqa: E731
    return SimpleNamespace(name="toy", shape=(1, 8, 8), train=img(y_tr), test=img(y_te), train_labels=y_tr,
                           test_labels=y_te, num_classes=classes)


def test_ladder_images_are_the_rungs_of_the_table():
    ds = _toy_labelled()
    ref, rungs, source = ladder_images(ds, n=100, seed=0)
    assert source == "labels" and tuple(rungs) == LADDER_RUNGS
    assert ref.shape == (100, 1, 8, 8) and all(x.shape == (100, 1, 8, 8) for v in rungs.values() for x in v)
    assert [len(rungs[r]) for r in LADDER_RUNGS] == [1, 1, 1, 1, 3, 3, 1]
    counts = np.bincount(ds.train_labels.numpy())
    label_of = lambda x: torch.round(x[:, 0, 0, 0] * 10).long()  # noqa: E731
    ones = [label_of(x).unique().tolist() for x in rungs["one class"]]
    assert all(len(c) == 1 for c in ones) and sorted(c[0] for c in ones) == [0, 1, 2]
    assert ones[0] == [int(np.argmax(counts))]  # largest class first
    for i, x in enumerate(rungs["two classes"]):  # pair (i, i + 1 mod 3), half of the rows each
        lab = label_of(x)
        assert lab[:50].unique().tolist() == ones[i] and lab[50:].unique().tolist() == ones[(i + 1) % 3]
    (rows,), (noisy,) = rungs["train rows"], rungs["noisy real"]
    inside = noisy.abs() < 1  # unclipped pixels
    torch.testing.assert_close((noisy - rows)[inside].std(), torch.tensor(NOISE_SIGMA), atol=0.01, rtol=0)
    (u,) = rungs["uniform noise"]
    assert -1 <= float(u.min()) and float(u.max()) <= 1
    torch.testing.assert_close(u.mean(), torch.tensor(0.0), atol=0.02, rtol=0)
    torch.testing.assert_close(rungs["blurred real"][0], rows, atol=1e-5, rtol=0)  # constant images stay
    assert ref.shape[0] + rungs["test split"][0].shape[0] <= ds.test.shape[0]


def test_ladder_on_unlabelled_data_uses_clusters_and_needs_a_net():
    ds = _toy_labelled()
    g = torch.Generator().manual_seed(1)
    ds.train_labels = None
    ds.train = (ds.train[:, :, :4, :4] + 0.3 * torch.randn(600, 1, 4, 4, generator=g)).clamp(-1, 1)
    ds.test = (ds.test[:, :, :4, :4] + 0.3 * torch.randn(300, 1, 4, 4, generator=g)).clamp(-1, 1)
    ds.shape = (1, 4, 4)

    class Pixels(nn.Module):
        num_features = 16

        def forward(self, x):
            return x.flatten(1)

    with pytest.raises(UserError, match="feature_net"):
        ladder_images(ds, n=50)
    ladder = quality_ladder(ds, Pixels(), n=100, kid_subsets=5)
    assert [r["rung"] for r in ladder] == list(LADDER_RUNGS)
    assert ladder[0]["classes"].endswith("k-means clusters")
    assert ladder[5]["sets"] >= 2 and ladder[5]["fid_range"][0] <= ladder[5]["fid"] <= ladder[5]["fid_range"][1]
    assert all(np.isfinite(r["fid"]) and np.isfinite(r["kid"]) for r in ladder)
    fid = {r["rung"]: r["fid"] for r in ladder}
    assert fid["test split"] < fid["uniform noise"] and fid["train rows"] < fid["one class"]


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_nets(tmp_path_factory):
    """Feature nets trained once per module, in the session's isolated cache (tests/conftest.py)."""
    cache = tmp_path_factory.getbasetemp() / "losslab-cache"
    nets: dict = {}

    def get(ds):
        if ds.name not in nets:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                nets[ds.name] = get_feature_net(ds, cache_dir=cache)
            finally:
                torch.set_num_threads(threads)
        return nets[ds.name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_ladder_is_ordered_as_a_person_orders_it(name, mnist_dir, real_nets):
    if not (mnist_dir / name / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"{name} files not found")
    ds = load_dataset(name, data_dir=str(mnist_dir))
    ladder = {r["rung"]: r for r in quality_ladder(ds, real_nets(ds), n=2000, seed=0)}
    for key in ("fid", "kid"):
        v = {r: ladder[r][key] for r in LADDER_RUNGS}
        mild = min(v["noisy real"], v["blurred real"])
        # Real rows of either split are the floor: their distance is sampling noise, far below any degradation
        # (MNIST's train/test shift is not measurable at n = 2,000, so their mutual order is not asserted).
        assert max(v["test split"], v["train rows"]) < 0.5 * mild, (key, v)
        # mild noise or blur < two classes < one class < uniform noise, strictly
        assert max(v["noisy real"], v["blurred real"]) < v["two classes"] < v["one class"] < v["uniform noise"], \
            (key, v)
    assert place_on_ladder(ladder["one class"]["fid"], list(ladder.values())) == "at 'one class'"


@pytest.mark.slow
def test_real_digits_of_two_classes_cover_two_classes(mnist_dir, real_nets):
    ds = load_dataset("mnist", data_dir=str(mnist_dir))
    net = real_nets(ds)
    _, rungs, _ = ladder_images(ds, n=2000, seed=0)
    with torch.no_grad():
        logits = net.logits(rungs["two classes"][0])
    out = confident_class_stats(logits, 10, ds.test_labels)
    assert out["classes_covered"] == 2
    assert out["cover_threshold"] == pytest.approx(40.0)
    # the old rule (a class is covered once a single sample is argmax-classified to it) counts the stray errors
    old = class_stats_from_predictions(logits.argmax(1), 10, ds.test_labels)["classes_covered"]
    assert old > 2


# ------------------------------------------------------------------ the ladder in a comparison


def _ladder_file(tmp_path, net="simclr-x on d"):
    import json

    rungs = [{"rung": r["rung"], "fid": r["fid"], "kid": r["fid"] / 100, "fid_range": [r["fid"], r["fid"]],
              "sets": 1, "n": 50, "classes": "labels", "feature_net": net} for r in LADDER]
    content = {"feature_net": {"name": net, "quality": {"view_knn_agreement": 0.5, "alignment": 0.4,
                                                         "uniformity": -2.0, "n": 100}, "test_accuracy": None},
               "n_eval": 2000, "n": 50, "seed": 12345, "seconds": 1.5, "rungs": rungs}
    (tmp_path / "ladder.json").write_text(json.dumps(content))
    return content


def _results(net="simclr-x on d"):
    def run(loss, seed, fid, feature_net=net, status="ok"):
        return {"loss": loss, "seed": seed, "status": status, "metrics": {"fid": fid, "feature_net": feature_net}}

    runs = [run("a", 0, 0.6), run("a", 1, 0.8), run("b", 0, 4.0), run("b", 1, 100.0, status="diverged"),
            run("c", 0, 0.15, feature_net="another net")]
    ranking = [{"loss": "a", "mean": 0.7}, {"loss": "b", "mean": 4.0}, {"loss": "c", "mean": 0.15}]
    return {"dataset": {"name": "d", "feature_net": net}, "runs": runs, "ranking": ranking}


def test_verdict_places_each_loss_mean_fid_on_the_ladder(tmp_path):
    from losslab.verdict import add_ladder

    content = _ladder_file(tmp_path)
    res = add_ladder(tmp_path, _results())
    assert res["ladder"] == content
    assert res["dataset"]["feature_net_quality"] == content["feature_net"]["quality"]
    a, b, c = res["ranking"]
    assert a["fid_mean"] == pytest.approx(0.7, rel=1e-12)  # mean of the ok seeds 0.6, 0.8
    assert a["ladder_place"] == "between 'blurred real' and 'noisy real'"  # 0.5 < 0.7 < 1.0
    assert b["fid_mean"] == 4.0  # the diverged seed's 100 is not part of the mean
    assert b["ladder_place"] == "between 'two classes' and 'one class'"
    assert "ladder_place" not in c and "fid_mean" not in c  # measured in another feature space


def test_verdict_without_ladder_file_adds_nothing_and_a_corrupt_one_is_an_error(tmp_path):
    from losslab.verdict import add_ladder

    res = add_ladder(tmp_path, _results())
    assert "ladder" not in res and "ladder_place" not in res["ranking"][0]
    (tmp_path / "ladder.json").write_text('{"rungs": []}')
    with pytest.raises(UserError, match="not a quality ladder"):
        add_ladder(tmp_path, _results())


def test_answer_and_report_say_where_the_best_loss_sits(tmp_path):
    from losslab.report.answer import ladder_sentence
    from losslab.report.render import ladder_blocks, to_markdown
    from losslab.verdict import add_ladder

    _ladder_file(tmp_path)
    res = add_ladder(tmp_path, _results())
    s = ladder_sentence(res, "a")
    assert s == ("On the quality ladder (FID of known image sets in the same feature space, 50 images each), a's "
                 "mean FID 0.7 sits between 'blurred real' (0.5) and 'noisy real' (1)."), s
    assert ladder_sentence(res, "c") is None and ladder_sentence({"ranking": res["ranking"]}, "a") is None
    md = to_markdown(ladder_blocks(res))
    assert "## Quality ladder" in md and "uniform noise" in md and "1.5 s" in md
    assert "between 'two classes' and 'one class'" in md
    assert ladder_blocks({"ranking": res["ranking"]}) == []


def test_ranking_figure_draws_the_rungs(tmp_path):
    from PIL import Image

    from losslab.report.plots import plot_ranking

    ranking = [{"loss": "a", "mean": 0.7, "ci95": None}]
    plain = plot_ranking(ranking, {"a": [0.7]}, "fid", False, tmp_path / "plain.png")
    laddered = plot_ranking(ranking, {"a": [0.7]}, "fid", False, tmp_path / "ladder.png", ladder=LADDER)
    other = plot_ranking(ranking, {"a": [0.7]}, "kid", False, tmp_path / "kid.png", ladder=LADDER)
    w_plain, w_ladder = Image.open(plain).size[0], Image.open(laddered).size[0]
    assert w_ladder > w_plain  # the rung labels widen the figure
    assert Image.open(other).size == Image.open(plain).size  # rungs are FIDs: not drawn on another metric
