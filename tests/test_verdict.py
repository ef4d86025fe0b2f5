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
                                 "sampling_nfe": r.get("nfe", 1)})
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
    flat = [{"g_grad_norm": 0.5 + 0.01 * (i % 3)} for i in range(40)]
    assert verdict.gradient_diagnosis(flat)["g_grad_vanished"] is False
    assert verdict.gradient_diagnosis(flat[:3]) == {}


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
    assert len(notes) == 1 and notes[0].startswith("nt-xent: The random dataset cannot teach")
    assert "linear probe reaches 10.5%" in notes[0] and "chance level of 10.0%" in notes[0]
    write_comparison(tmp_path, runs, family="contrastive", data="digits", kind="image", shape=[1, 8, 8])
    assert verdict.aggregate(tmp_path)["notes"] == []
