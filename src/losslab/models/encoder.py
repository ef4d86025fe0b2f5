"""Encoders of the contrastive family: a small CNN with a projection head, and a caption encoder.

* :class:`ImageEncoder`: three 3x3 convolutions (32, 64, 128 channels; the
  last two with stride 2, the first too for images of side >= 16, which keeps
  a 28x28 MNIST update at about a quarter of the cost), batch norm and ReLU, global average pooling to a
  128-d representation ``h = f(x)``; then SimCLR's projection head
  ``z = g(h) = W2 relu(W1 h)`` (Chen et al. 2020, arXiv:2002.05709, Sec. 2.1).
  The loss acts on ``z``; linear probes and kNN use ``h`` (Sec. 4.2 of SimCLR:
  the representation before the head transfers better).
* :class:`TextEncoder`: CLIP's text tower shrunk to a toy: a fixed vocabulary
  of caption words, the mean of their embeddings (``nn.EmbeddingBag``) and a
  two-layer MLP to the shared embedding space.
* :class:`LogitScale`: CLIP's learnable temperature, stored as ``log s``.
"""

from __future__ import annotations

import math
import re

import torch
from torch import Tensor, nn

from losslab.errors import UserError

__all__ = [
    "FEATURE_DIM",
    "PROJ_DIM",
    "ImageEncoder",
    "LogitScale",
    "TextEncoder",
    "build_vocabulary",
    "tokenize",
]

FEATURE_DIM = 128
"""Width of the representation h used by linear probes and kNN."""

PROJ_DIM = 64
"""Width of the projection z the contrastive losses act on."""

_WORD = re.compile(r"[a-z0-9]+")


class ImageEncoder(nn.Module):
    """Small CNN ``f`` and projection head ``g`` for images ``(N, C, H, W)``, any H, W >= 1.

    Parameters
    ----------
    channels : int
        Input channels C.
    side : int
        Image side; from 16 up the first convolution has stride 2 too.
    feature_dim, proj_dim : int
        Widths of the representation h and of the projection z.

    ``features(x) -> (N, feature_dim)`` is h; ``forward(x) -> (N, proj_dim)`` is z
    (not normalised; the losses normalise).
    """

    def __init__(self, channels: int, side: int, *, feature_dim: int = FEATURE_DIM, proj_dim: int = PROJ_DIM):
        super().__init__()
        if min(channels, side, feature_dim, proj_dim) < 1:
            raise UserError(f"encoder sizes must be >= 1, got channels={channels}, side={side}, "
                            f"feature_dim={feature_dim}, proj_dim={proj_dim}")
        self.feature_dim, self.proj_dim = feature_dim, proj_dim
        self.backbone = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=2 if side >= 16 else 1, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, feature_dim, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(feature_dim),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, proj_dim),
        )

    def features(self, x: Tensor) -> Tensor:
        """Representation h = f(x), (N, feature_dim)."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        """Projection z = g(f(x)), (N, proj_dim)."""
        return self.head(self.backbone(x))


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text`` (runs of a-z and 0-9): "T-shirt/top" -> ["t", "shirt", "top"]."""
    return _WORD.findall(text.lower())


def build_vocabulary(texts: list[str]) -> list[str]:
    """Sorted distinct words of ``texts`` (the fixed vocabulary of a :class:`TextEncoder`)."""
    return sorted({w for t in texts for w in tokenize(t)})


class TextEncoder(nn.Module):
    """Bag-of-words caption encoder over a fixed vocabulary.

    ``forward(captions: list[str]) -> (N, proj_dim)``: the mean of the
    captions' word embeddings (``nn.EmbeddingBag(mode="mean")``) through
    ``Linear -> ReLU -> Linear``.

    Parameters
    ----------
    vocabulary : list of str
        Every word a caption may contain (see :func:`build_vocabulary`).
    embed_dim, proj_dim : int
        Word-embedding width and output width.

    Raises
    ------
    UserError
        Empty vocabulary; at call time (ValueError), a caption with a word
        outside the vocabulary or with no word at all.
    """

    def __init__(self, vocabulary: list[str], *, embed_dim: int = 64, proj_dim: int = PROJ_DIM):
        super().__init__()
        if not vocabulary:
            raise UserError("the text encoder needs a non-empty vocabulary")
        self.vocabulary = list(vocabulary)
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        self.embed = nn.EmbeddingBag(len(self.vocabulary), embed_dim, mode="mean")
        self.mlp = nn.Sequential(nn.Linear(embed_dim, 2 * embed_dim), nn.ReLU(inplace=True),
                                 nn.Linear(2 * embed_dim, proj_dim))

    def token_ids(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """Flat word indices and the offset of each caption, as ``nn.EmbeddingBag`` takes them."""
        ids: list[int] = []
        offsets: list[int] = []
        for c in captions:
            words = tokenize(c)
            unknown = [w for w in words if w not in self.index]
            if unknown or not words:
                raise ValueError(f"caption {c!r} has no words or words outside the vocabulary: {unknown}")
            offsets.append(len(ids))
            ids.extend(self.index[w] for w in words)
        return torch.tensor(ids, dtype=torch.int64), torch.tensor(offsets, dtype=torch.int64)

    def forward(self, captions: list[str]) -> Tensor:
        ids, offsets = self.token_ids(captions)
        dev = self.embed.weight.device  # the token ids are built on the CPU
        return self.mlp(self.embed(ids.to(dev), offsets.to(dev)))


class LogitScale(nn.Module):
    """CLIP's learnable logit scale ``s = exp(t)``, with ``t`` the parameter ``log_scale``.

    Parameters
    ----------
    init : float
        Initial ``s`` (CLIP: 1 / 0.07 = 14.3).
    max_scale : float
        :meth:`clamp_` keeps ``s`` in [1, max_scale] (CLIP: 100).

    Source: Radford et al. 2021, arXiv:2103.00020, Sec. 2.5 ("directly
    optimized during training as a log-parameterized multiplicative scalar",
    initialised to the equivalent of 0.07 and clipped to prevent scaling the
    logits by more than 100).
    """

    def __init__(self, init: float, max_scale: float):
        super().__init__()
        if not 1.0 <= init <= max_scale:
            raise UserError(f"logit scale must satisfy 1 <= init <= max, got init={init}, max={max_scale}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(init), dtype=torch.float32))
        self.log_max = math.log(max_scale)

    def forward(self) -> Tensor:
        """The multiplier ``s = exp(log_scale)`` (scalar tensor, differentiable)."""
        return self.log_scale.exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clip ``log s`` to [0, log max] after an optimizer step (CLIP's reference code)."""
        self.log_scale.clamp_(0.0, self.log_max)


class LearnedScalars(nn.Module):
    """Named scalar parameters a loss learns beside the encoder (SigLIP's ``t_prime`` and ``bias``).

    Parameters
    ----------
    init : dict of str to float
        Name -> initial value (finite).

    ``forward() -> dict[str, Tensor]`` returns the scalar parameters by name.
    """

    def __init__(self, init: dict[str, float]):
        super().__init__()
        for k, v in init.items():
            if not math.isfinite(float(v)):
                raise UserError(f"initial value of {k} must be finite, got {v}")
        self.values = nn.ParameterDict({k: nn.Parameter(torch.tensor(float(v))) for k, v in init.items()})

    def forward(self) -> dict[str, Tensor]:
        return dict(self.values.items())
