"""Networks: a generator and a critic for a data shape.

``build_gan`` picks MLPs for vectors ``(d,)`` (:mod:`losslab.models.mlp`) and
convolutional nets for images ``(C, S, S)`` with ``S % 4 == 0``
(:mod:`losslab.models.conv`): a small DCGAN by default (``arch="dcgan"``) or
the infoGAN architecture (``arch="infogan"``). The critic is either a discriminator with one
scalar per sample or an autoencoder (EBGAN / BEGAN) returning
``(reconstruction, code)``.
"""

from __future__ import annotations

from torch import nn

from losslab.errors import UserError, unknown_choice
from losslab.models.checks import as_shape, positive_int
from losslab.models.conv import (
    ARCHS,
    DEFAULT_IMAGE_CODE_DIM,
    ConvAutoencoder,
    ConvDiscriminator,
    ConvGenerator,
    DCGANAutoencoder,
    DCGANDiscriminator,
    DCGANGenerator,
)
from losslab.models.mlp import (
    CRITIC_NORMS,
    MLPAutoencoder,
    MLPDiscriminator,
    MLPGenerator,
    default_vector_code_dim,
)

CRITICS = ("discriminator", "autoencoder")


def build_gan(
    shape: tuple[int, ...],
    *,
    critic: str = "discriminator",
    z_dim: int,
    hidden: int,
    layers: int,
    critic_norm: str = "none",
    code_dim: int | None = None,
    arch: str = "dcgan",
) -> tuple[nn.Module, nn.Module]:
    """Build a generator and a critic for data of the given shape.

    Parameters
    ----------
    shape : tuple of int
        ``(d,)`` for vectors -> MLPs; ``(C, H, W)`` with ``H == W`` divisible
        by 4 for images -> conv nets of architecture ``arch``.
    critic : {"discriminator", "autoencoder"}
        ``"discriminator"``: ``D(x)`` returns ``(N,)``, one raw scalar per
        sample (logit, score or critic value). ``"autoencoder"``: ``D(x)``
        returns ``(recon, code)`` with ``recon`` of x's shape ``(N, *shape)``
        and ``code`` of shape ``(N, code_dim)`` (EBGAN, arXiv:1609.03126;
        BEGAN, arXiv:1703.10717).
    z_dim : int
        Latent dimension; the generator maps ``z ~ N(0, I_{z_dim})``,
        ``(N, z_dim)``, to ``(N, *shape)`` and exposes ``G.z_dim``.
    hidden, layers : int
        Width and number of hidden layers of the MLPs (vectors). The conv
        nets have fixed widths and ignore both (still validated).
    critic_norm : {"batch", "layer", "none"}
        Normalisation in the critic's hidden layers, never on its first layer
        or output. "layer" keeps each sample's output independent of the rest
        of the batch, as the per-sample WGAN-GP penalty requires (Gulrajani et
        al. 2017, arXiv:1704.00028, Sec. 4). The image generator always uses
        BatchNorm; the vector generator has no normalisation.
    code_dim : int or None
        Code width of the autoencoder critic; ignored for a discriminator.
        Default: ``min(hidden, max(2, d))`` for vectors, 32 for images.
    arch : {"dcgan", "infogan"}
        Image architecture (ignored for vectors, still validated): ``"dcgan"``,
        a small all-convolutional DCGAN (Radford et al. 2016, arXiv:1511.06434;
        about 0.26M parameters for MNIST), or ``"infogan"`` (Chen et al. 2016,
        arXiv:1606.03657, Appendix C.1; about 13M parameters, two large FC layers).
        See :mod:`losslab.models.conv`.

    Returns
    -------
    (G, D) : tuple of nn.Module
        Vector outputs of ``G`` are linear (raw coordinates); image outputs
        end in tanh (data in [-1, 1]).

    Raises
    ------
    UserError
        Shape not ``(d,)`` or ``(C, S, S)`` with ``S % 4 == 0``, non-positive
        sizes, unknown ``critic``, ``critic_norm`` or ``arch``.
    """
    if arch not in ARCHS:
        raise unknown_choice("model.arch", arch, ARCHS)
    if critic not in CRITICS:
        raise unknown_choice("critic", critic, CRITICS)
    if critic_norm not in CRITIC_NORMS:
        raise unknown_choice("critic_norm", critic_norm, CRITIC_NORMS)
    z_dim = positive_int("z_dim", z_dim)
    hidden = positive_int("hidden", hidden)
    layers = positive_int("layers", layers)
    if code_dim is not None:
        code_dim = positive_int("code_dim", code_dim)
    shape = as_shape(shape)

    if len(shape) == 1:
        (d,) = shape
        g: nn.Module = MLPGenerator(z_dim, d, hidden, layers)
        if critic == "discriminator":
            return g, MLPDiscriminator(d, hidden, layers, critic_norm)
        code = code_dim if code_dim is not None else default_vector_code_dim(d, hidden)
        return g, MLPAutoencoder(d, hidden, layers, code, critic_norm)

    if len(shape) == 3:
        c, h, w = shape
        if h != w or h % 4 != 0:
            raise UserError(f"image shape must be (C, S, S) with S divisible by 4, got {shape!r}")
        code = code_dim if code_dim is not None else DEFAULT_IMAGE_CODE_DIM
        if arch == "infogan":
            g = ConvGenerator(z_dim, c, h)
            if critic == "discriminator":
                return g, ConvDiscriminator(c, h, critic_norm)
            return g, ConvAutoencoder(c, h, code, critic_norm)
        g = DCGANGenerator(z_dim, c, h)
        if critic == "discriminator":
            return g, DCGANDiscriminator(c, h, critic_norm)
        return g, DCGANAutoencoder(c, h, code, critic_norm)

    raise UserError(f"data shape must be (d,) for vectors or (C, H, W) for images, got {shape!r}")


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module`` (all ``parameters()``, buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


__all__ = ["ARCHS", "CRITICS", "CRITIC_NORMS", "build_gan", "count_parameters"]
