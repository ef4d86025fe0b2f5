"""Energy-based model (EBM) losses, and the registry of the EBM "losses" losslab compares.

An EBM is one network, the energy ``E_theta(x)`` (one scalar per sample), that
defines the Boltzmann density ``p_theta(x) = exp(-E_theta(x)) / Z(theta)``.
Two ways to fit it without ever computing ``Z``:

* ``ebm-cd``: maximum likelihood with negatives drawn by short-run Langevin
  dynamics from a replay buffer (contrastive divergence in its persistent
  form). ``grad_theta (-log p(x+)) = grad E(x+) - E_p[grad E(x-)]``, so the
  surrogate ``E(x+).mean() - E(x-).mean()`` with detached negatives ``x-`` has
  the maximum-likelihood gradient; Du & Mordatch add the energy-magnitude
  regulariser ``alpha (E(x+)^2 + E(x-)^2)`` (arXiv:1903.08689, Sec. 3, on
  regularisation; Nijkamp et al. 2019, arXiv:1904.09770, for the short-run chains).
* ``ebm-dsm``: denoising score matching (Vincent 2011, Neural Computation
  23(7):1661-1674, the denoising score matching objective J_DSM): with ``x~ = x + sigma eps``
  the model score ``s(x~) = -grad_x E(x~)`` regresses the score of the
  Gaussian corruption, ``-(x~ - x) / sigma^2 = -eps / sigma``. Scaled by
  ``sigma^2`` (Song & Ermon 2019, arXiv:1907.05600, Eqs. 5-6 with the weighting
  ``lambda(sigma) = sigma^2``) it is ``0.5 ||sigma s(x~) + eps||^2``: DDPM's eps
  objective with ``eps_theta = -sigma s`` at one noise level.

The pure functions take energies / scores, never networks; the training step
(:mod:`losslab.train.ebm`) draws the samples and calls them by keyword.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from losslab.errors import unknown_choice
from losslab.losses.variants import base_name

__all__ = ["EBM_LOSSES", "EBMLoss", "cd_loss", "dsm_loss", "get_ebm_loss"]


def cd_loss(*, e_pos: Tensor, e_neg: Tensor, alpha: float) -> Tensor:
    """Regularised contrastive-divergence loss ``E(x+) - E(x-) + alpha (E(x+)^2 + E(x-)^2)``.

    ``mean(e_pos) - mean(e_neg) + alpha * mean(e_pos^2 + e_neg^2)``. With
    ``e_neg`` computed on negatives ``x-`` that carry no gradient (detached
    Langevin samples), its gradient in theta is the maximum-likelihood gradient
    ``E_data[grad E] - E_model[grad E]`` (estimated with the model's short-run
    samples) plus the regulariser's ``2 alpha (E grad E)`` terms.

    Args:
        e_pos: ``(N,)`` energies of data samples ``x+`` (low energy = likely).
        e_neg: ``(M,)`` energies of the negatives ``x-`` (model samples).
        alpha: weight >= 0 of the energy-magnitude regulariser (0 switches it off).

    Returns:
        Scalar tensor.

    Source: Du & Mordatch 2019, arXiv:1903.08689, Sec. 2-3 (the maximum-likelihood
    gradient and the regulariser ``alpha (E(x+)^2 + E(x-)^2)``); Hinton 2002,
    Neural Computation 14(8) (contrastive divergence).
    """
    return e_pos.mean() - e_neg.mean() + alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())


def dsm_loss(*, score: Tensor, x_noisy: Tensor, x_clean: Tensor, sigma: float, sigma2_weight: bool = True) -> Tensor:
    """Denoising score matching ``0.5 E || s(x~) + (x~ - x) / sigma^2 ||^2`` (times ``sigma^2`` by default).

    Per sample the squared norm is summed over all elements of ``x`` (Vincent's
    ``||.||^2``), then averaged over the batch. With ``sigma2_weight`` the loss
    is multiplied by ``sigma^2`` (Song & Ermon's ``lambda(sigma) = sigma^2``),
    which makes it ``0.5 E || sigma s(x~) + eps ||^2`` with ``eps = (x~ - x) / sigma``:
    unit-scale targets whatever sigma is, and DDPM's eps loss for
    ``eps_theta = -sigma s``. Its minimiser is the score of the noisy data
    density ``q_sigma(x~) = E_x N(x~; x, sigma^2 I)``: ``s* = grad log q_sigma``.

    Args:
        score: ``(N, *shape)`` the model score ``s(x~) = -grad_x E(x~)`` at the noisy samples
            (built with ``create_graph=True`` to train through it).
        x_noisy: ``(N, *shape)`` ``x~ = x + sigma eps``.
        x_clean: ``(N, *shape)`` the data ``x``.
        sigma: noise standard deviation > 0 (units of x).
        sigma2_weight: multiply by ``sigma^2``.

    Returns:
        Scalar tensor.

    Source: Vincent 2011, "A Connection Between Score Matching and Denoising
    Autoencoders", Neural Computation 23(7):1661-1674 (the objective J_DSM);
    Song & Ermon 2019, arXiv:1907.05600, Eqs. 5-6 (the sigma^2 weighting).
    """
    n = score.shape[0]
    target = -(x_noisy - x_clean) / sigma ** 2  # grad log N(x~; x, sigma^2 I)
    per_sample = 0.5 * (score - target).reshape(n, -1).pow(2).sum(dim=1)
    loss = per_sample.mean()
    return loss * sigma ** 2 if sigma2_weight else loss


@dataclass(frozen=True)
class EBMLoss:
    """One EBM training objective as a comparable "loss" of losslab.

    Attributes
    ----------
    name : str
        CLI name (the key in :data:`EBM_LOSSES`).
    objective : {"cd", "dsm"}
        Contrastive divergence with Langevin negatives, or denoising score matching.
    defaults : dict
        ``optimizer``, ``lr``, ``betas``, ``grad_clip`` (max global gradient
        norm, 0 = none), ``langevin_steps`` (K per training update, cd),
        ``step_size`` (s of the ULA step, in standardised units for vectors,
        pixel units in [-1, 1] for images), ``noise_scale``, ``sample_steps``
        (Langevin steps per sample for evaluation, from fresh uniform noise),
        ``alpha`` (cd), ``buffer_size``, ``reinit`` (cd), ``sigma`` (dsm).
    summary : str
        One line for ``losslab list``.
    source : str
        "Author et al. YEAR, arXiv:XXXX.XXXXX, Sec. N".
    search_space : dict
        Ranges ``--search`` tunes (see :class:`losslab.losses.GANLoss`): the
        learning rate, log-uniform over the same range as every other family's.
    image_defaults : dict
        Replacements of ``defaults`` for image data (keys of ``defaults`` only),
        applied by :func:`losslab.train.ebm.hparams` before the config's
        ``ebm.*`` / ``loss.*`` overrides: the Langevin step of images in [-1, 1]
        (784 and more coordinates) is not the step of standardised 2-D vectors.
    """

    name: str
    objective: str
    defaults: dict = field(hash=False)
    summary: str
    source: str
    search_space: dict = field(default_factory=lambda: {"lr": ("log", 1e-5, 1e-2)}, hash=False)
    image_defaults: dict = field(default_factory=dict, hash=False)


# Shared settings. Adam with betas (0.9, 0.999), a gradient-norm clip of 1 and
# ULA with noise_scale 1 (the chain targets exp(-E) itself) are our choices for
# small CPU budgets. Evaluation chains start from fresh uniform noise and run
# sample_steps = 200 steps, more than a training chain, so no evaluated sample
# is a buffer survivor refined over many updates.
_COMMON = {
    "optimizer": "adam",
    "betas": (0.9, 0.999),
    "grad_clip": 1.0,
    "step_size": 1e-3,
    "noise_scale": 1.0,
    "sample_steps": 200,
}

EBM_LOSSES: dict[str, EBMLoss] = {
    "ebm-cd": EBMLoss(
        name="ebm-cd",
        objective="cd",
        # Du & Mordatch Sec. 3: a replay buffer reused with probability 95%, 5% fresh uniform
        # noise. Its size 10,000, 60 Langevin steps per update and lr 5e-4 (the toy preset
        # scales it 5x) are our choices for CPU budgets; so is alpha = 0.1: with noise_scale 1
        # the regulariser caps the optimal energy gap near 1 / alpha, and alpha = 1 kept the
        # Boltzmann density too flat to concentrate on ring8's modes (measured: W1 0.72 vs
        # 0.64 after 200-300 updates).
        defaults={**_COMMON, "lr": 5e-4, "alpha": 0.1, "langevin_steps": 60, "buffer_size": 10_000,
                  "reinit": 0.05},
        # Images in [-1, 1]: a large gradient step and a small noise, as Du & Mordatch (step 10,
        # noise std 0.005 on [0, 1] images) and Nijkamp et al. (short-run, noise std ~0.01) use:
        # step_size 100 with noise_scale 0.001 is a gradient step of 50 grad_x E and a noise std of
        # 0.01 per pixel. Tuned on MNIST (docs/ebm.md): 150 updates of batch 32 gave digit-like
        # samples (FID 0.35, 8 of 10 classes), where step 10 gave strokes (FID 0.39) and the vector
        # step 1e-3 gave noise. 20 steps per update (not 60) and 60 per sample keep a CPU run short.
        image_defaults={"step_size": 100.0, "noise_scale": 0.001, "langevin_steps": 20, "sample_steps": 60},
        summary="energy-based model, maximum likelihood with short-run Langevin negatives and a replay buffer",
        source="Du & Mordatch 2019, arXiv:1903.08689, Sec. 3; Nijkamp et al. 2019, arXiv:1904.09770",
    ),
    "ebm-dsm": EBMLoss(
        name="ebm-dsm",
        objective="dsm",
        # One noise level sigma = 0.1 (standardised units / pixels in [-1, 1]); sampled by
        # the same Langevin chain from uniform noise.
        defaults={**_COMMON, "lr": 2e-4, "sigma": 0.1},
        # Images: one larger noise level, so the learned score reaches the uniform noise the
        # sampler starts from, and a cold chain (noise_scale 0.1 samples exp(-E / 0.01)); the
        # step 0.05 moves a chain about s / (2 sigma^2) = 10% of the way to the denoised image per
        # step. Tuned on MNIST (docs/ebm.md): sigma 0.5 gave stroke textures, FID 0.54, 6 of 10
        # classes after 200 updates; sigma 0.1 / 0.3 at noise_scale 1 gave noise (FID 1.18).
        image_defaults={"sigma": 0.5, "step_size": 0.05, "noise_scale": 0.1, "lr": 1e-3, "sample_steps": 100},
        summary="energy-based model trained by denoising score matching, sampled by Langevin dynamics",
        source="Vincent 2011, Neural Computation 23(7) (J_DSM); Song & Ermon 2019, arXiv:1907.05600, Eqs. 5-6",
    ),
}


def get_ebm_loss(name: str) -> EBMLoss:
    """The :class:`EBMLoss` registered under ``name``.

    Raises
    ------
    UserError
        If ``name`` is unknown; the message lists the valid names.
    """
    try:
        return EBM_LOSSES[base_name(name)]
    except (KeyError, TypeError):
        raise unknown_choice("loss", name, EBM_LOSSES) from None
