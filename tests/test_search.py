"""Equal-budget tuning (``compare --search``): search spaces, trials as jobs, the tuned final ranking, resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
from optuna.distributions import FloatDistribution, IntDistribution

from losslab import compare as cmp
from losslab import config as C
from losslab import rundir, search
from losslab.config import DOMAINS, LossConfig
from losslab.errors import UserError
from losslab.losses import GAN_LOSSES, REGISTRIES

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
    assert s["sampler"].startswith("random search") and s["n_startup_trials"] is None  # 3 <= ROUND: no model
    assert "validation" in s["scored_on"] and s["validation_seed"] == search.VALIDATION_SEED
    for loss in ("ns", "hinge"):
        e = s["losses"][loss]
        # trial 0: the loss's defaults; then the 3 drawn trials
        assert [t["number"] for t in e["trials"]] == [0, 1, 2, 3]
        assert [t["seed"] for t in e["trials"]] == [10_000, 10_001, 10_002, 10_003]  # disjoint from final seeds
        assert e["trials"][0]["defaults"] is True and e["trials"][0]["params"] == {}
        assert not any(t.get("defaults") for t in e["trials"][1:])
        for t in e["trials"]:
            r = rundir.read_result(tmp_path / t["run_dir"])
            assert t["run_dir"].startswith(f"search/{loss}/trial") and r["seed"] == t["seed"]
            assert r["g_updates"] == 20  # the same budget as a final run
            if t["value"] is not None:
                assert t["value"] == r["metrics"]["w1"]
            c = json.loads((tmp_path / t["run_dir"] / "config.json").read_text())
            if t.get("defaults"):  # no override: the loss's own rate x the preset's lr_scale 5, its own n_critic
                assert c["loss"]["lr_g"] is None and c["loss"]["n_critic"] is None
                assert math.isclose(t["setting"]["lr"], 5 * GAN_LOSSES[loss].defaults["lr_g"])
                assert t["setting"]["n_critic"] == GAN_LOSSES[loss].defaults["n_critic"] == r["hparams"]["n_critic"]
                continue
            # a drawn trial trained with its own parameters: its config.json records them
            assert c["loss"]["lr_g"] == c["loss"]["lr_d"] == t["params"]["lr"]
            assert c["loss"]["n_critic"] == t["params"]["n_critic"]
        best = min((t for t in e["trials"] if t["value"] is not None), key=lambda t: t["value"])
        assert e["best_params"] == best["params"] and e["best_value"] == best["value"]
        assert e["best_trial"] == best["number"]
        # The final seeds 0, 1 race the loss's two best settings on the validation split, each a candidate
        # named by its setting (the defaults by the plain name); its config.json records the setting.
        top = sorted((t for t in e["trials"] if t["value"] is not None), key=lambda t: (t["value"], t["number"]))[:2]
        names = [loss if t.get("defaults") else loss + "[" + ",".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(t["params"].items())) + "]"
            for t in top]
        assert [n for n in res["race"]["seeds_per_loss"] if n.split("[")[0] == loss] == names
        for name, t in zip(names, top):
            for seed in (0, 1):
                c = json.loads((tmp_path / f"runs/{name}/seed{seed}/config.json").read_text())
                assert c["run"]["loss"] == name
                if t.get("defaults"):
                    assert c["loss"]["lr_g"] is None and c["loss"]["n_critic"] is None
                    continue
                assert math.isclose(c["loss"]["lr_g"], t["params"]["lr"], rel_tol=5e-4)  # 4 significant digits
                assert c["loss"]["lr_d"] == c["loss"]["lr_g"] and c["loss"]["n_critic"] == t["params"]["n_critic"]
    cands = json.loads((tmp_path / "compare.json").read_text())["candidates"]
    assert len(cands) == 4 and {e["loss"] for e in res["ranking"]} == set(cands)
    assert all(e["n_ok"] == 2 for e in res["ranking"])
    # Resume: finished trials and runs are read back, not trained again.
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob(rundir.RESULT)}
    again = cmp.run_compare(cfg, losses=["ns", "hinge"], seeds=2, out=tmp_path, quiet=True, search_trials=3)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob(rundir.RESULT)} == stamp
    assert again["search"]["losses"] == s["losses"]
    with pytest.raises(UserError, match="--search"):
        cmp.run_compare(cfg, losses=["ns", "hinge"], seeds=2, out=tmp_path, quiet=True, search_trials=4)


def test_the_sampler_start_up_fits_the_number_of_trials():
    for n, kind, startup in ((1, "RandomSampler", None), (4, "RandomSampler", None), (5, "TPESampler", 4),
                             (8, "TPESampler", 4), (12, "TPESampler", 6), (30, "TPESampler", 10)):
        sampler, name = search.sampler_for(n, 0)
        assert type(sampler).__name__ == kind, n
        if startup is None:
            assert name.startswith("random search"), n
        else:
            assert search.n_startup_trials(n) == startup and f"n_startup_trials={startup}" in name
            assert sampler._n_startup_trials == startup  # what TPE will actually do


def test_validation_data_holds_out_training_rows_and_never_the_test_rows():
    from losslab.data.dataset import Dataset

    train, test = torch.arange(100.0)[:, None], 1000.0 + torch.arange(30.0)[:, None]
    ds = Dataset(name="rows", kind="vector", shape=(1,), train=train, test=test,
                 train_labels=torch.arange(100) % 7, test_labels=torch.zeros(30, dtype=torch.long))
    val = search.validation_data(ds)
    assert len(val.test) == 20 and len(val.train) == 80  # 20% of the training rows (<= the 30 test rows)
    rows = torch.cat([val.train, val.test]).ravel().sort().values
    torch.testing.assert_close(rows, train.ravel())  # a partition of the training rows, no test row
    torch.testing.assert_close(val.test_labels, val.test.ravel().long() % 7)  # labels stay with their rows
    torch.testing.assert_close(val.train_labels, val.train.ravel().long() % 7)
    assert search.validation_data(ds) is val  # one copy per process


def test_search_trials_never_read_the_test_reference(tmp_path, monkeypatch, single_thread):
    """--search through the CLI with every reference draw instrumented: trials draw theirs with the validation
    seed from their validation data; the test reference (REFERENCE_SEED) is read only outside the search."""
    from losslab import cli
    from losslab.data.dataset import Dataset

    phase, calls = ["before"], []
    real_reference, real_search = Dataset.reference, search.run_search

    def reference(self, n, generator=None):
        seed = generator.initial_seed() if generator is not None else None
        calls.append((phase[0], seed, len(self.test)))
        return real_reference(self, n, generator)

    def run_search(*a, **k):
        phase[0] = "search"
        try:
            return real_search(*a, **k)
        finally:
            phase[0] = "final"

    monkeypatch.setattr(Dataset, "reference", reference)
    monkeypatch.setattr(search, "run_search", run_search)
    out = tmp_path / "s"
    cli.main(["compare", "--data", "ring8", "--losses", "ns,hinge", "--seeds", "1", "--steps", "10",
                     "--search", "2", "--workers", "1", "--quiet", "--out", str(out),
                     "--set", "train.n_eval=200", "--set", "train.curve_n=100", "--set", "train.curve_points=2",
                     "--set", "model.hidden=16", "--set", "model.layers=2"])  # a failure exits (SystemExit)
    trial = [c for c in calls if c[0] == "search"]
    final = [c for c in calls if c[0] == "final"]
    assert trial and final  # the instrument saw both phases
    assert rundir.REFERENCE_SEED not in {seed for _, seed, _ in trial}
    assert search.VALIDATION_SEED in {seed for _, seed, _ in trial}
    assert {size for _, _, size in trial} == {2000}  # the validation split (20% of 10,000), not the 10,000 test rows
    assert rundir.REFERENCE_SEED in {seed for _, seed, _ in final}
    res = json.loads((out / rundir.RESULTS).read_text())
    assert "validation" in res["search"]["scored_on"]
