"""The figure of a diffusion run, drawn from ``RUN/diffusion.npz`` alone.

:func:`losslab.train.diffusion.artifacts` writes that file; :func:`plot_diffusion`
turns it into one PNG with three rows:

1. the forward process ``q(x_t | x_0)`` on held-out data, from x_0 to x_T;
2. the reverse (sampling) chain of generated samples, from x_T to the output;
3. the training objective per timestep bucket on a held-out batch.

Vectors are drawn as 1-D histograms or 2-D scatter plots (d > 2: the
reference's ``project``, e.g. PCA, else the first two coordinates); images as
a grid with one row per sample and one column per timestep. Built with
``matplotlib.figure.Figure`` on the Agg canvas, never ``pyplot``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from losslab.report.plots import note, thin_points, image_grid, save
from losslab.rundir import DIFFUSION_ARTIFACTS

__all__ = ["plot_diffusion"]

OBJECTIVE_NAMES = {"eps": "noise (eps)", "x0": "clean sample (x0)", "v": "velocity (v)",
                   "flow": "straight-path velocity (x1 - x0)", "edm": "preconditioned denoiser D (EDM)"}


def _load(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    except (OSError, ValueError, EOFError):
        return None


def _label(t: int, T: int, clean: str) -> str:
    """Panel title of 0-based timestep index ``t``: ``clean`` for -1 (x_0), "x_T" for
    ``t >= T`` (the sampler's start), else the paper's 1-based ``t``."""
    if t < 0:
        return clean
    if t >= T:
        return "x_T (noise)"
    return f"t={t + 1}"


def _limits(points: np.ndarray, margin: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis limits of the 0.5-99.5% range of ``points`` (n, k), padded."""
    pts = points[np.isfinite(points).all(axis=1)]
    if len(pts) == 0:
        return np.full(points.shape[1], -1.0), np.full(points.shape[1], 1.0)
    lo, hi = np.percentile(pts, [0.5, 99.5], axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    return lo - pad, hi + pad


def _vector_row(sub, states: np.ndarray, titles: list[str], ref: dict[str, Any], color: str) -> None:
    """One row of panels, one per state ``states[i]`` (n, d): histograms (d = 1) or scatter."""
    axes = np.atleast_1d(sub.subplots(1, len(states), squeeze=False)).ravel()
    d = states.shape[-1]
    if d == 1:
        flat = states.reshape(-1, 1)
        lo, hi = _limits(flat)
        bins = np.linspace(lo[0], hi[0], 51)
        for ax, x, title in zip(axes, states, titles):
            x = x[np.isfinite(x[:, 0]), 0]
            ax.hist(x, bins=bins, density=True, color=color, alpha=0.75)
            ax.set_title(title, fontsize=8)
            ax.set_yticks([])
            ax.tick_params(labelsize=6)
        return
    project = ref.get("project", lambda a: np.asarray(a)[:, :2]) if d > 2 else (lambda a: np.asarray(a)[:, :2])
    proj = [np.asarray(project(x.astype(np.float64))) for x in states]
    lo, hi = _limits(np.concatenate(proj))
    modes = ref.get("modes")
    modes_p = np.asarray(project(np.asarray(modes, dtype=np.float64))) if modes is not None else None
    for ax, p, title in zip(axes, proj, titles):
        ax.scatter(*thin_points(p).T, s=1.5, color=color, alpha=0.5, rasterized=True)
        if modes_p is not None:
            ax.scatter(*modes_p.T, s=25, marker="+", color="k", lw=1.0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=6)


def _tiles(states: np.ndarray, pad: int = 1) -> np.ndarray:
    """Grid picture of ``states`` (K, m, C, H, W) in [-1, 1]: row i = sample i, column j = state j.

    Returns (H', W') for one channel, (H', W', 3) for three, values in [0, 1]
    (:func:`losslab.report.plots.image_grid` per row, rows stacked with ``pad``
    white pixels between them).
    """
    k, m = states.shape[:2]
    rows = [image_grid(states[:, i], ncol=k, pad=pad) for i in range(m)]
    rows = [r if i == 0 else r[pad:] for i, r in enumerate(rows)]  # one shared padding line
    return np.concatenate(rows, axis=0)


def _image_panel(ax, states: np.ndarray, titles: list[str], title: str) -> None:
    """One axes showing :func:`_tiles` of ``states`` with the state titles under the columns."""
    g = _tiles(states)
    ax.imshow(g, cmap="gray" if g.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    w = states.shape[-1] + 1  # tile width plus one pixel of padding
    ax.set_xticks([1 + w * j + (w - 1) / 2 for j in range(states.shape[0])], titles, fontsize=7, rotation=35,
                  ha="right")
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)


def plot_diffusion(run_dir: str | Path, out_png: str | Path, *, reference: dict | None = None) -> Path | None:
    """Draw the diffusion figure of one run.

    Parameters
    ----------
    run_dir : path
        A run directory holding ``diffusion.npz`` (see
        :func:`losslab.train.diffusion.artifacts`).
    out_png : path
        Where to write the PNG (atomically).
    reference : dict, optional
        The report's reference (``OUT/reference.npz`` as loaded by
        :func:`losslab.report.load_reference`): ``modes`` (K, d) are marked on
        2-D scatter plots; ``project`` maps d > 2 to 2 coordinates.

    Returns
    -------
    Path or None
        ``out_png``, or ``None`` when the run has no readable ``diffusion.npz``.
    """
    data = _load(Path(run_dir) / DIFFUSION_ARTIFACTS)
    needed = ("forward_t", "forward_x", "reverse_t", "reverse_x", "bucket_edges", "bucket_loss")
    if data is None or any(k not in data for k in needed):
        return None
    ref = reference or {}
    last = float(data["bucket_edges"][-1])
    T = int(data["T"]) if "T" in data else (int(last) if np.isfinite(last) else 0)
    kind = str(data["kind"]) if "kind" in data else ("image" if data["forward_x"].ndim == 5 else "vector")
    fwd_t, fwd_x = data["forward_t"].astype(int), data["forward_x"]
    rev_t, rev_x = data["reverse_t"].astype(int), data["reverse_x"]
    fwd_titles = [_label(int(t), T, "x_0 (data)") for t in fwd_t]
    rev_titles = [_label(int(t), T, "output x_0") for t in rev_t]
    if "forward_label" in data and len(data["forward_label"]) == len(fwd_t):  # continuous noise levels
        fwd_titles = [str(v) for v in data["forward_label"]]
    if "reverse_label" in data and len(data["reverse_label"]) == len(rev_t):
        rev_titles = [str(v) for v in data["reverse_label"]]

    is_image = kind == "image" and fwd_x.ndim == 5
    fwd_title = "forward process q(x_t | x_0) of held-out data"
    rev_title = "reverse chain of generated samples (sampler states)"
    note_text = str(data["state_note"]) if "state_note" in data else ""
    if note_text:
        fwd_title, rev_title = f"{fwd_title}; {note_text}", f"{rev_title}; {note_text}"
    if is_image:  # the two grids side by side, the bar chart below
        fig = Figure(figsize=(13, 8.5), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[2.2, 1.0])
        ax_f, ax_r = top.subplots(1, 2, width_ratios=[len(fwd_t), len(rev_t)])
        _image_panel(ax_f, fwd_x, fwd_titles, fwd_title)
        _image_panel(ax_r, rev_x, rev_titles, rev_title)
    else:
        fig = Figure(figsize=(13, 7.8), layout="constrained")
        top, mid, bottom = fig.subfigures(3, 1, height_ratios=[1.0, 1.0, 0.9])
        top.suptitle(fwd_title, fontsize=10)
        mid.suptitle(rev_title, fontsize=10)
        n = len(fwd_x)
        _vector_row(top, fwd_x.reshape(n, fwd_x.shape[1], -1), fwd_titles, ref, "0.35")
        n = len(rev_x)
        _vector_row(mid, rev_x.reshape(n, rev_x.shape[1], -1), rev_titles, ref, "#E69F00")

    ax = bottom.subplots()
    edges, losses = data["bucket_edges"], data["bucket_loss"].astype(float)
    if "bucket_label" in data and len(data["bucket_label"]) == len(losses):
        labels = [str(v) for v in data["bucket_label"]]
    else:
        edges = edges.astype(int)
        labels = [f"{lo + 1}-{hi}" for lo, hi in zip(edges[:-1], edges[1:])]
    finite = np.isfinite(losses)
    if finite.any():
        ax.bar(np.arange(len(losses))[finite], losses[finite], color="#0072B2")
        ax.set_xticks(range(len(losses)), labels, fontsize=7)
        pos = losses[finite]
        ax.set_yscale("log" if (pos > 0).all() and pos.max() / pos.min() > 30 else "linear")
    else:
        note(ax, "no finite bucket losses")
    objective = str(data["objective"]) if "objective" in data else "?"
    level = str(data["level_name"]) if "level_name" in data else "t"
    if level == "sigma":
        ax.set_xlabel("noise level bucket sigma (deciles of the training distribution; low = almost clean)")
    elif "T" in data:
        ax.set_xlabel("timestep bucket t (1 = almost clean, T = pure noise)")
    else:
        ax.set_xlabel("time bucket t (0 = data, 1 = pure noise)")
    ax.set_ylabel(f"loss ({objective}-prediction)")
    ax.grid(axis="y", alpha=0.3)
    bottom.suptitle("objective per timestep bucket, held-out batch", fontsize=10)

    parts = [f"target: {OBJECTIVE_NAMES.get(objective, objective)}"]
    if "schedule" in data:
        parts.append(f"{data['schedule']} schedule, T={T}")
    elif "process" in data:
        parts.append(str(data["process"]))
    if "sampler" in data and "nfe" in data:
        eta = f", eta={float(data['eta']):g}" if str(data["sampler"]) == "ddim" and "eta" in data else ""
        parts.append(f"{data['sampler']} sampler, {int(data['nfe'])} network evaluations per sample{eta}")
    if "g_updates" in data:
        parts.append(f"{int(data['g_updates'])} updates")
    fig.suptitle("diffusion: " + "; ".join(parts), fontsize=10)
    return save(fig, out_png)
