"""An unlabelled folder of images through compare, eval and the report (issue 12's done-when).

A folder of flat MNIST PNGs (no class subfolders) has no labels: its FID
feature network is a SimCLR encoder trained on the images themselves, whose
quality figures (nearest-view agreement, alignment, uniformity) and the
quality ladder (k-means clusters as classes) must reach results.json and the
report. The SimCLR training is cut to a few steps here (the cost of the test,
not of the feature net's quality) by patching ``get_feature_net``'s default.
"""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
import torch

from losslab.metrics import features
from losslab.metrics.ladder import LADDER_RUNGS

N_PNG = 200


def _cli(argv, capsys) -> tuple[int, str, str]:
    """Run `losslab ARGV` in this process: (exit code, stdout, stderr)."""
    from losslab.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def mnist_png_folder(mnist_dir, dest, n: int):
    """``n`` flat PNGs (28x28 grey) of the first MNIST training images, no class subfolders."""
    from PIL import Image

    with gzip.open(mnist_dir / "mnist" / "train-images-idx3-ubyte.gz", "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8)
    images = raw[16:].reshape(-1, 28, 28)[:n]  # IDX: 16-byte header (magic, count, rows, cols)
    dest.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(dest / f"{i:05d}.png")
    return dest


@pytest.fixture
def fast_ssl(monkeypatch):
    """Every get_feature_net call in this process trains its SimCLR half for 20 steps instead of 200."""
    monkeypatch.setitem(features.get_feature_net.__kwdefaults__, "ssl_steps", 20)


def test_unlabelled_folder_through_compare_eval_and_report(mnist_dir, tmp_path, capsys, fast_ssl, single_thread):
    folder = mnist_png_folder(mnist_dir, tmp_path / "digits", N_PNG)
    out = tmp_path / "cmp"
    code, stdout, err = _cli(["compare", "--data", str(folder), "--losses", "ns,lsgan", "--seeds", "1",
                              "--steps", "3", "--workers", "1", "--quiet", "--out", str(out),
                              "--set", "train.curve_points=0"], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())

    # 1. The feature network is the SimCLR encoder, named, with its quality figures in their ranges.
    ds = results["dataset"]
    assert ds["feature_net"].startswith("simclr-") and ds["feature_net"].endswith(" on digits")
    q = ds["feature_net_quality"]
    # the figures of the cached network, measured on its documented images: the test rows topped up with
    # training rows to 1,000 (here all 200 images), two views seeded 0
    from losslab.data import load_dataset
    data = load_dataset(str(folder))
    net = features.get_feature_net(data)
    assert net.name == ds["feature_net"] and q == net.quality
    held = torch.cat([data.test[:1000], data.train[: max(0, 1000 - len(data.test))]])
    assert q["n"] == len(held) == min(1000, N_PNG)
    again = features.ssl_quality(net, held, seed=0)
    for key in ("view_knn_agreement", "alignment", "uniformity"):
        np.testing.assert_allclose(q[key], again[key], rtol=1e-6, atol=1e-9, err_msg=key)
    assert all(r["status"] == "ok" and r["metrics"]["feature_net"] == ds["feature_net"] for r in results["runs"])
    assert not any("class_kl" in r["metrics"] for r in results["runs"])  # no labels: no class histogram

    # 2. The ladder: in the same space, classes from k-means, every loss placed on it.
    ladder = results["ladder"]
    assert ladder["feature_net"]["name"] == ds["feature_net"]
    assert ladder["n"] == ladder["rungs"][0]["n"] <= N_PNG // 2  # images per set: at most half the test split
    assert [r["rung"] for r in ladder["rungs"]] == list(LADDER_RUNGS)
    assert {r["classes"] for r in ladder["rungs"]} == {"10 k-means clusters"}
    fid = {r["rung"]: r["fid"] for r in ladder["rungs"]}
    assert all(math.isfinite(v) and v >= 0 for v in fid.values())
    assert fid["uniform noise"] > fid["test split"]  # noise lies farther from digits than other digits
    for row in results["ranking"]:
        run_fid = next(r["metrics"]["fid"] for r in results["runs"] if r["loss"] == row["loss"])
        assert row["fid_mean"] == pytest.approx(run_fid, rel=1e-12)
        below = sum(v < run_fid for v in fid.values())
        assert row["ladder_place"].startswith(("below", "between", "at", "beyond"))
        if below == len(fid):
            assert row["ladder_place"].startswith(("beyond", "at"))

    # 3. The report names the network and its quality, and shows the ladder.
    md = (out / "report.md").read_text()
    assert ds["feature_net"] in md and "nearest-view agreement" in md and "uniformity" in md
    assert "## Quality ladder" in md and "10 k-means clusters" in md
    assert any("quality ladder" in s for s in results["answer"])

    # 4. eval of one run: the same network (from the cache), the same FID as the comparison measured.
    run_dir = out / results["runs"][0]["run_dir"]
    code, stdout, err = _cli(["eval", str(run_dir), "--out", str(tmp_path / "eval.json")], capsys)
    assert code == 0, err
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["feature_net"] == ds["feature_net"]
    assert ev["metrics"]["fid"] == pytest.approx(results["runs"][0]["metrics"]["fid"], rel=1e-6)

    # 5. A resumed compare keeps ladder.json (same feature net, same n); the rebuilt report still shows it.
    before = (out / "ladder.json").stat().st_mtime_ns
    code, stdout, err = _cli(["compare", "--data", str(folder), "--losses", "ns,lsgan", "--seeds", "1",
                              "--steps", "3", "--workers", "1", "--quiet", "--out", str(out),
                              "--set", "train.curve_points=0"], capsys)
    assert code == 0, err
    code, stdout, err = _cli(["report", str(out)], capsys)
    assert code == 0, err
    assert "## Quality ladder" in (out / "report.md").read_text()
    assert (out / "ladder.json").stat().st_mtime_ns == before
