"""The 1-D experiment, exactly: real data at 0, fakes at distance d.

Prints the slope of the optimal BCE discriminator at the fake point (closed
form for two narrow Gaussians) next to the slope of the optimal W1 critic
(always 1), and the JS divergence next to W1 = d; then draws the figure of
``losslab explain wgan-gp --plot``.

Usage:  .venv/bin/python examples/plot_critic_gradient_1d.py [OUT.png]   (or PYTHONPATH=src python ...)
"""

from __future__ import annotations

import sys

import numpy as np

from losslab.explain import critic_1d_curves, plot_loss

c = critic_1d_curves(np.array([0.05, 0.1, 0.25, 0.5, 1.0, 2.0]), sigma=0.1)
print("      d   JS (nats)   W1   BCE |dD*/dx| at x=d   W1 critic |f'|")
for d, js, w1, g_bce, g_w in zip(c["distance"], c["js"], c["w1"], c["bce_grad"], c["wgan_grad"]):
    print(f"  {d:5.2f}   {js:9.4f}   {w1:4.2f}   {g_bce:19.3e}   {g_w:14.1f}")
print(f"wrote {plot_loss('wgan-gp', sys.argv[1] if len(sys.argv) > 1 else 'critic_gradient_1d.png')}")
