"""GAN objectives as small pure functions.

Every function takes keyword-only tensors (so ``d_real`` and ``d_fake`` can
never be swapped) and returns a scalar tensor that the optimiser *minimises*.
Inputs are per-sample critic outputs of shape ``(N,)``; an ``(N, 1)`` output is
accepted too, since every loss is a mean over all elements.

What the input means depends on the loss:

* **logits** (minimax, ns, dragan, hinge, r1, rpgan, r3gan): unbounded real numbers; the
  discriminator's probability is ``sigmoid(logit)``. Losses are written with
  ``softplus`` so they stay finite for any logit (``log(sigmoid(t)) =
  -softplus(-t)``, ``log(1 - sigmoid(t)) = -softplus(t)``).
* **raw scores** (LSGAN): unbounded real numbers regressed onto targets.
* **critic values** (WGAN, WGAN-GP): unbounded real numbers of a (roughly)
  1-Lipschitz function.
* **energies >= 0** (EBGAN, BEGAN): per-sample reconstruction errors of an
  autoencoder critic, see :func:`reconstruction_energy`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from losslab.errors import unknown_choice
from losslab.losses.penalties import PT_VARIANTS

ENERGIES: dict[str, float] = {"l1": 1.0, "mse": 2.0}  # kind -> exponent p of |x - recon|^p


# --------------------------------------------------------------------------- minimax / non-saturating


def minimax_d_loss(*, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Discriminator loss of the original GAN game, ``-V(D, G)``.

    ``L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
          = mean(softplus(-d_real)) + mean(softplus(d_fake))``
    with ``D = sigmoid(logit)``: the sum of the binary cross-entropies of the
    real batch against target 1 and of the fake batch against target 0.

    Parameters
    ----------
    d_real : Tensor, shape (N,)
        Discriminator logits on real samples.
    d_fake : Tensor, shape (M,)
        Discriminator logits on generated samples.

    Returns
    -------
    Tensor
        Scalar, >= 0 (in nats).

    References
    ----------
    Goodfellow et al. 2014, "Generative Adversarial Nets", arXiv:1406.2661, Eq. 1.
    """
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def minimax_g_loss(*, d_fake: Tensor) -> Tensor:
    """Generator loss of the original (saturating) minimax game.

    ``L_G = E_z[log(1 - D(G(z)))] = -mean(softplus(d_fake))``.
    Its gradient w.r.t. a logit ``t`` is ``-sigmoid(t) / N``, which vanishes
    when the discriminator confidently rejects fakes (``t -> -inf``): the
    saturation that motivates :func:`ns_g_loss`.

    Parameters
    ----------
    d_fake : Tensor, shape (N,)
        Discriminator logits on generated samples.

    Returns
    -------
    Tensor
        Scalar, <= 0 (in nats).

    References
    ----------
    Goodfellow et al. 2014, "Generative Adversarial Nets", arXiv:1406.2661, Eq. 1.
    """
    return -F.softplus(d_fake).mean()


# The non-saturating game keeps the discriminator of the minimax game.
ns_d_loss = minimax_d_loss


def ns_g_loss(*, d_fake: Tensor) -> Tensor:
    """Non-saturating generator loss ``E_z[-log D(G(z))]`` (the "-log D trick").

    ``L_G = mean(softplus(-d_fake))``; its gradient w.r.t. a logit ``t`` is
    ``-(1 - sigmoid(t)) / N``, which tends to ``-1 / N`` (not 0) when the
    discriminator rejects fakes.

    Parameters
    ----------
    d_fake : Tensor, shape (N,)
        Discriminator logits on generated samples.

    Returns
    -------
    Tensor
        Scalar, >= 0 (in nats).

    References
    ----------
    Goodfellow et al. 2014, "Generative Adversarial Nets", arXiv:1406.2661, Sec. 3.
    """
    return F.softplus(-d_fake).mean()


# --------------------------------------------------------------------------- Wasserstein


def wasserstein_d_loss(*, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Critic loss of WGAN / WGAN-GP: ``mean(f(G(z))) - mean(f(x))``.

    Minimising it maximises the Kantorovich-Rubinstein estimate
    ``E f(x) - E f(G(z))`` of the Wasserstein-1 distance; the Lipschitz
    constraint is enforced elsewhere (weight clipping for WGAN,
    :func:`losslab.losses.penalties.gradient_penalty` for WGAN-GP).

    Parameters
    ----------
    d_real : Tensor, shape (N,)
        Critic values on real samples.
    d_fake : Tensor, shape (M,)
        Critic values on generated samples.

    Returns
    -------
    Tensor
        Scalar (unbounded; the negative of the W1 estimate).

    References
    ----------
    Arjovsky et al. 2017, "Wasserstein GAN", arXiv:1701.07875, Algorithm 1 (line 5);
    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs",
    arXiv:1704.00028, Eq. 3 and Algorithm 1 (without the penalty term).
    """
    return d_fake.mean() - d_real.mean()


def wasserstein_g_loss(*, d_fake: Tensor) -> Tensor:
    """Generator loss of WGAN / WGAN-GP: ``-mean(f(G(z)))``.

    Parameters
    ----------
    d_fake : Tensor, shape (N,)
        Critic values on generated samples.

    Returns
    -------
    Tensor
        Scalar (unbounded).

    References
    ----------
    Arjovsky et al. 2017, arXiv:1701.07875, Algorithm 1 (line 10);
    Gulrajani et al. 2017, arXiv:1704.00028, Algorithm 1 (line 12).
    """
    return -d_fake.mean()


# --------------------------------------------------------------------------- least squares


def lsgan_d_loss(*, d_real: Tensor, d_fake: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Least-squares discriminator loss.

    ``L_D = 1/2 E_x[(D(x) - b)^2] + 1/2 E_z[(D(G(z)) - a)^2]``, with the paper's
    1/2 factors; ``a`` is the target for fakes and ``b`` for reals. Defaults are
    the 0-1 coding ``a=0, b=1`` (``c=1`` in :func:`lsgan_g_loss`) used in the
    paper's experiments. At the optimum ``D(x) = b``, ``D(G(z)) = a`` it is 0.

    Parameters
    ----------
    d_real : Tensor, shape (N,)
        Raw (unsquashed) discriminator scores on real samples.
    d_fake : Tensor, shape (M,)
        Raw discriminator scores on generated samples.
    a, b : float
        Targets for fake and real samples.

    Returns
    -------
    Tensor
        Scalar, >= 0.

    References
    ----------
    Mao et al. 2017, "Least Squares Generative Adversarial Networks",
    arXiv:1611.04076, Eq. 2 (0-1 coding a=0, b=1, c=1 as in Eq. 9).
    """
    return 0.5 * (d_real - b).pow(2).mean() + 0.5 * (d_fake - a).pow(2).mean()


def lsgan_g_loss(*, d_fake: Tensor, c: float = 1.0) -> Tensor:
    """Least-squares generator loss ``L_G = 1/2 E_z[(D(G(z)) - c)^2]``.

    Parameters
    ----------
    d_fake : Tensor, shape (N,)
        Raw discriminator scores on generated samples.
    c : float
        The value the generator wants the discriminator to believe for fakes.

    Returns
    -------
    Tensor
        Scalar, >= 0.

    References
    ----------
    Mao et al. 2017, arXiv:1611.04076, Eq. 2 (c=1 in the 0-1 coding of Eq. 9).
    """
    return 0.5 * (d_fake - c).pow(2).mean()


# --------------------------------------------------------------------------- hinge


def hinge_d_loss(*, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Hinge discriminator loss ``E_x[relu(1 - D(x))] + E_z[relu(1 + D(G(z)))]``.

    Zero exactly when every real logit is >= 1 and every fake logit is <= -1.

    Parameters
    ----------
    d_real : Tensor, shape (N,)
        Discriminator outputs (logits, unsquashed) on real samples.
    d_fake : Tensor, shape (M,)
        Discriminator outputs on generated samples.

    Returns
    -------
    Tensor
        Scalar, >= 0.

    References
    ----------
    Lim & Ye 2017, "Geometric GAN", arXiv:1705.02894;
    Miyato et al. 2018, "Spectral Normalization for GANs", arXiv:1802.05957,
    hinge version of the adversarial loss (Sec. 4).
    """
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def hinge_g_loss(*, d_fake: Tensor) -> Tensor:
    """Hinge generator loss ``-E_z[D(G(z))]``.

    Parameters
    ----------
    d_fake : Tensor, shape (N,)
        Discriminator outputs (logits) on generated samples.

    Returns
    -------
    Tensor
        Scalar (unbounded).

    References
    ----------
    Lim & Ye 2017, arXiv:1705.02894; Miyato et al. 2018, arXiv:1802.05957, Sec. 4.
    """
    return -d_fake.mean()


# --------------------------------------------------------------------------- relativistic pairing


def _paired(d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Tensor]:
    """``d_real`` and ``d_fake`` flattened to ``(N,)`` each; they must pair one to one."""
    r, f = d_real.reshape(-1), d_fake.reshape(-1)
    if r.shape != f.shape:
        raise ValueError(f"relativistic pairing needs as many real as fake logits: got {r.numel()} and {f.numel()}")
    return r, f


def rpgan_d_loss(*, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Relativistic paired (RpGAN) discriminator loss ``E_{(x, z)}[softplus(C(G(z)) - C(x))]``.

    The i-th real sample is paired with the i-th fake one; the discriminator's
    probability that the real sample is more realistic than its fake partner
    is ``sigmoid(C(x) - C(G(z)))``, and ``-log`` of it is
    ``softplus(C(G(z)) - C(x))``. Zero when every real logit exceeds its
    partner by a wide margin; ``log 2`` when they are equal.

    Parameters
    ----------
    d_real : Tensor, shape (N,)
        Critic logits ``C(x)`` on real samples.
    d_fake : Tensor, shape (N,)
        Critic logits ``C(G(z))`` on generated samples, paired with ``d_real`` row by row.

    Returns
    -------
    Tensor
        Scalar, >= 0 (in nats).

    Raises
    ------
    ValueError
        If ``d_real`` and ``d_fake`` have different numbers of elements.

    References
    ----------
    Jolicoeur-Martineau 2018, "The relativistic discriminator: a key element
    missing from standard GAN", arXiv:1807.00734, Sec. 4 (RSGAN; equation
    number unchecked); Huang et al. 2024, "The GAN is dead; long live the GAN!",
    arXiv:2501.05441, Sec. 2 (RpGAN with f = softplus; section number unchecked).
    """
    r, f = _paired(d_real, d_fake)
    return F.softplus(f - r).mean()


def rpgan_g_loss(*, d_fake: Tensor, d_real: Tensor) -> Tensor:
    """Relativistic paired (RpGAN) generator loss ``E_{(x, z)}[softplus(C(x) - C(G(z)))]``.

    The generator wants each fake to look more realistic than its real
    partner: unlike every non-relativistic generator loss it needs ``C(x)``
    of real samples (``GANLoss.g_needs_real``). Its gradient w.r.t. a fake
    logit is ``-sigmoid(C(x) - C(G(z))) / N``: it tends to ``-1 / N``, not 0,
    when the critic rejects the fake, like :func:`ns_g_loss`.

    Parameters
    ----------
    d_fake : Tensor, shape (N,)
        Critic logits on generated samples.
    d_real : Tensor, shape (N,)
        Critic logits on real samples, paired with ``d_fake`` row by row (no
        gradient reaches the generator through them).

    Returns
    -------
    Tensor
        Scalar, >= 0 (in nats).

    Raises
    ------
    ValueError
        If the two have different numbers of elements.

    References
    ----------
    Jolicoeur-Martineau 2018, arXiv:1807.00734, Sec. 4 (equation number unchecked);
    Huang et al. 2024, arXiv:2501.05441, Sec. 2 (section number unchecked).
    """
    r, f = _paired(d_real, d_fake)
    return F.softplus(r - f).mean()


# --------------------------------------------------------------------------- energy based


def reconstruction_energy(x: Tensor, recon: Tensor, kind: str = "mse") -> Tensor:
    """Per-sample energy of an autoencoder critic, ``mean_{non-batch} |x - recon|^p``.

    Parameters
    ----------
    x : Tensor, shape (N, ...)
        Critic input (vectors ``(N, d)`` or images ``(N, C, H, W)``).
    recon : Tensor, same shape as ``x``
        The autoencoder's reconstruction of ``x``.
    kind : str
        ``"mse"`` (p = 2) or ``"l1"`` (p = 1).

    Returns
    -------
    Tensor, shape (N,)
        Energies >= 0, in squared (mse) or absolute (l1) data units.

    Raises
    ------
    UserError
        If ``kind`` is unknown.
    ValueError
        If ``x`` and ``recon`` have different shapes.

    References
    ----------
    Zhao et al. 2017, "Energy-based GAN", arXiv:1609.03126, Sec. 2.3 (MSE of the
    autoencoder); Berthelot et al. 2017, "BEGAN", arXiv:1703.10717, Eq. 1
    (``L(v) = |v - D(v)|^eta``, eta in {1, 2}; the paper uses 1).
    """
    if kind not in ENERGIES:
        raise unknown_choice("energy", kind, ENERGIES)
    if x.shape != recon.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but recon has {tuple(recon.shape)}")
    diff = (x - recon).abs().flatten(1)  # (N, prod(shape))
    if kind == "mse":
        diff = diff.pow(2)
    return diff.mean(dim=1)


def ebgan_d_loss(*, e_real: Tensor, e_fake: Tensor, margin: float) -> Tensor:
    """EBGAN discriminator loss ``E_x[D(x)] + E_z[relu(m - D(G(z)))]``.

    Parameters
    ----------
    e_real : Tensor, shape (N,)
        Energies >= 0 of real samples (autoencoder reconstruction errors).
    e_fake : Tensor, shape (M,)
        Energies >= 0 of generated samples.
    margin : float
        The margin ``m`` > 0: fakes with energy above ``m`` are not pushed further.

    Returns
    -------
    Tensor
        Scalar, >= 0.

    References
    ----------
    Zhao et al. 2017, "Energy-based Generative Adversarial Network",
    arXiv:1609.03126, Eq. 1.
    """
    return e_real.mean() + F.relu(margin - e_fake).mean()


def ebgan_g_loss(*, e_fake: Tensor, code_fake: Tensor | None = None, pt_weight: float = 0.1,
                 pt_variant: str = "paper") -> Tensor:
    """EBGAN generator loss ``E_z[D(G(z))] + w * f_PT(S)``.

    Parameters
    ----------
    e_fake : Tensor, shape (N,)
        Energies >= 0 of generated samples.
    code_fake : Tensor, shape (N, c) or (N, ...), optional
        Encoder codes ``S`` of the generated batch; when given, the
        pulling-away term :func:`losslab.losses.penalties.pulling_away_term`
        weighted by ``pt_weight`` is added (the "EBGAN-PT" variant).
    pt_weight : float
        Weight ``w`` of the pulling-away term (0.1 in the paper).
    pt_variant : str
        "paper" (Eq. 6, :func:`~losslab.losses.penalties.pulling_away_term`) or
        "global_l1" (:func:`~losslab.losses.penalties.pulling_away_term_global_l1`,
        a widely copied version whose gradient vanishes).

    Returns
    -------
    Tensor
        Scalar.

    Raises
    ------
    UserError
        If ``code_fake`` has fewer than 2 rows, or ``pt_variant`` is unknown.

    References
    ----------
    Zhao et al. 2017, arXiv:1609.03126, Eq. 2 (generator) and Eq. 6 (PT).
    """
    if pt_variant not in PT_VARIANTS:
        raise unknown_choice("pulling-away variant", pt_variant, PT_VARIANTS)
    loss = e_fake.mean()
    if code_fake is not None and pt_weight != 0:
        loss = loss + pt_weight * PT_VARIANTS[pt_variant](code_fake)
    return loss


def began_d_loss(*, e_real: Tensor, e_fake: Tensor, k: float | Tensor) -> Tensor:
    """BEGAN discriminator loss ``L_D = L(x) - k_t * L(G(z_D))``.

    ``k_t`` in [0, 1] is updated outside the gradient step by
    :class:`losslab.losses.penalties.BEGANEquilibrium` (no gradient flows into it).

    Parameters
    ----------
    e_real : Tensor, shape (N,)
        Energies ``L(x)`` >= 0 of real samples.
    e_fake : Tensor, shape (M,)
        Energies ``L(G(z_D))`` >= 0 of generated samples.
    k : float or 0-dim Tensor
        The equilibrium control variable ``k_t``.

    Returns
    -------
    Tensor
        Scalar.

    References
    ----------
    Berthelot et al. 2017, "BEGAN: Boundary Equilibrium GANs",
    arXiv:1703.10717, Eq. 4 (objective), Eq. 1 (energy L).
    """
    if isinstance(k, Tensor):
        k = k.detach()
    return e_real.mean() - k * e_fake.mean()


def began_g_loss(*, e_fake: Tensor) -> Tensor:
    """BEGAN generator loss ``L_G = L(G(z_G))``.

    Parameters
    ----------
    e_fake : Tensor, shape (N,)
        Energies >= 0 of generated samples.

    Returns
    -------
    Tensor
        Scalar, >= 0.

    References
    ----------
    Berthelot et al. 2017, arXiv:1703.10717, Eq. 4.
    """
    return e_fake.mean()


__all__ = [
    "ENERGIES",
    "began_d_loss",
    "began_g_loss",
    "ebgan_d_loss",
    "ebgan_g_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "minimax_d_loss",
    "minimax_g_loss",
    "ns_d_loss",
    "ns_g_loss",
    "reconstruction_energy",
    "rpgan_d_loss",
    "rpgan_g_loss",
    "wasserstein_d_loss",
    "wasserstein_g_loss",
]
