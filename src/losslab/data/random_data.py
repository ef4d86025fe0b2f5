"""The study's ``random`` dataset: Gaussian-noise "images" with random labels.

The study trained a pairwise contrastive model on random tensors and got
chance accuracy. This dataset reproduces that setting inside losslab: pixels
are i.i.d. ``N(0, 0.5^2)`` clipped to [-1, 1], and each image gets a class
label drawn uniformly and **independently of its pixels**. Whatever an encoder
learns from these images (it can learn to match two augmented views of the
same noise image), no function of the pixels predicts the label better than
chance, so a linear probe or a kNN classifier on any representation stays at
chance on the test split. The data are fixed by ``seed`` (default 0), so every
run of a comparison sees the same images.
"""

from __future__ import annotations

import torch

from losslab.data.dataset import Dataset, stream_seed
from losslab.errors import UserError

__all__ = ["RANDOM_DESCRIPTION", "load_random"]

RANDOM_DESCRIPTION = (
    "Gaussian-noise images N(0, 0.5^2) clipped to [-1, 1] with random labels (10 classes): "
    "the study's random-tensor setting, nothing to learn"
)

NOISE_STD = 0.5
"""Pixel standard deviation before clipping (about 4.6% of pixels are clipped)."""


def load_random(
    *,
    n_train: int = 10_000,
    n_test: int = 2_000,
    image_size: int | None = None,
    channels: int = 1,
    num_classes: int = 10,
    seed: int = 0,
) -> Dataset:
    """Gaussian-noise images with uniform random labels, independent of the pixels.

    Parameters
    ----------
    n_train, n_test : int
        Number of training / test images (>= 1).
    image_size : int, optional
        Side of the square images; default 28 (MNIST's shape).
    channels : int
        Image channels (>= 1).
    num_classes : int
        Number of label values (>= 2); labels are uniform on 0..num_classes-1.
    seed : int
        Fixes pixels and labels (independent streams for train and test).

    Returns
    -------
    Dataset
        ``name="random"``, ``kind="image"``, ``shape=(channels, S, S)``, images
        in [-1, 1], ``train_labels`` / ``test_labels`` int64, ``class_names``
        ``["0", ..., str(num_classes - 1)]``.

    Raises
    ------
    UserError
        A size or count out of range.
    """
    size = 28 if image_size is None else int(image_size)
    if min(n_train, n_test, size, channels) < 1 or num_classes < 2:
        raise UserError(
            f"random data needs n_train, n_test, image_size, channels >= 1 and num_classes >= 2; "
            f"got {n_train}, {n_test}, {size}, {channels}, {num_classes}"
        )
    shape = (channels, size, size)

    def draw(n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(stream_seed(seed, stream))
        x = (NOISE_STD * torch.randn((n, *shape), generator=g)).clamp(-1.0, 1.0)
        y = torch.randint(num_classes, (n,), generator=g)  # independent of x
        return x, y

    x_train, y_train = draw(int(n_train), 101)
    x_test, y_test = draw(int(n_test), 102)
    return Dataset(
        name="random",
        kind="image",
        shape=shape,
        train=x_train,
        test=x_test,
        train_labels=y_train,
        test_labels=y_test,
        num_classes=num_classes,
        class_names=[str(i) for i in range(num_classes)],
    )
