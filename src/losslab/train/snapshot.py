"""Snapshots of a model while it learns: what the report's "How each loss learned" section draws.

At each quality-curve point the loop (:func:`losslab.train.loop.snapshot_point`)
asks the run's family for a *snapshot*: a few small arrays that show the model
at that moment, stored in ``RUN/snapshots.npz`` (:mod:`losslab.rundir`). This
module holds what every family's ``snapshot`` shares: the sizes, the plotting
box of vector data, and the samples-only snapshot of families that have
nothing else to show (diffusion, EBM). The GAN family adds its critic
(:func:`losslab.train.gan.snapshot`).

Keys of a snapshot (every array has the same shape at every point of a run,
so the loop can stack them):

- vector data with ``d <= 2``: ``fake`` ``(SNAPSHOT_POINTS, d)`` generated
  samples (latent codes / noise from the run's seed, the same at every point),
  ``real`` ``(SNAPSHOT_REAL, d)`` data samples (seed 0);
  1-D: ``x`` ``(GRID_1D,)`` an evaluation grid, ``pdf`` ``(GRID_1D,)`` the data
  density on it (toys with a known density); 2-D: ``grid_x``, ``grid_y``
  ``(GRID_2D,)``;
- images: ``images`` ``(SNAPSHOT_IMAGES, C, H, W)`` uint8 in [0, 255] from
  fixed latent codes, so the frames of a run form an animation;
- other vector data: ``fake`` only.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

SNAPSHOT_POINTS = 512
"""Generated points of a vector snapshot."""
SNAPSHOT_REAL = 256
"""Data points of a vector snapshot."""
SNAPSHOT_IMAGES = 16
"""Generated images of an image snapshot (a 4 x 4 grid)."""
GRID_1D = 200
"""Points of the 1-D evaluation grid."""
GRID_2D = 64
"""Points per axis of the 2-D evaluation grid (GRID_2D^2 critic evaluations)."""
PAD = 0.15
"""Margin added on each side of the plotting box, as a share of its width."""


def draws_grid(dataset) -> bool:
    """Whether a snapshot of ``dataset`` has an evaluation grid: vector data of dimension 1 or 2."""
    return dataset.kind == "vector" and len(dataset.shape) == 1 and dataset.shape[0] <= 2


def real_points(dataset, n: int = SNAPSHOT_REAL) -> torch.Tensor:
    """``(n, d)`` data samples drawn with a fixed CPU generator (seed 0): never the training stream."""
    return dataset.reference(n, torch.Generator().manual_seed(0)).float().reshape(-1, dataset.shape[0])


def box(real: torch.Tensor, fake: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The plotting box ``(lo, hi)``, each ``(d,)``: the data's range and the generated points' 1-99%
    quantiles, joined and padded by :data:`PAD` of the width on each side (non-finite points ignored).

    Args:
        real: ``(N, d)`` data samples. fake: ``(M, d)`` generated samples (may hold NaN/inf).
    """
    lo, hi = real.min(0).values.double(), real.max(0).values.double()
    f = fake.double()
    f = f[torch.isfinite(f).all(1)]
    if len(f):
        lo = torch.minimum(lo, torch.quantile(f, 0.01, dim=0))
        hi = torch.maximum(hi, torch.quantile(f, 0.99, dim=0))
    width = torch.clamp(hi - lo, min=1e-3)
    return (lo - PAD * width).numpy(), (hi + PAD * width).numpy()


def images_uint8(x: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1] ``(N, C, H, W)`` as uint8 in [0, 255] (clipped; NaN becomes 0)."""
    y = torch.nan_to_num(x.detach().float().cpu(), nan=-1.0).clamp(-1, 1)
    return ((y + 1) * 127.5).round().to(torch.uint8).numpy()


def samples_snapshot(sample: Callable[..., torch.Tensor], state: Any, dataset, *, seed: int) -> dict[str, np.ndarray]:
    """The samples-only snapshot (module docstring's keys, no critic).

    Args:
        sample: the family's ``sample(state, n, *, seed)``. state: the run's state.
        dataset: the run's :class:`~losslab.data.Dataset`. seed: the run's seed
            (the samples' latent codes / noise; the same at every point).

    Returns:
        ``{key: array}``: ``images`` for image data; ``fake``, ``real`` (and the
        grid keys with ``pdf`` for 1-D toys) for vector data of dimension <= 2;
        ``fake`` for other vector data.
    """
    if dataset.kind == "image":
        return {"images": images_uint8(sample(state, SNAPSHOT_IMAGES, seed=seed))}
    fake = sample(state, SNAPSHOT_POINTS, seed=seed).float().cpu().reshape(SNAPSHOT_POINTS, -1)
    out: dict[str, np.ndarray] = {"fake": fake.numpy()}
    if not draws_grid(dataset):
        return out
    real = real_points(dataset)
    out["real"] = real.numpy()
    lo, hi = box(real, fake)
    if dataset.shape[0] == 1:
        x = np.linspace(lo[0], hi[0], GRID_1D)
        out["x"] = x.astype(np.float32)
        if dataset.pdf is not None:
            out["pdf"] = np.asarray(dataset.pdf(x), dtype=np.float32)
    else:
        out["grid_x"] = np.linspace(lo[0], hi[0], GRID_2D).astype(np.float32)
        out["grid_y"] = np.linspace(lo[1], hi[1], GRID_2D).astype(np.float32)
    return out


def grid_points(snap: dict[str, np.ndarray]) -> torch.Tensor:
    """The evaluation grid of a snapshot as points: ``(GRID_1D, 1)``, or ``(GRID_2D^2, 2)`` in row-major
    order (row i is ``grid_y[i]``, column j is ``grid_x[j]``), so values reshape to ``(GRID_2D, GRID_2D)``."""
    if "x" in snap:
        return torch.from_numpy(snap["x"]).reshape(-1, 1)
    yy, xx = torch.meshgrid(torch.from_numpy(snap["grid_y"]), torch.from_numpy(snap["grid_x"]), indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
