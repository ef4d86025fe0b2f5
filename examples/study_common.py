"""Shared by the study's recipes (examples/study_*.py): print what losslab answered.

Not a losslab module: the recipes import it from this folder.
"""

from __future__ import annotations

from pathlib import Path
from statistics import median

from losslab.io import read_jsonl


def grad_summary(out: str | Path, results: dict, key: str = "g_grad_norm") -> None:
    """Per run: the median of ``key`` (from metrics.jsonl) over the first and the last quarter of its rows."""
    print(f"\n{key}: median over the first / last quarter of the logged steps")
    for run in results["runs"]:
        rows = [r for r in read_jsonl(Path(out) / run["run_dir"] / "metrics.jsonl") if key in r]
        if not rows:
            continue
        q = max(1, len(rows) // 4)
        first, last = median(r[key] for r in rows[:q]), median(r[key] for r in rows[-q:])
        print(f"  {run["loss"]:>10} seed {run['seed']}: {first:.3g} -> {last:.3g}")


def print_answer(results: dict, metrics: tuple[str, ...]) -> None:
    """The report's answer paragraphs and each run's final metrics."""
    print("\nlosslab's answer:")
    for line in results.get("answer") or []:
        print("  " + (line if isinstance(line, str) else "".join(p if isinstance(p, str) else str(p[1])
                                                                 for p in line)))
    print("\nfinal metrics per run:")
    for run in results["runs"]:
        m = run.get("metrics") or {}
        shown = ", ".join(f"{k}={m[k]:.4g}" for k in metrics if isinstance(m.get(k), (int, float)))
        print(f"  {run["loss"]:>10} seed {run['seed']}: {run['status']}, {shown}")
