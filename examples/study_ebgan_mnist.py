"""The study's experiment (b): EBGAN on MNIST, "the reference repo's EBGAN works, mine does not: why?".

Three arms of one loss, raced on paired seeds in one comparison (each arm a candidate
``LOSS[key=value]`` of its own, :mod:`losslab.losses.variants`), 1,000 generator updates
with the reference collection's infoGAN-style networks (``model.arch=infogan``):

1. ``ebgan``: losslab's EBGAN with the pulling-away term of Zhao et al. (Eq. 6);
2. ``ebgan[pt_weight=0]``: no pulling-away term at all (the ablation);
3. ``ebgan[pt_variant=global_l1]``: the term as a widely copied reference collection
   computes it (codes divided by one global L1 norm): its value sits at -1/63 and its
   gradient vanishes, so it acts like arm 2.

Equivalent to ``losslab compare --data mnist --losses
'ebgan,ebgan[pt_weight=0],ebgan[pt_variant=global_l1]' --set model.arch=infogan --steps 1000
--out study-b``. Needs the MNIST IDX files (--data-dir or $LOSSLAB_DATA). About 7 minutes of
one core per run on a CPU: the race's first block (5 seeds x 3 arms) alone takes about an
hour on two cores. See docs/study.md.

Usage:  python examples/study_ebgan_mnist.py [OUT]
"""

from __future__ import annotations

import sys

from losslab import api
from study_common import grad_summary, print_answer

out = sys.argv[1] if len(sys.argv) > 1 else "study-b"
res = api.compare("mnist", losses=["ebgan", "ebgan[pt_weight=0]", "ebgan[pt_variant=global_l1]"], steps=1000,
                  sets={"model.arch": "infogan"}, out=out)
print_answer(res, ("fid", "modes_covered"))
grad_summary(out, res, "pt")
print(f"report: {out}/report.html")
