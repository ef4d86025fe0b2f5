"""The self-supervised (SimCLR) encoder behind the feature network of unlabelled images.

Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", arXiv:2002.05709: two augmented views per image, the NT-Xent
loss (:func:`losslab.losses.contrastive.nt_xent_loss`), features L2-normalised.
:mod:`losslab.metrics.features` trains, caches and names it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.data.augment import two_views
from losslab.losses.contrastive import nt_xent_loss

# Augmentations of the SimCLR encoder: losslab.data.augment's crop / rotation / translation / pixel noise
# (its defaults), then SimCLR's Gaussian blur: with probability 0.5, sigma uniform in [0.1, 2.0] pixels
# (Chen et al. 2020, Appendix A, scaled from 224 px to these small images by leaving sigma in pixels).
SSL_AUGMENT: dict[str, Any] = {}
SSL_BLUR_P = 0.5
SSL_BLUR_SIGMA = (0.1, 2.0)


def gaussian_blur(x: Tensor, sigma: float | Tensor) -> Tensor:
    """Gaussian blur of images ``(N, C, H, W)``, separable, radius ``ceil(3 max sigma)``, reflect padding.

    ``sigma`` in pixels (> 0): one float, or ``(N,)`` one per image. Returns float32 of ``x``'s shape.
    Raises ``ValueError`` when a sigma is not positive.
    """
    n, c, h, w = x.shape
    sig = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(n) if n else torch.zeros(0)
    if n == 0:
        return x.float()
    if not bool((sig > 0).all()):
        raise ValueError("blur sigma must be > 0")
    r = max(1, math.ceil(3 * float(sig.max())))
    r = min(r, h - 1, w - 1) if min(h, w) > 1 else 0
    if r == 0:
        return x.float()
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None, :] / sig[:, None]) ** 2)  # (N, 2r + 1)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N C, 2r + 1): one kernel per image channel
    y = F.pad(x.float().reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)  # along W
    y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)  # along H
    return y.reshape(n, c, h, w)


def ssl_views(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two views of each image for the SimCLR feature net: :func:`losslab.data.augment.two_views`
    (its defaults), then Gaussian blur of each view with probability ``SSL_BLUR_P``, sigma uniform
    in ``SSL_BLUR_SIGMA`` pixels. ``(N, C, H, W)`` in [-1, 1] -> two such tensors."""
    views = []
    for v in two_views(x, generator, **SSL_AUGMENT):
        n = v.shape[0]
        lo, hi = SSL_BLUR_SIGMA
        sigma = lo + (hi - lo) * torch.rand(n, generator=generator)
        blur = torch.rand(n, generator=generator) < SSL_BLUR_P
        v = torch.where(blur[:, None, None, None], gaussian_blur(v, sigma), v)
        views.append(v)
    return views[0], views[1]


class SimCLREncoder(nn.Module):
    """Small convolutional encoder trained with NT-Xent on two augmented views (SimCLR).

    ``conv4x4/2(C->32) - BN - ReLU - conv4x4/2(32->64) - BN - ReLU - conv3x3/2(64->128) - BN - ReLU
    - linear(-> num_features)`` gives the representation ``h`` (the FID features, taken before
    any ReLU as in :class:`ClassifierNet`); the projection head
    ``ReLU - linear(num_features -> num_features) - ReLU - linear(-> proj_dim)`` gives the ``z``
    on which the loss is computed and is dropped afterwards (Chen et al. 2020,
    arXiv:2002.05709, Sec. 2.1: ``h`` transfers better than ``z``).

    Parameters
    ----------
    shape : (C, H, W)
        Image shape; any H, W >= 1.
    num_features : int
        Width of ``h`` (``self.num_features``).
    proj_dim : int
        Width of the projection ``z``.

    Attributes
    ----------
    name : str
        ``"simclr-<sha8> on <data>"`` once trained or loaded by :func:`get_ssl_feature_net`
        (sha8: first 8 hex digits of the weights file's SHA-256).
    quality : dict or None
        ``view_knn_agreement``, ``alignment``, ``uniformity`` (see :func:`ssl_quality`).
    cache_file, sha256 : str or None
    """

    def __init__(self, shape: tuple[int, int, int], num_features: int = 128, proj_dim: int = 64) -> None:
        super().__init__()
        c, h, w = (int(s) for s in shape)
        self.shape = (c, h, w)
        self.num_features = int(num_features)
        self.convs = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1),  # (N, 32, H/2, W/2)
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),  # (N, 64, H/4, W/4)
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1),  # (N, 128, ceil(H/8), ceil(W/8))
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(2, c, h, w)).shape[1]
        self.fc = nn.Linear(flat, self.num_features)
        self.projector = nn.Sequential(
            nn.ReLU(), nn.Linear(self.num_features, self.num_features), nn.ReLU(), nn.Linear(self.num_features, proj_dim)
        )
        self.name = "simclr-untrained"
        self.quality: dict[str, float] | None = None
        self.test_accuracy: float | None = None  # no labels: kept for callers that read it
        self.cache_file: str | None = None
        self.sha256: str | None = None

    def representation(self, x: Tensor) -> Tensor:
        """Representation ``h`` ``(N, num_features)`` float32 of images ``(N, C, H, W)`` in [-1, 1]."""
        return self.fc(self.convs(x.float()))

    def forward(self, x: Tensor) -> Tensor:
        """FID features: ``h / ||h||_2``, ``(N, num_features)``, unit rows (see :class:`CalibratedNet`)."""
        return F.normalize(self.representation(x), dim=1)

    def project(self, x: Tensor) -> Tensor:
        """Projection ``z`` ``(N, proj_dim)`` on which NT-Xent is computed."""
        return self.projector(self.representation(x))


def train_simclr(net: SimCLREncoder, x: Tensor, *, steps: int, batch_size: int, lr: float, temperature: float,
                  seed: int, progress: bool) -> None:
    """SimCLR (Chen et al. 2020, Algorithm 1): two views per image, NT-Xent on the projections,
    Adam (Kingma & Ba 2014) with the learning rate decayed linearly to 0."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps)
    net.train()
    total = 0.0
    for step in range(steps):
        idx = torch.randint(x.shape[0], (min(batch_size, x.shape[0]),), generator=g)
        v1, v2 = ssl_views(x[idx], g)
        loss = nt_xent_loss(z1=net.project(v1), z2=net.project(v2), temperature=temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item()
        if progress and (step + 1) % 50 == 0:
            print(f"feature net (SimCLR): step {step + 1}/{steps} NT-Xent {total / 50:.4f}", file=sys.stderr)
            total = 0.0
    net.eval()
