"""The Dirac-GAN figures: each GAN loss's exact gradient field in (theta, psi) with a simulated trajectory.

:func:`draw_dirac` is the lower half of ``losslab explain NAME --plot FILE.png`` for a GAN
loss (:func:`dirac_png`), :data:`DIRAC` the docs' side-by-side comparison of ns, wgan,
wgan-gp and r3gan. The numbers come from :mod:`losslab.explain.dirac`.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from losslab.explain import dirac
from losslab.explain.figures import DPI, LossFigure

COMPARED = ("ns", "wgan", "wgan-gp", "r3gan")  # the docs' side-by-side panels
GRID = 15  # arrows per axis


def _panel(ax, name: str, steps: int | None) -> dict:
    """Field arrows (direction only; colour: |v|) and the alternating-GD trajectory on one axis."""
    a = dirac.analyse(name)
    sim = dirac.simulate(name, steps=steps)
    th, ps = sim["theta"], sim["psi"]
    finite = np.isfinite(th) & np.isfinite(ps)
    lim = float(min(max(2.0, 1.1 * np.abs(np.concatenate([th[finite], ps[finite]])).max()), 25.0))
    g = np.linspace(-lim, lim, GRID)
    tt, pp = np.meshgrid(g, g)
    vt, vp = dirac.vector_field(name, tt, pp)
    norm = np.hypot(vt, vp)
    safe = np.where(norm > 0, norm, 1.0)
    ax.quiver(tt, pp, vt / safe, vp / safe, color="0.55", angles="xy", pivot="mid", scale=GRID * 1.3, width=0.004)
    ax.plot(th[finite], ps[finite], "-", color="tab:red", lw=1.0, label="alternating GD")
    ax.plot(th[0], ps[0], "o", color="tab:red", ms=5, label="start (1, 1)")
    ax.plot(0.0, 0.0, "k*", ms=9, label="equilibrium (0, 0)")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("theta (generator: a Dirac at theta)", fontsize=8)
    ax.set_ylabel("psi (critic D(x) = psi x)", fontsize=8)
    ax.set_title(f"{name}: eigenvalues {a.eigen_text()}\nlinearisation: {a.verdict}; "
                 f"{len(th) - 1} updates: {sim['verdict']}", fontsize=8)
    ax.legend(fontsize=6, loc="lower left")
    ax.tick_params(labelsize=7)
    return sim


def draw_dirac(name: str, steps: int | None = None) -> Figure:
    """Two panels for loss ``name``: the field with its trajectory, and the distance to (0, 0) over updates."""
    fig = Figure(figsize=(7.8, 3.6), layout="constrained")
    a, b = fig.subplots(1, 2)
    sim = _panel(a, name, steps)
    d = np.hypot(sim["theta"], sim["psi"])
    b.plot(np.arange(len(d)), d, color="tab:red")
    b.set_yscale("log")
    b.grid(alpha=0.3)
    b.tick_params(labelsize=7)
    b.set_title(f"distance to the equilibrium\nsteps h_g = {sim['h_g']:.3g}, h_d = {sim['h_d']:.3g} "
                f"(own lr x {sim['scale']:.3g}), n_critic = {sim['n_critic']}", fontsize=8)
    b.set_xlabel("generator updates", fontsize=8)
    b.set_ylabel("sqrt(theta^2 + psi^2)", fontsize=8)
    fig.suptitle(f"Dirac-GAN (Mescheder et al. 2018, Sec. 2): {name}'s exact gradient field and "
                 "alternating gradient descent from (1, 1)", fontsize=9)
    return fig


def draw_comparison(steps: int | None = None) -> Figure:
    """The docs' figure: the fields and trajectories of :data:`COMPARED` side by side."""
    fig = Figure(figsize=(3.6 * len(COMPARED), 3.9), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(COMPARED)), COMPARED):
        _panel(ax, name, steps)
    fig.suptitle("Dirac-GAN: data at 0, generator at theta, critic D(x) = psi x; arrows: the direction of the exact "
                 "gradient field, red: alternating gradient descent", fontsize=9)
    return fig


def figure_png(fig: Figure) -> bytes:
    """PNG bytes of a figure (``DPI``; no software-version metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def stack_png(top: bytes, bottom: bytes) -> bytes:
    """Two PNGs one above the other on white, as one PNG (what ``explain --plot`` writes for a GAN loss)."""
    with Image.open(io.BytesIO(top)) as a, Image.open(io.BytesIO(bottom)) as b:
        a, b = a.convert("RGB"), b.convert("RGB")
        out = Image.new("RGB", (max(a.width, b.width), a.height + b.height), "white")
        out.paste(a, (0, 0))
        out.paste(b, (0, a.height))
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


DIRAC = LossFigure(
    "dirac",
    draw_comparison,
    "The Dirac-GAN of Mescheder et al. (2018): exact gradient fields from the losses' own functions (autograd) "
    "and alternating gradient descent from (1, 1) with each loss's own learning-rate ratio and n_critic. "
    "ns and wgan have purely imaginary eigenvalues at the equilibrium, so nothing pulls them in exponentially: "
    "ns's trajectory winds inwards slower than exponentially (its nonlinearity, not its linearisation), wgan's "
    "clipping at c = 0.01 leaves the critic almost flat and the generator crawls towards 0 at speed c. "
    "wgan-gp's field jumps at psi = 0 (its penalty pushes |psi| to 1) and the trajectory runs away from the "
    "equilibrium (theta ~ 18 after 1000 updates). r3gan's R1 + R2 damp the rotation: it converges exponentially.",
)

__all__ = ["COMPARED", "DIRAC", "draw_comparison", "draw_dirac", "figure_png", "stack_png"]
