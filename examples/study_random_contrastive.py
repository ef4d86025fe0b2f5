"""The study's experiment (c): the cosine + BCE pairwise model on random tensors.

"12.5% test accuracy: why?" 12.5% is 1/8, chance for 8 classes. losslab's ``random`` data are
Gaussian-noise images whose labels are drawn independently of the pixels (10 classes, chance
10%): no representation can predict them, and the report says so. Equivalent to

    losslab compare --family contrastive --data random --losses pairwise-bce --steps 300 --seeds 2 \\
        --out study-c

About 2 minutes on two CPU cores. See docs/study.md.

Usage:  python examples/study_random_contrastive.py [OUT]
"""

from __future__ import annotations

import sys

from losslab import api
from study_common import print_answer

out = sys.argv[1] if len(sys.argv) > 1 else "study-c"
res = api.compare("random", family="contrastive", losses="pairwise-bce", steps=300, seeds=2, out=out, workers=2)
print_answer(res, ("linear_probe", "knn", "chance"))
print(f"\nreport: {out}/report.html")
