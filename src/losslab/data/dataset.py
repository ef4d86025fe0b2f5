"""The :class:`Dataset` record every loader returns, and the seed streams of the loaders.

Kept apart from :mod:`losslab.data` so that the loaders (``toy``, ``images``,
``user``, ``stacked``, ``random_data``) import it without importing the
package that imports them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from losslab.errors import UserError

__all__ = ["Dataset", "stream_seed", "take_train_subset"]


@dataclass
class Dataset:
    """A dataset: training rows, held-out rows, and (for toys) the exact distribution.

    Attributes
    ----------
    name : str
        ``"ring8"``, ``"mnist"``, ``"my.csv"``, ...
    kind : str
        ``"vector"`` or ``"image"``.
    shape : tuple of int
        Shape of one sample: ``(d,)`` or ``(C, H, W)``.
    train, test : Tensor
        ``(N, *shape)`` and ``(M, *shape)`` float32. Vectors raw, images in ``[-1, 1]``.
    train_labels, test_labels : Tensor or None
        ``(N,)`` / ``(M,)`` int64 class indices where the data has labels.
    num_classes : int or None
    modes : Tensor or None
        ``(K, d)`` means of the Gaussian mixture (toys only).
    mode_std : float or None
        Standard deviation of each (isotropic) mixture component.
    weights : Tensor or None
        ``(K,)`` mixture weights, summing to 1.
    sampler : callable or None
        ``sampler(n, generator) -> (n, d)`` exact samples of the toy distribution.
    pdf : callable or None
        1-D density ``pdf(x: ndarray) -> ndarray`` (1-D toys, for plots).
    class_names : list of str or None
        ``class_names[label]`` is the name of class ``label``.
    default_n_eval : int or None
        Generated samples an evaluation protocol of this dataset prescribes
        (Stacked MNIST: 26,000), or None for the config's ``train.n_eval``.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    train: Tensor = field(repr=False)
    test: Tensor = field(repr=False)
    train_labels: Tensor | None = field(default=None, repr=False)
    test_labels: Tensor | None = field(default=None, repr=False)
    num_classes: int | None = None
    modes: Tensor | None = field(default=None, repr=False)
    mode_std: float | None = None
    weights: Tensor | None = field(default=None, repr=False)
    sampler: Callable[[int, torch.Generator], Tensor] | None = field(default=None, repr=False)
    pdf: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    class_names: list[str] | None = None
    default_n_eval: int | None = None

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """A training batch: ``n`` fresh draws from ``sampler`` if set, else ``n`` random rows of ``train``.

        Rows are drawn uniformly with replacement (independent minibatches).

        Parameters
        ----------
        n : int
            Batch size, >= 1.
        generator : torch.Generator, optional
            Source of randomness; the same seed gives the same batch.

        Returns
        -------
        Tensor
            ``(n, *shape)`` float32.
        """
        if self.sampler is not None:
            return self.sampler(n, generator)
        idx = torch.randint(len(self.train), (n,), generator=generator)
        return self.train[idx]

    def reference(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Real samples for evaluation: fresh draws from ``sampler``, else rows of ``test``.

        Test rows are drawn without replacement, so at most ``len(test)`` rows come
        back: ``min(n, len(test))`` rows (duplicates would bias FID-like metrics).

        Parameters
        ----------
        n : int
            Number of samples wanted, >= 1.
        generator : torch.Generator, optional
            Source of randomness; the same seed gives the same rows.

        Returns
        -------
        Tensor
            ``(min(n, M), *shape)`` float32 (``(n, *shape)`` for toys).
        """
        if self.sampler is not None:
            return self.sampler(n, generator)
        idx = torch.randperm(len(self.test), generator=generator)[:n]
        return self.test[idx]


def stream_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for sub-stream ``stream`` of the run seed ``seed``.

    Uses numpy's ``SeedSequence`` so that e.g. the test set of seed 0 never equals
    the training set of seed 1.

    Raises
    ------
    UserError
        If ``seed`` is negative.
    """
    if int(seed) < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed}")
    state = np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def take_train_subset(ds: Dataset, n_train: int, seed: int) -> Dataset:
    """Keep the first ``n_train`` training rows after a permutation seeded by ``seed``.

    Rows (and labels) keep their pairing; ``ds`` itself is returned when
    ``n_train >= len(ds.train)``.

    Raises
    ------
    UserError
        If ``n_train < 1``.
    """
    if int(n_train) < 1:
        raise UserError(f"n_train must be >= 1, got {n_train}")
    n = len(ds.train)
    if n_train >= n:
        return ds
    g = torch.Generator().manual_seed(stream_seed(seed, 2))
    idx = torch.randperm(n, generator=g)[: int(n_train)]
    labels = None if ds.train_labels is None else ds.train_labels[idx]
    return dataclasses.replace(ds, train=ds.train[idx], train_labels=labels)
