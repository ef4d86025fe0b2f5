"""Energy networks ``E(x) -> (N,)`` for energy-based models: one scalar per sample.

The energies are trained through their input gradient ``grad_x E`` (Langevin
sampling, score matching), so every activation is smooth: SiLU / Swish
(Ramachandran et al. 2017, arXiv:1710.05941), whose derivative is continuous
and non-zero almost everywhere, unlike ReLU's piecewise-constant one, which
gives a piecewise-constant score. No batch normalisation: a sample's energy
must not depend on the rest of the batch (the gradient of the summed energies
is then the per-sample gradient, :func:`losslab.langevin.energy_grad`).

* vectors ``(d,)``: :class:`MLPEnergy`;
* images ``(C, S, S)``, ``S % 4 == 0``: :class:`ConvEnergy`, a small conv net
  in the style of the IGEBM / JEM energies (Du & Mordatch 2019,
  arXiv:1903.08689; Grathwohl et al. 2020, arXiv:1912.03263) without residual
  blocks or spectral norm, so it trains on a CPU.
"""

from __future__ import annotations

from torch import Tensor, nn

from losslab.errors import UserError
from losslab.models.checks import as_shape, positive_int

__all__ = ["ConvEnergy", "MLPEnergy", "build_energy"]


class MLPEnergy(nn.Module):
    """``E(x)``: ``(N, d) -> (N,)``, ``layers`` blocks Linear -> SiLU of width ``hidden``, a linear output.

    Parameters
    ----------
    d : int
        Data dimension.
    hidden : int
        Width of the hidden layers.
    layers : int
        Number of hidden layers, >= 1.
    """

    def __init__(self, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        width = d
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        mods.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, d) -> energies (N,)."""
        return self.net(x).squeeze(1)


class ConvEnergy(nn.Module):
    """``E(x)``: ``(N, C, S, S) -> (N,)``, S divisible by 4.

    Conv3x3(C, b) -> SiLU -> Conv4x4/2(b, 2b) -> SiLU -> Conv4x4/2(2b, 4b) ->
    SiLU -> Conv3x3(4b, 4b) -> SiLU -> global mean pool -> Linear(4b, 1).
    With ``base = 32`` and 28 x 28 images: ~0.2 M parameters.
    """

    def __init__(self, channels: int, size: int, base: int = 32) -> None:
        super().__init__()
        if size % 4:
            raise UserError(f"image side must be divisible by 4, got {size}")
        b = base
        self.net = nn.Sequential(
            nn.Conv2d(channels, b, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(b, 2 * b, 4, 2, 1), nn.SiLU(),  # S -> S/2
            nn.Conv2d(2 * b, 4 * b, 4, 2, 1), nn.SiLU(),  # S/2 -> S/4
            nn.Conv2d(4 * b, 4 * b, 3, 1, 1), nn.SiLU(),
        )
        self.out = nn.Linear(4 * b, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, C, S, S) -> energies (N,)."""
        h = self.net(x).mean(dim=(2, 3))  # (N, 4b)
        return self.out(h).squeeze(1)


def build_energy(shape: tuple[int, ...], *, hidden: int, layers: int, base: int = 32) -> nn.Module:
    """The energy network for data of ``shape``: :class:`MLPEnergy` for ``(d,)``, :class:`ConvEnergy`
    for ``(C, S, S)`` with ``S % 4 == 0`` (``hidden`` and ``layers`` are then unused, still validated).

    Raises
    ------
    UserError
        Another shape, or non-positive sizes.
    """
    hidden = positive_int("hidden", hidden)
    layers = positive_int("layers", layers)
    shape = as_shape(shape)
    if len(shape) == 1:
        return MLPEnergy(shape[0], hidden, layers)
    if len(shape) == 3 and shape[1] == shape[2] and shape[1] % 4 == 0:
        return ConvEnergy(shape[0], shape[1], base)
    raise UserError(f"data shape must be (d,) for vectors or (C, S, S) with S % 4 == 0 for images, got {shape!r}")
