"""What the literature expects of each loss on data like this, tested against the comparison's numbers.

Each row of :data:`EXPECTATIONS` joins three things: a condition on the data
profile (:func:`losslab.data.profile.profile`: modes and their separation,
intrinsic dimension, images), the losses it concerns, and a claim that a
paper makes about those losses on such data, stated so that the comparison's
own measurements can confirm or refute it (mode coverage per seed, the
generator-gradient diagnosis of :func:`losslab.verdict.gradient_diagnosis`,
the best group of :func:`losslab.verdict.recommend`, the ranking). Every
claim carries its source (paper, arXiv id, section or table); the sources are
those of :mod:`losslab.data.advice` and :mod:`losslab.explain`. The table is
short on purpose: a row is added only when its source states the claim and
the runs measure what it is about.

:func:`check_expectations` TESTS every row that applies: ``held`` is True
(the runs agree), False (they contradict it) or None (not testable here: the
quantity is not measured on this data, or the claim's own precondition, e.g.
"the discriminator wins", did not arise). A row whose condition is false for
the profile, or whose losses were not compared, is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import stats as sstats

from losslab.data.advice import MANY_MODES, SEPARATED
from losslab.diagnose import D_ACC_WINNING
from losslab.losses import GAN_LOSSES
from losslab.metrics import METRIC_INFO

__all__ = ["EXPECTATIONS", "LOW_DIM_RATIO", "Expectation", "check_expectations", "finding_phrase", "outcome_word",
           "profile_reasons", "profile_summary"]

LOW_DIM_RATIO = 0.5
"""Data "on a low-dimensional set": TwoNN intrinsic dimension at most this fraction of the ambient dimension."""

VEEGAN = "Srivastava et al. 2017, VEEGAN, arXiv:1705.07761, Sec. 5.1, Table 1"
PACGAN = "Lin et al. 2018, PacGAN, arXiv:1712.04086, Sec. 5"
WGAN = "Arjovsky et al. 2017, Wasserstein GAN, arXiv:1701.07875, abstract"
ARJOVSKY_BOTTOU = ("Arjovsky & Bottou 2017, Towards Principled Methods for Training GANs, arXiv:1701.04862, "
                   "Sec. 2.1 (Theorem 2.2: low-dimensional supports admit a perfect discriminator) and Sec. 2.2 "
                   "(Theorem 2.4: vanishing gradients on the generator)")
GOODFELLOW_NS = "Goodfellow et al. 2014, Generative Adversarial Nets, arXiv:1406.2661, Sec. 3"
LUCIC = "Lucic et al. 2018, Are GANs Created Equal?, arXiv:1711.10337, abstract"
HO_X0 = "Ho et al. 2020, DDPM, arXiv:2006.11239, Sec. 3.2"


Outcome = tuple[list[str], "bool | None", str, str]  # (losses, held, evidence, observed)


@dataclass(frozen=True)
class Expectation:
    """One row: on which data, about which losses, what the literature claims, how it is tested, and the source.

    Attributes
    ----------
    name : str
        Identifier.
    when : str
        The condition on the profile, in words (the same as ``applies``).
    applies : callable
        ``applies(profile) -> bool``.
    losses : tuple of str
        The losses the claim is about (registry names); the row is checked for those compared.
    claim : str
        The claim in words; ``{loss}`` is replaced by the loss (per-loss rows).
    expects : str
        The claim in a few words, without the loss ("the standard GAN drops modes").
    check : callable
        ``check(ctx, losses) -> [(losses, held, evidence, observed), ...]`` with
        ``losses`` the row's compared losses and ``ctx`` the dict of ``profile``,
        ``ranking``, ``runs``, ``recommendation``, ``primary``; ``observed`` is
        what the runs did in a few words ("ns missed modes on 2/3 seeds (...)"),
        empty when not testable.
    source : str
        Authors, year, title, arXiv id, section / table.
    cite : str
        A short form of the source for sentences ("VEEGAN, arXiv:1705.07761, Table 1").
    per_loss : bool
        True: one result per compared loss, the claim about that loss alone;
        False: one result for the compared losses together.
    min_losses : int
        The row is checked only when at least this many of its losses were compared.
    """

    name: str
    when: str
    applies: Callable[[dict], bool]
    losses: tuple[str, ...]
    claim: str
    expects: str
    check: Callable[[dict, list[str]], list[Outcome]]
    source: str
    cite: str
    per_loss: bool = True
    min_losses: int = 1


# ------------------------------------------------------------------------------ conditions on the profile


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _separated_modes(p: dict) -> bool:
    """Vectors with >= MANY_MODES modes whose closest centres are >= SEPARATED within-mode std apart."""
    k, sep = _num(p.get("num_modes")), _num(p.get("separation_min"))
    return p.get("kind") == "vector" and k is not None and k >= MANY_MODES and sep is not None and sep >= SEPARATED


def _low_dimensional(p: dict) -> bool:
    """TwoNN intrinsic dimension at most LOW_DIM_RATIO of the ambient dimension (and the ambient one >= 2)."""
    d, dim = _num(p.get("intrinsic_dim")), _num(p.get("dim"))
    return d is not None and dim is not None and dim >= 2 and d <= LOW_DIM_RATIO * dim


def _images(p: dict) -> bool:
    return p.get("kind") == "image"


# ------------------------------------------------------------------------------ measurements of the runs


def _runs_of(ctx: dict, loss: str) -> list[dict]:
    return [r for r in ctx["runs"] if r.get("loss") == loss and r.get("status") != "missing"]


def _ok_runs(ctx: dict, loss: str) -> list[dict]:
    return [r for r in _runs_of(ctx, loss) if r.get("status") == "ok"]


REACHED = 0.5
"""A seed's generator reached the data when at least this share of its samples is high-quality (within 3 std of
a mode, the VEEGAN protocol); without ``high_quality``, when it covers at least one mode. Mode dropping is a
claim about generators that reached the data: an untrained one at 0/8 modes neither drops nor covers modes."""


def _reached(m: dict) -> bool:
    hq = _num(m.get("high_quality"))
    return hq >= REACHED if hq is not None else (_num(m.get("modes_covered")) or 0) >= 1


def _coverage(ctx: dict, loss: str) -> tuple[list[tuple[int, int]] | None, str]:
    """Per ok seed whose generator reached the data (:data:`REACHED`) (modes covered, modes), or None with the
    reason it is not testable (not measured, or no seed reached the data)."""
    ok = _ok_runs(ctx, loss)
    if not ok:
        return None, f"no finished run of {loss}"
    cov = [((r.get("metrics") or {}).get("modes_covered"), (r.get("metrics") or {}).get("num_modes")) for r in ok]
    if not all(_num(c) is not None and _num(k) for c, k in cov):
        return None, ("mode coverage is not measured on this data (the evaluation counts modes only on mixtures "
                      "whose true modes it knows)")
    kept = [(int(c), int(k)) for (c, k), r in zip(cov, ok) if _reached(r.get("metrics") or {})]
    if not kept:
        per_seed = ", ".join(f"{int(c)}/{int(k)}" for c, k in cov)
        return None, (f"no seed of {loss} put most of its samples at the data (modes covered {per_seed}; on every "
                      f"seed fewer than {REACHED:.0%} of its samples within 3 std of a mode), so dropping modes "
                      "cannot be told from not having learned")
    return kept, ""


def _cov_text(cov: list[tuple[int, int]]) -> str:
    missed = sum(c < k for c, k in cov)
    return (f"modes covered per seed {', '.join(f'{c}/{k}' for c, k in cov)}: a mode missed on "
            f"{missed}/{len(cov)} seeds")


def _cov_observed(loss: str, cov: list[tuple[int, int]]) -> str:
    missed = sum(c < k for c, k in cov)
    per_seed = ", ".join(f"{c}/{k}" for c, k in cov)
    if missed:
        return f"{loss} missed modes on {missed}/{len(cov)} seeds (covered {per_seed})"
    return f"{loss} covered all {cov[0][1]} modes on {len(cov)}/{len(cov)} seeds"


def _check_drops_modes(ctx: dict, losses: list[str]) -> list[Outcome]:
    out = []
    for loss in losses:
        cov, why = _coverage(ctx, loss)
        out.append(([loss], None, why, "") if cov is None else
                   ([loss], any(c < k for c, k in cov), _cov_text(cov), _cov_observed(loss, cov)))
    return out


def _check_covers_modes(ctx: dict, losses: list[str]) -> list[Outcome]:
    out = []
    for loss in losses:
        cov, why = _coverage(ctx, loss)
        out.append(([loss], None, why, "") if cov is None else
                   ([loss], all(c >= k for c, k in cov), _cov_text(cov), _cov_observed(loss, cov)))
    return out


def _winning(ctx: dict, loss: str) -> tuple[list[dict] | None, str]:
    """The runs of ``loss`` whose critic won (``d_acc_final`` >= D_ACC_WINNING), or None with why not testable."""

    rs = [r for r in _runs_of(ctx, loss) if r.get("status") in ("ok", "diverged")]
    diag = [r.get("diagnostics") or {} for r in rs]
    accs = [_num(d.get("d_acc_final")) for d in diag]
    if not rs or not any(a is not None for a in accs):
        return None, f"the discriminator's accuracy was not logged for {loss}"
    won = [r for r, a in zip(rs, accs) if a is not None and a >= D_ACC_WINNING]
    if not won:
        return None, (f"the discriminator never won (final real-vs-fake accuracy "
                      f"{', '.join(f'{a:.2f}' for a in accs if a is not None)} < {D_ACC_WINNING:g}), "
                      "so the claim's condition did not arise")
    return won, ""


def _grad_text(won: list[dict], n: int) -> str:
    van = [r for r in won if (r.get("diagnostics") or {}).get("g_grad_vanished")]
    norms = ", ".join(f"{_fmt(r['diagnostics'].get('g_grad_norm_initial'))} -> "
                      f"{_fmt(r['diagnostics'].get('g_grad_norm_final'))}" for r in won)
    return (f"the discriminator won on {len(won)}/{n} seeds; the generator's gradient vanished on "
            f"{len(van)} of them (norm first tenth -> last quarter: {norms})")


def _grad_observed(loss: str, won: list[dict]) -> str:
    van = sum(bool((r.get("diagnostics") or {}).get("g_grad_vanished")) for r in won)
    return (f"{loss}'s generator gradient vanished on {van} of the {len(won)} seeds where the discriminator won")


def _check_gradient(vanishes: bool) -> Callable[[dict, list[str]], list[Outcome]]:
    """The check of "the gradient vanishes (``vanishes``) / survives when D wins" on every winning run."""

    def check(ctx: dict, losses: list[str]) -> list[Outcome]:
        out = []
        for loss in losses:
            won, why = _winning(ctx, loss)
            if won is None:
                out.append(([loss], None, why, ""))
                continue
            flags = [bool((r.get("diagnostics") or {}).get("g_grad_vanished")) for r in won]
            held = all(flags) if vanishes else not any(flags)
            out.append(([loss], held, _grad_text(won, len(_runs_of(ctx, loss))), _grad_observed(loss, won)))
        return out

    return check


def _check_similar_scores(ctx: dict, losses: list[str]) -> list[Outcome]:
    rec = ctx.get("recommendation") or {}
    done = [e["loss"] for e in ctx["ranking"]
            if e.get("loss") in losses and e.get("mean") is not None and e.get("n_ok") == e.get("n_runs")]
    if len(done) < 2:
        return [(losses, None, "fewer than 2 of these losses finished every seed", "")]
    tested = [p for p in rec.get("pairwise") or []
              if p.get("p_adjusted") is not None and p.get("a") in done and p.get("b") in done]
    if not tested:
        return [(done, None, "fewer than 2 paired seeds: no test of the differences", "")]
    group = [g for g in rec.get("best_group") or [] if g in done]
    worse = [g for g in done if g not in group]
    text = (f"not shown worse than {rec.get('loss')} (the race: Friedman, then Nemenyi over all pairs): "
            f"{', '.join(group) or 'none'}" + (f"; shown worse: {', '.join(worse)}" if worse else "")
            + " (the study tuned every loss; compare with --search to match it)")
    if worse:
        return [(done, False, text, f"{', '.join(worse)} shown worse than {rec.get('loss')}")]
    equivalent = rec.get("equivalent")  # the race's equivalence test (paired TOST on every pair of survivors)
    if equivalent and set(done) <= set(group):
        delta = equivalent.get("delta") if isinstance(equivalent, dict) else None
        within = f" within +-{delta:.3g}" if isinstance(delta, (int, float)) else ""
        return [(done, True, text, f"{', '.join(done)} shown equivalent{within} (paired TOST)")]
    return [(done, None, text + "; not separated, which does not show that they score alike (no equivalence "
             "test)", "")]


EPS_MIN_SEEDS = 3
"""eps against x0 is decided by a paired t-test over at least this many paired seeds (never by mean order)."""


def _check_eps_beats_x0(ctx: dict, losses: list[str]) -> list[Outcome]:
    """Held: ddpm significantly better than ddpm-x0 (two-sided paired t-test over their common seeds, p < 0.05,
    scipy.stats.ttest_rel); did not hold: significantly worse; else not testable (too few seeds, or not
    separated)."""
    rows = {e["loss"]: e for e in ctx["ranking"] if e.get("loss") in ("ddpm", "ddpm-x0")}
    if len(rows) < 2 or any(_num(e.get("mean")) is None for e in rows.values()):
        return [(losses, None, "ddpm and ddpm-x0 were not both measured", "")]
    eps, x0 = rows["ddpm"], rows["ddpm-x0"]
    metric = ctx.get("primary") or "the primary metric"
    higher = bool(METRIC_INFO.get(str(ctx.get("primary")), {}).get("higher_is_better", False))
    a, b = dict(zip(eps.get("seeds") or [], eps.get("values") or [])), dict(zip(x0.get("seeds") or [],
                                                                                 x0.get("values") or []))
    common = [k for k in a if k in b and _num(a[k]) is not None and _num(b[k]) is not None]
    text = f"{metric} seed mean: ddpm {_ci(eps)}, ddpm-x0 {_ci(x0)}"
    if len(common) < EPS_MIN_SEEDS:
        return [(["ddpm", "ddpm-x0"], None, f"{text}; not testable with {len(common)} paired seed(s) (a paired "
                 f"test needs {EPS_MIN_SEEDS})", "")]
    d = np.array([a[k] - b[k] for k in common], dtype=np.float64) * (1.0 if higher else -1.0)  # > 0: eps better
    p = 1.0 if np.all(d == 0) else (0.0 if np.std(d) == 0 else float(sstats.ttest_rel(d, np.zeros_like(d)).pvalue))
    text += f"; paired t-test over {len(common)} seeds p = {p:.3g}"
    if p >= 0.05:
        return [(["ddpm", "ddpm-x0"], None, text + ": not separated", "")]
    better = float(np.mean(d)) > 0
    observed = f"ddpm {'beat' if better else 'lost to'} ddpm-x0 on {metric} ({_ci(eps)} vs {_ci(x0)}, p = {p:.2g})"
    return [(["ddpm", "ddpm-x0"], better, text, observed)]


def _fmt(x: Any) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{v:.3g}"


def _ci(e: dict) -> str:
    ci = e.get("ci95")
    s = _fmt(e.get("mean"))
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) is not None for c in ci):
        s += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return s


# ------------------------------------------------------------------------------ the table

_SEPARATED_WHEN = (f"vectors with {MANY_MODES} or more modes, the closest centres at least {SEPARATED:g} "
                   "within-mode std apart")
_LOW_DIM_WHEN = f"intrinsic dimension (TwoNN) at most {LOW_DIM_RATIO:g} x the ambient dimension"

EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation(
        name="standard_gan_drops_modes",
        when=_SEPARATED_WHEN,
        applies=_separated_modes,
        losses=("ns", "minimax"),
        claim="{loss} (the standard GAN) drops modes of well-separated mixtures: a mode missed on at least one seed",
        expects="the standard GAN drops modes of well-separated mixtures",
        check=_check_drops_modes,
        source=f"{VEEGAN} (the GAN covered few of the 8 ring and 25 grid modes); {PACGAN}",
        cite="VEEGAN, arXiv:1705.07761, Table 1",
    ),
    Expectation(
        name="wgan_no_mode_collapse",
        when=_SEPARATED_WHEN,
        applies=_separated_modes,
        losses=("wgan",),
        claim="{loss} gets rid of mode collapse: every mode covered on every seed",
        expects="WGAN gets rid of mode collapse",
        check=_check_covers_modes,
        source=f"{WGAN} ('get rid of problems like mode collapse')",
        cite="WGAN, arXiv:1701.07875",
    ),
    Expectation(
        name="minimax_gradient_vanishes",
        when=_LOW_DIM_WHEN,
        applies=_low_dimensional,
        losses=("minimax",),
        claim="{loss}'s generator gradient vanishes once the discriminator wins (data on a low-dimensional set "
              "admit a perfect discriminator)",
        expects="the minimax generator's gradient vanishes once the discriminator wins",
        check=_check_gradient(vanishes=True),
        source=ARJOVSKY_BOTTOU,
        cite="Arjovsky & Bottou, arXiv:1701.04862, Theorems 2.2 and 2.4",
    ),
    Expectation(
        name="ns_gradient_survives",
        when=_LOW_DIM_WHEN,
        applies=_low_dimensional,
        losses=("ns",),
        claim="{loss}'s generator gradient does not vanish when the discriminator wins (the -log D objective)",
        expects="the non-saturating generator's gradient survives a winning discriminator",
        check=_check_gradient(vanishes=False),
        source=f"{GOODFELLOW_NS} ('provides much stronger gradients early in learning')",
        cite="Goodfellow et al., arXiv:1406.2661, Sec. 3",
    ),
    Expectation(
        name="gan_losses_similar",
        when="images, two or more GAN losses",
        applies=_images,
        losses=tuple(GAN_LOSSES),
        claim="most GAN losses reach similar scores: refuted by a compared GAN loss significantly worse than the "
              "best, shown only by an equivalence test (not by a failure to separate them)",
        expects="most GAN losses reach similar scores",
        check=_check_similar_scores,
        source=f"{LUCIC} (given enough hyperparameter search and random restarts)",
        cite="Lucic et al., arXiv:1711.10337",
        per_loss=False,
        min_losses=2,
    ),
    Expectation(
        name="eps_beats_x0",
        when="images",
        applies=_images,
        losses=("ddpm", "ddpm-x0"),
        claim="predicting the noise (ddpm) gives better samples than predicting the clean image (ddpm-x0)",
        expects="predicting the noise beats predicting the clean image",
        check=_check_eps_beats_x0,
        source=f"{HO_X0} (predicting x0 'led to worse sample quality early in our experiments')",
        cite="Ho et al., arXiv:2006.11239, Sec. 3.2",
        per_loss=False,
        min_losses=2,
    ),
)


def check_expectations(profile: dict | None, ranking: list[dict], runs: list[dict], *,
                       recommendation: dict | None = None, primary: str | None = None,
                       table: tuple[Expectation, ...] = EXPECTATIONS) -> list[dict[str, Any]]:
    """Test every row of ``table`` that applies to ``profile`` against the comparison's numbers.

    Parameters
    ----------
    profile : dict or None
        The data profile (:func:`losslab.data.profile.profile`, as in
        ``OUT/data_profile.json``); None gives no expectations.
    ranking : list of dict
        :func:`losslab.verdict.aggregate`'s rows (``loss``, ``mean``, ``ci95``,
        ``n_ok``, ``n_runs``), best first.
    runs : list of dict
        Its runs (``loss``, ``status``, ``metrics`` with ``modes_covered`` /
        ``num_modes`` where measured, ``diagnostics`` from
        :func:`losslab.verdict.gradient_diagnosis`).
    recommendation : dict, optional
        :func:`losslab.verdict.recommend`'s result (``best_group``,
        ``pairwise``); rows about the best group are not testable without it.
    primary : str, optional
        The primary metric's name, for the evidence text.
    table : tuple of Expectation
        Default :data:`EXPECTATIONS`.

    Returns
    -------
    list of dict
        In table order, one per applicable row and compared loss (or one per
        row for rows about losses together): ``{"name", "claim", "expects",
        "when", "losses", "held" (True, False or None: not testable here),
        "evidence", "observed", "source", "cite"}``: ``claim`` names the
        losses, ``evidence`` gives the numbers the outcome rests on (or why
        it is not testable), ``observed`` what the runs did in a few words.
        Rows whose condition is false for ``profile``, or with fewer of their
        losses compared than they need, are left out.
    """
    if not isinstance(profile, dict):
        return []
    compared = list(dict.fromkeys(str(e.get("loss")) for e in ranking))
    ctx = {"profile": profile, "ranking": ranking, "runs": runs, "recommendation": recommendation or {},
           "primary": primary}
    out: list[dict[str, Any]] = []
    for row in table:
        losses = [n for n in row.losses if n in compared]
        if len(losses) < max(1, row.min_losses) or not row.applies(profile):
            continue
        for names, held, evidence, observed in row.check(ctx, losses):
            out.append({"name": row.name, "claim": row.claim.format(loss=", ".join(names)), "expects": row.expects,
                        "when": row.when, "losses": list(names), "held": held, "evidence": evidence,
                        "observed": observed, "source": row.source, "cite": row.cite})
    return out


# ------------------------------------------------------------------------------ words


def outcome_word(held: bool | None) -> str:
    """``held``, ``did not hold`` or ``not testable here``."""
    return "held" if held is True else "did not hold" if held is False else "not testable here"


def profile_summary(p: dict | None) -> str:
    """The profile in one phrase: modes and separation, intrinsic dimension, tails; images: size and classes.

    E.g. ``"8 modes, closest centres 76.2 within-mode std apart, intrinsic dimension 2.08 of 2, light tails"``.
    """
    if not isinstance(p, dict):
        return "no profile"
    bits = []
    if p.get("kind") == "image":
        bits.append(f"{p.get('channels')}x{p.get('height')}x{p.get('width')} images")
    k = p.get("num_modes")
    if _num(k) is not None:
        what = "classes" if p.get("kind") == "image" and p.get("class_balance") else "modes"
        modes = f"{int(k)}{'+' if p.get('num_modes_capped') else ''} {what}"
        sep = _num(p.get("separation_min"))
        if sep is not None:
            modes += f", closest centres {sep:.3g} within-mode std apart"
        bits.append(modes)
    idim = _num(p.get("intrinsic_dim"))
    if idim is not None:
        bits.append(f"intrinsic dimension {idim:.3g}" + (f" of {p.get('dim')}" if _num(p.get("dim")) else ""))
    if p.get("heavy_tailed"):
        share = _num(p.get("outlier_share"))
        bits.append("heavy tails" + (f" ({100 * share:.2g}% outliers)" if share is not None else ""))
    elif p.get("outlier_share") is not None:
        bits.append("light tails")
    if p.get("kind") == "image" and _num(p.get("sparsity")) is not None:
        bits.append(f"{100 * float(p['sparsity']):.0f}% near-constant pixels")
    return ", ".join(bits) or str(p.get("name") or "data")


def profile_reasons(profile: dict | None, expectations: list[dict]) -> list[str]:
    """Reasons for the recommendation that cite the profile and the tested expectations.

    One sentence naming the data's profile, then one per expectation that was
    testable (held or did not hold) with its evidence and source; the others
    are listed in the report only. Empty without a profile.
    """
    if not isinstance(profile, dict):
        return []
    tested = [e for e in expectations if e["held"] is not None]
    n_open = len(expectations) - len(tested)
    head = f"The data: {profile_summary(profile)}."
    if not expectations:
        head += " No expectation of the literature table (losslab.expectations) applies to it."
    elif n_open:
        head += f" {n_open} expectation(s) of the literature could not be tested here (see the report)."
    return [head] + [f"{e['observed']}: {'as' if e['held'] else 'against what'} {e['cite']} expects "
                     f"({e['expects']}); {e['evidence']}." for e in tested]


def finding_phrase(e: dict | list[dict]) -> str:
    """One expectation (or several results of one row with one outcome) in a clause, the runs first.

    ``"ns missed modes on 2/3 seeds (covered ...), as VEEGAN, arXiv:1705.07761, Table 1 expects (the standard
    GAN drops modes ...)"``; an untestable one: ``"<expects> (<cite>): not testable here, <why>"``.
    """
    es = [e] if isinstance(e, dict) else list(e)
    first = es[0]
    if first.get("held") is None or not first.get("observed"):
        return (f"{first.get('expects') or first.get('claim')} ({first.get('cite')}): not testable here, "
                f"{first.get('evidence')}")
    seen = [x["observed"] for x in es]
    said = seen[0] if len(seen) == 1 else ", ".join(seen[:-1]) + " and " + seen[-1]
    return f"{said}, {'as' if first['held'] else 'against what'} {first.get('cite')} expects ({first.get('expects')})"
