"""Training: one loop (loop.py), one step function per model family (steps.py)."""
