"""The record of one loss's explanation: :class:`Explanation`."""

from __future__ import annotations

from dataclasses import dataclass

from losslab.explain.figures import LossFigure


@dataclass(frozen=True)
class Explanation:
    """Everything ``losslab explain NAME`` says about one loss.

    Attributes
    ----------
    name : str
        The loss's CLI name (the key in :data:`EXPLANATIONS` and in its registry).
    family : str
        "gan" | "diffusion" | "classification" | "contrastive" (one docs page each).
    formula_text : str
        The formula in plain text, one equation per line (terminal).
    formula_latex : str
        The same formula in LaTeX (docs; one display block).
    derivation : str
        Where the formula comes from, paragraphs separated by blank lines.
    used_by, strengths, weaknesses, failure_modes : tuple of str
        Bullet points.
    source : str
        Papers with arXiv ids (or books with years) and equation numbers.
    compare_command : str
        A command line that shows the loss at work on data.
    figure : LossFigure
        The figure of ``losslab explain NAME --plot FILE.png`` and of the docs
        (its drawing function and caption); several losses can share one.
    """

    name: str
    family: str
    formula_text: str
    formula_latex: str
    derivation: str
    used_by: tuple[str, ...]
    strengths: tuple[str, ...]
    weaknesses: tuple[str, ...]
    failure_modes: tuple[str, ...]
    source: str
    compare_command: str
    figure: LossFigure
