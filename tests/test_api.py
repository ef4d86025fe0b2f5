"""The public Python API validates like the CLI and runs the same comparison."""

from __future__ import annotations

import subprocess
import sys

import pytest

import losslab
from losslab import api, rundir
from losslab.errors import UserError


@pytest.mark.parametrize("kwargs, cli", [
    (dict(losses="ddpm", sets={"loss.n_critic": 3}), ["--losses", "ddpm", "--set", "loss.n_critic=3"]),
    (dict(losses="xyz"), ["--losses", "xyz"]),
    (dict(losses="ns", sets=["loss.lr_d=inf"]), ["--losses", "ns", "--set", "loss.lr_d=inf"]),
    (dict(losses="ns", seeds=0), ["--losses", "ns", "--seeds", "0"]),
    (dict(losses="ns", metric="foo"), ["--losses", "ns", "--metric", "foo"]),
])
def test_api_refuses_what_the_cli_refuses_with_the_same_line(tmp_path, kwargs, cli):
    with pytest.raises(UserError) as e:
        api.compare("ring8", out=tmp_path / "api", steps=5, **{"seeds": 1, **kwargs})
    p = subprocess.run([sys.executable, "-m", "losslab", "compare", "--steps", "5", "--seeds", "1", *cli,
                        "--out", str(tmp_path / "cli")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == f"losslab: error: {e.value}"
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()


def test_compare_results_and_evaluate_from_python(tmp_path):
    out = tmp_path / "c"
    res = api.compare("ring8", losses=["ns", "lsgan"], seeds=1, steps=30, out=out, workers=1,
                      sets={"train.n_eval": 300, "train.log_every": 10})
    assert [e["loss"] for e in res["ranking"]] and {e["loss"] for e in res["ranking"]} == {"ns", "lsgan"}
    assert res["recommendation"]["verdict"] in ("clear winner", "no clear winner", "undertrained")
    assert (out / "report.html").is_file()
    assert api.results(out) == rundir.read_json_file(out / rundir.RESULTS)
    ev = api.evaluate(out / "runs/ns/seed0")
    run = rundir.read_result(out / "runs/ns/seed0")
    assert ev["metrics"]["w1"] == run["metrics"]["w1"]  # same samples, same reference seed: the same number


def test_results_of_a_directory_without_a_comparison_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no results in"):
        api.results(tmp_path)


def test_evaluate_needs_exactly_one_source():
    with pytest.raises(UserError, match="either RUN_DIR"):
        api.evaluate()
    with pytest.raises(UserError, match="--samples needs --data"):
        api.evaluate(samples="x.npz")


def test_version_matches_the_installed_metadata():
    p = subprocess.run([sys.executable, "-m", "losslab", "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == f"losslab {losslab.__version__}"
    assert losslab.__version__ == "0.1.0"
