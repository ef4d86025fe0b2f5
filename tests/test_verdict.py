"""The verdict: statistics, ranking, recommendation and family words from hand-made run directories."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from losslab import config as C
from losslab import io, rundir, verdict
from losslab import stats as ls
from losslab.errors import UserError
from losslab.metrics import primary_metric
from losslab.report import build_report
from losslab.report.families import describe

GAN_WORDS = ("critic updates", "generator updates", "D(G(z))")


# --------------------------------------------------------------------------- hand-made run directories

def write_comparison(out: Path, runs: list[dict], *, family: str, data: str, kind: str | None, shape, rows=None):
    """A comparison directory written through rundir: compare.json, result.json and metrics.jsonl per run.

    ``runs``: dicts with loss, seed, status and metrics; ``rows(loss, seed)`` gives metrics.jsonl rows.
    """
    losses = list(dict.fromkeys(r["loss"] for r in runs))
    spec = {"family": family, "data": data, "losses": losses, "seeds": max(r["seed"] for r in runs) + 1,
            "metric": None, "config": C.Config().to_dict()}
    if kind is not None:
        spec |= {"kind": kind, "shape": shape}
    io.atomic_write_json(out / rundir.COMPARE, spec)
    for r in runs:
        job = rundir.plan([r["loss"]], 1, seed_start=r["seed"])[0]
        rd = out / job.run_dir
        rundir.write_result(rd, {"loss": r["loss"], "seed": r["seed"], "family": job.family,
                                 "status": r["status"], "error": r.get("error"),
                                 "metrics": r["metrics"] if r["status"] == "ok" else {},
                                 "g_updates": 10, "d_updates": r.get("d_updates", 0),
                                 "wall_seconds": r.get("wall", 1.0),
                                 "diverged_at": 5 if r["status"] == "diverged" else None,
                                 "sampling_nfe": r.get("nfe", 1),
                                 **({"converged": r["converged"]} if "converged" in r else {}),
                                 **({"hparams": r["hparams"]} if "hparams" in r else {})})
        if rows is not None:
            io.append_jsonl(rd / rundir.METRICS, rows(r["loss"], r["seed"]))
    return spec


def _gan(out: Path, runs):
    """(loss, seed, status, w1, modes_covered) on ring8."""
    return write_comparison(out, [
        {"loss": loss, "seed": seed, "status": st, "metrics": {"w1": w1, "modes_covered": m, "num_modes": 8},
         "d_updates": 10}
        for loss, seed, st, w1, m in runs], family="gan", data="ring8", kind="vector", shape=[2])


# --------------------------------------------------------------------------- statistics

def test_mean_ci95_matches_scipy_t_interval():
    vals = [0.31, 0.42, 0.27, 0.5]
    m, (lo, hi) = verdict.mean_ci95(vals)
    ref = stats.t.interval(0.95, len(vals) - 1, loc=np.mean(vals), scale=stats.sem(vals))
    assert_allclose([m, lo, hi], [np.mean(vals), *ref], rtol=1e-12)
    # By hand: mean 0.375, s = 0.10472..., t_{0.975, 3} = 3.18245 (table value).
    half = 3.182446305284263 * np.std(vals, ddof=1) / 2.0
    assert_allclose([lo, hi], [0.375 - half, 0.375 + half], rtol=1e-12)
    assert verdict.mean_ci95([2.0]) == (2.0, None)


def test_gradient_diagnosis_flags_a_vanished_generator_gradient():
    rows = [{"g_grad_norm": 1.0 * 10 ** (-i / 10), "d_acc": 1.0} for i in range(40)]
    d = verdict.gradient_diagnosis(rows)
    assert d["g_grad_vanished"] is True
    # median of the first 4 rows: the mean of the middle two
    assert_allclose(d["g_grad_norm_initial"], (10 ** -0.1 + 10 ** -0.2) / 2, rtol=1e-12)
    flat = [{"g_grad_norm": 0.5 + 0.01 * (i % 3), "d_acc": 1.0} for i in range(40)]
    assert verdict.gradient_diagnosis(flat)["g_grad_vanished"] is False
    assert verdict.gradient_diagnosis(flat[:3]) == {}


def _shrinking(d_acc):
    """40 rows whose generator gradient falls by 10^-3.9 while the critic's accuracy is d_acc."""
    return [{"g_grad_norm": 10 ** (-i / 10), "d_acc": d_acc} for i in range(40)]


def test_vanished_gradient_needs_a_critic_that_is_winning():
    # D fooled (d_acc 0.5): a shrinking gradient is convergence, not a vanished gradient.
    d = verdict.gradient_diagnosis(_shrinking(0.5), family="gan")
    assert d["g_grad_vanished"] is False and d["d_acc_final"] == 0.5
    assert verdict.gradient_diagnosis(_shrinking(0.5))["g_grad_vanished"] is False
    # D winning (0.99) and the gradient collapsed: flagged.
    assert verdict.gradient_diagnosis(_shrinking(0.99), family="gan")["g_grad_vanished"] is True
    assert verdict.gradient_diagnosis(_shrinking(0.99))["g_grad_vanished"] is True
    # The threshold is 0.9; a collapse of only ~7x (tail >= 1e-2 x head) is not flagged.
    assert verdict.D_ACC_WINNING == 0.9
    assert verdict.gradient_diagnosis(_shrinking(0.91), family="gan")["g_grad_vanished"] is True
    assert verdict.gradient_diagnosis(_shrinking(0.89), family="gan")["g_grad_vanished"] is False
    mild = [{"g_grad_norm": 10 ** (-i / 40), "d_acc": 0.99} for i in range(40)]
    assert verdict.gradient_diagnosis(mild, family="gan")["g_grad_vanished"] is False
    # No critic: a diffusion run is never flagged, even with a d_acc-like key; nor a run that logs no d_acc.
    assert verdict.gradient_diagnosis(_shrinking(0.99), family="diffusion")["g_grad_vanished"] is False
    no_acc = [{"g_grad_norm": 10 ** (-i / 10)} for i in range(40)]
    assert verdict.gradient_diagnosis(no_acc)["g_grad_vanished"] is False
    assert verdict.gradient_diagnosis(no_acc)["d_acc_final"] is None


def test_ranking_means_and_cis_from_run_dirs_alone(tmp_path):
    _gan(tmp_path, [
        ("ns", 0, "ok", 0.30, 8), ("ns", 1, "ok", 0.34, 8), ("ns", 2, "ok", 0.32, 7),
        ("hinge", 0, "ok", 0.10, 8), ("hinge", 1, "diverged", None, None), ("hinge", 2, "ok", 0.12, 8),
        ("lsgan", 0, "ok", 0.60, 3), ("lsgan", 1, "ok", 0.70, 2), ("lsgan", 2, "ok", 0.65, 8),
    ])
    res = verdict.aggregate(tmp_path)
    assert [e["loss"] for e in res["ranking"]] == ["hinge", "ns", "lsgan"]  # by mean W1, lower first
    by = {e["loss"]: e for e in res["ranking"]}
    # ns: mean 0.32, s = 0.02, CI 0.32 +- t_{0.975,2} * 0.02 / sqrt(3), t_{0.975,2} = 4.302653.
    h = 4.302652729749464 * 0.02 / math.sqrt(3)
    assert_allclose(by["ns"]["mean"], 0.32, rtol=1e-12)
    assert_allclose(by["ns"]["ci95"], [0.32 - h, 0.32 + h], rtol=1e-9)
    # hinge: two ok seeds, t_{0.975,1} = 12.7062; s = 0.01414, half width 12.7062 * 0.01 = 0.127062.
    assert_allclose(by["hinge"]["ci95"], [0.11 - 0.12706204736174698, 0.11 + 0.12706204736174698], rtol=1e-9)
    assert_allclose(by["ns"]["collapse_rate"], 1 / 3, rtol=1e-12)
    assert_allclose(by["lsgan"]["collapse_rate"], 2 / 3, rtol=1e-12)
    assert_allclose(by["hinge"]["stability"], 2 / 3, rtol=1e-12)
    assert by["hinge"]["n_ok"] == 2 and by["hinge"]["n_runs"] == 3 and by["hinge"]["d_updates_mean"] == 10.0
    # hinge is best on average but diverged once: the recommendation is ns, and says why.
    rec = res["recommendation"]
    assert rec["loss"] == "ns"
    text = " ".join(rec["reasons"])
    assert "diverged in 1/3 seeds (at generator update 5)" in text and "8/8, 8/8, 7/8" in text
    assert "lsgan: mode collapse (at least one mode missed) in 2/3 seeds" in text
    on_disk = json.loads((tmp_path / rundir.RESULTS).read_text())
    assert on_disk["ranking"] == json.loads(io.dumps(res["ranking"]))
    assert on_disk["budget"]["note"] == describe("gan").budget_note
    assert "generator updates" in on_disk["budget"]["note"] and "critic updates" in on_disk["budget"]["note"]


# --------------------------------------------------------------------------- paired statistics and the verdict

def _w1(out: Path, table: dict[str, list], **extra):
    """A ring8 GAN comparison whose w1 per (loss, seed) is ``table[loss][seed]``; all 8 modes covered."""
    return _gan(out, [(loss, s, "ok", w, 8) for loss, ws in table.items() for s, w in enumerate(ws)])


def _row(rec, a, b):
    return next(r for r in rec["pairwise"] if r["a"] == a and r["b"] == b)


def test_clear_winner_needs_a_significant_paired_gap(tmp_path):
    _w1(tmp_path, {"hinge": [0.10, 0.12, 0.11], "ns": [0.40, 0.45, 0.41]})
    res = verdict.aggregate(tmp_path)
    rec = res["recommendation"]
    assert rec["verdict"] == "clear winner" and rec["best_group"] == ["hinge"] and rec["loss"] == "hinge"
    r = _row(rec, "hinge", "ns")
    # Paired differences (lower is better, positive = hinge better): [0.30, 0.33, 0.30].
    d = np.array([0.30, 0.33, 0.30])
    assert r["n_paired"] == 3 and r["test"] == "paired t"
    assert_allclose(r["effect"], d.mean(), rtol=1e-9)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    assert_allclose(r["p_value"], 2 * stats.t.sf(t, 2), rtol=1e-6)
    assert_allclose(r["p_adjusted"], r["p_value"], rtol=1e-12)  # one test: Holm changes nothing
    assert r["prob_improvement"] == 1.0 and r["prob_improvement_ci"] == [1.0, 1.0]
    assert rec["reasons"][0].startswith("Clear winner: hinge (best group: hinge)")
    assert res["statistics"]["correction"] == "holm" and res["statistics"]["alpha"] == 0.05
    assert "ttest_rel" in res["statistics"]["method"] and "2000" in res["statistics"]["prob_improvement"]
    on_disk = json.loads((tmp_path / rundir.RESULTS).read_text())
    assert on_disk["recommendation"]["verdict"] == "clear winner" and on_disk["statistics"]["family"]
    md = build_report(tmp_path)["markdown"].read_text()
    assert "Verdict: clear winner; best group (not significantly worse than the best): hinge." in md


def test_overlapping_losses_are_no_clear_winner(tmp_path):
    _w1(tmp_path, {"hinge": [0.10, 0.30, 0.20], "ns": [0.25, 0.15, 0.22]})
    rec = verdict.aggregate(tmp_path)["recommendation"]
    assert rec["loss"] == "hinge"  # the lower mean (0.2 vs 0.2067) ...
    assert rec["verdict"] == "no clear winner" and rec["best_group"] == ["hinge", "ns"]  # ... but not significantly
    r = _row(rec, "hinge", "ns")
    assert_allclose(r["p_value"], stats.ttest_rel([0.10, 0.30, 0.20], [0.25, 0.15, 0.22]).pvalue, rtol=1e-9)
    assert r["p_adjusted"] > 0.05
    # P(hinge better): hinge 0.10 beats all 3, 0.20 beats 0.22 and 0.25, 0.30 beats none: 5 / 9.
    assert_allclose(r["prob_improvement"], 5 / 9, rtol=1e-12)
    lo, hi = r["prob_improvement_ci"]
    assert lo < 5 / 9 < hi
    assert rec["reasons"][0].startswith("No clear winner: best group hinge, ns")
    assert any(s.startswith("Within the best group") for s in rec["reasons"])


def test_a_third_loss_is_compared_too_and_holm_corrects_over_the_comparisons_with_the_best(tmp_path):
    a, b = [0.10, 0.20, 0.15], [0.12, 0.17, 0.18]
    c = [x + g for x, g in zip(a, [0.50, 0.52, 0.51])]
    _w1(tmp_path, {"ns": b, "lsgan": c, "hinge": a})
    rec = verdict.aggregate(tmp_path)["recommendation"]
    # The old rule compared hinge with the runner-up ns only (overlapping intervals) and never lsgan.
    assert rec["loss"] == "hinge" and rec["best_group"] == ["hinge", "ns"]
    assert rec["verdict"] == "no clear winner"
    assert [(r["a"], r["b"]) for r in rec["pairwise"]] == [("hinge", "ns"), ("hinge", "lsgan")]
    p = [r["p_value"] for r in rec["pairwise"]]
    assert_allclose(p, [stats.ttest_rel(a, b).pvalue, stats.ttest_rel(a, c).pvalue], rtol=1e-9)
    assert_allclose([r["p_adjusted"] for r in rec["pairwise"]], ls.holm(p), rtol=1e-12)
    hc = _row(rec, "hinge", "lsgan")
    assert hc["p_adjusted"] < 0.05 and hc["p_adjusted"] > hc["p_value"]
    assert_allclose(hc["effect"], 0.51, rtol=1e-9)
    assert any(s.startswith("lsgan:") and s.endswith("significantly worse.") for s in rec["reasons"])


def test_one_seed_gives_no_p_value_and_no_clear_winner(tmp_path):
    _w1(tmp_path, {"hinge": [0.10], "ns": [0.90]})
    rec = verdict.aggregate(tmp_path)["recommendation"]
    assert rec["verdict"] == "no clear winner" and rec["best_group"] == ["hinge", "ns"]
    assert rec["pairwise"][0]["p_value"] is None and rec["pairwise"][0]["p_adjusted"] is None
    assert "--seeds 3" in rec["reasons"][0]


def test_an_infinite_metric_is_ranked_last_not_missing(tmp_path):
    inf = math.inf
    kl = {"hinge": [0.20, 0.25, 0.22], "ns": [0.30, 0.28, 0.35], "lsgan": [0.01, inf, 0.02]}
    write_comparison(tmp_path, [
        {"loss": loss, "seed": s, "status": "ok", "metrics": {"w1": 0.1, "reverse_kl": v, "num_modes": 8}}
        for loss, vs in kl.items() for s, v in enumerate(vs)], family="gan", data="ring8", kind="vector", shape=[2])
    on_disk = json.loads((tmp_path / rundir.run_path("lsgan", 1) / rundir.RESULT).read_text())
    assert on_disk["metrics"]["reverse_kl"] is None  # JSON has no inf
    res = verdict.aggregate(tmp_path, metric="reverse_kl")
    # Dropping the inf seed would have put lsgan first (mean 0.015).
    assert [e["loss"] for e in res["ranking"]] == ["hinge", "ns", "lsgan"]
    ls_row = res["ranking"][2]
    assert ls_row["mean"] == inf and ls_row["n_inf"] == 1 and ls_row["n_ok"] == 3 and ls_row["ci95"] is None
    assert ls_row["values"] == [0.01, inf, 0.02] and ls_row["seeds"] == [0, 1, 2]
    r = _row(res["recommendation"], "hinge", "lsgan")
    # Per seed lsgan's 0.01 and 0.02 beat hinge, its inf loses by an infinite margin: effect +inf (hinge better).
    assert r["test"] == "sign" and r["effect"] == inf
    assert_allclose(r["p_value"], stats.binomtest(1, 3, 0.5).pvalue, rtol=1e-12)
    # P(hinge better than lsgan): every hinge value beats lsgan's inf, none beats 0.01 or 0.02: 3 / 9.
    assert_allclose(r["prob_improvement"], 3 / 9, rtol=1e-12)
    disk = json.loads((tmp_path / rundir.RESULTS).read_text())["ranking"][2]
    assert disk["mean"] is None and disk["n_inf"] == 1 and disk["values"] == [0.01, None, 0.02]
    assert any("1 of 3 seeds infinite" in s for s in res["recommendation"]["reasons"])
    md = build_report(tmp_path)["markdown"].read_text()
    assert "inf (1 seeds infinite)" in md


def test_undertrained_when_fewer_than_half_the_runs_converged(tmp_path):
    runs = [{"loss": loss, "seed": s, "status": "ok", "converged": s == 0,
             "metrics": {"w1": w, "modes_covered": 8, "num_modes": 8}, "d_updates": 10}
            for loss, ws in {"hinge": [0.10, 0.12, 0.11], "ns": [0.40, 0.45, 0.41]}.items() for s, w in enumerate(ws)]
    write_comparison(tmp_path, runs, family="gan", data="ring8", kind="vector", shape=[2])
    rec = verdict.aggregate(tmp_path)["recommendation"]
    # 2 of 6 converged: undertrained, although the paired gap alone would be a clear winner.
    assert rec["verdict"] == "undertrained" and rec["best_group"] == ["hinge"] and rec["loss"] == "hinge"
    assert rec["reasons"][0].startswith("Undertrained: only 2 of 6 finished runs converged")
    for r in runs:
        r["converged"] = r["seed"] != 2  # 4 of 6
    write_comparison(tmp_path, runs, family="gan", data="ring8", kind="vector", shape=[2])
    assert verdict.aggregate(tmp_path)["recommendation"]["verdict"] == "clear winner"


def test_pareto_front_names_the_best_loss_per_goal(tmp_path):
    #           w1 per seed         modes covered  high_quality
    table = {"wgan-gp": ([0.10, 0.13], [6, 6], [0.90, 0.92]),
             "hinge": ([0.30, 0.32], [8, 8], [0.80, 0.82]),
             "ns": ([0.35, 0.39], [8, 7], [0.70, 0.72])}  # worse than hinge on every key metric
    runs = [{"loss": loss, "seed": s, "status": "ok", "d_updates": 10,
             "metrics": {"w1": w1[s], "modes_covered": m[s], "num_modes": 8, "high_quality": hq[s],
                         "reverse_kl": 0.1}}
            for loss, (w1, m, hq) in table.items() for s in (0, 1)]
    write_comparison(tmp_path, runs, family="gan", data="ring8", kind="vector", shape=[2])
    res = verdict.aggregate(tmp_path)
    assert res["pareto_front"] == ["wgan-gp", "hinge"]
    assert res["statistics"]["pareto_metrics"] == ["w1", "modes_covered", "high_quality", "reverse_kl"]
    text = [s for s in res["recommendation"]["reasons"] if s.startswith("No single loss")]
    assert len(text) == 1 and "for W1: wgan-gp" in text[0] and "for mode coverage: hinge;" in text[0]
    assert "for reverse KL: wgan-gp, hinge, ns" in text[0]  # a tie names every loss
    # Contrastive: one loss best on both key metrics -> a front of one and no sentence.
    runs = [{"loss": loss, "seed": s, "status": "ok", "metrics": {"linear_probe": p + 0.01 * s * k, "knn": p}}
            for loss, p, k in [("nt-xent", 0.80, 1), ("clip", 0.90, 3)] for s in (0, 1)]
    write_comparison(tmp_path / "c", runs, family="contrastive", data="digits", kind="image", shape=[1, 8, 8])
    res = verdict.aggregate(tmp_path / "c")
    assert res["pareto_front"] == ["clip"] and res["statistics"]["pareto_metrics"] == ["linear_probe", "knn"]
    assert not any(s.startswith("No single loss") for s in res["recommendation"]["reasons"])


def test_missing_runs_are_listed_and_noted(tmp_path):
    _gan(tmp_path, [("ns", 0, "ok", 0.3, 8), ("ns", 1, "ok", 0.4, 8)])
    (tmp_path / rundir.run_path("ns", 1) / rundir.RESULT).unlink()
    res = verdict.aggregate(tmp_path)
    assert [r["status"] for r in res["runs"]] == ["ok", "missing"]
    assert res["ranking"][0]["n_runs"] == 1 and res["ranking"][0]["ci95"] is None
    assert res["notes"] == ["1 runs have not been run yet; rerun the same compare command to finish them."]


def test_unknown_metric_lists_the_measured_ones(tmp_path):
    _gan(tmp_path, [("ns", 0, "ok", 0.3, 8)])
    with pytest.raises(UserError, match="choose from: modes_covered, num_modes, w1"):
        verdict.aggregate(tmp_path, metric="fid")


def test_corrupt_or_absent_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="compare.json missing"):
        verdict.aggregate(tmp_path)
    _gan(tmp_path, [("ns", 0, "ok", 0.3, 8)])
    (tmp_path / rundir.run_path("ns", 0) / rundir.RESULT).write_text("{not json")
    with pytest.raises(UserError, match="result.json is corrupt"):
        verdict.aggregate(tmp_path)
    write_comparison(tmp_path, [{"loss": "ns", "seed": 0, "status": "ok", "metrics": {"w1": 0.1}}],
                     family="gan", data="mine.csv", kind=None, shape=None)
    with pytest.raises(UserError, match="vectors or images"):
        verdict.aggregate(tmp_path)


# --------------------------------------------------------------------------- the primary metric

@pytest.mark.parametrize("family, kind, shape, want", [
    ("contrastive", "image", [1, 8, 8], ("linear_probe", True)),
    ("gan+contrastive", "image", [1, 8, 8], ("linear_probe", True)),
    ("gan", "image", [1, 28, 28], ("fid", False)),
    ("diffusion", "image", [1, 28, 28], ("fid", False)),
    ("gan", "vector", [1], ("w1", False)),
    ("diffusion", "vector", [2], ("w1", False)),
    ("gan", "vector", [5], ("swd", False)),
])
def test_primary_metric_per_family_and_data(family, kind, shape, want):
    assert primary_metric(family=family, kind=kind, shape=shape) == want


def test_primary_metric_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown dataset kind"):
        primary_metric(family="gan", kind="audio", shape=[1])


def test_aggregate_ranks_by_the_familys_primary_metric(tmp_path):
    # 5-D vectors measure both w1 and swd; the ranking follows swd (d > 2), which orders them the other way.
    runs = [{"loss": loss, "seed": 0, "status": "ok", "metrics": {"w1": w1, "swd": swd}}
            for loss, w1, swd in [("ns", 0.1, 0.9), ("hinge", 0.5, 0.2)]]
    write_comparison(tmp_path / "v", runs, family="gan", data="simplex5", kind="vector", shape=[5])
    res = verdict.aggregate(tmp_path / "v")
    assert res["primary_metric"]["name"] == "swd" and [e["loss"] for e in res["ranking"]] == ["hinge", "ns"]
    # Contrastive: linear_probe, higher is better, so the best is the largest.
    runs = [{"loss": loss, "seed": s, "status": "ok", "metrics": {"linear_probe": p, "knn": p}}
            for loss, s, p in [("nt-xent", 0, 0.80), ("nt-xent", 1, 0.84), ("clip", 0, 0.90), ("clip", 1, 0.92)]]
    write_comparison(tmp_path / "c", runs, family="contrastive", data="digits", kind="image", shape=[1, 8, 8])
    res = verdict.aggregate(tmp_path / "c")
    assert res["primary_metric"] == {"name": "linear_probe", "higher_is_better": True,
                                     "description": res["primary_metric"]["description"]}
    assert [e["loss"] for e in res["ranking"]] == ["clip", "nt-xent"]
    assert_allclose(res["ranking"][0]["mean"], 0.91, rtol=1e-12)


def test_kind_and_shape_come_from_reference_npz_when_compare_json_lacks_them(tmp_path):
    runs = [{"loss": "ns", "seed": 0, "status": "ok", "metrics": {"w1": 0.2, "swd": 0.3}}]
    write_comparison(tmp_path, runs, family="gan", data="old", kind=None, shape=None)
    io.atomic_write_bytes(tmp_path / rundir.REFERENCE, io.npz_bytes(real=np.zeros((10, 3), np.float32)))
    res = verdict.aggregate(tmp_path)
    assert res["dataset"]["kind"] == "vector" and res["dataset"]["shape"] == [3]
    assert res["primary_metric"]["name"] == "swd"


# --------------------------------------------------------------------------- each family in its own words

def _diffusion_rows(loss, seed):
    return [{"step": 25 * i, "d_updates": 0, "g_loss": 1.0 / (i + 1), "g_grad_norm": 0.3, "g_grad_mean": 1e-5,
             **{f"loss_t{b}": 0.8 * 0.5 ** b for b in range(10)}} for i in range(8)]


def _contrastive_rows(loss, seed):
    rows = [{"step": 10 * i, "d_updates": 0, "g_loss": 4.0 - 0.3 * i, "g_grad_norm": 2.0, "g_grad_mean": 1e-4,
             "pos_sim": 0.1 * i, "neg_sim": 0.01 * i, "match_acc": 0.1 * i} for i in range(6)]
    if loss == "clip":
        for r in rows:
            r["logit_scale"] = 14.3
    return rows


def _gan_rows(loss, seed):
    return [{"step": 10 * i, "d_updates": 10 * i, "g_loss": 1.0, "d_loss": 1.0, "d_real": 0.5, "d_fake": -0.5,
             "g_grad_norm": 1.0, "d_grad_norm": 1.0, "g_grad_mean": 0.0, "d_grad_mean": 0.0} for i in range(6)]


def _family_dir(tmp_path: Path, family: str) -> Path:
    out = tmp_path / family
    if family == "contrastive":
        runs = [{"loss": loss, "seed": s, "status": "ok", "metrics": {"linear_probe": 0.9 + 0.01 * s, "chance": 0.1}}
                for loss in ("nt-xent", "clip") for s in (0, 1)]
        write_comparison(out, runs, family=family, data="digits", kind="image", shape=[1, 8, 8],
                         rows=_contrastive_rows)
        return out
    loss, rows = ("ddpm", _diffusion_rows) if family == "diffusion" else ("ns", _gan_rows)
    runs = [{"loss": loss, "seed": s, "status": "ok", "nfe": 100 if family == "diffusion" else 1,
             "metrics": {"w1": 0.2 + 0.1 * s, "modes_covered": 8, "num_modes": 8}} for s in (0, 1)]
    runs.append({"loss": loss, "seed": 2, "status": "diverged", "metrics": {}})
    write_comparison(out, runs, family=family, data="ring8", kind="vector", shape=[2], rows=rows)
    rng = np.random.default_rng(0)
    io.atomic_write_bytes(out / rundir.REFERENCE, io.npz_bytes(real=rng.normal(size=(200, 2)).astype(np.float32)))
    for s in (0, 1):
        io.atomic_write_bytes(out / rundir.run_path(loss, s) / rundir.SAMPLES,
                              io.npz_bytes(samples=rng.normal(size=(100, 2)).astype(np.float32)))
    return out


@pytest.mark.parametrize("family, unit", [("diffusion", "denoiser updates"), ("contrastive", "encoder updates")])
def test_diffusion_and_contrastive_reports_speak_no_gan(tmp_path, family, unit):
    out = _family_dir(tmp_path, family)
    res = verdict.aggregate(out)
    assert unit in res["budget"]["note"]
    paths = build_report(out)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    for word in GAN_WORDS:
        assert word not in md and word not in page, word
    assert f"{res['budget']['g_updates']} {unit} per run" in md
    assert "generator" not in " ".join(res["recommendation"]["reasons"] + [res["budget"]["note"]])
    if family == "diffusion":  # the diverged seed is reported at a denoiser update
        assert verdict._evidence("ddpm", res["runs"], ("diverged",)) == ["diverged in 1/3 seeds (at denoiser update 5)"]
    # The positive control: the same report for a GAN does use those words.
    gan = _family_dir(tmp_path, "gan")
    verdict.aggregate(gan)
    gmd = build_report(gan)["markdown"].read_text()
    assert all(word in gmd for word in GAN_WORDS)


def test_each_family_draws_only_the_curves_it_logs():
    keys = {name: {k for p in describe(name).panels([rows("x", 0)]) for k, _, _ in p.lines}
            for name, rows in [("gan", _gan_rows), ("diffusion", _diffusion_rows)]}
    keys["contrastive"] = {k for p in describe("contrastive").panels([_contrastive_rows("clip", 0)])
                           for k, _, _ in p.lines}
    assert {"d_real", "d_fake", "d_loss"} <= keys["gan"]
    assert keys["diffusion"] == {"g_loss", "g_grad_norm", "g_grad_mean"} | {f"loss_t{b}" for b in range(10)}
    assert keys["contrastive"] == {"g_loss", "g_grad_norm", "pos_sim", "neg_sim", "match_acc", "logit_scale"}
    # Every key a family draws is one its runs log: no "not logged" panel.
    for name, rows in [("gan", _gan_rows("ns", 0)), ("diffusion", _diffusion_rows("ddpm", 0)),
                       ("contrastive", _contrastive_rows("clip", 0))]:
        assert keys[name] <= set(rows[0]), name
    # An NT-Xent run logs no logit scale: its panel is left out.
    assert "logit_scale" not in {k for p in describe("contrastive").panels([_contrastive_rows("nt-xent", 0)])
                                 for k, _, _ in p.lines}


def test_a_mixed_table_names_every_network():
    words = describe("gan+diffusion")
    assert words.unit == "generator / denoiser updates" and words.second_player == "critic updates"
    assert describe("contrastive").second_player is None and not describe("contrastive").generates


def test_random_data_note_comes_from_the_contrastive_family(tmp_path):
    runs = [{"loss": "nt-xent", "seed": 0, "status": "ok",
             "metrics": {"linear_probe": 0.105, "knn": 0.098, "chance": 0.1, "view_match": 0.6}}]
    write_comparison(tmp_path, runs, family="contrastive", data="random", kind="image", shape=[1, 8, 8])
    notes = verdict.aggregate(tmp_path)["notes"]
    assert len(notes) == 1 and notes[0].startswith("The random dataset cannot teach")  # once, not per loss
    assert "(Numbers of nt-xent, the best ranked; linear probe per loss: nt-xent 10.5%.)" in notes[0]
    assert "linear probe reaches 10.5%" in notes[0] and "chance level of 10.0%" in notes[0]
    write_comparison(tmp_path, runs, family="contrastive", data="digits", kind="image", shape=[1, 8, 8])
    assert verdict.aggregate(tmp_path)["notes"] == []
