"""Mode coverage of a Gaussian mixture: the VEEGAN / PacGAN protocol.

Each generated sample is assigned to its nearest mixture mean. It is of
*high quality* when that mean lies within ``n_std`` standard deviations
(Euclidean distance) of it. A mode is *covered* when at least ``min_count``
high-quality samples are assigned to it. The *reverse KL* compares the
histogram of high-quality samples over modes with the true mixture weights.

References: Srivastava et al. 2017, "VEEGAN", arXiv:1705.07761, Sec. 5.1
(modes captured, high-quality samples within 3 std); Lin et al. 2018,
"PacGAN", arXiv:1712.04086, Sec. 5 / Table 2 (modes, reverse KL of the mode
histogram; PacGAN counts a mode only above a count threshold).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.spatial.distance
import torch

from losslab.metrics.wasserstein import as_cloud, as_float64


def mode_stats(
    samples: np.ndarray | torch.Tensor,
    modes: np.ndarray | torch.Tensor,
    std: float,
    weights: np.ndarray | torch.Tensor | None = None,
    n_std: float = 3.0,
    min_count: int = 1,
) -> dict:
    """Modes covered, fraction of high-quality samples and reverse KL over modes.

    Parameters
    ----------
    samples : (N, d) array or tensor
        Generated samples (data units); ``(N,)`` is read as d = 1.
    modes : (K, d) array or tensor
        Means of the true mixture components.
    std : float
        Standard deviation of each (isotropic) component, data units, > 0.
    weights : (K,) array or tensor, optional
        True mixture weights (normalised here); ``None`` means uniform 1/K.
    n_std : float
        A sample is high quality when ``||x - nearest mode||_2 <= n_std * std``
        (VEEGAN uses 3).
    min_count : int
        A mode is covered when at least ``min_count`` high-quality samples are
        assigned to it (VEEGAN: 1; PacGAN uses a larger threshold).

    Returns
    -------
    dict
        ``modes_covered`` (int), ``num_modes`` (int, K), ``high_quality``
        (float in [0, 1], fraction of all N samples), ``reverse_kl``
        (float, ``KL(p_gen || p_true) = sum_k p_gen[k] log(p_gen[k] / w[k])``
        with ``0 log 0 = 0``, where ``p_gen`` is the histogram of the
        high-quality samples over modes; it is ``math.inf`` when no sample is
        of high quality, since then the generator puts no mass on any mode,
        and when samples land on a mode of true weight 0),
        ``mode_counts`` (list of K ints, high-quality samples per mode).

    Raises
    ------
    ValueError
        On empty inputs, mismatched dimensions, ``std <= 0``, non-finite
        samples, or weights of the wrong length / not summing to a positive value.

    References
    ----------
    Srivastava et al. 2017, arXiv:1705.07761, Sec. 5.1; Lin et al. 2018,
    arXiv:1712.04086, Sec. 5.
    """
    x = as_cloud(samples, "samples")
    mu = as_cloud(modes, "modes")
    if x.shape[1] != mu.shape[1]:
        raise ValueError(f"samples have dimension {x.shape[1]} but modes have {mu.shape[1]}")
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or inf")
    k = mu.shape[0]
    if weights is None:
        w = np.full(k, 1.0 / k)
    else:
        w = as_float64(weights).reshape(-1)
        if w.shape[0] != k or (w < 0).any() or not w.sum() > 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
        w = w / w.sum()

    # 1. Nearest mode of every sample and its Euclidean distance.
    dist = scipy.spatial.distance.cdist(x, mu)  # (N, K)
    nearest = dist.argmin(axis=1)  # (N,)
    high = dist[np.arange(x.shape[0]), nearest] <= n_std * std  # (N,) bool

    # 2. Histogram of the high-quality samples over modes.
    counts = np.bincount(nearest[high], minlength=k)  # (K,)
    n_high = int(counts.sum())

    # 3. Reverse KL(p_gen || p_true), 0 log 0 = 0.
    if n_high == 0:
        reverse_kl = math.inf
    else:
        p_gen = counts / n_high
        on = p_gen > 0
        with np.errstate(divide="ignore"):
            reverse_kl = float(np.sum(p_gen[on] * (np.log(p_gen[on]) - np.log(w[on]))))

    return {
        "modes_covered": int((counts >= min_count).sum()),
        "num_modes": int(k),
        "high_quality": float(high.mean()),
        "reverse_kl": reverse_kl,
        "mode_counts": [int(c) for c in counts],
    }
