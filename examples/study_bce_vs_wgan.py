"""The study's experiment (a): BCE vs Wasserstein GAN losses on 1-D Gaussian data.

Is there a vanishing gradient with the BCE (minimax) loss, and does WGAN-GP fix it?
Equivalent to

    losslab compare --data gaussian1d --losses minimax,ns,wgan,wgan-gp --steps 1000 --seeds 2 \\
        --no-batch-seeds --out study-a

(--no-batch-seeds: one run at a time, so that every run keeps its snapshots for the report's
"How each loss learned"). About 4 minutes on two CPU cores. See docs/study.md.

Usage:  python examples/study_bce_vs_wgan.py [OUT]
"""

from __future__ import annotations

import sys

from losslab import api
from study_common import grad_summary, print_answer

out = sys.argv[1] if len(sys.argv) > 1 else "study-a"
res = api.compare("gaussian1d", losses="minimax,ns,wgan,wgan-gp", steps=1000, seeds=2, out=out,
                  batch_seeds=False, workers=2)
print_answer(res, ("w1", "ks"))
grad_summary(out, res, "g_grad_norm")
grad_summary(out, res, "g_grad_mean")
print(f"\nreport: {out}/report.html")
