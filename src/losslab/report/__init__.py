"""The comparison report, built only from files on disk.

``build_report(OUT)`` reads ``OUT/results.json`` (written by ``losslab
compare``), ``OUT/reference.npz`` and each run directory's ``metrics.jsonl`` and
``samples.npz``; it never trains and never loads a data set. It writes
``OUT/report.md``, a self-contained ``OUT/report.html`` with the same content
(figures embedded as base64 PNG) and the figures under ``OUT/figures/``.
A failed or diverged run without its files is shown as such; it never stops
the report. A file that exists but cannot be read (a corrupt results.json,
reference.npz or samples.npz) stops it with one line naming the file and what
to do, rather than drawing a report that silently leaves it out.
:func:`rebuild` is ``losslab report``: the verdict and the report under the
comparison's lock.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from losslab.errors import UserError
from losslab import io
from losslab.io import atomic_write_bytes, read_jsonl
from losslab.rundir import DIFFUSION_ARTIFACTS, METRICS, REFERENCE, RESULT, RESULTS, SAMPLES, read_json_file
from losslab.report import plots
from losslab.report.answer import answer
from losslab.report.diffusion import plot_diffusion
from losslab.report.embedding import EMBEDDING_FILE, plot_embedding_grid
from losslab.report.families import describe
from losslab.report.learning import learning_figures
from losslab.report.race_figures import race_figures
from losslab.report.signatures import diagnostics_caption, loss_panels
from losslab.report.render import report_blocks, to_html, to_markdown
from losslab.losses.variants import base_name

__all__ = ["build_report", "report_paths"]


# ------------------------------------------------------------------ loading


def load_results(out: Path) -> dict:
    """Parsed ``OUT/results.json``.

    Raises:
        UserError: missing, unreadable, corrupt, or not a JSON object with ``runs``
            and ``ranking`` lists; one line naming the file and what to do.
    """
    path = out / RESULTS
    if not path.is_file():
        raise UserError(f"no results.json in {out}; run `losslab compare --out {out}` first")
    results = read_json_file(path)
    if not (isinstance(results, dict) and isinstance(results.get("runs"), list)
            and isinstance(results.get("ranking"), list)):
        raise UserError(f"{path} is not a losslab results file (an object with runs and ranking expected); "
                        f"rebuild it with `losslab report {out}`")
    return results


def _load_npz(path: Path, what_to_do: str) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, or ``{}`` when it is missing.

    Raises:
        UserError: the file exists but is corrupt (``path: ...; what_to_do``).
    """
    if not path.exists():
        return {}
    try:
        return io.read_npz(path)
    except UserError as e:
        raise UserError(f"{str(e).split('; ')[0]}; {what_to_do}") from None


def load_reference(out: Path, kind: str) -> dict[str, Any]:
    """``OUT/reference.npz`` as a dict: ``real``, optional ``modes``, ``pdf_x``, ``pdf_y``, plus
    ``project`` ((n, d) -> (n, 2): PCA fitted on ``real`` when d > 2; Pearson 1901)."""
    redo = f"delete it and rerun the same `losslab compare --out {out}` command to rewrite it"
    ref: dict[str, Any] = _load_npz(out / REFERENCE, redo)
    real = ref.get("real")
    if (out / REFERENCE).exists() and (real is None or real.ndim not in (2, 4) or len(real) == 0):
        got = "no array 'real'" if real is None else f"'real' of shape {tuple(real.shape)}"
        raise UserError(f"{out / REFERENCE}: {got}, expected (n, d) or (n, C, H, W); {redo}")
    if real is not None and kind != "image":
        real = ref["real"] = real.reshape(len(real), -1).astype(np.float64)
        if real.shape[1] > 2 and len(real) > 2:
            from sklearn.decomposition import PCA

            pca = PCA(n_components=2).fit(real[np.isfinite(real).all(axis=1)])
            ref["project"] = lambda a: pca.transform(np.asarray(a, dtype=np.float64).reshape(len(a), -1))
    return ref


def _samples(out: Path, run: dict, shape: list | None) -> np.ndarray | None:
    """``samples`` of a run's ``samples.npz`` reshaped to ``(n, *shape)``, or ``None``."""
    if not run.get("run_dir"):
        return None
    rd = out / str(run["run_dir"])
    redo = (f"delete {rd / RESULT} and rerun the same `losslab compare --out {out}` command to draw the run's "
            "samples again")
    z = _load_npz(rd / SAMPLES, redo)
    if not z:
        return None
    x = z.get("samples")
    size = int(np.prod(shape)) if shape else None
    if x is None or x.ndim < 2 or (size is not None and x[0].size != size):
        got = "no array 'samples'" if x is None else f"'samples' of shape {tuple(x.shape)}"
        raise UserError(f"{rd / SAMPLES}: {got}, expected (n, {', '.join(map(str, shape or ['...']))}); {redo}")
    if len(x) == 0:
        return None
    if shape:
        x = x.reshape(len(x), *shape)
    return x.astype(np.float32)


def _rows(out: Path, run: dict) -> list[dict]:
    """A run's ``metrics.jsonl`` rows; ``[]`` when missing or unreadable."""
    if not run.get("run_dir"):
        return []
    try:
        return read_jsonl(out / str(run["run_dir"]) / METRICS)
    except (OSError, UnicodeDecodeError):
        return []


def _is_primary_ok(run: dict, primary: str) -> bool:
    return run.get("status") == "ok" and plots.is_number((run.get("metrics") or {}).get(primary))


# ------------------------------------------------------------------ figures


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name))


def _family_of_loss(loss: str, runs: list[dict], ranking: list[dict], family: Any) -> str:
    """A loss's family: from its ranking row or its runs, else the table's (first) family."""
    for r in [*ranking, *runs]:
        if str(r.get("loss")) == loss and r.get("family"):
            return str(r["family"])
    return str(family or "gan").split("+")[0]


def make_figures(out: Path, results: dict, draw: plots.Drawer | None = None) -> list[tuple[str, str, str]]:
    """Draw every figure under ``OUT/figures/``.

    ``draw`` draws the per-loss diagnostics figures (default: here, one after
    another); the caller waits for it before reading the files.

    Returns
    -------
    list of (relpath, heading, caption)
        Paths relative to ``out``, in report order.
    """
    figdir = out / "figures"
    ds = results.get("dataset") or {}
    ds = ds if isinstance(ds, dict) else {"name": str(ds)}
    kind = ds.get("kind") or "vector"
    pm = results.get("primary_metric") or {}
    primary, hib = str(pm.get("name") or "?"), bool(pm.get("higher_is_better"))
    ranking = results.get("ranking") or []
    runs = results.get("runs") or []
    words = describe(results.get("family"))
    losses = [str(r.get("loss")) for r in ranking]
    losses += sorted({str(r.get("loss")) for r in runs} - set(losses))
    by_loss = {loss: [r for r in runs if str(r.get("loss")) == loss] for loss in losses}
    rows = {id(r): _rows(out, r) for r in runs}
    figs: list[tuple[str, str, str]] = []

    # 1. Ranking.
    seeds = {loss: [r["metrics"][primary] for r in rs if _is_primary_ok(r, primary)] for loss, rs in by_loss.items()}
    upper = ds.get("num_modes") if primary == "modes_covered" and plots.is_number(ds.get("num_modes")) else None
    ladder = (results.get("ladder") or {}).get("rungs")
    plots.plot_ranking(ranking, seeds, primary, hib, figdir / "ranking.png", upper=upper, ladder=ladder)
    figs.append(
        (
            "figures/ranking.png",
            "Ranking",
            f"{primary} per loss, best first ({'higher' if hib else 'lower'} is better): the large dot is the seed "
            "mean with its 95% CI (clipped to the metric's possible values), small dots are single seeds; "
            "trust an ordering only where the intervals do not overlap."
            + (" Dashed lines: the quality ladder's rungs, known image sets measured in the same feature space."
               if ladder and primary == "fid" else ""),
        )
    )

    figs += race_figures(figdir, results)  # the race: survivors per look, seeds and compute, CD diagram

    # 2. Overview of the gradient norm of the trained network (generator, denoiser or encoder).
    plots.plot_overview({loss: [rows[id(r)] for r in rs] for loss, rs in by_loss.items()}, figdir / "overview.png",
                        network=words.network)
    figs.append(("figures/overview.png", f"{words.network.capitalize()} gradient norm, all losses",
                 words.overview_caption))

    # Quality curves and the search (losslab.convergence, losslab.search): self-contained block.
    figs += _curve_and_search_figures(figdir, results, by_loss, primary, hib)

    # 3. Samples: one run per loss (seed 0 if ok, else the first ok run with samples).
    ref = load_reference(out, kind)
    real = ref.get("real")
    shape = ds.get("shape")
    panels: list[tuple[str, np.ndarray | None, str]] = [("data", real, "no reference.npz")]
    for loss, rs in by_loss.items():
        ok = sorted((r for r in rs if r.get("status") == "ok"), key=lambda r: r.get("seed") != 0)
        pick = next(((r, x) for r in ok if (x := _samples(out, r, shape)) is not None), None)
        if pick is None:
            statuses = ", ".join(sorted({str(r.get("status")) for r in rs})) or "no runs"
            panels.append((loss, None, f"no samples ({statuses})"))
        else:
            panels.append((f"{loss} (seed {pick[0].get('seed')})", pick[1], ""))
    has_samples = any(x is not None for _, x, _ in panels[1:])  # contrastive runs generate nothing
    if has_samples:
        plots.plot_samples(panels, ref, kind, figdir / "samples.png")
    dim = real.shape[1] if real is not None and real.ndim == 2 else None
    if kind == "image":
        what = (
            "Grids of the first 64 generated images of one run per loss next to real images: look for repeated "
            "images (mode collapse), noise and broken shapes."
        )
    elif dim == 1:
        what = (
            "Histogram of generated samples of one run per loss against the true density (black line): look for "
            "missing or merged modes and mass between modes."
        )
    else:
        what = (
            "Generated samples (orange) of one run per loss over real samples (grey), true mode centres as +"
            + (", projected on the first two principal components of the real data" if "project" in ref else "")
            + ": look for uncovered modes (mode collapse) and samples strewn between modes."
        )
    if has_samples:
        figs.append(("figures/samples.png", "Samples", what))

    # 4. Diagnostics per loss, in the words and panels of the loss's own family.
    for loss, rs in by_loss.items():
        fam = describe(_family_of_loss(loss, rs, ranking, results.get("family")))
        rel = f"figures/diagnostics_{_safe(loss)}.png"
        seed_runs = [(r.get("seed"), rows[id(r)], r.get("status") == "diverged") for r in rs]
        panels = loss_panels(loss, fam, [rw for _, rw, _ in seed_runs], (results.get("hparams") or {}).get(loss))
        (draw or plots.Drawer()).draw(plots.plot_diagnostics, loss, seed_runs, out / rel, panels=panels,
                                      xlabel=f"{fam.network} update")
        figs.append((rel, f"Diagnostics: {loss}", diagnostics_caption(loss, fam, panels)))

    # 5. Contrastive runs: 2-D embedding of the test set coloured by class, one panel per loss.
    emb = []
    for loss, rs in by_loss.items():
        ok = sorted((r for r in rs if r.get("status") == "ok"), key=lambda r: r.get("seed") != 0)
        run = next((r for r in ok if (out / str(r.get("run_dir"))).joinpath(EMBEDDING_FILE).exists()), None)
        if run is not None:
            emb.append((f"{loss} (seed {run.get('seed')})", out / str(run["run_dir"])))
    if emb and plot_embedding_grid(emb, figdir / "embedding.png") is not None:
        figs.append(("figures/embedding.png", "Embeddings",
                     "Test-set embeddings of one run per loss projected to 2-D (PCA), coloured by class: "
                     "separated clusters are what the linear probe and kNN measure."))

    # 6. Diffusion runs: forward strip, reverse trajectory, loss per timestep bucket.
    for loss, rs in by_loss.items():
        ok = sorted((r for r in rs if r.get("status") == "ok"), key=lambda r: r.get("seed") != 0)
        run = next((r for r in ok if (out / str(r.get("run_dir"))).joinpath(DIFFUSION_ARTIFACTS).exists()), None)
        if run is None:
            continue
        rel = f"figures/diffusion_{_safe(loss)}.png"
        if plot_diffusion(out / str(run["run_dir"]), out / rel, reference=ref) is not None:
            figs.append((rel, f"Diffusion: {loss} (seed {run.get('seed')})",
                         "Top: the forward process q(x_t | x_0) taking data to noise; middle: the reverse "
                         "(sampling) trajectory from noise to samples; bottom: the training loss per timestep "
                         "bucket, which shows which noise levels the denoiser finds hard."))
    return figs


# ------------------------------------------------------------------ entry


def report_paths(out_dir: str | Path) -> dict[str, Path]:
    """Where :func:`build_report` writes: ``markdown`` OUT/report.md, ``html`` OUT/report.html, ``figures``."""
    out = Path(out_dir)
    return {"markdown": out / "report.md", "html": out / "report.html", "figures": out / "figures"}


def _curve_and_search_figures(figdir: Path, results: dict, by_loss: dict[str, list[dict]], primary: str,
                              hib: bool) -> list[tuple[str, str, str]]:
    """The quality-curve figure (when runs have curves) and the search figure (after ``--search``)."""
    figs: list[tuple[str, str, str]] = []
    curves = {loss: [r["curve"] for r in rs if r.get("status") == "ok" and r.get("curve")]
              for loss, rs in by_loss.items()}
    curves = {k: v for k, v in curves.items() if v}
    if curves:
        floor = (results.get("noise_floor_curve") or {}).get(primary)
        plots.plot_curves(curves, primary, hib, figdir / "curves.png", floor=floor)
        b = results.get("budget") or {}
        rates = ", ".join(f"{e['loss']} {e['converged_rate']:.0%}" for e in results.get("ranking") or []
                          if plots.is_number(e.get("converged_rate")))
        sug = b.get("suggested_steps") if b.get("suggested_steps") is not None else b.get("suggested_seconds")
        unit = "updates" if b.get("suggested_steps") is not None else "seconds"
        more = "more than " if b.get("suggested_capped") else ""
        line = (f" Dashed line: the noise floor, {primary} of held-out real samples (a perfect generator) at the "
                f"curves' {floor.get('n')} samples, mean {floor['mean']:.3g} over {floor.get('n_draws')} "
                "draws." if isinstance(floor, dict) and plots.is_number(floor.get("mean")) else "")
        figs.append(("figures/curves.png", "Quality during training",
                     f"{primary} at evenly spaced points of each run's budget, on fewer samples than the final "
                     "evaluation." + line + " A run counts as converged unless the trend of its points past half the "
                     "budget (a least-squares line) improves by more than 5% per quarter of the budget and significantly (one-sided t-test at "
                     "5% on the points' scatter about the line, at least their evaluation error from two "
                     f"independent draws per point). Converged runs: {rates or 'n/a'}. Budget the curves suggest: "
                     f"{more}{sug if sug is not None else 'n/a'} {unit}."))
    search = results.get("search")
    if isinstance(search, dict) and search.get("losses"):
        plots.plot_search(search, figdir / "search.png")
        raced = [str(e.get("loss")) for e in results.get("ranking") or []]
        best = "; ".join(f"{loss}: " + (", ".join(n for n in raced if base_name(n) == loss) or "none")
                         for loss in search["losses"])
        figs.append(("figures/search.png", "Equal-budget tuning",
                     f"Each loss had its default setting (trial 0) and {search.get('trials')} trials of the same "
                     f"budget on seeds from {search.get('trial_seed')} (not the final seeds), scored on "
                     f"{search.get('scored_on') or 'the test reference (a search of an older version)'}; sampler: "
                     f"{search.get('sampler')}. Then each loss's two best settings raced on the final seeds "
                     f"as candidates of their own (a plain name is the loss's defaults): {best}."))
    return figs


def build_report(out_dir: str | Path, *, quiet: bool = True, workers: int = 1) -> dict[str, Path]:
    """Build ``report.md``, ``report.html`` and ``figures/`` from a comparison directory.

    Takes no lock: call it while holding :func:`losslab.rundir.lock_dir` (as
    :func:`rebuild` and :func:`losslab.compare.run_compare` do). Every file is
    written atomically.

    Parameters
    ----------
    out_dir : str or Path
        The ``--out`` directory of ``losslab compare``: ``results.json``,
        ``reference.npz`` and the run directories named in it.
    quiet : bool
        When False, print the paths written to stderr.
    workers : int
        Processes drawing the per-loss figures (:class:`losslab.report.plots.Drawer`);
        the files are the same for any number.

    Returns
    -------
    dict
        :func:`report_paths`.

    Raises
    ------
    UserError
        ``OUT/results.json`` is missing, unreadable or malformed; a
        reference.npz or samples.npz that exists is corrupt or wrongly shaped.
    """
    out = Path(out_dir)
    results = load_results(out)
    if not isinstance(results.get("answer"), list):  # a results.json of an older version
        results["answer"] = answer(results)
    n_losses = len({str(r.get("loss")) for r in [*results["runs"], *results["ranking"]]})
    with plots.Drawer(workers, figures=2 * n_losses) as draw:  # a diagnostics and a learning figure per loss
        figures = make_figures(out, results, draw)
        learning = learning_figures(out, results, draw)
    blocks = report_blocks(results, figures, learning)
    paths = report_paths(out)
    atomic_write_bytes(paths["markdown"], to_markdown(blocks).encode("utf-8"))
    title = blocks[0][1] if blocks and blocks[0][0] == "h1" else "losslab report"
    atomic_write_bytes(paths["html"], to_html(blocks, base=out, title=title).encode("utf-8"))
    if not quiet:
        for key, path in paths.items():
            print(f"{key}: {path}", file=sys.stderr)
    return paths
