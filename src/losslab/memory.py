"""Sizes the user sets, checked against the memory there is before anything is allocated.

Each estimate is a lower bound on one allocation that the size forces (a
batch of samples and one layer's activations, the evaluation's samples, a
weight matrix with its Adam state), so a refusal is never a false alarm: an
allocation that cannot fit anyway fails here in one line instead of as a
traceback (or an OOM kill) minutes later.
"""

from __future__ import annotations

import math
import os

from losslab.errors import UserError

__all__ = ["available_bytes", "check_eval_n", "check_sizes", "fmt_bytes"]

_F32 = 4


def available_bytes(device: str = "cpu") -> int | None:
    """Memory a new allocation can get on ``device``: ``MemAvailable`` (Linux) or physical memory; a CUDA
    device's free memory; None when unknown."""
    if str(device).startswith("cuda"):
        try:
            import torch

            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        except Exception:  # noqa: BLE001 - no CUDA here: the device check reports it
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def fmt_bytes(n: float) -> str:
    """``1.5 GB``-style text (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover


def _refuse(key: str, value: int, need: float, what: str, avail: int) -> None:
    raise UserError(f"{key} = {value}: {what} needs at least {fmt_bytes(need)}, more than the "
                    f"{fmt_bytes(avail)} of memory available; lower it")


def check_sizes(cfg, dataset, *, device: str = "cpu", available: int | None = None) -> None:
    """Refuse a size of ``cfg`` whose smallest forced allocation exceeds the memory available.

    Checked: ``train.batch_size`` (a batch and one hidden layer's activations
    with their gradients), ``train.n_eval`` and ``train.curve_n`` (generated
    and real samples, and their noise), ``model.z_dim`` and ``model.hidden``
    (one weight matrix with its gradient and Adam moments).

    Raises:
        UserError: ``KEY = VALUE: ... needs at least X, more than the Y of memory available; lower it``.
    """
    avail = available_bytes(device) if available is None else available
    if avail is None:
        return
    d = math.prod(int(s) for s in dataset.shape)
    m = cfg.model
    batch, n_eval, curve_n = int(cfg.train.batch_size), int(cfg.train.n_eval), int(cfg.train.curve_n)
    z, hidden = int(m.z_dim), int(m.hidden)
    # Each size's own estimate takes the other factors at most at a typical value, so the size named is
    # the one that is out of range (every estimate stays a lower bound).
    zt, ht, nt = min(z, 128), min(hidden, 1024), min(n_eval, 2500)
    checks = [
        ("train.batch_size", batch, 3 * batch * max(d, ht, zt) * _F32,
         "one batch with one layer's activations and gradients"),
        ("train.n_eval", n_eval, n_eval * (2 * d + zt) * _F32, "the evaluation's generated and real samples"),
        ("train.curve_n", curve_n, curve_n * (2 * d + zt) * _F32, "a curve point's samples"),
        ("model.z_dim", z, z * max(4 * ht, nt) * _F32,
         "the generator's first weight matrix with its Adam state, or the evaluation's noise"),
        ("model.hidden", hidden, 4 * hidden * max(hidden, d) * _F32,
         "one hidden weight matrix with its gradient and Adam state"),
    ]
    key, value, need, what = max(checks, key=lambda c: c[2])
    if need > avail:
        _refuse(key, value, need, what, avail)


def check_eval_n(n: int, shape, *, available: int | None = None) -> None:
    """Refuse ``losslab eval --n N`` when N generated and N real samples of ``shape`` cannot be held.

    Raises:
        UserError: one line with the estimate and the memory available.
    """
    avail = available_bytes() if available is None else available
    if avail is None:
        return
    need = 2 * int(n) * math.prod(int(s) for s in shape) * _F32
    if need > avail:
        raise UserError(f"--n {n}: {n} generated and {n} real samples need at least {fmt_bytes(need)}, more than "
                        f"the {fmt_bytes(avail)} of memory available; lower it")
