"""The noise floor (losslab.noise_floor): a perfect generator's scores -- held-out real samples against the
runs' reference -- measured before the jobs, written into results.json, the report's tables and curves."""

from __future__ import annotations

import json

import numpy as np
import ot
import pytest
import torch

from losslab import compare as cmp
from losslab import config as C
from losslab import rundir
from losslab.data import load_dataset
from losslab.data.dataset import Dataset
from losslab.noise_floor import HELDOUT_SEED, add_noise_floor, heldout_real, measure, noise_floor


def test_heldout_rows_are_never_the_reference_rows():
    test = 1000.0 + torch.arange(50.0)[:, None]
    ds = Dataset(name="rows", kind="vector", shape=(1,), train=torch.arange(40.0)[:, None], test=test)
    ref = set(ds.reference(20, torch.Generator().manual_seed(rundir.REFERENCE_SEED)).ravel().tolist())
    for k in range(3):  # the test split holds 2 n = 40: other test rows
        x = heldout_real(ds, 20, k).ravel().tolist()
        assert len(x) == len(set(x)) == 20 and not set(x) & ref and set(x) <= set(test.ravel().tolist())
    x = heldout_real(ds, 30, 0).ravel().tolist()  # fewer than 2 n = 60 test rows: training rows
    assert len(set(x)) == 30 and set(x) <= set(range(40))
    a, b = heldout_real(ds, 20, 0), heldout_real(ds, 20, 1)
    assert not torch.equal(a, b)  # independent draws


def test_the_floor_of_w1_is_the_exact_w1_of_held_out_draws():
    ds = load_dataset("ring8")
    n, draws = 200, 3
    ev = cmp.make_evaluator(C.resolve("vector", sets=[f"train.n_eval={n}"]), ds)
    floor = measure(ds, ev, n=n, n_draws=draws)
    ref = ds.sampler(n, torch.Generator().manual_seed(rundir.REFERENCE_SEED)).double().numpy()
    w = []
    for k in range(draws):  # exact W1 with POT, uniform weights, Euclidean ground cost
        x = ds.sampler(n, torch.Generator().manual_seed(HELDOUT_SEED + k)).double().numpy()
        w.append(ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(ref, x, metric="euclidean")))
    np.testing.assert_allclose(floor["w1"]["mean"], np.mean(w), rtol=1e-6)
    np.testing.assert_allclose(floor["w1"]["sd"], np.std(w, ddof=1), rtol=1e-5)
    assert floor["w1"]["n_draws"] == draws and floor["w1"]["n"] == n
    assert floor["modes_covered"] == {"mean": 8.0, "sd": 0.0, "n_draws": draws, "n": n}
    assert "n_eval" not in floor and "num_modes" not in floor  # bookkeeping, not metrics


def test_the_margin_for_the_race():
    res = {"noise_floor": {"w1": {"mean": 0.07, "sd": 0.01, "n_draws": 5, "n": 2500},
                           "high_quality": {"mean": 0.989, "sd": 0.002, "n_draws": 5, "n": 2500},
                           "modes_covered": {"mean": 8.0, "sd": 0.0, "n_draws": 5, "n": 2500},
                           "reverse_kl": {"mean": None, "sd": None, "n_draws": 5, "n": 2500}}}
    assert noise_floor(res, "w1") == pytest.approx(0.07)  # a distance: the perfect generator's score
    assert noise_floor(res, "high_quality") == pytest.approx(0.004)  # a share: 2 sd
    assert noise_floor(res, "modes_covered") is None  # 8/8 on every draw: no margin
    assert noise_floor(res, "reverse_kl") is None and noise_floor(res, "fid") is None
    assert noise_floor({}, "w1") is None


def test_compare_writes_the_floor_into_results_the_tables_and_the_curves(tmp_path, single_thread):
    cfg = C.resolve("vector", sets=["train.steps=10", "train.batch_size=64", "train.log_every=5",
                                    "train.checkpoint_every=10", "train.n_eval=300", "train.curve_n=100",
                                    "train.curve_points=2", "model.hidden=16", "model.layers=2"])
    res = cmp.run_compare(cfg, losses=["ns"], seeds=1, out=tmp_path, quiet=True, report=True)
    on_disk = json.loads((tmp_path / rundir.RESULTS).read_text())
    nf, nfc = on_disk["noise_floor"], on_disk["noise_floor_curve"]
    assert nf["w1"]["n"] == 300 and nfc["w1"]["n"] == 100 and nf["w1"]["n_draws"] == 5
    assert nfc["w1"]["mean"] > nf["w1"]["mean"] > 0  # W1's sample-size bias: fewer points, farther apart
    assert res["noise_floor"] == nf
    md = (tmp_path / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("|  | noise floor |"))
    assert f"{nf['w1']['mean']:.4g}" in row
    assert f"mean {nfc['w1']['mean']:.3g} over 5 draws" in md  # the curves figure's caption
    # a resumed comparison keeps the file; without it the verdict has no floor
    stamp = (tmp_path / "noise_floor.json").stat().st_mtime_ns
    cmp.run_compare(cfg, losses=["ns"], seeds=1, out=tmp_path, quiet=True)
    assert (tmp_path / "noise_floor.json").stat().st_mtime_ns == stamp
    (tmp_path / "noise_floor.json").unlink()
    out: dict = {}
    add_noise_floor(tmp_path, out)
    assert out == {"noise_floor": None, "noise_floor_curve": None}
