"""The command line: bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest

from losslab.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
        raise SystemExit(0)
    cap = capsys.readouterr()
    return e.value.code, cap.out, cap.err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["compare", "--losses", "ns,bogus"], "unknown loss 'bogus'; choose from: barlow-twins, began, "),
        (["compare", "--losses", "ns", "--family", "diffusion"], "belongs to the gan family, not diffusion"),
        (["compare", "--data", "nowhere"], "unknown dataset 'nowhere'"),
        (["compare", "--set", "train.steps"], "malformed --set"),
        (["compare", "--set", "train.steps=many"], "expected int"),
        (["compare", "--family", "vae"], "unknown family 'vae'"),
        (["compare", "--seeds", "0"], "--seeds must be >= 1"),
        (["compare", "--nope"], "unrecognized arguments: --nope"),
        (["list", "things"], "unknown list 'things'"),
        (["report", "/nonexistent/dir"], "no such directory"),
    ],
)
def test_bad_input_one_line_exit_2(args, fragment, capsys):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_files_one_line_exit_2(tmp_path, capsys):
    csv = tmp_path / "x.csv"
    csv.write_text("1,2\n3,abc\n")
    code, _, err = run_cli(["compare", "--data", str(csv), "--dry-run"], capsys)
    assert code == 2 and "abc" in err and len(err.strip().splitlines()) == 1

    empty = tmp_path / "imgs"
    empty.mkdir()
    code, _, err = run_cli(["compare", "--data", str(empty), "--dry-run"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1

    bad = tmp_path / "idx" / "mnist"
    bad.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (bad / f"{name}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    code, _, err = run_cli(["compare", "--data", "mnist", "--data-dir", str(tmp_path / "idx"), "--dry-run"],
                           capsys)
    assert code == 2 and "idx" in err.lower() and len(err.strip().splitlines()) == 1


def test_list_losses_prints_the_registry(capsys):
    code, out, _ = run_cli(["list", "losses"], capsys)
    assert code == 0
    sections: dict[str, list[str]] = {}
    for line in out.strip().splitlines():
        if line.startswith("# "):
            current = sections.setdefault(line.split()[1], [])
        else:
            current.append(line.split()[0])
    assert sections["gan"] == ["minimax", "ns", "wgan", "wgan-gp", "lsgan", "hinge", "dragan", "r1", "rpgan", "r3gan",
                               "ebgan", "began"]
    assert sections["classification"] == ["bce", "bce-with-logits", "cce", "sparse-cce", "focal"]


def test_dry_run_prints_resolved_config(capsys):
    import json

    code, out, _ = run_cli(["compare", "--losses", "ns,hinge", "--seeds", "2", "--set", "train.steps=50",
                            "--dry-run"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["config"]["train"]["steps"] == 50 and d["losses"] == ["ns", "hinge"]
    assert d["jobs"] == ["runs/ns/seed0", "runs/ns/seed1", "runs/hinge/seed0", "runs/hinge/seed1"]


def test_console_entry_point_no_traceback():
    p = subprocess.run([sys.executable, "-m", "losslab", "compare", "--losses", "xyz"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("losslab: error: unknown loss 'xyz'")
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("argv, message", [
    (["--losses", "ddpm", "--set", "loss.n_critic=3"],
     "losslab: error: --set loss.n_critic: not used by the diffusion family (used by: gan)"),
    (["--losses", "ns,hinge", "--set", "diffusion.T=100"],
     "losslab: error: --set diffusion.T: not used by the gan family (used by: diffusion)"),
])
def test_a_set_key_no_family_of_the_comparison_reads_is_refused_before_any_write(tmp_path, argv, message):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "losslab", "compare", *argv, "--steps", "5", "--seeds", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == message
    assert not out.exists()
