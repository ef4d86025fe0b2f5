"""Denoising networks ``net(x_t, t)`` for diffusion models.

* Vectors ``(d,)``: an MLP whose hidden layers each receive a learned
  projection of a sinusoidal embedding of t (:class:`MLPDenoiser`).
* Images ``(C, S, S)``, ``S % 4 == 0``: a small U-Net (Ronneberger et al. 2015,
  arXiv:1505.04597) in the style of Ho et al. 2020 (arXiv:2006.11239, App. B):
  residual blocks with GroupNorm and SiLU, the time embedding added inside
  each block, two stride-2 downsamplings (S -> S/2 -> S/4), nearest-neighbour
  upsampling and skip connections; no attention, widths 16/32/64 by default,
  so it trains on a CPU (:class:`UNetDenoiser`).

``t`` is a ``(N,)`` int64 tensor of 0-based timesteps (:mod:`losslab.schedules`).
The output has the shape of ``x_t`` and is linear (eps, x0 or v prediction).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from losslab.errors import UserError
from losslab.models.checks import as_shape, positive_int

__all__ = ["MLPDenoiser", "UNetDenoiser", "build_denoiser", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of timesteps (Vaswani et al. 2017, arXiv:1706.03762, Sec. 3.5;
    as used by Ho et al. 2020, App. B).

    ``[sin(t w_0), ..., sin(t w_{h-1}), cos(t w_0), ..., cos(t w_{h-1})]`` with
    ``w_k = max_period^(-k / h)``, ``h = dim // 2`` (a zero column is appended
    when ``dim`` is odd).

    Parameters
    ----------
    t : (N,) tensor
        Timesteps (int or float).
    dim : int
        Embedding width.

    Returns
    -------
    (N, dim) float32 tensor, entries in [-1, 1].
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half, 1))
    args = t.to(torch.float32)[:, None] * freqs[None]  # (N, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, emb.new_zeros(len(t), 1)], dim=1)
    return emb


class MLPDenoiser(nn.Module):
    """``net(x_t, t)``: ``(N, d), (N,) -> (N, d)``.

    ``h_0 = Linear(x_t)``; each of ``layers`` blocks computes
    ``h <- SiLU(Linear(h) + Linear_l(e))`` with ``e = MLP(sinusoid(t))`` the
    time embedding; a linear output layer. Each layer sees t, so the network
    can be a different denoiser at every noise level.

    Parameters
    ----------
    d : int
        Data dimension.
    hidden : int
        Width of the hidden layers and of the time embedding.
    layers : int
        Number of hidden blocks, >= 1.
    """

    def __init__(self, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(d, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.temb = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, d)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``x`` (N, d), ``t`` (N,) int64 -> (N, d)."""
        e = self.time(timestep_embedding(t, self.hidden))  # (N, hidden)
        h = self.inp(x)
        for lin, proj in zip(self.blocks, self.temb):
            h = nn.functional.silu(lin(h) + proj(e))
        return self.out(h)


def _groups(channels: int) -> int:
    """Largest of 8, 4, 2, 1 dividing ``channels`` (GroupNorm groups)."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv3x3, + Linear(temb), GroupNorm-SiLU-Conv3x3, + skip (1x1 if widths differ)."""

    def __init__(self, c_in: int, c_out: int, temb: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(temb, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.temb(e)[:, :, None, None]  # (N, c_out, 1, 1) broadcast over pixels
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return self.skip(x) + h


class UNetDenoiser(nn.Module):
    """Small U-Net ``net(x_t, t)``: ``(N, C, S, S), (N,) -> (N, C, S, S)``, ``S % 4 == 0``.

    Resolutions S, S/2, S/4 with widths ``base, 2 base, 4 base``:

    - down: Conv3x3(C -> base); ResBlock(base) at S; Conv3x3 stride 2;
      ResBlock(base -> 2 base) at S/2; Conv3x3 stride 2;
    - middle: ResBlock(2 base -> 4 base), ResBlock(4 base) at S/4;
    - up: nearest x2, concat the S/2 skip, ResBlock(6 base -> 2 base); nearest
      x2, concat the S skip, ResBlock(3 base -> base);
    - out: GroupNorm-SiLU-Conv3x3(base -> C), initialised at zero (the initial
      prediction is 0).

    Most of the computation is at the low resolutions, so that with
    ``base = 16`` one forward pass costs about 30 MMAC per 28x28 image and a
    training step at batch 64 runs at a few per second on one CPU thread.

    Parameters
    ----------
    channels : int
        ``C``, any number of image channels.
    base : int
        Width at full resolution.
    """

    def __init__(self, channels: int, base: int = 16) -> None:
        super().__init__()
        c1, c2, c3 = base, 2 * base, 4 * base
        temb = 4 * base
        self.base = base
        self.time = nn.Sequential(nn.Linear(base, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.inp = nn.Conv2d(channels, c1, 3, padding=1)
        self.down1 = _ResBlock(c1, c1, temb)  # S
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)  # S -> S/2
        self.down2 = _ResBlock(c1, c2, temb)  # S/2
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)  # S/2 -> S/4
        self.mid1 = _ResBlock(c2, c3, temb)  # S/4
        self.mid2 = _ResBlock(c3, c3, temb)  # S/4
        self.up2 = _ResBlock(c3 + c2, c2, temb)  # S/2, after upsampling + skip
        self.up1 = _ResBlock(c2 + c1, c1, temb)  # S
        self.out_norm = nn.GroupNorm(_groups(c1), c1)
        self.out = nn.Conv2d(c1, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def _up(x: Tensor) -> Tensor:
        return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``x`` (N, C, S, S), ``t`` (N,) int64 -> (N, C, S, S)."""
        e = self.time(timestep_embedding(t, self.base))  # (N, 4 base)
        h1 = self.down1(self.inp(x), e)  # (N, c1, S, S)
        h2 = self.down2(self.pool1(h1), e)  # (N, c2, S/2, S/2)
        h = self.mid2(self.mid1(self.pool2(h2), e), e)  # (N, c3, S/4, S/4)
        h = self.up2(torch.cat([self._up(h), h2], dim=1), e)  # (N, c2, S/2, S/2)
        h = self.up1(torch.cat([self._up(h), h1], dim=1), e)  # (N, c1, S, S)
        return self.out(nn.functional.silu(self.out_norm(h)))


def build_denoiser(shape: tuple[int, ...], *, hidden: int, layers: int, base: int = 16) -> nn.Module:
    """The denoiser for data of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        ``(d,)`` -> :class:`MLPDenoiser`; ``(C, S, S)`` with ``S % 4 == 0`` ->
        :class:`UNetDenoiser`.
    hidden, layers : int
        Width and number of hidden blocks of the MLP (vectors). The U-Net
        ignores both (still validated) and uses ``base``.
    base : int
        U-Net width at full resolution (images).

    Returns
    -------
    nn.Module
        ``net(x_t (N, *shape), t (N,) int64) -> (N, *shape)``.

    Raises
    ------
    UserError
        Shape not ``(d,)`` or ``(C, S, S)`` with ``S % 4 == 0``; non-positive sizes.
    """
    hidden = positive_int("hidden", hidden)
    layers = positive_int("layers", layers)
    base = positive_int("base", base)
    shape = as_shape(shape)
    if len(shape) == 1:
        return MLPDenoiser(shape[0], hidden, layers)
    if len(shape) == 3:
        c, h, w = shape
        if h != w or h % 4 != 0:
            raise UserError(f"image shape must be (C, S, S) with S divisible by 4, got {shape!r}")
        return UNetDenoiser(c, base)
    raise UserError(f"data shape must be (d,) for vectors or (C, H, W) for images, got {shape!r}")
