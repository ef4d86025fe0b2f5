"""Candidates ``LOSS[key=value,...]``: a loss at settings of its own, compared with itself through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_flags import invoke  # losslab ARGV in this process: exit code, stdout, stderr

from losslab.errors import UserError
from losslab.losses import family_of, get_gan_loss, variants

SMALL = ["--steps", "40", "--set", "train.log_every=5", "--set", "train.checkpoint_every=40",
         "--set", "train.n_eval=200", "--set", "train.curve_n=200", "--set", "train.curve_points=2",
         "--set", "model.hidden=16", "--set", "model.layers=2", "--workers", "1", "--quiet"]


def test_a_label_parses_into_its_loss_and_settings():
    assert variants.parse("ns") == ("ns", {})
    assert variants.parse(" ebgan[pt_weight=0] ") == ("ebgan", {"loss.pt_weight": "0"})
    assert variants.parse("ns[lr=1e-4, n_critic=2]") == ("ns", {"loss.lr_g": "1e-4", "loss.lr_d": "1e-4",
                                                               "loss.n_critic": "2"})
    assert variants.parse("ebgan[model.arch=infogan]") == ("ebgan", {"model.arch": "infogan"})
    assert variants.base_name("wgan-gp[gp_weight=1]") == "wgan-gp" and variants.base_name("ns") == "ns"
    assert family_of("ddpm[model.hidden=8]") == "diffusion"
    assert get_gan_loss("ebgan[pt_weight=0]") is get_gan_loss("ebgan")
    # commas inside brackets do not split the list
    assert variants.split_list("ns, ns[lr=1e-4,n_critic=2] ,hinge") == ["ns", "ns[lr=1e-4,n_critic=2]", "hinge"]


@pytest.mark.parametrize("bad, words", [
    ("ns[n_critic]", "not key=value"), ("ns[]", "empty brackets"), ("ns[=2]", "not key=value"),
    ("ns[train.steps=9]", "equal budget"), ("ns[data.name=grid25]", "same data"),
    ("ns[optim.lr=1]", "unknown section"), ("ns[lr=1e-4,lr_g=1e-3]", "set twice"),
])
def test_a_malformed_label_is_refused_naming_it(bad, words):
    with pytest.raises(UserError, match=words):
        variants.parse(bad)


@pytest.mark.parametrize("text", ["ns[n_critic=2", "ns]n_critic=2["])
def test_unbalanced_brackets_are_refused(text):
    with pytest.raises(UserError, match="without its"):
        variants.split_list(text)


def test_a_search_label_names_its_setting_to_four_digits():
    assert variants.label("ns", {}) == "ns"
    assert variants.label("ns", {"n_critic": 2, "lr": 0.000123456}) == "ns[lr=0.0001235,n_critic=2]"
    base, settings = variants.parse(variants.label("hinge", {"lr": 3.0e-4, "beta1": 0.5}))
    assert base == "hinge" and settings == {"loss.beta1": "0.5", "loss.lr_g": "0.0003", "loss.lr_d": "0.0003"}


def test_a_loss_races_against_itself_at_other_settings_through_the_cli(tmp_path):
    out = tmp_path / "out"
    r = invoke(["compare", "--losses", "ns,ns[n_critic=3],ns[lr=1e-4]", "--seeds", "2", "--out", out, *SMALL])
    assert r.code == 0, r.err
    for name, n_critic, lr in (("ns", 1, None), ("ns[n_critic=3]", 3, None), ("ns[lr=1e-4]", 1, 1e-4)):
        for seed in (0, 1):
            rd = out / "runs" / name / f"seed{seed}"
            c, res = json.loads((rd / "config.json").read_text()), json.loads((rd / "result.json").read_text())
            assert c["run"]["loss"] == res["loss"] == name
            assert c["loss"]["n_critic"] == (None if n_critic == 1 else n_critic)  # only what the label sets
            assert c["loss"]["lr_g"] == c["loss"]["lr_d"] == lr
            # the setting took effect in training: n_critic critic updates per generator update, the rate used
            assert res["g_updates"] == 40 and res["d_updates"] == 40 * n_critic
            assert res["hparams"]["n_critic"] == n_critic
            assert res["hparams"]["lr_g"] == pytest.approx(lr if lr else 5 * get_gan_loss("ns").defaults["lr_g"])
    results = json.loads((out / "results.json").read_text())
    assert {e["loss"] for e in results["ranking"]} == {"ns", "ns[n_critic=3]", "ns[lr=1e-4]"}
    assert "ns[n_critic=3]" in (out / "report.md").read_text()
    # a rerun finds every run as it was: nothing is trained again
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    again = invoke(["compare", "--losses", "ns,ns[n_critic=3],ns[lr=1e-4]", "--seeds", "2", "--out", out, *SMALL])
    assert again.code == 0, again.err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == stamp


@pytest.mark.parametrize("losses, words", [
    ("ns[n_critic=0]", "loss ns[n_critic=0]: loss.n_critic"),
    ("ns[nope=1]", "loss.nope"),
    ("wgan[r1_gamma=1]", "R1"),
    ("ns[train.steps=9]", "equal budget"),
    ("ns,ns[n_critic=2", "without its"),
])
def test_a_bad_candidate_exits_2_in_one_line_and_writes_nothing(tmp_path, losses, words):
    out = tmp_path / "out"
    r = invoke(["compare", "--losses", losses, "--seeds", "2", "--out", out, *SMALL])
    assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not out.exists()


def test_search_refuses_a_candidate_with_settings_of_its_own(tmp_path):
    r = invoke(["compare", "--losses", "ns,ns[n_critic=2]", "--search", "1", "--seeds", "2",
                "--out", tmp_path / "s", *SMALL])
    assert r.code == 2 and "plain name 'ns'" in r.err, r.err
    assert not (tmp_path / "s").exists()


def test_train_applies_a_labels_settings(tmp_path):
    r = invoke(["train", "--loss", "ns[n_critic=2]", "--out", tmp_path, *SMALL[:-3], "--quiet"])
    assert r.code == 0, r.err
    (rd,) = [p for p in Path(tmp_path).iterdir() if p.is_dir()]
    res = json.loads((rd / "result.json").read_text())
    assert res["d_updates"] == 2 * res["g_updates"] == 80
