"""Figures of the comparison report, drawn from files on disk only.

Every function takes plain numpy arrays / lists of ``metrics.jsonl`` rows and
writes one PNG atomically. Figures are built with ``matplotlib.figure.Figure``
on the Agg canvas, never through ``pyplot``: no global figure registry, no
window, nothing to close, and a caller's interactive backend is left alone.
"""

from __future__ import annotations

import io
import math
import multiprocessing
from collections import defaultdict
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from losslab.convergence import mean_curve
from losslab.io import atomic_write_bytes
from losslab.report.style import OKABE_ITO, clip_ci, color, smooth

DPI = 100
MAX_POINTS = 2000  # scatter points per cloud (strided subsample), keeps PNGs small
GRAD_FLOOR = 1e-12  # a gradient norm <= 0 is drawn here on log axes
GRID_MAX = 64  # images per sample grid
PARALLEL_MIN_FIGURES = 8  # Drawer: fewer figures than this are drawn in-process (a pool costs ~2 s to start)
LADDER_LOG_SPAN = 30.0  # ranking figure: a log y-axis when the drawn values span more than this ratio


# ----------------------------------------------------------------- helpers


def is_number(x: Any) -> bool:
    """True for a finite int/float (bools and NaN/inf excluded)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def series(rows: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of ``key`` over the rows where both are finite numbers.

    Parameters
    ----------
    rows : list of dict
        ``metrics.jsonl`` rows; a missing ``step`` falls back to the row index.
    key : str
        Column name, e.g. ``"g_grad_norm"``; missing / null / NaN entries are skipped.

    Returns
    -------
    steps, values : (T,) float64 arrays, possibly empty.
    """
    pts = [(r.get("step", i), r.get(key)) for i, r in enumerate(rows)]
    pts = [(float(s), float(v)) for s, v in pts if is_number(s) and is_number(v)]
    if not pts:
        return np.zeros(0), np.zeros(0)
    s, v = np.asarray(pts, dtype=np.float64).T
    return s, v


def save(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` to PNG (``DPI``) and write it atomically to ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


class Drawer:
    """Draws figures now, or in ``workers`` processes when there are enough of them to pay for starting those.

    The report's slowest part is matplotlib's layout and PNG encoding, about
    1.5 s per diagnostics or learning figure on one core (2 per loss: 24 for
    the default comparison). With ``workers > 1`` and at least
    ``PARALLEL_MIN_FIGURES`` figures to draw, :meth:`draw` hands each to a
    pool of worker processes while the caller draws the other figures;
    otherwise it draws at once. The workers are forked where the platform can
    (the plotting code is loaded already; as PyTorch's DataLoader forks its
    workers on Linux), else spawned (each then imports it, about 2 s). The
    default comparison's report, 2 workers on 2 cores: 27 s -> 16 s.
    The files are the same either way (each figure is drawn by the same
    function from the same data). Use as a context manager: leaving it waits
    for every figure and raises the first error of a worker.

    Parameters
    ----------
    workers : int
        Processes for drawing (1: draw in this process).
    figures : int
        How many figures will go through :meth:`draw` (decides whether a pool is started).
    """

    def __init__(self, workers: int = 1, figures: int = 0) -> None:
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1 and figures >= PARALLEL_MIN_FIGURES:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self.pool = ProcessPoolExecutor(min(workers, figures), mp_context=multiprocessing.get_context(method))
        self.futures: list[Future] = []

    def draw(self, fn, *args: Any, **kwargs: Any) -> None:
        """Call ``fn(*args, **kwargs)`` (a module-level function writing a file), here or in a worker."""
        if self.pool is None:
            fn(*args, **kwargs)
        else:
            self.futures.append(self.pool.submit(fn, *args, **kwargs))

    def __enter__(self) -> "Drawer":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                for f in self.futures:
                    f.result()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


def note(ax, text: str) -> None:
    """Centre a grey message in an empty axes (missing data, failed run)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4", wrap=True)


def thin_points(x: np.ndarray) -> np.ndarray:
    """At most ``MAX_POINTS`` rows, by a deterministic stride."""
    return x[:: max(1, math.ceil(len(x) / MAX_POINTS))]


def _grid(n: int, ncol_max: int = 4, size: float = 3.2) -> tuple[Figure, list]:
    """Figure with ``n`` panels on a grid of at most ``ncol_max`` columns (extra axes hidden)."""
    ncol = min(n, ncol_max)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(size * ncol, size * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def image_grid(x: np.ndarray, ncol: int = 8, pad: int = 1) -> np.ndarray:
    """Tile images ``(N, C, H, W)`` in ``[-1, 1]`` into one picture in ``[0, 1]``.

    Parameters
    ----------
    x : (N, C, H, W) array
        Images scaled to ``[-1, 1]`` (losslab convention); NaN -> 0, values
        clipped. ``C`` is 1 or 3; any other ``C`` shows channel 0.
    ncol, pad : int
        Images per row; white pixels between images.

    Returns
    -------
    (H', W') array for one channel, (H', W', 3) for three, values in ``[0, 1]``.
    """
    x = np.clip((np.nan_to_num(np.asarray(x[:GRID_MAX], dtype=np.float64)) + 1.0) / 2.0, 0.0, 1.0)
    if x.shape[1] not in (1, 3):
        x = x[:, :1]
    n, c, h, w = x.shape
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    grid = np.ones((c, pad + nrow * (h + pad), pad + ncol * (w + pad)))
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = x[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


# ----------------------------------------------------------------- ranking


def plot_ranking(
    ranking: Sequence[dict], seed_values: dict[str, list[float]], metric: str, higher_is_better: bool, path: Path,
    *, upper: float | None = None, ladder: Sequence[dict] | None = None,
) -> Path:
    """Primary metric per loss (ranking order): seed mean with 95% CI bars, seeds as dots.

    With ``ladder`` (the quality ladder's rungs, ``{"rung", "fid"}`` each; only
    drawn when ``metric`` is ``"fid"``) each rung is a dashed horizontal
    reference line labelled with its name; the y-axis turns logarithmic when
    the values drawn span more than :data:`LADDER_LOG_SPAN`.

    Parameters
    ----------
    ranking : list of dict
        ``results.json`` ranking rows (``loss``, ``mean``, ``ci95`` [lo, hi] or null).
    seed_values : dict
        Loss name -> primary-metric value of each ok seed.
    metric, higher_is_better : str, bool
        Name and direction of the primary metric (axis label).
    upper : float, optional
        Upper bound of the metric where its domain has none (the number of
        modes for ``modes_covered``). The drawn CI is clipped to the metric's
        domain (:func:`losslab.report.style.clip_ci`).
    """
    fig = Figure(figsize=(max(4.5, 0.9 * len(ranking) + 2.0), 3.6))
    ax = fig.subplots()
    for i, row in enumerate(ranking):
        vals = [v for v in seed_values.get(row.get("loss"), []) if is_number(v)]
        if vals:
            ax.scatter(i + np.linspace(-0.12, 0.12, len(vals)) * (len(vals) > 1), vals, s=16, color="0.55", zorder=2)
        mean, ci = row.get("mean"), row.get("ci95")
        if is_number(mean):
            yerr = None
            ci, _ = clip_ci(metric, ci, upper=upper)
            if ci is not None:
                yerr = [[max(0.0, mean - ci[0])], [max(0.0, ci[1] - mean)]]
            ax.errorbar(i, mean, yerr=yerr, fmt="o", color=OKABE_ITO[0], ms=7, capsize=5, lw=2, zorder=3)
    ax.set_xticks(range(len(ranking)), [str(r.get("loss")) for r in ranking], rotation=30 if len(ranking) > 5 else 0)
    ax.set_xlim(-0.6, len(ranking) - 0.4)
    rungs = [r for r in (ladder or []) if is_number(r.get("fid"))] if metric == "fid" else []
    if rungs:
        drawn = [r["fid"] for r in rungs] + [v for vs in seed_values.values() for v in vs if is_number(v)]
        positive = [v for v in drawn if v > 0]
        if positive and max(positive) / min(positive) > LADDER_LOG_SPAN:
            ax.set_yscale("log")
        for r in rungs:
            ax.axhline(r["fid"], color="0.35", lw=0.8, ls="--", zorder=1)
            ax.annotate(str(r["rung"]), (1.0, r["fid"]), xycoords=("axes fraction", "data"), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=7, color="0.25")
        fig.set_size_inches(fig.get_size_inches()[0] + 1.2, fig.get_size_inches()[1])
    ax.set_ylabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        handles=[
            Line2D([], [], color=OKABE_ITO[0], marker="o", lw=2, label="seed mean, 95% CI"),
            Line2D([], [], color="0.55", marker="o", ls="", label="one seed"),
        ] + ([Line2D([], [], color="0.35", lw=0.8, ls="--", label="quality ladder rung")] if rungs else []),
        fontsize=8,
    )
    ax.set_title("ranking (best first)")
    return save(fig, path)


# ----------------------------------------------------------------- samples


def _limits(*clouds: np.ndarray, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis plot limits covering the reference clouds and 1-99% of the last (samples)."""
    parts = [c for c in clouds[:-1] if c is not None and len(c)]
    last = clouds[-1]
    if last is not None and len(last):
        parts.append(np.percentile(last, [1, 99], axis=0))
    pts = np.concatenate(parts, axis=0)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    return lo - pad, hi + pad


def _draw_vectors(ax, x: np.ndarray, ref: dict, is_data: bool) -> None:
    """One panel of vector samples against the data (1-D histogram, 2-D / PCA scatter)."""
    real = ref.get("real")
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[1] == 1:
        lo, hi = _limits(real, x[:, :1])
        bins = np.linspace(lo[0], hi[0], 61)
        ax.hist(x[:, 0], bins=bins, density=True, color=OKABE_ITO[1] if not is_data else "0.6", alpha=0.7)
        if ref.get("pdf_x") is not None and ref.get("pdf_y") is not None:
            ax.plot(ref["pdf_x"], ref["pdf_y"], color="k", lw=1.2)
        elif real is not None and not is_data:
            ax.hist(real[:, 0], bins=bins, density=True, histtype="step", color="k", lw=1.0)
        ax.set_xlim(lo[0], hi[0])
        return
    project = ref.get("project", lambda a: a[:, :2])
    p = project(x)
    real_p = project(real) if real is not None else None
    modes_p = project(ref["modes"]) if ref.get("modes") is not None else None
    if real_p is not None and not is_data:
        ax.scatter(*thin_points(real_p).T, s=2, color="0.75", rasterized=True)
    ax.scatter(*thin_points(p).T, s=2, color="0.45" if is_data else OKABE_ITO[1], alpha=0.6, rasterized=True)
    if modes_p is not None:
        ax.scatter(*modes_p.T, s=40, marker="+", color="k", lw=1.2)
    lo, hi = _limits(real_p, modes_p, p)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal", adjustable="box")


def plot_samples(panels: Sequence[tuple[str, np.ndarray | None, str]], ref: dict, kind: str, path: Path) -> Path:
    """Generated samples per loss next to the real data, one panel each.

    Parameters
    ----------
    panels : list of (title, samples, note)
        ``samples`` is ``(n, *shape)`` float32 or ``None`` (then ``note`` is shown).
        By convention the first panel is the real data.
    ref : dict
        ``real`` (n, *shape), optional ``modes`` (K, d), ``pdf_x``/``pdf_y``
        (1-D density on a grid), ``project`` (callable (n, d) -> (n, 2), PCA for d > 2).
    kind : str
        ``"image"`` draws a grid of the first 64 images; anything else vectors.
    """
    fig, axes = _grid(len(panels))
    for i, (ax, (title, x, why)) in enumerate(zip(axes, panels)):
        ax.set_title(title, fontsize=10)
        if x is None or len(x) == 0:
            note(ax, why or "no samples")
            ax.set_xticks([])
            ax.set_yticks([])
        elif kind == "image":
            g = image_grid(x)
            ax.imshow(g, cmap="gray" if g.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
        else:
            _draw_vectors(ax, x.reshape(len(x), -1), ref, is_data=i == 0)
            ax.tick_params(labelsize=7)
    return save(fig, path)


# ------------------------------------------------------------- diagnostics


def _plot_lines(ax, lines: Sequence[tuple[str, str, np.ndarray, np.ndarray, bool]], scale: str, *,
                hlines: Sequence[tuple[float, str]] = ()) -> None:
    """Draw (colour, linestyle, steps, values, diverged) lines on ``ax`` with the given y-scale.

    A curve of at least :data:`losslab.report.style.SMOOTH_MIN` points is drawn
    faint as logged and bold as its EMA (:func:`losslab.report.style.smooth`).
    ``"symlog"`` (a signed quantity such as a gradient mean) is drawn on a
    linear axis with a zero line and scientific tick labels, the axis limited
    to the 1-99% range of the values so that a spike does not flatten the rest.
    ``hlines`` are reference levels (y, label), drawn dashed grey and labelled.
    """
    vals = [v for *_, v, _ in lines if len(v)]
    if not vals:
        note(ax, "not logged")
        return
    for color_, ls, s, v, diverged in lines:
        if scale == "log":
            v = np.maximum(v, GRAD_FLOOR)
        sm = smooth(v, log=scale == "log") if ls not in ("-o",) else v
        if sm is not v:
            ax.plot(s, v, ls, color=color_, lw=0.6, alpha=0.3)
        ax.plot(s, sm, ls, color=color_, lw=1.4)
        if diverged and len(s):
            ax.plot(s[-1], v[-1], "x", color="k", ms=9, mew=2, zorder=5)
    for y, label in hlines:
        ax.axhline(y, color="0.3", ls=(0, (4, 3)), lw=1.2, zorder=4)
        ax.annotate(label, xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                    textcoords="offset points", ha="right", va="bottom", fontsize=7, color="0.2")
    if scale == "log":
        ax.set_yscale("log")
    elif scale == "symlog":
        allv = np.concatenate(vals)
        lo, hi = np.percentile(allv, [1, 99])
        pad = 0.1 * max(hi - lo, 1e-30)
        ax.set_ylim(min(lo, 0.0) - pad, max(hi, 0.0) + pad)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))


def _bucket_series(rows: Sequence[dict], keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(bucket index, value)``: each key's mean over the last quarter of the rows that log it."""
    xs, ys = [], []
    for b, key in enumerate(keys):
        _, v = series(rows, key)
        if len(v):
            xs.append(float(b))
            ys.append(float(np.mean(v[-max(1, len(v) // 4):])))
    return np.asarray(xs), np.asarray(ys)


def plot_diagnostics(loss: str, runs: Sequence[tuple[Any, list[dict], bool]], path: Path, *,
                     panels: Sequence[Any], xlabel: str) -> Path:
    """Training diagnostics of one loss, all seeds overlaid (one colour per seed).

    The family chooses the panels (:mod:`losslab.report.families`): for a GAN
    the G and D losses, gradient norms (log y: vanishing gradients, Arjovsky &
    Bottou 2017, arXiv:1701.04862, Sec. 2.2) and means, and mean D(x) vs
    D(G(z)); for a diffusion model its loss and the loss per timestep bucket;
    for a contrastive encoder its loss and pair similarities. A diverged run's
    last logged point carries an ``x``.

    Parameters
    ----------
    loss : str
        Loss name (title).
    runs : list of (seed, rows, diverged)
        ``rows`` from the run's ``metrics.jsonl`` (may be empty).
    panels : list of Panel
        ``title``, ``lines`` ((key, label, linestyle), ...), ``scale``
        ("linear" | "log" | "symlog"), ``x`` ("step": each key against the
        step; "bucket": the keys as buckets against their index, one line per
        seed), ``xlabel`` (None: ``xlabel``).
    xlabel : str
        Label of the step axis, the family's budget unit ("generator update").
    """
    ncol = 2 if len(panels) <= 4 else 3
    nrow = math.ceil(len(panels) / ncol)
    fig = Figure(figsize=(5.5 * ncol, 3.75 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes, panels):
        if panel.x == "bucket":
            keys = [key for key, _, _ in panel.lines]
            lines = [(color(i), "-o", *_bucket_series(rows, keys), False) for i, (_, rows, _) in enumerate(runs)]
            _plot_lines(ax, lines, panel.scale)
        else:
            lines = [
                (color(i), ls, *series(rows, key), diverged)
                for i, (_, rows, diverged) in enumerate(runs)
                for key, _, ls in panel.lines
            ]
            _plot_lines(ax, lines, panel.scale, hlines=getattr(panel, "hlines", ()))
            if len(panel.lines) > 1:
                ax.legend(handles=[Line2D([], [], color="k", ls=ls, label=label) for _, label, ls in panel.lines],
                          fontsize=7)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel or xlabel, fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], color=color(i), label=f"seed {seed}" + ("" if rows else " (no metrics logged)"))
        for i, (seed, rows, _) in enumerate(runs)
    ]
    if any(d and rows for _, rows, d in runs):
        handles.append(Line2D([], [], color="k", marker="x", ls="", mew=2, label="diverged"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(f"{loss}: training diagnostics")
    return save(fig, path)


def seed_mean(rowsets: Sequence[Sequence[dict]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds of ``key`` at each logged step (seeds missing a step are skipped there).

    Returns
    -------
    steps, means : (T,) float64 arrays, steps sorted ascending.
    """
    acc: dict[float, list[float]] = defaultdict(list)
    for rows in rowsets:
        for s, v in zip(*series(rows, key)):
            acc[s].append(v)
    steps = np.array(sorted(acc), dtype=np.float64)
    return steps, np.array([np.mean(acc[s]) for s in steps], dtype=np.float64)


def plot_overview(curves: dict[str, list[list[dict]]], path: Path, *, network: str = "generator") -> Path:
    """Seed-mean gradient L2 norm of the trained network (``g_grad_norm``) vs step, all losses on one log axes.

    Parameters
    ----------
    curves : dict
        Loss name -> list of ``metrics.jsonl`` row lists (one per seed).
    network : str
        What the budget trains, in the family's words ("generator", "denoiser", "encoder").
    """
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    lines = []
    for i, (loss, rowsets) in enumerate(curves.items()):
        s, v = seed_mean(rowsets, "g_grad_norm")
        lines.append((color(i), ["-", "--", ":", "-."][(i // 10) % 4], s, v, False))
    _plot_lines(ax, lines, "log")
    if any(len(v) for *_, v, _ in lines):
        ax.legend(
            handles=[Line2D([], [], color=c, ls=ls, label=loss) for (c, ls, *_), loss in zip(lines, curves)], fontsize=8
        )
    ax.set_xlabel(f"{network} update")
    ax.set_ylabel(f"{network} gradient L2 norm (mean over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(f"{network} gradient norm per loss")
    return save(fig, path)


# ----------------------------------------------------------------- quality curves and search


def plot_curves(curves: dict[str, list[list[dict]]], metric: str, higher_is_better: bool, path: Path, *,
                floor: dict | None = None) -> Path:
    """The ranked metric against generator updates (left) and training seconds (right), per loss.

    Parameters
    ----------
    curves : dict
        Loss name -> the ``curve`` lists of its ok runs (result.json: points
        with ``g_updates``, ``wall_seconds`` and metric values).
    metric, higher_is_better : str, bool
        The ranked metric and its direction (axis label).

    Each loss is its seed mean (line, points aligned by index) and the band
    from the lowest to the highest seed (:func:`losslab.convergence.mean_curve`).
    ``floor`` (``{"mean", "sd", "n"}``, :mod:`losslab.noise_floor` at the curves'
    sample size) is drawn as a dashed black line, its +-sd as a grey band: what a
    perfect generator scores.
    """
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    drawn = False
    for i, (loss, cs) in enumerate(curves.items()):
        for ax, axis in zip(axes, ("g_updates", "wall_seconds")):
            m = mean_curve(cs, metric, axis)
            if m is None:
                continue
            drawn = True
            # 10 colours, then the next 10 dashed with square markers: 12 losses must not share a line's look
            ax.plot(m["x"], m["mean"], marker="os^"[i // 10 % 3], ms=3, ls=("-", "--", ":")[i // 10 % 3],
                    color=f"C{i % 10}", label=f"{loss} ({len(cs)} seeds)")
            if len(cs) > 1:
                ax.fill_between(m["x"], m["lo"], m["hi"], color=f"C{i % 10}", alpha=0.15, lw=0)
    if drawn and floor and is_number(floor.get("mean")):
        for ax in axes:
            ax.axhline(floor["mean"], color="black", ls="--", lw=1,
                       label=f"noise floor: a perfect generator ({floor.get('n')} samples)")
            if is_number(floor.get("sd")):
                ax.axhspan(floor["mean"] - floor["sd"], floor["mean"] + floor["sd"], color="0.5", alpha=0.15, lw=0)
    for ax, label in zip(axes, ("generator updates", "training seconds (curve points excluded)")):
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
        ax.grid(alpha=0.3)
        if not drawn:
            note(ax, "no quality curve in these runs")
    if drawn:
        axes[0].legend(fontsize=8)
    fig.suptitle(f"{metric} during training: seed mean, band = min to max over seeds")
    return save(fig, path)


def plot_search(search: dict, path: Path) -> Path:
    """Each loss's search trials: the ranked metric against the trial's learning rate (log axis).

    Parameters
    ----------
    search : dict
        results.json's ``search`` (``metric``, ``higher_is_better``,
        ``losses`` -> ``trials`` with ``params`` and ``value``, ``best_trial``).

    A failed or diverged trial is drawn as an x at the top of the axis; the
    best trial of each loss is ringed.
    """
    metric = str(search.get("metric"))
    fig = Figure(figsize=(6.5, 4.0))
    ax = fig.subplots()
    vals = [t["value"] for e in search.get("losses", {}).values() for t in e.get("trials", [])
            if is_number(t.get("value"))]
    top = (max(vals) if vals else 1.0)
    for i, (loss, e) in enumerate(search.get("losses", {}).items()):
        c = f"C{i % 10}"
        def lr(t):  # a drawn trial's rate, or the rate the default trial (trial 0) had
            return (t.get("params") or {}).get("lr", (t.get("setting") or {}).get("lr"))

        drawn = [t for t in e.get("trials", []) if is_number(lr(t))]
        ok = [t for t in drawn if is_number(t.get("value"))]
        bad = [t for t in drawn if not is_number(t.get("value"))]
        ax.scatter([lr(t) for t in ok if not t.get("defaults")], [t["value"] for t in ok if not t.get("defaults")],
                   color=c, s=22, label=loss)
        dflt = [t for t in ok if t.get("defaults")]
        if dflt:
            ax.scatter([lr(dflt[0])], [dflt[0]["value"]], color=c, s=40, marker="s")
        if bad:
            ax.scatter([lr(t) for t in bad], [top] * len(bad), color=c, marker="x", s=30)
        best = [t for t in ok if t.get("number") == e.get("best_trial")]
        if best:
            ax.scatter([lr(best[0])], [best[0]["value"]], s=120, facecolors="none", edgecolors=c, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate of the trial")
    ax.set_ylabel(f"{metric} ({'higher' if search.get('higher_is_better') else 'lower'} is better)")
    ax.grid(alpha=0.3)
    if vals:
        ax.legend(fontsize=8)
    else:
        note(ax, "no trial finished")
    ax.set_title(f"--search: the defaults (square) and {search.get('trials')} trials per loss\n"
                 "(ringed: best; x: diverged or failed)")
    return save(fig, path)
