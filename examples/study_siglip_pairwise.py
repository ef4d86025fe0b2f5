"""SigLIP against the study's cosine + BCE pairwise model, on digits.

The study's pairwise model classifies a pair of embeddings as "same" or "different" with the
sigmoid of their cosine similarity (``pairwise-bce``: N positive and N negative pairs per batch,
no bias, temperature 1). SigLIP (Zhai et al. 2023, arXiv:2303.15343, Algorithm 1) is the same idea
done at scale: every one of the N^2 pairs of the batch, a learned temperature (from 10) and a learned
bias (from -10) that starts every pair at "different". Equivalent to

    losslab compare --family contrastive --data digits --losses siglip,pairwise-bce --seeds 3 \\
        --out study-d

(the defaults: 1,000 encoder updates of batch 64 per run). See docs/study.md, section (d), and
``losslab explain siglip``.

Usage:  python examples/study_siglip_pairwise.py [OUT]
"""

from __future__ import annotations

import sys

from losslab import api
from study_common import grad_summary, print_answer

out = sys.argv[1] if len(sys.argv) > 1 else "study-d"
res = api.compare("digits", family="contrastive", losses="siglip,pairwise-bce", seeds=3, out=out, workers=2)
print_answer(res, ("linear_probe", "knn", "view_match", "z_std_unit", "z_corr_offdiag"))
grad_summary(out, res, "learned_bias")
print(f"\nreport: {out}/report.html")
