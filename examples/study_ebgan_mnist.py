"""The study's experiment (b): EBGAN on MNIST, "the reference repo's EBGAN works, mine does not: why?".

Three arms of one seed each, 400 generator updates (CPU-sized; the dcgan architecture):

1. ``ebgan``: losslab's EBGAN with the pulling-away term of Zhao et al. (Eq. 6);
2. ``--set loss.pt_weight=0``: no pulling-away term at all (the ablation);
3. ``--set loss.pt_variant=global_l1``: the term as a widely copied reference collection
   computes it (codes divided by one global L1 norm): its value sits at -1/63 and its
   gradient vanishes, so it acts like arm 2.

Equivalent to three ``losslab compare --data mnist --losses ebgan --steps 400 --seeds 1
--no-batch-seeds --out study-b-ARM [--set ...]`` commands. Needs the MNIST IDX files
(--data-dir or $LOSSLAB_DATA). About 3-5 minutes per arm on two CPU cores. See docs/study.md.

Usage:  python examples/study_ebgan_mnist.py [OUT_PREFIX]
"""

from __future__ import annotations

import sys

from losslab import api
from study_common import grad_summary, print_answer

prefix = sys.argv[1] if len(sys.argv) > 1 else "study-b"
for arm, sets in [("paper", {}), ("no-pt", {"loss.pt_weight": 0.0}),
                  ("global-l1", {"loss.pt_variant": "global_l1"})]:
    out = f"{prefix}-{arm}"
    print(f"\n==== {arm}: {sets or 'defaults'}")
    res = api.compare("mnist", losses="ebgan", steps=400, seeds=1, out=out, sets=sets, batch_seeds=False,
                      workers=1)
    print_answer(res, ("fid", "modes_covered"))
    grad_summary(out, res, "pt")
    print(f"report: {out}/report.html")
