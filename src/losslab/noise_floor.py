"""The noise floor of every metric: what a perfect generator scores at the runs' sample size.

A W1 of 0.07 on the 8-mode ring means nothing on its own: two independent
samples of 2,500 points from the ring itself lie about 0.066 apart. The noise
floor measures, with the evaluator, the reference rows and the sample size of
the runs, the score of *held-out real samples* -- a generator that is the data
distribution -- over several independent draws (mean and spread). It is for
every metric what the image quality ladder's ``test split`` rung
(:mod:`losslab.metrics.ladder`) is for FID: the best score a loss can reach at
this sample size, and the size of a difference that the evaluation alone
produces.

Held-out real samples of draw ``k`` (:func:`heldout_real`):

- data with an exact sampler (the toys): ``n`` fresh draws with the seed
  ``HELDOUT_SEED + k`` (the reference uses ``losslab.rundir.REFERENCE_SEED``);
- other data: ``n`` test rows outside the reference's rows when the test split
  holds ``2 n``, else ``n`` rows of the training split (without replacement).

:func:`write_noise_floor` measures it once per comparison, before the jobs,
at ``train.n_eval`` (what the ranking compares) and at ``train.curve_n`` (what
the quality curves show), and writes ``OUT/noise_floor.json``;
:func:`add_noise_floor` copies it into results.json (``noise_floor`` and
``noise_floor_curve``: ``{metric: {"mean", "sd", "n_draws", "n"}}``, ``sd``
with ddof 1), and :func:`noise_floor` turns it into an equivalence margin.
Contrastive comparisons have none (a representation is not a sample of the
data).
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from losslab import io, rundir
from losslab.errors import UserError
from losslab.metrics import METRIC_INFO

__all__ = ["FILE", "HELDOUT_SEED", "N_DRAWS", "add_noise_floor", "heldout_real", "measure", "noise_floor",
           "write_noise_floor"]

FILE = "noise_floor.json"
"""``OUT/noise_floor.json``, written by :func:`write_noise_floor`."""

HELDOUT_SEED = 20_000
"""Draw ``k`` of held-out real samples uses the seed ``HELDOUT_SEED + k`` (never a run, trial or reference seed)."""

N_DRAWS = {"vector": 5, "image": 3}
"""Independent held-out draws per sample size (an image evaluation costs seconds, a vector one ~0.1-2 s)."""

# Distances whose ideal value is 0: a perfect generator's score is their sample-size bias.
_IDEAL = {"w1": 0.0, "swd": 0.0, "ks": 0.0, "reverse_kl": 0.0, "fid": 0.0, "kid": 0.0}


def heldout_real(dataset: Any, n: int, draw: int, *, reference_seed: int = rundir.REFERENCE_SEED) -> torch.Tensor:
    """Draw ``draw`` of ``n`` real samples that the reference (``dataset.reference(n, seed reference_seed)``) lacks.

    Parameters
    ----------
    dataset : losslab.data.Dataset
        ``sampler`` (exact toys) or ``train`` / ``test`` rows.
    n : int
        Samples wanted (the generated sample size of the runs).
    draw : int
        Which independent draw (seed ``HELDOUT_SEED + draw``).
    reference_seed : int
        The seed of the reference rows to avoid.

    Returns
    -------
    Tensor
        ``(m, *shape)`` float32, ``m = n`` except when neither split holds ``n``
        rows outside the reference (then all the training rows, ``m < n``).
    """
    g = torch.Generator().manual_seed(HELDOUT_SEED + int(draw))
    if dataset.sampler is not None:
        return dataset.sampler(n, g)
    m_test = len(dataset.test)
    if m_test >= 2 * n:
        used = torch.randperm(m_test, generator=torch.Generator().manual_seed(reference_seed))[:n]
        free = torch.ones(m_test, dtype=torch.bool)
        free[used] = False
        rows = torch.nonzero(free).ravel()
        return dataset.test[rows[torch.randperm(len(rows), generator=g)[:n]]]
    return dataset.train[torch.randperm(len(dataset.train), generator=g)[:n]]


def _rankable(m: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and METRIC_INFO.get(k, {}).get("higher_is_better") is not None}


def measure(dataset: Any, evaluate: Callable[[Any, torch.Tensor], dict], *, n: int, n_draws: int,
            reference_seed: int = rundir.REFERENCE_SEED) -> dict[str, dict[str, Any]]:
    """Score ``n_draws`` held-out real samples with the runs' evaluator: the noise floor at sample size ``n``.

    Parameters
    ----------
    dataset : losslab.data.Dataset
        The compared data.
    evaluate : callable
        ``evaluate(dataset, samples) -> {metric: value}``, the runs' own evaluator
        (:func:`losslab.compare.make_evaluator`: the same reference rows and ``n``).
    n, n_draws : int
        Samples per draw (``n_draws`` >= 2 for a spread).

    Returns
    -------
    dict
        ``{metric: {"mean", "sd" (ddof 1; None for one draw), "n_draws", "n"}}``
        for every metric with a direction in ``METRIC_INFO``; an infinite value
        (e.g. reverse KL with an empty mode) makes the mean infinite, stored as null.
    """
    draws: dict[str, list[float]] = {}
    size = n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small-sample warnings: the runs get the same ones
        for k in range(n_draws):
            x = heldout_real(dataset, n, k, reference_seed=reference_seed)
            size = int(len(x))
            for key, v in _rankable(evaluate(dataset, x)).items():
                draws.setdefault(key, []).append(v)
    out = {}
    for key, vals in draws.items():
        a = np.asarray(vals, dtype=np.float64)
        finite = bool(np.isfinite(a).all())
        out[key] = {"mean": float(a.mean()) if finite else None,
                    "sd": float(a.std(ddof=1)) if finite and len(a) > 1 else None,
                    "n_draws": len(a), "n": size}
    return out


def write_noise_floor(out: Path, dataset: Any, *, evaluate: Callable, n: int,
                      curve_evaluate: Callable | None = None, curve_n: int | None = None,
                      quiet: bool = True) -> dict[str, Any]:
    """Write ``OUT/noise_floor.json`` (kept when it holds the same sample sizes: a resumed comparison).

    Keys: ``n_eval`` and ``curve_n`` (the sample sizes asked for), ``n_draws``,
    ``seed`` (:data:`HELDOUT_SEED`), ``seconds``, ``metrics`` (:func:`measure`
    at ``n``) and ``curve`` (at ``curve_n``; the same dict when the sizes are
    equal, null without a curve).
    """
    path = Path(out) / FILE
    if path.exists():
        try:
            old = rundir.read_json_file(path)
        except UserError:
            old = None
        if isinstance(old, dict) and old.get("n_eval") == n and old.get("curve_n") == curve_n:
            return old
    draws = N_DRAWS.get(dataset.kind, 3)
    t0 = time.perf_counter()
    at_n = measure(dataset, evaluate, n=n, n_draws=draws)
    curve = None
    if curve_n:
        curve = at_n if curve_n == n else measure(dataset, curve_evaluate or evaluate, n=curve_n, n_draws=draws)
    content = {"n_eval": n, "curve_n": curve_n, "n_draws": draws, "seed": HELDOUT_SEED,
               "seconds": round(time.perf_counter() - t0, 3), "metrics": at_n, "curve": curve}
    io.atomic_write_json(path, content)
    if not quiet:
        print(f"noise floor: {draws} held-out draws in {content['seconds']:.1f} s")
    return content


def add_noise_floor(out: str | Path, results: dict[str, Any]) -> None:
    """Copy ``OUT/noise_floor.json`` into ``results`` (in place): ``noise_floor`` and ``noise_floor_curve``.

    Both null when the comparison has none (contrastive losses only, an older
    comparison) or the file is unreadable (warned).
    """
    path = Path(out) / FILE
    nf = None
    if path.exists():
        try:
            nf = rundir.read_json_file(path)
        except UserError as e:
            warnings.warn(f"{e}; the verdict goes without the noise floor", stacklevel=2)
    nf = nf if isinstance(nf, dict) else {}
    results["noise_floor"] = nf.get("metrics") or None
    results["noise_floor_curve"] = nf.get("curve") or None


def noise_floor(results: dict[str, Any], metric: str) -> float | None:
    """The equivalence margin the noise floor gives ``metric``: the smallest difference the evaluation can show.

    For a distance (``w1``, ``swd``, ``ks``, ``reverse_kl``, ``fid``, ``kid``:
    ideal value 0) it is the score of a perfect generator at the runs' sample
    size (the mean over draws, at least its ``sd``: e.g. W1 0.066 on ring8 at
    2,500 points, the FID of held-out real images); for any other metric
    (shares, accuracies, counts, whose perfect score is not their bound)
    twice the spread of a perfect generator's score over draws (``2 sd``).

    Parameters
    ----------
    results : dict
        results.json content (its ``noise_floor``, :func:`add_noise_floor`).
    metric : str
        The metric (e.g. ``results["primary_metric"]["name"]``).

    Returns
    -------
    float or None
        In the metric's units; None without a noise floor for ``metric``, for
        an infinite one, or when it is 0 (a perfect generator scores the ideal
        value on every draw, e.g. 8/8 modes: the metric sets no margin).
    """
    row = (results.get("noise_floor") or {}).get(metric)
    if not isinstance(row, dict) or row.get("mean") is None:
        return None
    mean, sd = float(row["mean"]), float(row.get("sd") or 0.0)
    ideal = _IDEAL.get(metric)
    margin = max(abs(mean - ideal), sd) if ideal is not None else 2.0 * sd
    return margin if margin > 0 and math.isfinite(margin) else None
