"""Regenerate the loss docs from their one source, the package ``src/losslab/explain/``.

Writes ``docs/<family>.md`` (one page per loss family, :func:`losslab.explain.explain_markdown`)
and the figures they show, ``docs/img/explain_*.png`` (the figure each explanation names,
:attr:`losslab.explain.Explanation.figure`). With ``--check`` nothing is written: the script
exits with status 1 if a page differs from what ``losslab.explain`` generates (figures are not compared).

Usage:  .venv/bin/python scripts/make_docs.py [--check]     (or PYTHONPATH=src python ...)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from losslab.explain import EXPLANATIONS, explain_markdown, families
from losslab.explain.texts import EXTRA_FIGURES
from losslab.io import atomic_write_bytes

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that docs/*.md are up to date")
    args = ap.parse_args(argv)
    stale = []
    for family in families():
        page, text = DOCS / f"{family}.md", explain_markdown(family)
        if args.check:
            if not page.exists() or page.read_text() != text:
                stale.append(str(page))
        else:
            atomic_write_bytes(page, text.encode())
            print(f"wrote {page}")
    if args.check:
        if stale:
            print("out of date (run scripts/make_docs.py): " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    figures = {e.figure.key: e.figure for e in EXPLANATIONS.values()}  # several losses share a figure
    figures.update({f.key: f for f in EXTRA_FIGURES})  # a page's own figures (the Dirac-GAN comparison)
    for figure in figures.values():
        print(f"wrote {figure.save(DOCS / 'img' / figure.file_name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
