"""The contrastive family's words in the verdict and the report: notes from measured metrics.

Pure text from numbers; nothing here trains or loads data. The family's
figure (the 2-D embedding) lives in :mod:`losslab.report.embedding`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["random_data_note"]


def random_data_note(metrics: dict[str, Any], data: str | None = None) -> str | None:
    """Why the study's random-data experiment could not learn, with this run's numbers.

    Parameters
    ----------
    metrics : dict
        The metrics of a run (or the means of a comparison), as
        :func:`losslab.train.contrastive.evaluate` returns them: ``view_match``,
        ``linear_probe``, ``knn``, ``chance``, ``linear_probe_pixels``
        (fractions in [0, 1]; a missing one prints as n/a).
    data : str, optional
        Dataset name; default ``metrics["dataset"]``.

    Returns
    -------
    str or None
        The note when the dataset is ``random``, else None.
    """
    if (data if data is not None else metrics.get("dataset")) != "random":
        return None

    def pct(key: str) -> str:
        v = metrics.get(key)
        return "n/a" if not isinstance(v, (int, float)) else f"{100 * float(v):.1f}%"

    return (
        "The random dataset cannot teach a representation anything about its labels: they are drawn "
        "independently of the Gaussian-noise pixels, so no positive pair shares information about them. The study's "
        "pairwise model saw random tensors with random same/different targets, so the best it could do "
        "was predict 0.5 for every pair (BCE = ln 2 = 0.693) and score chance accuracy. Augmentation "
        "defines positives here (two views of one noise image), and the encoder may learn to match them "
        f"(held-out view matching {pct('view_match')}), but that invariance carries no information about "
        f"the labels: the linear probe reaches {pct('linear_probe')} and the kNN {pct('knn')} against a "
        f"chance level of {pct('chance')} (raw pixels: {pct('linear_probe_pixels')}). Contrastive learning "
        "needs positives that share what the downstream task cares about: augmentations of real images "
        "(the same digit under a crop, rotation and noise) or labels, as on digits, MNIST and Fashion-MNIST."
    )
