"""Colours, smoothing and metric domains shared by the report's figures and tables.

* :data:`OKABE_ITO`: the colour-blind-safe palette of Okabe & Ito (2008),
  "Color Universal Design", https://jfly.uni-koeln.de/color/ (black moved last).
* :func:`smooth`: the bias-corrected EMA of :func:`losslab.diagnose.ema`, in
  log space for log-scaled panels (a geometric mean, so a falling gradient
  norm is not dragged up by its early values).
* :func:`clip_ci`: a confidence interval clipped to the metric's domain
  (``METRIC_INFO[name]["domain"]``), and whether it was clipped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from losslab.diagnose import ema
from losslab.metrics import METRIC_INFO

__all__ = ["OKABE_ITO", "clip_ci", "color", "domain", "smooth"]

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
"""Blue, orange, bluish green, vermillion, reddish purple, sky blue, yellow, black."""

SMOOTH_MIN = 12  # curves with fewer points are drawn raw only


def color(i: int) -> str:
    """The ``i``-th colour of :data:`OKABE_ITO` (cycling)."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def smooth(values: np.ndarray, *, log: bool = False) -> np.ndarray:
    """EMA of a curve (about a tenth of its length); in log10 space when ``log`` (values > 0)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < SMOOTH_MIN:
        return v
    if log:
        return 10.0 ** ema(np.log10(np.maximum(v, 1e-300)))
    return ema(v)


def domain(metric: str) -> tuple[float | None, float | None]:
    """``(lo, hi)`` of a metric's possible values (None: unbounded), from ``METRIC_INFO``."""
    d = (METRIC_INFO.get(metric) or {}).get("domain")
    if not d:
        return (None, None)
    return (d[0], d[1])


def clip_ci(metric: str, ci: Any, *, upper: float | None = None) -> tuple[list[float] | None, bool]:
    """A 95% CI ``[lo, hi]`` clipped to the metric's domain, and whether a bound moved.

    A Student-t interval is symmetric about the mean and can leave the range
    a metric can take (a W1 below 0, an accuracy above 1); the clipped
    interval is the set of possible values inside it. ``upper`` replaces an
    open upper bound (e.g. the number of modes for ``modes_covered``).
    """
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2 and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in ci)):
        return None, False
    lo, hi = domain(metric)
    hi = upper if hi is None and upper is not None else hi
    a, b = float(ci[0]), float(ci[1])
    ca = max(a, lo) if lo is not None else a
    cb = min(b, hi) if hi is not None else b
    return [ca, cb], (ca != a or cb != b)
