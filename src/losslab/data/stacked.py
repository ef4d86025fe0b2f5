"""Stacked MNIST: three MNIST digits in the three channels of one image, 1,000 modes.

Each image ``(3, 28, 28)`` puts an independently drawn MNIST digit in each
channel; its label is the mode ``100 d_R + 10 d_G + d_B`` in ``[0, 1000)``.
A generator that covers the data produces all 1,000 digit triples; the
protocol of VEEGAN / PacGAN classifies each channel of 26,000 generated images
with a pretrained MNIST classifier and reports the number of modes seen and the
KL divergence between the mode histogram and the true mode distribution
(:func:`losslab.metrics.stacked.stacked_mnist_modes`).

The builder is deterministic: the R channel of a split holds the split's MNIST
images in their own order, the G and B channels in the orders of permutations
seeded by ``(seed, c)``, so with the full split every MNIST image appears once
per channel (no image is favoured) and the three digits of an image are
independent draws. More images than the split holds are drawn with replacement.
The R channel of the full training split is MNIST's training set itself, so the
per-channel digit classifier is the MNIST classifier (same cache entry).

Sources: Metz et al. 2017, "Unrolled GANs", arXiv:1611.02163, Sec. 3.3.2;
Srivastava et al. 2017, "VEEGAN", arXiv:1705.07761, Sec. 5.2; Lin et al. 2018,
"PacGAN", arXiv:1712.04086, Sec. 5.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor

from losslab.data.dataset import Dataset, stream_seed
from losslab.data.images import load_idx_dataset
from losslab.errors import UserError

NAME = "stacked-mnist"
NUM_MODES = 1000
# Generated samples classified by the VEEGAN / PacGAN protocol.
PROTOCOL_SAMPLES = 26_000
DESCRIPTION = "Stacked MNIST: 3 MNIST digits in 3 channels, 1000 modes (VEEGAN/PacGAN protocol, arXiv:1712.04086)"


def stack_digits(
    images: Tensor, labels: Tensor, n: int | None = None, *, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Stack three independently ordered copies of a digit set into 3-channel images.

    Parameters
    ----------
    images : (M, 1, H, W) float32 tensor
        Single-channel digit images (in [-1, 1] inside losslab).
    labels : (M,) int64 tensor
        Digit classes 0..9.
    n : int, optional
        Number of stacked images; default M (each digit once per channel). When
        ``n > M`` the channel indices are drawn with replacement.
    seed : int, keyword-only
        Seeds the G and B channel orders (independent streams per channel).

    Returns
    -------
    x : (n, 3, H, W) float32 tensor
        Channel ``c`` of row ``i`` is ``images[idx_c[i], 0]``; ``idx_R = 0, 1, ...``
        (for ``n <= M``), ``idx_G`` and ``idx_B`` random permutations.
    y : (n,) int64 tensor
        Modes ``100 labels[idx_0] + 10 labels[idx_1] + labels[idx_2]``.

    Raises
    ------
    UserError
        If the images are not single-channel ``(M, 1, H, W)``, the labels do not
        match, a label is outside 0..9, or ``n < 1``.
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise UserError(f"Stacked MNIST needs single-channel digits (M, 1, H, W), got shape {tuple(images.shape)}")
    labels = torch.as_tensor(labels).long()
    m = images.shape[0]
    if labels.shape != (m,) or m == 0:
        raise UserError(f"Stacked MNIST needs one label per digit: {m} images, labels of shape {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() > 9:
        raise UserError("Stacked MNIST needs digit labels in 0..9")
    n = m if n is None else int(n)
    if n < 1:
        raise UserError(f"the number of stacked images must be >= 1, got {n}")
    channels, modes = [], torch.zeros(n, dtype=torch.int64)
    for c in range(3):
        g = torch.Generator().manual_seed(stream_seed(seed, 100 + c))
        if n > m:
            idx = torch.randint(m, (n,), generator=g)
        else:
            idx = torch.arange(n) if c == 0 else torch.randperm(m, generator=g)[:n]
        channels.append(images[idx, 0])  # (n, H, W)
        modes = modes * 10 + labels[idx]
    return torch.stack(channels, dim=1), modes


def build_stacked_mnist(mnist: Dataset, *, n_train: int | None = None, n_test: int | None = None,
                        seed: int = 0) -> Dataset:
    """Stacked MNIST built from a loaded MNIST :class:`Dataset`.

    Parameters
    ----------
    mnist : Dataset
        MNIST (or any single-channel 10-class digit set) with labels, images in [-1, 1].
    n_train, n_test : int, optional
        Number of stacked training / test images; default the sizes of the MNIST
        splits (60,000 / 10,000). Training images come only from MNIST's training
        split and test images only from its test split.
    seed : int
        Seed of the channel orders (the test split uses an independent stream).

    Returns
    -------
    Dataset
        ``name="stacked-mnist"``, ``kind="image"``, ``shape=(3, H, W)``, labels
        ``100 d_R + 10 d_G + d_B``, ``num_classes=1000``, class names ``"d_R d_G d_B"``,
        ``default_n_eval=26000`` (:data:`PROTOCOL_SAMPLES`, the VEEGAN / PacGAN protocol).

    Raises
    ------
    UserError
        If ``mnist`` has no labels or is not single-channel.
    """
    if mnist.train_labels is None or mnist.test_labels is None:
        raise UserError(f"Stacked MNIST needs a labelled digit dataset; {mnist.name!r} has no labels")
    x_tr, y_tr = stack_digits(mnist.train, mnist.train_labels, n_train, seed=seed)
    x_te, y_te = stack_digits(mnist.test, mnist.test_labels, n_test, seed=stream_seed(seed, 1))
    return Dataset(
        name=NAME,
        kind="image",
        shape=tuple(x_tr.shape[1:]),
        train=x_tr,
        test=x_te,
        train_labels=y_tr,
        test_labels=y_te,
        num_classes=NUM_MODES,
        class_names=[f"{k // 100}{k // 10 % 10}{k % 10}" for k in range(NUM_MODES)],
        default_n_eval=PROTOCOL_SAMPLES,
    )


def load_stacked_mnist(*, data_dir: str | None = None, n_train: int | None = None, seed: int = 0,
                       download: bool = True) -> Dataset:
    """Load MNIST (see :func:`losslab.data.load_dataset`) and stack it (:func:`build_stacked_mnist`).

    Raises
    ------
    UserError
        Missing MNIST files while offline, and the errors of :func:`build_stacked_mnist`.
    """
    return build_stacked_mnist(load_idx_dataset("mnist", data_dir=data_dir, download=download),
                               n_train=n_train, seed=seed)


def mode_digits(modes: Tensor) -> Tensor:
    """Digits ``(N, 3)`` (R, G, B) of modes ``(N,)`` ``100 d_R + 10 d_G + d_B``."""
    modes = torch.as_tensor(modes).long()
    return torch.stack([modes // 100, modes // 10 % 10, modes % 10], dim=1)


def digit_view(stacked) -> SimpleNamespace:
    """The digits of a Stacked MNIST dataset as a single-channel 10-class dataset.

    Channel R of the training (test) split with its digit labels: with the full
    splits this is MNIST's training (test) set in its own order, so the
    classifier trained on it is the MNIST classifier, shared with ``losslab
    features train --data mnist`` through the cache (the feature network of
    :class:`~losslab.metrics.features.StackedDigitNet`).

    Returns
    -------
    SimpleNamespace
        ``name="mnist"``, ``shape=(1, H, W)``, ``train``, ``test``,
        ``train_labels``, ``test_labels``, ``num_classes=10``.
    """
    shape = (1, *tuple(stacked.shape)[1:])
    test_labels = None if stacked.test_labels is None else mode_digits(stacked.test_labels)[:, 0]
    return SimpleNamespace(
        name="mnist", kind="image", shape=shape,
        train=stacked.train[:, :1], test=stacked.test[:, :1],
        train_labels=mode_digits(stacked.train_labels)[:, 0], test_labels=test_labels, num_classes=10,
    )
