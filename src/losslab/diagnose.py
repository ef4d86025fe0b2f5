"""Known failure signatures, detected on a run's training curves (``metrics.jsonl`` rows).

Each detector takes the rows of one run (and what it needs of its
hyperparameters or final metrics) and returns a list of :class:`Finding`:
a named signature with the numbers that triggered it, in one sentence that
says what happened and points to ``losslab explain LOSS``. They are the
failure modes that :mod:`losslab.explain` describes in words, measured:

=====================  ===================================================  ==========================
name                   fires when                                           source
=====================  ===================================================  ==========================
``vanishing_gradient`` the critic wins (mean ``d_acc`` >= 0.9 over the      Arjovsky & Bottou 2017,
                       last quarter) and ``g_grad_norm`` fell >= 100x        arXiv:1701.04862, Sec. 2.2
``gradient_kept``      (info) a saturating loss whose gradient did not       same
                       vanish: its critic never won
``above_margin``       EBGAN: the fakes' mean energy ``d_fake`` >= margin    Zhao et al. 2017,
                       on >= 50% of the logged steps, and the samples miss   arXiv:1609.03126, Eq. 1
                       a mode or class (where the data have them)
``clip_saturation``    WGAN: >= 50% of critic weights at the clip bound      Gulrajani et al. 2017,
                       (``clip_share`` over the last quarter)                arXiv:1704.00028, Sec. 3
``k_pinned``           BEGAN: k_t at 0 or 1 on >= 50% of the logged steps    Berthelot et al. 2017,
                                                                             arXiv:1703.10717, Sec. 3.4
``oscillation``        the detrended loss of the second half has a          Mescheder et al. 2018,
                       periodic component of >= 3 cycles that stands out     arXiv:1801.04406; the test:
                       of an AR(1) (red-noise) background at p < 0.01         Torrence & Compo 1998, BAMS
                       (Bonferroni over the candidate frequencies)           79:61-78, Sec. 4a
``mode_collapse``      modes (or classes) covered k < K                      Metz et al. 2017 (VEEGAN
                                                                             protocol, Srivastava 2017)
``embedding_collapse`` contrastive: negative pairs as similar as positive   Jing et al. 2022,
                       ones (neg_sim >= 0.9 and pos - neg < 0.05)            arXiv:2110.09348
=====================  ===================================================  ==========================

Thresholds are module constants; every detector returns ``[]`` on curves too
short to judge (fewer than :data:`MIN_ROWS` logged values). Each is calibrated
on null curves (tests/test_signatures.py: iid noise, red noise, decaying and
recorded healthy runs): it fires on at most 5% of them, and on its failure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["Finding", "MIN_ROWS", "diagnose_run", "ema", "findings_text", "periodic_peak"]

MIN_ROWS = 8
D_ACC_WINNING = 0.9  # the critic wins: its real-vs-fake accuracy at least this (the verdict uses it too)
VANISH_RATIO = 1e-2  # gradient fell 100x (as losslab.verdict.VANISH_RATIO)
SHARE = 0.5  # "most of training" for the margin, clip and k_t signatures
SATURATING = {"minimax"}  # losses whose generator gradient vanishes when D wins (explain minimax)
OSC_ALPHA = 0.01  # significance of the periodogram peak against red noise (Bonferroni over frequencies)
OSC_MIN_CYCLES = 3  # a periodic component must make at least this many cycles in the second half


@dataclass(frozen=True)
class Finding:
    """One detected signature: ``name`` (see the module table), ``text`` (one sentence with the
    numbers), ``values`` (the numbers), ``severity`` ("failure" or "info"), ``explain`` (the loss
    to read with ``losslab explain``, or "")."""

    name: str
    text: str
    values: dict[str, float] = field(default_factory=dict)
    severity: str = "failure"
    explain: str = ""
    short: str = ""  # a clause for the report's opening answer; default ``text``

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _col(rows: Sequence[dict], key: str) -> np.ndarray:
    """Finite numeric values of ``key`` in row order."""
    v = [r.get(key) for r in rows]
    return np.asarray([float(x) for x in v if isinstance(x, (int, float)) and not isinstance(x, bool)
                       and math.isfinite(x)], dtype=np.float64)


def ema(values: Sequence[float], alpha: float | None = None) -> np.ndarray:
    """Bias-corrected exponential moving average (Adam's correction, Kingma & Ba 2015, Sec. 3).

    ``s_t = (1 - a) s_{t-1} + a x_t`` from ``s_0 = 0``, divided by ``1 - (1 - a)^t``,
    so the first value is ``x_1``. ``alpha`` defaults to ``min(1, 10 / n)`` (a
    window of about a tenth of the curve). Returns an array of the input's length.
    """
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return x
    a = float(alpha) if alpha is not None else min(1.0, 10.0 / len(x))
    out = np.empty_like(x)
    s, w = 0.0, 0.0
    for i, v in enumerate(x):
        s = (1 - a) * s + a * v
        w = (1 - a) * w + a
        out[i] = s / w
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def vanishing_gradient(rows: Sequence[dict], loss: str) -> list[Finding]:
    """The critic wins and the generator's gradient norm collapses (or, for a saturating loss, does not)."""
    g, acc = _col(rows, "g_grad_norm"), _col(rows, "d_acc")
    if len(g) < MIN_ROWS or len(acc) < MIN_ROWS:
        return []
    head = float(np.median(g[: max(1, len(g) // 10)]))
    tail = float(np.median(g[-max(1, len(g) // 4):]))
    d_acc = float(np.mean(acc[-max(1, len(acc) // 4):]))
    vals = {"d_acc": d_acc, "g_grad_norm_initial": head, "g_grad_norm_final": tail}
    fell = tail < VANISH_RATIO * head or tail < 1e-8
    if d_acc >= D_ACC_WINNING and fell:
        return [Finding("vanishing_gradient",
                        f"the critic won (d_acc {d_acc:.2f}) and the generator's gradient norm fell "
                        f"{head / max(tail, 1e-30):.0f}x ({head:.2g} -> {tail:.2g}): vanishing gradient, "
                        f"see `losslab explain {loss}`", vals, explain=loss,
                        short=f"its critic won (d_acc {d_acc:.2f}) and the generator's gradient vanished "
                              f"({head / max(tail, 1e-30):.0f}x smaller)")]
    if loss in SATURATING and not fell:
        if d_acc >= D_ACC_WINNING:  # the condition arose and the gradient survived it
            return [Finding("gradient_kept",
                            f"the generator's gradient did not vanish (norm {head:.2g} -> {tail:.2g}) although "
                            f"its critic won (d_acc {d_acc:.2f} over the last quarter): the saturation that "
                            f"`losslab explain {loss}` describes did not occur here", vals, severity="info",
                            explain=loss, short=f"the generator's gradient did not vanish although its critic won "
                                                f"(d_acc {d_acc:.2f})")]
        return [Finding("gradient_kept",
                        f"the generator's gradient did not vanish (norm {head:.2g} -> {tail:.2g}): its critic "
                        f"never won (d_acc {d_acc:.2f} < {D_ACC_WINNING:g} over the last quarter), so the "
                        f"saturation that `losslab explain {loss}` describes could not occur", vals, severity="info",
                        explain=loss,
                        short=f"the generator's gradient did not vanish: its critic never won (d_acc {d_acc:.2f})")]
    return []


def _covers_all(metrics: dict | None) -> bool:
    """The run's samples cover every mode (mixtures) or class (images) of the data."""
    for k, n in (("modes_covered", "num_modes"), ("classes_covered", "num_classes")):
        got, total = (metrics or {}).get(k), (metrics or {}).get(n)
        if isinstance(got, (int, float)) and isinstance(total, (int, float)) and total > 1:
            return got >= total
    return False


def above_margin(rows: Sequence[dict], margin: float | None, loss: str = "ebgan",
                 metrics: dict | None = None) -> list[Finding]:
    """EBGAN: the fakes' mean energy sits at or above the margin for most of training, and the generator
    failed. A run whose samples cover every mode or class (``metrics``) is not flagged: there the idle
    hinge is the equilibrium of a critic that tells fakes apart, not a failure (seen on every arm of the
    study's EBGAN ablation at 1,000 updates, 10/10 classes, docs/study.md (b))."""
    if margin is None or _covers_all(metrics):
        return []
    e = _col(rows, "d_fake")
    if len(e) < MIN_ROWS:
        return []
    share = float(np.mean(e >= margin))
    if share < SHARE:
        return []
    return [Finding("above_margin",
                    f"fakes stayed above the margin m = {margin:g} for {_pct(share)} of training (mean energy "
                    f"of fakes {float(np.median(e)):.3g}): the hinge max(0, m - E(G(z))) is zero there, so the "
                    f"critic learns nothing from fakes; the margin is too small for this data, see "
                    f"`losslab explain {loss}`", {"share": share, "margin": float(margin)}, explain=loss,
                    short=f"fakes stayed above the margin m = {margin:g} for {_pct(share)} of training, so its "
                          "critic stopped learning from them (margin too small)")]


def clip_saturation(rows: Sequence[dict], loss: str = "wgan") -> list[Finding]:
    """WGAN: most critic weights sit at the clip bound +-c over the last quarter."""
    c = _col(rows, "clip_share")
    if len(c) < MIN_ROWS:
        return []
    share = float(np.mean(c[-max(1, len(c) // 4):]))
    if share < SHARE:
        return []
    return [Finding("clip_saturation",
                    f"{_pct(share)} of the critic's weights sat at the clip bound: capacity lost to clipping "
                    f"(the critic is pushed towards a simple function), see `losslab explain {loss}`",
                    {"share": share}, explain=loss,
                    short=f"{_pct(share)} of its critic's weights sat at the clip bound")]


def k_pinned(rows: Sequence[dict], loss: str = "began") -> list[Finding]:
    """BEGAN: the equilibrium variable k_t stuck at a bound of [0, 1]."""
    k = _col(rows, "k")
    if len(k) < MIN_ROWS:
        return []
    lo, hi = float(np.mean(k <= 1e-6)), float(np.mean(k >= 1 - 1e-6))
    share, at = (lo, 0) if lo >= hi else (hi, 1)
    if share < SHARE:
        return []
    return [Finding("k_pinned",
                    f"k_t sat at {at} for {_pct(share)} of training: the equilibrium gamma E(x) = E(G(z)) "
                    f"was not held, see `losslab explain {loss}`", {"share": share, "bound": float(at)},
                    explain=loss, short=f"k_t sat at {at} for {_pct(share)} of training")]


def periodic_peak(values: Sequence[float], *, min_cycles: int = OSC_MIN_CYCLES) -> dict[str, float] | None:
    """The strongest periodic component of a detrended series, tested against red noise.

    The series is detrended (least-squares line); its periodogram ``I_k =
    |FFT_k|^2`` (k = 1 .. n/2 cycles) is compared with the spectrum of an AR(1)
    process with the series' lag-1 autocorrelation ``phi`` (clipped to [0,
    0.95]), ``S_k = 1 / (1 + phi^2 - 2 phi cos(2 pi k / n))``, scaled to the
    same total power. Under that null ``I_k / S_k`` is exponential with mean 1
    (chi-square with 2 degrees of freedom / 2), so the peak over the ``M``
    candidate frequencies (``k >= min_cycles``) has the Bonferroni p-value
    ``min(1, M exp(-max I_k / S_k))`` (Torrence & Compo 1998, Bull. Amer.
    Meteor. Soc. 79:61-78, Sec. 4a: the red-noise test of a spectral peak).
    A slowly wandering (red) or decaying series has its power at low
    frequencies and does not pass; white noise passes with probability <= p.

    Returns
    -------
    dict or None
        ``{"p_value", "cycles" (k), "period" (n / k, in values), "amplitude"
        (2 |FFT_k| / n), "phi"}``; None for fewer than ``2 min_cycles + 2``
        values or a constant series.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n < 2 * min_cycles + 2:
        return None
    t = np.arange(n, dtype=np.float64)
    r = v - np.polyval(np.polyfit(t, v, 1), t)
    spec = np.fft.rfft(r)[1:]  # k = 1 .. n // 2
    power = np.abs(spec) ** 2
    if not power.sum() > 0 or np.std(r[:-1]) == 0 or np.std(r[1:]) == 0:
        return None
    phi = float(np.clip(np.corrcoef(r[:-1], r[1:])[0, 1], 0.0, 0.95))
    f = np.arange(1, len(power) + 1) / n
    red = 1.0 / (1.0 + phi ** 2 - 2.0 * phi * np.cos(2 * np.pi * f))
    ratio = power / (red * power.sum() / red.sum())
    cand = ratio[min_cycles - 1:]
    k = min_cycles + int(np.argmax(cand))
    p = min(1.0, len(cand) * math.exp(-float(ratio[k - 1])))
    return {"p_value": p, "cycles": float(k), "period": n / k, "amplitude": 2.0 * float(np.abs(spec[k - 1])) / n,
            "phi": phi}


def oscillation(rows: Sequence[dict], key: str = "g_loss", loss: str = "") -> list[Finding]:
    """The loss swings periodically over the second half of training (:func:`periodic_peak` at p < OSC_ALPHA)."""
    v = _col(rows, key)
    if len(v) < 2 * MIN_ROWS:
        return []
    half = v[len(v) // 2:]
    peak = periodic_peak(half)
    if peak is None or peak["p_value"] >= OSC_ALPHA:
        return []
    return [Finding("oscillation",
                    f"the {key.replace('_', ' ')} oscillated over the second half of training ({peak['cycles']:.0f} "
                    f"cycles of about {peak['period']:.3g} logged steps, amplitude +-{peak['amplitude']:.3g} around "
                    f"{float(np.mean(half)):.3g}; red-noise test p = {peak['p_value']:.2g}): the two players circle "
                    f"rather than converge" + (f", see `losslab explain {loss}`" if loss else ""),
                    {"amplitude": peak["amplitude"], "cycles": peak["cycles"], "p_value": peak["p_value"]},
                    explain=loss, short=f"its {key.replace('_', ' ')} oscillated ({peak['cycles']:.0f} cycles)")]


def mode_collapse(metrics: dict) -> list[Finding]:
    """Modes (mixtures, Stacked MNIST) or classes (images) missed by the samples."""
    for k, n, what in (("modes_covered", "num_modes", "modes"), ("classes_covered", "num_classes", "classes")):
        got, total = metrics.get(k), metrics.get(n)
        if isinstance(got, (int, float)) and isinstance(total, (int, float)) and total > 1 and got < total:
            return [Finding("mode_collapse", f"mode collapse: {what} covered {got:g}/{total:g}",
                            {"covered": float(got), "total": float(total)})]
    return []


def embedding_collapse(rows: Sequence[dict]) -> list[Finding]:
    """Contrastive: every embedding close to every other (negatives as similar as positives)."""
    pos, neg = _col(rows, "pos_sim"), _col(rows, "neg_sim")
    if len(pos) < MIN_ROWS or len(neg) < MIN_ROWS:
        return []
    p, n = float(np.mean(pos[-max(1, len(pos) // 4):])), float(np.mean(neg[-max(1, len(neg) // 4):]))
    if n < 0.9 or p - n >= 0.05:
        return []
    return [Finding("embedding_collapse",
                    f"embedding collapse: negative pairs became as similar as positive ones (cosine {n:.2f} "
                    f"vs {p:.2f}), so the embedding carries little information",
                    {"pos_sim": p, "neg_sim": n}, short=f"its embedding collapsed (negative-pair cosine {n:.2f})")]


def diagnose_run(rows: Sequence[dict], *, loss: str, family: str | None = None,
                 hparams: dict | None = None, metrics: dict | None = None) -> list[Finding]:
    """Every signature that fires on one run.

    Parameters
    ----------
    rows : list of dict
        The run's ``metrics.jsonl`` rows.
    loss, family : str
        The loss name and its model family ("gan", "diffusion", "contrastive").
    hparams : dict, optional
        The loss's effective hyperparameters (``margin`` for EBGAN).
    metrics : dict, optional
        The run's final metrics (``result.json``), for mode collapse.
    """
    hp = hparams or {}
    out: list[Finding] = []
    if family in (None, "gan"):
        out += vanishing_gradient(rows, loss)
        out += above_margin(rows, hp.get("margin") if "margin" in hp else (1.0 if loss == "ebgan" else None), loss,
                            metrics)
        out += clip_saturation(rows, loss)
        out += k_pinned(rows, loss)
        out += oscillation(rows, "g_loss", loss)
    if family == "contrastive":
        out += embedding_collapse(rows)
    out += mode_collapse(metrics or {})
    return out


def findings_text(findings: Sequence[dict | Finding]) -> list[str]:
    """The sentences of findings (dicts as stored in results.json, or :class:`Finding`)."""
    return [f.text if isinstance(f, Finding) else str(f.get("text", "")) for f in findings]
