"""Lipschitz penalties, weight clipping, the pulling-away term and BEGAN's k_t.

Everything here is used by the adversarial training step next to the pure
losses of :mod:`losslab.losses.gan`:

* :func:`gradient_penalty` (WGAN-GP) and :func:`dragan_penalty` (DRAGAN) return
  the *unweighted* penalty; the step multiplies it by ``gp_lambda``.
* :func:`r1_penalty` and :func:`r2_penalty` (Mescheder et al. 2018) are the
  zero-centred squared gradient norms on real and on generated samples; the
  step multiplies each by ``gamma / 2`` (``r1_gamma``, ``r2_gamma``).
* :func:`clip_weights_` is line 7 of Algorithm 1 of the WGAN paper.
* :func:`pulling_away_term` is EBGAN's repelling regulariser; :func:`pulling_away_term_global_l1`
  the reference collection's version of it whose gradient vanishes (``loss.pt_variant``).
* :class:`BEGANEquilibrium` holds BEGAN's control variable ``k_t``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.errors import UserError


def _per_sample_shape(x: Tensor) -> tuple[int, ...]:
    """Shape ``(N, 1, ..., 1)`` that broadcasts one scalar per sample over ``x``."""
    return (x.shape[0],) + (1,) * (x.dim() - 1)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """``U[0, 1)`` draws of ``shape`` in ``like``'s dtype on ``like``'s device.

    Drawn on the generator's own device (a CPU generator cannot fill a CUDA
    tensor) and then moved, so a stream gives the same numbers wherever the
    data lives; without a generator, drawn on ``like``'s device.
    """
    where = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=where).to(like.device)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP two-sided gradient penalty, unweighted.

    ``GP = mean_i (||grad_x critic(x_hat_i)||_2 - 1)^2`` with random interpolates
    ``x_hat_i = eps_i * x_i + (1 - eps_i) * x~_i``, ``eps_i ~ U[0, 1]`` drawn once
    per sample and broadcast over all trailing dimensions. The norm is per
    sample over all non-batch dimensions, so the penalty works for vectors
    ``(N, d)`` and images ``(N, C, H, W)`` with any ``C``. The graph is kept
    (``create_graph=True``) so that ``(lambda * GP).backward()`` reaches the
    critic's parameters; ``real`` and ``fake`` are detached (no gradient flows
    into the generator). Multiply by ``lambda`` (10 in the paper) in the step.

    Parameters
    ----------
    critic : callable
        Maps ``(N, ...)`` to critic values ``(N,)`` or ``(N, 1)``. It must treat
        samples independently (no batch norm in training mode).
    real : Tensor, shape (N, ...)
        Real samples ``x``.
    fake : Tensor, same shape as ``real``
        Generated samples ``x~``.
    generator : torch.Generator, optional
        Source of the interpolation weights ``eps`` (on any device: the draws
        are made on the generator's device and moved to ``real``'s).

    Returns
    -------
    Tensor
        Scalar >= 0 (squared units of critic value per data unit).

    Raises
    ------
    ValueError
        If ``real`` and ``fake`` differ in shape or the critic does not return
        one value per sample.

    References
    ----------
    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs",
    arXiv:1704.00028, Eq. 3 and Algorithm 1 (lines 4-7).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real has shape {tuple(real.shape)} but fake has {tuple(fake.shape)}")
    return gradient_penalty_members(_one_member(critic), real[None], fake[None], generators=[generator])[0]


def dragan_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    *,
    generator: torch.Generator | None = None,
    c: float = 0.5,
) -> Tensor:
    """DRAGAN gradient penalty around the real data, unweighted.

    The variant of the authors' reference code (kodalinaveen3/DRAGAN), not the
    Gaussian perturbation written in the paper:

    1. ``x_p = x + c * std(x) * u`` with ``u ~ U[0, 1]`` elementwise and
       ``std(x)`` the population standard deviation (ddof=0, like
       ``numpy.std``) of the *whole* real batch (one scalar);
    2. ``x_hat_i = x_i + alpha_i * (x_p_i - x_i)`` with ``alpha_i ~ U[0, 1]`` per sample;
    3. ``penalty = mean_i (||grad_x critic(x_hat_i)||_2 - 1)^2`` (per-sample norm
       over all non-batch dimensions), graph kept for backprop.

    Multiply by ``lambda`` (10, the paper's value) in the training step.

    Parameters
    ----------
    critic : callable
        Maps ``(N, ...)`` to logits ``(N,)`` or ``(N, 1)``; must treat samples
        independently.
    real : Tensor, shape (N, ...)
        Real samples (detached inside).
    generator : torch.Generator, optional
        Source of the noise ``u`` and of ``alpha``.
    c : float
        Perturbation scale relative to the batch standard deviation (0.5 in
        the reference code).

    Returns
    -------
    Tensor
        Scalar >= 0.

    Raises
    ------
    ValueError
        If the critic does not return one value per sample.

    References
    ----------
    Kodali et al. 2017, "On Convergence and Stability of GANs",
    arXiv:1705.07215, Sec. 4 (DRAGAN penalty, lambda ~ 10) and the authors'
    reference code (perturbation ``0.5 * X.std() * np.random.random(X.shape)``).
    """
    return dragan_penalty_members(_one_member(critic), real[None], generators=[generator], c=c)[0]


def _one_member(critic: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """A solo critic ``(N, ...) -> (N,)`` as a member critic ``(1, N, ...) -> (1, N)``."""

    def member(x: Tensor) -> Tensor:
        n = x.shape[1]
        out = critic(x[0])
        if out.numel() != n:
            raise ValueError(f"critic must return one value per sample, shape ({n},) or ({n}, 1); "
                             f"got {tuple(out.shape)}")
        return out.reshape(1, n)

    return member


def _member_norm_penalty(critic: Callable[[Tensor], Tensor], x_hat: Tensor) -> Tensor:
    """``mean_i (||grad_{x_hat_ki} critic(x_hat)_ki||_2 - 1)^2`` per member k, ``(M,)``, graph kept for backprop.

    ``x_hat`` is ``(M, N, ...)`` and ``critic`` maps it to ``(M, N)``. The gradient of the sum is the
    per-sample gradient as long as the critic treats samples (and members) independently (no batch norm in
    training mode), which is why critics with a penalty use layer norm or none.
    """
    m, n = x_hat.shape[:2]
    out = critic(x_hat)
    if out.numel() != m * n:
        raise ValueError(f"critic must return one value per sample and member, ({m}, {n}); got {tuple(out.shape)}")
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)  # (M, N, ...), like x_hat
    norm = grad.flatten(2).norm(2, dim=2)  # (M, N) per-sample L2 norm over all non-batch dims
    return (norm - 1.0).pow(2).mean(dim=1)


def _member_rand(shape: tuple[int, ...], generators: Sequence[torch.Generator | None], like: Tensor) -> Tensor:
    """``U[0, 1)`` draws ``(M, *shape)``: member k's from ``generators[k]`` (see :func:`_rand`)."""
    return torch.stack([_rand(shape, g, like) for g in generators])


def gradient_penalty_members(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    generators: Sequence[torch.Generator | None],
) -> Tensor:
    """:func:`gradient_penalty` of M runs at once (the member axis of :mod:`losslab.train.members`), ``(M,)``.

    Parameters
    ----------
    critic : callable
        ``(M, N, ...) -> (M, N)``: member k's critic on member k's samples.
    real, fake : Tensor, shape (M, N, ...)
    generators : sequence of M torch.Generator
        Member k draws its ``eps`` (``(N, 1, ...)``) from ``generators[k]``, as its solo run does.

    Returns
    -------
    Tensor, shape (M,)
        Each member's unweighted penalty (Gulrajani et al. 2017, arXiv:1704.00028, Eq. 3).
    """
    real, fake = real.detach(), fake.detach()
    eps = _member_rand(_per_sample_shape(real[0]), generators, real)  # (M, N, 1, ...)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)  # (M, N, ...)
    return _member_norm_penalty(critic, x_hat)


def dragan_penalty_members(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    *,
    generators: Sequence[torch.Generator | None],
    c: float | Tensor = 0.5,
) -> Tensor:
    """:func:`dragan_penalty` of M runs at once, ``(M,)``.

    Member k draws ``u`` then ``alpha`` from ``generators[k]``; the batch standard deviation is member k's
    own. ``c``: a number or an ``(M,)`` tensor (one perturbation scale per member).
    Source: Kodali et al. 2017, arXiv:1705.07215, Sec. 4 and the authors' reference code.
    """
    x = real.detach()
    m = x.shape[0]
    u, alpha = [], []
    for g in generators:
        u.append(_rand(tuple(x.shape[1:]), g, x))
        alpha.append(_rand(_per_sample_shape(x[0]), g, x))
    u, alpha = torch.stack(u), torch.stack(alpha)
    ones = (1,) * (x.dim() - 1)
    std = x.reshape(m, -1).std(dim=1, correction=0).reshape(m, *ones)  # (M, 1, ...) per member
    if torch.is_tensor(c):
        c = c.reshape(m, *ones).to(x.dtype)
    x_p = x + c * std * u  # (M, N, ...) perturbed reals
    x_hat = (x + alpha * (x_p - x)).requires_grad_(True)
    return _member_norm_penalty(critic, x_hat)


def squared_gradient_norm(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Zero-centred gradient penalty, unweighted: ``mean_i ||grad_x critic(x_i)||_2^2``.

    The per-sample squared L2 norm of the critic's input gradient, over all
    non-batch dimensions, at the given samples themselves (no interpolation,
    no target norm 1: the penalty is zero where the critic is flat). ``x`` is
    detached, so no gradient reaches the generator; the graph is kept so that
    ``(gamma / 2 * penalty).backward()`` reaches the critic's parameters.

    Parameters
    ----------
    critic : callable
        Maps ``(N, ...)`` to ``(N,)`` or ``(N, 1)``; must treat samples
        independently (no batch norm in training mode).
    x : Tensor, shape (N, ...)
        Where the penalty is taken: real samples (R1) or generated ones (R2).

    Returns
    -------
    Tensor
        Scalar >= 0 (squared critic units per data unit).

    Raises
    ------
    ValueError
        If the critic does not return one value per sample.

    References
    ----------
    Mescheder et al. 2018, "Which Training Methods for GANs do actually
    Converge?", arXiv:1801.04406, Sec. 4.1 (R1 and R2; equation numbers unchecked).
    """
    x_hat = x.detach().requires_grad_(True)
    n = x_hat.shape[0]
    out = critic(x_hat)
    if out.numel() != n:
        raise ValueError(f"critic must return one value per sample, shape ({n},) or ({n}, 1); got {tuple(out.shape)}")
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)  # (N, ...), like x
    return grad.flatten(1).pow(2).sum(dim=1).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 penalty, unweighted: ``E_{x ~ p_data} ||grad_x D(x)||^2`` on real samples.

    The training step adds ``r1_gamma / 2`` times it to the critic's loss,
    as Mescheder et al. write ``R1(psi) = gamma / 2 E_{p_D}[||grad D_psi(x)||^2]``.
    On the Dirac-GAN it is ``psi^2`` and makes the equilibrium locally
    convergent for every ``gamma > 0`` (eigenvalues ``-gamma/2 +- sqrt(gamma^2/4 - f'(0)^2)``).
    See :func:`squared_gradient_norm` for shapes and errors.

    References
    ----------
    Mescheder et al. 2018, arXiv:1801.04406, Sec. 4.1 (equation number unchecked).
    """
    return squared_gradient_norm(critic, real)


def r2_penalty(critic: Callable[[Tensor], Tensor], fake: Tensor) -> Tensor:
    """R2 penalty, unweighted: ``E_{x ~ p_theta} ||grad_x D(x)||^2`` on generated samples.

    The step adds ``r2_gamma / 2`` times it. See :func:`squared_gradient_norm`.

    References
    ----------
    Mescheder et al. 2018, arXiv:1801.04406, Sec. 4.1 (equation number unchecked);
    Huang et al. 2024, arXiv:2501.05441, Sec. 2 (R3GAN: RpGAN + R1 + R2; section number unchecked).
    """
    return squared_gradient_norm(critic, fake)


def squared_gradient_norm_members(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """:func:`squared_gradient_norm` of M runs at once, ``(M,)``: ``critic`` maps ``(M, N, ...)`` to ``(M, N)``.

    Member k's value is ``mean_i ||grad_x critic_k(x_ki)||^2`` (the critics of different members are
    independent, so the gradient of the sum is each member's own). Source: Mescheder et al. 2018,
    arXiv:1801.04406, Sec. 4.1 (section number unchecked).
    """
    x_hat = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)  # (M, N, ...)
    return grad.flatten(2).pow(2).sum(dim=2).mean(dim=1)


ZERO_CENTRED: dict[str, str] = {"r1": "real", "r2": "fake"}
"""A zero-centred penalty a GAN loss can declare (``GANLoss.grad_penalties``) -> the samples it is taken on;
its weight is the loss's ``<name>_gamma`` hyperparameter, the step adds ``gamma / 2 * penalty``."""


def clip_weights_(module: nn.Module, c: float) -> None:
    """Clamp every parameter of ``module`` to ``[-c, c]`` in place.

    Parameters
    ----------
    module : nn.Module
        The critic.
    c : float
        Clipping bound, > 0 (0.01 in the paper).

    Raises
    ------
    UserError
        If ``c`` is not positive.

    References
    ----------
    Arjovsky et al. 2017, "Wasserstein GAN", arXiv:1701.07875, Algorithm 1, line 7.
    """
    if not c > 0:
        raise UserError(f"weight clipping bound must be > 0, got {c}")
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)


def pulling_away_term(code: Tensor) -> Tensor:
    """EBGAN pulling-away term ``f_PT(S)``.

    ``f_PT(S) = 1 / (N (N - 1)) * sum_i sum_{j != i} (S_i^T S_j / (||S_i|| ||S_j||))^2``:
    the mean squared cosine similarity over the ``N (N - 1)`` ordered pairs of
    distinct rows. It is 0 for mutually orthogonal rows, 1 for parallel rows,
    and invariant to rescaling any row. A zero row counts as orthogonal to all.

    Parameters
    ----------
    code : Tensor, shape (N, c) or (N, ...)
        Encoder codes ``S`` of a batch; trailing dimensions are flattened.

    Returns
    -------
    Tensor
        Scalar in [0, 1].

    Raises
    ------
    UserError
        If ``N < 2`` (the term needs at least one pair; use a batch size >= 2).

    References
    ----------
    Zhao et al. 2017, "Energy-based Generative Adversarial Network",
    arXiv:1609.03126, Eq. 6.
    """
    n = code.shape[0] if code.dim() > 0 else 0
    if n < 2:
        raise UserError(f"the pulling-away term needs a batch of at least 2 codes, got {n}")
    s = F.normalize(code.reshape(n, -1), dim=1)  # (N, c), unit rows
    cos2 = (s @ s.T).pow(2)  # (N, N) squared cosine similarities
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=code.device)
    return cos2[off_diagonal].sum() / (n * (n - 1))


def pulling_away_term_global_l1(code: Tensor) -> Tensor:
    """The pulling-away term as a widely copied reference collection computes it (a known bug, kept to study it).

    ``PT_L1(S) = (sum_{i,j} (S_i^T S_j / ||S||_1^2)^2 - N) / (N (N - 1))``: the
    codes are divided by ONE global L1 norm ``||S||_1 = sum_{i,k} |S_ik|`` of
    the whole batch instead of each row by its own L2 norm, and the diagonal is
    removed by subtracting ``N`` (what it would be for unit rows) rather than
    by skipping ``i == j``.

    Its value is pinned near ``-1/(N - 1)``: with ``A = S S^T / ||S||_1^2``,
    ``sum_ij A_ij^2 = ||S^T S||_F^2 / ||S||_1^4 <= ||S||_F^4 / ||S||_1^4 <= 1``
    (``||S S^T||_F <= ||S||_F^2`` and ``||S||_F <= ||S||_1``), so
    ``-1/(N-1) <= PT_L1 <= -1/(N-1) + 1/(N(N-1))``; for dense codes
    ``||S||_F^2 / ||S||_1^2`` is of order ``1/(N c)``, so the first sum is
    tiny and the value is ``-1/(N-1)`` (-1/63 for a batch of 64) up to it.
    The term is invariant to rescaling the whole batch, and its gradient is of
    order ``||S||_F^3 / (||S||_1^4 N^2)``: orders of magnitude below
    :func:`pulling_away_term`'s, so the generator gets almost no push towards
    diverse codes.

    Parameters
    ----------
    code : Tensor, shape (N, c) or (N, ...)
        Encoder codes ``S`` of a batch; trailing dimensions are flattened.

    Returns
    -------
    Tensor
        Scalar in ``[-1/(N-1), -1/(N-1) + 1/(N(N-1))]`` (NaN for an all-zero batch).

    Raises
    ------
    UserError
        If ``N < 2``.

    References
    ----------
    The ``pullaway_loss`` of the EBGAN in the "pytorch-generative-model-collections"
    repository (``norm = torch.norm(embeddings, 1)``) and its copies; compare
    Zhao et al. 2017, arXiv:1609.03126, Eq. 6 (:func:`pulling_away_term`).
    """
    n = code.shape[0] if code.dim() > 0 else 0
    if n < 2:
        raise UserError(f"the pulling-away term needs a batch of at least 2 codes, got {n}")
    s = code.reshape(n, -1)
    s = s / s.abs().sum()  # (N, c): one global L1 norm, not per-row L2
    sim2 = (s @ s.T).pow(2)  # (N, N)
    return (sim2.sum() - n) / (n * (n - 1))


PT_VARIANTS: dict[str, Callable[[Tensor], Tensor]] = {
    "paper": pulling_away_term,
    "global_l1": pulling_away_term_global_l1,
}
"""EBGAN's ``loss.pt_variant``: Zhao et al.'s Eq. 6, or the reference collection's global-L1 version."""


def _as_float(value: float | Tensor) -> float:
    """A Python float from a number or a tensor (mean over its elements)."""
    if isinstance(value, Tensor):
        return float(value.detach().double().mean())
    return float(value)


class BEGANEquilibrium:
    """BEGAN's proportional control of ``k_t`` and its convergence measure.

    ``k_{t+1} = clip(k_t + lambda_k * (gamma * L(x) - L(G(z_G))), 0, 1)`` and
    ``M_global = L(x) + |gamma * L(x) - L(G(z_G))|``.

    Parameters
    ----------
    gamma : float
        Diversity ratio ``gamma = E L(G(z)) / E L(x)`` in (0, 1] (paper: 0.3 - 0.7).
    lambda_k : float
        Proportional gain >= 0 (0.001 in the paper).
    k0 : float
        Initial ``k`` in [0, 1] (0 in the paper).

    Attributes
    ----------
    k : float
        Current ``k_t``; save it with a checkpoint to resume.

    Raises
    ------
    UserError
        If a hyperparameter is out of range.

    References
    ----------
    Berthelot et al. 2017, "BEGAN: Boundary Equilibrium GANs", arXiv:1703.10717,
    Eq. 4 (k_t update, Sec. 3.4) and Sec. 3.4.1 (M_global).
    """

    def __init__(self, gamma: float = 0.5, lambda_k: float = 1e-3, k0: float = 0.0) -> None:
        if not 0.0 < gamma <= 1.0:
            raise UserError(f"BEGAN gamma must be in (0, 1], got {gamma}")
        if not lambda_k >= 0.0:
            raise UserError(f"BEGAN lambda_k must be >= 0, got {lambda_k}")
        if not 0.0 <= k0 <= 1.0:
            raise UserError(f"BEGAN k0 must be in [0, 1], got {k0}")
        self.gamma = float(gamma)
        self.lambda_k = float(lambda_k)
        self.k = float(k0)

    def update(self, e_real: float | Tensor, e_fake: float | Tensor) -> float:
        """Advance ``k`` one step and return the new value.

        Parameters
        ----------
        e_real : float or Tensor
            ``L(x)``: mean energy of the real batch (a tensor is averaged).
        e_fake : float or Tensor
            ``L(G(z_G))``: mean energy of the generated batch.

        Returns
        -------
        float
            The new ``k`` in [0, 1].

        Raises
        ------
        FloatingPointError
            If an energy is NaN or infinite (``k`` is left unchanged).
        """
        r, f = _as_float(e_real), _as_float(e_fake)
        if not (math.isfinite(r) and math.isfinite(f)):
            raise FloatingPointError(f"non-finite BEGAN energies: e_real={r}, e_fake={f}")
        self.k = min(max(self.k + self.lambda_k * (self.gamma * r - f), 0.0), 1.0)
        return self.k

    def convergence(self, e_real: float | Tensor, e_fake: float | Tensor) -> float:
        """Global convergence measure ``M_global = L(x) + |gamma L(x) - L(G(z_G))|``.

        Parameters
        ----------
        e_real, e_fake : float or Tensor
            Mean energies of the real and generated batches.

        Returns
        -------
        float
            ``M_global`` >= 0 (lower is better).
        """
        r, f = _as_float(e_real), _as_float(e_fake)
        return r + abs(self.gamma * r - f)

    def __repr__(self) -> str:
        return f"BEGANEquilibrium(gamma={self.gamma}, lambda_k={self.lambda_k}, k={self.k})"


__all__ = [
    "BEGANEquilibrium",
    "clip_weights_",
    "dragan_penalty",
    "gradient_penalty",
    "PT_VARIANTS",
    "pulling_away_term",
    "pulling_away_term_global_l1",
    "r1_penalty",
    "r2_penalty",
    "squared_gradient_norm",
    "squared_gradient_norm_members",
    "ZERO_CENTRED",
]
