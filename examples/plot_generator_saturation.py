"""Why the minimax generator loss saturates and the non-saturating one does not.

Prints the derivative of each generator loss w.r.t. the discriminator's logit,
computed by autograd through losslab's own loss functions, as D(G(z)) -> 0,
then draws the figure of ``losslab explain minimax --plot``.

Usage:  .venv/bin/python examples/plot_generator_saturation.py [OUT.png]   (or PYTHONPATH=src python ...)
"""

from __future__ import annotations

import sys

import numpy as np

from losslab.explain import plot_loss, saturation_curves

c = saturation_curves(np.array([0.5, 1e-1, 1e-2, 1e-3, 1e-4, 1e-6]))
print("  D(G(z))   minimax dL/dl = -D   ns dL/dl = -(1 - D)")
for p, g_mm, g_ns in zip(c["d_fake"], c["minimax_grad"], c["ns_grad"]):
    print(f"  {p:7.0e}   {g_mm:+16.2e}   {g_ns:+19.6f}")
print(f"wrote {plot_loss('minimax', sys.argv[1] if len(sys.argv) > 1 else 'generator_saturation.png')}")
