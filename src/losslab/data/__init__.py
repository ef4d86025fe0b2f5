"""Every dataset losslab trains on, behind one function: :func:`load_dataset`.

Three sources, one :class:`Dataset` record:

* toy Gaussian mixtures with an exact sampler (:mod:`losslab.data.toy`):
  ``gaussian1d``, ``mixture1d``, ``ring8``, ``grid25``;
* image sets (:mod:`losslab.data.images`): ``digits`` (scikit-learn, bundled),
  ``mnist`` and ``fashion-mnist`` (gzip IDX files, found locally or downloaded),
  and ``stacked-mnist`` (:mod:`losslab.data.stacked`, built from MNIST; its
  ``Dataset.default_n_eval`` is the protocol's 26,000 generated samples);
* user files (:mod:`losslab.data.user`): a ``.csv`` matrix, a ``.npy`` array or
  a folder of PNG/JPEG images, selected when ``name_or_path`` is an existing path.

Vectors are float32 ``(N, d)`` in their raw units; images are float32
``(N, C, H, W)`` scaled to ``[-1, 1]`` (generators end in tanh).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from losslab.data import images, stacked, toy, user
from losslab.data.dataset import Dataset, stream_seed, take_train_subset
from losslab.data.random_data import load_random
from losslab.errors import UserError, unknown_choice

__all__ = ["DATASETS", "Dataset", "load_dataset", "stream_seed", "take_train_subset"]

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
    name = str(name_or_path)
    if image_size is not None and name not in toy.TOYS:
        images.check_image_size(image_size)  # fail before any expensive loading
    if name in toy.TOYS:
        if n_train is not None:
            raise UserError(f"data.n_train = {n_train}: toy data {name!r} is drawn afresh from its exact "
                            "distribution for every batch, so a training-set size does not apply; save rows "
                            "to a .csv to study a small training set")
        ds = toy.load_toy(name, seed=seed)
    elif name == "digits":
        ds = images.load_digits()
    elif name == "stacked-mnist":
        ds = stacked.load_stacked_mnist(data_dir=data_dir, download=download)
    elif name in images.IDX_FILES:
        ds = images.load_idx_dataset(name, data_dir=data_dir, download=download)
    elif name == "random":
        ds = load_random(image_size=image_size)
    elif Path(name).expanduser().exists():
        ds = user.load_user(Path(name).expanduser(), image_size=image_size)  # resizes itself
    else:
        err = unknown_choice("dataset", name, DATASETS)
        raise UserError(f"{err} (or give a path to a .csv file, a .npy file or a folder of images)")
    if n_train is not None:
        ds = take_train_subset(ds, n_train, seed)  # before resizing: cheaper
    if ds.kind == "image":
        size = image_size if image_size is not None else images.check_image_size(ds.shape[-1], what="native image size")
        train, test = images.resize_images(ds.train, size), images.resize_images(ds.test, size)
        ds = dataclasses.replace(ds, train=train, test=test, shape=tuple(train.shape[1:]))
    return ds
