"""Odd data, odd paths, absurd sizes, edited inputs and failed runs, each driven through the CLI.

A refusal is one line on stderr, exit code 2 and nothing written under
``--out``; data that is legal but odd runs, with a warning in the report's
data section; a comparison whose every run failed exits 1 with the reason;
a rerun into the same ``--out`` with edited data never mixes results.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from losslab import io, rundir
from losslab.cli import main
from losslab.data.checks import check_content
from losslab.data.dataset import Dataset
from losslab.errors import UserError

pytestmark = pytest.mark.usefixtures("single_thread")

_TINY = ["--set", "train.n_eval=100", "--set", "train.curve_n=50", "--set", "train.curve_points=0",
         "--set", "model.hidden=16", "--set", "model.layers=2", "--set", "train.batch_size=32",
         "--set", "train.log_every=1", "--set", "train.checkpoint_every=2", "--workers", "1", "--quiet"]


def _run(argv, capsys) -> tuple[int, str, str]:
    """``losslab ARGV`` in this process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _refused(argv, capsys, fragment: str, out: Path | None = None) -> str:
    """Run ARGV; assert exit 2, one line on stderr holding ``fragment``, nothing under ``out``."""
    code, _, err = _run(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("losslab: error: ") and fragment in lines[0], lines[0]
    if out is not None:
        assert not out.exists() or sorted(os.listdir(out)) == [], sorted(os.listdir(out))
    return lines[0]


def _csv(path: Path, x: np.ndarray, fmt: str = "%.6g") -> Path:
    np.savetxt(path, x, delimiter=",", fmt=fmt)
    return path


def _idx(path: Path, arr: np.ndarray, magic: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in arr.shape)
    path.write_bytes(gzip.compress(head + arr.astype(np.uint8).tobytes()))


# ----------------------------------------------------------------------------- content, refused before any work


def test_values_beyond_float32_are_refused_at_their_row_and_column(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(40, 2))
    p = tmp_path / "big.csv"
    lines = ["a,b"] + [f"{u:.4f},{v:.4f}" for u, v in x]
    lines[3] = "0.5,1e39"
    p.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    assert _refused(["compare", "--data", p, "--out", out], capsys, "big.csv: row 4, column 2 (b): 1e39 does "
                    "not fit float32", out).endswith("rescale the data")
    a = x.copy()
    a[7, 1] = 1e300
    np.save(tmp_path / "big.npy", a)
    _refused(["compare", "--data", tmp_path / "big.npy", "--out", out], capsys,
             "big.npy: row 8, column 2: 1e+300 does not fit float32", out)
    a[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", a)
    _refused(["compare", "--data", tmp_path / "nan.npy", "--out", out], capsys, "nan.npy: row 8, column 2: nan is NaN",
             out)


@pytest.mark.parametrize("rows, fragment", [
    (np.ones((30, 2)), "all 27 training rows are the same sample"),
    (np.random.default_rng(0).normal(size=(10, 2)), "9 training and 1 held-out rows; a comparison needs at least 2"),
])
def test_data_no_loss_can_learn_from_is_refused(tmp_path, capsys, rows, fragment):
    out = tmp_path / "o"
    _refused(["compare", "--data", _csv(tmp_path / "d.csv", rows), "--out", out, *_TINY], capsys, fragment, out)


def test_idx_splits_whose_headers_disagree_are_refused(tmp_path, capsys):
    d = tmp_path / "mnist"
    rng = np.random.default_rng(0)
    _idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (40, 28, 28)), 0x803)
    _idx(d / "train-labels-idx1-ubyte.gz", np.arange(40) % 10, 0x801)
    _idx(d / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (20, 20, 20)), 0x803)
    _idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10, 0x801)
    _refused(["compare", "--data", "mnist", "--data-dir", tmp_path, "--dry-run"], capsys,
             "t10k-images-idx3-ubyte.gz holds 20x20 images but")


def test_labels_out_of_range_and_splits_of_other_shapes_are_refused():
    x = torch.randn(30, 2)
    ds = Dataset(name="lab", kind="vector", shape=(2,), train=x[:25], test=x[25:],
                 train_labels=torch.tensor([0, 1] * 12 + [5]), test_labels=torch.zeros(5, dtype=torch.int64),
                 num_classes=2)
    with pytest.raises(UserError, match=r"^data 'lab': train label 5 at row 25 is outside 0\.\.1$"):
        check_content(ds, batch_size=8)
    ds = Dataset(name="sh", kind="vector", shape=(2,), train=x[:25], test=torch.randn(5, 3))
    with pytest.raises(UserError, match=r"the test split has rows of shape \(3,\), the data \(2,\)"):
        check_content(ds, batch_size=8)


def test_odd_but_legal_data_gives_warnings():
    x = torch.randn(60, 3)
    x[:, 2] = 4.0
    x[30:] = x[:30]
    ds = Dataset(name="odd", kind="vector", shape=(3,), train=x[:54], test=x[54:])
    w = check_content(ds, batch_size=256)
    assert any("only 54 training rows, fewer than a batch of 256" in s for s in w), w
    assert any("column(s) 3 of 3 are constant" in s for s in w), w
    assert any("only 6 held-out rows" in s for s in w), w
    assert not any("distinct" in s for s in w), w  # 30 of 54 rows distinct: more than half
    ds = Dataset(name="dup", kind="vector", shape=(3,), train=torch.cat([x[:5]] * 20), test=x[50:])
    assert any("only 5 of 100 training rows are distinct" in s for s in check_content(ds, batch_size=8))


# ----------------------------------------------------------------------------- paths and sizes


def test_paths_that_are_not_regular_files_are_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # opening it for reading would block forever
    _refused(["compare", "--data", fifo, "--dry-run"], capsys, "pipe.csv: not a regular file (a FIFO); give a "
                                                              "CSV file")
    _refused(["compare", "--config", "/dev/zero", "--dry-run"], capsys,
             "/dev/zero: not a regular file (a character device); give a TOML file")
    toml = tmp_path / "c.toml"
    os.mkfifo(toml)
    _refused(["compare", "--config", toml, "--dry-run"], capsys, "c.toml: not a regular file (a FIFO)")


@pytest.mark.parametrize("item, fragment", [
    ("train.batch_size=100000000000", "train.batch_size = 100000000000: one batch with one layer's activations"),
    ("train.n_eval=100000000000000", "train.n_eval = 100000000000000: the evaluation's generated and real"),
    ("model.z_dim=10000000000000", "model.z_dim = 10000000000000: "),
    ("model.hidden=100000000", "model.hidden = 100000000: "),
])
def test_sizes_that_cannot_be_allocated_are_refused_before_any_allocation(tmp_path, capsys, item, fragment):
    out = tmp_path / "o"
    line = _refused(["compare", "--losses", "ns", "--seeds", "1", "--steps", "1", "--set", item, "--out", out],
                    capsys, fragment, out)
    assert "of memory available; lower it" in line
    _refused(["eval", "--samples", tmp_path / "none.npz", "--data", "digits", "--n", 10 ** 15], capsys,
             "--n 1000000000000000: ")


def test_empty_out_and_out_holding_files_a_comparison_would_overwrite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(["compare", "--losses", "ns", "--out", ""], capsys, "--out is empty (an unset shell variable?)")
    assert os.listdir(tmp_path) == []
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "report.md").write_text("my notes")
    _refused(["compare", "--losses", "ns", "--seeds", "1", "--out", tmp_path / "proj"], capsys,
             "is not a losslab comparison (compare.json missing) but holds report.md")
    assert os.listdir(tmp_path / "proj") == ["report.md"]
    (tmp_path / "empty").mkdir()
    _refused(["report", tmp_path / "empty"], capsys, "is not a losslab comparison")
    assert os.listdir(tmp_path / "empty") == []  # no .lock left behind


def test_toy_n_train_and_config_data_against_an_explicit_data_flag(tmp_path, capsys):
    _refused(["compare", "--set", "data.n_train=1", "--dry-run"], capsys,
             "data.n_train = 1: toy data 'ring8' is drawn afresh")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nname = "grid25"\n')
    code, out, err = _run(["compare", "--config", cfg, "--data", "ring8", "--losses", "ns", "--dry-run"], capsys)
    assert code == 0 and json.loads(out)["dataset"]["name"] == "ring8"
    assert err.strip() == f"losslab: warning: --data ring8 overrides data.name = 'grid25' of {cfg}"
    code, out, err = _run(["compare", "--config", cfg, "--losses", "ns", "--dry-run"], capsys)
    assert code == 0 and json.loads(out)["dataset"]["name"] == "grid25" and err == ""


def test_a_time_budget_trains_at_least_one_update(tmp_path, capsys):
    code, out, err = _run(["train", "--loss", "ns", "--out", tmp_path, "--set", "train.budget_seconds=1e-9",
                           *_TINY[:-3]], capsys)
    assert code == 0, err
    (run,) = tmp_path.iterdir()
    res = io.read_json(run / rundir.RESULT)
    assert res["status"] == "ok" and res["g_updates"] == 1, res


def test_output_survives_an_ascii_console(tmp_path):
    data = _csv(tmp_path / "caf\u00e9.csv", np.random.default_rng(0).normal(size=(40, 2)))
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LANG": "C", "LC_ALL": "C"}
    p = subprocess.run([sys.executable, "-m", "losslab", "profile", str(data)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "caf\\xe9.csv" in p.stdout or "caf\\u00e9.csv" in p.stdout or "caf\\udcc3" in p.stdout, p.stdout


# ----------------------------------------------------------------------------- exit codes, provenance, clean-up


def test_a_comparison_whose_every_run_failed_exits_1_with_the_reason(tmp_path, capsys, monkeypatch):
    from losslab.train import loop

    def broken(*a, **k):
        raise RuntimeError("simulated failure of the step")

    monkeypatch.setattr(loop.FAMILIES["gan"], "step", broken)
    out = tmp_path / "o"
    code, stdout, err = _run(["compare", "--losses", "ns", "--seeds", "1", "--steps", "2", "--out", out,
                              "--no-batch-seeds", *_TINY], capsys)
    assert code == 1, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("losslab: error: no run finished (1 failed); first: ns seed 0: RuntimeError: "
                           "simulated failure of the step"), err
    assert (out / rundir.RESULTS).exists()


def test_edited_data_never_mixes_results_and_foreign_files_are_kept(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    x[:, 2] = 1.0  # a constant column: legal, warned
    data = _csv(tmp_path / "d.csv", x)
    out = tmp_path / "o"
    out.mkdir()
    foreign = [out / ".x.abcdefgh.tmp", out / ".notes.md.k3j_9x0a.tmp", out / "notes.txt"]
    for f in foreign:
        f.write_text("the user's")
    argv = ["compare", "--data", data, "--losses", "ns", "--seeds", "1", "--steps", "4", "--out", out, *_TINY]
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    assert "column(s) 3 of 3 are constant" in err
    assert "Warnings about the data" in (out / "report.md").read_text()
    assert all(f.read_text() == "the user's" for f in foreign)
    made = io.read_json(out / "runs/ns/seed0" / rundir.CONFIG)["made_from"]
    assert made["data_sha256"] == io.read_json(out / rundir.COMPARE)["made_from"]["data_sha256"]
    before = (out / rundir.RESULTS).read_bytes()

    x2 = x.copy()
    x2[:, 0] += 3.0  # the data file is edited between two runs into the same --out
    _csv(data, x2)
    line = _refused(argv, capsys, "holds a comparison made from other inputs: the contents of the data")
    assert "--redo-changed" in line
    assert (out / rundir.RESULTS).read_bytes() == before  # nothing was reused or rewritten

    code, _, err = _run([*argv, "--redo-changed"], capsys)
    assert code == 0, err
    assert "--redo-changed: training 1 run(s) again: runs/ns/seed0" in err
    made2 = io.read_json(out / "runs/ns/seed0" / rundir.CONFIG)["made_from"]
    assert made2["data_sha256"] != made["data_sha256"]
    assert made2["data_sha256"] == io.read_json(out / rundir.COMPARE)["made_from"]["data_sha256"]
    assert all(f.read_text() == "the user's" for f in foreign)

    # An eval of a run whose samples have another shape than its data: one line, not a traceback.
    np.savez(out / "runs/ns/seed0" / rundir.SAMPLES, samples=np.zeros((10, 5), np.float32))
    _refused(["eval", out / "runs/ns/seed0"], capsys, "samples of shape (5,), but the run's data 'd.csv' has "
                                                     "samples of shape (3,)")


def _noop_job(job, progress):
    return job


def test_a_signal_during_the_pools_first_submit_stays_the_signal(monkeypatch):
    """SIGTERM (raised as KeyboardInterrupt) while the pool starts its manager thread: the interrupt reaches
    the caller (the CLI exits 130), not a RuntimeError from joining a thread that never started (seen once in
    tests/test_kill.py's 'setup' case as exit 1 with a traceback)."""
    from concurrent.futures import process

    from losslab.backends import local

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(process._ExecutorManagerThread, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        local.run_jobs(_noop_job, [1, 2, 3], workers=2, advance=lambda n: None)
