"""What each loss is, where it comes from, and why: the one source of ``losslab explain`` and ``docs/``.

:data:`EXPLANATIONS` maps every loss name of every registry (GAN, diffusion,
classification, contrastive, EBM) to an :class:`Explanation`: the formula (plain text for
the terminal, LaTeX for the docs), a short derivation, the models that use it,
strengths, weaknesses, failure modes, the source, a command that shows it at
work on data, and its figure (a :class:`LossFigure`). :func:`explain_text`
renders one for the terminal, :func:`explain_markdown` renders one docs page per
family (``scripts/make_docs.py`` writes them to ``docs/<family>.md``), and
:func:`plot_loss` draws the figure of ``losslab explain NAME --plot FILE.png``.

The figures are computed, not drawn from memory: every curve comes from the
real loss functions of :mod:`losslab.losses` through autograd, or from a
closed form that the tests check against autograd. The public ``*_curves``
functions return the numbers behind each figure.

Modules (each imports only the ones above it):

* :mod:`~losslab.explain.curves`: the numbers (loss values and gradients against the input);
* :mod:`~losslab.explain.figures`: the matplotlib figures, :class:`LossFigure`;
* :mod:`~losslab.explain.explanation`: the :class:`Explanation` record;
* ``texts_gan``, ``texts_diffusion``, ``texts_classification``, ``texts_contrastive``:
  the explanations of each family, as data; :mod:`~losslab.explain.texts` joins them;
* :mod:`~losslab.explain.render`: terminal text, Markdown, and the PNG of a loss.
"""

from __future__ import annotations

from losslab.explain.curves import (
    binary_stability_curves,
    critic_1d_curves,
    diffusion_weight_curves,
    focal_curves,
    js_gaussians,
    margin_curves,
    optimal_discriminator_logit,
    saturation_curves,
    softmax_contrastive_curves,
    softmax_curves,
)
from losslab.explain.explanation import Explanation
from losslab.explain.figures import LossFigure
from losslab.explain.render import explain_cli, explain_markdown, explain_text, figure_file, plot_loss
from losslab.explain.texts import EXPLANATIONS, FAMILY_PAGES, families

__all__ = [
    "EXPLANATIONS",
    "Explanation",
    "FAMILY_PAGES",
    "LossFigure",
    "binary_stability_curves",
    "critic_1d_curves",
    "diffusion_weight_curves",
    "explain_cli",
    "explain_markdown",
    "explain_text",
    "families",
    "figure_file",
    "focal_curves",
    "js_gaussians",
    "margin_curves",
    "optimal_discriminator_logit",
    "plot_loss",
    "saturation_curves",
    "softmax_contrastive_curves",
    "softmax_curves",
]
