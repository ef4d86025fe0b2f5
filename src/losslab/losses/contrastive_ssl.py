"""SigLIP's pairwise sigmoid loss, and two losses without negatives: Barlow Twins and VICReg.

Pure keyword-only functions returning scalar tensors, plus
:func:`collapse_stats`, the collapse diagnostics the contrastive family logs
for every loss. The registry entries are in :mod:`losslab.losses.contrastive`.

* :func:`siglip_loss` (Zhai et al. 2023, arXiv:2303.15343, Algorithm 1, number unchecked): every
  pair of the batch is an independent binary problem, the matched pair (the
  diagonal) labelled +1, the other ``n^2 - n`` pairs -1, with a learnable
  temperature ``t = exp(t')`` and bias ``b``.
* :func:`barlow_twins_loss` (Zbontar et al. 2021, arXiv:2103.03230, Eqs. 1-2
  and Algorithm 1, numbers unchecked): the cross-correlation of the two views' batch-standardised
  embeddings is pushed to the identity.
* :func:`vicreg_loss` (Bardes et al. 2022, arXiv:2105.04906, Eqs. 1-6 and
  Algorithm 1, numbers unchecked): invariance (mean squared distance of the views), variance
  (a hinge on each dimension's standard deviation) and covariance (the
  off-diagonal covariance) terms.

Barlow Twins and VICReg act on the **raw** projections (no L2 normalisation):
their collapse guards are statistics of the batch, which a normalisation
would change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["barlow_twins_loss", "collapse_stats", "off_diagonal", "siglip_loss", "vicreg_loss"]


def off_diagonal(m: Tensor) -> Tensor:
    """The off-diagonal entries of a square matrix ``(d, d)`` as a flat ``(d^2 - d,)`` tensor."""
    d = m.shape[0]
    return m[~torch.eye(d, dtype=torch.bool, device=m.device)]


def siglip_loss(*, x: Tensor, y: Tensor, t_prime: Tensor | float, bias: Tensor | float) -> Tensor:
    """SigLIP's pairwise sigmoid loss over all ``n^2`` pairs of the batch.

    ``logits_ij = t <x_i/|x_i|, y_j/|y_j|> + b`` with ``t = exp(t')``;
    ``z_ij = +1`` if ``i = j`` else -1; the loss is
    ``-(1/n) sum_ij log sigmoid(z_ij logits_ij)``: a sum over the n^2 pairs
    divided by the batch size n (Algorithm 1), so its scale grows with n.

    Parameters
    ----------
    x, y : (n, d) tensors
        Embeddings of the two towers (here: the two augmented views); row i of
        both is a matched pair. Normalised inside.
    t_prime : scalar tensor or float
        The log-temperature ``t'`` (initialised to ``log 10``); learnable when a
        tensor that requires grad.
    bias : scalar tensor or float
        ``b`` (initialised to -10).

    Returns
    -------
    Scalar tensor, in nats per example (summed over its n pairs of a row).

    Source: Zhai, Mustafa, Kolesnikov, Beyer 2023, "Sigmoid loss for language
    image pre-training", arXiv:2303.15343, Algorithm 1 and Sec. 3.2 (t' = log 10,
    b = -10 at initialisation); algorithm and section numbers unchecked against the paper.
    """
    n = x.shape[0]
    t = torch.as_tensor(t_prime, dtype=x.dtype, device=x.device).exp()
    logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T * t + bias  # (n, n)
    labels = 2.0 * torch.eye(n, dtype=x.dtype, device=x.device) - 1.0
    return -F.logsigmoid(labels * logits).sum() / n


def barlow_twins_loss(*, z1: Tensor, z2: Tensor, lambd: float = 5e-3) -> Tensor:
    """Barlow Twins: ``sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2``.

    ``C = Z1n^T Z2n / N`` is the (D, D) cross-correlation of the embeddings
    standardised over the batch, ``Zn = (Z - mean) / std`` (Algorithm 1's
    ``z.std(0)``, the unbiased estimate; the authors' code uses a BatchNorm
    without affine parameters, the biased one: a factor ``(N - 1) / N`` on C).

    Parameters
    ----------
    z1, z2 : (N, D) tensors
        Raw embeddings of the two views, N >= 2.
    lambd : float
        Weight of the redundancy-reduction (off-diagonal) term, >= 0; the paper
        uses 5e-3 (Sec. 4, with D = 8,192).

    Returns
    -------
    Scalar tensor.

    Source: Zbontar, Jing, Misra, LeCun, Deny 2021, arXiv:2103.03230, Eqs. 1-2,
    Algorithm 1 (equation and algorithm numbers unchecked against the paper).
    """
    n = z1.shape[0]
    z1n = (z1 - z1.mean(dim=0)) / z1.std(dim=0)
    z2n = (z2 - z2.mean(dim=0)) / z2.std(dim=0)
    c = z1n.T @ z2n / n
    on = (torch.diagonal(c) - 1.0).pow(2).sum()
    return on + lambd * off_diagonal(c).pow(2).sum()


def vicreg_loss(*, z1: Tensor, z2: Tensor, inv_coeff: float = 25.0, var_coeff: float = 25.0,
                cov_coeff: float = 1.0, std_target: float = 1.0, eps: float = 1e-4) -> Tensor:
    """VICReg: ``lambda s(Z, Z') + mu (v(Z) + v(Z')) + nu (c(Z) + c(Z'))``.

    * invariance ``s(Z, Z') = mean_{i, k} (z_ik - z'_ik)^2``, the mean squared
      error over the N x D entries (Algorithm 1's ``F.mse_loss``; Eq. 5 writes
      the sum over the D dimensions, D times this);
    * variance ``v(Z) = (1/D) sum_j max(0, gamma - sqrt(Var(z_j) + eps))``, gamma = ``std_target``
      (Eqs. 1-2, unbiased variance);
    * covariance ``c(Z) = (1/D) sum_{i != j} C(Z)_ij^2`` with
      ``C(Z) = (Z - mean)^T (Z - mean) / (N - 1)`` (Eqs. 3-4).

    The authors' code halves each variance term (``/ 2``); Eq. 6 does not, nor
    does this function.

    Parameters
    ----------
    z1, z2 : (N, D) tensors
        Raw embeddings of the two views, N >= 2.
    inv_coeff, var_coeff, cov_coeff : float
        lambda, mu, nu (the paper: 25, 25, 1).
    std_target : float
        gamma, the target standard deviation (1); named apart from BEGAN's
        ``loss.gamma``, which means something else.
    eps : float
        Numerical floor inside the square root (1e-4).

    Returns
    -------
    Scalar tensor.

    Source: Bardes, Ponce, LeCun 2022, "VICReg", arXiv:2105.04906, Eqs. 1-6
    (coefficients in Sec. 4.3); equation numbers unchecked against the PDF
    (no copy offline).
    """
    d = z1.shape[1]
    inv = F.mse_loss(z1, z2)

    def var(z: Tensor) -> Tensor:
        return F.relu(std_target - torch.sqrt(z.var(dim=0) + eps)).mean()

    def cov(z: Tensor) -> Tensor:
        zc = z - z.mean(dim=0)
        c = zc.T @ zc / (z.shape[0] - 1)
        return off_diagonal(c).pow(2).sum() / d

    return inv_coeff * inv + var_coeff * (var(z1) + var(z2)) + cov_coeff * (cov(z1) + cov(z2))


@torch.no_grad()
def collapse_stats(z: Tensor) -> dict[str, float]:
    """Collapse diagnostics of a batch of embeddings ``z`` (N, D), N >= 2.

    Returns
    -------
    dict
        ``z_std``: mean over dimensions of the standard deviation of the raw
        embedding (VICReg's variance guard watches it; 0 = complete collapse);
        ``z_std_unit``: the same for the L2-normalised embedding times
        sqrt(D) (scale-free: about 1 when the unit vectors spread over all
        dimensions, 0 when they collapse to one point; SimSiam's indicator,
        Chen & He 2021, arXiv:2011.10566, Sec. 4.1);
        ``z_cov_offdiag``: VICReg's ``c(Z) = (1/D) sum_{i != j} C_ij^2`` of the
        raw embedding; ``z_corr_offdiag``: the mean squared off-diagonal
        correlation (scale-free: 0 for decorrelated dimensions, 1 for
        dimensional collapse onto one direction).
    """
    z = z.detach().to(torch.float64)
    n, d = z.shape
    std = z.std(dim=0)
    unit = F.normalize(z, dim=1)
    zc = z - z.mean(dim=0)
    c = zc.T @ zc / (n - 1)
    s = std.clamp_min(1e-12)
    corr = c / (s[:, None] * s[None, :])
    return {
        "z_std": float(std.mean()),
        "z_std_unit": float(unit.std(dim=0).mean() * d**0.5),
        "z_cov_offdiag": float(off_diagonal(c).pow(2).sum() / d),
        "z_corr_offdiag": float(off_diagonal(corr).pow(2).mean()) if d > 1 else 0.0,
    }
