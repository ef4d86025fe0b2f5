"""Toy Gaussian mixtures with exact samplers: the classic mode-collapse benchmarks.

Every toy is an isotropic Gaussian mixture ``sum_k w_k N(mu_k, sigma^2 I)`` given
by its means ``(K, d)``, one ``sigma`` and weights ``(K,)``; evaluation (mode
coverage, high-quality-sample rate, exact Wasserstein references) reads those
fields from the :class:`~losslab.data.Dataset`.

* ``gaussian1d``: N(4, 1.25^2), the 1-D target of the "GAN in 50 lines" study.
* ``mixture1d``: 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2).
* ``ring8``: 8 modes of std 0.02 at radius 2, angles 2 pi k / 8, k = 0..7
  (Metz et al. 2017, Unrolled GANs, arXiv:1611.02163, Sec. 3.1; Srivastava et al.
  2017, VEEGAN, arXiv:1705.07761, Sec. 5.1). The widely copied sampler uses
  ``linspace(0, 2 pi, 8)``, which repeats the first mode and has only 7: not here.
* ``grid25``: 25 modes of std 0.05 on {-4, -2, 0, 2, 4}^2 (Lin et al. 2018, PacGAN,
  arXiv:1712.04086, Sec. 5.1).
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from losslab.data.dataset import Dataset, stream_seed

N_TRAIN = 10_000
N_TEST = 10_000


def ring_means(k: int = 8, radius: float = 2.0) -> Tensor:
    """``k`` distinct points on a circle: ``radius * (cos a_j, sin a_j)``, ``a_j = 2 pi j / k``.

    Returns
    -------
    Tensor
        ``(k, 2)`` float32. Source: Metz et al. 2017, arXiv:1611.02163, Sec. 3.1.
    """
    angles = 2.0 * math.pi * torch.arange(k, dtype=torch.float64) / k  # j = 0..k-1, never 2 pi
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).float()


def grid_means(values: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)) -> Tensor:
    """All points of ``values x values``: the 25-mode grid of PacGAN (arXiv:1712.04086).

    Returns
    -------
    Tensor
        ``(len(values)**2, 2)`` float32.
    """
    return torch.tensor(list(itertools.product(values, values)), dtype=torch.float32)


def mixture_sampler(means: Tensor, std: float, weights: Tensor) -> Callable[[int, torch.Generator | None], Tensor]:
    """Exact sampler of ``sum_k w_k N(means[k], std^2 I)``.

    Parameters
    ----------
    means : Tensor
        ``(K, d)`` component means.
    std : float
        Standard deviation of every component (isotropic).
    weights : Tensor
        ``(K,)`` non-negative weights summing to 1.

    Returns
    -------
    callable
        ``sample(n, generator=None) -> (n, d)`` float32: a component index
        ``k ~ Categorical(weights)`` then ``means[k] + std * eps``, ``eps ~ N(0, I)``.
    """

    def sample(n: int, generator: torch.Generator | None = None) -> Tensor:
        if n < 1:
            raise ValueError(f"number of samples must be >= 1, got {n}")
        k = torch.multinomial(weights, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, means.shape[1], generator=generator)  # (n, d)
        return means[k] + std * eps

    return sample


def mixture_pdf(means: Tensor, std: float, weights: Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """Density of a 1-D mixture ``p(x) = sum_k w_k N(x; means[k, 0], std^2)`` (numpy, for plots).

    Parameters
    ----------
    means : Tensor
        ``(K, 1)`` means.
    std, weights
        As in :func:`mixture_sampler`.

    Returns
    -------
    callable
        ``pdf(x) -> ndarray`` of the same shape as ``x`` (float64).
    """
    mu = means[:, 0].double().numpy()
    w = weights.double().numpy()

    def pdf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.sum(w * stats.norm.pdf(x[..., None], loc=mu, scale=std), axis=-1)

    return pdf


def _uniform(k: int) -> Tensor:
    return torch.full((k,), 1.0 / k)


# name -> (means (K, d), std, weights (K,)); the keys must match DATASETS.
TOYS: dict[str, Callable[[], tuple[Tensor, float, Tensor]]] = {
    "gaussian1d": lambda: (torch.tensor([[4.0]]), 1.25, _uniform(1)),
    "mixture1d": lambda: (torch.tensor([[-2.0], [2.0]]), 0.5, _uniform(2)),
    "ring8": lambda: (ring_means(8, 2.0), 0.02, _uniform(8)),
    "grid25": lambda: (grid_means(), 0.05, _uniform(25)),
}


def load_toy(name: str, *, seed: int = 0) -> Dataset:
    """Build the toy ``name``: exact sampler, ``N_TRAIN`` training and ``N_TEST`` test draws.

    Parameters
    ----------
    name : str
        A key of :data:`TOYS`.
    seed : int
        Training draws use sub-stream 0 of ``seed``, test draws sub-stream 1
        (:func:`losslab.data.stream_seed`), so they are independent.

    Returns
    -------
    Dataset
        ``kind="vector"``, ``shape=(d,)``, with ``modes``, ``mode_std``, ``weights``,
        ``sampler`` and, for ``d = 1``, ``pdf``.
    """
    means, std, weights = TOYS[name]()
    sampler = mixture_sampler(means, std, weights)
    train = sampler(N_TRAIN, torch.Generator().manual_seed(stream_seed(seed, 0)))
    test = sampler(N_TEST, torch.Generator().manual_seed(stream_seed(seed, 1)))
    d = means.shape[1]
    return Dataset(
        name=name,
        kind="vector",
        shape=(d,),
        train=train,
        test=test,
        modes=means,
        mode_std=std,
        weights=weights,
        sampler=sampler,
        pdf=mixture_pdf(means, std, weights) if d == 1 else None,
    )
