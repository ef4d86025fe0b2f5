"""The literature's expectations (losslab.expectations) tested on hand-made runs, and the data profile of a
comparison end to end: data_profile.json, results.json's data_profile and expectations, the report."""

from __future__ import annotations

import re
import warnings

import pytest

from losslab import compare as cmp
from losslab import config as C
from losslab import io, rundir, verdict
from losslab.expectations import (EXPECTATIONS, LOW_DIM_RATIO, check_expectations, finding_phrase,
                                  profile_reasons, profile_summary)
from losslab.report.answer import expected_sentence

RING = {"name": "ring8", "kind": "vector", "dim": 2, "num_modes": 8, "num_modes_capped": False,
        "separation_min": 76.2, "separation_median": 141.0, "intrinsic_dim": 2.08, "outlier_share": 0.0,
        "heavy_tailed": False}
MNIST = {"name": "mnist", "kind": "image", "dim": 784, "channels": 1, "height": 28, "width": 28, "num_modes": 10,
         "separation_min": 2.1, "intrinsic_dim": 13.0, "outlier_share": 0.004, "heavy_tailed": False,
         "sparsity": 0.19, "class_balance": {"counts": [6000] * 10, "min_max_ratio": 1.0, "normalized_entropy": 1.0}}


def _row(loss, values, n_runs=None):
    return {"loss": loss, "mean": sum(values) / len(values), "ci95": None, "values": values,
            "seeds": list(range(len(values))), "n_ok": len(values), "n_runs": n_runs or len(values)}


def _mode_runs(loss, covered, k=8):
    return [{"loss": loss, "seed": s, "status": "ok", "metrics": {"w1": 0.1, "modes_covered": c, "num_modes": k}}
            for s, c in enumerate(covered)]


def _grad_runs(loss, accs, vanished):
    return [{"loss": loss, "seed": s, "status": "ok", "metrics": {"fid": 30.0},
             "diagnostics": {"d_acc_final": a, "g_grad_vanished": v, "g_grad_norm_initial": 1.0,
                             "g_grad_norm_final": 1e-4 if v else 0.5}}
            for s, (a, v) in enumerate(zip(accs, vanished))]


def _by(results, name, loss=None):
    return [e for e in results if e["name"] == name and (loss is None or loss in e["losses"])]


def test_an_expectation_that_held_cites_its_source_and_the_seeds():
    # ns missed a mode on seed 1 (3/8): VEEGAN's "the standard GAN drops modes" held.
    res = check_expectations(RING, [_row("ns", [0.1] * 3)], _mode_runs("ns", [8, 3, 8]))
    assert [e["name"] for e in res] == ["standard_gan_drops_modes"]
    e = res[0]
    assert e["held"] is True and e["losses"] == ["ns"]
    assert "8/8, 3/8, 8/8" in e["evidence"] and "1/3 seeds" in e["evidence"]
    assert "arXiv:1705.07761" in e["source"] and "Table 1" in e["source"]
    phrase = finding_phrase(e)
    assert phrase.startswith("ns missed modes on 1/3 seeds") and "as VEEGAN, arXiv:1705.07761" in phrase


def test_the_same_expectation_does_not_hold_when_every_seed_covers_every_mode():
    res = check_expectations(RING, [_row("ns", [0.1] * 3)], _mode_runs("ns", [8, 8, 8]))
    assert res[0]["held"] is False and "0/3 seeds" in res[0]["evidence"]
    assert finding_phrase(res[0]).startswith("ns covered all 8 modes on 3/3 seeds, against what VEEGAN")


def test_wgan_no_collapse_is_tested_per_seed():
    runs = _mode_runs("wgan", [8, 8, 6]) + _mode_runs("ns", [2, 8, 8])
    res = check_expectations(RING, [_row("wgan", [0.1] * 3), _row("ns", [0.2] * 3)], runs)
    assert _by(res, "wgan_no_mode_collapse")[0]["held"] is False
    assert "arXiv:1701.07875" in _by(res, "wgan_no_mode_collapse")[0]["source"]
    assert _by(res, "standard_gan_drops_modes", "ns")[0]["held"] is True
    # table order: the standard-GAN row comes first
    assert [e["name"] for e in res] == ["standard_gan_drops_modes", "wgan_no_mode_collapse"]


@pytest.mark.parametrize("change", [{"num_modes": 3}, {"separation_min": 5.9}, {"separation_min": None},
                                    {"kind": "image"}])
def test_an_expectation_whose_condition_is_false_is_left_out(change):
    prof = {**RING, **change}
    res = check_expectations(prof, [_row("ns", [0.1] * 3)], _mode_runs("ns", [8, 3, 8]))
    assert _by(res, "standard_gan_drops_modes") == []


def test_losses_not_compared_and_a_missing_profile_give_nothing():
    assert check_expectations(RING, [_row("lsgan", [0.1])], _mode_runs("lsgan", [3])) == []
    assert check_expectations(None, [_row("ns", [0.1])], _mode_runs("ns", [3])) == []


def test_mode_coverage_not_measured_is_not_testable_here():
    runs = [{"loss": "ns", "seed": 0, "status": "ok", "metrics": {"w1": 0.1}}]
    (e,) = check_expectations(RING, [_row("ns", [0.1])], runs)
    assert e["held"] is None and "not measured" in e["evidence"]
    assert "not testable here" in finding_phrase(e)


def test_an_untrained_generator_at_0_of_8_modes_neither_drops_nor_covers_modes():
    runs = [{"loss": loss, "seed": s, "status": "ok",
             "metrics": {"w1": 2.0, "modes_covered": 0, "num_modes": 8, "high_quality": 0.01}}
            for loss in ("ns", "wgan") for s in range(3)]
    res = check_expectations(RING, [_row("ns", [2.0] * 3), _row("wgan", [2.0] * 3)], runs)
    assert [e["held"] for e in res] == [None, None]
    assert all("put most of its samples at the data" in e["evidence"] and "0/8, 0/8, 0/8" in e["evidence"] for e in res)
    assert "not testable here" in finding_phrase(res[0])
    # a seed that reached one mode (high quality 95%) collapsed: that one seed is the evidence
    runs[1]["metrics"].update(modes_covered=1, high_quality=0.95)
    (ns,) = _by(check_expectations(RING, [_row("ns", [2.0] * 3)], runs), "standard_gan_drops_modes")
    assert ns["held"] is True and "modes covered per seed 1/8" in ns["evidence"] and "1/1 seeds" in ns["evidence"]


def test_vanishing_gradient_is_tested_only_where_the_discriminator_won():
    # MNIST's TwoNN dimension 13 is within LOW_DIM_RATIO of 784: the gradient rows apply; at the bound too
    for idim, applies in ((13.0, True), (LOW_DIM_RATIO * 784, True), (LOW_DIM_RATIO * 784 + 0.5, False)):
        rows = check_expectations({**MNIST, "intrinsic_dim": idim}, [_row("minimax", [30.0] * 2)],
                                  _grad_runs("minimax", [0.97, 0.99], [True, True]))
        assert bool(_by(rows, "minimax_gradient_vanishes")) is applies, idim
    ranking = [_row("minimax", [30.0] * 2), _row("ns", [31.0] * 2)]
    # minimax: D won on both seeds and the gradient vanished on both -> held; ns: D won, no vanishing -> held
    runs = _grad_runs("minimax", [0.97, 0.99], [True, True]) + _grad_runs("ns", [0.95, 0.6], [False, False])
    res = check_expectations(MNIST, ranking, runs)
    mm, ns = _by(res, "minimax_gradient_vanishes")[0], _by(res, "ns_gradient_survives")[0]
    assert mm["held"] is True and "won on 2/2 seeds" in mm["evidence"] and "vanished on 2 of them" in mm["evidence"]
    assert ns["held"] is True and "won on 1/2 seeds" in ns["evidence"]
    assert "arXiv:1701.04862" in mm["source"] and "arXiv:1406.2661" in ns["source"]
    # minimax won but its gradient survived on one seed: did not hold
    runs = _grad_runs("minimax", [0.97, 0.99], [True, False])
    assert _by(check_expectations(MNIST, ranking[:1], runs), "minimax_gradient_vanishes")[0]["held"] is False
    # D never won: the claim's condition did not arise
    runs = _grad_runs("minimax", [0.7, 0.8], [False, False])
    e = _by(check_expectations(MNIST, ranking[:1], runs), "minimax_gradient_vanishes")[0]
    assert e["held"] is None and "never won" in e["evidence"] and "0.70, 0.80" in e["evidence"]
    # full-dimensional data: the row does not apply
    assert _by(check_expectations({**MNIST, "intrinsic_dim": 500.0}, ranking[:1], runs),
               "minimax_gradient_vanishes") == []


def test_gan_losses_similar_reads_the_best_group():
    ranking = [_row("ns", [30.0, 31.0]), _row("lsgan", [32.0, 33.0]), _row("wgan-gp", [50.0, 52.0])]
    runs = [r for e in ranking for r in _grad_runs(e["loss"], [0.6, 0.6], [False, False])]
    rec = {"loss": "ns", "best_group": ["ns", "lsgan"], "pairwise": [
        {"a": "ns", "b": "lsgan", "p_adjusted": 0.3}, {"a": "ns", "b": "wgan-gp", "p_adjusted": 0.01}]}
    (e,) = _by(check_expectations(MNIST, ranking, runs, recommendation=rec), "gan_losses_similar")
    assert e["held"] is False and e["losses"] == ["ns", "lsgan", "wgan-gp"]
    assert "shown worse: wgan-gp" in e["evidence"] and "arXiv:1711.10337" in e["source"]
    # none significantly worse is not the same as alike: not testable without an equivalence test ...
    rec_all = {**rec, "best_group": ["ns", "lsgan", "wgan-gp"]}
    (e,) = _by(check_expectations(MNIST, ranking, runs, recommendation=rec_all), "gan_losses_similar")
    assert e["held"] is None and "no equivalence test" in e["evidence"]
    assert "within noise" not in finding_phrase(e)
    # ... and held when the race's TOST showed them equivalent (its record: the margin and the test)
    (e,) = _by(check_expectations(MNIST, ranking, runs, recommendation={
        **rec_all, "equivalent": {"delta": 2.5, "source": "--equivalence", "p_max": 0.01,
                                  "test": "paired TOST"}}), "gan_losses_similar")
    assert e["held"] is True and "within +-2.5 (paired TOST)" in finding_phrase(e) + e["evidence"] + str(e)
    # no paired test (one seed): not testable
    (e,) = _by(check_expectations(MNIST, ranking, runs, recommendation={"loss": "ns", "pairwise": [
        {"a": "ns", "b": "lsgan", "p_adjusted": None}]}), "gan_losses_similar")
    assert e["held"] is None


def test_eps_against_x0_is_decided_by_a_paired_test_not_by_the_mean_order():
    runs = []

    def eps(a, b, primary="fid"):
        (e,) = _by(check_expectations(MNIST, [_row("ddpm", a), _row("ddpm-x0", b)], runs, primary=primary),
                   "eps_beats_x0")
        return e

    # one seed: the means differ 2x, but there is no test
    e = eps([20.0], [40.0])
    assert e["held"] is None and "not testable with 1 paired seed(s)" in e["evidence"]
    assert e["evidence"].startswith("fid seed mean: ddpm 20, ddpm-x0 40")
    # three paired seeds, FID lower is better: d = 20, 21, 19, t = 20 / (1 / sqrt 3) = 34.64 with 2 degrees of
    # freedom, two-sided p = 1 - t / sqrt(2 + t^2) = 0.000832 (the t_2 closed form) -> held; mirrored -> not
    e = eps([20.0, 21.0, 22.0], [40.0, 42.0, 41.0])
    assert e["held"] is True and "paired t-test over 3 seeds p = 0.000832" in e["evidence"]
    assert eps([40.0, 42.0, 41.0], [20.0, 21.0, 22.0])["held"] is False
    # higher is better (precision): the direction follows the metric
    assert eps([0.9, 0.91, 0.92], [0.5, 0.52, 0.51], primary="precision")["held"] is True
    # overlapping seeds: not separated -> not testable here, whatever the mean order
    e = eps([20.0, 40.0, 30.0], [35.0, 25.0, 33.0])
    assert e["held"] is None and "not separated" in e["evidence"]
    assert _by(check_expectations(MNIST, [_row("ddpm", [20.0])], runs), "eps_beats_x0") == []  # needs both


def test_every_row_names_a_source_with_an_arxiv_id():
    for row in EXPECTATIONS:
        assert re.search(r"arXiv:\d{4}\.\d{4,5}", row.source), row.name
        assert re.search(r"arXiv:\d{4}\.\d{4,5}", row.cite), row.name


def test_the_answer_and_the_reasons_cite_the_profile_and_the_outcome():
    ranking = [_row("wgan", [0.1] * 3), _row("ns", [0.2] * 3)]
    runs = _mode_runs("wgan", [8, 8, 8]) + _mode_runs("ns", [8, 3, 2])
    exp = check_expectations(RING, ranking, runs)
    s = expected_sentence({"data_profile": RING, "expectations": exp})
    assert s.startswith("On this data (8 modes, closest centres 76.2 within-mode std apart, intrinsic dimension 2.08")
    assert "ns missed modes on 2/3 seeds (covered 8/8, 3/8, 2/8), as VEEGAN, arXiv:1705.07761, Table 1 expects" in s
    assert "wgan covered all 8 modes on 3/3 seeds, as WGAN, arXiv:1701.07875 expects" in s
    assert expected_sentence({"data_profile": RING, "expectations": []}) is None
    reasons = profile_reasons(RING, exp)
    assert reasons[0] == f"The data: {profile_summary(RING)}." and len(reasons) == 3
    assert "arXiv:1705.07761" in reasons[1] and "8/8, 3/8, 2/8" in reasons[1]
    assert profile_reasons(None, exp) == []
    assert profile_summary(MNIST).startswith("1x28x28 images, 10 classes")


# ------------------------------------------------------------------------------ end to end


def test_tiny_compare_on_ring8_profiles_the_data_and_tests_the_expectations(tmp_path):
    cfg = C.resolve("vector", sets=["train.steps=30", "train.batch_size=64", "train.log_every=5",
                                    "train.checkpoint_every=30", "train.n_eval=300", "model.hidden=32",
                                    "model.layers=2"])
    res = cmp.run_compare(cfg, losses=["ns", "wgan"], seeds=1, out=tmp_path, quiet=True, report=True)
    prof = io.read_json(tmp_path / rundir.PROFILE)
    assert prof["name"] == "ring8" and prof["num_modes"] == 8 and prof["separation_min"] > 6
    assert res["data_profile"] == prof
    on_disk = io.read_json(tmp_path / rundir.RESULTS)
    assert on_disk["data_profile"]["num_modes"] == 8
    names = [(e["name"], e["losses"]) for e in on_disk["expectations"]]
    assert names == [("standard_gan_drops_modes", ["ns"]), ("wgan_no_mode_collapse", ["wgan"])]
    for e in on_disk["expectations"]:  # tested on the run's own numbers (30 updates: may not reach the data)
        (run,) = [r for r in res["runs"] if r["loss"] == e["losses"][0]]
        missed = run["metrics"]["modes_covered"] < 8
        if run["metrics"]["high_quality"] < 0.5:
            assert e["held"] is None and "put most of its samples at the data" in e["evidence"]
        else:
            assert e["held"] is (missed if e["name"] == "standard_gan_drops_modes" else not missed)
    assert any(s.startswith("On this data (8 modes") for s in res["answer"])
    assert res["recommendation"]["reasons"][1].startswith("The data: 8 modes")
    md = (tmp_path / "report.md").read_text()
    heads = re.findall(r"^## (.+)$", md, flags=re.M)
    assert heads[0] == "The data" and "What the literature expected, and what happened here" in heads
    assert md.index("| **modes** | 8 |") < md.index("## Ranking")
    assert "TwoNN [3]" in md and "arXiv:1803.06992" in md
    # A corrupt profile: the verdict goes without it (with a warning); compare writes it again.
    (tmp_path / rundir.PROFILE).write_text("{not json")
    with pytest.warns(UserWarning, match="data_profile.json"):
        again = verdict.aggregate(tmp_path)
    assert again["data_profile"] is None and again["expectations"] == []
    assert not any(s.startswith("The data:") for s in again["recommendation"]["reasons"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rundir.write_profile(tmp_path, cmp.load_data(cfg))["num_modes"] == 8
    assert io.read_json(tmp_path / rundir.PROFILE) == prof
