"""The comparison's answer in two to four sentences, from the measurements in ``results.json``.

:func:`answer` says which losses are best (the verdict: clear winner, no
clear winner, equivalent, not separated or undertrained, and after how many
seeds the race decided), how sure that is (the race's design and the tests it
used: Friedman, then Nemenyi, :mod:`losslab.race`) and why, in terms of the failure
signatures that :mod:`losslab.diagnose` found on the runs' curves, and, when
the comparison has a data profile, what the literature expected on data like
this and whether it held (:mod:`losslab.expectations`). When no
contrastive loss beats its baselines (the chance level and a randomly
initialised encoder) by more than the noise, the answer is "nothing
learnable", not a winner.

:func:`add_answer` is what :func:`losslab.verdict.aggregate` calls before it
writes ``results.json``: it attaches each run's ``findings`` (read from its
``metrics.jsonl``), the effective hyperparameters of every loss
(``hparams``: what the run recorded in its result.json, resolved by the
family during training, presets and overrides applied) and the ``answer``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats as sstats

from losslab import io, rundir
from losslab.diagnose import diagnose_run
from losslab.errors import UserError
from losslab.expectations import finding_phrase, profile_summary
from losslab.losses import REGISTRIES
from losslab.losses.variants import base_name
from losslab.race import Limits
from losslab.report.style import clip_ci

__all__ = ["LEARNABLE_MARGIN", "add_answer", "answer", "expected_sentence", "ladder_sentence", "learnable",
           "loss_findings", "run_hparams", "verdict_sentences"]

LEARNABLE_MARGIN = 0.02
"""A contrastive loss must beat its best baseline (chance, random encoder) by this much accuracy (2 points),
and significantly (one-sided paired t over seeds, 95%), to count as having learned something."""

STUDY_CHANCE = 0.125  # the study's random-data accuracy: 1/8, chance for 8 balanced classes


def _f(x: Any, digits: int = 3) -> str:
    """A number in a sentence: 3 significant digits; n/a for missing."""
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def _pct(x: Any) -> str:
    return "n/a" if not isinstance(x, (int, float)) or not math.isfinite(x) else f"{100 * float(x):.1f}%"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _p(p: Any) -> str:
    return "n/a" if p is None else ("< 1e-4" if p < 1e-4 else f"{p:.2g}")


# ------------------------------------------------------------------ findings per loss


def loss_findings(results: dict, loss: str) -> list[dict[str, Any]]:
    """A loss's findings merged over its seeds: ``{"name", "text", "severity", "seeds", "n_runs"}``.

    ``text`` is the first seed's sentence, ``seeds`` how many runs showed it,
    ``n_runs`` how many runs of the loss were diagnosed. Failures first.
    """
    runs = [r for r in results.get("runs") or [] if r.get("loss") == loss and r.get("status") != "missing"]
    merged: dict[str, dict[str, Any]] = {}
    covered: list[str] = []
    for r in runs:
        seen: set[str] = set()
        for f in r.get("findings") or []:
            if f["name"] in seen:  # one count per run
                continue
            seen.add(f["name"])
            m = merged.setdefault(f["name"], {"name": f["name"], "text": f["text"],
                                              "short": f.get("short") or f["text"],
                                              "severity": f.get("severity", "failure"), "seeds": 0,
                                              "n_runs": len(runs)})
            m["seeds"] += 1
            if f["name"] == "mode_collapse":
                v = f.get("values") or {}
                covered.append(f"{_f(v.get('covered'))}/{_f(v.get('total'))}")
    if "mode_collapse" in merged and len(covered) > 1:  # every seed's count, not the first one's
        what = "classes" if "classes" in merged["mode_collapse"]["text"] else "modes"
        merged["mode_collapse"]["text"] = f"mode collapse: {what} covered {', '.join(covered)}"
        merged["mode_collapse"]["short"] = f"{what} covered {', '.join(covered)}"
    elif "mode_collapse" in merged:
        merged["mode_collapse"]["short"] = merged["mode_collapse"]["text"].replace("mode collapse: ", "")
    return sorted(merged.values(), key=lambda m: (m["severity"] != "failure", -m["seeds"]))


def _why(results: dict, loss: str, limit: int = 2) -> list[str]:
    """One 'loss: finding (k/n seeds), finding' clause: its first ``limit`` findings in short form,
    the signatures on its curves (which explain) before mode collapse (which is the symptom)."""
    found = sorted(loss_findings(results, loss), key=lambda m: m["name"] == "mode_collapse")[:limit]
    bits = []
    for m in found:
        seeds = f" ({m['seeds']}/{m['n_runs']} seeds)" if m["n_runs"] > 1 and m["name"] != "mode_collapse" else ""
        bits.append(f"{m['short']}{seeds}")
    return [f"{loss}: " + " and ".join(bits)] if bits else []


def _outlier(entry: dict) -> str | None:
    """A seed that alone drives a loss's mean: farther from the other seeds' median than 10x their spread."""
    vals, seeds = entry.get("values") or [], entry.get("seeds") or []
    if len(vals) < 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
        return None
    for i, v in enumerate(vals):
        rest = np.delete(np.asarray(vals, dtype=np.float64), i)
        med = float(np.median(rest))
        spread = max(float(np.max(np.abs(rest - med))), 1e-3 * max(abs(med), 1e-12))
        if abs(v - med) > 10 * spread and abs(v - med) > 0.5 * abs(med):
            return (f"One seed drives {entry['loss']}'s mean (seed {seeds[i] if i < len(seeds) else i}: "
                    f"{_f(v)} against {_f(med)} for the others)")
    return None


def expected_sentence(results: dict, limit: int = 2) -> str | None:
    """The data's profile and the first ``limit`` literature expectations with their outcome, or None.

    Testable expectations (held or did not hold) come first, in the table
    order of :data:`losslab.expectations.EXPECTATIONS`; the results of one
    row with the same outcome make one clause; None when
    ``results`` has no ``expectations``.
    """
    exp = [e for e in results.get("expectations") or [] if isinstance(e, dict) and e.get("claim")]
    if not exp:
        return None
    groups: dict[tuple, list[dict]] = {}  # one clause per (row, outcome): "ns ... and minimax ..., as ..."
    for e in [e for e in exp if e.get("held") is not None] + [e for e in exp if e.get("held") is None]:
        groups.setdefault((e.get("name"), e.get("held")), []).append(e)
    pick = list(groups.values())[:limit]
    return f"On this data ({profile_summary(results.get('data_profile'))}): " \
        + "; ".join(finding_phrase(g) for g in pick) + "."


# ------------------------------------------------------------------ nothing learnable


def learnable(results: dict) -> dict[str, Any] | None:
    """For a contrastive comparison: does any loss beat its baselines? None for other families.

    Learnability is a question about accuracy: the ranked metric when it is
    an accuracy with a random-encoder baseline (``linear_probe``, ``knn``),
    else ``linear_probe`` (e.g. ``--metric uniformity`` or ``alignment``, which
    have no chance level and whose direction is not an accuracy's). Per seed
    the baseline is the larger of ``chance`` (the most frequent test class)
    and ``<metric>_random_encoder`` (the same architecture, untrained) of that
    run; a loss has learned when its mean gain over that baseline exceeds
    :data:`LEARNABLE_MARGIN` and, with >= 2 seeds, the one-sided paired t-test
    rejects "no gain" at 5%.

    Returns
    -------
    dict or None
        ``{"any": bool, "metric": the accuracy judged, "chance": mean chance,
        "baseline": mean baseline, "gains": {loss: mean gain}, "learned": [loss, ...]}``.
    """
    if "contrastive" not in str(results.get("family") or ""):
        return None
    primary = str((results.get("primary_metric") or {}).get("name") or "linear_probe")
    if primary not in ("linear_probe", "knn"):  # an accuracy with baselines (higher is better)
        primary = "linear_probe"
    gains: dict[str, float] = {}
    learned, chances, bases = [], [], []
    for loss in {str(r.get("loss")) for r in results.get("runs") or []}:
        d = []
        for r in results.get("runs") or []:
            m = r.get("metrics") or {}
            if r.get("loss") != loss or r.get("status") != "ok" or not isinstance(m.get(primary), (int, float)):
                continue
            base = [m[k] for k in ("chance", f"{primary}_random_encoder") if isinstance(m.get(k), (int, float))]
            if not base:
                continue
            chances += [m["chance"]] if isinstance(m.get("chance"), (int, float)) else []
            bases.append(max(base))
            d.append(float(m[primary]) - max(base))
        if not d:
            continue
        gains[loss] = float(np.mean(d))
        if len(d) >= 2:
            sd = float(np.std(d, ddof=1))
            t_ok = sd == 0 or gains[loss] / (sd / math.sqrt(len(d))) > float(sstats.t.ppf(0.95, len(d) - 1))
        else:
            t_ok = True
        if gains[loss] > LEARNABLE_MARGIN and t_ok:
            learned.append(loss)
    if not gains:
        return None
    return {"any": bool(learned), "metric": primary, "chance": float(np.mean(chances)) if chances else None,
            "baseline": float(np.mean(bases)), "gains": gains, "learned": sorted(learned)}


# ------------------------------------------------------------------ the answer


def _ci(e: dict, metric: str = "") -> str:
    """``mean [lo, hi]``, the interval clipped to the metric's domain (:func:`losslab.report.style.clip_ci`)."""
    ci, _ = clip_ci(metric, e.get("ci95"))
    s = _f(e.get("mean"))
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
        s += f" [{_f(ci[0])}, {_f(ci[1])}]"
    return s


def _seeds_text(race: dict) -> str:
    """'after N seeds (began after 3, ebgan after 5)': when the race decided, and when each loss left it."""
    looks = race.get("looks") or []
    n = looks[-1]["n_seeds"] if looks else 0
    gone = race.get("eliminated_at") or {}
    left = ", ".join(f"{x} after {k}" for x, k in sorted(gone.items(), key=lambda kv: (kv[1], kv[0])))
    return f"after {n} seed{'s' if n != 1 else ''}" + (f" (shown worse: {left})" if left else "")


def _what_decides(race_info: dict) -> str:
    """:meth:`losslab.race.Limits.what_decides` for the comparison's race (a fixed design: one planned look)."""
    lim = race_info.get("limits") or {}
    looks = race_info.get("looks") or []
    n = int(looks[-1]["n_seeds"]) if looks else 1
    plan = lim.get("looks") or [n]
    if all(k in lim for k in ("first", "step", "cap")):
        limits = Limits(first=int(lim["first"]), step=int(lim["step"]), cap=int(lim["cap"]))
    elif len(plan) <= 1:
        limits = Limits(first=n, step=0, cap=n)
    else:
        limits = Limits(first=int(plan[0]), step=int(plan[1]) - int(plan[0]), cap=int(plan[-1]))
    return limits.what_decides(n)


COVERAGE_METRICS = (("classes_covered", "num_classes", "classes"), ("modes_covered", "num_modes", "modes"))
"""(metric, its total in the run's metrics, word): what the answer reports for losses the race did not separate."""


def coverage_clause(results: dict, group: Sequence[str]) -> str | None:
    """How many classes (images) or modes (mixtures) each loss of ``group`` covered, or None without them.

    For the losses a race left together (not separated, or equivalent): a tie on the ranked metric says
    nothing about mode collapse, so the answer adds it. E.g. "Classes covered: 10 of 10 on every seed of
    ebgan, ebgan[pt_weight=0]" or "Modes covered of 8: r3gan 8 on 5 of 8 seeds (7-8), r1 8 on 7 of 8 (6-8)".
    """
    runs = [r for r in results.get("runs") or [] if r.get("status") == "ok" and r.get("loss") in group]
    for key, total_key, word in COVERAGE_METRICS:
        per = {loss: [(m[key], m.get(total_key)) for r in runs if r.get("loss") == loss
                      and isinstance((m := r.get("metrics") or {}).get(key), (int, float))] for loss in group}
        if not all(per.values()):
            continue
        totals = {t for v in per.values() for _, t in v if isinstance(t, (int, float))}
        if len(totals) != 1:
            continue
        total = int(totals.pop())
        if all(int(c) == total for v in per.values() for c, _ in v):
            return f"{word.capitalize()} covered: {total} of {total} on every seed of {_join(list(group))}"
        parts = []
        for loss, v in per.items():
            cs = [int(c) for c, _ in v]
            full = sum(c == total for c in cs)
            parts.append(f"{loss} {total} on {full} of {len(cs)} seeds ({min(cs)}-{max(cs)})")
        return f"{word.capitalize()} covered of {total}: " + ", ".join(parts)
    return None


def verdict_sentences(results: dict, best: dict, group: list[str], ranking: list[dict], data: Any,
                      primary: str, higher: bool) -> list[str]:
    """The answer's first two sentences: what the race showed, and how (the tests actually used).

    Only what was shown: "clear winner" when every other loss was shown worse; "equivalent within
    +-delta" only from paired TOST; otherwise "not separated after N seeds" with the difference that
    would have been found with 80% probability, the best so far and what would decide it.
    """
    rec = results.get("recommendation") or {}
    race = results.get("race") or {}
    verdict = rec.get("verdict")
    direction = "higher" if higher else "lower"
    when = _seeds_text(race)
    worse = [e["loss"] for e in ranking if e["loss"] not in group]
    out: list[str] = []
    if verdict == "undertrained":
        out.append(f"Undertrained: most runs had not converged at this budget, so no pick is reliable yet; "
                   f"not shown worse so far {_join(group)} by {primary} ({direction} is better; best so far "
                   f"{best['loss']} {_ci(best, primary)}). Train longer (more --steps).")
    elif verdict == "clear winner":
        second = next((e for e in ranking if e["loss"] != best["loss"]), None)
        out.append(f"{best['loss']} is the clear winner on {data}, decided {when}: {primary} "
                   f"{_ci(best, primary)} ({direction} is better)"
                   + (f", against {second['loss']}'s {_ci(second, primary)}" if second else "") + ".")
    elif verdict == "equivalent":
        eq = rec.get("equivalent") or {}
        cover = coverage_clause(results, group)
        out.append(f"{_join(group)} are equivalent on {data} within +-{_f(eq.get('delta'))} {primary} (paired TOST "
                   f"on every pair, largest p {_p(eq.get('p_max'))}; margin: {eq.get('source')}), decided {when}"
                   + (f"; {_join(worse)} did worse" if worse else "") + "." + (f" {cover}." if cover else ""))
    else:
        pairs = [r for r in rec.get("pairwise") or [] if r.get("a") == best["loss"] and r.get("b") in group]
        dd = [r["detectable"] for r in pairs if isinstance(r.get("detectable"), (int, float))]
        x = (f" (a difference of {_f(max(dd))} or more would have been found with 80% probability)" if dd else "")
        out.append(f"No winner on {data}: {_join(group)} not separated by {primary} {when}{x}; best so far "
                   f"{best['loss']} {_ci(best, primary)} ({direction} is better)"
                   + (f"; {_join(worse)} shown worse" if worse else "")
                   + "." + (f" {cover}." if (cover := coverage_clause(results, group)) else "")
                   + f" What would decide it: {_what_decides(race)}.")
    lim = race.get("limits") or {}
    n_looks = len(lim.get("looks") or [1])
    tests = (f"Friedman's test, then Nemenyi's all-pairs comparison of mean ranks within seeds (Demsar 2006), "
             "repeated on the losses left until none more is shown worse (step-down), "
             f"at {_p(lim.get('alpha_look'))} per look over {n_looks} look{'s' if n_looks != 1 else ''}")
    seeds = race.get("seeds_per_loss") or {}
    spread = sorted(set(seeds.values()))
    got = (f"{spread[0]} seeds per loss" if len(spread) == 1 else
           f"{spread[0]}-{spread[-1]} seeds per loss (a loss shown worse got no more)") if spread else "no seeds"
    design = "a race on paired seeds" if n_looks > 1 else "a fixed design"
    out.append(f"How sure: {design}, {got}; {tests}, so the chance of calling any loss worse when all are alike "
               f"is at most {_p(lim.get('alpha'))}; a diverged run counts as the worst rank.")
    return out


def answer(results: dict) -> list[str]:
    """Two to four sentences that answer the comparison, from ``results.json``.

    1. What is best: the verdict, the best group and the primary metric's seed
       means (or "nothing learnable" with the chance level for a contrastive
       comparison whose losses do not beat their baselines, :func:`learnable`).
    1-2. :func:`verdict_sentences`: what the race showed (winner, equivalence by TOST, or "not separated
       after N seeds" with the detectable difference) and how sure (design, seeds, the tests used).
    3. With a data profile: what the literature expected on data like this
       and whether it held here (:func:`expected_sentence`).
    3-4. Why: the failure signatures of the runs (``findings``) of the worst
       and of the best losses, and a seed that alone drives a mean.

    With a quality ladder (image data, :func:`losslab.verdict.add_ladder`) one more
    sentence, second: where the best loss's mean FID sits among the rungs
    (:func:`ladder_sentence`).
    """
    rec = results.get("recommendation") or {}
    ranking = [e for e in results.get("ranking") or [] if e.get("mean") is not None]
    pm = results.get("primary_metric") or {}
    primary, higher = str(pm.get("name") or "?"), bool(pm.get("higher_is_better"))
    ds = results.get("dataset") or {}
    data = ds.get("name") if isinstance(ds, dict) else ds
    if not ranking or not rec.get("loss"):
        return [f"No answer: no loss finished every seed on {data}; see the runs table for the errors."]
    by = {e["loss"]: e for e in ranking}
    best = by.get(rec["loss"], ranking[0])
    group = [g for g in rec.get("best_group") or [] if g in by] or [best["loss"]]
    out: list[str] = []

    learn = learnable(results)
    if learn is not None and not learn["any"]:
        chance = learn["chance"]
        top = max(learn["gains"].items(), key=lambda kv: kv[1])
        acc = learn["metric"]
        vals = [r["metrics"][acc] for r in results.get("runs") or [] if r.get("loss") == best["loss"]
                and r.get("status") == "ok" and isinstance((r.get("metrics") or {}).get(acc), (int, float))]
        reached = float(np.mean(vals)) if vals else None
        out.append(f"Nothing learnable: no loss beats its baselines on {data}; the best, {best['loss']}, reaches "
                   f"{acc} {_pct(reached)} against a chance level of {_pct(chance)} (the most frequent "
                   f"class) and an untrained encoder's {_pct(learn['baseline'])} (largest gain {top[0]}'s "
                   f"{100 * top[1]:+.1f} points, within noise), so the ranking is an ordering of noise.")
        out.append(f"The study's 12.5% is the same finding: {_pct(STUDY_CHANCE)} is chance for 8 balanced "
                   f"classes (1/8), as {_pct(chance)} is here; labels drawn independently of the inputs "
                   "cannot be learned by any loss.")
        return out

    out += verdict_sentences(results, best, group, ranking, data, primary, higher)

    expected = expected_sentence(results)
    if expected:
        out.append(expected)

    why: list[str] = []
    for e in reversed(ranking):  # the worst first: what went wrong
        if e["loss"] == best["loss"]:
            continue
        why += _why(results, e["loss"])
        if len(why) >= 2:
            break
    why += _why(results, best["loss"])
    outliers = [o for o in (_outlier(e) for e in ranking) if o]
    if why:
        out.append("Why: " + "; ".join(why[:3]) + ".")
    if outliers and len(out) < 4:
        out.append(outliers[0] + "; a mean over so few seeds hides it.")
    if learn is not None and learn["learned"] and len(out) < 4:
        out.append(f"Against the baselines: {_join(learn['learned'])} beat chance ({_pct(learn['chance'])}) and an "
                   f"untrained encoder ({_pct(learn['baseline'])}) by more than {100 * LEARNABLE_MARGIN:.0f} points.")
    rung = ladder_sentence(results, best["loss"])
    if rung:
        out.insert(1, rung)
    return out[:4]  # two to four sentences


def ladder_sentence(results: dict, loss: str) -> str | None:
    """Where ``loss``'s mean FID sits on the quality ladder (``results["ladder"]``), or None without one.

    E.g. "On the quality ladder (FID of known image sets in the same feature space, 2000 images each),
    ns's mean FID 0.412 sits between 'blurred real' (0.301) and 'two classes' (0.655)."
    """
    ladder = results.get("ladder") or {}
    row = next((e for e in results.get("ranking") or [] if e.get("loss") == loss), None)
    if not ladder.get("rungs") or not row or not row.get("ladder_place"):
        return None
    fid = {r.get("rung"): r.get("fid") for r in ladder["rungs"]}
    place = str(row["ladder_place"])
    for name, value in fid.items():  # name each rung's own FID after it
        place = place.replace(f"'{name}'", f"'{name}' ({_f(value)})")
    return (f"On the quality ladder (FID of known image sets in the same feature space, {ladder.get('n')} images "
            f"each), {loss}'s mean FID {_f(row.get('fid_mean'))} sits {place}.")


# ------------------------------------------------------------------ attach to results.json


def run_hparams(run: dict) -> dict[str, Any]:
    """A run's resolved loss hyperparameters as its result.json records them
    (:func:`losslab.train.loop.resolved_hparams`); ``{}`` for a run written before
    result.json carried them (the report then shows a dash)."""
    hp = run.get("hparams")
    return dict(hp) if isinstance(hp, dict) else {}


def add_answer(out: str | Path, results: dict) -> dict:
    """Attach ``findings`` to each run, ``hparams`` per loss and the ``answer`` to ``results`` (in place).

    Reads each run's ``metrics.jsonl`` under ``out`` and its hyperparameters from
    the run's result.json entry; a missing or unreadable file gives no findings /
    no hyperparameters, never an error. Returns ``results``.
    """
    out = Path(out)
    hparams: dict[str, dict] = {}
    for r in results.get("runs") or []:
        rd = out / str(r.get("run_dir") or "")
        if not r.get("run_dir") or r.get("status") == "missing":
            continue
        hp = run_hparams(r)
        if hp and str(r.get("loss")) not in hparams:
            hparams[str(r.get("loss"))] = hp
        try:
            rows = io.read_jsonl(rd / rundir.METRICS)
        except (OSError, UnicodeDecodeError, UserError, ValueError):
            rows = []
        family = r.get("family") or next((f for f, reg in REGISTRIES.items() if base_name(str(r.get("loss"))) in reg),
                                         None)
        r["findings"] = [f.to_dict() for f in diagnose_run(rows, loss=str(r.get("loss")), family=family,
                                                           hparams=hp, metrics=r.get("metrics") or {})]
    results["hparams"] = hparams
    results["answer"] = answer(results)
    return results
