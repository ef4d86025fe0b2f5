"""losslab: which loss function suits my data, and why?

Trains generative and representation models with different losses under an
equal budget, records diagnostics, measures the results and writes a report.
See README.md. The public Python API is :mod:`losslab.api`
(``from losslab.api import compare, results, evaluate``); this package module
imports nothing heavy, so that ``losslab --help`` stays fast.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("losslab")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0+unknown"
