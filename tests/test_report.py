"""Tests of losslab.report: a fake comparison directory in, report.md / report.html / figures out."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from numpy.testing import assert_allclose

from losslab.errors import UserError
from losslab.io import append_jsonl, atomic_write_json
from losslab.report import build_report
from losslab.report.plots import image_grid, seed_mean
from losslab.report.render import DASH, fmt_ci, fmt_num

# Ranking order differs from the order of the runs (and from alphabetical order),
# so a table that follows the runs or sorts by name fails the order test.
LOSSES = ["wgan-gp", "ns"]  # best first
REASONS = ["lowest mean w1 of 2 losses", "no run of wgan-gp diverged"]
NOTE = "ns diverged once in 2 seeds"


def _rows(loss: str, seed: int, n: int, diverged: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        step = 10 * i
        row = {
            "step": step,
            "d_updates": step * (5 if loss == "wgan-gp" else 1),
            "d_loss": float(rng.normal()),
            "g_loss": float(rng.normal()),
            "d_real": float(rng.normal()),
            "d_fake": float(rng.normal()),
            "g_grad_norm": float(np.exp(-i)),  # a vanishing generator gradient
            "g_grad_mean": float(rng.normal() * 1e-4),
            "d_grad_norm": 1.0,
            "d_grad_mean": None,  # null entries are skipped
            "wall": 0.1 * i,
        }
        if loss == "ns":
            row["p_real"], row["p_fake"] = 0.9, 0.1
        else:
            row["w_estimate"] = float(rng.normal())
        rows.append(row)
    if diverged:
        rows[-1]["g_loss"] = float("nan")  # written as null
        rows[-1]["g_grad_norm"] = 0.0  # drawn at the log floor, no crash
    return rows


def make_out(tmp: Path, case: str) -> tuple[Path, dict]:
    """A comparison directory with 2 losses x 2 seeds; ns seed 1 diverged without samples."""
    out = tmp / f"out_{case}"
    rng = np.random.default_rng(0)
    if case == "2d":
        modes = np.array([[np.cos(a), np.sin(a)] for a in np.arange(8) * 2 * np.pi / 8], dtype=np.float32) * 2
        real = (modes[rng.integers(0, 8, 400)] + 0.05 * rng.normal(size=(400, 2))).astype(np.float32)
        ref = {"real": real, "modes": modes, "mode_std": np.float32(0.05)}
        ds = {"name": "ring8", "kind": "vector", "shape": [2], "num_modes": 8, "feature_net": None}
        primary = {"name": "w1", "higher_is_better": False, "description": "Wasserstein-1 to held-out real samples"}
    elif case == "1d":
        real = rng.normal(size=(300, 1)).astype(np.float32)
        grid = np.linspace(-4, 4, 101, dtype=np.float32)
        ref = {"real": real, "pdf_x": grid, "pdf_y": np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)}
        ds = {"name": "gaussian1d", "kind": "vector", "shape": [1], "num_modes": None, "feature_net": None}
        primary = {"name": "w1", "higher_is_better": False, "description": "W1"}
    elif case == "5d":
        modes = np.eye(5, dtype=np.float32) * 3
        real = (modes[rng.integers(0, 5, 300)] + 0.1 * rng.normal(size=(300, 5))).astype(np.float32)
        ref = {"real": real, "modes": modes, "mode_std": np.float32(0.1)}
        ds = {"name": "simplex5", "kind": "vector", "shape": [5], "num_modes": 5, "feature_net": None}
        primary = {"name": "w1", "higher_is_better": False, "description": "W1"}
    else:
        real = rng.uniform(-1, 1, size=(20, 1, 8, 8)).astype(np.float32)
        ref = {"real": real}
        ds = {"name": "tiny", "kind": "image", "shape": [1, 8, 8], "num_modes": None, "feature_net": "tiny-cnn"}
        primary = {"name": "fid", "higher_is_better": False, "description": "FID in tiny-cnn features"}
    out.mkdir(parents=True)
    np.savez(out / "reference.npz", **ref)

    pm = primary["name"]
    runs = []
    for loss in ["ns", "wgan-gp"]:  # run order != ranking order
        for seed in (0, 1):
            diverged = loss == "ns" and seed == 1
            run_dir = f"runs/{loss}/seed{seed}"
            (out / run_dir).mkdir(parents=True)
            # In the image case the diverged run also lacks metrics.jsonl.
            if not (diverged and case == "image"):
                append_jsonl(out / run_dir / "metrics.jsonl", _rows(loss, seed, 6, diverged))
            if not diverged:
                x = real[rng.integers(0, len(real), 50)] + 0.1 * rng.normal(size=(50, *real.shape[1:]))
                np.savez(out / run_dir / "samples.npz", samples=x.astype(np.float32))
            runs.append(
                {
                    "loss": loss,
                    "seed": seed,
                    "status": "diverged" if diverged else "ok",
                    "error": "loss became NaN at step 50" if diverged else None,
                    "metrics": {} if diverged else {pm: 0.5 + 0.1 * seed + (loss == "ns"), "modes_covered": 7},
                    "g_updates": 50 if diverged else 60,
                    "d_updates": 60,
                    "wall_seconds": 3.25,
                    "diverged_at": 50 if diverged else None,
                    "run_dir": run_dir,
                }
            )
    ranking = [
        {
            "loss": "wgan-gp",
            "mean": 0.55,
            "ci95": [0.1234, 0.9876],
            "n_ok": 2,
            "n_runs": 2,
            "stability": 1.0,
            "collapse_rate": 0.5,
            "vanished_rate": 0.0,
            "wall_seconds_mean": 3.25,
            "d_updates_mean": 300.0,
            "metrics_mean": {pm: 0.55, "modes_covered": 7.0, "high_quality": 0.875, "num_modes": 8},
        },
        {
            "loss": "ns",
            "mean": 1.5,
            "ci95": None,  # one ok seed
            "n_ok": 1,
            "n_runs": 2,
            "stability": 0.5,
            "collapse_rate": None,
            "vanished_rate": 0.5,
            "wall_seconds_mean": 3.25,
            "d_updates_mean": 60.0,
            "metrics_mean": {pm: 1.5, "modes_covered": 7.0, "high_quality": None, "num_modes": 8},
        },
    ]
    results = {
        "dataset": ds,
        "family": "gan",
        "budget": {"g_updates": 60, "batch_size": 64},
        "primary_metric": primary,
        "runs": runs,
        "ranking": ranking,
        "recommendation": {"loss": "wgan-gp", "winner": "wgan-gp", "verdict": "clear winner", "reasons": REASONS},
        "notes": [NOTE],
    }
    atomic_write_json(out / "results.json", results)
    return out, results


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _md_tables(section: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table of a section as (header, rows), in order."""
    out, block = [], []
    for ln in section.splitlines() + [""]:
        if ln.startswith("|"):
            block.append([c.strip() for c in ln.strip().strip("|").split(" | ")])
        elif block:
            out.append((block[0], block[2:]))
            block = []
    return out


def _md_table(section: str) -> list[list[str]]:
    """The rows of a section's first table."""
    return _md_tables(section)[0][1]


@pytest.fixture(scope="module", params=["2d", "1d", "image"])
def built(request, tmp_path_factory):
    out, results = make_out(tmp_path_factory.mktemp(request.param), request.param)
    paths = build_report(out)
    return out, results, paths


def test_outputs_exist_and_figures_decode(built):
    out, results, paths = built
    assert paths == {"markdown": out / "report.md", "html": out / "report.html", "figures": out / "figures"}
    names = {"ranking.png", "samples.png", "overview.png", "diagnostics_ns.png", "diagnostics_wgan-gp.png"}
    assert names <= {p.name for p in paths["figures"].glob("*.png")}
    for name in names:
        img = mpimg.imread(paths["figures"] / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.01  # something is drawn, not a blank canvas
        assert (paths["figures"] / name).stat().st_size < 400_000
    assert not list(out.glob("**/*.tmp"))  # atomic writes leave no temp files


def test_html_is_self_contained_and_embeds_the_figures(built):
    out, _, paths = built
    page = paths["html"].read_text()
    assert 'src="http' not in page and 'src="figures/' not in page and "<script" not in page and "<link" not in page
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    md_figs = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", paths["markdown"].read_text())
    assert len(uris) == len(md_figs) == 5
    # Each embedded image is byte for byte the figure the Markdown links to, in the same order.
    for uri, rel in zip(uris, md_figs):
        assert base64.b64decode(uri) == (out / rel).read_bytes()


def test_same_content_in_markdown_and_html(built):
    _, results, paths = built
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    texts = LOSSES + REASONS + [NOTE, results["dataset"]["name"], results["primary_metric"]["description"]]
    if results["dataset"]["feature_net"]:
        texts.append(results["dataset"]["feature_net"])
    for text in texts:
        assert text in md
        assert html.escape(text) in page
    assert "Recommended loss: **wgan-gp**" in md and "Recommended loss: <strong>wgan-gp</strong>" in page
    assert "60 generator updates per run, batch size 64" in md


def test_ranking_table_follows_results_order_and_numbers(built):
    _, results, paths = built
    md = paths["markdown"].read_text()
    table = _md_table(_section(md, "Ranking"))
    assert [row[1] for row in table] == ["**wgan-gp**", "**ns**"]
    assert [row[0] for row in table] == ["1", "2"]
    # HTML: the same order.
    page = paths["html"].read_text()
    assert page.index("<td><strong>wgan-gp</strong></td>") < page.index("<td><strong>ns</strong></td>")
    # Primary cell: mean and CI bounds parse back to the results.json numbers.
    nums = [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]\d+)?", table[0][2])]
    assert_allclose(nums, [0.55, 0.1234, 0.9876], rtol=1e-3)
    assert table[1][2] == "1.5"  # no CI with one ok seed
    assert table[0][3] == "2 / 2" and table[1][3] == "1 / 2"
    assert table[0][4] == "100%" and table[1][4] == "50%"
    assert table[0][5] == "50%" and table[1][5] == DASH  # collapse rate null -> dash
    (head, _), (head2, table2) = _md_tables(_section(md, "Ranking"))
    gv = head.index("generator gradient vanished")
    assert table[0][gv] == "0%" and table[1][gv] == "50%"
    # Secondary metrics: a second, collapsible table in the same order.
    assert "<details><summary>Secondary metrics and costs</summary>" in _section(md, "Ranking")
    assert [row[0] for row in table2] == ["**wgan-gp**", "**ns**"]
    hq = head2.index("% high quality")
    assert table2[0][hq] == "87.5%" and table2[1][hq] == DASH  # None metric -> dash
    assert "% high quality" not in head  # the main table holds the primary metric and trust only
    assert not any("num_modes" in h for h in head + head2)


def test_per_run_table_marks_the_diverged_run(built):
    _, results, paths = built
    table = _md_table(_section(paths["markdown"].read_text(), "Runs"))
    assert len(table) == 4
    by_dir = {row[-1].strip("`"): row for row in table}
    assert set(by_dir) == {r["run_dir"] for r in results["runs"]}
    bad = by_dir["runs/ns/seed1"]
    assert bad[2] == "diverged at step 50" and bad[3] == DASH and "NaN at step 50" in bad[5]
    assert all(row[2] == "ok" and row[5] == "" for d, row in by_dir.items() if d != "runs/ns/seed1")
    # Runs are grouped in ranking order.
    assert [row[0] for row in table] == ["wgan-gp", "wgan-gp", "ns", "ns"]
    page = paths["html"].read_text()
    assert "<td>diverged at step 50</td>" in page


def test_missing_results_json_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"no results\.json in .*losslab compare --out"):
        build_report(tmp_path)


def test_missing_run_files_do_not_stop_the_report(tmp_path, monkeypatch):
    from losslab.report import plots

    drawn = []
    real_plot = plots.plot_samples
    monkeypatch.setattr(plots, "plot_samples", lambda panels, *a, **k: (
        drawn.append([(label, x is None) for label, x, _ in panels]), real_plot(panels, *a, **k))[1])
    out, results = make_out(tmp_path, "2d")
    (out / "runs/wgan-gp/seed0/samples.npz").unlink()  # seed 1 is used instead
    (out / "runs/ns/seed0/samples.npz").unlink()  # ns has no sample at all now
    (out / "runs/ns/seed0/metrics.jsonl").unlink()
    (out / "reference.npz").unlink()
    paths = build_report(out, quiet=True)
    assert mpimg.imread(paths["figures"] / "samples.png").ndim == 3
    assert "diverged at step 50" in paths["markdown"].read_text()
    assert drawn == [[("data", True), ("wgan-gp (seed 1)", False), ("ns", True)]]


@pytest.mark.parametrize("damage, fragment", [
    (b"not an npz", "not a NumPy .npz archive"),
    ("truncate", "corrupt or truncated .npz archive"),
    ("other-key", "no array 'samples'"),
    ("wrong-shape", "'samples' of shape (7, 3)"),
])
def test_corrupt_samples_stop_the_report_with_one_line_naming_the_file(tmp_path, damage, fragment):
    """A samples.npz that exists but cannot be drawn is not silently replaced by another seed's."""
    from losslab.io import npz_bytes

    out, _ = make_out(tmp_path, "2d")
    f = out / "runs/wgan-gp/seed0/samples.npz"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == "other-key":
        f.write_bytes(npz_bytes(x=np.zeros((7, 2), np.float32)))
    elif damage == "wrong-shape":
        f.write_bytes(npz_bytes(samples=np.zeros((7, 3), np.float32)))
    else:
        f.write_bytes(damage)
    with pytest.raises(UserError) as e:
        build_report(out)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{f}: ") and fragment in msg
    assert msg.endswith("command to draw the run's samples again")
    assert f"delete {out / 'runs/wgan-gp/seed0/result.json'}" in msg
    assert not (out / "report.md").exists()


@pytest.mark.parametrize("damage, fragment", [
    (b"PK\x03\x04garbage", "corrupt or truncated .npz archive"),
    ("no-real", "'real'"),
])
def test_corrupt_reference_stops_the_report(tmp_path, damage, fragment):
    from losslab.io import npz_bytes

    out, _ = make_out(tmp_path, "2d")
    f = out / "reference.npz"
    f.write_bytes(npz_bytes(modes=np.zeros((8, 2))) if damage == "no-real" else damage)
    with pytest.raises(UserError) as e:
        build_report(out)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{f}") and fragment in msg and "rewrite it" in msg


@pytest.mark.parametrize("content", ['{"runs": [', "[1, 2]", '{"runs": {}, "ranking": []}'])
def test_corrupt_results_json_is_one_line_naming_the_file(tmp_path, content):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(UserError) as e:
        build_report(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "results.json"))
    words = msg.replace(str(tmp_path), "OUT")
    assert words.startswith("OUT/results.json ") and words.count("OUT") == 1 + words.count("losslab report OUT")
    assert ("is corrupt" in words) == (content == '{"runs": [')


def test_high_dimensional_vectors_are_shown_in_pca_coordinates(tmp_path):
    out, _ = make_out(tmp_path, "5d")
    paths = build_report(out)
    img = mpimg.imread(paths["figures"] / "samples.png")
    assert img.ndim == 3 and img[..., :3].std() > 0.01
    assert "first two principal components" in paths["markdown"].read_text()


def test_fmt_ci_numbers_round_trip():
    s = fmt_ci(0.123456, [0.1, 0.2])
    mean, lo, hi = (float(v) for v in re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", s).groups())
    assert_allclose([mean, lo, hi], [0.123456, 0.1, 0.2], rtol=5e-4)
    s = fmt_ci(1.5e-5, (-2.25e-4, 3.125e-4))
    nums = [float(v) for v in re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", s).groups()]
    assert_allclose(nums, [1.5e-5, -2.25e-4, 3.125e-4], rtol=1e-3)
    s = fmt_ci(0.5, [0.25, 0.75], percent=True)
    assert s == "50% [25%, 75%]"
    assert fmt_ci(2.0, None) == "2" and fmt_ci(2.0, [1.0, None]) == "2"
    assert fmt_ci(float("nan"), [1.0, 2.0]) == DASH and fmt_ci(None, None) == DASH
    assert fmt_num(12345.6) == "12346" and fmt_num(7) == "7" and fmt_num(float("inf")) == DASH
    assert fmt_num(True) == DASH and fmt_num("3") == DASH


def test_image_grid_maps_minus_one_one_to_unit_interval():
    x = np.zeros((3, 1, 2, 2), dtype=np.float32)
    x[0], x[1], x[2] = -1.0, 1.0, 0.0
    g = image_grid(x, ncol=3, pad=1)
    assert g.shape == (1 + 2 + 1, 1 + 3 * (2 + 1))
    assert_allclose(g[1:3, 1:3], 0.0)
    assert_allclose(g[1:3, 4:6], 1.0)
    assert_allclose(g[1:3, 7:9], 0.5)
    assert_allclose(g[0], 1.0)  # white padding
    rgb = image_grid(np.full((64, 3, 4, 4), 2.0))  # clipped, 8 x 8 grid
    assert rgb.shape == (1 + 8 * 5, 1 + 8 * 5, 3)
    assert_allclose(rgb.max(), 1.0)


def test_seed_mean_averages_over_seeds_at_each_step():
    a = [{"step": 0, "g_grad_norm": 1.0}, {"step": 10, "g_grad_norm": 3.0}]
    b = [{"step": 0, "g_grad_norm": 2.0}, {"step": 10, "g_grad_norm": None}, {"step": 20, "g_grad_norm": 4.0}]
    steps, mean = seed_mean([a, b], "g_grad_norm")
    assert_allclose(steps, [0.0, 10.0, 20.0])
    assert_allclose(mean, [1.5, 3.0, 4.0])


# ------------------------------------------------------------------ answer, clipping, hyperparameters


def test_report_opens_with_the_answer_and_clips_intervals(tmp_path):
    out, results = make_out(tmp_path, "2d")
    results["ranking"][0]["ci95"] = [-0.25, 1.35]  # a t interval below W1's floor of 0
    results["answer"] = ["wgan-gp is the clear winner on ring8: see `losslab explain wgan-gp`.", "Second."]
    results["hparams"] = {"wgan-gp": {"lr_g": 0.0005, "betas": [0.0, 0.9], "lr_scale": 5.0}}
    atomic_write_json(out / "results.json", results)
    paths = build_report(out)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    # The answer comes right after the title, before the header list, with its command as code.
    assert md.split("\n\n")[1].startswith("> wgan-gp is the clear winner on ring8: see `losslab explain wgan-gp`.")
    assert page.index('<div class="answer">') < page.index("<ul>")
    assert "<code>losslab explain wgan-gp</code>" in page
    # The interval is clipped to [0, ...) and the clipped bound marked, with a footnote.
    cell = _md_table(_section(md, "Ranking"))[0][2]
    assert cell == "0.55 [0\\*, 1.35]"
    assert "clipped: the Student-t interval reaches past the values w1 can take (>= 0)" in md
    # The learning-rate scaling is said, and the effective values are in a collapsible table.
    assert "multiplied by 5" in md and "loss.lr_scale" in md
    assert "<summary>Effective hyperparameters per loss (after presets and overrides)</summary>" in page
    assert "lr_g=0.0005, betas=(0, 0.9), lr_scale=5" in md


def test_unknown_loss_aliases_name_the_registered_losses():
    from losslab.losses import family_of, get_gan_loss

    with pytest.raises(UserError, match=r"bce is not a GAN loss name: the BCE GAN losses are minimax .* and ns"):
        family_of("bce")
    with pytest.raises(UserError, match=r"use --losses wgan,wgan-gp\. Choose from: .*wgan-gp"):
        get_gan_loss("wasserstein")
    with pytest.raises(UserError, match=r"^unknown loss 'nonsense'; choose from: "):
        family_of("nonsense")


def test_list_metrics_gives_counts_no_direction(capsys):
    from losslab.cli import main

    main(["list", "metrics"])
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert lines["w1"].endswith("(lower is better)") and lines["linear_probe"].endswith("(higher is better)")
    for count in ("n_eval", "num_modes", "num_classes", "n_real", "chance"):
        assert "better" not in lines[count], lines[count]


def test_the_race_is_drawn_and_no_loss_is_recommended_without_a_winner(tmp_path):
    """A real comparison directory (hand-made runs): the race figure, the critical-difference diagram, and
    "best so far" instead of "Recommended loss" when the race separated nobody."""
    from test_verdict import _w1

    from losslab import verdict
    from losslab.report import build_report

    _w1(tmp_path, {"hinge": [0.10, 0.30, 0.20, 0.25], "ns": [0.25, 0.15, 0.22, 0.2], "lsgan": [0.9, 0.8, 1.0, 0.85]})
    res = verdict.aggregate(tmp_path)
    assert res["recommendation"]["winner"] is None
    md = build_report(tmp_path)["markdown"].read_text()
    assert "Recommended loss" not in md
    assert f"No winner yet; best so far: **{res['recommendation']['loss']}**" in md
    for fig in ("race.png", "critical_difference.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 5000 and f"figures/{fig}" in md
    assert "## The race" in md or "The race" in md


def _fail_to_draw(path):
    raise RuntimeError(f"could not draw {path}")


def test_figures_drawn_by_worker_processes_are_the_same_files(tmp_path, monkeypatch):
    """plots.Drawer: the per-loss figures drawn in 2 worker processes are byte-identical to those drawn here,
    and a worker's error reaches the caller."""
    from losslab.report import plots

    serial, _ = make_out(tmp_path / "a", "2d")
    parallel, _ = make_out(tmp_path / "b", "2d")
    build_report(serial, workers=2)  # 4 per-loss figures < PARALLEL_MIN_FIGURES: drawn here
    pools = []
    real_init = plots.Drawer.__init__

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        pools.append(self.pool)

    monkeypatch.setattr(plots.Drawer, "__init__", spy)
    monkeypatch.setattr(plots, "PARALLEL_MIN_FIGURES", 2)
    build_report(parallel, workers=2)
    assert len(pools) == 1 and pools[0] is not None  # a pool drew them
    names = sorted(p.name for p in (serial / "figures").glob("*.png") if p.name.startswith(("diagnostics_",
                                                                                              "learning_")))
    assert names == sorted(p.name for p in (parallel / "figures").glob("*.png")
                           if p.name.startswith(("diagnostics_", "learning_"))) and len(names) >= 2
    for name in names:
        assert (serial / "figures" / name).read_bytes() == (parallel / "figures" / name).read_bytes(), name
    assert (serial / "report.md").read_text() == (parallel / "report.md").read_text()
    with pytest.raises(RuntimeError, match="could not draw x.png"):
        with plots.Drawer(2, figures=2) as draw:
            draw.draw(_fail_to_draw, "x.png")
