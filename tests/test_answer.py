"""The report's opening answer (losslab.report.answer) on hand-made results: clear winner, no clear
winner, nothing learnable; and the aggregate writes it, with findings and effective hyperparameters."""

from __future__ import annotations

import re

import pytest
from test_verdict import write_comparison

from losslab import config as C
from losslab import io, rundir, verdict
from losslab.data import load_dataset
from losslab.losses import GAN_LOSSES
from losslab.report.answer import LEARNABLE_MARGIN, answer, learnable, loss_findings
from losslab.train.loop import resolved_hparams


def _entry(loss, values, ci=None):
    return {"loss": loss, "mean": sum(values) / len(values), "ci95": ci, "values": values,
            "seeds": list(range(len(values))), "n_ok": len(values), "n_runs": len(values)}


def _gan_results(verdict, group, pairwise, findings=None, *, race=None, equivalent=None):
    ranking = [_entry("wgan", [0.11, 0.12, 0.11], [0.10, 0.13]),
               _entry("minimax", [0.13, 0.14, 0.135], [0.12, 0.15]),
               _entry("wgan-gp", [0.11, 21.0, 0.13], [-20.0, 34.0])]
    runs = [{"loss": e["loss"], "seed": s, "status": "ok", "metrics": {"w1": v},
             "findings": (findings or {}).get(e["loss"], [])}
            for e in ranking for s, v in zip(e["seeds"], e["values"])]
    gone = {e["loss"]: 3 for e in ranking if e["loss"] not in group}
    race = race or {"limits": {"alpha": 0.05, "alpha_look": 0.05, "looks": [3]},
                    "looks": [{"n_seeds": 3}], "eliminated_at": gone,
                    "seeds_per_loss": {e["loss"]: 3 for e in ranking}}
    return {"dataset": {"name": "gaussian1d"}, "family": "gan",
            "primary_metric": {"name": "w1", "higher_is_better": False},
            "ranking": ranking, "runs": runs, "race": race,
            "recommendation": {"loss": "wgan", "verdict": verdict, "best_group": group, "pairwise": pairwise,
                               "equivalent": equivalent}}


PAIRS = [{"a": "wgan", "b": "minimax", "p_adjusted": 0.012},
         {"a": "wgan", "b": "wgan-gp", "p_adjusted": 0.4, "detectable": 0.031}]
KEPT = {"name": "gradient_kept", "severity": "info", "short": "its critic never won (d_acc 0.60)",
        "text": "the generator's gradient did not vanish: its critic never won (d_acc 0.60)"}
RACE = {"limits": {"alpha": 0.05, "alpha_look": 0.01, "looks": [3, 5, 7, 9, 11]},
        "looks": [{"n_seeds": n} for n in (3, 5, 7)], "eliminated_at": {"minimax": 3, "wgan-gp": 7},
        "seeds_per_loss": {"wgan": 7, "minimax": 3, "wgan-gp": 7}}


def test_a_race_at_its_cap_says_that_more_seeds_or_a_margin_is_a_new_race():
    """A race's looks spent its error rate for that schedule: compare refuses other limits in the same --out
    (tests/test_compare.py), so the answer must not tell the user to rerun it with more seeds."""
    race = {"limits": {"first": 3, "step": 2, "cap": 7, "alpha": 0.05, "alpha_look": 0.05 / 3,
                       "looks": [3, 5, 7]},
            "looks": [{"n_seeds": n} for n in (3, 5, 7)], "eliminated_at": {"minimax": 3},
            "seeds_per_loss": {"wgan": 7, "minimax": 3, "wgan-gp": 7}, "stopped": "seed cap"}
    text = answer(_gan_results("no clear winner", ["wgan", "wgan-gp"], PAIRS, race=race))
    assert text[0].endswith("What would decide it: the race reached its cap of 7 seeds; a new race in a new --out, "
                            "with an equivalence margin chosen before seeing these results (--equivalence DELTA), "
                            "or a fixed design of more seeds (--seeds 14).")


def test_clear_winner_names_it_with_its_interval_when_it_was_decided_and_the_tests_used():
    res = _gan_results("clear winner", ["wgan"], [], race=RACE)
    text = answer(res)
    assert len(text) == 3  # no findings, no profile: the verdict, how sure, the outlier seed of wgan-gp
    assert text[0].startswith("wgan is the clear winner on gaussian1d, decided after 7 seeds (shown worse: "
                              "minimax after 3, wgan-gp after 7): w1 0.113 [0.1, 0.13]")
    assert text[1] == ("How sure: a race on paired seeds, 3-7 seeds per loss (a loss shown worse got no more); "
                       "Friedman's test, then Nemenyi's all-pairs comparison of mean ranks within seeds "
                       "(Demsar 2006), repeated on the losses left until none more is shown worse (step-down), "
                       "at 0.01 per look over 5 looks, so the chance of calling any loss worse when "
                       "all are alike is at most 0.05; a diverged run counts as the worst rank.")
    assert "paired t" not in " ".join(text) and "Holm" not in " ".join(text)


def test_not_separated_is_said_with_the_detectable_difference_never_within_noise():
    # a finding twice in one run counts once
    res = _gan_results("no clear winner", ["wgan", "wgan-gp"], PAIRS, findings={"minimax": [KEPT, KEPT]})
    text = answer(res)
    assert len(text) == 4
    assert text[0].startswith("No winner on gaussian1d: wgan and wgan-gp not separated by w1 after 3 seeds "
                              "(shown worse: minimax after 3) (a difference of 0.031 or more would have been "
                              "found with 80% probability); best so far wgan 0.113 [0.1, 0.13]")
    assert "minimax shown worse" in text[0]
    # a fixed design grows in place (tests/test_compare.py checks that the rerun keeps the runs)
    assert text[0].endswith("What would decide it: more seeds (rerun with --seeds 6: the runs done are kept) or an "
                            "equivalence margin (--equivalence DELTA).")
    assert "within noise" not in " ".join(text) and "equivalent" not in text[0]
    assert text[1].startswith("How sure: a fixed design, 3 seeds per loss;")
    why = next(s for s in text if s.startswith("Why:"))
    assert "minimax: its critic never won (d_acc 0.60) (3/3 seeds)" in why
    # wgan-gp's 21.0 is one seed: the answer says so rather than leaving a reader to find it in columns
    assert any("One seed drives wgan-gp's mean (seed 1: 21 against 0.12" in s for s in text)


def test_equivalent_only_with_a_tost_margin():
    eq = {"delta": 0.05, "source": "the metric's noise floor", "p_max": 0.003}
    text = answer(_gan_results("equivalent", ["wgan", "wgan-gp"], PAIRS, equivalent=eq))
    assert text[0].startswith("wgan and wgan-gp are equivalent on gaussian1d within +-0.05 w1 (paired TOST on "
                              "every pair, largest p 0.003; margin: the metric's noise floor), decided after 3 seeds")


def test_printed_interval_is_clipped_to_the_metric_domain():
    res = _gan_results("no clear winner", ["wgan", "wgan-gp"], PAIRS)
    res["ranking"][0]["ci95"] = [-0.2, 0.4]  # W1 cannot be negative
    assert "best so far wgan 0.113 [0, 0.4]" in answer(res)[0]


def _contrastive(gains, chance=0.0955):
    runs = []
    for loss, g in gains.items():
        for seed, jitter in enumerate((-0.002, 0.0, 0.002)):
            runs.append({"loss": loss, "seed": seed, "status": "ok",
                         "metrics": {"linear_probe": chance + g + jitter, "chance": chance,
                                     "linear_probe_random_encoder": chance - 0.001}})
    ranking = sorted(({**_entry(loss, [r["metrics"]["linear_probe"] for r in runs if r["loss"] == loss])}
                      for loss in gains), key=lambda e: -e["mean"])
    return {"dataset": {"name": "random"}, "family": "contrastive",
            "primary_metric": {"name": "linear_probe", "higher_is_better": True}, "ranking": ranking,
            "runs": runs, "recommendation": {"loss": ranking[0]["loss"], "verdict": "clear winner",
                                             "best_group": [ranking[0]["loss"]], "pairwise": []}}


def test_nothing_learnable_on_random_data_with_chance_and_the_study_figure():
    res = _contrastive({"supcon": 0.0105, "nt-xent": 0.004, "triplet": -0.002})
    text = answer(res)
    assert text[0].startswith("Nothing learnable: no loss beats its baselines on random")
    assert "chance level of 9.6%" in text[0] and "supcon" in text[0]
    assert "winner" not in " ".join(text)
    assert "12.5% is chance for 8 balanced classes (1/8)" in text[1]
    info = learnable(res)
    assert info["any"] is False and info["chance"] == pytest.approx(0.0955)
    assert info["gains"]["supcon"] == pytest.approx(0.0105, abs=1e-12)  # over chance, the larger baseline


def test_a_loss_that_beats_the_baselines_is_a_winner_not_nothing_learnable():
    res = _contrastive({"supcon": 0.30, "triplet": 0.01})
    info = learnable(res)
    assert info["any"] is True and info["learned"] == ["supcon"]
    assert LEARNABLE_MARGIN < 0.30
    text = answer(res)
    assert text[0].startswith("supcon is the clear winner on random")
    assert any("supcon beat chance (9.6%)" in s for s in text)


def test_learnable_judges_the_linear_probe_when_the_ranked_metric_is_not_an_accuracy():
    """--metric uniformity (lower is better, no chance level): a probe of 0.9 against 0.3 for a random encoder
    has learned; the uniformity values themselves (about -3) are never compared with a chance accuracy."""
    runs = [{"loss": loss, "seed": s, "status": "ok",
             "metrics": {"uniformity": -3.0 - 0.1 * s, "linear_probe": probe + 0.01 * s, "chance": 0.1,
                         "linear_probe_random_encoder": 0.3}}
            for loss, probe in (("supcon", 0.9), ("nt-xent", 0.305)) for s in range(3)]
    ranking = [_entry(loss, [r["metrics"]["uniformity"] for r in runs if r["loss"] == loss])
               for loss in ("supcon", "nt-xent")]
    res = {"dataset": {"name": "mnist"}, "family": "contrastive",
           "primary_metric": {"name": "uniformity", "higher_is_better": False}, "ranking": ranking, "runs": runs,
           "recommendation": {"loss": "supcon", "verdict": "no clear winner", "best_group": ["supcon", "nt-xent"],
                              "pairwise": []}}
    info = learnable(res)
    assert info["metric"] == "linear_probe" and info["any"] is True and info["learned"] == ["supcon"]
    assert info["gains"]["supcon"] == pytest.approx(0.9 + 0.01 - 0.3, abs=1e-12)
    assert info["gains"]["nt-xent"] == pytest.approx(0.305 + 0.01 - 0.3, abs=1e-12)  # within the 2-point margin
    assert not answer(res)[0].startswith("Nothing learnable")
    # and with nothing learned, the sentence quotes the probe's accuracy, not the uniformity
    for r in runs:
        r["metrics"]["linear_probe"] = 0.3
    text = answer(res)
    assert text[0].startswith("Nothing learnable") and "reaches linear_probe 30.0%" in text[0]


def test_loss_findings_merge_seeds_and_list_every_seeds_mode_count():
    mc = [{"name": "mode_collapse", "text": f"mode collapse: modes covered {k}/8", "values": {"covered": k,
                                                                                            "total": 8}}
          for k in (6, 7)]
    res = {"runs": [{"loss": "ns", "status": "ok", "findings": [mc[0], KEPT]},
                    {"loss": "ns", "status": "ok", "findings": [mc[1]]},
                    {"loss": "ns", "status": "ok", "findings": []}]}
    found = loss_findings(res, "ns")
    assert [f["name"] for f in found] == ["mode_collapse", "gradient_kept"]  # failures first
    assert found[0]["text"] == "mode collapse: modes covered 6/8, 7/8" and found[0]["seeds"] == 2
    assert found[0]["n_runs"] == 3 and found[1]["seeds"] == 1


def test_no_finished_loss_gives_a_no_answer_line():
    text = answer({"ranking": [], "runs": [], "recommendation": {}, "dataset": {"name": "ring8"}})
    assert len(text) == 1 and re.match(r"No answer: no loss finished", text[0])


def test_aggregate_writes_the_answer_findings_and_effective_hyperparameters(tmp_path):
    """verdict.aggregate -> results.json: ``answer`` sentences, each run's ``findings`` from its curves, and
    ``hparams`` as the runs recorded them in result.json (the family's resolution: lr_scale and --set applied)."""
    def rows(loss, seed):  # fakes' energy above the margin (2.0) on 90% of the logged steps
        return [{"step": i, "d_fake": 2.5 if i >= 10 else 1.0, "d_real": 0.3, "g_grad_norm": 1.0, "d_acc": 0.6}
                for i in range(100)]

    runs = [{"loss": loss, "seed": s, "status": "ok", "metrics": {"w1": 0.1 + 0.1 * s + (loss == "ns") * (1 + 0.05 * s),
                                                                  "modes_covered": 5 if loss == "ebgan" else 8,
                                                                  "num_modes": 8}}
            for loss in ("ebgan", "ns") for s in (0, 1)]  # ebgan misses modes: the margin finding applies
    cfg = C.Config()
    cfg.loss.margin, cfg.loss.lr_scale = 2.0, 5.0
    ring8 = load_dataset("ring8")
    for r in runs:
        r["hparams"] = resolved_hparams(cfg, ring8, "gan", r["loss"])  # what train_run writes into result.json
    write_comparison(tmp_path, runs, family="gan", data="ring8", kind="vector", shape=[2], rows=rows)
    res = verdict.aggregate(tmp_path)
    on_disk = rundir.read_json_file(tmp_path / rundir.RESULTS)
    assert on_disk["answer"] == res["answer"] and 2 <= len(res["answer"]) <= 4
    ebgan = [r for r in res["runs"] if r["loss"] == "ebgan"]
    assert all([f["name"] for f in r["findings"]] == ["above_margin", "mode_collapse"] for r in ebgan)
    assert ebgan[0]["findings"][0]["values"] == {"share": 0.9, "margin": 2.0}
    assert res["hparams"]["ebgan"]["margin"] == 2.0 and res["hparams"]["ebgan"]["lr_scale"] == 5.0
    defaults = GAN_LOSSES["ns"].defaults
    assert res["hparams"]["ns"]["lr_g"] == pytest.approx(5.0 * defaults["lr_g"])
    assert "margin" not in res["hparams"]["ns"]
    assert any("fakes stayed above the margin m = 2" in s for s in res["answer"])


def test_losses_left_together_are_told_apart_or_not_by_the_classes_or_modes_they_cover():
    from losslab.report.answer import coverage_clause

    def res(counts, key="classes_covered", total_key="num_classes", total=10):
        runs = [{"loss": loss, "seed": s, "status": "ok", "metrics": {key: c, total_key: total}}
                for loss, cs in counts.items() for s, c in enumerate(cs)]
        runs.append({"loss": "a", "seed": 9, "status": "diverged", "metrics": {}})  # not counted
        return {"runs": runs}

    assert coverage_clause(res({"a": [10, 10], "b": [10, 10, 10]}), ["a", "b"]) == (
        "Classes covered: 10 of 10 on every seed of a and b")
    assert coverage_clause(res({"a": [8, 7, 8], "b": [6, 8]}, "modes_covered", "num_modes", 8), ["a", "b"]) == (
        "Modes covered of 8: a 8 on 2 of 3 seeds (7-8), b 8 on 1 of 2 seeds (6-8)")
    assert coverage_clause(res({"a": [8], "b": [8]}), ["a", "c"]) is None  # c has no run with it
    assert coverage_clause({"runs": [{"loss": "a", "status": "ok", "metrics": {"w1": 0.2}}]}, ["a"]) is None
