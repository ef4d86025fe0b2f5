"""Langevin dynamics and the replay buffer of energy-based models, kept apart from the networks.

Pure sampling code: a sampler receives the energy as a function
``energy(x (N, *shape)) -> (N,)`` and never knows which network it is.

The unadjusted Langevin algorithm (ULA) for the Boltzmann density
``p(x) = exp(-E(x)) / Z`` takes, for ``k = 1..K``,

    x_k = x_{k-1} - (s / 2) grad_x E(x_{k-1}) + noise_scale * sqrt(s) * eps_k,   eps_k ~ N(0, I)

(Welling & Teh 2011, ICML, "Bayesian Learning via Stochastic Gradient Langevin
Dynamics"; Song & Ermon 2019, arXiv:1907.05600, Sec. 2.2; Du & Mordatch 2019,
arXiv:1903.08689, Sec. 2). With
``noise_scale = 1`` its stationary law tends to ``p`` as ``s -> 0``; at a finite
``s`` it carries a discretisation bias of order ``s`` (Roberts & Tweedie 1996,
Bernoulli 2(4); for a Gaussian target the bias is exact: see
:func:`ula_stationary_covariance`). ``noise_scale < 1`` samples a colder
density ``exp(-E / noise_scale^2)``, the common short-run practice (Nijkamp et
al. 2019, arXiv:1904.09770).

Each step costs one forward and one backward pass of the energy network: the
chain of ``K`` steps is ``K`` network evaluations per sample (``nfe``).

The replay buffer (Du & Mordatch 2019, Sec. 3, sample replay buffer) keeps the last negatives and
starts most chains from them (95%) and the rest from uniform noise (5%), so
short chains of later updates continue earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from losslab.errors import UserError

__all__ = [
    "LangevinChain",
    "ReplayBuffer",
    "energy_grad",
    "langevin_sample",
    "ula_stationary_covariance",
    "uniform_box",
]

EnergyFn = Callable[[Tensor], Tensor]


def energy_grad(energy: EnergyFn, x: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """Energies and their input gradients ``(E(x) (N,), grad_x E(x) (N, *shape))``.

    The energies of the batch are summed before differentiating: samples do not
    interact in the networks of :mod:`losslab.models.energy` (no batch norm), so
    row ``i`` of the gradient is ``grad_x E(x_i)``.

    Args:
        energy: ``energy(x) -> (N,)``.
        x: ``(N, *shape)``; not modified.
        create_graph: keep the graph of the gradient (to differentiate it again
            w.r.t. the parameters, as denoising score matching does).
    """
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        e = energy(xg)
        (g,) = torch.autograd.grad(e.sum(), xg, create_graph=create_graph)
    return e, g


@dataclass
class LangevinChain:
    """Result of :func:`langevin_sample`.

    Attributes:
        x: ``(N, *shape)`` the chain's last state (detached).
        e_first: ``(N,)`` energies of the start state ``x_0``.
        e_last: ``(N,)`` energies of the last state ``x_K`` (one extra forward pass).
        at_bounds: share of the last state's coordinates on the clamp box (0 without a box).
        nfe: ``K``, network evaluations (forward + backward) per sample.
    """

    x: Tensor
    e_first: Tensor
    e_last: Tensor
    at_bounds: float
    nfe: int


def langevin_sample(
    energy: EnergyFn,
    x0: Tensor,
    *,
    steps: int,
    step_size: float,
    noise_scale: float = 1.0,
    generator: torch.Generator | None = None,
    clamp: tuple[Tensor | float, Tensor | float] | None = None,
) -> LangevinChain:
    """Run ``steps`` ULA steps ``x <- x - (s/2) grad E(x) + noise_scale sqrt(s) eps`` from ``x0``.

    Args:
        energy: ``energy(x (N, *shape)) -> (N,)``; its parameters receive no gradient.
        x0: ``(N, *shape)`` start states (not modified).
        steps: K >= 0 (0 returns ``x0``).
        step_size: s > 0 (units of x squared: the noise std per step is ``noise_scale sqrt(s)``).
        noise_scale: multiplies the injected noise; 1 targets ``exp(-E)``, 0 is gradient descent.
        generator: draws ``eps`` (on its own device; moved to ``x0``'s, where the chain runs).
        clamp: ``(lo, hi)`` box (scalars or tensors broadcastable to ``x``) that every
            state is clamped to, as image EBMs clamp pixels; None for no box.

    Returns:
        :class:`LangevinChain`.

    Raises:
        UserError: ``steps < 0``, ``step_size <= 0`` or ``noise_scale < 0``.

    Source: Welling & Teh 2011 (Langevin dynamics); Du & Mordatch 2019,
    arXiv:1903.08689, Secs. 2-3; Nijkamp et al. 2019, arXiv:1904.09770.
    """
    if steps < 0 or not step_size > 0 or not noise_scale >= 0:
        raise UserError(f"Langevin needs steps >= 0, step_size > 0, noise_scale >= 0; got {steps}, "
                        f"{step_size}, {noise_scale}")
    x = x0.detach()
    e_first = None
    sd = noise_scale * step_size ** 0.5
    for _ in range(steps):
        e, g = energy_grad(energy, x)
        if e_first is None:
            e_first = e.detach()
        eps = _draw(torch.randn, x.shape, generator, x.dtype, x.device)
        x = x - 0.5 * step_size * g + sd * eps  # ULA step
        if clamp is not None:
            x = torch.clamp(x, clamp[0], clamp[1])
        x = x.detach()
    with torch.no_grad():
        e_last = energy(x).detach()
    if e_first is None:
        e_first = e_last
    at_bounds = 0.0
    if clamp is not None:
        lo, hi = (torch.as_tensor(b, dtype=x.dtype, device=x.device) for b in clamp)
        at_bounds = float(((x <= lo) | (x >= hi)).float().mean())
    return LangevinChain(x=x, e_first=e_first, e_last=e_last, at_bounds=at_bounds, nfe=steps)


def ula_stationary_covariance(A: Tensor, step_size: float, noise_scale: float = 1.0) -> Tensor:
    """Exact stationary covariance of ULA on ``E(x) = 0.5 (x - mu)^T A (x - mu)``.

    The chain is the linear recursion ``x' - mu = M (x - mu) + c eps`` with
    ``M = I - (s/2) A`` and ``c = noise_scale sqrt(s)``; its stationary
    covariance ``S`` solves ``S = M S M^T + c^2 I``. For symmetric ``A`` with
    eigenvalues ``a_i`` (needs ``0 < s a_i < 4``) this is, in A's eigenbasis,
    ``c^2 / (1 - (1 - s a_i / 2)^2) = noise_scale^2 / (a_i (1 - s a_i / 4))``:
    the target ``A^-1`` inflated by the factor ``1 / (1 - s a_i / 4)``, the
    discretisation bias of the unadjusted algorithm. The mean is ``mu``, unbiased.

    Args:
        A: ``(d, d)`` symmetric positive definite precision.
    Returns:
        ``(d, d)`` covariance, the dtype of ``A``.
    """
    lam, U = torch.linalg.eigh(A)
    var = noise_scale ** 2 / (lam * (1.0 - step_size * lam / 4.0))
    return (U * var) @ U.T


def _draw(fn, shape, generator: torch.Generator | None, dtype, device: torch.device) -> Tensor:
    """``fn(shape)`` (torch.rand / randn) drawn on the generator's device (``device`` without one),
    moved to ``device``: a CPU generator gives the same numbers whatever device computes."""
    where = generator.device if generator is not None else device
    return fn(shape, generator=generator, dtype=dtype, device=where).to(device)


def uniform_box(n: int, lo: Tensor, hi: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``n`` draws uniform on the box ``[lo, hi]``; ``lo``, ``hi`` of shape ``(1, *shape)`` -> ``(n, *shape)``,
    on ``lo``'s device (drawn on the generator's)."""
    u = _draw(torch.rand, (n, *lo.shape[1:]), generator, lo.dtype, lo.device)
    return lo + (hi - lo) * u


class ReplayBuffer:
    """The sample replay buffer of Du & Mordatch 2019 (arXiv:1903.08689, Sec. 3).

    ``capacity`` past negatives, initialised with uniform noise on the box
    ``[lo, hi]``. :meth:`draw` returns ``n`` chain starts: each is, with
    probability ``reinit``, fresh uniform noise, otherwise a uniformly chosen
    buffer entry; :meth:`push` writes the finished chains back at the same
    slots, so the buffer holds the most recent continuation of every chain.

    Attributes:
        x: ``(capacity, *shape)`` the stored samples (saved in the checkpoint).
    """

    def __init__(self, capacity: int, lo: Tensor, hi: Tensor, reinit: float, generator: torch.Generator):
        if capacity < 1 or not 0.0 <= reinit <= 1.0:
            raise UserError(f"replay buffer needs capacity >= 1 and reinit in [0, 1]; got {capacity}, {reinit}")
        self.lo, self.hi, self.reinit = lo, hi, float(reinit)
        self.x = uniform_box(capacity, lo, hi, generator)

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``(x0 (n, *shape), slots (n,) int64, fresh (n,) bool)``: chain starts, their buffer slots,
        and which of them are fresh noise."""
        where = generator.device if generator is not None else self.x.device
        slots = torch.randint(0, len(self.x), (n,), generator=generator, device=where).to(self.x.device)
        fresh = torch.rand(n, generator=generator, device=where).to(self.x.device) < self.reinit
        noise = uniform_box(n, self.lo, self.hi, generator)
        keep = fresh.reshape(-1, *([1] * (self.x.dim() - 1)))
        return torch.where(keep, noise, self.x[slots]), slots, fresh

    def push(self, x: Tensor, slots: Tensor) -> None:
        """Store the chains' end states ``x`` (n, *shape) at ``slots`` (n,)."""
        self.x[slots] = x.detach().to(self.x.dtype)
