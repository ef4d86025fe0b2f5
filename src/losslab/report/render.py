"""The report as a list of blocks, rendered to Markdown and to self-contained HTML.

Both outputs come from the same blocks, so they carry the same content. A
block is a tuple:

``("h1" | "h2" | "h3", text)``, ``("p", inline)``, ``("ul", [inline, ...])``,
``("table", header, rows)`` (cells are inline), ``("fig", relpath, caption)``,
``("answer", [inline, ...])`` (the opening sentences, set apart),
``("details", summary, [block, ...])`` (collapsible; no figures inside).

``inline`` is a string or a list of parts, each a string or ``("b", text)`` /
``("code", text)``. Text is escaped at render time (Markdown specials,
HTML entities), never before.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any, Sequence

from losslab.expectations import outcome_word
from losslab.report.answer import loss_findings
from losslab.report.families import describe
from losslab.report.plots import is_number
from losslab.report.style import clip_ci, domain

DASH = "\u2014"  # shown for a missing / NaN / null value

METRIC_LABELS = {
    "w1": "W1",
    "modes_covered": "modes covered",
    "high_quality": "% high quality",
    "reverse_kl": "reverse KL",
    "ks": "KS",
    "swd": "SWD",
    "fid": "FID",
    "classes_covered": "classes covered",
    "class_kl": "class KL",
}
PERCENT_METRICS = {"high_quality"}  # fractions in [0, 1], shown as percent
HIDDEN_METRICS = {"num_modes", "num_classes"}  # constant per dataset

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1150px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #eee}
h3{font-size:1.05em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #d0d0d0;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}
tr:nth-child(even) td{background:#fafafa}
code{background:#f2f2f2;padding:0 .25em;border-radius:3px;font-size:.92em}
figure{margin:1em 0 2em}
img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em;margin-top:.3em}
.answer{background:#eef5fb;border-left:4px solid #0072B2;padding:.5em 1em;margin:1em 0}
.answer p{margin:.4em 0}
details{margin:.8em 0}
summary{cursor:pointer;font-weight:600}
td code{white-space:normal;word-break:break-word}
"""


# ---------------------------------------------------------------- numbers


def fmt_num(x: Any, *, percent: bool = False) -> str:
    """A number for a table cell; ``None``, NaN, inf and non-numbers give an em dash.

    Parameters
    ----------
    x : Any
        The value; ints print exactly, floats with 4 significant digits
        (scientific below 0.01, no decimals from 1000 up).
    percent : bool
        ``x`` is a fraction in [0, 1]; print ``100 x`` followed by ``%``.
    """
    if not is_number(x):
        return DASH
    if percent:
        return fmt_num(100.0 * float(x)) + "%"
    if isinstance(x, (int,)) or (hasattr(x, "dtype") and x.dtype.kind in "iu"):
        return str(int(x))
    x = float(x)
    a = abs(x)
    if a == 0.0:
        return "0"
    if a >= 1000:
        return f"{x:.0f}"
    if a >= 0.01:
        return f"{x:.4g}"
    return f"{x:.3e}"


def fmt_ci(mean: Any, ci: Any, *, percent: bool = False, metric: str | None = None,
           upper: float | None = None) -> str:
    """``"mean [lo, hi]"``; just ``"mean"`` without a valid CI; an em dash without a mean.

    Parameters
    ----------
    mean : float or None
        Seed mean of a metric.
    ci : [lo, hi] or None
        95% confidence interval of the mean (null when fewer than 2 ok seeds).
    metric : str, optional
        The metric's name: the interval is clipped to its domain
        (:func:`losslab.report.style.clip_ci`) and a clipped bound carries ``*``.
    upper : float, optional
        Upper bound where the domain has none (number of modes).
    """
    if not is_number(mean):
        return DASH
    s = fmt_num(mean, percent=percent)
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(is_number(c) for c in ci):
        lo, hi = ci
        mark = ["", ""]
        if metric is not None:
            (lo, hi), _ = clip_ci(metric, ci, upper=upper)
            mark = ["*" if lo != ci[0] else "", "*" if hi != ci[1] else ""]
        s += f" [{fmt_num(lo, percent=percent)}{mark[0]}, {fmt_num(hi, percent=percent)}{mark[1]}]"
    return s


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)


# --------------------------------------------------------------- inline text

_MD_SPECIAL = re.compile(r"([\\`*|])|<(?=[A-Za-z/!?])")


def _md_text(s: str) -> str:
    s = re.sub(r"\s+", " ", str(s))  # one line: tables and bullets break on newlines
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(1) if m.group(1) else "&lt;", s)


def _parts(inline: Any) -> list:
    return [inline] if isinstance(inline, str) else list(inline)


def code_spans(text: str) -> list:
    """Inline parts of a sentence whose `backquoted` spans are code (commands such as `losslab explain ns`)."""
    bits = str(text).split("`")
    if len(bits) % 2 == 0:  # an unpaired backquote: plain text
        return [str(text)]
    return [("code", b) if i % 2 else b for i, b in enumerate(bits) if b]


def _md_inline(inline: Any) -> str:
    out = []
    for part in _parts(inline):
        if isinstance(part, tuple):
            style, text = part
            if style == "code":
                text = re.sub(r"\s+", " ", str(text)).strip()
                fence = "``" if "`" in text else "`"
                out.append(f"{fence}{text}{fence}")
            else:  # "**x** " not "**x **": a closing ** after a space is not emphasis in CommonMark
                t = _md_text(text)
                lead, core, trail = t[: len(t) - len(t.lstrip())], t.strip(), t[len(t.rstrip()) :]
                out.append(f"{lead}**{core}**{trail}" if core else t)
        else:
            out.append(_md_text(part))
    return "".join(out)


def _html_inline(inline: Any) -> str:
    out = []
    for part in _parts(inline):
        if isinstance(part, tuple):
            tag = "code" if part[0] == "code" else "strong"
            out.append(f"<{tag}>{html.escape(str(part[1]))}</{tag}>")
        else:
            out.append(html.escape(str(part)))
    return "".join(out)


# --------------------------------------------------------------- renderers


def to_markdown(blocks: Sequence[tuple]) -> str:
    """Render blocks as GitHub-flavoured Markdown; figures link to their relative paths."""
    out: list[str] = []
    nfig = 0
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + _md_inline(b[1]))
        elif kind == "p":
            out.append(_md_inline(b[1]))
        elif kind == "ul":
            out.append("\n".join("- " + _md_inline(item) for item in b[1]))
        elif kind == "table":
            header, rows = b[1], b[2]
            lines = ["| " + " | ".join(_md_inline(h) for h in header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_inline(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "fig":
            nfig += 1
            out.append(f"![{_md_text(Path(b[1]).stem)}]({b[1]})\n\n*Figure {nfig}.* {_md_inline(b[2])}")
        elif kind == "answer":
            out.append("\n>\n".join("> " + _md_inline(item) for item in b[1]))
        elif kind == "details":
            out.append(f"<details><summary>{html.escape(str(b[1]))}</summary>\n\n"
                       + to_markdown(b[2]).rstrip("\n") + "\n\n</details>")
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return "\n\n".join(out) + "\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(blocks: Sequence[tuple], *, base: Path, title: str) -> str:
    """Render blocks as one self-contained HTML page (inline CSS, figures as base64 data URIs).

    Parameters
    ----------
    blocks : list of tuple
        See the module docstring.
    base : Path
        Directory the figure paths are relative to (the comparison's OUT).
    title : str
        Page ``<title>``.
    """
    out = _html_blocks(blocks, base)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(out)
        + "\n</body>\n</html>\n"
    )


def _html_blocks(blocks: Sequence[tuple], base: Path) -> list[str]:
    """The HTML of each block (figures numbered from 1)."""
    out: list[str] = []
    nfig = 0
    for b in blocks:
        kind = b[0]
        if kind == "answer":
            out.append('<div class="answer">' + "".join(f"<p>{_html_inline(x)}</p>" for x in b[1]) + "</div>")
        elif kind == "details":
            out.append(f"<details><summary>{html.escape(str(b[1]))}</summary>"
                       + "\n".join(_html_blocks(b[2], base)) + "</details>")
        elif kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_html_inline(b[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_html_inline(b[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_html_inline(item)}</li>" for item in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_html_inline(h)}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>" for row in b[2])
            out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
        elif kind == "fig":
            nfig += 1
            alt = html.escape(Path(b[1]).stem)
            out.append(
                f'<figure><img src="{_data_uri(base / b[1])}" alt="{alt}">'
                f"<figcaption><em>Figure {nfig}.</em> {_html_inline(b[2])}</figcaption></figure>"
            )
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return out


# ------------------------------------------------------------ report content


def _dataset_line(ds: dict) -> list:
    bits = [str(ds.get("kind") or "?")]
    if ds.get("shape"):
        bits.append("shape (" + ", ".join(str(s) for s in ds["shape"]) + ("," if len(ds["shape"]) == 1 else "") + ")")
    if is_number(ds.get("num_modes")):
        bits.append(f"{ds['num_modes']} modes")
    return [("b", "Dataset: "), ("code", ds.get("name", "?")), " (" + ", ".join(bits) + ")"]


def _method(p: dict, key: str) -> str:
    m = (p.get("methods") or {}).get(key) or {}
    return str(m.get("method") or DASH)


_SHORT_METHOD = {"num_modes": "Gaussian mixture, BIC", "separation": "centre distance / within-mode std",
                 "intrinsic_dim": "TwoNN", "tails": "excess kurtosis; MAD outliers", "mean_intensity": "pixel mean",
                 "sparsity": "per-pixel std", "class_balance": "label counts"}


def profile_blocks(p: dict | None) -> list[tuple]:
    """The data profile (``results["data_profile"]``) as a short table, with each figure's method and source.

    The table has one row per figure (modes, separation, intrinsic dimension,
    tails; images: size and channels, near-constant pixels; labels: class
    balance) and a short name of its method; the full method and its source
    follow in a collapsible list (the footnotes). No blocks without a profile.
    """
    if not isinstance(p, dict):
        return []

    def num(x: Any, spec: str = ".3g") -> str:
        return format(float(x), spec) if is_number(x) else DASH

    modes = (f"{p.get('num_modes')}{'+ (search cap)' if p.get('num_modes_capped') else ''}"
             if is_number(p.get("num_modes")) else DASH)
    if p.get("kind") == "image" and isinstance(p.get("class_balance"), dict):  # labelled images: the classes
        modes += " (the classes)"
        short_names = dict(_SHORT_METHOD, num_modes="class labels")
    else:
        short_names = _SHORT_METHOD
    share = p.get("outlier_share")
    rows: list[list] = [
        ["modes", modes, "num_modes"],
        ["separation", f"closest centres {num(p.get('separation_min'))}, median {num(p.get('separation_median'))} "
                       "within-mode std apart" if is_number(p.get("separation_min")) else f"{DASH} (one mode)",
         "separation"],
        ["intrinsic dimension", f"{num(p.get('intrinsic_dim'))} (ambient {p.get('dim')})", "intrinsic_dim"],
        ["tails", ("heavy" if p.get("heavy_tailed") else "light") + f": excess kurtosis max "
                  f"{num(p.get('kurtosis_max'))}, mean {num(p.get('kurtosis_mean'))}; outliers "
                  + (f"{100 * float(share):.2f}%" if is_number(share) else DASH), "tails"],
    ]
    if p.get("kind") == "image":
        rows.append(["images", f"{p.get('channels')} channel(s), {p.get('height')}x{p.get('width')}, mean "
                               f"intensity {num(p.get('mean_intensity'))} on [0, 1]", "mean_intensity"])
        if is_number(p.get("sparsity")):
            rows.append(["sparsity", f"{100 * float(p['sparsity']):.1f}% near-constant pixels", "sparsity"])
    cb = p.get("class_balance")
    if isinstance(cb, dict) and cb.get("counts"):
        rows.append(["class balance", f"{len(cb['counts'])} classes, min/max count {num(cb.get('min_max_ratio'))}, "
                                      f"entropy / log K {num(cb.get('normalized_entropy'))}", "class_balance"])
    keys = [r[2] for r in rows if r[2] in (p.get("methods") or {})]
    foot = {k: i for i, k in enumerate(keys, 1)}
    table = [[[("b", r[0])], r[1], f"{short_names.get(r[2], r[2])} [{foot[r[2]]}]" if r[2] in foot else DASH]
             for r in rows]
    notes = [[f"[{foot[k]}] ", ("b", k), f": {_method(p, k)}. Source: "
              f"{(p.get('methods') or {}).get(k, {}).get('source') or DASH}."] for k in keys]
    n = f"{p.get('n_samples')} training rows, {p.get('n_used')} used by the estimators (seed {p.get('seed')})"
    out: list[tuple] = [
        ("h2", "The data"),
        ("p", [("code", str(p.get("name") or "?")), f" ({p.get('kind')}, dimension {p.get('dim')}; {n}), "
               "measured before training (", ("code", "losslab profile"), "):"]),
        ("table", ["", "value", "method"], table),
    ]
    if notes:
        out.append(("details", "How each figure was measured, and the source", [("ul", notes)]))
    return out


def expectation_blocks(expectations: Any, has_profile: bool) -> list[tuple]:
    """The section "What the literature expected, and what happened here": one row per tested expectation."""
    if not has_profile:
        return []
    exp = [e for e in expectations or [] if isinstance(e, dict)]
    out: list[tuple] = [("h2", "What the literature expected, and what happened here")]
    if not exp:
        out.append(("p", ["No row of the expectations table (", ("code", "losslab.expectations"),
                          ") applies to data of this profile and these losses."]))
        return out
    counts = {w: sum(outcome_word(e.get("held")) == w for e in exp) for w in ("held", "did not hold",
                                                                            "not testable here")}
    out.append(("p", "Each row is a claim of the literature about these losses on data with this profile, tested "
                     "on this comparison's runs: " + ", ".join(f"{n} {w}" for w, n in counts.items()) + "."))
    rows = [[str(e.get("claim")), ", ".join(e.get("losses") or []), [("b", outcome_word(e.get("held")))],
             str(e.get("evidence") or DASH), str(e.get("when") or DASH), str(e.get("source") or DASH)] for e in exp]
    out.append(("table", ["expected", "losses", "here", "evidence", "when (the data's condition)", "source"], rows))
    return out


def metric_columns(ranking: Sequence[dict], primary: str) -> list[str]:
    """Scalar metric names occurring in any ``metrics_mean`` (first-seen order), minus the primary."""
    names: list[str] = []
    for row in ranking:
        for k, v in (row.get("metrics_mean") or {}).items():
            if k not in names and k != primary and k not in HIDDEN_METRICS and (v is None or is_number(v)):
                names.append(k)
    return names


def _floor_cell(f: Any, metric: str) -> str:
    """A noise-floor entry ``{"mean", "sd"}`` as ``mean +- sd`` (a dash where there is none)."""
    if not isinstance(f, dict) or not is_number(f.get("mean")):
        return DASH
    pct = metric in PERCENT_METRICS
    sd = f" \u00b1 {fmt_num(f['sd'], percent=pct)}" if is_number(f.get("sd")) else ""
    return fmt_num(f["mean"], percent=pct) + sd


def run_status(run: dict) -> str:
    """``ok`` / ``failed`` / ``diverged at step N``."""
    status = str(run.get("status") or "?")
    if status == "diverged" and is_number(run.get("diverged_at")):
        return f"diverged at step {run['diverged_at']}"
    return status


def report_blocks(results: dict, figures: Sequence[tuple[str, str, str]],
                  learning: Sequence[tuple[str, str, str]] = ()) -> list[tuple]:
    """The whole report as blocks.

    Parameters
    ----------
    results : dict
        Parsed ``results.json`` (schema in ``docs/ARCHITECTURE.md``).
    figures : list of (relpath, heading, caption)
        Figures already written, paths relative to OUT.
    learning : list of (relpath, heading, caption)
        The "How each loss learned" figures (:func:`losslab.report.learning.learning_figures`).
    """
    ranking = results.get("ranking") or []
    blocks = _head_blocks(results)
    blocks += _ranking_blocks(results)
    blocks += ladder_blocks(results)
    blocks += _recommendation_blocks(results)
    blocks += _diagnosis_blocks(results, ranking)
    blocks += _hparam_blocks(results)
    blocks += _figure_blocks(figures, learning)
    blocks += _runs_blocks(results)
    return blocks


def _context(results: dict) -> tuple:
    """What every part of the report reads: dataset dict, family, its words, primary metric, direction."""
    ds = results.get("dataset") or {}
    ds = ds if isinstance(ds, dict) else {"name": str(ds)}
    family = str(results.get("family") or "gan")
    words = describe(family)
    pm = results.get("primary_metric") or {}
    primary, hib = str(pm.get("name") or "?"), bool(pm.get("higher_is_better"))
    return ds, family, words, pm, primary, hib



def _head_blocks(results: dict) -> list[tuple]:
    """The title, the answer, the header list (data, family, budget, metric, runs) and the data profile."""
    ds, family, words, pm, primary, hib = _context(results)
    budget = results.get("budget") or {}
    ranking = results.get("ranking") or []
    runs = results.get("runs") or []
    header = [
        _dataset_line(ds),
        [("b", "Model family: "), family.upper()],
        [
            ("b", "Budget: "),
            f"{fmt_num(budget.get('g_updates'))} {words.unit} per run, batch size "
            f"{fmt_num(budget.get('batch_size'))}"
            + (f"; {budget['note']}" if budget.get("note") else ", the same for every loss"),
        ],
        [("b", "Primary metric: "), ("code", primary), f" ({'higher' if hib else 'lower'} is better)"]
        + ([": " + str(pm["description"])] if pm.get("description") else []),
    ]
    if ds.get("feature_net"):
        header.append([("b", "Feature network: "), ("code", ds["feature_net"])] + _quality_text(ds))
    known = ["ok", "diverged", "failed"]
    statuses = known + sorted({str(r.get("status")) for r in runs} - set(known))
    counts = {s: sum(str(r.get("status")) == s for r in runs) for s in statuses}
    header.append(
        [("b", "Runs: "), f"{len(runs)} ({len(ranking)} losses); "]
        + ["; ".join(f"{n} {s}" for s, n in counts.items())]
    )
    lr_scale = sorted({hp["lr_scale"] for hp in (results.get("hparams") or {}).values()
                       if is_number(hp.get("lr_scale"))})
    if lr_scale:
        header.append([("b", "Learning rates: "), "every loss's learning rates multiplied by "
                       + " / ".join(fmt_num(x) for x in lr_scale) + " (", ("code", "loss.lr_scale"),
                       ", set by the data's preset or --set); the effective values are in the hyperparameter "
                       "table below"])
    title = f"losslab report: {family.upper()} losses on {ds.get('name', '?')}"
    blocks: list[tuple] = [("h1", title)]
    if results.get("answer"):
        blocks.append(("answer", [code_spans(str(x)) for x in results["answer"]]))
    blocks.append(("ul", header))
    blocks += profile_blocks(results.get("data_profile"))

    return blocks


def _ranking_blocks(results: dict) -> list[tuple]:
    """The ranking table (primary metric, trust columns) and the secondary metrics and costs."""
    ds, family, words, pm, primary, hib = _context(results)
    ranking = results.get("ranking") or []
    arrow = "\u2191" if hib else "\u2193"
    blocks: list[tuple] = []
    # Ranking table: the primary metric and what decides trust in it; the rest in a collapsible table.
    extra = metric_columns(ranking, primary)
    modes_of = f" (of {ds['num_modes']})" if is_number(ds.get("num_modes")) else ""
    upper = ds.get("num_modes") if primary == "modes_covered" and is_number(ds.get("num_modes")) else None
    head = ["rank", "loss", f"{metric_label(primary)} {arrow} mean [95% CI]", "ok / seeds", "stability"]
    head += ["collapse rate"] if words.collapse else []
    vanished = any("vanished_rate" in r for r in ranking)  # written by losslab.verdict from the gradient norms
    head += [f"{words.network} gradient vanished"] if vanished else []
    head += ["wall s (mean)"]
    rows, rows2 = [], []
    explain = ["stability is the share of runs that did not diverge"]
    clipped = False
    for i, r in enumerate(ranking, 1):
        mm = r.get("metrics_mean") or {}
        cell = (f"inf ({r['n_inf']} seeds infinite)" if r.get("n_inf")
                else fmt_ci(r.get("mean"), r.get("ci95"), percent=primary in PERCENT_METRICS, metric=primary,
                            upper=upper))
        clipped = clipped or "*" in cell
        rows.append(
            [str(i), [("b", str(r.get("loss")))], cell]
            + [f"{fmt_num(r.get('n_ok'))} / {fmt_num(r.get('n_runs'))}"]
            + [fmt_num(r.get("stability"), percent=True)]
            + ([fmt_num(r.get("collapse_rate"), percent=True)] if words.collapse else [])
            + ([fmt_num(r.get("vanished_rate"), percent=True)] if vanished else [])
            + [fmt_num(r.get("wall_seconds_mean"))]
        )
        rows2.append(
            [[("b", str(r.get("loss")))]]
            + [fmt_num(mm.get(k), percent=k in PERCENT_METRICS) for k in extra]
            + ([fmt_num(r.get("d_updates_mean"))] if words.second_player else [])
            + ([fmt_num(r.get("sampling_nfe"))] if words.generates else [])
        )
    floor = results.get("noise_floor") or {}
    if isinstance(floor.get(primary), dict):  # a perfect generator's row (losslab.noise_floor)
        f = floor[primary]
        rows.append(["", "noise floor", _floor_cell(f, primary)] + [DASH] * (len(head) - 3))
        rows2.append(["noise floor"] + [_floor_cell(floor.get(k), k) for k in extra]
                     + ([DASH] if words.second_player else []) + ([DASH] if words.generates else []))
        explain.append(f"noise floor is what a perfect generator scores: held-out real samples against the same "
                       f"reference at the same sample size ({fmt_num(f.get('n'))}), mean +- sd over "
                       f"{fmt_num(f.get('n_draws'))} draws")
    head2 = ["loss"] + [metric_label(k) + (modes_of if k == "modes_covered" else "") for k in extra]
    head2 += [f"{words.second_player} (mean)"] if words.second_player else []
    head2 += ["network evals / sample"] if words.generates else []
    if words.collapse:
        explain.append(f"collapse rate the share of ok runs that collapsed ({DASH} where not applicable or "
                       "not measured)")
    if vanished:
        explain.append(f"{words.network} gradient vanished is the share of runs whose {words.network} gradient "
                       "norm fell by orders of magnitude")
    blocks += [
        ("h2", "Ranking"),
        ("p", (f"In the race's order (the losses it did not show worse by mean rank within seeds, then those "
               f"it showed worse, the later first); seed means of {primary}"
               if results.get("race") else f"Best first by the seed mean of {primary}")
              + f" ({'higher' if hib else 'lower'} is better), over ok runs; " + "; ".join(explain) + "."),
        ("table", head, rows),
    ]
    if clipped:
        lo, hi = domain(primary)
        rng = (f"[{fmt_num(lo)}, {fmt_num(hi if hi is not None else upper)}]" if lo is not None
               and (hi is not None or upper is not None) else
               f">= {fmt_num(lo)}" if lo is not None else f"<= {fmt_num(hi)}")
        blocks.append(("p", f"* clipped: the Student-t interval reaches past the values {primary} can take "
                            f"({rng}); the bound shown is the edge of that range."))
    if len(head2) > 1:
        sub = [("p", "Seed means of every other metric the runs measured"
                     + (f"; network evals / sample is the sampling cost: {words.cost_note}" if words.generates
                        and words.cost_note else "") + ".")]
        blocks.append(("details", "Secondary metrics and costs", [*sub, ("table", head2, rows2)]))

    return blocks


def _recommendation_blocks(results: dict) -> list[tuple]:
    """The recommendation, its verdict and reasons, and what the literature expected."""
    blocks: list[tuple] = []
    # Recommendation and notes.
    rec = results.get("recommendation") or {}
    blocks.append(("h2", "Recommendation"))
    winner = rec.get("winner", rec.get("loss") if rec.get("verdict") == "clear winner" else None)
    if winner:
        blocks.append(("p", ["Recommended loss: ", ("b", str(winner))]))
    elif rec.get("loss"):  # no winner: the best so far, and what would decide it (the first reason)
        blocks.append(("p", ["No winner yet; best so far: ", ("b", str(rec["loss"]))]))
    if rec.get("verdict"):
        blocks.append(("p", f"Verdict: {rec['verdict']}; best group (the losses the race did not show worse): "
                            f"{', '.join(rec.get('best_group') or []) or DASH}."))
    else:
        blocks.append(("p", "No loss can be recommended from these runs."))
    if rec.get("reasons"):
        blocks.append(("ul", [str(s) for s in rec["reasons"]]))
    blocks += expectation_blocks(results.get("expectations"), isinstance(results.get("data_profile"), dict))

    return blocks


def _diagnosis_blocks(results: dict, ranking: list[dict]) -> list[tuple]:
    """The failure signatures found on each loss's curves, and the notes."""
    blocks: list[tuple] = []
    # Diagnosis: the failure signatures found on each loss's curves.
    diag = []
    for r in ranking:
        for m in loss_findings(results, str(r.get("loss"))):
            seeds = f" ({m['seeds']}/{m['n_runs']} seeds)" if m["n_runs"] > 1 else ""
            diag.append([("b", str(r.get("loss"))), ": ", *code_spans(m["text"]), seeds])
    if diag:
        blocks += [("h2", "Diagnosis"),
                   ("p", "Known failure signatures found on the training curves (losslab.diagnose), with the "
                         "numbers that triggered them:"),
                   ("ul", diag)]
    if results.get("notes"):
        blocks += [("h2", "Notes"), ("ul", [str(s) for s in dict.fromkeys(results["notes"])])]

    return blocks


def _hparam_blocks(results: dict) -> list[tuple]:
    """The effective hyperparameters per loss (collapsible), as the runs recorded them."""
    blocks: list[tuple] = []
    hps = results.get("hparams") or {}
    if hps:
        hrows = [[[("b", loss)], [("code", ", ".join(f"{k}={_hp(v)}" for k, v in hp.items()))]]
                 for loss, hp in hps.items()]
        blocks.append(("details", "Effective hyperparameters per loss (after presets and overrides)",
                       [("p", "From each loss's first run: the values its family resolved and recorded in the "
                              "run's result.json, the values that trained it."),
                        ("table", ["loss", "hyperparameters"], hrows)]))

    return blocks


def _figure_blocks(figures: Sequence[tuple[str, str, str]], learning: Sequence[tuple[str, str, str]]) -> list[tuple]:
    """The figures, then the pictures of how each loss learned."""
    blocks: list[tuple] = []
    # Figures.
    if figures:
        blocks.append(("h2", "Figures"))
        for relpath, heading, caption in figures:
            blocks += [("h3", heading), ("fig", relpath, caption)]
    if learning:
        blocks += [("h2", "How each loss learned"),
                   ("p", "Snapshots of one run per loss taken at its quality-curve points: what the model and its "
                         "critic looked like while they learned, not only at the end.")]
        for relpath, heading, caption in learning:
            blocks += [("h3", heading), ("fig", relpath, caption)]

    return blocks


def _runs_blocks(results: dict) -> list[tuple]:
    """The per-run table, in ranking order."""
    _, _, _, _, primary, _ = _context(results)
    ranking = results.get("ranking") or []
    runs = results.get("runs") or []
    blocks: list[tuple] = []
    # Per-run table.
    order = {r.get("loss"): i for i, r in enumerate(ranking)}
    runs_sorted = sorted(
        runs, key=lambda r: (order.get(r.get("loss"), len(order)), str(r.get("loss")), _seed_key(r.get("seed")))
    )
    blocks += [
        ("h2", "Runs"),
        (
            "table",
            ["loss", "seed", "status", metric_label(primary), "wall s", "error", "run dir"],
            [
                [
                    str(r.get("loss")),
                    fmt_num(r.get("seed")),
                    run_status(r),
                    fmt_num((r.get("metrics") or {}).get(primary), percent=primary in PERCENT_METRICS),
                    fmt_num(r.get("wall_seconds")),
                    _short(r.get("error")),
                    [("code", str(r.get("run_dir") or DASH))],
                ]
                for r in runs_sorted
            ],
        ),
    ]
    return blocks


def _quality_text(ds: dict) -> list:
    """The self-supervised feature network's quality figures, as a header suffix (empty without them)."""
    q = ds.get("feature_net_quality")
    if not isinstance(q, dict):
        return []
    return [f" (SimCLR quality on {fmt_num(q.get('n'))} images: nearest-view agreement "
            f"{fmt_num(q.get('view_knn_agreement'), percent=True)}, alignment {fmt_num(q.get('alignment'))}, "
            f"uniformity {fmt_num(q.get('uniformity'))}; Wang & Isola 2020)"]


def ladder_blocks(results: dict) -> list[tuple]:
    """The quality ladder section: each rung's FID / KID and where each loss's mean FID sits ([] without one)."""
    ladder = results.get("ladder") or {}
    rungs = ladder.get("rungs") or []
    if not rungs:
        return []
    rows = [[str(r.get("rung")), fmt_num(r.get("fid")), fmt_num(r.get("kid")),
             " \u2013 ".join(fmt_num(v) for v in r.get("fid_range") or []) if (r.get("sets") or 1) > 1 else DASH]
            for r in rungs]
    places = [[("b", str(e.get("loss"))), f": mean FID {fmt_num(e.get('fid_mean'))}, {e['ladder_place']}"]
              for e in results.get("ranking") or [] if e.get("ladder_place")]
    cls = rungs[0].get("classes")
    return [
        ("h2", "Quality ladder"),
        ("p", f"FID and KID of known image sets against the same real reference, in the runs' feature space "
              f"({ladder.get('n')} images per set; classes from {cls}; measured in "
              f"{fmt_num(ladder.get('seconds'))} s): a run's FID means something only next to these rungs."),
        ("table", ["rung", "FID", "KID", "FID range over the class sets"], rows),
    ] + ([("ul", places)] if places else [])


def _hp(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_hp(x) for x in v) + ")"
    if isinstance(v, float) and is_number(v):
        return f"{v:.4g}"
    return str(v)


def _seed_key(seed: Any) -> tuple:
    return (0, float(seed), "") if is_number(seed) else (1, 0.0, str(seed))


def _short(err: Any, n: int = 200) -> str:
    """One line of an error message (the last line of a traceback), at most ``n`` characters."""
    lines = [ln.strip() for ln in str(err or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= n else line[: n - 1] + "\u2026"
