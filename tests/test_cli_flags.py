"""Every flag of every command, driven through ``losslab.cli.main``, its effect asserted where it lands.

One table per command maps each flag to a check of what it changed: the
run's config.json, the comparison's files, stdout / stderr, the exit code.
``test_every_flag_has_a_check`` compares each table with the parser, so a new
flag without a check fails, and a check whose flag is parsed but not passed
on fails its own case. The expensive invocations (a comparison, a training
run, a feature network) run once per module and every check reads them.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from losslab import rundir
from losslab.backends import local as local_backend
from losslab.backends import ray as ray_backend
from losslab.cli import build_parser, main
from losslab.losses import REGISTRIES
from losslab.metrics import features as features_mod


def invoke(argv: list[str]) -> SimpleNamespace:
    """``losslab ARGV`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
    return SimpleNamespace(code=code, out=out.getvalue(), err=err.getvalue())


def flags_of(command: str) -> set[str]:
    """The options (longest spelling) and positionals of ``losslab COMMAND``, as the parser has them."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {max(a.option_strings, key=len) if a.option_strings else a.dest
            for a in sub.choices[command]._actions if not isinstance(a, argparse._HelpAction)}


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def corrupt_mnist_dir(root: Path) -> Path:
    """A --data-dir whose MNIST files are garbage: loading from it fails naming this folder."""
    bad = root / "corrupt-idx"
    (bad / "mnist").mkdir(parents=True, exist_ok=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (bad / "mnist" / f"{name}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    return bad


def one_line_error(res, *fragments: str) -> None:
    assert res.code == 2, res
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err, res.err
    for f in fragments:
        assert f in res.err, res.err


# --------------------------------------------------------------------------------------------- compare

COMPARE_TOML = "[train]\ncurve_n = 32\ncurve_points = 2\n"


def _compare_argv(root: Path, out: Path, *, quiet: bool) -> list[str]:
    return ["compare", "--data", "grid25", "--losses", "hinge", "--family", "gan", "--seeds", "1",
            "--steps", "6", "--out", out, "--set", "train.n_eval=64", "--config", root / "c.toml",
            "--data-dir", root / "nowhere", "--device", "cpu", "--no-batch-seeds", "--workers", "3",
            "--metric", "modes_covered", "--seed-start", "2", "--search", "1", "--backend", "ray",
            "--address", "fake-head:6379"] + (["--quiet"] if quiet else [])


@contextlib.contextmanager
def fake_ray(calls: list[dict]):
    """The Ray backend replaced by the local one, recording what the CLI asked of Ray (no Ray starts)."""
    def run_jobs(job_fn, jobs, *, workers, advance, **kwargs):
        calls.append({"workers": workers, **kwargs})
        return local_backend.run_jobs(job_fn, jobs, workers=1, advance=advance)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray_backend, "import_ray", lambda: None)
        mp.setattr(ray_backend, "run_jobs", run_jobs)
        yield


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One tiny comparison with every flag that can go with the others (hinge, 1 seed, 6 updates)."""
    root = tmp_path_factory.mktemp("compare-flags")
    (root / "c.toml").write_text(COMPARE_TOML)
    calls: list[dict] = []
    torch_threads = torch.get_num_threads()
    with fake_ray(calls):
        res = invoke(_compare_argv(root, root / "out", quiet=True))
    torch.set_num_threads(torch_threads)
    assert res.code == 0, res.err
    out = root / "out"
    run = out / "runs" / "hinge" / "seed2"
    return SimpleNamespace(root=root, out=out, res=res, calls=calls, run=run,
                           config=read_json(run / rundir.CONFIG), result=read_json(run / rundir.RESULT),
                           results=read_json(out / rundir.RESULTS))


def _compare_quiet(c, tmp_path, _mp):
    # The same comparison again without --quiet (a copy: every run is finished, so only the verdict reruns).
    copy = tmp_path / "out"
    shutil.copytree(c.out, copy)
    with fake_ray([]):
        loud = invoke(_compare_argv(c.root, copy, quiet=False))
    assert loud.code == 0, loud.err
    assert len(c.res.out.strip().splitlines()) == 1 and c.res.out.startswith("report: ")
    assert "verdict:" in loud.out and "recommendation: hinge" in loud.out


def _compare_dry_run(c, tmp_path, _mp):
    res = invoke(["compare", "--losses", "ns,hinge", "--seeds", "2", "--out", tmp_path / "o", "--dry-run"])
    assert res.code == 0, res.err
    plan = json.loads(res.out)
    assert plan["losses"] == ["ns", "hinge"] and len(plan["jobs"]) == 4
    assert not (tmp_path / "o").exists()


def _compare_family(c, tmp_path, _mp):
    res = invoke(["compare", "--family", "ebm", "--out", tmp_path / "o", "--dry-run"])
    assert res.code == 0, res.err
    assert json.loads(res.out)["losses"] == list(REGISTRIES["ebm"])
    wrong = invoke(["compare", "--family", "ebm", "--losses", "ns", "--out", tmp_path / "o"])
    one_line_error(wrong, "belongs to the gan family, not ebm")
    assert not (tmp_path / "o").exists()
    assert "ebm" in build_parser()._subparsers._group_actions[0].choices["compare"].format_help()


def _compare_budget_seconds(c, tmp_path, _mp):
    res = invoke(["compare", "--losses", "ns", "--budget-seconds", "2.5", "--out", tmp_path / "o", "--dry-run"])
    assert res.code == 0, res.err
    assert json.loads(res.out)["config"]["train"]["budget_seconds"] == 2.5


def _compare_device(c, tmp_path, monkeypatch):
    assert c.config["train"]["device"] == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for device, fragment in (("cuda", "no CUDA GPU"), ("cuda:3", "no CUDA GPU"), ("tpu:7", "must be one of")):
        res = invoke(["compare", "--losses", "ns", "--seeds", "1", "--steps", "2", "--device", device,
                      "--out", tmp_path / "o"])
        one_line_error(res, f"train.device = {device!r}", fragment)
        assert not (tmp_path / "o").exists()


def _compare_equivalence(c, tmp_path, _mp):
    res = invoke(["compare", "--losses", "ns,hinge", "--equivalence", "0.5", "--out", tmp_path / "o", "--dry-run"])
    assert res.code == 0, res.err
    race = json.loads(res.out)["race"]
    assert race["delta"] == 0.5 and race["looks"] == [5, 8, 11]
    assert c.results["race"]["limits"]["delta"] is None  # not given: the noise floor decides the margin


def _compare_redo_changed(c, tmp_path, _mp):
    copy = tmp_path / "out"
    shutil.copytree(c.out, copy)
    argv = [str(a) for a in _compare_argv(c.root, copy, quiet=True)]
    argv[argv.index("--steps") + 1] = "7"  # the same comparison with another budget
    with fake_ray([]):
        refused = invoke(argv)
    one_line_error(refused, "--redo-changed")
    assert read_json(copy / "runs" / "hinge" / "seed2" / rundir.RESULT)["g_updates"] == 6
    with fake_ray([]):
        redone = invoke([*argv, "--redo-changed"])
    assert redone.code == 0, redone.err
    assert read_json(copy / "runs" / "hinge" / "seed2" / rundir.RESULT)["g_updates"] == 7, (redone.err, redone.out)


COMPARE_CHECKS = {
    "--equivalence": _compare_equivalence,
    "--redo-changed": _compare_redo_changed,
    "--data": lambda c, t, m: c.config["data"]["name"] == "grid25" == c.results["dataset"]["name"],
    # only hinge trained: at its defaults and (after --search 1) its trial's setting, hinge[...]
    "--losses": lambda c, t, m: {p.name.split("[")[0] for p in (c.out / "runs").iterdir()} == {"hinge"},
    "--seeds": lambda c, t, m: [p.name for p in (c.out / "runs" / "hinge").iterdir()] == ["seed2"],
    "--steps": lambda c, t, m: c.config["train"]["steps"] == 6 and c.result["g_updates"] == 6,
    "--set": lambda c, t, m: c.config["train"]["n_eval"] == 64 and c.result["metrics"]["n_eval"] == 64,
    "--config": lambda c, t, m: c.config["train"]["curve_n"] == 32 and len(c.result["curve"]) == 2,
    "--data-dir": lambda c, t, m: c.config["data"]["data_dir"] == str(c.root / "nowhere"),
    "--device": _compare_device,
    "--no-batch-seeds": lambda c, t, m: c.config["train"]["batch_seeds"] is False,
    "--out": lambda c, t, m: (c.out / rundir.RESULTS).is_file() and (c.out / "report.html").is_file(),
    "--family": _compare_family,
    "--workers": lambda c, t, m: {call["workers"] for call in c.calls} == {3},
    "--backend": lambda c, t, m: len(c.calls) == 2,  # the search round and the final runs, both on "Ray"
    "--address": lambda c, t, m: {call["address"] for call in c.calls} == {"fake-head:6379"},
    "--metric": lambda c, t, m: c.results["primary_metric"]["name"] == "modes_covered",
    "--seed-start": lambda c, t, m: c.result["seed"] == 2 and c.config["run"]["seed"] == 2,
    "--budget-seconds": _compare_budget_seconds,
    "--search": lambda c, t, m: [[bool(x.get("defaults")) for x in v["trials"]] for v in read_json(
        c.out / "search" / "search.json")["losses"].values()] == [[True, False]]  # trial 0: defaults, then 1
        # then both settings race as candidates: the defaults (plain name) and the trial's hinge[...]
        and sorted(read_json(c.out / "compare.json")["candidates"], key=len)[0] == "hinge"
        and len(read_json(c.out / "compare.json")["candidates"]) == 2,
    "--quiet": _compare_quiet,
    "--dry-run": _compare_dry_run,
}


@pytest.mark.parametrize("flag", sorted(COMPARE_CHECKS))
def test_compare_flag(flag, compared, tmp_path, monkeypatch):
    assert COMPARE_CHECKS[flag](compared, tmp_path, monkeypatch) is not False


# --------------------------------------------------------------------------------------------- train

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``losslab train`` with every flag but --dry-run, and a plain run without --quiet (ring8, ns)."""
    root = tmp_path_factory.mktemp("train-flags")
    (root / "t.toml").write_text("[train]\ncurve_points = 1\n")
    threads = torch.get_num_threads()
    res = invoke(["train", "--data", "grid25", "--loss", "hinge", "--seed", "3", "--steps", "4", "--out", root / "T",
                  "--set", "train.n_eval=64", "--config", root / "t.toml", "--data-dir", root / "nowhere",
                  "--device", "cpu", "--no-batch-seeds", "--quiet"])
    loud = invoke(["train", "--loss", "ns", "--steps", "3", "--out", root / "L", "--set", "train.n_eval=80"])
    torch.set_num_threads(threads)
    assert res.code == 0 and loud.code == 0, res.err + loud.err
    (run,) = (root / "T").iterdir()
    (loud_run,) = (root / "L").iterdir()
    return SimpleNamespace(root=root, res=res, loud=loud, run=run, loud_run=loud_run,
                           config=read_json(run / rundir.CONFIG), result=read_json(run / rundir.RESULT))


def _train_dry_run(t, tmp_path, _mp):
    res = invoke(["train", "--loss", "ns", "--steps", "7", "--out", tmp_path / "o", "--dry-run"])
    assert res.code == 0 and json.loads(res.out)["train"]["steps"] == 7
    assert not (tmp_path / "o").exists()


def _train_device(t, tmp_path, monkeypatch):
    assert t.config["train"]["device"] == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    res = invoke(["train", "--loss", "ns", "--device", "cuda", "--out", tmp_path / "o"])
    one_line_error(res, "train.device = 'cuda'", "no CUDA GPU")
    assert not (tmp_path / "o").exists()


TRAIN_CHECKS = {
    "--data": lambda t, p, m: t.config["run"]["data"] == "grid25" and t.run.name == "001-hinge-grid25",
    "--loss": lambda t, p, m: t.config["run"]["loss"] == "hinge" == t.result["loss"],
    "--seed": lambda t, p, m: t.config["run"]["seed"] == 3 == t.result["seed"],
    "--steps": lambda t, p, m: t.config["train"]["steps"] == 4 == t.result["g_updates"],
    "--out": lambda t, p, m: t.run.parent == t.root / "T" and (t.run / rundir.RESULT).is_file(),
    "--set": lambda t, p, m: t.config["train"]["n_eval"] == 64 == t.result["metrics"]["n_eval"],
    "--config": lambda t, p, m: t.config["train"]["curve_points"] == 1 and len(t.result["curve"]) == 1,
    "--data-dir": lambda t, p, m: t.config["data"]["data_dir"] == str(t.root / "nowhere"),
    "--device": _train_device,
    "--no-batch-seeds": lambda t, p, m: t.config["train"]["batch_seeds"] is False,
    "--quiet": lambda t, p, m: "hinge on grid25" not in t.res.out and "ns on ring8" in t.loud.out,
    "--dry-run": _train_dry_run,
}


@pytest.mark.parametrize("flag", sorted(TRAIN_CHECKS))
def test_train_flag(flag, trained, tmp_path, monkeypatch):
    assert TRAIN_CHECKS[flag](trained, tmp_path, monkeypatch) is not False


# --------------------------------------------------------------------------------------------- features, eval

CHEAP_FEATURES = {"epochs": 1, "ssl_steps": 2, "max_train": 256}
"""A feature network trained in about a second (its cache key records these settings)."""


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture
def cheap_features(feature_cache, monkeypatch):
    """The digits feature network, trained cheaply once into this module's own cache."""
    monkeypatch.setattr(features_mod.get_feature_net, "__kwdefaults__",
                        {**features_mod.get_feature_net.__kwdefaults__, **CHEAP_FEATURES})
    monkeypatch.setenv("LOSSLAB_CACHE", str(feature_cache))
    if not hasattr(cheap_features, "trained"):
        cheap_features.trained = invoke(["features", "train", "--data", "digits"])  # loud: epochs on stderr
    return cheap_features.trained


def _features_quiet(loud, tmp_path, monkeypatch):
    monkeypatch.setenv("LOSSLAB_CACHE", str(tmp_path))  # a fresh cache: it trains again, silently
    quiet = invoke(["features", "train", "--data", "digits", "--quiet"])
    assert quiet.code == 0 and "epoch" not in quiet.err and "epoch" in loud.err


def _features_data_dir(loud, tmp_path, _mp):
    bad = corrupt_mnist_dir(tmp_path)
    one_line_error(invoke(["features", "train", "--data", "mnist", "--data-dir", bad]), str(bad))


FEATURES_CHECKS = {
    "action": lambda f, p, m: f.code == 0 and "weights: " in f.out and Path(
        f.out.split("weights: ")[1].split()[0]).is_file(),
    "--data": lambda f, p, m: f.out.startswith("classifier-digits-"),
    "--data-dir": _features_data_dir,
    "--quiet": _features_quiet,
}


@pytest.mark.parametrize("flag", sorted(FEATURES_CHECKS))
def test_features_flag(flag, cheap_features, tmp_path, monkeypatch):
    assert FEATURES_CHECKS[flag](cheap_features, tmp_path, monkeypatch) is not False


@pytest.fixture
def digit_samples(tmp_path, cheap_features):
    from losslab.data import load_dataset

    x = load_dataset("digits").test[:120]  # (N, 1, 8, 8) in [-1, 1]
    path = tmp_path / "gen.npz"
    np.savez(path, images=((x[:, 0].numpy() + 1) * 127.5).round().astype(np.uint8))
    return path


def _eval_run_dir(t, tmp_path, _mp, samples):
    res = invoke(["eval", t.loud_run])
    assert res.code == 0 and res.out.startswith("data ring8") and "generated 80" in res.out
    w1 = float(next(ln.split()[1] for ln in res.out.splitlines() if ln.startswith("w1 ")))
    np.testing.assert_allclose(w1, read_json(t.loud_run / rundir.RESULT)["metrics"]["w1"], rtol=1e-5)


def _eval_n_out(t, tmp_path, _mp, samples):
    res = invoke(["eval", t.loud_run, "--n", "50", "--out", tmp_path / "m.json"])
    assert res.code == 0 and f"written: {tmp_path / 'm.json'}" in res.out
    assert read_json(tmp_path / "m.json")["n_eval"] == 50 == read_json(tmp_path / "m.json")["metrics"]["n_eval"]


def _eval_features(t, tmp_path, _mp, samples):
    one_line_error(invoke(["eval", t.loud_run, "--features", "inception"]), "--features inception", "vector")


def _eval_samples(t, tmp_path, _mp, samples):
    res = invoke(["eval", "--samples", samples, "--data", "digits", "--n", "100", "--out", tmp_path / "s.json"])
    assert res.code == 0, res.err
    got = read_json(tmp_path / "s.json")
    assert got["data"] == "digits" and got["samples"] == str(samples) and got["n_eval"] == 100
    assert "fid" in got["metrics"] and "feature_w1" not in got["metrics"]


def _eval_full(t, tmp_path, _mp, samples):
    res = invoke(["eval", "--samples", samples, "--data", "digits", "--n", "100", "--full",
                  "--out", tmp_path / "f.json"])
    assert res.code == 0, res.err
    assert np.isfinite(read_json(tmp_path / "f.json")["metrics"]["feature_w1"])


def _eval_data_dir(t, tmp_path, _mp, samples):
    bad = corrupt_mnist_dir(tmp_path)
    one_line_error(invoke(["eval", "--samples", samples, "--data", "mnist", "--data-dir", bad]), str(bad))


EVAL_CHECKS = {
    "run_dir": _eval_run_dir,
    "--n": _eval_n_out,
    "--out": _eval_n_out,
    "--features": _eval_features,
    "--samples": _eval_samples,
    "--data": _eval_samples,
    "--full": _eval_full,
    "--data-dir": _eval_data_dir,
}


@pytest.mark.parametrize("flag", sorted(EVAL_CHECKS))
def test_eval_flag(flag, trained, digit_samples, tmp_path, monkeypatch):
    assert EVAL_CHECKS[flag](trained, tmp_path, monkeypatch, digit_samples) is not False


# --------------------------------------------------------------------------------------------- report, list, explain, profile

def test_report_flag_out_rebuilds_results_and_report(compared, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(compared.out, copy)
    for name in (rundir.RESULTS, "report.md", "report.html"):
        (copy / name).unlink()
    res = invoke(["report", copy])
    assert res.code == 0 and res.out.startswith(f"report: {copy / 'report.html'}")
    assert read_json(copy / rundir.RESULTS)["ranking"][0]["loss"].split("[")[0] == "hinge"
    assert "hinge" in (copy / "report.md").read_text()


@pytest.mark.parametrize("what, first", [("losses", "# gan"), ("data", "gaussian1d"), ("metrics", "w1")])
def test_list_flag_what(what, first):
    res = invoke(["list", what])
    assert res.code == 0 and res.out.startswith(first)
    if what == "losses":
        assert [ln.split()[1] for ln in res.out.splitlines() if ln.startswith("# ")] == [*REGISTRIES,
                                                                                        "classification"]


def test_explain_flags_name_and_plot(tmp_path):
    res = invoke(["explain", "hinge", "--plot", tmp_path / "h.png"])
    assert res.code == 0 and "hinge" in res.out.lower()
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = invoke(["explain", "ddpm"])
    assert other.code == 0 and other.out != res.out


def test_profile_flags(tmp_path):
    res = invoke(["profile", "grid25", "--seed", "3", "--max-samples", "150", "--out", tmp_path / "p.json",
                  "--quiet"])
    assert res.code == 0 and res.out == f"written: {tmp_path / 'p.json'}\n"
    prof = read_json(tmp_path / "p.json")
    assert prof["name"] == "grid25" and prof["seed"] == 3 and prof["n_used"] == 150
    loud = invoke(["profile", "grid25", "--max-samples", "150"])
    assert loud.code == 0 and "grid25" in loud.out and len(loud.out.splitlines()) > 3
    bad = corrupt_mnist_dir(tmp_path)
    one_line_error(invoke(["profile", "mnist", "--data-dir", bad]), str(bad))


SINGLE_TESTS = {
    "report": {"out"},
    "list": {"what"},
    "explain": {"name", "--plot"},
    "profile": {"data", "--seed", "--max-samples", "--out", "--quiet", "--data-dir"},
}


@pytest.mark.parametrize("command, checked", [
    ("compare", set(COMPARE_CHECKS)), ("train", set(TRAIN_CHECKS)), ("eval", set(EVAL_CHECKS)),
    ("features", set(FEATURES_CHECKS)), *SINGLE_TESTS.items()])
def test_every_flag_has_a_check(command, checked):
    assert flags_of(command) == checked
