"""Failure signatures on synthetic curves (losslab.diagnose): each fires on its bad curve and not on a
healthy one; the EMA; CIs clipped to the metric's domain; each loss's own panels (losslab.report.signatures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch

from losslab import diagnose as dg
from losslab.report.families import describe
from losslab.report.signatures import diagnostics_caption, loss_panels
from losslab.report.style import OKABE_ITO, clip_ci

T = 100


def _rows(**cols) -> list[dict]:
    n = len(next(iter(cols.values())))
    return [{"step": 10 * i, **{k: float(v[i]) for k, v in cols.items()}} for i in range(n)]


def _names(findings) -> list[str]:
    return [f.name for f in findings]


def test_ema_is_bias_corrected_and_matches_the_recursion():
    x = np.array([4.0, 0.0, 2.0])
    a = 0.5
    # s1 = a*4 = 2, w1 = .5 -> 4; s2 = .5*2 = 1, w2 = .75 -> 4/3; s3 = .5*1 + .5*2 = 1.5, w3 = .875 -> 12/7
    np.testing.assert_allclose(dg.ema(x, alpha=a), [4.0, 4.0 / 3.0, 12.0 / 7.0], rtol=1e-12)
    np.testing.assert_allclose(dg.ema(np.full(50, 3.0)), np.full(50, 3.0), rtol=1e-12)  # a constant stays


def test_vanishing_gradient_fires_when_the_critic_wins_and_the_norm_collapses():
    t = np.arange(T)
    bad = _rows(g_grad_norm=np.exp(-t / 10.0), d_acc=np.full(T, 0.99))
    found = dg.vanishing_gradient(bad, "minimax")
    assert _names(found) == ["vanishing_gradient"]
    assert found[0].values["d_acc"] == pytest.approx(0.99)
    assert "losslab explain minimax" in found[0].text
    # the same collapse while D is fooled (a converged run) is not the failure
    fooled = _rows(g_grad_norm=np.exp(-t / 10.0), d_acc=np.full(T, 0.5))
    assert "vanishing_gradient" not in _names(dg.vanishing_gradient(fooled, "ns"))
    healthy = _rows(g_grad_norm=np.ones(T), d_acc=np.full(T, 0.6))
    assert dg.vanishing_gradient(healthy, "ns") == []


def test_a_saturating_loss_whose_critic_never_won_says_why_its_gradient_survived():
    healthy = _rows(g_grad_norm=np.ones(T), d_acc=np.full(T, 0.6))
    found = dg.vanishing_gradient(healthy, "minimax")
    assert _names(found) == ["gradient_kept"] and found[0].severity == "info"
    assert "d_acc 0.60" in found[0].text and "never won" in found[0].text
    # a critic at d_acc 0.97 did win: the sentence must not say it never did
    won = dg.vanishing_gradient(_rows(g_grad_norm=np.ones(T), d_acc=np.full(T, 0.97)), "minimax")
    assert _names(won) == ["gradient_kept"]
    assert "never won" not in won[0].text and "never won" not in won[0].short
    assert "although its critic won (d_acc 0.97" in won[0].text


# ----------------------------------------------------------------------------- calibration on null curves

N_NULL = 400  # simulated null curves per signature; each may fire on at most 5% of them
HEALTHY = json.loads((Path(__file__).parent / "data" / "healthy_g_loss.json").read_text())["g_loss"]


def _fire_rate(detect, make, n: int = N_NULL) -> float:
    return sum(bool(detect(make())) for _ in range(n)) / n


def test_every_signature_fires_on_at_most_5_percent_of_null_curves_and_on_its_failure():
    rng = np.random.default_rng(20)
    t = np.arange(T)
    nulls = {  # healthy training curves with noise: (detector, null curve maker, failing curve)
        "vanishing_gradient": (
            lambda r: [f for f in dg.vanishing_gradient(r, "ns") if f.severity == "failure"],
            lambda: _rows(g_grad_norm=np.exp(-t / 50.0 + rng.normal(0, 0.5, T)),  # shrinks 7x, noisy
                          d_acc=np.clip(rng.normal(0.75, 0.1, T), 0, 1)),
            _rows(g_grad_norm=np.exp(-t / 10.0), d_acc=np.full(T, 0.99))),
        "above_margin": (
            lambda r: dg.above_margin(r, 1.0),
            lambda: _rows(d_fake=rng.normal(0.7, 0.15, T)),
            _rows(d_fake=rng.normal(1.3, 0.15, T))),
        "clip_saturation": (
            dg.clip_saturation,
            lambda: _rows(clip_share=rng.uniform(0.0, 0.45, T)),
            _rows(clip_share=rng.uniform(0.55, 0.9, T))),
        "k_pinned": (
            dg.k_pinned,
            lambda: _rows(k=np.clip(rng.normal(0.05, 0.03, T), 0, 1)),
            _rows(k=np.clip(rng.normal(-0.05, 0.03, T), 0, 1))),
        "embedding_collapse": (
            dg.embedding_collapse,
            lambda: _rows(pos_sim=rng.normal(0.8, 0.05, T), neg_sim=rng.normal(0.2, 0.1, T)),
            _rows(pos_sim=rng.normal(0.98, 0.005, T), neg_sim=rng.normal(0.96, 0.005, T))),
    }
    for name, (detect, make, failing) in nulls.items():
        assert _fire_rate(detect, make) <= 0.05, name
        assert _names(detect(failing)) == [name], name


def test_mode_collapse_does_not_fire_on_a_perfect_generator_at_the_curve_sample_size():
    from losslab.data import load_dataset
    from losslab.metrics.modes import mode_stats

    ds = load_dataset("ring8")
    fired = 0
    for k in range(50):  # held-out real samples of 500 points: a perfect generator
        x = ds.reference(500, torch.Generator().manual_seed(1000 + k))
        fired += bool(dg.mode_collapse(mode_stats(x, ds.modes, ds.mode_std, ds.weights)))
    assert fired / 50 <= 0.05
    half = ds.reference(500, torch.Generator().manual_seed(1))
    half = half[torch.atan2(half[:, 1], half[:, 0]) > 0]  # the upper half of the ring: 3 or 4 of 8 modes
    assert _names(dg.mode_collapse(mode_stats(half, ds.modes, ds.mode_std, ds.weights))) == ["mode_collapse"]


def test_above_margin_fires_when_fakes_sit_above_m_most_of_training():
    bad = _rows(d_fake=np.r_[np.full(15, 0.5), np.full(85, 1.3)])
    found = dg.above_margin(bad, 1.0)
    assert _names(found) == ["above_margin"] and found[0].values["share"] == pytest.approx(0.85)
    assert "85% of training" in found[0].text and "losslab explain ebgan" in found[0].text
    healthy = _rows(d_fake=np.r_[np.full(70, 0.6), np.full(30, 1.1)])
    assert dg.above_margin(healthy, 1.0) == []
    assert dg.above_margin(bad, None) == []
    # Fakes above m while the samples cover every class is the equilibrium of a critic that tells them apart,
    # not a failure (all three arms of the study's EBGAN ablation, 10/10 classes): not flagged. A run missing
    # classes, or one whose coverage is unknown, still is.
    every = {"classes_covered": 10, "num_classes": 10}
    assert dg.above_margin(bad, 1.0, metrics=every) == []
    assert _names(dg.above_margin(bad, 1.0, metrics={"classes_covered": 3, "num_classes": 10})) == ["above_margin"]
    assert _names(dg.above_margin(bad, 1.0, metrics={"modes_covered": 8, "num_modes": 8})) == []
    assert _names(dg.above_margin(bad, 1.0, metrics={"fid": 0.02})) == ["above_margin"]
    run = dg.diagnose_run(bad, loss="ebgan", family="gan", hparams={"margin": 1.0}, metrics=every)
    assert "above_margin" not in _names(run)


def test_clip_saturation_fires_on_weights_at_the_bound():
    assert _names(dg.clip_saturation(_rows(clip_share=np.linspace(0.1, 0.8, T)))) == ["clip_saturation"]
    assert dg.clip_saturation(_rows(clip_share=np.full(T, 0.05))) == []


def test_k_pinned_fires_on_k_stuck_at_a_bound():
    found = dg.k_pinned(_rows(k=np.r_[np.linspace(0, 0.01, 20), np.zeros(80)]))
    assert _names(found) == ["k_pinned"] and found[0].values["bound"] == 0.0
    assert dg.k_pinned(_rows(k=0.05 + 0.01 * np.sin(np.arange(T)))) == []


def test_oscillation_fires_on_a_swinging_loss_not_on_noise_or_a_trend():
    rng = np.random.default_rng(0)
    t = np.arange(400)
    swing = _rows(g_loss=1.0 + 0.8 * np.sin(2 * np.pi * t / 40) + 0.05 * rng.normal(size=400))
    found = dg.oscillation(swing)
    assert _names(found) == ["oscillation"]
    np.testing.assert_allclose(found[0].values["cycles"], 5.0)  # 200 values of the second half / period 40
    np.testing.assert_allclose(found[0].values["amplitude"], 0.8, rtol=0.1)
    # the same swing buried in N(0, 0.5^2) noise at 200 rows is still found
    assert _names(dg.oscillation(_rows(g_loss=1.0 + 0.8 * np.sin(2 * np.pi * t[:200] / 20)
                                       + 0.5 * rng.normal(size=200)))) == ["oscillation"]


@pytest.mark.parametrize("n", [32, 60, 120, 400])
def test_oscillation_is_calibrated_on_null_curves(n):
    """iid N(1, 0.5^2) (the old rule fired on 71% of them), a random walk, AR(1) red noise and a noisy decay:
    at most 5% each."""
    rng = np.random.default_rng(n)
    t = np.arange(n)
    makers = {
        "iid": lambda: rng.normal(1.0, 0.5, n),
        "random walk": lambda: 1.0 + np.cumsum(rng.normal(0, 0.05, n)),
        "ar(1) 0.9": lambda: 1.0 + scipy.signal.lfilter([1.0], [1.0, -0.9], rng.normal(0, 0.1, n)),
        "decay": lambda: 2.0 * np.exp(-t / (n / 4)) + rng.normal(0, 0.02, n),
    }
    for name, make in makers.items():
        assert _fire_rate(dg.oscillation, lambda: _rows(g_loss=make()), n=200) <= 0.05, name


def test_oscillation_does_not_fire_on_recorded_healthy_runs():
    """300-update ring8 runs (log every 5): the old rule flagged wgan-gp seeds 0 and 1."""
    for run, values in HEALTHY.items():
        assert dg.oscillation(_rows(g_loss=np.asarray(values))) == [], run


def test_mode_collapse_from_final_metrics():
    found = dg.mode_collapse({"modes_covered": 3, "num_modes": 8})
    assert _names(found) == ["mode_collapse"] and "3/8" in found[0].text
    assert dg.mode_collapse({"modes_covered": 8, "num_modes": 8}) == []
    assert _names(dg.mode_collapse({"classes_covered": 9, "num_classes": 10})) == ["mode_collapse"]


def test_embedding_collapse_fires_when_negatives_are_as_similar_as_positives():
    assert _names(dg.embedding_collapse(_rows(pos_sim=np.full(T, 0.99), neg_sim=np.full(T, 0.97)))) == [
        "embedding_collapse"]
    assert dg.embedding_collapse(_rows(pos_sim=np.full(T, 0.9), neg_sim=np.full(T, 0.1))) == []


def test_diagnose_run_keeps_families_apart_and_short_curves_say_nothing():
    swing = _rows(g_loss=1.0 + np.sin(np.arange(T) / 2.0), d_fake=np.full(T, 2.0))
    assert "above_margin" in _names(dg.diagnose_run(swing, loss="ebgan", family="gan", hparams={"margin": 1.0}))
    assert dg.diagnose_run(swing, loss="ddpm", family="diffusion") == []
    assert dg.diagnose_run(swing[:3], loss="ebgan", family="gan", hparams={"margin": 1.0}) == []


def test_clip_ci_to_the_metric_domain():
    assert clip_ci("w1", [-0.2, 0.5]) == ([0.0, 0.5], True)
    assert clip_ci("linear_probe", [0.9, 1.005]) == ([0.9, 1.0], True)
    assert clip_ci("w1", [0.1, 0.5]) == ([0.1, 0.5], False)
    assert clip_ci("modes_covered", [6.0, 9.5], upper=8) == ([6.0, 8.0], True)
    assert clip_ci("kid", [-0.01, 0.02]) == ([-0.01, 0.02], False)  # unbiased MMD^2 may be negative
    assert clip_ci("w1", None) == (None, False)


def test_palette_is_okabe_ito():
    assert OKABE_ITO[:3] == ("#0072B2", "#E69F00", "#009E73")


def test_ebgan_panels_speak_of_energy_with_the_margin_and_its_own_terms():
    rows = [_rows(d_real=np.full(10, 0.3), d_fake=np.full(10, 1.2), g_loss=np.ones(10), d_loss=np.ones(10),
                  pt=np.full(10, 0.9), above_margin=np.full(10, 0.8))]
    panels = loss_panels("ebgan", describe("gan"), rows, {"margin": 2.5})
    energy = next(p for p in panels if "energy" in p.title and "d_fake" in [k for k, _, _ in p.lines])
    assert energy.hlines == ((2.5, "margin m = 2.5"),)
    assert [lab for _, lab, _ in energy.lines] == ["E(x), real", "E(G(z)), fakes"]
    keys = [k for p in panels for k, _, _ in p.lines]
    assert "pt" in keys and "above_margin" in keys and "clip_share" not in keys
    cap = diagnostics_caption("ebgan", describe("gan"), panels)
    assert "D(G(z))" not in cap and "margin" in cap
    assert [p.title[:3] for p in panels] == [f"({c})" for c in "abcdef"[: len(panels)]]


def test_wgan_panels_add_the_clip_share_and_ns_keeps_the_family_panels():
    rows = [_rows(d_real=np.ones(10), d_fake=np.ones(10), clip_share=np.full(10, 0.4))]
    keys = [k for p in loss_panels("wgan", describe("gan"), rows, {"clip": 0.01}) for k, _, _ in p.lines]
    assert "clip_share" in keys
    assert len(loss_panels("ns", describe("gan"), [_rows(d_real=np.ones(10))])) == 4
    diffusion = loss_panels("ddpm", describe("diffusion"), [[]])
    assert not any("critic" in p.title or "D(" in p.title for p in diffusion)


def test_gan_step_logs_pt_margin_share_and_clip_share():
    """The record block logs EBGAN's pulling-away term and margin share and WGAN's clip share, in range."""
    from losslab.config import Config
    from losslab.data import load_dataset
    from losslab.train import gan

    cfg = Config()
    ds = load_dataset("ring8")
    for loss, keys in (("ebgan", ("pt", "above_margin")), ("wgan", ("clip_share",))):
        state = gan.init_state(cfg, ds, loss, seed=0)
        log = gan.step(state, ds, 32, record=True)
        assert set(keys) <= set(log), loss
        assert not ({"pt", "above_margin", "clip_share"} - set(keys)) & set(log)
    # above_margin is the share of fakes with energy >= m: energies are >= 0, so all at m = 0, none at m = 1e9
    for margin, share in ((0.0, 1.0), (1e9, 0.0)):
        cfg.loss.margin = margin
        state = gan.init_state(cfg, ds, "ebgan", seed=0)
        assert gan.step(state, ds, 32, record=True)["above_margin"] == share
    # pt is a mean squared cosine over pairs i != j of the batch's codes: strictly between 0 and 1 for random codes
    assert 0.0 < gan.step(gan.init_state(cfg, ds, "ebgan", seed=0), ds, 32, record=True)["pt"] < 1.0
    # clip_share is the share of critic weights |w| at c after the update: 1 when every step overshoots a tiny
    # bound (c = 1e-6: each weight with a gradient is clipped to +-c; a few have none), 0 with every weight far
    # below c = 0.01 (one RMSprop step moves a weight by about 10 lr << c)
    for c, fill, share in ((1e-6, None, 1.0), (0.01, 1e-7, 0.0)):
        cfg.loss.clip = c
        state = gan.init_state(cfg, ds, "wgan", seed=0)
        if fill is not None:
            with torch.no_grad():
                for p in state.D.parameters():
                    p.fill_(fill)
        torch.manual_seed(0)
        np.testing.assert_allclose(gan.step(state, ds, 32, record=True)["clip_share"], share, rtol=0, atol=1e-3)
