"""Wasserstein distances and the two-sample KS test between sample sets.

All functions take numpy arrays or torch tensors, compute in float64 and
return Python floats. Optimal transport is POT's (``ot.emd2``, network
simplex; ``ot.sliced_wasserstein_distance``) and the 1-D tools are scipy's;
nothing here re-implements a transport solver.
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import scipy.stats
import torch


# The network simplex needs more pivots than POT's default 100_000 for
# 2,500 x 2,500 problems; hitting the cap returns a sub-optimal plan (POT warns).
_EMD_MAX_ITER = 10_000_000


def as_float64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Detached float64 numpy copy of an array or tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_1d(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """Flatten ``(N,)`` or ``(N, 1)`` to ``(N,)``; anything else is a ValueError."""
    a = as_float64(x)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N,) or (N, 1) sample, got shape {a.shape}")
    return a


def as_cloud(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """View ``(N,)`` as ``(N, 1)`` and ``(N, *shape)`` as ``(N, prod(shape))``."""
    a = as_float64(x)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim > 2:
        a = a.reshape(a.shape[0], -1)
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return a


def wasserstein1_1d(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Exact 1-Wasserstein distance between two 1-D empirical distributions.

    ``W1(P, Q) = integral |F_P(t) - F_Q(t)| dt`` for the empirical CDFs; for
    equal sizes it equals ``mean(|sort(x) - sort(y)|)``.

    Parameters
    ----------
    x : (N,) or (N, 1) array or tensor
        Samples of the first distribution (data units).
    y : (M,) or (M, 1) array or tensor
        Samples of the second distribution; M may differ from N.

    Returns
    -------
    float
        W1 in data units, >= 0.

    Raises
    ------
    ValueError
        If an input is empty or not one-dimensional.

    References
    ----------
    Peyre & Cuturi 2019, "Computational Optimal Transport", arXiv:1803.00567,
    Sec. 2.6 (the 1-D case); computed by ``scipy.stats.wasserstein_distance``.
    """
    return float(scipy.stats.wasserstein_distance(_as_1d(x, "x"), _as_1d(y, "y")))


def ks_1d(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Two-sample Kolmogorov-Smirnov test ``sup_t |F_x(t) - F_y(t)|``.

    Parameters
    ----------
    x : (N,) or (N, 1) array or tensor
    y : (M,) or (M, 1) array or tensor

    Returns
    -------
    dict
        ``statistic`` (the KS distance, in [0, 1]) and ``pvalue`` (two-sided,
        null hypothesis: same distribution).

    Raises
    ------
    ValueError
        If an input is empty or not one-dimensional.

    References
    ----------
    Smirnov 1948; computed by ``scipy.stats.ks_2samp`` (two-sided, exact or
    asymptotic p-value as scipy chooses).
    """
    res = scipy.stats.ks_2samp(_as_1d(x, "x"), _as_1d(y, "y"))
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}


def wasserstein_ot(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, *, p: float = 1
) -> float:
    """Exact p-Wasserstein distance between two equal-weight point clouds.

    Solves the discrete optimal transport problem
    ``W_p(x, y) = (min_{T in U(1/N, 1/M)} sum_ij T_ij ||x_i - y_j||_2^p)^(1/p)``
    with the network simplex (POT ``ot.emd2``) on a Euclidean ground cost.

    Cost: the ``(N, M)`` float64 cost matrix takes ``8 N M`` bytes (50 MB for
    2,500 x 2,500, the size the evaluation uses) and the simplex is roughly
    cubic in N; keep N, M at a few thousand.

    Parameters
    ----------
    x : (N, d) or (N,) array or tensor
        First point cloud (data units); ``(N, *shape)`` is flattened.
    y : (M, d) or (M,) array or tensor
        Second point cloud, same d.
    p : float, keyword-only
        Order, ``p >= 1`` (1: earth mover's distance; 2: quadratic cost).

    Returns
    -------
    float
        W_p in data units, >= 0.

    Raises
    ------
    ValueError
        If the dimensions differ, an input is empty or ``p < 1``.
    RuntimeError
        If the network simplex stops at its iteration cap (not optimal).

    References
    ----------
    Villani 2009, "Optimal Transport: Old and New", Def. 6.1; Peyre & Cuturi
    2019, arXiv:1803.00567, Sec. 2.3 (discrete Kantorovich problem);
    Bonneel et al. 2011 (network simplex used by ``ot.emd2``).
    """
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    xs, ys = as_cloud(x, "x"), as_cloud(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x and y have different dimensions: {xs.shape[1]} vs {ys.shape[1]}")
    a = np.full(xs.shape[0], 1.0 / xs.shape[0])
    b = np.full(ys.shape[0], 1.0 / ys.shape[0])
    cost = ot.dist(xs, ys, metric="euclidean")
    if p != 1:
        cost = cost**p
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(ot.emd2(a, b, cost, numItermax=_EMD_MAX_ITER))
    for w in caught:
        if "numItermax" in str(w.message):  # the plan is not optimal: never report it as W_p
            raise RuntimeError(f"ot.emd2 stopped before optimality ({w.message}); use fewer samples")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    value = max(value, 0.0)
    return value if p == 1 else value ** (1.0 / p)


def sliced_wasserstein(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    n_projections: int = 200,
    seed: int = 0,
    p: int = 2,
) -> float:
    """Monte Carlo sliced p-Wasserstein distance.

    ``SW_p(x, y) = (E_{theta ~ U(S^{d-1})} W_p^p(theta.x, theta.y))^(1/p)``,
    estimated with ``n_projections`` random directions drawn from ``seed``
    (the same seed gives the same directions, so comparisons of several
    generators against one reference use the same slices). In d = 1 it equals
    the exact W_p.

    Parameters
    ----------
    x : (N, d) array or tensor
        First point cloud; ``(N, *shape)`` is flattened.
    y : (M, d) array or tensor
        Second point cloud, same d.
    n_projections : int, keyword-only
        Number of random directions (Monte Carlo error ~ 1/sqrt(n_projections)).
    seed : int, keyword-only
        Seed of the directions.
    p : int, keyword-only
        Order of the 1-D Wasserstein distances (POT's default 2).

    Returns
    -------
    float
        SW_p in data units, >= 0.

    Raises
    ------
    ValueError
        If the dimensions differ or an input is empty.

    References
    ----------
    Bonneel et al. 2015, "Sliced and Radon Wasserstein Barycenters of
    Measures", Sec. 2; Deshpande et al. 2018, arXiv:1803.11188, Sec. 3;
    computed by POT ``ot.sliced_wasserstein_distance``.
    """
    xs, ys = as_cloud(x, "x"), as_cloud(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x and y have different dimensions: {xs.shape[1]} vs {ys.shape[1]}")
    value = ot.sliced_wasserstein_distance(xs, ys, n_projections=n_projections, p=p, seed=seed)
    return float(value)
