"""Nothing silently wrong on the input side: config domains, image bit depths, corrupt files, OS errors.

Every bad input is a :class:`UserError` (one line naming the key or file) before
anything is written; on the command line it is one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from losslab import config as C
from losslab import io
from losslab.compare import check_batch_size
from losslab.cli import main, os_error_line
from losslab.data.images import open_image, pil_to_unit
from losslab.data.user import read_csv, read_image_folder, read_npy
from losslab.errors import UserError


def _cli(*args, timeout=180):
    """``python -m losslab ARGS`` in a fresh interpreter (the real entry point)."""
    return subprocess.run([sys.executable, "-m", "losslab", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _one_line_error(p, fragment: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("losslab: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in p.stderr


# ----------------------------------------------------------------------------- 1. config domains


@pytest.mark.parametrize(
    "item, message",
    [
        ("loss.lr_d=inf", "loss.lr_d = inf: must be a finite number > 0"),
        ("loss.lr_d=nan", "loss.lr_d = nan: must be a finite number > 0"),
        ("loss.lr_d=-1e-4", "loss.lr_d = -0.0001: must be a finite number > 0"),
        ("loss.lr_g=0", "loss.lr_g = 0.0: must be a finite number > 0"),
        ("loss.lr_d=1e400", "loss.lr_d = inf: must be a finite number > 0"),  # overflows to inf
        ("loss.lr_scale=-inf", "loss.lr_scale = -inf: must be a finite number > 0"),
        ("diffusion.lr=0", "diffusion.lr = 0.0: must be a finite number > 0"),
        ("loss.margin=inf", "loss.margin = inf: must be a finite number >= 0"),
        ("loss.margin=-0.5", "loss.margin = -0.5: must be a finite number >= 0"),
        ("loss.beta1=1", "loss.beta1 = 1.0: must be a finite number in [0, 1)"),
        ("loss.beta2=-0.1", "loss.beta2 = -0.1: must be a finite number in [0, 1)"),
        ("loss.n_critic=0", "loss.n_critic = 0: must be an integer >= 1"),
        ("loss.clip=0", "loss.clip = 0.0: must be a finite number > 0"),
        ("loss.gp_lambda=-1", "loss.gp_lambda = -1.0: must be a finite number >= 0"),
        ("loss.dragan_c=nan", "loss.dragan_c = nan: must be a finite number >= 0"),
        ("loss.pt_weight=-0.1", "loss.pt_weight = -0.1: must be a finite number >= 0"),
        ("loss.lambda_k=-1e-3", "loss.lambda_k = -0.001: must be a finite number >= 0"),
        ("loss.gamma=0", "loss.gamma = 0.0: must be a finite number in (0, 1]"),
        ("loss.gamma=1.5", "loss.gamma = 1.5: must be a finite number in (0, 1]"),
        ("loss.temperature=0", "loss.temperature = 0.0: must be a finite number > 0"),
        ("diffusion.eta=1.01", "diffusion.eta = 1.01: must be a finite number in [0, 1]"),
        ("diffusion.T=1", "diffusion.T = 1: must be an integer >= 2"),
        ("train.batch_size=0", "train.batch_size = 0: must be an integer >= 1"),
        ("data.image_size=30", "data.image_size = 30: must be an integer >= 4, a multiple of 4"),
        ("loss.optimizer=sgd", "loss.optimizer = 'sgd': must be one of adam, rmsprop"),
        ("loss.critic_norm=group", "loss.critic_norm = 'group': must be one of batch, layer, none"),
        ("loss.mining=hard", "loss.mining = 'hard': must be one of random, batch-hard"),
        ("diffusion.schedule=quadratic", "diffusion.schedule = 'quadratic': must be one of linear, cosine"),
        ("diffusion.sampler=rk4", "diffusion.sampler = 'rk4': must be one of ddim, ddpm, euler, heun"),
    ],
)
def test_out_of_domain_value_is_one_line_naming_key_value_and_domain(item, message):
    with pytest.raises(UserError) as e:
        C.resolve("vector", sets=[item])
    assert str(e.value) == message


@pytest.mark.parametrize(
    "item, attr, value",
    [
        ("loss.beta1=0", ("loss", "beta1"), 0.0),  # closed end of [0, 1)
        ("loss.beta2=0.999", ("loss", "beta2"), 0.999),
        ("loss.gamma=1", ("loss", "gamma"), 1.0),  # closed end of (0, 1]
        ("loss.gp_lambda=0", ("loss", "gp_lambda"), 0.0),  # >= 0: zero switches the term off
        ("loss.margin=0", ("loss", "margin"), 0.0),
        ("loss.lambda_k=0", ("loss", "lambda_k"), 0.0),
        ("diffusion.eta=0", ("diffusion", "eta"), 0.0),
        ("diffusion.eta=1", ("diffusion", "eta"), 1.0),
        ("loss.lr_d=1e-300", ("loss", "lr_d"), 1e-300),
        ("loss.lr_d=null", ("loss", "lr_d"), None),  # null: back to the loss's default
        ("data.image_size=4", ("data", "image_size"), 4),
    ],
)
def test_values_on_the_domain_boundary_are_accepted(item, attr, value):
    cfg = C.resolve("vector", sets=[item])
    assert getattr(getattr(cfg, attr[0]), attr[1]) == value


def test_toml_nan_and_inf_are_refused_with_the_key(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[loss]\nlr_d = nan\n")
    with pytest.raises(UserError, match=r"^loss\.lr_d = nan: must be a finite number > 0$"):
        C.resolve("vector", config_file=str(f))
    f.write_text("[loss]\nmargin = inf\n")
    with pytest.raises(UserError, match=r"^loss\.margin = inf: must be a finite number >= 0$"):
        C.resolve("vector", config_file=str(f))
    f.write_text("[data]\nname = [1, 2]\n")
    with pytest.raises(UserError, match=r"data\.name: expected str"):
        C.resolve("vector", config_file=str(f))


def test_every_config_field_has_a_domain():
    keys = {f"{s}.{f.name}" for s in C.SECTIONS for f in dataclasses.fields(getattr(C.Config(), s))}
    assert keys == set(C.DOMAINS)


def test_validate_checks_a_config_built_in_code():
    cfg = C.resolve("vector")
    C.validate(cfg)
    cfg.loss.lr_d = math.inf
    with pytest.raises(UserError, match=r"^loss\.lr_d = inf: must be a finite number > 0$"):
        C.validate(cfg)
    cfg = C.resolve("vector", sets=["diffusion.T=10"])
    cfg.diffusion.sample_steps = 11
    with pytest.raises(UserError, match=r"diffusion\.sample_steps = 11: must be <= diffusion\.T = 10"):
        C.validate(cfg)


def test_batch_norm_needs_two_samples_per_batch():
    with pytest.raises(UserError, match=r"^train\.batch_size = 1: must be >= 2 with loss\.critic_norm = 'batch'"):
        C.resolve("vector", sets=["loss.critic_norm=batch", "train.batch_size=1"])
    cfg = C.resolve("vector", sets=["loss.critic_norm=layer", "train.batch_size=1"])
    assert cfg.train.batch_size == 1
    # The losses' own defaults: ns keeps DCGAN's BatchNorm critic, wgan-gp a layer-norm one;
    # the image generator has BatchNorm whatever the critic; diffusion has none.
    cfg = C.resolve("vector", sets=["train.batch_size=1"])
    check_batch_size(cfg, ["ns"], "vector")  # the vector preset's critic_norm = "none" wins
    cfg.loss.critic_norm = None  # each loss's own default
    with pytest.raises(UserError, match=r"train\.batch_size = 1: must be >= 2 for loss ns \(its critic"):
        check_batch_size(cfg, ["wgan-gp", "ns"], "vector")
    check_batch_size(cfg, ["wgan-gp", "ddpm"], "vector")
    with pytest.raises(UserError, match=r"for loss wgan-gp \(its image generator"):
        check_batch_size(cfg, ["wgan-gp"], "image")
    check_batch_size(cfg, ["ddpm"], "image")
    check_batch_size(C.resolve("vector"), ["ns"], "image")  # batch 256: fine


def test_cli_compare_with_inf_lr_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "D"
    p = _cli("compare", "--losses", "ns", "--seeds", "1", "--set", "loss.lr_d=inf", "--out", out)
    _one_line_error(p, "loss.lr_d = inf: must be a finite number > 0")
    assert not out.exists()


# ----------------------------------------------------------------------------- 2. image bit depths


def _save(img, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path


def test_16_bit_png_keeps_its_full_range(tmp_path):
    from PIL import Image

    a = np.array([[0, 32768, 65535, 65535]] * 4, dtype=np.uint16)  # 4x4, the three levels
    img = Image.fromarray(a)
    assert img.mode == "I;16"
    _save(img, tmp_path / "f" / "deep.png")
    with open_image(tmp_path / "f" / "deep.png") as back:
        assert back.mode in ("I;16", "I")  # Pillow >= 10 / older Pillow
        u = pil_to_unit(back)
    np.testing.assert_allclose(u[0], [0.0, 32768 / 65535, 1.0, 1.0], rtol=0, atol=1e-7)
    x, _, _ = read_image_folder(tmp_path / "f", image_size=4)  # native size: no resampling
    assert x.shape == (1, 1, 4, 4)
    torch.testing.assert_close(x[0, 0, 0], torch.tensor([-1.0, 2 * 32768 / 65535 - 1, 1.0, 1.0]),
                               rtol=0, atol=1e-6)
    assert abs(float(x[0, 0, 0, 1])) < 1e-4  # mid-grey, not clipped to white


def test_pil_modes_scale_by_their_bit_depth():
    from PIL import Image

    big = Image.frombytes("I;16B", (3, 1), struct.pack(">3H", 0, 32768, 65535))
    np.testing.assert_allclose(pil_to_unit(big)[0], [0.0, 32768 / 65535, 1.0], rtol=0, atol=1e-7)
    i32 = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), mode="I")
    np.testing.assert_allclose(pil_to_unit(i32)[0], [0.0, 1.0], rtol=0, atol=0)
    with pytest.raises(UserError, match="values in"):
        pil_to_unit(Image.fromarray(np.array([[-5, 70000]], dtype=np.int32), mode="I"), "neg.png")
    one = Image.fromarray(np.array([[0, 255, 0]], dtype=np.uint8)).convert("1")
    np.testing.assert_array_equal(pil_to_unit(one)[0], [0.0, 1.0, 0.0])
    grey = Image.fromarray(np.array([[0, 51, 255]], dtype=np.uint8))
    np.testing.assert_allclose(pil_to_unit(grey)[0], [0.0, 0.2, 1.0], rtol=0, atol=1e-7)
    with pytest.raises(UserError, match="mode F"):
        pil_to_unit(Image.new("F", (2, 2)), "float.tif")


def test_alpha_is_composited_on_black():
    from PIL import Image

    la = Image.fromarray(np.array([[[200, 128], [200, 0], [200, 255]]], dtype=np.uint8), mode="LA")
    np.testing.assert_allclose(pil_to_unit(la)[0], [200 / 255 * 128 / 255, 0.0, 200 / 255], rtol=0, atol=1e-6)
    rgba = Image.fromarray(np.array([[[255, 100, 0, 51]]], dtype=np.uint8), mode="RGBA")
    np.testing.assert_allclose(pil_to_unit(rgba)[0, 0], np.array([255, 100, 0]) / 255 * 0.2, rtol=0, atol=1e-6)


def test_palette_image_keeps_its_colours(tmp_path):
    from PIL import Image

    img = Image.new("P", (4, 4))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (3 * 254))  # index 0 red, 1 blue
    img.putdata([0, 1] * 8)
    _save(img, tmp_path / "p" / "pal.png")
    x, _, _ = read_image_folder(tmp_path / "p", image_size=4)
    assert x.shape == (1, 3, 4, 4)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))  # red
    torch.testing.assert_close(x[0, :, 0, 1], torch.tensor([-1.0, -1.0, 1.0]))  # blue
    # A transparent palette entry is composited on black.
    img.info["transparency"] = 1
    np.testing.assert_allclose(pil_to_unit(img)[0, 1], [0.0, 0.0, 0.0], rtol=0, atol=0)
    np.testing.assert_allclose(pil_to_unit(img)[0, 0], [1.0, 0.0, 0.0], rtol=0, atol=0)


def test_a_folder_mixing_8_and_16_bit_greys_agrees(tmp_path):
    from PIL import Image

    _save(Image.fromarray(np.full((4, 4), 255, np.uint8)), tmp_path / "m" / "a.png")
    _save(Image.fromarray(np.full((4, 4), 65535, np.uint16)), tmp_path / "m" / "b.png")
    x, _, _ = read_image_folder(tmp_path / "m", image_size=4)
    torch.testing.assert_close(x, torch.ones(2, 1, 4, 4))


# ----------------------------------------------------------------------------- 3. corrupt files


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG signature and IHDR claiming ``width x height`` 8-bit grey pixels, then IEND: no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_refused_with_one_line(tmp_path, monkeypatch):
    from PIL import Image

    bomb = _png_header_only(tmp_path / "b" / "bomb.png", 100_000, 100_000)  # 1e10 pixels in 57 bytes
    with pytest.raises(UserError, match=r"bomb\.png: refusing a possible decompression bomb") as e:
        read_image_folder(tmp_path / "b")
    assert "\n" not in str(e.value)
    # Between MAX_IMAGE_PIXELS and twice it Pillow only warns: refused too.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    _save(Image.fromarray(np.zeros((4, 4), np.uint8)), tmp_path / "w" / "w.png")  # 16 pixels: 10 < 16 < 20
    with pytest.raises(UserError, match=r"w\.png: refusing a possible decompression bomb"):
        read_image_folder(tmp_path / "w", image_size=4)
    assert bomb.exists()


def test_truncated_png_names_the_file(tmp_path):
    from PIL import Image

    p = _save(Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)), tmp_path / "t" / "cut.png")
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(UserError, match=r"cut\.png: Pillow cannot read this image"):
        read_image_folder(tmp_path / "t", image_size=8)


def test_non_utf8_toml_is_one_line(tmp_path):
    f = tmp_path / "latin1.toml"
    f.write_bytes("[data]\nname = \"caf\xe9\"\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.toml: not UTF-8 text"):
        C.load_toml(f)
    p = _cli("compare", "--config", f, "--dry-run")
    _one_line_error(p, "not UTF-8 text")


def _good_npz(path: Path) -> bytes:
    np.savez_compressed(path, images=np.arange(2 * 64, dtype=np.uint8).reshape(2, 8, 8))
    return path.read_bytes()


def test_npz_that_is_not_a_zip_or_is_truncated(tmp_path):
    from losslab.evaluation import load_samples

    good = _good_npz(tmp_path / "good.npz")
    z = io.read_npz(tmp_path / "good.npz")
    np.testing.assert_array_equal(z["images"], np.arange(128, dtype=np.uint8).reshape(2, 8, 8))
    bad = {
        "text.npz": (b"images,0,1,2\n" * 10, "not a NumPy .npz archive"),
        "cut.npz": (good[: len(good) // 2], "corrupt or truncated .npz"),
        "empty.npz": (b"", "not a NumPy .npz archive"),
        "array.npz": (None, "not a NumPy .npz archive"),  # an .npy renamed to .npz
    }
    for name, (data, fragment) in bad.items():
        p = tmp_path / name
        if data is None:
            np.save(tmp_path / "a.npy", np.zeros(3))
            (tmp_path / "a.npy").rename(p)
        else:
            p.write_bytes(data)
        with pytest.raises(UserError, match=fragment) as e:
            load_samples(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    # A flipped byte in the compressed data: a bad CRC or deflate stream, never a traceback.
    flipped = bytearray(good)
    flipped[60] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(UserError, match=r"flip\.npz"):
        load_samples(tmp_path / "flip.npz")


def test_corrupt_npy_names_the_file(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.arange(100, dtype=np.float64).reshape(10, 10))
    kind, x = read_npy(good)
    assert kind == "vector" and x.shape == (10, 10)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match=r"cut\.npy: corrupt or truncated \.npy file"):
        read_npy(cut)
    csvish = tmp_path / "data.npy"
    csvish.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(UserError, match=r"data\.npy: not a NumPy \.npy file"):
        read_npy(csvish)
    p = _cli("compare", "--data", cut, "--dry-run")
    _one_line_error(p, "cut.npy: corrupt or truncated")


# ----------------------------------------------------------------------------- 4. OS errors


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    p = _cli("compare", "--losses", "ns", "--seeds", "1", "--steps", "1", "--out", f)
    _one_line_error(p, f"--out {f}: exists and is not a directory")
    assert f.read_text() == "keep me"


def test_output_below_a_file_is_one_line_os_error(tmp_path):
    f = tmp_path / "plainfile"
    f.write_text("x")
    p = _cli("explain", "ns", "--plot", f / "sub" / "ns.png")
    _one_line_error(p, str(f))
    assert "Not a directory" in p.stderr or "File exists" in p.stderr


def test_eval_out_and_explain_plot_that_are_directories(tmp_path):
    p = _cli("eval", "--samples", tmp_path / "none.npz", "--data", "ring8", "--out", tmp_path)
    _one_line_error(p, f"--out {tmp_path}: is a directory")
    p = _cli("explain", "ns", "--plot", tmp_path)
    _one_line_error(p, f"--plot {tmp_path}: is a directory")


def test_unreadable_csv_and_toml_are_user_errors(tmp_path):
    d = tmp_path / "dir.csv"
    d.mkdir()  # a directory named like a CSV: open() fails with IsADirectoryError
    with pytest.raises(UserError, match=r"dir\.csv: not a regular file \(a directory\); give a CSV file"):
        read_csv(d)
    t = tmp_path / "c.toml"
    t.write_text("[train]\nsteps = 3\n")
    t.chmod(0)
    try:
        if os.access(t, os.R_OK):  # root reads anything: nothing to test
            pytest.skip("running as a user who can read a mode-000 file")
        with pytest.raises(UserError, match=r"c\.toml: cannot read the config file \(Permission denied\)"):
            C.load_toml(t)
    finally:
        t.chmod(0o644)


@pytest.mark.parametrize(
    "exc, line",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/out/runs/ns/seed0/samples.npz"),
         "/out/runs/ns/seed0/samples.npz: No space left on device; free some space"),
        (PermissionError(errno.EACCES, "Permission denied", "/ro/out"), "/ro/out: Permission denied; choose a "),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"), "/tmp: Is a directory"),
        (OSError(errno.EROFS, "Read-only file system"), "Read-only file system; choose a writable location"),
    ],
)
def test_os_error_in_a_command_is_one_line_exit_2(exc, line, monkeypatch, capsys):
    from losslab import cli

    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_list", boom)
    with pytest.raises(SystemExit) as e:
        main(["list"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith(f"losslab: error: {line}") and err.count("\n") == 1
    assert os_error_line(exc) in err


def test_keyboard_interrupt_and_user_error_keep_their_codes(monkeypatch, capsys):
    from losslab import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_list", interrupted)
    with pytest.raises(SystemExit) as e:
        main(["list"])
    assert e.value.code == 130
    monkeypatch.undo()
    with pytest.raises(SystemExit) as e:
        main(["list", "things"])
    assert e.value.code == 2
    assert "unknown list 'things'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 6. stale temp files


def test_clean_stale_temps_removes_only_interrupted_writes(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "ns" / "seed0"
    run.mkdir(parents=True)

    def crash(src, dst):  # the process dies between the temp write and the rename
        raise RuntimeError("killed")

    monkeypatch.setattr(io.os, "replace", crash)
    monkeypatch.setattr(io.os, "unlink", lambda p: None)  # ... so its cleanup never runs either
    with pytest.raises(RuntimeError):
        io.atomic_write_json(run / "result.json", {"status": "ok"})
    monkeypatch.undo()
    leftovers = [p for p in run.iterdir()]
    assert len(leftovers) == 1 and io.is_stale_temp(leftovers[0].name), leftovers
    assert leftovers[0].name.startswith(".losslab-tmp.result.json.") and leftovers[0].name.endswith(".tmp")

    # An editor's or another tool's atomic-write temp file has the same shape without losslab's prefix.
    keep = [tmp_path / "results.json", tmp_path / ".results.json.tmp", tmp_path / "x.abcd1234.tmp",
            tmp_path / ".notes.abcd1234.tmp.bak", run / "metrics.jsonl", tmp_path / ".x.abcdefgh.tmp",
            tmp_path / ".compare.json.k3j_9x0a.tmp", run / ".result.json.abcd1234.tmp"]
    for p in keep:
        p.write_text("keep")
    (tmp_path / ".losslab-tmp.dir.abcd1234.tmp").mkdir()  # a directory of that name is not ours
    stale_top = tmp_path / ".losslab-tmp.compare.json.k3j_9x0a.tmp"
    stale_top.write_text("half")

    assert io.clean_stale_temps(tmp_path, recursive=False) == [stale_top]
    assert leftovers[0].exists()
    assert io.clean_stale_temps(tmp_path) == [leftovers[0]]
    assert all(p.exists() for p in keep) and (tmp_path / ".losslab-tmp.dir.abcd1234.tmp").is_dir()
    assert io.clean_stale_temps(tmp_path / "missing") == []
    assert sorted(os.listdir(run)) == [".result.json.abcd1234.tmp", "metrics.jsonl"]
