"""Binary cross-entropy on probabilities vs on logits, in float32, at extreme logits.

Prints both losses and their derivatives w.r.t. the logit for a positive
example as the logit becomes very wrong: ``bce(sigmoid(z))`` hits its clamp
and loses the gradient, ``bce_with_logits(z)`` keeps the gradient -1. Then
draws the figure of ``losslab explain bce --plot``.

Usage:  .venv/bin/python examples/plot_classification_stability.py [OUT.png]   (or PYTHONPATH=src python ...)
"""

from __future__ import annotations

import sys

import numpy as np

from losslab.explain import binary_stability_curves, plot_loss

c = binary_stability_curves(np.array([2.0, -2.0, -10.0, -16.0, -17.0, -30.0, -100.0]))
print("       z   bce(sigmoid(z))   d/dz      bce-with-logits(z)   d/dz")
for z, lb, gb, ll, gl in zip(c["logit"], c["bce_loss"], c["bce_grad"], c["logits_loss"], c["logits_grad"]):
    print(f"  {z:6.1f}   {lb:15.4f}   {gb:+8.4f}   {ll:18.4f}   {gl:+8.4f}")
print(f"wrote {plot_loss('bce', sys.argv[1] if len(sys.argv) > 1 else 'classification_stability.png')}")
