"""Equal-budget tuning (``compare --search``): search spaces, trials as jobs, the tuned final ranking, resume."""

from __future__ import annotations

import json
import math

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from losslab import compare as cmp
from losslab import config as C
from losslab import rundir, search
from losslab.config import DOMAINS, LossConfig
from losslab.errors import UserError
from losslab.losses import REGISTRIES

_FIELDS = {f for f in LossConfig.__dataclass_fields__}


def test_every_loss_declares_a_search_space_inside_the_config_domains():
    for registry in REGISTRIES.values():
        for name, spec in registry.items():
            space = search.search_space(name)
            assert "lr" in space, name
            for key, (kind, lo, hi) in space.items():
                assert kind in ("log", "float", "int") and lo < hi, (name, key)
                fields = ["lr_g", "lr_d"] if key == "lr" else [key]
                for f in fields:
                    assert f in _FIELDS, (name, key)
                    for v in (lo, hi):  # both bounds are values the config accepts
                        C.check_value(f"loss.{f}", int(v) if kind == "int" else float(v))
                    assert DOMAINS[f"loss.{f}"].kind == ("int" if kind == "int" else "float")
                if kind == "log":
                    assert lo > 0


def test_distributions_and_overrides():
    d = search.distributions({"lr": ("log", 1e-5, 1e-2), "beta1": ("float", 0.0, 0.9), "n_critic": ("int", 1, 5)})
    assert d["lr"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert d["beta1"] == FloatDistribution(0.0, 0.9) and d["n_critic"] == IntDistribution(1, 5)
    with pytest.raises(ValueError):
        search.distributions({"x": ("cubic", 0, 1)})
    assert search.to_overrides({"lr": 3e-4, "n_critic": 2}) == {
        "loss.lr_g": 3e-4, "loss.lr_d": 3e-4, "loss.n_critic": 2}
    cfg = cmp.with_overrides(C.Config(), {"loss.lr_g": 3e-4, "loss.n_critic": 2})
    assert cfg.loss.lr_g == 3e-4 and cfg.loss.n_critic == 2 and C.Config().loss.lr_g is None
    with pytest.raises(UserError, match="loss.n_critic"):
        cmp.with_overrides(C.Config(), {"loss.n_critic": 0})


def test_search_tunes_each_loss_equally_then_ranks_the_tuned_settings(tmp_path, single_thread):
    cfg = C.resolve("vector", sets=["train.steps=20", "train.batch_size=64", "train.log_every=5",
                                    "train.checkpoint_every=20", "train.n_eval=300", "train.curve_n=300",
                                    "train.curve_points=4", "model.hidden=32", "model.layers=2"])
    res = cmp.run_compare(cfg, losses=["ns", "hinge"], seeds=2, out=tmp_path, quiet=True, search_trials=3)
    s = res["search"]
    assert s["trials"] == 3 and s["metric"] == "w1" and s["higher_is_better"] is False
    for loss in ("ns", "hinge"):
        e = s["losses"][loss]
        assert [t["number"] for t in e["trials"]] == [0, 1, 2]
        assert [t["seed"] for t in e["trials"]] == [10_000, 10_001, 10_002]  # disjoint from the final seeds
        for t in e["trials"]:
            r = rundir.read_result(tmp_path / t["run_dir"])
            assert t["run_dir"].startswith(f"search/{loss}/trial") and r["seed"] == t["seed"]
            assert r["g_updates"] == 20  # the same budget as a final run
            if t["value"] is not None:
                assert t["value"] == r["metrics"]["w1"]
            lo, hi = search.search_space(loss)["lr"][1:]
            assert lo <= t["params"]["lr"] <= hi
        best = min((t for t in e["trials"] if t["value"] is not None), key=lambda t: t["value"])
        assert e["best_params"] == best["params"] and e["best_value"] == best["value"]
        # The final runs train seeds 0, 1 with the best setting, recorded in their config.json.
        for seed in (0, 1):
            c = json.loads((tmp_path / f"runs/{loss}/seed{seed}/config.json").read_text())
            assert math.isclose(c["loss"]["lr_g"], best["params"]["lr"]) and c["loss"]["lr_d"] == c["loss"]["lr_g"]
            assert c["loss"]["n_critic"] == best["params"]["n_critic"]
    assert {e["loss"] for e in res["ranking"]} == {"ns", "hinge"}
    assert all(e["n_ok"] == 2 for e in res["ranking"])
    # Resume: finished trials and runs are read back, not trained again.
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob(rundir.RESULT)}
    again = cmp.run_compare(cfg, losses=["ns", "hinge"], seeds=2, out=tmp_path, quiet=True, search_trials=3)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob(rundir.RESULT)} == stamp
    assert again["search"]["losses"] == s["losses"]
    with pytest.raises(UserError, match="--search"):
        cmp.run_compare(cfg, losses=["ns", "hinge"], seeds=2, out=tmp_path, quiet=True, search_trials=4)
