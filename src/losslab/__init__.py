"""losslab: which loss function suits my data, and why?

Trains generative models with different losses under an equal budget, records
diagnostics, measures the results and writes a report. See README.md.
"""

__version__ = "0.1.0"
