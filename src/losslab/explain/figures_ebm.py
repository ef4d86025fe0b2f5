"""The numbers and drawings of the energy-based model figures (``explain_ebm_cd.png``, ``explain_ebm_dsm.png``).

Computed, not sketched: the Langevin samples come from :func:`losslab.langevin.langevin_sample`
on a 1-D double-well energy, the DSM curves from :func:`losslab.losses.ebm.dsm_loss` through
autograd, the scores of the noisy mixture from their closed form. :mod:`losslab.explain.figures`
wraps the two drawings in its :class:`~losslab.explain.figures.LossFigure` records.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from losslab.langevin import energy_grad, langevin_sample
from losslab.losses.ebm import dsm_loss

__all__ = ["double_well", "double_well_chains", "draw_ebm_cd", "draw_ebm_dsm", "dsm_quadratic_curves",
           "mixture_score"]

WELL = 4.0  # barrier height of the double well, energy units


def double_well(x: torch.Tensor) -> torch.Tensor:
    """``E(x) = WELL (x^2 - 1)^2`` for ``x`` (N, 1) -> (N,): two wells at +-1, a barrier of WELL at 0."""
    return WELL * (x[:, 0] ** 2 - 1.0) ** 2


def double_well_chains(steps: int, *, n: int = 4000, step_size: float = 0.01, seed: int = 0) -> np.ndarray:
    """``n`` Langevin chains of ``steps`` steps on :func:`double_well` from uniform noise on [-2, 2]; (n,) end states."""
    g = torch.Generator().manual_seed(seed)
    x0 = 4.0 * torch.rand(n, 1, generator=g, dtype=torch.float64) - 2.0
    return langevin_sample(double_well, x0, steps=steps, step_size=step_size, generator=g).x[:, 0].numpy()


def dsm_quadratic_curves(cs: np.ndarray, sigma: float, *, s0: float = 0.5, n: int = 20_000, seed: int = 0) -> np.ndarray:
    """DSM loss (sigma^2-weighted) of the energy ``0.5 c x^2`` on data N(0, s0^2), for each ``c`` of ``cs``.

    Common random numbers across ``c``; the minimum is at ``c* = 1 / (s0^2 + sigma^2)``.
    """
    g = torch.Generator().manual_seed(seed)
    x = s0 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    xn = x + sigma * torch.randn(n, 1, generator=g, dtype=torch.float64)
    out = []
    for c in cs:
        _, grad = energy_grad(lambda y, c=float(c): 0.5 * c * y[:, 0] ** 2, xn)
        out.append(float(dsm_loss(score=-grad, x_noisy=xn, x_clean=x, sigma=sigma)))
    return np.asarray(out)


def mixture_score(x: np.ndarray, sigma: float, *, means=(-1.0, 1.0), s0: float = 0.1) -> np.ndarray:
    """Score ``d/dx log q_sigma(x)`` of an equal mixture of N(m, s0^2) convolved with N(0, sigma^2) (closed form)."""
    v = s0 ** 2 + sigma ** 2
    logw = np.stack([-(x - m) ** 2 / (2 * v) for m in means])  # (K, len(x))
    w = np.exp(logw - logw.max(axis=0))
    w /= w.sum(axis=0)
    return sum(wk * (-(x - m) / v) for wk, m in zip(w, means))


def _axes(title: str) -> tuple[Figure, list]:
    fig = Figure(figsize=(7.8, 3.2), layout="constrained")
    axes = list(fig.subplots(1, 2))
    fig.suptitle(title, fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    return fig, axes


def _label(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)


def draw_ebm_cd() -> Figure:
    """Left: the double-well energy and its Boltzmann density. Right: Langevin samples, short vs long run."""
    x = np.linspace(-2.0, 2.0, 401)
    e = double_well(torch.tensor(x)[:, None]).numpy()
    p = np.exp(-e)
    p /= p.sum() * (x[1] - x[0])  # Z by quadrature
    fig, (a, b) = _axes("ebm-cd: an energy, its Boltzmann density, and Langevin samples from noise (s = 0.01)")
    a.plot(x, e, label="E(x) = 4 (x^2 - 1)^2")
    a.plot(x, p, label="exp(-E(x)) / Z")
    a.set_ylim(0, 6)
    _label(a, "energy and density", "x", "energy / density")
    for steps in (10, 1000):
        b.hist(double_well_chains(steps), bins=80, range=(-2, 2), density=True, histtype="step",
               label=f"{steps} Langevin steps")
    b.plot(x, p, "k:", label="exp(-E) / Z")
    _label(b, "4,000 chains from uniform noise", "x", "density")
    return fig


def draw_ebm_dsm() -> Figure:
    """Left: the DSM loss of a quadratic energy against its curvature, per sigma. Right: noisy-data scores."""
    fig, (a, b) = _axes("ebm-dsm: the loss is minimal at the score of the noisy data, which sigma smooths")
    cs = np.linspace(0.5, 6.0, 56)
    for sigma in (0.1, 0.3, 0.6):
        v = dsm_quadratic_curves(cs, sigma)
        a.plot(cs, v / v.min(), label=f"sigma={sigma}")
        a.axvline(1.0 / (0.25 + sigma ** 2), color="0.5", ls=":", lw=0.8)
    a.set_ylim(0.95, 1.6)
    _label(a, "data N(0, 0.5^2), E = 0.5 c x^2; dotted: 1/(0.25 + sigma^2)", "curvature c",
           "DSM loss / its minimum")
    x = np.linspace(-2.5, 2.5, 501)
    for sigma in (0.1, 0.3, 1.0):
        b.plot(x, mixture_score(x, sigma), label=f"sigma={sigma}")
    b.set_ylim(-15, 15)
    _label(b, "score of modes +-1 (std 0.1) plus noise", "x", "d log q_sigma / dx")
    return fig
