"""The contrastive family's figure: 2-D embedding of test representations, coloured by class.

Reads ``RUN/embedding.npz`` (written by :func:`losslab.train.contrastive.artifacts`:
``xy`` (M, 2) PCA coordinates, ``labels`` (M,), ``class_names``,
``explained_variance``, ``loss``, ``data``) and draws a scatter with
``matplotlib.figure.Figure`` on the Agg canvas (never ``pyplot``), as
:mod:`losslab.report.plots` does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from losslab.report.plots import note, save
from losslab.rundir import EMBEDDING

__all__ = ["EMBEDDING_FILE", "load_embedding", "plot_embedding", "plot_embedding_grid"]

EMBEDDING_FILE = EMBEDDING  # the name is losslab.rundir's
MAX_CLASSES_IN_LEGEND = 20


def load_embedding(run_dir: str | Path) -> dict | None:
    """The arrays of ``run_dir/embedding.npz`` as a dict, or None if the file is missing or unreadable."""
    p = Path(run_dir) / EMBEDDING_FILE
    if not p.exists():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        return None


def _colors(k: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


def _draw(ax, emb: dict, title: str | None = None) -> list[Line2D]:
    """Scatter one embedding into ``ax``; return legend handles (one per class)."""
    xy = np.asarray(emb["xy"], dtype=np.float64)
    labels = np.asarray(emb["labels"]).astype(np.int64)
    names = [str(n) for n in np.asarray(emb.get("class_names", np.array([])))]
    k = int(max(labels.max() + 1 if len(labels) else 0, len(names)))
    names = names + [str(i) for i in range(len(names), k)]
    colors = _colors(max(k, 1))
    ok = np.isfinite(xy).all(axis=1)
    ax.scatter(xy[ok, 0], xy[ok, 1], c=[colors[i] for i in labels[ok]], s=12 if ok.sum() <= 500 else 5,
               alpha=0.7, linewidths=0,
               rasterized=True)
    ev = emb.get("explained_variance")
    if ev is not None and len(ev) == 2:
        ax.set_xlabel(f"PC 1 ({100 * float(ev[0]):.0f}% of variance)", fontsize=8)
        ax.set_ylabel(f"PC 2 ({100 * float(ev[1]):.0f}%)", fontsize=8)
    ax.tick_params(labelsize=7)
    if title is None:
        title = f"{emb.get('loss', '')} on {emb.get('data', '')}".strip()
    ax.set_title(title, fontsize=9)
    return [Line2D([], [], color=colors[i], marker="o", ls="", ms=5, label=names[i])
            for i in range(min(k, MAX_CLASSES_IN_LEGEND))]


def plot_embedding(run_dir: str | Path, out_png: str | Path) -> Path | None:
    """Scatter of one run's test representations (2-D PCA), coloured by class.

    Parameters
    ----------
    run_dir : path
        A contrastive run directory holding ``embedding.npz``.
    out_png : path
        Where to write the PNG (atomically).

    Returns
    -------
    Path or None
        ``out_png``, or None when the run has no (readable) embedding file.
    """
    emb = load_embedding(run_dir)
    if emb is None:
        return None
    fig = Figure(figsize=(5.2, 4.2), layout="constrained")
    ax = fig.subplots()
    handles = _draw(ax, emb)
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return save(fig, out_png)


def plot_embedding_grid(panels: Sequence[tuple[str, str | Path]], out_png: str | Path) -> Path | None:
    """One panel per run (e.g. one seed of each loss), a shared class legend.

    Parameters
    ----------
    panels : sequence of (title, run_dir)
        Runs to draw, in order; a run without ``embedding.npz`` gets a grey note.
    out_png : path

    Returns
    -------
    Path or None
        ``out_png``, or None when no run has an embedding file.
    """
    loaded = [(title, load_embedding(rd)) for title, rd in panels]
    if not any(e is not None for _, e in loaded):
        return None
    n = len(loaded)
    ncol = min(n, 4)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(3.3 * ncol, 3.1 * nrow + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    handles: list[Line2D] = []
    for ax, (title, emb) in zip(axes, loaded):
        if emb is None:
            note(ax, "no embedding\n(run failed or unfinished)")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        h = _draw(ax, emb, title)
        if len(h) > len(handles):
            handles = h
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 10), fontsize=7, frameon=False)
    return save(fig, out_png)
