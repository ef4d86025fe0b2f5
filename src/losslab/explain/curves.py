"""The numbers behind the figures of ``losslab explain``: loss values and gradients against the input.

Every curve comes from the real loss functions of :mod:`losslab.losses` through
autograd (:func:`pointwise`, :func:`vmapped`), or from a closed form that
``tests/test_explain.py`` checks against autograd. Each ``*_curves`` function
returns a dict of NumPy arrays; :mod:`losslab.explain.figures` draws them.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy import integrate, special

from losslab.errors import UserError
from losslab.losses import classification, contrastive, gan


def pointwise(loss: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, dtype=torch.float64):
    """Value and derivative of ``loss`` (a scalar function of a one-element tensor) at each point of ``x``.

    One autograd call per point, so the derivative is exactly the per-sample
    derivative of the real loss function, whatever its reduction.

    Returns
    -------
    values, grads : (len(x),) float64 arrays
    """
    values, grads = np.empty(len(x)), np.empty(len(x))
    for i, xi in enumerate(np.asarray(x, dtype=np.float64)):
        t = torch.tensor([xi], dtype=dtype, requires_grad=True)
        v = loss(t)
        (g,) = torch.autograd.grad(v, t)
        values[i], grads[i] = v.detach().item(), g.item()
    return values, grads


def vmapped(loss: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and derivative of ``loss`` (a scalar function of a 0-d tensor) at each point of ``x``, in float64.

    The same numbers as :func:`pointwise`, computed in one vectorised call
    (``torch.func.vmap`` of ``torch.func.grad_and_value``) instead of one
    autograd call per point: for losses of a whole batch, where the loop is slow.

    Returns
    -------
    values, grads : (len(x),) float64 arrays
    """
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    grads, values = torch.func.vmap(torch.func.grad_and_value(loss))(t)
    return values.detach().numpy().copy(), grads.detach().numpy().copy()


def saturation_curves(d_fake: np.ndarray) -> dict[str, np.ndarray]:
    """Generator losses of minimax and ns, and their derivatives w.r.t. the logit, over ``D(G(z))``.

    Computed with :func:`losslab.losses.gan.minimax_g_loss` and
    :func:`losslab.losses.gan.ns_g_loss` and autograd (float64), one fake
    sample at a time. Closed forms: ``dL/dl = -D`` (minimax) and
    ``-(1 - D)`` (ns); ``dL/dD = -1 / (1 - D)`` and ``-1 / D``.

    Parameters
    ----------
    d_fake : (n,) array
        Discriminator probabilities ``D(G(z))`` in ``(0, 1)``.

    Returns
    -------
    dict of (n,) float64 arrays
        ``d_fake``, ``logit``, ``minimax_loss``, ``minimax_grad``, ``ns_loss``,
        ``ns_grad`` (``grad``: derivative w.r.t. the logit).

    Raises
    ------
    UserError
        If a probability is not strictly inside (0, 1).

    References
    ----------
    Goodfellow et al. 2014, arXiv:1406.2661, Eq. 1 and Sec. 3.
    """
    p = np.asarray(d_fake, dtype=np.float64)
    if not np.all((p > 0) & (p < 1)):
        raise UserError("D(G(z)) values must lie strictly inside (0, 1)")
    logit = special.logit(p)
    out = {"d_fake": p, "logit": logit}
    for key, fn in (("minimax", gan.minimax_g_loss), ("ns", gan.ns_g_loss)):
        out[f"{key}_loss"], out[f"{key}_grad"] = pointwise(lambda t, fn=fn: fn(d_fake=t), logit)
    return out


def optimal_discriminator_logit(x: np.ndarray, distance: float, sigma: float) -> np.ndarray:
    """Logit of the optimal BCE discriminator between ``N(0, s^2)`` (real) and ``N(d, s^2)`` (fake).

    ``D*(x) = p(x) / (p(x) + q(x)) = sigmoid(log p(x) - log q(x))`` and
    ``log p - log q = ((x - d)^2 - x^2) / (2 s^2) = d (d - 2x) / (2 s^2)``.

    Parameters
    ----------
    x : array
        Points (data units).
    distance : float
        ``d``, the position of the fake Gaussian.
    sigma : float
        ``s`` > 0, the common standard deviation.

    Returns
    -------
    array, like ``x``
        Logits (nats).

    References
    ----------
    Goodfellow et al. 2014, arXiv:1406.2661, Proposition 1.
    """
    x = np.asarray(x, dtype=np.float64)
    return distance * (distance - 2.0 * x) / (2.0 * sigma**2)


def js_gaussians(distance: float, sigma: float) -> float:
    """Jensen-Shannon divergence (nats) between ``N(0, s^2)`` and ``N(d, s^2)``.

    By symmetry ``JS = E_{x ~ P}[log(2 p / (p + q))] = log 2 - E_{u ~ N(0,1)}
    softplus(delta u - delta^2 / 2)`` with ``delta = d / s``; the expectation is
    computed with ``scipy.integrate.quad``. Tends to ``log 2`` as ``d / s`` grows
    and is exactly ``log 2`` for point masses at distinct points.

    Parameters
    ----------
    distance : float
        ``d`` (data units).
    sigma : float
        ``s`` > 0.

    Returns
    -------
    float
        JS in ``[0, log 2]`` (nats).
    """
    delta = abs(distance) / sigma
    if delta == 0:
        return 0.0
    def integrand(u: float) -> float:  # N(0, 1) density times softplus(delta u - delta^2 / 2)
        return math.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi) * float(np.logaddexp(0.0, delta * u - delta**2 / 2))

    expectation, _ = integrate.quad(integrand, -np.inf, np.inf)
    return float(min(max(math.log(2.0) - expectation, 0.0), math.log(2.0)))


def critic_1d_curves(distances: np.ndarray, sigma: float = 0.1) -> dict[str, np.ndarray]:
    """The 1-D experiment, exactly: real data at 0, fakes at distance ``d``.

    * ``js``: JS divergence between ``N(0, s^2)`` and ``N(d, s^2)``
      (:func:`js_gaussians`); the minimax discriminator's optimal loss is
      ``2 log 2 - 2 JS`` (Goodfellow et al. Theorem 1).
    * ``w1``: the Wasserstein-1 distance ``|d|`` (a translation).
    * ``bce_grad``: ``|dD*/dx|`` at the fake point ``x = d`` for the optimal BCE
      discriminator ``D* = sigmoid(l)``, ``l`` from
      :func:`optimal_discriminator_logit`: ``sigmoid(l) (1 - sigmoid(l)) |d| / s^2``
      with ``l = -d^2 / (2 s^2)``; it vanishes like ``exp(-d^2 / (2 s^2))``.
    * ``wgan_grad``: ``|f'| = 1`` for the optimal 1-Lipschitz critic ``f(x) = -x``.

    Parameters
    ----------
    distances : (n,) array
        Distances ``d >= 0`` of the fake distribution (data units).
    sigma : float
        Standard deviation ``s > 0`` of both narrow Gaussians.

    Returns
    -------
    dict of (n,) float64 arrays
        ``distance``, ``js``, ``w1``, ``bce_grad``, ``wgan_grad``.

    Raises
    ------
    UserError
        If ``sigma <= 0``.

    References
    ----------
    Goodfellow et al. 2014, arXiv:1406.2661, Prop. 1, Theorem 1; Arjovsky et al.
    2017, arXiv:1701.07875, Example 1; Gulrajani et al. 2017, arXiv:1704.00028, Prop. 1.
    """
    if not sigma > 0:
        raise UserError(f"sigma must be > 0, got {sigma}")
    d = np.asarray(distances, dtype=np.float64)
    l_fake = optimal_discriminator_logit(d, d, sigma)  # logit of D* at the fake point x = d
    bce_grad = special.expit(l_fake) * special.expit(-l_fake) * np.abs(d) / sigma**2
    return {
        "distance": d,
        "js": np.array([js_gaussians(float(di), sigma) for di in d]),
        "w1": np.abs(d),
        "bce_grad": bce_grad,
        "wgan_grad": np.ones_like(d),
    }


def binary_stability_curves(logits: np.ndarray) -> dict[str, np.ndarray]:
    """``bce(sigmoid(z))`` against ``bce_with_logits(z)`` for target 1, in float32.

    Both come from :mod:`losslab.losses.classification` with autograd w.r.t.
    the logit, in float32 (where rounding bites): ``bce`` flattens at
    ``-log(1e-7)`` with a zero gradient once ``sigmoid(z) < 1e-7``, while
    ``bce_with_logits`` stays ``softplus(-z)`` with gradient ``sigmoid(z) - 1 -> -1``.

    Parameters
    ----------
    logits : (n,) array
        Logits ``z`` of the true class.

    Returns
    -------
    dict of (n,) float64 arrays
        ``logit``, ``bce_loss``, ``bce_grad``, ``logits_loss``, ``logits_grad``.
    """
    z = np.asarray(logits, dtype=np.float64)
    one = torch.ones(1, dtype=torch.float32)
    out = {"logit": z}
    out["bce_loss"], out["bce_grad"] = pointwise(
        lambda t: classification.bce(probs=classification.sigmoid(t), target=one), z, torch.float32
    )
    out["logits_loss"], out["logits_grad"] = pointwise(
        lambda t: classification.bce_with_logits(logits=t, target=one), z, torch.float32
    )
    return out


def softmax_curves(gaps: np.ndarray, num_classes: int = 10, smoothings=(0.0, 0.1)) -> dict[str, np.ndarray]:
    """Sparse categorical cross-entropy of logits ``(g, 0, ..., 0)`` with target class 0.

    Uses :func:`losslab.losses.classification.sparse_cce` and autograd w.r.t. ``g``.

    Parameters
    ----------
    gaps : (n,) array
        Logit gap ``g`` between the true class and the ``K - 1`` others.
    num_classes : int
        ``K``.
    smoothings : sequence of float
        Label-smoothing values ``e``.

    Returns
    -------
    dict
        ``gap`` and, per ``e``, ``loss_{e}`` and ``grad_{e}`` (n,) arrays.
    """
    g = np.asarray(gaps, dtype=np.float64)
    target = torch.zeros(1, dtype=torch.int64)
    rest = torch.zeros(1, num_classes - 1, dtype=torch.float64)
    out: dict[str, np.ndarray] = {"gap": g}
    for e in smoothings:
        out[f"loss_{e}"], out[f"grad_{e}"] = pointwise(
            lambda t, e=e: classification.sparse_cce(
                logits=torch.cat([t.reshape(1, 1), rest], dim=1), target=target, label_smoothing=e
            ),
            g,
        )
    return out


def focal_curves(p_t: np.ndarray, gammas=(0.0, 0.5, 1.0, 2.0, 5.0)) -> dict[str, np.ndarray]:
    """Focal loss (``alpha = None``) against ``p_t`` for several ``gamma`` (Lin et al. Figure 1).

    A positive example (``y = 1``) with logit ``logit(p_t)``; derivative w.r.t.
    the logit by autograd through :func:`losslab.losses.classification.focal`.

    Parameters
    ----------
    p_t : (n,) array
        Probability of the true class in ``(0, 1)``.
    gammas : sequence of float
        Focusing parameters.

    Returns
    -------
    dict
        ``p_t``, ``logit`` and, per ``gamma``, ``loss_{gamma}``, ``grad_{gamma}``.
    """
    p = np.asarray(p_t, dtype=np.float64)
    z = special.logit(p)
    one = torch.ones(1, dtype=torch.float64)
    out: dict[str, np.ndarray] = {"p_t": p, "logit": z}
    for gamma in gammas:
        out[f"loss_{gamma}"], out[f"grad_{gamma}"] = pointwise(
            lambda t, gamma=gamma: classification.focal(logits=t, target=one, gamma=gamma, alpha=None), z
        )
    return out


def linear_alpha_bar(T: int = 1000) -> np.ndarray:
    """``alpha_bar_t`` of Ho et al.'s linear schedule (beta 1e-4 .. 0.02, Sec. 4)."""
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, T))


def cosine_alpha_bar(T: int = 1000, s: float = 0.008) -> np.ndarray:
    """``alpha_bar_t`` of Nichol & Dhariwal's cosine schedule (arXiv:2102.09672, Eq. 17; betas clipped at 0.999)."""
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], 0.999)
    return np.cumprod(1.0 - betas)


def diffusion_weight_curves(log_snr: np.ndarray, sigma_data: float = 0.5) -> dict[str, np.ndarray]:
    """The weight each diffusion loss puts on the squared ``x0`` error, against ``log SNR``.

    For a fixed ``x_t``: ``||eps - eps_hat||^2 = SNR ||x0 - x0_hat||^2`` and
    ``||v - v_hat||^2 = (1 + SNR) ||x0 - x0_hat||^2``, so the three DDPM losses
    are one ``x0`` regression weighted by ``SNR`` (ddpm), ``1`` (ddpm-x0) and
    ``1 + SNR`` (ddpm-v). Flow matching, ``x_t = (1 - t) x0 + t eps``, has
    ``SNR = ((1 - t) / t)^2`` and ``x0_hat = x_t - t v_hat``, so
    ``||v - v_hat||^2 = ||x0 - x0_hat||^2 / t^2``: weight
    ``(1 + sqrt(SNR))^2``. EDM, ``x = x0 + sigma n``, has ``SNR = 1 / sigma^2``
    and weights the denoiser's error by ``lambda(sigma) = 1 / sigma_data^2 + 1 / sigma^2``:
    weight ``1 / sigma_data^2 + SNR`` (``1 + SNR``, ddpm-v's, at sigma_data = 1).
    These are weights per noisy sample; how often each noise level is drawn
    (uniform t, log-normal sigma) multiplies them in the expected loss.

    Parameters
    ----------
    log_snr : (n,) array
        Natural log of the signal-to-noise ratio (DDPM: ``alpha_bar / (1 - alpha_bar)``).
    sigma_data : float
        EDM's sigma_data (0.5: Karras et al.'s images).

    Returns
    -------
    dict of (n,) arrays
        ``log_snr``, ``ddpm``, ``ddpm-x0``, ``ddpm-v``, ``flow-matching``, ``edm``.

    References
    ----------
    Salimans & Ho 2022, arXiv:2202.00512, Sec. 4; Ho et al. 2020, arXiv:2006.11239, Eq. 14;
    Lipman et al. 2023, arXiv:2210.02747; Karras et al. 2022, arXiv:2206.00364, Table 1 (table number unchecked).
    """
    ls = np.asarray(log_snr, dtype=np.float64)
    snr = np.exp(ls)
    return {"log_snr": ls, "ddpm": snr, "ddpm-x0": np.ones_like(snr), "ddpm-v": 1.0 + snr,
            "flow-matching": (1.0 + np.exp(0.5 * ls)) ** 2, "edm": 1.0 / sigma_data**2 + snr}


def softmax_contrastive_curves(
    cos_pos: np.ndarray, temperatures=(0.01, 0.07, 0.1, 0.5, 1.0), batch: int = 64
) -> dict[str, np.ndarray]:
    """NT-Xent per anchor and its derivative w.r.t. the positive's cosine similarity, for several temperatures.

    A batch of ``N = batch`` images whose two views have cosine similarity
    ``s`` with each other and 0 with every other view (orthonormal directions
    in ``2N`` dimensions), fed to :func:`losslab.losses.contrastive.nt_xent_loss`;
    every anchor is alike, so the batch mean is the per-anchor loss, and
    autograd (float64, vectorised over the points) gives ``dL/ds``. Closed forms, with ``K = 2N - 2``
    negatives: ``L = log(1 + K exp(-s / tau))``,
    ``dL/ds = -(1 / tau) K exp(-s / tau) / (1 + K exp(-s / tau))``; at
    ``s = 0`` every logit is equal and ``L = log(2N - 1)`` for every ``tau``.
    The same curves describe ``info-nce`` with ``N - 1`` negatives and each
    direction of ``clip`` (``tau = 1 / logit_scale``).

    Parameters
    ----------
    cos_pos : (n,) array
        Cosine similarity ``s`` of the positive pair, strictly inside (-1, 1).
    temperatures : sequence of float
        ``tau > 0``.
    batch : int
        ``N >= 2`` images (``2N`` views).

    Returns
    -------
    dict
        ``cos``, ``negatives`` (a 0-d array, ``2N - 2``) and, per ``tau``,
        ``loss_{tau}`` and ``grad_{tau}`` (n,) arrays.

    Raises
    ------
    UserError
        If a similarity is not strictly inside (-1, 1) or ``batch < 2``.

    References
    ----------
    Chen et al. 2020, SimCLR, arXiv:2002.05709, Eq. 1 and Table 2.
    """
    s = np.asarray(cos_pos, dtype=np.float64)
    if not np.all((s > -1) & (s < 1)):
        raise UserError("positive similarities must lie strictly inside (-1, 1)")
    if batch < 2:
        raise UserError(f"batch must be at least 2, got {batch}")
    e = torch.eye(2 * batch, dtype=torch.float64)
    first, other = e[:batch], e[batch:]

    def loss(t: torch.Tensor, tau: float) -> torch.Tensor:
        z2 = t * first + torch.sqrt(1 - t * t) * other  # unit rows, cos(z1_i, z2_i) = t, 0 elsewhere
        return contrastive.nt_xent_loss(z1=first, z2=z2, temperature=tau)

    out: dict[str, np.ndarray] = {"cos": s, "negatives": np.array(2 * batch - 2)}
    for tau in temperatures:
        out[f"loss_{tau}"], out[f"grad_{tau}"] = vmapped(lambda t, tau=tau: loss(t, tau), s)
    return out


def margin_curves(distance: np.ndarray, margin: float = 1.0, alpha: float = 0.2, d_pos: float = 0.7
                  ) -> dict[str, np.ndarray]:
    """Pair and triplet losses of one sample against a distance on the unit sphere.

    Each curve comes from the real loss of :mod:`losslab.losses.contrastive`
    through autograd (float64, vectorised over the points), with two unit vectors at Euclidean distance
    ``D`` (cosine ``1 - D^2 / 2``):

    * ``contrastive_pos`` ``= D^2 / 2`` and ``contrastive_neg``
      ``= max(0, m - D)^2 / 2`` (:func:`contrastive_loss`, ``same = 1`` / ``0``);
    * ``triplet`` ``= max(0, d_pos^2 - D^2 + alpha)``: the negative at ``D``,
      the positive fixed at ``d_pos`` (:func:`triplet_loss`);
    * ``bce_pos`` ``= softplus(-cos)`` and ``bce_neg`` ``= softplus(cos)``
      (:func:`pairwise_bce_loss`, ``tau = 1``).

    Parameters
    ----------
    distance : (n,) array
        Euclidean distance ``D`` of unit vectors, strictly inside (0, 2).
    margin : float
        ``m`` of the contrastive loss.
    alpha : float
        Triplet margin on squared distances.
    d_pos : float
        Anchor-positive distance of the triplet, in [0, 2].

    Returns
    -------
    dict of (n,) arrays
        ``distance`` and, per curve above, ``{key}_loss`` and ``{key}_grad``
        (derivative w.r.t. ``D``).

    Raises
    ------
    UserError
        If a distance is not strictly inside (0, 2).

    References
    ----------
    Hadsell et al. 2006, CVPR, Eq. 4; Schroff et al. 2015, arXiv:1503.03832, Eq. 1.
    """
    d = np.asarray(distance, dtype=np.float64)
    if not np.all((d > 0) & (d < 2)):
        raise UserError("distances of unit vectors must lie strictly inside (0, 2)")
    e = torch.eye(3, dtype=torch.float64)
    anchor = e[:1]

    def at(t: torch.Tensor) -> torch.Tensor:
        c = 1 - t * t / 2  # the unit vector at distance t from the anchor, in the plane of e0, e1
        return (c * e[0] + torch.sqrt(1 - c * c) * e[1]).reshape(1, 3)

    c_pos = 1 - d_pos**2 / 2
    positive = (c_pos * e[0] + math.sqrt(max(0.0, 1 - c_pos**2)) * e[2]).reshape(1, 3)
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    fns = {
        "contrastive_pos": lambda t: contrastive.contrastive_loss(a=anchor, b=at(t), same=one, margin=margin),
        "contrastive_neg": lambda t: contrastive.contrastive_loss(a=anchor, b=at(t), same=zero, margin=margin),
        "triplet": lambda t: contrastive.triplet_loss(anchor=anchor, positive=positive, negative=at(t), margin=alpha),
        "bce_pos": lambda t: contrastive.pairwise_bce_loss(a=anchor, b=at(t), same=one, temperature=1.0),
        "bce_neg": lambda t: contrastive.pairwise_bce_loss(a=anchor, b=at(t), same=zero, temperature=1.0),
    }
    out: dict[str, np.ndarray] = {"distance": d}
    for key, fn in fns.items():
        out[f"{key}_loss"], out[f"{key}_grad"] = vmapped(fn, d)
    return out

