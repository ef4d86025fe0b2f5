"""Each loss's own diagnostics panels and caption: its terms, in its own words.

The family (:mod:`losslab.report.families`) gives the panels every loss of
it shares; :func:`loss_panels` adapts them to one loss from its declaration
(:class:`losslab.losses.GANLoss`) and its effective hyperparameters:

* energy critics (EBGAN, BEGAN): the critic panel shows mean energies
  E(x), E(G(z)) (reconstruction errors, low for real data), and EBGAN's
  margin m as a horizontal line; EBGAN adds the pulling-away term and the
  share of fakes at or above the margin (Zhao et al. 2017, Eqs. 1-2, 6);
  BEGAN adds k_t and the convergence measure M_global (Berthelot et al. 2017,
  Sec. 3.4-3.5);
* weight clipping (WGAN): the share of critic weights at the bound +-c;
* gradient penalties (WGAN-GP, DRAGAN): the penalty term.

Keys missing from a run's ``metrics.jsonl`` (an older run) leave their panel
out rather than drawing an empty one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from losslab.losses import GAN_LOSSES
from losslab.losses.variants import base_name
from losslab.report.families import FamilyWords, Panel

__all__ = ["diagnostics_caption", "loss_panels"]


def _has(rows_all: Sequence[Sequence[dict]], key: str) -> bool:
    return any(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
               for rows in rows_all for r in rows)


def _letter(i: int) -> str:
    return f"({chr(ord('a') + i)})"


def loss_panels(loss: str, fam: FamilyWords, rows_all: Sequence[Sequence[dict]],
                hparams: dict[str, Any] | None = None) -> list[Panel]:
    """The diagnostics panels of one loss: the family's, relabelled and extended with the loss's own terms.

    Parameters
    ----------
    loss : str
        Loss name.
    fam : FamilyWords
        The loss's family (:func:`losslab.report.families.describe`).
    rows_all : list of list of dict
        ``metrics.jsonl`` rows of every seed.
    hparams : dict, optional
        The loss's effective hyperparameters (``margin``, ``clip``).
    """
    panels = list(fam.panels(rows_all))
    spec = GAN_LOSSES.get(base_name(loss)) if fam.name == "gan" else None
    if spec is None:
        return panels
    hp = hparams or {}
    out = []
    for p in panels:
        keys = [k for k, _, _ in p.lines]
        if spec.output == "energy" and any(k in ("d_real", "d_fake", "p_real", "p_fake") for k in keys):
            margin = hp.get("margin", spec.defaults.get("margin"))
            p = replace(p, title="mean energy (reconstruction error; low = judged real)",
                        lines=(("d_real", "E(x), real", "-"), ("d_fake", "E(G(z)), fakes", "--")),
                        hlines=((float(margin), f"margin m = {margin:g}"),) if margin is not None else ())
        elif spec.output == "energy" and keys == ["g_loss", "d_loss"]:
            p = replace(p, lines=(("g_loss", "G loss", "-"), ("d_loss", "critic loss", "--")))
        out.append(p)
    extra: list[tuple[str, str, str]] = [
        ("pt", "pulling-away term (mean squared cosine of codes)", "linear"),
        ("above_margin", "share of fakes with energy >= margin", "linear"),
        ("k", "k_t (weight of fakes in the critic loss)", "linear"),
        ("m_global", "M_global (convergence measure)", "log"),
        ("clip_share", f"share of critic weights at the clip bound +-{hp.get('clip', 'c')}", "linear"),
        ("penalty", "gradient penalty", "log"),
    ]
    for key, title, scale in extra:
        if _has(rows_all, key):
            out.append(Panel(title, ((key, title, "-"),), scale))
    return [replace(p, title=f"{_letter(i)} {_strip_letter(p.title)}") for i, p in enumerate(out)]


def _strip_letter(title: str) -> str:
    return title[4:] if len(title) > 4 and title[0] == "(" and title[2] == ")" else title


def diagnostics_caption(loss: str, fam: FamilyWords, panels: Sequence[Panel]) -> str:
    """The caption of one loss's diagnostics figure, naming its panels in its own words."""
    spec = GAN_LOSSES.get(base_name(loss)) if fam.name == "gan" else None
    if spec is None or spec.output != "energy":
        base = fam.diagnostics_caption.format(loss=loss)
        named = ""
        if spec is not None and len(panels) > 4:
            named = " Further panels: " + "; ".join(p.title for p in panels[4:]) + "."
        return base + named + " Thick lines are smoothed (EMA), the raw values faint behind them."
    parts = [f"Training curves of {loss}, one colour per seed: " + "; ".join(p.title for p in panels) + "."]
    parts.append("The critic is an autoencoder whose energy is its reconstruction error: low for what it "
                 "judges real. A gap E(G(z)) > E(x) means the critic tells fakes apart.")
    if "margin" in (spec.defaults or {}):
        parts.append("Fakes above the margin line (dashed) no longer contribute to the critic loss "
                     "max(0, m - E(G(z))): if they stay there for most of training the margin is too small "
                     f"(`losslab explain {base_name(loss)}`).")
    parts.append("Thick lines are smoothed (EMA), the raw values faint behind them; x marks where a run diverged.")
    return " ".join(parts)
