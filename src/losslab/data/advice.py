"""Which losses to try first, by the data profile: a small table with its sources.

Each row of :data:`ADVICE` is a condition on a profile (:func:`losslab.data.profile.profile`),
the losses it suggests (names of one family's registry), the reason, and where
the reason comes from: a paper (arXiv id and section, table or figure) or one of
losslab's own measurements (``docs/demo.md``). The table is short on purpose:
a row is added only with a source that states what the row says. Advice is a
starting point; ``losslab compare`` on the suggested losses checks it.
"""

from __future__ import annotations

import shlex
import textwrap
from dataclasses import dataclass
from typing import Callable

__all__ = ["ADVICE", "AdviceRow", "advise", "compare_commands", "format_advice"]


@dataclass(frozen=True)
class AdviceRow:
    """One row: when it applies, what to try, why, and the sources of the why.

    Attributes
    ----------
    when : str
        The condition in words (the same as ``test``).
    test : callable
        ``test(profile) -> bool``.
    family : str
        The registry the losses belong to (``"gan"``, ``"diffusion"``).
    losses : tuple of str
        Suggested losses, the first to try first.
    reason : str
        One or two sentences.
    sources : tuple of str
        Paper (authors, year, arXiv id, section/table/figure) or losslab measurement.
    """

    when: str
    test: Callable[[dict], bool]
    family: str
    losses: tuple[str, ...]
    reason: str
    sources: tuple[str, ...]


MANY_MODES = 4  # "several modes": the ring has 8, the grid 25
SEPARATED = 6.0  # min distance between mode centres, in within-mode standard deviations


def _separated_modes(p: dict) -> bool:
    return (p["kind"] == "vector" and p["num_modes"] is not None and p["num_modes"] >= MANY_MODES
            and p["separation_min"] is not None and p["separation_min"] >= SEPARATED)


ADVICE: tuple[AdviceRow, ...] = (
    AdviceRow(
        when=f"vectors with {MANY_MODES} or more modes, each at least {SEPARATED:g} within-mode std from the next",
        test=_separated_modes,
        family="gan",
        losses=("r3gan", "r1", "wgan-gp"),
        reason="Well-separated modes are where GANs drop modes: the standard GAN covered few of the 8 ring and "
               "25 grid modes in the VEEGAN and PacGAN benchmarks. On losslab's ring8 race (two disjoint seed "
               "sets, 8 seeds each, 2,000 updates), r3gan (relativistic loss with R1 and R2) was the last loss "
               "left on one and equivalent to r1 (non-saturating loss with R1) within the noise floor on the "
               "other, both at W1 0.22-0.28 with 7-8/8 modes on almost every seed; of the study's nine losses "
               "wgan-gp and minimax came next; began, ebgan and dragan were shown worse after 5 seeds on both.",
        sources=(
            "Srivastava et al. 2017, VEEGAN, arXiv:1705.07761, Sec. 5.1, Table 1",
            "Lin et al. 2018, PacGAN, arXiv:1712.04086, Sec. 5",
            "Mescheder et al. 2018, arXiv:1801.04406, Sec. 4.1",
            "Huang et al. 2024, R3GAN, arXiv:2501.05441, Sec. 2",
            "Gulrajani et al. 2017, WGAN-GP, arXiv:1704.00028, Sec. 3, Figure 1",
            "docs/demo.md, ring8, a race of 12 losses, 2 x 8 seeds (2,000 generator updates)",
        ),
    ),
    AdviceRow(
        when="images",
        test=lambda p: p["kind"] == "image",
        family="gan",
        losses=("ns", "wgan-gp", "lsgan"),
        reason="In a large-scale study on MNIST, Fashion-MNIST, CIFAR-10 and CelebA, most GAN losses reached "
               "similar scores given enough hyperparameter search and restarts: start from the non-saturating "
               "baseline and compare a few losses under the same budget rather than trust a published ranking.",
        sources=("Lucic et al. 2018, Are GANs Created Equal?, arXiv:1711.10337, abstract",),
    ),
    AdviceRow(
        when="images",
        test=lambda p: p["kind"] == "image",
        family="diffusion",
        losses=("ddpm", "ddpm-x0"),
        reason="In the DDPM ablation on CIFAR-10, predicting the noise eps with the simple unweighted loss gave "
               "the best FID of the parametrisations and objectives tried; ddpm-x0 (predict the clean image) is "
               "the contrast to check on your data.",
        sources=("Ho et al. 2020, DDPM, arXiv:2006.11239, Sec. 4.2, Table 2",),
    ),
)


def advise(profile: dict, table: tuple[AdviceRow, ...] = ADVICE) -> list[dict]:
    """The rows of ``table`` whose condition holds for ``profile``, JSON-ready, in table order.

    Parameters
    ----------
    profile : dict
        A profile from :func:`losslab.data.profile.profile` (``advice`` not needed).
    table : tuple of AdviceRow
        Default :data:`ADVICE`.

    Returns
    -------
    list of dict
        ``{"when", "family", "losses", "reason", "sources"}`` per matching row
        (``losses`` and ``sources`` as lists); empty when no row matches.
    """
    return [
        {"when": r.when, "family": r.family, "losses": list(r.losses), "reason": r.reason, "sources": list(r.sources)}
        for r in table
        if r.test(profile)
    ]


def compare_commands(data: str, advice: list[dict]) -> list[str]:
    """One ``losslab compare`` line per family in ``advice``, the suggested losses in order, no repeats.

    Without advice, one line comparing every GAN loss.
    """
    d = shlex.quote(str(data))
    if not advice:
        return [f"losslab compare --data {d}"]
    by_family: dict[str, list[str]] = {}
    for row in advice:
        names = by_family.setdefault(row["family"], [])
        names.extend(n for n in row["losses"] if n not in names)
    lines = []
    for family, names in by_family.items():
        fam = "" if family == "gan" else f" --family {family}"
        lines.append(f"losslab compare --data {d}{fam} --losses {','.join(names)}")
    return lines


def format_advice(data: str, advice: list[dict]) -> str:
    """The advice as text: each row's losses, reason and sources, then the compare line(s) to check it."""
    lines = ["", "What to try first"]
    if not advice:
        lines.append("  no row of the advice table (losslab.data.advice.ADVICE) matches this profile; "
                     "compare every loss:")
    for row in advice:
        lines.append(f"  {row['family']}: {', '.join(row['losses'])}  (when: {row['when']})")
        lines.extend(textwrap.wrap(row["reason"], width=100, initial_indent="    ", subsequent_indent="    "))
        for s in row["sources"]:
            lines.append(f"    source: {s}")
    lines.append("Check it:")
    lines.extend(f"  {c}" for c in compare_commands(data, advice))
    return "\n".join(lines) + "\n"
