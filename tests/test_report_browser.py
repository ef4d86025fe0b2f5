"""report.html in a real browser: every figure decodes and nothing is wider than a 1280 px laptop screen.

Headless Chromium loads a copy of the report with a small script appended
that, after the load event, measures every ``<img>`` (``naturalWidth`` > 0:
the base64 PNG decoded), the page (``document.scrollWidth`` <= ``innerWidth``)
and each table outside a collapsed ``<details>`` (its ``scrollWidth`` fits its
container: the ranking needs no horizontal scrolling) and writes the result
into the DOM, which ``--dump-dom`` prints. Skipped only where no Chromium
binary exists (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from losslab.io import append_jsonl, atomic_write_json
from losslab.report import build_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")

WIDTH = 1280
LOSSES = ["minimax", "ns", "wgan", "wgan-gp", "lsgan", "hinge", "dragan", "ebgan", "began"]

CHECK = """
<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const tables = [...document.querySelectorAll('table')].filter(t => !t.closest('details:not([open])'));
  const res = {
    images: imgs.length,
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    wideTables: tables.filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).length,
    tables: tables.length,
  };
  const pre = document.createElement('pre');
  pre.id = 'losslab-check';
  pre.textContent = JSON.stringify(res);
  document.body.appendChild(pre);
});
</script>
"""


def _comparison(out: Path) -> Path:
    """A 9-loss GAN comparison on ring8 (2 seeds, every metric column, curves for each run)."""
    rng = np.random.default_rng(0)
    modes = np.array([[np.cos(a), np.sin(a)] for a in np.arange(8) * np.pi / 4], dtype=np.float32) * 2
    real = (modes[rng.integers(0, 8, 400)] + 0.05 * rng.normal(size=(400, 2))).astype(np.float32)
    out.mkdir(parents=True)
    np.savez(out / "reference.npz", real=real, modes=modes)
    runs, ranking = [], []
    for i, loss in enumerate(LOSSES):
        vals = []
        for seed in (0, 1):
            rd = f"runs/{loss}/seed{seed}"
            (out / rd).mkdir(parents=True)
            append_jsonl(out / rd / "metrics.jsonl", [
                {"step": 10 * t, "g_loss": float(np.sin(t / 3) + rng.normal(0, 0.1)), "d_loss": 0.7,
                 "g_grad_norm": float(np.exp(-t / 20)), "d_grad_norm": 1.0, "g_grad_mean": float(rng.normal(0, 1e-4)),
                 "d_grad_mean": float(rng.normal(0, 1e-3)), "d_real": 0.4, "d_fake": 1.2, "d_acc": 0.6}
                for t in range(40)])
            np.savez(out / rd / "samples.npz", samples=real[:200] + 0.1 * i)
            w1 = 0.1 + 0.05 * i + 0.01 * seed
            vals.append(w1)
            runs.append({"loss": loss, "seed": seed, "status": "ok", "run_dir": rd, "wall_seconds": 12.5,
                         "metrics": {"w1": w1, "modes_covered": 8 - i % 3, "num_modes": 8, "high_quality": 0.9,
                                     "reverse_kl": 0.01, "n_eval": 2000}})
        ranking.append({"loss": loss, "mean": float(np.mean(vals)), "ci95": [-0.05, 2 * float(np.mean(vals))],
                        "values": vals, "seeds": [0, 1], "n_ok": 2, "n_runs": 2, "stability": 1.0,
                        "collapse_rate": 0.5, "vanished_rate": 0.0, "wall_seconds_mean": 12.5,
                        "d_updates_mean": 1500.0, "sampling_nfe": 1, "family": "gan",
                        "metrics_mean": {"w1": float(np.mean(vals)), "modes_covered": 7.0, "high_quality": 0.9,
                                         "reverse_kl": 0.01, "d_accuracy": 0.61, "precision": 0.8}})
    atomic_write_json(out / "results.json", {
        "dataset": {"name": "ring8", "kind": "vector", "shape": [2], "num_modes": 8},
        "family": "gan", "budget": {"g_updates": 400, "batch_size": 256},
        "primary_metric": {"name": "w1", "higher_is_better": False, "description": "W1"},
        "runs": runs, "ranking": ranking,
        "recommendation": {"loss": "minimax", "verdict": "no clear winner", "best_group": LOSSES[:3],
                           "reasons": ["a reason " * 30]},
        "hparams": {loss: {"optimizer": "adam", "lr_g": 0.005, "lr_d": 0.005, "betas": [0.5, 0.999],
                           "n_critic": 5, "lr_scale": 5.0, "steps": 400, "batch_size": 256} for loss in LOSSES},
        "notes": [],
    })
    return out


def _check(html_path: Path, tmp: Path) -> dict:
    page = tmp / "check.html"
    page.write_text(html_path.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp / 'profile'}", f"--window-size={WIDTH},900", "--hide-scrollbars",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    m = re.search(r'<pre id="losslab-check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no check result from chromium (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_report_html_figures_load_and_fit_1280px(tmp_path):
    out = _comparison(tmp_path / "cmp")
    paths = build_report(out)
    res = _check(paths["html"], tmp_path)
    n_png = len(list((out / "figures").glob("*.png")))
    assert res["images"] == n_png >= 3  # ranking, overview, samples, one diagnostics figure per loss
    assert res["broken"] == []
    assert res["innerWidth"] == WIDTH
    assert res["scrollWidth"] <= res["innerWidth"], res
    assert res["tables"] >= 2 and res["wideTables"] == 0, res


def test_the_check_sees_a_page_that_overflows(tmp_path):
    """The measurement itself: a 3000 px wide element and a broken image are caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><div style="width:3000px">wide</div>'
                   '<img alt="broken" src="data:image/png;base64,AAAA"><table><tr><td>x</td></tr></table>'
                   "</body></html>", encoding="utf-8")
    res = _check(bad, tmp_path)
    assert res["scrollWidth"] > WIDTH
    assert res["broken"] == ["broken"]
