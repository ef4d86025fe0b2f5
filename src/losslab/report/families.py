"""Each model family's own words and figures for the verdict and the report.

A :class:`FamilyWords` says what a family's budget unit is called (generator,
denoiser or encoder updates), whether a second player is trained beside it
(the GAN critic), which training curves of ``metrics.jsonl`` its diagnostics
figure draws, and which notes it adds from measured numbers. The verdict and
the report look a family up by the name in ``compare.json`` /
``results.json`` with :func:`describe`; no GAN word reaches a diffusion or
contrastive table or figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from losslab.losses.families import FAMILY_SPECS
from losslab.report.contrastive import random_data_note

__all__ = ["FAMILIES", "FamilyWords", "Panel", "describe"]


@dataclass(frozen=True)
class Panel:
    """One panel of a diagnostics figure.

    ``lines`` are ``(metrics.jsonl key, legend label, linestyle)``. ``x`` is
    ``"step"`` (each key against the budget unit) or ``"bucket"`` (the keys
    are buckets, drawn against their index: the mean over the last quarter of
    the logged rows, one line per seed).
    """

    title: str
    lines: tuple[tuple[str, str, str], ...]
    scale: str = "linear"  # "linear" | "log" | "symlog"
    x: str = "step"
    xlabel: str | None = None  # default: the family's budget unit
    hlines: tuple[tuple[float, str], ...] = ()  # (y, label): a reference level, e.g. EBGAN's margin


def _has(rows_all: Sequence[Sequence[dict]], key: str) -> bool:
    return any(isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
               for rows in rows_all for r in rows)


def _gan_panels(rows_all: Sequence[Sequence[dict]]) -> list[Panel]:
    """Losses, gradient norms and means of G and D, and the critic's mean outputs."""
    p = "p" if _has(rows_all, "p_real") or _has(rows_all, "p_fake") else "d"
    outputs = [(f"{p}_real", "D(x)", "-"), (f"{p}_fake", "D(G(z))", "--")]
    if _has(rows_all, "w_estimate"):
        outputs.append(("w_estimate", "W estimate", ":"))
    return [
        Panel("(a) losses", (("g_loss", "G loss", "-"), ("d_loss", "D loss", "--"))),
        Panel("(b) gradient L2 norm", (("g_grad_norm", "G", "-"), ("d_grad_norm", "D", "--")), "log"),
        Panel("(c) gradient mean", (("g_grad_mean", "G", "-"), ("d_grad_mean", "D", "--")), "symlog"),
        Panel("(d) mean " + ("sigmoid " if p == "p" else "") + "critic output", tuple(outputs)),
    ]


# Buckets of the diffusion family's per-timestep losses (losslab.train.diffusion.N_BUCKETS).
DIFFUSION_BUCKETS = 10


def _diffusion_panels(rows_all: Sequence[Sequence[dict]]) -> list[Panel]:
    """The denoising loss, the denoiser's gradient, and the loss per timestep bucket."""
    buckets = tuple((f"loss_t{b}", f"t bucket {b}", "-") for b in range(DIFFUSION_BUCKETS))
    return [
        Panel("(a) denoising loss", (("g_loss", "loss", "-"),)),
        Panel("(b) denoiser gradient L2 norm", (("g_grad_norm", "denoiser", "-"),), "log"),
        Panel("(c) denoiser gradient mean", (("g_grad_mean", "denoiser", "-"),), "symlog"),
        Panel("(d) loss per timestep bucket, last quarter of training", buckets, "log", x="bucket",
              xlabel="timestep bucket (0: least noise)"),
    ]


def _contrastive_panels(rows_all: Sequence[Sequence[dict]]) -> list[Panel]:
    """The contrastive loss, the encoder's gradient, pair similarities, matching accuracy, CLIP's scale."""
    panels = [
        Panel("(a) contrastive loss", (("g_loss", "loss", "-"),)),
        Panel("(b) encoder gradient L2 norm", (("g_grad_norm", "encoder", "-"),), "log"),
        Panel("(c) mean cosine similarity of pairs", (("pos_sim", "positive pairs", "-"),
                                                      ("neg_sim", "negative pairs", "--"))),
        Panel("(d) in-batch matching accuracy", (("match_acc", "match accuracy", "-"),)),
    ]
    if _has(rows_all, "z_std"):  # collapse diagnostics (losslab.losses.contrastive_ssl.collapse_stats)
        panels.append(Panel("(e) per-dimension std of the embedding z", (
            ("z_std", "raw z", "-"), ("z_std_unit", "unit z x sqrt(dim) (0: collapse)", "--")), "log"))
        panels.append(Panel("(f) off-diagonal covariance of z", (
            ("z_cov_offdiag", "VICReg c(Z) of raw z", "-"),
            ("z_corr_offdiag", "mean squared correlation (1: one direction)", "--")), "log"))
    if _has(rows_all, "logit_scale"):
        panels.append(Panel("(g) learned logit scale (CLIP)", (("logit_scale", "logit scale", "-"),), "log"))
    if _has(rows_all, "learned_t_prime") or _has(rows_all, "learned_bias"):
        panels.append(Panel("(g) learned log-temperature t' and bias b (SigLIP)", (
            ("learned_t_prime", "t'", "-"), ("learned_bias", "b", "--")), "symlog"))
    return panels


def _ebm_panels(rows_all: Sequence[Sequence[dict]]) -> list[Panel]:
    """The energy loss, data vs negative energies, the gap, the Langevin chain, the gradient, the chains' box."""
    panels = [
        Panel("(a) energy loss", (("g_loss", "loss", "-"),)),
        Panel("(b) mean energy", (("e_pos", "data E(x+)", "-"), ("e_neg", "negatives E(x-)", "--"))),
        Panel("(c) energy gap E(x-) - E(x+)", (("energy_gap", "gap", "-"),), "symlog"),
        Panel("(d) Langevin chain energy", (("chain_e_first", "first state", "-"), ("chain_e_last", "last state", "--"))),
        Panel("(e) energy gradient L2 norm", (("g_grad_norm", "energy", "-"),), "log"),
    ]
    share = [("at_bounds", "coordinates on the clamp box", "-")]
    if _has(rows_all, "fresh_share"):
        share.append(("fresh_share", "chains from fresh noise", "--"))
    panels.append(Panel("(f) shares of the negatives", tuple(share)))
    return panels


def _no_notes(entries: Sequence[dict], runs: Sequence[dict], data: str) -> list[str]:
    return []


def _contrastive_notes(entries: Sequence[dict], runs: Sequence[dict], data: str) -> list[str]:
    """Why random data cannot teach a contrastive encoder (only for the random dataset): one note,
    with the numbers of the best-ranked loss and each loss's linear-probe accuracy.

    The loss's metric means, plus the chance accuracy of its runs (a property
    of the data, so the ranking's means leave it out).
    """
    scored = [e for e in entries if e.get("metrics_mean")]
    if not scored:
        return []
    e = scored[0]
    chance = [r["metrics"]["chance"] for r in runs if r.get("status") == "ok"
              and isinstance((r.get("metrics") or {}).get("chance"), (int, float))]
    means = {**e["metrics_mean"], **({"chance": sum(chance) / len(chance)} if chance else {})}
    note = random_data_note(means, data=data)
    if not note:
        return []
    per_loss = ", ".join(f"{x['loss']} {100 * x['metrics_mean']['linear_probe']:.1f}%" for x in scored
                         if isinstance(x["metrics_mean"].get("linear_probe"), (int, float)))
    return [f"{note} (Numbers of {e['loss']}, the best ranked; linear probe per loss: {per_loss}.)"]


@dataclass(frozen=True)
class FamilyWords:
    """How one model family speaks in the verdict and the report.

    Attributes
    ----------
    name : str
        The family's name (:data:`losslab.losses.families.FAMILY_SPECS`); ``name``,
        ``network``, ``second_player``, ``generates`` and ``collapse`` come from
        its :class:`~losslab.losses.families.FamilySpec`, the rest is the report's.
    network : str
        The network the budget trains: "generator", "denoiser", "encoder".
    second_player : str or None
        Updates of a second network trained beside it ("critic updates" for a
        GAN, counted in ``d_updates``), or None.
    generates : bool
        The family draws samples: a sample figure and a sampling cost
        (network evaluations per sample) exist.
    collapse : bool
        Mode collapse is measured (modes / classes covered by samples).
    cost_note : str
        What the sampling cost column means for this family ("" without one).
    overview_caption, diagnostics_caption : str
        Captions of the gradient-norm overview and of one loss's diagnostics
        (``{loss}`` is filled in).
    panels : callable
        ``panels(rows_of_every_seed) -> list[Panel]`` of the diagnostics figure.
    notes : callable
        ``notes(ranking_entries, runs, data_name) -> list[str]`` from measured numbers.
    """

    name: str
    network: str
    second_player: str | None
    generates: bool
    collapse: bool
    cost_note: str
    overview_caption: str
    diagnostics_caption: str
    panels: Callable[[Sequence[Sequence[dict]]], list[Panel]] = field(repr=False)
    notes: Callable[[Sequence[dict], Sequence[dict], str], list[str]] = field(repr=False, default=_no_notes)

    @property
    def unit(self) -> str:
        """The budget unit in the plural: "generator updates"."""
        return f"{self.network} updates"

    @property
    def budget_note(self) -> str:
        """What the equal budget is, and what is reported beside it."""
        beside = ([self.second_player] if self.second_player else []) + ["wall seconds"]
        if self.generates and not self.second_player:
            beside.append("network evaluations per sample")
        return (f"every loss gets the same number of {self.unit}; " + _and(beside)
                + " are reported beside it")


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_REPORT_WORDS: dict[str, dict] = {
    "gan": dict(
        cost_note="1 for a GAN",
        overview_caption="Seed-mean L2 norm of the generator's gradient on a log scale: a curve that falls by "
                         "orders of magnitude marks a generator whose gradient vanished (a saturated "
                         "discriminator); an exact zero is drawn at the floor of the axis.",
        diagnostics_caption="Training curves of {loss}, one colour per seed: (a) losses, (b) gradient norms on a "
                            "log scale, where a G norm collapsing while D's stays large is the vanishing-gradient "
                            "failure, (c) gradient means, (d) mean D(x) against mean D(G(z)), whose widening gap "
                            "means D wins; x marks where a run diverged.",
        panels=_gan_panels),
    "diffusion": dict(
        cost_note="the sampler's steps for a diffusion model",
        overview_caption="Seed-mean L2 norm of the denoiser's gradient on a log scale: a curve that falls by "
                         "orders of magnitude marks a denoiser that stopped learning; an exact zero is drawn at "
                         "the floor of the axis.",
        diagnostics_caption="Training curves of {loss}, one colour per seed: (a) the denoising loss, (b) the "
                            "denoiser's gradient L2 norm on a log scale, (c) its gradient mean, (d) the loss per "
                            "timestep bucket over the last quarter of training (bucket 0 holds the least noisy "
                            "timesteps), which shows which noise levels the denoiser finds hard; x marks where a "
                            "run diverged.",
        panels=_diffusion_panels),
    "contrastive": dict(
        cost_note="",
        overview_caption="Seed-mean L2 norm of the encoder's gradient on a log scale: a curve that falls by "
                         "orders of magnitude marks an encoder that stopped learning; an exact zero is drawn at "
                         "the floor of the axis.",
        diagnostics_caption="Training curves of {loss}, one colour per seed: (a) the contrastive loss, (b) the "
                            "encoder's gradient L2 norm on a log scale, (c) the mean cosine similarity of positive "
                            "and of negative pairs, whose gap the loss widens, (d) the share of rows whose most "
                            "similar partner in the batch is a positive, (e) the per-dimension standard deviation "
                            "of the embedding (raw, and of the unit vectors times sqrt(dim): near 0 means "
                            "collapse to a point), (f) its off-diagonal covariance (VICReg's c(Z)) and mean "
                            "squared correlation (near 1 means dimensional collapse onto one direction), and "
                            "(g) CLIP's learned logit scale or SigLIP's learned log-temperature and bias; "
                            "x marks where a run diverged.",
        panels=_contrastive_panels, notes=_contrastive_notes),
    "ebm": dict(
        cost_note="the Langevin steps for an energy-based model (each a forward and a backward pass)",
        overview_caption="Seed-mean L2 norm of the energy network's gradient on a log scale: a curve that falls "
                         "by orders of magnitude marks an energy that stopped learning; an exact zero is drawn at "
                         "the floor of the axis.",
        diagnostics_caption="Training curves of {loss}, one colour per seed: (a) the energy loss, (b) the mean "
                            "energy of data and of the Langevin negatives, (c) their gap, which grows without "
                            "bound when the energy separates data from samples the sampler can no longer reach, "
                            "(d) the mean energy at a Langevin chain's first and last state, (e) the energy's "
                            "gradient L2 norm on a log scale, (f) the share of the negatives' coordinates on the "
                            "clamp box (samples saturating at the bounds) and, for contrastive divergence, the "
                            "share of chains started from fresh noise; x marks where a run diverged.",
        panels=_ebm_panels),
}



def _words(name: str) -> FamilyWords:
    spec = FAMILY_SPECS[name]
    return FamilyWords(name=name, network=spec.network, second_player=spec.second_player, generates=spec.generates,
                       collapse=spec.collapse, **_REPORT_WORDS[name])


FAMILIES: dict[str, FamilyWords] = {name: _words(name) for name in FAMILY_SPECS}
"""A view of :data:`losslab.losses.families.FAMILY_SPECS` with the report's words added."""

_GENERIC = FamilyWords(
    name="?", network="network", second_player=None, generates=True, collapse=True, cost_note="",
    overview_caption="Seed-mean L2 norm of the trained network's gradient on a log scale.",
    diagnostics_caption="Training curves of {loss}, one colour per seed; x marks where a run diverged.",
    panels=lambda rows_all: [Panel("(a) loss", (("g_loss", "loss", "-"),)),
                             Panel("(b) gradient L2 norm", (("g_grad_norm", "network", "-"),), "log")])


def describe(family: str | None) -> FamilyWords:
    """The :class:`FamilyWords` of a family name; ``"gan+diffusion"`` (a mixed table) combines its parts.

    A mixed table names every part's network ("generator / denoiser updates"),
    keeps a second player when a part has one, and concatenates the parts'
    notes; its diagnostics are drawn per loss with that loss's own family.
    An unknown name gets neutral words (a results.json of another version).
    """
    parts = [FAMILIES.get(p, _GENERIC) for p in str(family or "gan").split("+")]
    if len(parts) == 1:
        return parts[0]
    return FamilyWords(
        name="+".join(p.name for p in parts),
        network=" / ".join(p.network for p in parts),
        second_player=next((p.second_player for p in parts if p.second_player), None),
        generates=any(p.generates for p in parts),
        collapse=any(p.collapse for p in parts),
        cost_note=", ".join(p.cost_note for p in parts if p.cost_note),
        overview_caption="Seed-mean L2 norm of the gradient of each loss's trained network ("
                         + " / ".join(p.network for p in parts) + ") on a log scale: a curve that falls by "
                         "orders of magnitude marks a network that stopped learning.",
        diagnostics_caption=parts[0].diagnostics_caption,
        panels=parts[0].panels,
        notes=lambda entries, runs, data: [n for p in parts for n in p.notes(
            [e for e in entries if e.get("family") in (None, p.name)], runs, data)],
    )
