"""Every explanation in one place, in docs-page order: :data:`EXPLANATIONS` and :data:`FAMILY_PAGES`.

The prose itself lives in one module per family (``texts_gan``, ``texts_diffusion``, ``texts_ebm``,
``texts_classification``, ``texts_contrastive``), each with its page's title and
introduction (``PAGE``) and its losses (``EXPLANATIONS``). This module joins
them and looks names up.
"""

from __future__ import annotations

import importlib

from losslab.errors import unknown_choice
from losslab.explain import texts_classification
from losslab.explain.explanation import Explanation
from losslab.losses.families import FAMILY_SPECS

# family -> its module (each FamilySpec names its own), in the order of the docs pages: the trainable
# families in registry order, then the classification losses (building blocks that no family trains).
_FAMILY_MODULES = {**{name: importlib.import_module(spec.explain) for name, spec in FAMILY_SPECS.items()},
                   "classification": texts_classification}

# family -> (page title, page introduction)
FAMILY_PAGES: dict[str, tuple[str, str]] = {family: module.PAGE for family, module in _FAMILY_MODULES.items()}

# loss name -> explanation, for every loss of every registry (GAN, diffusion, classification, contrastive)
EXPLANATIONS: dict[str, Explanation] = {
    name: e for module in _FAMILY_MODULES.values() for name, e in module.EXPLANATIONS.items()
}


# family -> its page's closing section (a function returning Markdown), where it has one
APPENDICES = {family: module.appendix for family, module in _FAMILY_MODULES.items() if hasattr(module, "appendix")}

# figures a page shows besides its explanations' own (the GAN page's Dirac-GAN comparison)
EXTRA_FIGURES = tuple(f for module in _FAMILY_MODULES.values() for f in getattr(module, "FIGURES", ()))


def families() -> list[str]:
    """Families that have explanations, in page order."""
    return [f for f in FAMILY_PAGES if any(e.family == f for e in EXPLANATIONS.values())]


def get(name: str) -> Explanation:
    """The explanation of loss ``name``.

    Raises
    ------
    UserError
        If ``name`` is unknown; the message lists every explained loss.
    """
    try:
        return EXPLANATIONS[name]
    except (KeyError, TypeError):
        raise unknown_choice("loss", name, EXPLANATIONS) from None
