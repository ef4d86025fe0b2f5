"""Turning an explanation into output: terminal text, Markdown docs pages, and the PNG of its figure.

:func:`explain_text` and :func:`explain_cli` are what ``losslab explain NAME
[--plot FILE.png]`` prints, :func:`explain_markdown` is one ``docs/<family>.md``
page (``scripts/make_docs.py``), and :func:`plot_loss` writes the figure an
explanation names.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from losslab.errors import UserError, unknown_choice
from losslab.explain import dirac
from losslab.explain.figures_dirac import draw_dirac, figure_png, stack_png
from losslab.explain.texts import APPENDICES, EXPLANATIONS, FAMILY_PAGES, families, get
from losslab.explain.texts_gan import dirac_summary
from losslab.io import atomic_write_bytes


def figure_file(name: str) -> str:
    """File name of the figure of loss ``name`` in ``docs/img/`` (losses can share one).

    Raises
    ------
    UserError
        If ``name`` is unknown.
    """
    return get(name).figure.file_name


def plot_loss(name: str, path: str | Path) -> Path:
    """Draw the figure of ``losslab explain NAME --plot PATH`` and write it atomically.

    For a GAN loss whose critic is a discriminator, the figure is followed by
    its Dirac-GAN panels (:func:`losslab.explain.figures_dirac.draw_dirac`: the
    exact gradient field in (theta, psi), an alternating-gradient-descent
    trajectory and its distance to the equilibrium). Each figure plots a loss and its gradient against its input, computed from
    the real loss functions (autograd) or exact closed forms: generator losses
    over ``D(G(z))`` (minimax, ns, dragan), the exact 1-D critic experiment
    (wgan, wgan-gp), per-sample terms (lsgan, hinge, ebgan, began), float32
    stability (bce, bce-with-logits), label smoothing (cce, sparse-cce), the
    focal modulation (focal), the diffusion weightings (ddpm*, flow-matching,
    edm), and the contrastive losses against the positive's similarity or a
    distance on the unit sphere (pairwise-bce, contrastive, triplet, nt-xent,
    info-nce, supcon, clip; siglip, barlow-twins and vicreg show the same figure).

    Parameters
    ----------
    name : str
        A key of :data:`EXPLANATIONS`.
    path : str or Path
        Output file; must end in ``.png``. Parent directories are created.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    UserError
        If ``name`` is unknown or ``path`` does not end in ``.png``.
    """
    e = get(name)
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"--plot needs a .png file name, got {str(path)!r}")
    if e.family != "gan" or not dirac.applies(name):
        return e.figure.save(path)
    atomic_write_bytes(path, stack_png(figure_png(e.figure.draw()), figure_png(draw_dirac(name))))
    return path


_SECTIONS = (
    ("used_by", "Used by"),
    ("strengths", "Strengths"),
    ("weaknesses", "Weaknesses"),
    ("failure_modes", "Failure modes"),
)


def _plain(text: str) -> str:
    """Inline math without its Markdown backticks (terminal)."""
    return text.replace("`", "")


def _wrap(text: str, indent: str = "    ", width: int = 92) -> str:
    return "\n\n".join(
        textwrap.fill(_plain(p), width=width, initial_indent=indent, subsequent_indent=indent)
        for p in text.split("\n\n")
    )


def explain_text(name: str) -> str:
    """Terminal text of ``losslab explain NAME``.

    Parameters
    ----------
    name : str
        A loss name of any family (a key of :data:`EXPLANATIONS`).

    Returns
    -------
    str
        Formula, derivation, users, strengths, weaknesses, failure modes,
        source and the commands that show the loss at work.

    Raises
    ------
    UserError
        If ``name`` is unknown; the message lists every explained loss.
    """
    e = get(name)
    lines = [f"{e.name}  ({FAMILY_PAGES[e.family][0]})", f"source: {e.source}", "", "FORMULA"]
    lines += ["    " + line for line in e.formula_text.splitlines()]
    lines += ["", "DERIVATION", _wrap(e.derivation)]
    for attr, title in _SECTIONS:
        lines += ["", title.upper()]
        for item in getattr(e, attr):
            lines.append(textwrap.fill(_plain(item), width=92, initial_indent="  - ", subsequent_indent="    "))
    if e.family == "gan":
        lines += ["", "DIRAC-GAN (Mescheder et al. 2018, arXiv:1801.04406, Sec. 2)", _wrap(dirac_summary(name))]
    lines += ["", "SEE IT AT WORK", "    " + e.compare_command]
    lines += [f"    losslab explain {e.name} --plot {e.name}.png", _wrap(e.figure.caption, "      ")]
    return "\n".join(lines) + "\n"


def explain_cli(name: str, plot: str | None) -> str:
    """What ``losslab explain NAME [--plot FILE.png]`` prints; writes the plot when asked.

    Parameters
    ----------
    name : str
        A loss name.
    plot : str or None
        Where to write the figure (a ``.png`` path), or None.

    Returns
    -------
    str
        :func:`explain_text`, plus the path of the figure when one was written.

    Raises
    ------
    UserError
        If ``name`` is unknown or ``plot`` does not end in ``.png``.
    """
    text = explain_text(name)
    if plot is not None:
        text += f"\nplot: {plot_loss(name, plot)}\n"
        if get(name).family == "gan" and dirac.applies(name):
            sim = dirac.simulate(name)
            a, b = sim["distance"]
            text += (f"Dirac-GAN trajectory: {sim['verdict']} (alternating gradient descent from (1, 1), "
                     f"{len(sim['theta']) - 1} generator updates, steps h_g = {sim['h_g']:.3g}, h_d = {sim['h_d']:.3g}, "
                     f"n_critic = {sim['n_critic']}: distance to the equilibrium {a:.3g} -> {b:.3g})\n")
    return text


def explain_markdown(family: str) -> str:
    """One docs page (Markdown with LaTeX) for every loss of ``family``.

    ``scripts/make_docs.py`` writes it to ``docs/<family>.md``; figures are
    referenced as ``img/<figure_file(name)>``.

    Parameters
    ----------
    family : str
        "gan" | "diffusion" | "classification" | "contrastive".

    Returns
    -------
    str
        The page.

    Raises
    ------
    UserError
        If no loss belongs to ``family``.
    """
    if family not in families():
        raise unknown_choice("family", family, families())
    title, intro = FAMILY_PAGES[family]
    names = [n for n, e in EXPLANATIONS.items() if e.family == family]
    out = [
        f"<!-- Generated by scripts/make_docs.py from src/losslab/explain/texts_{family}.py: edit that file, "
        "not this one. -->",
        "",
        f"# {title}",
        "",
        intro,
        "",
        "The same text is printed by `losslab explain NAME`; `losslab explain NAME --plot FILE.png` draws the figure.",
        "",
        "| loss | source |",
        "|---|---|",
    ]
    out += [f"| [`{n}`](#{_anchor(n)}) | {EXPLANATIONS[n].source} |" for n in names]
    shown: set[str] = set()
    for n in names:
        e = EXPLANATIONS[n]
        out += ["", f"## {n}", "", "```math", _latex_lines(e.formula_latex), "```", "", "**Derivation.** " + e.derivation]
        for attr, heading in _SECTIONS:
            out += ["", f"**{heading}.**", ""] + [f"- {item}" for item in getattr(e, attr)]
        out += ["", f"**Source.** {e.source}", "", "**See it at work.**", "", "```bash", e.compare_command,
                f"losslab explain {n} --plot {n}.png", "```"]
        fig = e.figure
        if fig.key in shown:
            out += ["", f"Figure: `{fig.file_name}` (shown above). {fig.caption}"]
        else:
            shown.add(fig.key)
            out += ["", f"![{fig.key}](img/{fig.file_name})", "", f"*{fig.caption}*"]
    if family in APPENDICES:
        out += ["", APPENDICES[family]()]
    return "\n".join(out) + "\n"


def _latex_lines(latex: str) -> str:
    """One display line per equation of an ``aligned`` block (readable Markdown source)."""
    latex = latex.replace(r"\begin{aligned}", "\\begin{aligned}\n").replace(r"\end{aligned}", "\n\\end{aligned}")
    return latex.replace(" \\\\", " \\\\\n")


def _anchor(name: str) -> str:
    """GitHub's heading anchor for ``## name``."""
    return re.sub(r"[^a-z0-9 _-]", "", name.lower()).replace(" ", "-")
