"""The comparison: jobs on the local backend, the comparison directory, resume (statistics: test_verdict)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from losslab import compare as cmp
from losslab import config as C
from losslab import io, rundir
from losslab.backends import default_workers, run_jobs
from losslab.errors import UserError


def test_plan_comes_from_rundir_and_names_each_run_directory():
    jobs = rundir.plan(["ns", "ddpm"], 2)
    assert [(j.loss, j.seed, j.run_dir, j.family) for j in jobs] == [
        ("ns", 0, "runs/ns/seed0", "gan"), ("ns", 1, "runs/ns/seed1", "gan"),
        ("ddpm", 0, "runs/ddpm/seed0", "diffusion"), ("ddpm", 1, "runs/ddpm/seed1", "diffusion")]


def test_local_backend_runs_every_job_inline_with_its_progress():
    seen, done = [], []
    died = run_jobs(lambda job, progress: (seen.append(job), progress(job)), [3, 5, 7], workers=1,
                    advance=done.append)
    assert died == [] and seen == [3, 5, 7] and done == [3, 5, 7]
    assert 1 <= default_workers() <= 8


def _tiny(steps=8):
    return C.resolve("vector", sets=[f"train.steps={steps}", "train.batch_size=64", "train.log_every=4",
                                     "train.checkpoint_every=4", "train.n_eval=300", "model.hidden=32",
                                     "model.layers=2"])


def test_tiny_compare_end_to_end_and_resume(tmp_path):
    cfg = _tiny()
    res = cmp.run_compare(cfg, losses=["ns", "wgan-gp"], seeds=2, out=tmp_path, quiet=True)
    assert {(r["loss"], r["seed"], r["status"]) for r in res["runs"]} == {
        (l, s, "ok") for l in ("ns", "wgan-gp") for s in (0, 1)}
    with np.load(tmp_path / rundir.REFERENCE) as z:
        modes, std = z["modes"].astype(np.float64), float(z["mode_std"])
    for r in res["runs"]:
        # The mode counts in result.json are those of the run's own samples.npz, recounted here by
        # hand: nearest ring mode, high quality within 3 std (VEEGAN, arXiv:1705.07761, Sec. 5.1).
        with np.load(tmp_path / r["run_dir"] / rundir.SAMPLES) as z:
            x = z["samples"].astype(np.float64)
        dist = np.linalg.norm(x[:, None, :] - modes[None], axis=2)
        near, hq = dist.argmin(axis=1), dist.min(axis=1) <= 3 * std
        counts = np.bincount(near[hq], minlength=8)
        m = r["metrics"]
        assert m["num_modes"] == 8 and m["mode_counts"] == counts.tolist()
        assert m["modes_covered"] == int((counts > 0).sum())
        np.testing.assert_allclose(m["high_quality"], hq.mean(), rtol=1e-12)
        assert m["w1"] > 0
    wgp = next(e for e in res["ranking"] if e["loss"] == "wgan-gp")
    assert wgp["d_updates_mean"] == 8 * 5
    assert res["budget"]["g_updates"] == 8
    with np.load(tmp_path / rundir.REFERENCE) as z:
        assert z["real"].shape == (300, 2) and z["modes"].shape == (8, 2)
    spec = io.read_json(tmp_path / rundir.COMPARE)
    assert (spec["family"], spec["kind"], spec["shape"], spec["losses"]) == ("gan", "vector", [2], ["ns", "wgan-gp"])
    # Resume: nothing is trained again.
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*/result.json")}
    cmp.run_compare(cfg, losses=["ns", "wgan-gp"], seeds=2, out=tmp_path, quiet=True)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*/result.json")} == stamp
    # A different budget in the same directory is refused rather than mixed.
    with pytest.raises(UserError, match=r"made from other inputs: the settings \(train\.steps 8 -> 9\) changed; "
                                         r"use a new --out directory, or --redo-changed"):
        cmp.run_compare(_tiny(steps=9), losses=["ns"], seeds=1, out=tmp_path, quiet=True)


def test_compare_with_two_workers(tmp_path):
    res = cmp.run_compare(_tiny(steps=4), losses=["hinge", "lsgan"], seeds=1, out=tmp_path, workers=2,
                          quiet=True)
    assert [r["status"] for r in res["runs"]] == ["ok", "ok"]


@pytest.mark.slow
def test_tiny_compare_on_real_mnist(tmp_path, mnist_dir):
    from losslab.data import load_dataset

    ds = load_dataset("mnist", data_dir=str(mnist_dir))
    # The files hold what shared/data/README.md says they hold.
    assert tuple(ds.train.shape) == (60000, 1, 28, 28) and tuple(ds.test.shape) == (10000, 1, 28, 28)
    counts = np.bincount(ds.train_labels.numpy(), minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    cfg = C.resolve("image", sets=["data.name=mnist", f"data.data_dir={mnist_dir}", "data.n_train=2000",
                                   "train.steps=3", "train.n_eval=500", "train.log_every=1"])
    res = cmp.run_compare(cfg, losses=["ns"], seeds=1, out=tmp_path, quiet=True)
    run = res["runs"][0]
    assert run["status"] == "ok", run.get("error")
    assert run["metrics"]["fid"] > 0 and run["metrics"]["feature_net"].startswith("classifier-")
    with np.load(tmp_path / "runs/ns/seed0/samples.npz") as z:
        s = z["samples"]
    assert s.shape == (500, 1, 28, 28) and s.min() >= -1 and s.max() <= 1


@pytest.mark.slow
def test_killed_compare_stops_its_workers_and_resumes(tmp_path):
    """`kill` (SIGTERM) on a running compare: exit 130 promptly, no orphan workers, rerun finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    args = [sys.executable, "-m", "losslab", "compare", "--losses", "ns,hinge", "--seeds", "1", "--workers", "2",
            "--out", str(out), "--quiet", "--set", "train.steps=1500", "--set", "train.checkpoint_every=50",
            "--set", "model.hidden=16", "--set", "train.batch_size=32"]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    ck = out / "runs/ns/seed0/checkpoint.safetensors"
    while not ck.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert ck.exists(), "no checkpoint written"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 130
    assert "rerun the same command to resume" in p.stderr.read()
    alive = ["?"]
    for _ in range(50):  # workers are terminated, or notice their parent is gone within a second
        alive = subprocess.run(["pgrep", "-s", str(p.pid)], capture_output=True, text=True).stdout.split()
        if not alive:
            break
        time.sleep(0.2)
    assert alive == []
    assert not (out / "runs/ns/seed0/result.json").exists()
    from losslab import rundir

    done_before = rundir.load_checkpoint(ck.parent)[1]["g_updates"]
    assert 50 <= done_before < 1500
    # Resume with a budget the first run had: the config must match, so rerun the same command.
    p2 = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert p2.returncode == 0, p2.stderr
    res = io.read_json(out / "runs/ns/seed0/result.json")
    assert res["status"] == "ok" and res["g_updates"] == 1500
    assert os.path.exists(out / "report.html")


# --------------------------------------------------------------------------- refused before any write

def _cli(argv, capsys) -> tuple[int, str]:
    """Run `losslab ARGV` in this process: (exit code, stderr)."""
    from losslab.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("losslab: error: "), err
    return lines[0]


def _png_folder(root, labelled: bool):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(24):
        d = root / (f"c{i % 2}" if labelled else "")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(d / f"{i}.png")
    return root


TINY = ["--steps", "2", "--seeds", "1", "--workers", "1", "--quiet"]


@pytest.mark.parametrize("extra, fragment", [
    (["--losses", "ns", "--metric", "foo"], "--metric 'foo' is not a losslab metric; choose from: "),
    (["--losses", "ns", "--metric", "fid"], "--metric 'fid' is not measured for gan losses on vector data"),
    (["--losses", "ns", "--metric", "num_modes"], "--metric 'num_modes' describes the evaluation"),
    (["--losses", "ns", "--metric", "linear_probe"], "--metric 'linear_probe' is not measured"),
    (["--losses", "ns,simclr"], "simclr"),  # an unknown loss
    (["--losses", "ns,nt-xent"], "loss nt-xent: the contrastive family needs images"),
    (["--losses", "ddpm", "--set", "diffusion.sample_steps=100000"], "loss ddpm: "),
    (["--losses", "wgan", "--set", "loss.critic_norm=batch", "--set", "train.batch_size=1"],
     "train.batch_size = 1: must be >= 2 with loss.critic_norm = 'batch'"),
    (["--data", "digits", "--losses", "ns", "--set", "train.batch_size=1"],
     "train.batch_size = 1: must be >= 2 for loss ns (its "),
])
def test_refused_compare_writes_nothing(tmp_path, capsys, extra, fragment):
    out = tmp_path / "out"
    code, err = _cli(["compare", "--data", "ring8", "--out", str(out), *TINY, *extra], capsys)
    assert code == 2 and fragment in _one_error_line(err)
    assert not out.exists()


def test_metric_choices_are_the_ones_a_run_measures(tmp_path, capsys):
    """The names --metric accepts for ns on ring8 are exactly the rankable keys of a real run's result.json."""
    from losslab.metrics import METRIC_INFO

    res = cmp.run_compare(_tiny(steps=2), losses=["ns"], seeds=1, out=tmp_path, quiet=True)
    keys = set(res["runs"][0]["metrics"])
    assert cmp.measured_metrics("gan", cmp.load_data(_tiny()), n_eval=300) == frozenset(keys)
    rankable = sorted(k for k in keys if METRIC_INFO[k]["higher_is_better"] is not None)
    code, err = _cli(["compare", "--data", "ring8", "--out", str(tmp_path / "x"), *TINY, "--losses", "ns",
                      "--metric", "foo"], capsys)
    assert _one_error_line(err).endswith("choose from: " + ", ".join(rankable))
    for m in rankable:  # each is accepted and ranks the runs
        assert cmp.aggregate(tmp_path, metric=m)["primary_metric"]["name"] == m


def test_contrastive_losses_on_unlabelled_images_are_refused_before_any_write(tmp_path, capsys):
    # generative losses on unlabelled images are accepted (a SimCLR feature net): tests/test_unlabelled.py
    folder = _png_folder(tmp_path / "imgs", labelled=False)
    for losses, fragment in (("info-nce", "loss info-nce: contrastive runs are evaluated by a linear probe"),):
        out = tmp_path / f"out-{losses}"
        code, err = _cli(["compare", "--data", str(folder), "--out", str(out), *TINY, "--losses", losses], capsys)
        assert code == 2 and fragment in _one_error_line(err), err
        assert not out.exists()


def test_refused_train_makes_no_run_directory(tmp_path, capsys):
    out = tmp_path / "runs"
    code, err = _cli(["train", "--data", "ring8", "--loss", "nt-xent", "--steps", "2", "--quiet", "--out", str(out)],
                     capsys)
    assert code == 2 and "the contrastive family needs images" in _one_error_line(err)
    code, err = _cli(["train", "--data", "digits", "--loss", "ns", "--set", "train.batch_size=1", "--quiet",
                      "--out", str(out)], capsys)
    assert code == 2 and "must be >= 2 for loss ns (its " in _one_error_line(err)
    assert not out.exists()


# --------------------------------------------------------------------------- one --out, one process

@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX flock")
def test_second_compare_into_the_same_out_is_refused_while_the_first_runs(tmp_path):
    import fcntl
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    base = [sys.executable, "-m", "losslab", "compare", "--data", "ring8", "--losses", "ns", "--seeds", "1",
            "--workers", "1", "--quiet", "--out", str(out), "--set", "model.hidden=8"]
    first = subprocess.Popen(base + ["--steps", "1000000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        held = False
        while not held and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
            if (out / rundir.LOCK).exists():
                fd = os.open(out / rundir.LOCK, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_UN)
                except BlockingIOError:
                    held = True
                finally:
                    os.close(fd)
        assert held, first.stderr.read() if first.poll() is not None else "the lock was never taken"
        want = (f"losslab: error: {out} is in use by another losslab process (pid {first.pid}); "
                "wait for it or use another --out")
        for argv in (base + ["--steps", "1000000"], [sys.executable, "-m", "losslab", "report", str(out)]):
            second = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            assert second.returncode == 2 and second.stderr.splitlines() == [want], second.stderr
        assert first.poll() is None  # the first one was not disturbed
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        first.stderr.close()


# --------------------------------------------------------------------------- corrupt files

@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished tiny comparison (ns, 1 seed), copied by each test that damages it."""
    out = tmp_path_factory.mktemp("done") / "out"
    cmp.run_compare(_tiny(steps=8), losses=["ns"], seeds=1, out=out, quiet=True, report=True)
    return out


def _copy(done, tmp_path):
    import shutil

    return Path(shutil.copytree(done, tmp_path / "out"))


def _compare_argv(out):
    return ["compare", "--data", "ring8", "--losses", "ns", "--seeds", "1", "--workers", "1", "--quiet",
            "--out", str(out), "--set", "train.steps=8", "--set", "train.batch_size=64", "--set", "train.log_every=4",
            "--set", "train.checkpoint_every=4", "--set", "train.n_eval=300", "--set", "model.hidden=32",
            "--set", "model.layers=2"]


@pytest.mark.parametrize("content, fragment", [
    ('{"family": "gan", "data": ', "is corrupt (JSONDecodeError"),
    ("[]", "is not a losslab comparison"),
])
def test_corrupt_compare_json_is_one_line_for_compare_and_report(done, tmp_path, capsys, content, fragment):
    out = _copy(done, tmp_path)
    (out / rundir.COMPARE).write_text(content)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    for argv in (_compare_argv(out), ["report", str(out)]):
        code, err = _cli(argv, capsys)
        line = _one_error_line(err)
        assert code == 2 and line.startswith(f"losslab: error: {out / rundir.COMPARE} ") and fragment in line
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != rundir.LOCK} == \
        {p: t for p, t in before.items() if p.name != rundir.LOCK}


def test_compare_json_without_losses_is_refused_by_report(done, tmp_path, capsys):
    out = _copy(done, tmp_path)
    spec = io.read_json(out / rundir.COMPARE)
    del spec["losses"]
    io.atomic_write_json(out / rundir.COMPARE, spec)
    code, err = _cli(["report", str(out)], capsys)
    assert code == 2 and "is not a losslab comparison" in _one_error_line(err) and "rewrite it" in err


@pytest.mark.parametrize("content", ['{"loss": "ns", "status": "o', "[1, 2, 3]"])
def test_corrupt_result_json_fails_report_and_is_redone_by_compare(done, tmp_path, capsys, content):
    out = _copy(done, tmp_path)
    result = out / "runs/ns/seed0" / rundir.RESULT
    want = io.read_json(result)
    result.write_text(content)
    code, err = _cli(["report", str(out)], capsys)
    line = _one_error_line(err)
    assert code == 2 and line.startswith(f"losslab: error: {result} ") and "delete it" in line
    code, err = _cli(_compare_argv(out), capsys)
    assert code == 0, err
    what = "is corrupt (JSONDecodeError" if content[0] == "{" else "is not a run result"
    assert len(err.splitlines()) == 1 and err.startswith(f"losslab: warning: {result} {what}")
    assert err.rstrip().endswith("; the run is trained again")
    got = io.read_json(result)
    assert {k: got[k] for k in ("status", "metrics", "g_updates", "d_updates")} == \
        {k: want[k] for k in ("status", "metrics", "g_updates", "d_updates")}


@pytest.mark.parametrize("damage", ["truncate", "no-real"])
def test_corrupt_reference_fails_report_and_is_rewritten_by_compare(done, tmp_path, capsys, damage):
    out = _copy(done, tmp_path)
    ref = out / rundir.REFERENCE
    good = ref.read_bytes()
    ref.write_bytes(good[: len(good) // 2] if damage == "truncate" else io.npz_bytes(modes=np.zeros((8, 2))))
    code, err = _cli(["report", str(out)], capsys)
    line = _one_error_line(err)
    assert code == 2 and line.startswith(f"losslab: error: {ref}: ") and line.endswith("to rewrite it")
    code, err = _cli(_compare_argv(out), capsys)
    assert code == 0, err
    assert ref.read_bytes() == good  # the same real samples, drawn with the same seed


def test_corrupt_samples_fail_report_naming_the_run(done, tmp_path, capsys):
    out = _copy(done, tmp_path)
    s = out / "runs/ns/seed0" / rundir.SAMPLES
    s.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    code, err = _cli(["report", str(out)], capsys)
    line = _one_error_line(err)
    assert code == 2 and line.startswith(f"losslab: error: {s}: ") and "draw the run's samples again" in line


def test_corrupt_config_json_of_an_unfinished_run_is_one_line(done, tmp_path, capsys):
    out = _copy(done, tmp_path)
    rd = out / "runs/ns/seed0"
    (rd / rundir.RESULT).unlink()
    for content, fragment in (('{"run": {"fam', "is corrupt"), ('["run"]', "is not a run configuration")):
        (rd / rundir.CONFIG).write_text(content)
        code, err = _cli(_compare_argv(out), capsys)
        line = _one_error_line(err)
        assert code == 2 and line.startswith(f"losslab: error: {rd / rundir.CONFIG} ") and fragment in line
        assert not (rd / rundir.RESULT).exists()


def test_corrupt_checkpoint_of_an_unfinished_run_is_retrained_from_scratch(done, tmp_path, capsys):
    """A truncated checkpoint: the run restarts (with a warning) and ends as an uninterrupted run does."""
    out = _copy(done, tmp_path)
    rd = out / "runs/ns/seed0"
    want = io.read_json(rd / rundir.RESULT)
    (rd / rundir.RESULT).unlink()
    ck = rd / rundir.CHECKPOINT
    ck.write_bytes(ck.read_bytes()[:100])
    code, err = _cli(_compare_argv(out), capsys)
    assert code == 0, err
    assert err.splitlines() == [l for l in err.splitlines() if l.startswith("losslab: warning: ")]
    assert f"losslab: warning: {ck} is unreadable" in err
    got = io.read_json(rd / rundir.RESULT)
    assert {k: got.get(k) for k in ("status", "metrics", "g_updates", "d_updates")} == \
        {k: want[k] for k in ("status", "metrics", "g_updates", "d_updates")}


@pytest.mark.parametrize("name, content, fragment", [
    (rundir.CONFIG, b'{"run": {', "is corrupt (JSONDecodeError"),
    (rundir.CONFIG, b"[1]", "no 'run' section"),
    (rundir.SAMPLES, b"PK\x03\x04junk", "corrupt or truncated .npz archive"),
    (rundir.SAMPLES, "other-key", "no array 'samples'; delete it"),
    (rundir.CHECKPOINT, b"xx", "is corrupt (SafetensorError"),
])
def test_eval_of_a_run_with_a_corrupt_file_is_one_line_and_deletes_nothing(done, tmp_path, capsys, name, content,
                                                                           fragment):
    out = _copy(done, tmp_path)
    f = out / "runs/ns/seed0" / name
    f.write_bytes(io.npz_bytes(x=np.zeros(3)) if content == "other-key" else content)
    files = sorted(p.name for p in f.parent.iterdir())
    code, err = _cli(["eval", str(f.parent)], capsys)
    line = _one_error_line(err)
    assert code == 2 and line.startswith(f"losslab: error: {f}") and fragment in line
    assert sorted(p.name for p in f.parent.iterdir()) == files


def test_the_default_compare_races_block_by_block_and_resumes_from_the_run_directories(tmp_path, capsys):
    """No --seeds: a race (losslab.race). A huge --equivalence margin stops it by TOST at its first look, so the
    CLI trains exactly the first block (5 seeds per loss); a rerun continues from the finished runs."""
    import json

    out = tmp_path / "race"
    argv = ["compare", "--data", "ring8", "--losses", "ns,hinge", "--steps", "2", "--workers", "1", "--quiet",
            "--set", "train.n_eval=200", "--set", "train.curve_points=0", "--equivalence", "1e6", "--out", str(out)]
    code, err = _cli(argv, capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "runs" / "ns").iterdir()) == [f"seed{s}" for s in range(5)]
    res = json.loads((out / rundir.RESULTS).read_text())
    assert res["race"]["limits"]["looks"] == [5, 8, 11] and res["race"]["limits"]["delta"] == 1e6
    assert res["race"]["stopped"] == "equivalent" and res["race"]["seeds_per_loss"] == {"ns": 5, "hinge": 5}
    assert res["recommendation"]["verdict"] == "equivalent" and res["recommendation"]["winner"] is None
    assert not [r for r in res["runs"] if r["status"] == "missing"]  # seeds the race did not ask for are not missing
    assert "after 5 seeds" in res["answer"][0]
    spec = json.loads((out / rundir.COMPARE).read_text())
    assert spec["race"]["first"] == 5 and spec["seeds"] == 11
    # Resume: a lost run is trained again, and only that one; the race decides the same.
    lost = out / rundir.run_path("hinge", 2)
    for f in lost.iterdir():
        f.unlink()
    code, err = _cli(argv, capsys)
    assert code == 0, err
    again = json.loads((out / rundir.RESULTS).read_text())
    assert again["race"]["looks"][0]["mean_ranks"] == res["race"]["looks"][0]["mean_ranks"]
    assert sorted(p.name for p in (out / "runs" / "hinge").iterdir()) == [f"seed{s}" for s in range(5)]
    # Another race on the same directory is refused before anything is written.
    code, err = _cli([*argv[:-4], "--seeds", "4", "--out", str(out)], capsys)
    assert code == 2 and "fixed design" not in _one_error_line(err) and "race" in err


def test_a_fixed_design_grows_in_place_and_a_race_does_not(tmp_path, capsys):
    """What the answer tells a user when the losses are not separated (race.Limits.what_decides): a fixed design
    reruns with a larger --seeds and an --equivalence margin in the same --out, keeping the runs it has; a race
    refuses other limits (its looks spent the error rate for its own schedule)."""
    import json

    out = tmp_path / "fixed"
    base = ["compare", "--data", "ring8", "--losses", "ns,hinge", "--steps", "2", "--workers", "1", "--quiet",
            "--set", "train.n_eval=200", "--set", "train.curve_points=0", "--out", str(out)]
    code, err = _cli([*base, "--seeds", "2"], capsys)
    assert code == 0, err
    first = (out / rundir.run_path("ns", 0) / rundir.RESULT).stat().st_mtime_ns
    res = json.loads((out / rundir.RESULTS).read_text())
    assert res["recommendation"]["verdict"] == "no clear winner"  # 2 seeds cannot separate two losses
    assert "rerun with --seeds 4: the runs done are kept" in res["answer"][0]
    code, err = _cli([*base, "--seeds", "3", "--equivalence", "0.5"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "runs" / "ns").iterdir()) == ["seed0", "seed1", "seed2"]
    assert (out / rundir.run_path("ns", 0) / rundir.RESULT).stat().st_mtime_ns == first  # kept, not retrained
    res = json.loads((out / rundir.RESULTS).read_text())
    assert res["race"]["limits"]["delta"] == 0.5 and res["race"]["limits"]["looks"] == [3]
    race = tmp_path / "race"
    code, err = _cli([*base[:-1], str(race), "--equivalence", "1e6"], capsys)
    assert code == 0, err
    code, err = _cli([*base[:-1], str(race), "--equivalence", "2e6"], capsys)
    assert code == 2 and "other seed limits" in _one_error_line(err)
