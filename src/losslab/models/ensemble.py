"""Ensembles of K vector networks trained as one: weights ``(K, in, out)``, one batched matmul per layer.

K runs of the same MLP architecture (K seeds of one loss) become one module
whose every layer holds the K weight matrices stacked; a layer is one
``torch.baddbmm`` over ``(K, N, in)`` activations instead of K small matmuls,
which is where the time of a small toy network goes. Every operation is per
member (batched matmuls, elementwise activations, per-sample layer norm), so
member k's outputs and gradients depend on member k's weights and inputs only.

:func:`ensemble_of` builds the ensemble from K solo modules (each built under
``torch.manual_seed(seed)`` exactly as a solo run builds it) by copying their
weights, so member k starts where the solo run of seed k starts;
:func:`slot_pairs` pairs each solo parameter with a *view* of its slot in the
ensemble, through which weights and optimizer states are copied in both
directions (checkpoints stay in the solo format).

Supported layers: ``nn.Linear``, ``nn.LayerNorm``, elementwise activations
(ReLU, LeakyReLU, SiLU, Identity) inside ``nn.Sequential`` / ``nn.ModuleList``;
networks: :class:`~losslab.models.mlp.MLPGenerator`,
:class:`~losslab.models.mlp.MLPDiscriminator`,
:class:`~losslab.models.mlp.MLPAutoencoder` (the EBGAN / BEGAN critic of vector data),
:class:`~losslab.models.denoiser.MLPDenoiser`. BatchNorm (statistics over the
batch) and convolutional nets raise :class:`NotBatchable`.
"""

from __future__ import annotations

import copy
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.models.denoiser import MLPDenoiser, timestep_embedding
from losslab.models.mlp import MLPAutoencoder, MLPDiscriminator, MLPGenerator

__all__ = [
    "MemberLoop",
    "EnsembleDenoiser",
    "EnsembleDiscriminator",
    "EnsembleGenerator",
    "EnsembleLayerNorm",
    "EnsembleLinear",
    "NotBatchable",
    "ensemble_of",
    "slot_pairs",
    "slot_view",
]

_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.SiLU, nn.Identity, nn.Tanh)


class NotBatchable(TypeError):
    """The network has a layer the ensemble cannot batch (BatchNorm, convolutions, ...)."""


class EnsembleLinear(nn.Module):
    """K linear maps: ``(K, N, in) -> (K, N, out)``, ``y_k = x_k W_k + b_k``.

    ``weight`` is ``(K, in, out)`` (the transpose of ``nn.Linear``'s
    ``(out, in)``), ``bias`` ``(K, 1, out)``; one ``torch.baddbmm``.
    """

    def __init__(self, k: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(k, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(k, 1, d_out))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (K, N, in) -> (K, N, out)."""
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """K layer norms over the last dimension, each with its own affine ``(K, 1, F)`` weight and bias."""

    def __init__(self, k: int, features: int, eps: float) -> None:
        super().__init__()
        self.features, self.eps = features, eps
        self.weight = nn.Parameter(torch.ones(k, 1, features))
        self.bias = nn.Parameter(torch.zeros(k, 1, features))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (K, N, F) -> (K, N, F), normalised per sample (Ba et al. 2016, arXiv:1607.06450)."""
        return F.layer_norm(x, (self.features,), eps=self.eps) * self.weight + self.bias


def _convert(mods: Sequence[nn.Module]) -> nn.Module:
    """One ensemble layer (or container) from the same layer of K solo networks, weights copied."""
    m0, k = mods[0], len(mods)
    if isinstance(m0, nn.Sequential):
        return nn.Sequential(*[_convert([m[i] for m in mods]) for i in range(len(m0))])
    if isinstance(m0, nn.ModuleList):
        return nn.ModuleList(_convert([m[i] for m in mods]) for i in range(len(m0)))
    if isinstance(m0, nn.Linear):
        out = EnsembleLinear(k, m0.in_features, m0.out_features)
    elif isinstance(m0, nn.LayerNorm) and m0.elementwise_affine and len(m0.normalized_shape) == 1:
        out = EnsembleLayerNorm(k, m0.normalized_shape[0], m0.eps)
    elif isinstance(m0, _ELEMENTWISE):
        return copy.deepcopy(m0)
    else:
        raise NotBatchable(f"cannot batch seeds of a network with {type(m0).__name__}")
    for i, m in enumerate(mods):
        for (_, solo), (_, ens) in zip(m.named_parameters(), out.named_parameters()):
            _slot(ens, i, solo.shape).data.copy_(solo.detach())
    return out


def _slot(ens: Tensor, k: int, solo_shape: torch.Size) -> Tensor:
    """A view of member ``k`` of the stacked ``ens`` (or of a tensor laid out like it) in the solo shape.

    The only 2-D solo parameters of the supported layers are ``nn.Linear``
    weights ``(out, in)``, stored transposed as ``(K, in, out)``; every other
    parameter is ``(K, 1, F)`` for a solo ``(F,)``.
    """
    if len(solo_shape) == 2:
        return ens[k].transpose(0, 1)
    return ens[k].view(solo_shape)


class EnsembleGenerator(nn.Module):
    """K :class:`~losslab.models.mlp.MLPGenerator`: ``(K, N, z_dim) -> (K, N, d)``."""

    def __init__(self, solos: Sequence[MLPGenerator]) -> None:
        super().__init__()
        self.z_dim = solos[0].z_dim
        self.net = _convert([g.net for g in solos])

    def forward(self, z: Tensor) -> Tensor:
        """``z`` (K, N, z_dim) -> samples (K, N, d)."""
        return self.net(z)


class EnsembleDiscriminator(nn.Module):
    """K :class:`~losslab.models.mlp.MLPDiscriminator`: ``(K, N, d) -> (K, N)``."""

    def __init__(self, solos: Sequence[MLPDiscriminator]) -> None:
        super().__init__()
        self.net = _convert([d.net for d in solos])

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (K, N, d) -> (K, N) logits, scores or critic values."""
        return self.net(x).squeeze(-1)


class EnsembleAutoencoder(nn.Module):
    """K :class:`~losslab.models.mlp.MLPAutoencoder` (EBGAN / BEGAN critics):
    ``(K, N, d) -> (recon (K, N, d), code (K, N, code_dim))``."""

    def __init__(self, solos: Sequence[MLPAutoencoder]) -> None:
        super().__init__()
        self.code_dim = solos[0].code_dim
        self.encoder = _convert([a.encoder for a in solos])
        self.decoder = _convert([a.decoder for a in solos])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (K, N, d) -> ``(recon (K, N, d), code (K, N, code_dim))``."""
        code = self.encoder(x)
        return self.decoder(code), code


class EnsembleDenoiser(nn.Module):
    """K :class:`~losslab.models.denoiser.MLPDenoiser`: ``(K, N, d), (K, N) -> (K, N, d)``."""

    def __init__(self, solos: Sequence[MLPDenoiser]) -> None:
        super().__init__()
        self.hidden = solos[0].hidden
        for name in ("time", "inp", "blocks", "temb", "out"):
            setattr(self, name, _convert([getattr(s, name) for s in solos]))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``x`` (K, N, d), ``t`` (K, N) int64 -> (K, N, d): the solo forward, member by member."""
        k, n = t.shape
        e = self.time(timestep_embedding(t.reshape(-1), self.hidden).reshape(k, n, -1))  # (K, N, hidden)
        h = self.inp(x)
        for lin, proj in zip(self.blocks, self.temb):
            h = F.silu(lin(h) + proj(e))
        return self.out(h)


def ensemble_of(solos: Sequence[nn.Module]) -> nn.Module:
    """The ensemble of K solo networks of one architecture, member k a copy of ``solos[k]``.

    Args:
        solos: K >= 1 modules of the same class and sizes, on one device.

    Returns:
        :class:`EnsembleGenerator`, :class:`EnsembleDiscriminator`,
        :class:`EnsembleAutoencoder` or :class:`EnsembleDenoiser`, on the solos' device.

    Raises:
        NotBatchable: another network class, or one with a layer that mixes
            samples or is not a linear / layer-norm / elementwise layer.
    """
    cls = type(solos[0])
    if any(type(s) is not cls for s in solos):
        raise NotBatchable("the networks of an ensemble must be of one class")
    kinds = {MLPGenerator: EnsembleGenerator, MLPDiscriminator: EnsembleDiscriminator, MLPDenoiser: EnsembleDenoiser,
             MLPAutoencoder: EnsembleAutoencoder}
    if cls not in kinds:
        raise NotBatchable(f"cannot batch seeds of a {cls.__name__}")
    device = next(solos[0].parameters()).device
    with torch.no_grad():
        return kinds[cls](solos).to(device)


class MemberLoop(nn.Module):
    """M networks that cannot stack (convolutions, BatchNorm), called member by member.

    The same interface as the ensembles: every input has a leading member axis,
    member k's network sees ``x[k]`` only, and the outputs are stacked again
    (a tuple output, such as an autoencoder critic's ``(recon, code)``, is a
    tuple of stacked tensors). The members are the solo networks themselves
    (no copy), so their parameters, buffers and optimizers stay the solo run's.

    Args:
        members: M modules of one architecture.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, *args: Tensor) -> Tensor | tuple[Tensor, ...]:
        """``args`` each ``(M, N, ...)`` -> member k's output on ``(a[k] for a in args)``, stacked: ``(M, N, ...)``."""
        outs = [m(*(a[k] for a in args)) for k, m in enumerate(self.members)]
        if isinstance(outs[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*outs))
        return torch.stack(outs)

    def requires_grad_(self, requires_grad: bool = True) -> "MemberLoop":
        """Each member's own ``requires_grad_`` (so a member network's override is honoured)."""
        for m in self.members:
            m.requires_grad_(requires_grad)
        return self


def slot_pairs(ensemble: nn.Module, solo: nn.Module, k: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """``(solo_param, ensemble_param, view)`` for every parameter, ``view`` member k's slot in solo shape.

    Both modules list their parameters in the same order (the ensemble is
    built layer by layer from the solo architecture). Copy with
    ``view.copy_(solo_param)`` (solo -> ensemble) or ``solo_param.copy_(view)``.

    Raises:
        ValueError: the two modules do not have matching parameters.
    """
    ens = list(ensemble.parameters())
    sol = list(solo.parameters())
    if len(ens) != len(sol):
        raise ValueError(f"ensemble has {len(ens)} parameters, solo network {len(sol)}")
    for p, e in zip(sol, ens):
        view = _slot(e, k, p.shape)
        if view.shape != p.shape:
            raise ValueError(f"ensemble slot {tuple(view.shape)} does not match {tuple(p.shape)}")
        yield p, e, view


def slot_view(value: Tensor, k: int, solo_shape: torch.Size) -> Tensor:
    """Member ``k``'s view of ``value``, a tensor laid out like a stacked parameter (e.g. Adam's moments)."""
    return _slot(value, k, solo_shape)
