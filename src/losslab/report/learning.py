"""The report's "How each loss learned": pictures of the snapshots a run took at its curve points.

From each loss's seed-0 run (else its first run with snapshots), ``RUN/snapshots.npz``
(:mod:`losslab.train.snapshot`) becomes one figure:

* 1-D data: the panel of Goodfellow et al. 2014 (arXiv:1406.2661, Fig. 1) at
  a few updates: the data density (black), the generator's density (orange
  histogram) and the critic's output over x (blue, right axis: D(x) =
  sigmoid(logit) for the BCE family), with arrows under the axis showing where
  the generator loss pushes a spread of generated samples;
* 2-D data: the critic's landscape as a heat map with the generated points and
  the generator-loss gradient arrows ``-d g_loss / d x`` on them (as Google
  PAIR's GAN Lab draws it), data points in grey;
* images: an animated PNG (APNG) of 16 images from fixed latent codes at each
  snapshot, which browsers play inside the self-contained HTML.

Every panel's title gives the update and the median length of the push
arrows (per-sample gradients): arrows are scaled per figure, so the number is
what compares losses; a push that falls by orders of magnitude while the
samples are still far from the data is a vanishing gradient.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from losslab.io import atomic_write_bytes
from losslab.report.plots import thin_points, save
from losslab.report.style import OKABE_ITO
from losslab.rundir import SNAPSHOTS, read_snapshots

__all__ = ["PANELS", "learning_figures", "pick_frames", "plot_learning_1d", "plot_learning_2d", "write_animation"]

PANELS = 4
"""Snapshots drawn per vector figure (evenly spread from the first to the last)."""
ARROWS = 40
"""Push arrows drawn per 2-D panel (a deterministic spread of the generated points)."""
ARROWS_1D = 15
"""Push arrows drawn per 1-D panel (at quantiles of the generated samples)."""
SCALE = 3
"""Pixel upscaling of the animation's frames."""

_CRITIC = {
    "logit": ("D(x) = sigmoid(logit)", True),
    "score": ("D(x) (least-squares score)", False),
    "critic": ("critic f(x)", False),
    "energy": ("energy D(x) (reconstruction error)", False),
}


def pick_frames(n: int, k: int = PANELS) -> list[int]:
    """``min(n, k)`` snapshot indices evenly spread over ``0 .. n-1``, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


def _output_of(loss: str, family: str) -> str | None:
    """The GAN loss's critic output kind ("logit", "score", "critic", "energy"), None for other families."""
    if family != "gan":
        return None
    try:
        from losslab.losses import get_gan_loss

        return get_gan_loss(loss).output
    except Exception:  # an unknown name in an old results.json: draw the raw values
        return "critic"


def _spread(x: np.ndarray, k: int = ARROWS) -> np.ndarray:
    """Indices of ``k`` points spread over ``x`` (sorted along its first coordinate in 1-D)."""
    order = np.argsort(x[:, 0], kind="stable") if x.shape[1] == 1 else np.arange(len(x))
    return order[np.unique(np.linspace(0, len(x) - 1, min(k, len(x))).round().astype(int))]


def _push_title(step: int, push: np.ndarray | None) -> str:
    if push is None:
        return f"update {step}"
    norms = np.linalg.norm(push.reshape(len(push), -1), axis=1)
    norms = norms[np.isfinite(norms)]
    return f"update {step}" + (f"  |push| {np.median(norms):.2g}" if len(norms) else "")


def _arrow_scale(snaps: dict, frames: Sequence[int], width: float) -> float:
    """Data units per unit of push: the 90th percentile push of the drawn frames is 8% of ``width``."""
    if "push" not in snaps:
        return 0.0
    p = np.linalg.norm(np.asarray(snaps["push"])[list(frames)].reshape(len(frames), -1, snaps["push"].shape[-1]),
                       axis=-1)
    p = p[np.isfinite(p)]
    top = float(np.percentile(p, 90)) if len(p) else 0.0
    return 0.08 * width / top if top > 0 else 0.0


def plot_learning_1d(snaps: dict[str, np.ndarray], path: Path, *, output: str | None, title: str) -> Path:
    """Goodfellow et al.'s Fig. 1 panel at :func:`pick_frames` of a 1-D run's snapshots.

    Args:
        snaps: :func:`losslab.rundir.read_snapshots` of the run (``x``, ``fake``,
            optional ``pdf``, ``real``, ``critic``, ``push``).
        path: the PNG to write. output: the GAN loss's critic output kind or
            None (no critic). title: the figure's title.
    """
    frames = pick_frames(len(snaps["g_updates"]))
    x_all = np.asarray(snaps["x"])[frames]
    lo, hi = float(np.nanmin(x_all[:, 0])), float(np.nanmax(x_all[:, -1]))
    scale = _arrow_scale(snaps, frames, hi - lo)
    label, prob = _CRITIC.get(output or "", ("critic", False))
    fig = Figure(figsize=(3.2 * len(frames), 2.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(frames), sharex=True, squeeze=False)).ravel()
    crit = np.asarray(snaps["critic"])[frames] if "critic" in snaps else None
    c_lo = c_hi = None
    if crit is not None and not prob:
        vals = crit[np.isfinite(crit)]
        if len(vals):
            c_lo, c_hi = np.percentile(vals, [1, 99])
            pad = 0.1 * max(c_hi - c_lo, 1e-6)
            c_lo, c_hi = c_lo - pad, c_hi + pad
    for k, (ax, s) in enumerate(zip(axes, frames)):
        x, fake = snaps["x"][s], snaps["fake"][s][:, 0]
        fake = fake[np.isfinite(fake)]
        ax.hist(fake, bins=np.linspace(x[0], x[-1], 41), density=True, color=OKABE_ITO[1], alpha=0.6,
                label="generator")
        if "pdf" in snaps:
            ax.plot(x, snaps["pdf"][s], color="k", lw=1.2, ls=":", label="data")
        elif "real" in snaps:
            ax.hist(snaps["real"][s][:, 0], bins=np.linspace(x[0], x[-1], 41), density=True, histtype="step",
                    color="k", lw=1.0, label="data")
        ymax = ax.get_ylim()[1]
        push = snaps["push"][s] if "push" in snaps else None
        if push is not None and scale > 0:
            idx = _spread(snaps["fake"][s], ARROWS_1D)
            for j, i in enumerate(idx):  # quantiles of the generated samples, on three staggered rows
                p0, d = float(snaps["fake"][s][i, 0]), float(push[i, 0]) * scale
                y0 = -(0.05 + 0.05 * (j % 3)) * ymax
                if math.isfinite(p0) and math.isfinite(d):
                    ax.plot([p0], [y0], "o", ms=2, color=OKABE_ITO[3])
                    if abs(d) > 1e-6 * (hi - lo):
                        ax.annotate("", xy=(p0 + d, y0), xytext=(p0, y0),
                                    arrowprops={"arrowstyle": "-|>", "color": OKABE_ITO[3], "lw": 0.9,
                                                "mutation_scale": 7, "shrinkA": 0, "shrinkB": 0})
            ax.axhline(0, color="0.6", lw=0.5)
            ax.set_ylim(-0.2 * ymax, ymax * 1.05)
        ax.set_title(_push_title(int(snaps["g_updates"][s]), push), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlim(lo, hi)
        if crit is not None:
            tw = ax.twinx()
            v = 1.0 / (1.0 + np.exp(-np.clip(crit[k], -60, 60))) if prob else crit[k]
            tw.plot(x, v, color=OKABE_ITO[0], lw=1.4, ls="--", label=label)
            if prob:
                tw.set_ylim(-0.2, 1.05)
                tw.set_yticks([0, 0.25, 0.5, 0.75, 1])
            elif c_lo is not None:
                tw.set_ylim(c_lo, c_hi)
            tw.tick_params(labelsize=7, colors=OKABE_ITO[0])
            if k == len(frames) - 1:
                tw.set_ylabel(label, fontsize=8, color=OKABE_ITO[0])
        if k == 0:
            ax.set_ylabel("density", fontsize=8)
            handles, labels = ax.get_legend_handles_labels()
            if crit is not None:
                from matplotlib.lines import Line2D

                handles.append(Line2D([], [], color=OKABE_ITO[0], ls="--"))
                labels.append(label)
            ax.legend(handles, labels, fontsize=7, loc="upper left", frameon=False)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_learning_2d(snaps: dict[str, np.ndarray], path: Path, *, output: str | None, title: str) -> Path:
    """The critic's landscape with the generator's push at :func:`pick_frames` of a 2-D run's snapshots.

    Args:
        snaps: :func:`losslab.rundir.read_snapshots` of the run (``grid_x``,
            ``grid_y``, ``fake``, ``real``, optional ``critic`` ``(S, H, W)``, ``push``).
        path: the PNG to write. output: the GAN loss's critic output kind or
            None. title: the figure's title.
    """
    frames = pick_frames(len(snaps["g_updates"]))
    gx, gy = np.asarray(snaps["grid_x"])[frames], np.asarray(snaps["grid_y"])[frames]
    width = float(max(np.nanmax(gx[:, -1] - gx[:, 0]), np.nanmax(gy[:, -1] - gy[:, 0])))
    scale = _arrow_scale(snaps, frames, width)
    label, prob = _CRITIC.get(output or "", ("critic", False))
    fig = Figure(figsize=(3.0 * len(frames) + 0.6, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(frames), squeeze=False)).ravel()
    im = None
    for k, (ax, s) in enumerate(zip(axes, frames)):
        ext = (float(snaps["grid_x"][s][0]), float(snaps["grid_x"][s][-1]),
               float(snaps["grid_y"][s][0]), float(snaps["grid_y"][s][-1]))
        if "critic" in snaps:
            c = np.asarray(snaps["critic"][s], dtype=np.float64)
            if prob:
                c, vmin, vmax = 1.0 / (1.0 + np.exp(-np.clip(c, -60, 60))), 0.0, 1.0
            else:
                fin = c[np.isfinite(c)]
                vmin, vmax = (np.percentile(fin, [2, 98]) if len(fin) else (0.0, 1.0))
            im = ax.imshow(c, origin="lower", extent=ext, cmap="PuOr_r" if prob else "viridis", vmin=vmin,
                           vmax=vmax, aspect="auto", interpolation="bilinear")
            if not prob:
                cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
                cb.ax.tick_params(labelsize=6)
        if "real" in snaps:
            ax.scatter(*thin_points(snaps["real"][s]).T, s=5, color="white", edgecolors="0.2", lw=0.3, rasterized=True)
        fake = snaps["fake"][s]
        ok = np.isfinite(fake).all(1)
        ax.scatter(*fake[ok].T, s=4, color=OKABE_ITO[2], alpha=0.7, lw=0, rasterized=True)
        push = snaps["push"][s] if "push" in snaps else None
        if push is not None and scale > 0:
            idx = _spread(fake, ARROWS)
            idx = idx[ok[idx] & np.isfinite(push[idx]).all(1)]
            ax.quiver(fake[idx, 0], fake[idx, 1], push[idx, 0] * scale, push[idx, 1] * scale, angles="xy",
                      scale_units="xy", scale=1, color="k", width=0.005, headwidth=4, headlength=4)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(_push_title(int(snaps["g_updates"][s]), push), fontsize=9)
        ax.tick_params(labelsize=7)
    if prob and im is not None:
        cb = fig.colorbar(im, ax=list(axes), fraction=0.02, pad=0.01)
        cb.set_label(label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def _frame(images: np.ndarray, caption: str) -> Any:
    """One animation frame: a 4 x 4 grid of uint8 images ``(16, C, H, W)``, upscaled, with a caption strip."""
    from PIL import Image, ImageDraw

    n, c, h, w = images.shape
    ncol = int(math.ceil(math.sqrt(n)))
    nrow = int(math.ceil(n / ncol))
    pad = 2
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        img = images[i].transpose(1, 2, 0)
        img = np.repeat(img[..., :1], 3, axis=2) if img.shape[2] != 3 else img
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = img
    pic = Image.fromarray(grid).resize((grid.shape[1] * SCALE, grid.shape[0] * SCALE), Image.NEAREST)
    out = Image.new("RGB", (pic.width, pic.height + 18), "white")
    out.paste(pic, (0, 18))
    ImageDraw.Draw(out).text((4, 3), caption, fill=(0, 0, 0))
    return out


def write_animation(snaps: dict[str, np.ndarray], path: Path, *, ms: int = 600) -> Path:
    """An animated PNG (APNG) of a run's image snapshots: one frame per snapshot, the last held longer.

    Args:
        snaps: :func:`losslab.rundir.read_snapshots` with ``images`` ``(S, 16, C, H, W)`` uint8.
        path: the ``.png`` to write (atomically). ms: milliseconds per frame.

    Returns:
        ``path``. A viewer without APNG support shows the first frame.
    """
    steps = [int(s) for s in snaps["g_updates"]]
    frames = [_frame(np.asarray(snaps["images"][i]), f"update {s} of {steps[-1]}") for i, s in enumerate(steps)]
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:], loop=0,
                   duration=[ms] * (len(frames) - 1) + [4 * ms], optimize=True)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _run_of(runs: list[dict], out: Path) -> dict | None:
    """Seed 0's run if it has snapshots, else the first run (by seed) that has."""
    rs = sorted(runs, key=lambda r: (r.get("seed") != 0, str(r.get("seed"))))
    return next((r for r in rs if r.get("run_dir") and (out / str(r["run_dir"]) / SNAPSHOTS).exists()),
                None)


def learning_figures(out: Path, results: dict, draw=None) -> list[tuple[str, str, str]]:
    """Draw the "How each loss learned" figures under ``OUT/figures/`` from the runs' snapshots.

    Args:
        out: the comparison directory. results: its parsed results.json.
        draw: a :class:`losslab.report.plots.Drawer` that draws each figure
            (default: drawn here, one after another); the caller waits for it.

    Returns:
        ``(relpath, heading, caption)`` per loss that has snapshots, in ranking
        order; ``[]`` when no run has any (runs of an older version, the
        contrastive family, ``train.curve_points = 0``).
    """
    runs = results.get("runs") or []
    losses = [str(r.get("loss")) for r in results.get("ranking") or []]
    losses += sorted({str(r.get("loss")) for r in runs} - set(losses))
    figs: list[tuple[str, str, str]] = []
    render = draw.draw if draw is not None else (lambda fn, *a, **k: fn(*a, **k))
    for loss in losses:
        run = _run_of([r for r in runs if str(r.get("loss")) == loss], out)
        if run is None:
            continue
        snaps = read_snapshots(out / str(run["run_dir"]))
        if not snaps or not len(snaps.get("g_updates", [])):
            continue
        family = str(run.get("family") or str(results.get("family") or "gan").split("+")[0])
        output = _output_of(loss, family)
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in loss)
        rel = f"figures/learning_{safe}.png"
        heading = f"{loss} (seed {run.get('seed')})"
        title = f"{loss}, seed {run.get('seed')}"
        if "images" in snaps:
            render(write_animation, snaps, out / rel)
            cap = (f"{len(snaps['g_updates'])} frames, one per quality-curve point: 16 samples from the same "
                   "latent codes / noise at each point, so each tile shows one sample changing as the model "
                   "learns (animated; a viewer without APNG support shows the first frame).")
        elif "x" in snaps:
            render(plot_learning_1d, snaps, out / rel, output=output, title=title)
            cap = ("Goodfellow et al. (2014, Fig. 1) at four updates: data density (black, dotted), generator "
                   "density (orange)" + (f", the critic's output {_CRITIC.get(output, ('',))[0]} (blue, dashed, "
                                         "right axis) and, under the axis, where the generator loss pushes a "
                                         "spread of generated samples (arrows, -d g_loss/dx; the title gives "
                                         "the median per-sample length)" if output else "") + ".")
        elif "grid_x" in snaps:
            render(plot_learning_2d, snaps, out / rel, output=output, title=title)
            cap = (("The critic's landscape, its output " + _CRITIC.get(output, ("",))[0] + " as a heat map, "
                    "generated points (green) with the generator's gradient arrows -d g_loss/dx (black; the "
                    "title gives the median length: near 0 while the points are off the data is a vanishing "
                    "gradient), data as white dots." if output else
                    "Generated points (green) over data (white dots) at four updates.")
                   + " Like Google PAIR's GAN Lab.")
        else:
            continue
        figs.append((rel, heading, cap))
    return figs
