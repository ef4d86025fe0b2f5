"""Every dataset losslab trains on, behind one function: :func:`load_dataset`.

Three sources, one :class:`Dataset` record:

* toy Gaussian mixtures with an exact sampler (:mod:`losslab.data.toy`):
  ``gaussian1d``, ``mixture1d``, ``ring8``, ``grid25``;
* image sets (:mod:`losslab.data.images`): ``digits`` (scikit-learn, bundled),
  ``mnist`` and ``fashion-mnist`` (gzip IDX files, found locally or downloaded);
* user files (:mod:`losslab.data.user`): a ``.csv`` matrix, a ``.npy`` array or
  a folder of PNG/JPEG images, selected when ``name_or_path`` is an existing path.

Vectors are float32 ``(N, d)`` in their raw units; images are float32
``(N, C, H, W)`` scaled to ``[-1, 1]`` (generators end in tanh).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from losslab.errors import UserError, unknown_choice

__all__ = ["DATASETS", "Dataset", "load_dataset"]

# Built-in name -> one line for `losslab list data`. The loaders live in toy.py / images.py.
DATASETS: dict[str, str] = {
    "gaussian1d": "1-D normal N(4, 1.25^2), the target of the 'GAN in 50 lines' study (1 mode)",
    "mixture1d": "1-D mixture 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2) (2 modes)",
    "ring8": "8 Gaussians (std 0.02) on a circle of radius 2 (Metz et al. 2017, arXiv:1611.02163)",
    "grid25": "25 Gaussians (std 0.05) on the grid {-4,-2,0,2,4}^2 (PacGAN, arXiv:1712.04086)",
    "digits": "scikit-learn 8x8 handwritten digits, 1797 images, 10 classes, stratified 80/20 split",
    "mnist": "MNIST 28x28 handwritten digits, 60000 train / 10000 test, 10 classes",
    "fashion-mnist": "Fashion-MNIST 28x28 clothing images, 60000 / 10000, 10 classes (arXiv:1708.07747)",
    "stacked-mnist": "Stacked MNIST: 3 MNIST digits in 3 channels, 1000 modes (VEEGAN/PacGAN protocol, arXiv:1712.04086)",
    "random": "Gaussian-noise images with random labels: the study's random-tensor setting, nothing to learn",
}


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


def _take_train_subset(ds: Dataset, n_train: int, seed: int) -> Dataset:
    """Keep the first ``n_train`` training rows after a permutation seeded by ``seed``."""
    if int(n_train) < 1:
        raise UserError(f"n_train must be >= 1, got {n_train}")
    n = len(ds.train)
    if n_train >= n:
        return ds
    g = torch.Generator().manual_seed(stream_seed(seed, 2))
    idx = torch.randperm(n, generator=g)[: int(n_train)]
    labels = None if ds.train_labels is None else ds.train_labels[idx]
    return dataclasses.replace(ds, train=ds.train[idx], train_labels=labels)


def load_dataset(
    name_or_path: str,
    *,
    data_dir: str | None = None,
    image_size: int | None = None,
    n_train: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> Dataset:
    """Load a built-in dataset by name, or a user's ``.csv`` / ``.npy`` file or image folder.

    Parameters
    ----------
    name_or_path : str
        A key of :data:`DATASETS`, or an existing path to a ``.csv`` file (N x d numbers),
        a ``.npy`` array (vectors or images) or a folder of PNG/JPEG images.
        Built-in names win over a same-named path (write ``./mnist`` to force the path).
    data_dir : str, optional
        Where to look first for the MNIST / Fashion-MNIST gzip IDX files
        (then ``$LOSSLAB_DATA``, then the cache ``~/.cache/losslab/data``).
    image_size : int, optional
        Side of the square images, a multiple of 4; images are resized (bilinear,
        antialiased) when it differs from the native side. Default: native size
        (28 for an image folder). Ignored for vector data.
    n_train : int, optional
        Keep at most this many training rows: the first ``n_train`` after a
        permutation seeded by ``seed``. The test split is never subsampled.
    seed : int
        Seeds the toy training/test draws and the ``n_train`` subset. The splits of
        ``digits`` and of user files are fixed (seed 0) so that every run is
        evaluated on the same held-out rows.
    download : bool
        Download missing MNIST / Fashion-MNIST files into the cache (MD5-checked).

    Returns
    -------
    Dataset

    Raises
    ------
    UserError
        Unknown name, unreadable or malformed file, missing data while offline,
        image size not a multiple of 4.
    """
    from losslab.data import images, toy, user  # they import Dataset from this module

    name = str(name_or_path)
    if image_size is not None and name not in toy.TOYS:
        images.check_image_size(image_size)  # fail before any expensive loading
    if name in toy.TOYS:
        ds = toy.load_toy(name, seed=seed)
    elif name == "digits":
        ds = images.load_digits()
    elif name == "stacked-mnist":
        from losslab.data import stacked

        ds = stacked.load_stacked_mnist(data_dir=data_dir, download=download)
    elif name in images.IDX_FILES:
        ds = images.load_idx_dataset(name, data_dir=data_dir, download=download)
    elif name == "random":
        from losslab.data.random_data import load_random

        ds = load_random(image_size=image_size)
    elif Path(name).expanduser().exists():
        ds = user.load_user(Path(name).expanduser(), image_size=image_size)  # resizes itself
    else:
        err = unknown_choice("dataset", name, DATASETS)
        raise UserError(f"{err} (or give a path to a .csv file, a .npy file or a folder of images)")
    if n_train is not None:
        ds = _take_train_subset(ds, n_train, seed)  # before resizing: cheaper
    if ds.kind == "image":
        size = image_size if image_size is not None else images.check_image_size(ds.shape[-1], what="native image size")
        train, test = images.resize_images(ds.train, size), images.resize_images(ds.test, size)
        ds = dataclasses.replace(ds, train=train, test=test, shape=tuple(train.shape[1:]))
    return ds
