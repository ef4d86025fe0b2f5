"""Fully connected networks for vector data ``(N, d)`` (toy GANs).

The toy-GAN standard (e.g. Gulrajani et al. 2017, arXiv:1704.00028, toy
experiments; Metz et al. 2017, arXiv:1611.02163, mixture of Gaussians):
``layers`` hidden layers of width ``hidden``, ReLU in the generator,
LeakyReLU(0.2) in the critic, a linear generator output (the data are raw
coordinates, not squashed into [-1, 1]) and a linear critic output.

Weights keep PyTorch's default initialisation (Kaiming-uniform): the
N(0, 0.02) DCGAN initialisation of :mod:`losslab.models.conv` shrinks the
activations of a narrow MLP by roughly ``0.02 * sqrt(hidden)`` per layer, so
the generator would start collapsed onto a point.
"""

from __future__ import annotations

from torch import Tensor, nn

from losslab.errors import unknown_choice

CRITIC_NORMS = ("batch", "layer", "none")
LEAKY_SLOPE = 0.2


def norm1d(kind: str, features: int) -> nn.Module:
    """Normalisation layer for ``(N, features)`` activations.

    Parameters
    ----------
    kind : {"batch", "layer", "none"}
        ``"batch"``: ``nn.BatchNorm1d`` (statistics over the batch, so a
        sample's output depends on the other samples in train mode);
        ``"layer"``: ``nn.LayerNorm(features)`` (per sample; Ba et al. 2016,
        arXiv:1607.06450), the choice WGAN-GP recommends for a critic
        (Gulrajani et al. 2017, arXiv:1704.00028, Sec. 4); ``"none"``: identity.
    features : int
        Width of the layer being normalised.

    Returns
    -------
    nn.Module

    Raises
    ------
    UserError
        If ``kind`` is not one of the three names.
    """
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    if kind == "none":
        return nn.Identity()
    raise unknown_choice("critic_norm", kind, CRITIC_NORMS)


def _critic_stack(d_in: int, hidden: int, layers: int, norm: str, *, norm_first: bool) -> list[nn.Module]:
    """``layers`` blocks Linear -> [norm] -> LeakyReLU(0.2); the first block is
    normalised only if ``norm_first`` (never for the critic's input layer)."""
    mods: list[nn.Module] = []
    width = d_in
    for i in range(layers):
        mods.append(nn.Linear(width, hidden))
        if i > 0 or norm_first:
            mods.append(norm1d(norm, hidden))
        mods.append(nn.LeakyReLU(LEAKY_SLOPE))
        width = hidden
    return mods


class MLPGenerator(nn.Module):
    """``G(z)``: ``(N, z_dim) -> (N, d)``, ReLU hidden layers, linear output.

    Parameters
    ----------
    z_dim : int
        Latent dimension; ``z ~ N(0, I_{z_dim})``. Exposed as ``self.z_dim``.
    d : int
        Data dimension.
    hidden : int
        Width of each hidden layer.
    layers : int
        Number of hidden layers (>= 1).

    Notes
    -----
    No normalisation (toy-GAN standard). Parameter count:
    ``(z_dim + 1) * hidden + (layers - 1) * (hidden + 1) * hidden + (hidden + 1) * d``.
    """

    def __init__(self, z_dim: int, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        mods: list[nn.Module] = []
        width = z_dim
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        mods.append(nn.Linear(width, d))  # linear output: raw coordinates
        self.net = nn.Sequential(*mods)

    def forward(self, z: Tensor) -> Tensor:
        """``z`` (N, z_dim) -> samples (N, d)."""
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """``D(x)``: ``(N, d) -> (N,)``, one scalar per sample (logit, score or
    critic value, depending on the loss).

    Linear(d, hidden) -> LReLU, then ``layers - 1`` blocks
    Linear(hidden, hidden) -> [norm] -> LReLU, then Linear(hidden, 1). The
    normalisation is never applied to the first layer or the output (DCGAN,
    Radford et al. 2015, arXiv:1511.06434, Sec. 3).
    """

    def __init__(self, d: int, hidden: int, layers: int, critic_norm: str = "none") -> None:
        super().__init__()
        self.net = nn.Sequential(
            *_critic_stack(d, hidden, layers, critic_norm, norm_first=False),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, d) -> (N,)."""
        return self.net(x).squeeze(1)


class MLPAutoencoder(nn.Module):
    """Autoencoder critic for EBGAN / BEGAN: ``D(x) -> (recon (N, d), code (N, code_dim))``.

    Encoder: Linear(d, hidden) -> LReLU, ``layers - 1`` blocks
    Linear(hidden, hidden) -> [norm] -> LReLU, Linear(hidden, code_dim).
    Decoder (mirror): ``layers`` blocks Linear -> [norm] -> LReLU starting from
    ``code_dim``, then Linear(hidden, d) (linear output, raw coordinates).

    Sources: Zhao et al. 2017, arXiv:1609.03126 (EBGAN, Sec. 2.3);
    Berthelot et al. 2017, arXiv:1703.10717 (BEGAN, Sec. 3.4).
    """

    def __init__(self, d: int, hidden: int, layers: int, code_dim: int, critic_norm: str = "none") -> None:
        super().__init__()
        self.code_dim = code_dim
        self.encoder = nn.Sequential(
            *_critic_stack(d, hidden, layers, critic_norm, norm_first=False),
            nn.Linear(hidden, code_dim),
        )
        self.decoder = nn.Sequential(
            *_critic_stack(code_dim, hidden, layers, critic_norm, norm_first=True),
            nn.Linear(hidden, d),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (N, d) -> ``(recon (N, d), code (N, code_dim))``."""
        code = self.encoder(x)
        return self.decoder(code), code


def default_vector_code_dim(d: int, hidden: int) -> int:
    """Default code width of the vector autoencoder critic: ``min(hidden, max(2, d))``.

    The code is as wide as the data (toys need no compression: the energy
    objective, not a bottleneck, separates real from fake) but at least 2,
    because the EBGAN pulling-away term (cosine similarities between codes,
    Zhao et al. 2017, Eq. 6) is constant for 1-D codes; and no wider than the
    hidden layers.
    """
    return min(hidden, max(2, d))


__all__ = [
    "CRITIC_NORMS",
    "MLPAutoencoder",
    "MLPDiscriminator",
    "MLPGenerator",
    "default_vector_code_dim",
    "norm1d",
]
