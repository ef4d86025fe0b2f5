"""Convolutional networks for images ``(N, C, S, S)`` in [-1, 1], ``S % 4 == 0``.

Two architectures, chosen by ``model.arch`` (:data:`ARCHS`):

``"dcgan"`` (the default for images): a small DCGAN (Radford et al. 2016,
arXiv:1511.06434, Sec. 3: strided convolutions instead of pooling, no hidden
fully connected layers, BatchNorm in G, ReLU in G and LeakyReLU(0.2) in D,
tanh output) with width ``w = 32`` (:data:`DCGAN_WIDTH`):

* G: FC(z_dim -> 2w (S/4)^2)-BN-ReLU (the projection of z, reshaped)
  -> ConvT(2w -> w, 4, 2, 1)-BN-ReLU -> ConvT(w -> C, 4, 2, 1) -> tanh.
* D: Conv(C -> w, 4, 2, 1)-LReLU -> Conv(w -> 2w, 4, 2, 1)-[norm]-LReLU
  -> FC(2w (S/4)^2 -> 1).
* Autoencoder critic: the two convs of D, FC(-> code_dim); decoder
  FC(code_dim -> 2w (S/4)^2)-[norm]-ReLU -> ConvT(2w -> w)-ReLU -> ConvT(w -> C).

For MNIST (z_dim 62) G has 237,217 and D 36,513 parameters, 1/48 of
infoGAN's 13.2M; one update (a D and a G step, ns loss, batch 64, one thread)
took about 4x less time than infoGAN's (``benchmarks/bench_image_arch.py``).

``"infogan"``: the infoGAN MNIST architecture (Chen et al. 2016, arXiv:1606.03657,
Appendix C.1, Table 1) as used by the reference collection
``znxlwm/pytorch-generative-model-collections`` (``GAN.py``), generalised to
any number of channels ``C`` and any side ``S`` divisible by 4 (two stride-2
layers take ``S`` to ``S / 4``):

* G: FC(z_dim -> 1024)-BN-ReLU -> FC(1024 -> 128 (S/4)^2)-BN-ReLU
  -> reshape (128, S/4, S/4) -> ConvT(128 -> 64, 4, 2, 1)-BN-ReLU
  -> ConvT(64 -> C, 4, 2, 1) -> tanh.
* D: Conv(C -> 64, 4, 2, 1)-LReLU(0.2) -> Conv(64 -> 128, 4, 2, 1)-[norm]-LReLU
  -> FC(128 (S/4)^2 -> 1024)-[norm]-LReLU -> FC(1024 -> 1).

The critic outputs a raw scalar (no sigmoid: the losses take logits, scores
or critic values). ``[norm]`` is the ``critic_norm`` choice: BatchNorm as in
infoGAN/DCGAN, layer norm (``nn.GroupNorm(1, C)`` over (C, H, W) for feature
maps, ``nn.LayerNorm`` for FC layers) as WGAN-GP recommends (Gulrajani et al.
2017, arXiv:1704.00028, Sec. 4), or none.

Weights of every conv / transposed-conv / linear layer are drawn from
N(0, 0.02) with zero biases (``utils.initialize_weights`` of the reference
collection; DCGAN, Radford et al. 2015, arXiv:1511.06434, Sec. 4); norm layers
keep PyTorch's defaults (weight 1, bias 0).
"""

from __future__ import annotations

from torch import Tensor, nn

from losslab.errors import unknown_choice
from losslab.models.mlp import CRITIC_NORMS, LEAKY_SLOPE, norm1d

DEFAULT_IMAGE_CODE_DIM = 32
# Image architectures (``model.arch``); the first is the default.
ARCHS = ("dcgan", "infogan")
# Channels of the small DCGAN at S/2 (and twice that at S/4).
DCGAN_WIDTH = 32


def norm2d(kind: str, channels: int) -> nn.Module:
    """Normalisation layer for ``(N, channels, H, W)`` feature maps.

    Parameters
    ----------
    kind : {"batch", "layer", "none"}
        ``"batch"``: ``nn.BatchNorm2d``; ``"layer"``: ``nn.GroupNorm(1, channels)``,
        i.e. layer norm over (C, H, W) of each sample with a per-channel affine
        map; ``"none"``: identity.
    channels : int

    Returns
    -------
    nn.Module

    Raises
    ------
    UserError
        If ``kind`` is not one of the three names.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise unknown_choice("critic_norm", kind, CRITIC_NORMS)


def init_weights_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """In place: conv / transposed-conv / linear weights ~ N(0, std), biases 0.

    Source: ``utils.initialize_weights`` of
    ``znxlwm/pytorch-generative-model-collections``; DCGAN (arXiv:1511.06434, Sec. 4).
    Returns ``module`` for chaining.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class ConvGenerator(nn.Module):
    """infoGAN generator ``G(z)``: ``(N, z_dim) -> (N, C, S, S)`` in [-1, 1] (tanh).

    Parameters
    ----------
    z_dim : int
        Latent dimension (infoGAN MNIST: 62). Exposed as ``self.z_dim``.
    channels : int
        ``C``, number of image channels.
    side : int
        ``S``, image height = width, divisible by 4.
    """

    def __init__(self, z_dim: int, channels: int, side: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.s4 = side // 4
        self.fc = nn.Sequential(
            nn.Linear(z_dim, 1024),
            nn.BatchNorm1d(1024),
            nn.ReLU(),
            nn.Linear(1024, 128 * self.s4 * self.s4),
            nn.BatchNorm1d(128 * self.s4 * self.s4),
            nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1),  # S/4 -> S/2
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, channels, 4, 2, 1),  # S/2 -> S
            nn.Tanh(),
        )
        init_weights_(self)

    def forward(self, z: Tensor) -> Tensor:
        """``z`` (N, z_dim) -> images (N, C, S, S) in [-1, 1]."""
        h = self.fc(z).view(-1, 128, self.s4, self.s4)  # (N, 128, S/4, S/4)
        return self.deconv(h)


def _encoder_convs(channels: int, critic_norm: str) -> nn.Sequential:
    """Conv(C -> 64, 4, 2, 1)-LReLU -> Conv(64 -> 128, 4, 2, 1)-[norm]-LReLU -> flatten."""
    return nn.Sequential(
        nn.Conv2d(channels, 64, 4, 2, 1),  # S -> S/2; no norm on the first layer
        nn.LeakyReLU(LEAKY_SLOPE),
        nn.Conv2d(64, 128, 4, 2, 1),  # S/2 -> S/4
        norm2d(critic_norm, 128),
        nn.LeakyReLU(LEAKY_SLOPE),
        nn.Flatten(),  # (N, 128 * (S/4)^2)
    )


class ConvDiscriminator(nn.Module):
    """infoGAN discriminator ``D(x)``: ``(N, C, S, S) -> (N,)`` raw scalar per sample.

    Parameters
    ----------
    channels, side : int
        Image shape ``(C, S, S)``, ``S`` divisible by 4.
    critic_norm : {"batch", "layer", "none"}
        Normalisation after the second conv (BatchNorm2d / GroupNorm(1, 128))
        and after the hidden FC layer (BatchNorm1d / LayerNorm(1024)).
    """

    def __init__(self, channels: int, side: int, critic_norm: str = "none") -> None:
        super().__init__()
        s4 = side // 4
        self.conv = _encoder_convs(channels, critic_norm)
        self.fc = nn.Sequential(
            nn.Linear(128 * s4 * s4, 1024),
            norm1d(critic_norm, 1024),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(1024, 1),  # no sigmoid: the loss takes the raw value
        )
        init_weights_(self)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, C, S, S) -> (N,)."""
        return self.fc(self.conv(x)).squeeze(1)


class ConvAutoencoder(nn.Module):
    """Autoencoder critic (EBGAN / BEGAN): ``D(x) -> (recon (N, C, S, S), code (N, code_dim))``.

    Encoder: the two conv layers of :class:`ConvDiscriminator`, then
    FC(128 (S/4)^2 -> code_dim) = code. Decoder: FC(code_dim -> 128 (S/4)^2)
    -[norm]-ReLU -> reshape -> ConvT(128 -> 64, 4, 2, 1)-ReLU
    -> ConvT(64 -> C, 4, 2, 1).

    The decoder's ``[norm]`` follows ``critic_norm`` like the encoder's
    (BatchNorm1d / LayerNorm / none), so "layer" and "none" keep every
    sample's energy independent of the batch. The reconstruction is linear
    (no tanh): the energy is a reconstruction error of data in [-1, 1], and a
    linear output keeps its gradient from saturating at the extremes.

    Sources: Zhao et al. 2017, arXiv:1609.03126 (EBGAN, Sec. 2.3, Appendix C);
    Berthelot et al. 2017, arXiv:1703.10717 (BEGAN, Sec. 3.4).
    """

    def __init__(
        self, channels: int, side: int, code_dim: int = DEFAULT_IMAGE_CODE_DIM, critic_norm: str = "none"
    ) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.s4 = side // 4
        flat = 128 * self.s4 * self.s4
        self.encoder = nn.Sequential(_encoder_convs(channels, critic_norm), nn.Linear(flat, code_dim))
        self.decoder_fc = nn.Sequential(nn.Linear(code_dim, flat), norm1d(critic_norm, flat), nn.ReLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1),  # S/4 -> S/2
            nn.ReLU(),
            nn.ConvTranspose2d(64, channels, 4, 2, 1),  # S/2 -> S, linear output
        )
        init_weights_(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (N, C, S, S) -> ``(recon (N, C, S, S), code (N, code_dim))``."""
        code = self.encoder(x)  # (N, code_dim)
        h = self.decoder_fc(code).view(-1, 128, self.s4, self.s4)  # (N, 128, S/4, S/4)
        return self.decoder_conv(h), code


class DCGANGenerator(nn.Module):
    """Small DCGAN generator ``G(z)``: ``(N, z_dim) -> (N, C, S, S)`` in [-1, 1] (tanh).

    Parameters
    ----------
    z_dim : int
        Latent dimension, exposed as ``self.z_dim``.
    channels, side : int
        Image shape ``(C, S, S)``, ``S`` divisible by 4.
    width : int
        ``w``: channels at S/2 (2w at S/4).

    Source: Radford et al. 2016, arXiv:1511.06434, Sec. 3 and Fig. 1 (the
    first layer is a matrix multiplication of z reshaped to a 4-D tensor).
    """

    def __init__(self, z_dim: int, channels: int, side: int, width: int = DCGAN_WIDTH) -> None:
        super().__init__()
        self.z_dim, self.s4, self.w2 = z_dim, side // 4, 2 * width
        flat = self.w2 * self.s4 * self.s4
        self.project = nn.Sequential(nn.Linear(z_dim, flat), nn.BatchNorm1d(flat), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(self.w2, width, 4, 2, 1),  # S/4 -> S/2
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),  # S/2 -> S
            nn.Tanh(),
        )
        init_weights_(self)

    def forward(self, z: Tensor) -> Tensor:
        """``z`` (N, z_dim) -> images (N, C, S, S) in [-1, 1]."""
        h = self.project(z).view(-1, self.w2, self.s4, self.s4)  # (N, 2w, S/4, S/4)
        return self.deconv(h)


def _dcgan_convs(channels: int, width: int, critic_norm: str) -> nn.Sequential:
    """Conv(C -> w, 4, 2, 1)-LReLU -> Conv(w -> 2w, 4, 2, 1)-[norm]-LReLU -> flatten."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1),  # S -> S/2; no norm on the first layer (DCGAN)
        nn.LeakyReLU(LEAKY_SLOPE),
        nn.Conv2d(width, 2 * width, 4, 2, 1),  # S/2 -> S/4
        norm2d(critic_norm, 2 * width),
        nn.LeakyReLU(LEAKY_SLOPE),
        nn.Flatten(),  # (N, 2w (S/4)^2)
    )


class DCGANDiscriminator(nn.Module):
    """Small DCGAN critic ``D(x)``: ``(N, C, S, S) -> (N,)`` raw scalar per sample.

    Parameters
    ----------
    channels, side : int
        Image shape ``(C, S, S)``, ``S`` divisible by 4.
    critic_norm : {"batch", "layer", "none"}
        Normalisation after the second conv (BatchNorm2d / GroupNorm(1, 2w) / none).
    width : int
        ``w``: channels at S/2 (2w at S/4).
    """

    def __init__(self, channels: int, side: int, critic_norm: str = "none", width: int = DCGAN_WIDTH) -> None:
        super().__init__()
        s4 = side // 4
        self.conv = _dcgan_convs(channels, width, critic_norm)
        self.fc = nn.Linear(2 * width * s4 * s4, 1)  # no sigmoid: the loss takes the raw value
        init_weights_(self)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, C, S, S) -> (N,)."""
        return self.fc(self.conv(x)).squeeze(1)


class DCGANAutoencoder(nn.Module):
    """Small autoencoder critic (EBGAN / BEGAN) matching :class:`DCGANDiscriminator`.

    ``D(x) -> (recon (N, C, S, S), code (N, code_dim))``. Encoder: the two convs of
    the DCGAN critic, then FC(2w (S/4)^2 -> code_dim). Decoder: FC(code_dim ->
    2w (S/4)^2)-[norm]-ReLU -> ConvT(2w -> w, 4, 2, 1)-ReLU -> ConvT(w -> C, 4, 2, 1),
    linear output (as :class:`ConvAutoencoder`).

    Sources: Zhao et al. 2017, arXiv:1609.03126; Berthelot et al. 2017, arXiv:1703.10717.
    """

    def __init__(self, channels: int, side: int, code_dim: int = DEFAULT_IMAGE_CODE_DIM,
                 critic_norm: str = "none", width: int = DCGAN_WIDTH) -> None:
        super().__init__()
        self.code_dim, self.s4, self.w2 = code_dim, side // 4, 2 * width
        flat = self.w2 * self.s4 * self.s4
        self.encoder = nn.Sequential(_dcgan_convs(channels, width, critic_norm), nn.Linear(flat, code_dim))
        self.decoder_fc = nn.Sequential(nn.Linear(code_dim, flat), norm1d(critic_norm, flat), nn.ReLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(self.w2, width, 4, 2, 1),  # S/4 -> S/2
            nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),  # S/2 -> S, linear output
        )
        init_weights_(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (N, C, S, S) -> ``(recon (N, C, S, S), code (N, code_dim))``."""
        code = self.encoder(x)  # (N, code_dim)
        h = self.decoder_fc(code).view(-1, self.w2, self.s4, self.s4)  # (N, 2w, S/4, S/4)
        return self.decoder_conv(h), code


__all__ = [
    "ARCHS",
    "DCGAN_WIDTH",
    "DEFAULT_IMAGE_CODE_DIM",
    "DCGANAutoencoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "ConvAutoencoder",
    "ConvDiscriminator",
    "ConvGenerator",
    "init_weights_",
    "norm2d",
]
