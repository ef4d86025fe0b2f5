"""The figures of ``losslab explain NAME --plot FILE.png`` and of ``docs/img/explain_*.png``.

Each figure is a :class:`LossFigure`: a key (its file is ``explain_<key>.png``),
a function that draws it from the numbers of :mod:`losslab.explain.curves`,
and a caption. Every explanation names its figure (``Explanation.figure``);
several losses share one (minimax, ns and dragan share :data:`SATURATION`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from matplotlib.figure import Figure

from losslab.explain.curves import (
    binary_stability_curves,
    cosine_alpha_bar,
    critic_1d_curves,
    diffusion_weight_curves,
    focal_curves,
    linear_alpha_bar,
    margin_curves,
    pointwise,
    saturation_curves,
    softmax_contrastive_curves,
    softmax_curves,
)
from losslab.explain.figures_ebm import draw_ebm_cd, draw_ebm_dsm
from losslab.io import atomic_write_bytes
from losslab.losses import GAN_LOSSES, gan
from losslab.losses.classification import smoothed_optimal_logit_gap
from losslab.losses.penalties import BEGANEquilibrium, pulling_away_term

DPI = 90  # docs figures stay small


@dataclass(frozen=True)
class LossFigure:
    """One figure: what draws it and what it shows.

    Attributes
    ----------
    key : str
        Short name; the docs file is ``explain_<key>.png`` and the Markdown alt text is ``key``.
    draw : callable
        ``draw() -> matplotlib.figure.Figure``, computed from :mod:`losslab.explain.curves`.
    caption : str
        One paragraph (terminal and docs).
    """

    key: str
    draw: Callable[[], Figure]
    caption: str

    @property
    def file_name(self) -> str:
        """``explain_<key>.png``: the figure's file name in ``docs/img/``."""
        return f"explain_{self.key}.png"

    def save(self, path: str | Path) -> Path:
        """Draw the figure and write it to ``path`` as PNG (``DPI`` dots per inch), atomically.

        The PNG carries no software-version metadata, so the bytes depend only on the figure.

        Returns
        -------
        Path
            ``path``.
        """
        buf = io.BytesIO()
        self.draw().savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        atomic_write_bytes(Path(path), buf.getvalue())
        return Path(path)


def _figure(ncols: int, title: str) -> tuple[Figure, list]:
    fig = Figure(figsize=(3.9 * ncols, 3.2), layout="constrained")
    axes = fig.subplots(1, ncols)
    fig.suptitle(title, fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    return fig, list(axes)


def _label(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)


def _draw_saturation() -> Figure:
    p = np.logspace(-6, math.log10(0.999), 300)
    c = saturation_curves(p)
    fig, (a, b) = _figure(2, "Generator losses over D(G(z)): minimax saturates, ns does not")
    a.plot(p, c["minimax_loss"], label="minimax  log(1 - D)")
    a.plot(p, c["ns_loss"], label="ns  -log D")
    a.set_xscale("log")
    _label(a, "generator loss", "D(G(z))  (D rejects fakes on the left)", "L_G (nats)")
    b.plot(p, np.abs(c["minimax_grad"]), label="minimax  |dL/dl| = D")
    b.plot(p, np.abs(c["ns_grad"]), label="ns  |dL/dl| = 1 - D")
    b.set_xscale("log")
    b.set_yscale("log")
    _label(b, "gradient w.r.t. the logit l", "D(G(z))", "|dL_G / dl|")
    return fig


def _draw_critic_1d() -> Figure:
    d = np.linspace(0.0, 3.0, 121)
    fig, (a, b) = _figure(2, "Real data at 0, fakes at d: optimal BCE discriminator vs optimal W1 critic")
    for sigma in (0.1, 0.3):
        c = critic_1d_curves(d, sigma)
        a.plot(d, c["js"], label=f"JS, Gaussians s={sigma}")
        b.plot(d[1:], np.maximum(c["bce_grad"][1:], 1e-12), label=f"BCE |dD*/dx| at x=d, s={sigma}")
    a.plot(d, np.where(d > 0, math.log(2.0), 0.0), "k:", label="JS, point masses")
    a.plot(d, d, "k-", lw=1, label="W1 = d")
    a.set_ylim(0, 1.6)
    _label(a, "what the losses see", "distance d of the fakes from the data", "nats / data units")
    b.plot(d[1:], np.ones_like(d[1:]), "k-", lw=1, label="WGAN-GP optimal critic |f'| = 1")
    b.set_yscale("log")
    b.set_ylim(1e-12, 1e2)
    _label(b, "gradient norm at the fake point (exact)", "distance d", "|gradient| (floored at 1e-12)")
    return fig


def _draw_margins(name: str) -> Figure:
    spec = GAN_LOSSES[name]
    real_opt, fake_opt = 1.0, (0.0 if name == "lsgan" else -1.0)  # each term is 0 at the other's optimum
    t = np.linspace(-3.0, 3.0, 241)

    def on(x: float) -> torch.Tensor:
        return torch.tensor([x], dtype=torch.float64)

    terms = {
        "D loss, real sample": lambda s: spec.d_loss(d_real=s, d_fake=on(fake_opt)),
        "D loss, fake sample": lambda s: spec.d_loss(d_real=on(real_opt), d_fake=s),
        "G loss": lambda s: spec.g_loss(d_fake=s),
    }
    fig, (a, b) = _figure(2, f"{name}: per-sample loss terms and their slopes against the critic's score")
    for label, fn in terms.items():
        v, g = pointwise(fn, t)
        a.plot(t, v, label=label)
        b.plot(t, g, label=label)
    _label(a, "loss", "critic output D (raw score)", "loss")
    _label(b, "derivative w.r.t. the score", "critic output D", "dL / dD")
    return fig


def _draw_relativistic() -> Figure:
    delta = np.linspace(-6.0, 6.0, 241)  # C(x) - C(G(z)) of one (real, fake) pair
    zero = torch.zeros(1, dtype=torch.float64)
    fig, (a, b) = _figure(2, "rpgan / r3gan: each pair's loss against the logit difference C(x) - C(G(z))")
    for label, fn in (
        ("D loss softplus(C(G) - C(x))", lambda s: gan.rpgan_d_loss(d_real=s, d_fake=zero)),
        ("G loss softplus(C(x) - C(G))", lambda s: gan.rpgan_g_loss(d_real=s, d_fake=zero)),
        ("ns G loss softplus(-C(G)) at C(x) = 0", lambda s: gan.ns_g_loss(d_fake=-s)),
    ):
        v, g = pointwise(fn, delta)
        a.plot(delta, v, label=label)
        b.plot(delta, g, label=label)
    _label(a, "loss of one pair", "C(x) - C(G(z))  (the critic prefers the real one on the right)", "loss (nats)")
    _label(b, "derivative w.r.t. the difference", "C(x) - C(G(z))", "dL / d(C(x) - C(G(z)))")
    return fig


def _draw_ebgan() -> Figure:
    m = 1.0
    e = np.linspace(0.0, 2.0, 201)
    big = torch.tensor([m + 1.0], dtype=torch.float64)  # a fake above the margin: its term is 0
    zero = torch.zeros(1, dtype=torch.float64)
    fig, (a, b, c) = _figure(3, "ebgan: energies, the margin m = 1, and the pulling-away term")
    for label, fn in (
        ("D loss, real: e", lambda s: gan.ebgan_d_loss(e_real=s, e_fake=big, margin=m)),
        ("D loss, fake: max(0, m - e)", lambda s: gan.ebgan_d_loss(e_real=zero, e_fake=s, margin=m)),
        ("G loss: e", lambda s: gan.ebgan_g_loss(e_fake=s)),
    ):
        v, g = pointwise(fn, e)
        a.plot(e, v, label=label)
        b.plot(e, g, label=label)
    _label(a, "loss", "energy e >= 0 (reconstruction error)", "loss")
    _label(b, "derivative", "energy e", "dL / de")
    theta = np.linspace(0.0, math.pi, 181)
    pt = [float(pulling_away_term(torch.tensor([[1.0, 0.0], [math.cos(th), math.sin(th)]]))) for th in theta]
    c.plot(np.degrees(theta), pt, label="f_PT of two codes")
    _label(c, "pulling-away term", "angle between the two codes (degrees)", "f_PT = cos^2")
    return fig


def _draw_began() -> Figure:
    e = np.linspace(0.0, 1.0, 101)
    zero = torch.zeros(1, dtype=torch.float64)
    fig, (a, b) = _figure(2, "began: D's loss terms for several k_t, and the convergence measure")
    v, _ = pointwise(lambda s: gan.began_d_loss(e_real=s, e_fake=zero, k=0.0), e)
    a.plot(e, v, "k-", label="D loss, real: L(x)")
    for k in (0.25, 0.5, 1.0):
        v, _ = pointwise(lambda s, k=k: gan.began_d_loss(e_real=zero, e_fake=s, k=k), e)
        a.plot(e, v, label=f"D loss, fake: -k L(G), k={k}")
    _label(a, "loss terms", "energy L (L1 reconstruction error)", "loss")
    ratio = np.linspace(0.0, 1.5, 151)
    for gamma in (0.3, 0.5, 0.7):
        eq = BEGANEquilibrium(gamma=gamma)
        b.plot(ratio, [eq.convergence(1.0, r) for r in ratio], label=f"gamma={gamma}")
    _label(b, "M_global at L(x) = 1: minimal at L(G) = gamma L(x)", "L(G(z)) / L(x)", "M_global")
    return fig


def _draw_binary() -> Figure:
    z = np.linspace(-40.0, 10.0, 501)
    c = binary_stability_curves(z)
    fig, (a, b) = _figure(2, "Target 1, float32: bce on sigmoid(z) vs bce-with-logits on z")
    a.plot(z, c["bce_loss"], label="bce(sigmoid(z)), clamped at 1e-7")
    a.plot(z, c["logits_loss"], "--", label="bce-with-logits(z) = softplus(-z)")
    _label(a, "loss", "logit z of the true class", "loss (nats)")
    b.plot(z, c["bce_grad"], label="bce: 0 once sigmoid(z) < 1e-7")
    b.plot(z, c["logits_grad"], "--", label="bce-with-logits: sigmoid(z) - 1")
    _label(b, "derivative w.r.t. the logit", "logit z", "dL / dz")
    return fig


def _draw_softmax() -> Figure:
    g = np.linspace(-5.0, 12.0, 341)
    c = softmax_curves(g, num_classes=10, smoothings=(0.0, 0.1))
    fig, (a, b) = _figure(2, "cce / sparse-cce, K = 10, logits (g, 0, ..., 0): label smoothing")
    for e in (0.0, 0.1):
        a.plot(g, c[f"loss_{e}"], label=f"label smoothing {e}")
        b.plot(g, c[f"grad_{e}"], label=f"label smoothing {e}")
    gap = smoothed_optimal_logit_gap(10, 0.1)
    for ax in (a, b):
        ax.axvline(gap, color="0.5", ls=":", label=f"optimum with 0.1: g = {gap:.2f}")
    _label(a, "loss", "logit gap g of the true class", "loss (nats)")
    _label(b, "derivative w.r.t. g", "logit gap g", "dL / dg")
    return fig


def _draw_focal() -> Figure:
    p = np.linspace(0.001, 0.999, 400)
    gammas = (0.0, 0.5, 1.0, 2.0, 5.0)
    c = focal_curves(p, gammas)
    fig, (a, b) = _figure(2, "focal loss (alpha off) against p_t, as in Lin et al. Figure 1")
    for gamma in gammas:
        label = "gamma=0 (cross-entropy)" if gamma == 0 else f"gamma={gamma}"
        a.plot(p, c[f"loss_{gamma}"], label=label)
        b.plot(p, np.abs(c[f"grad_{gamma}"]), label=label)
    a.set_ylim(0, 5)
    _label(a, "loss", "probability of the true class p_t", "loss (nats)")
    b.set_yscale("log")
    b.set_ylim(1e-6, 2.0)
    _label(b, "|derivative| w.r.t. the logit", "p_t", "|dFL / dz|")
    return fig


def _draw_diffusion() -> Figure:
    fig, (a, b) = _figure(2, "Diffusion: eps, x0, v, flow matching and EDM are one x0 regression, weighted")
    t = np.arange(1, 1001)
    for label, ab in (("linear (ddpm, ddpm-x0)", linear_alpha_bar()), ("cosine (ddpm-v)", cosine_alpha_bar())):
        a.plot(t, np.log(ab) - np.log1p(-ab), label=label)
    _label(a, "schedules", "timestep t", "log SNR(t)")
    c = diffusion_weight_curves(np.linspace(-10.0, 10.0, 201))
    for name, label, style in (("ddpm", "ddpm (eps): SNR", "-"), ("ddpm-x0", "ddpm-x0: 1", "-"),
                               ("ddpm-v", "ddpm-v: 1 + SNR", "-"),
                               ("flow-matching", "flow-matching: (1 + sqrt(SNR))^2", "--"),
                               ("edm", "edm (sigma_data 0.5): 4 + SNR", "--")):
        b.plot(c["log_snr"], c[name], style, label=label)
    b.set_yscale("log")
    _label(b, "weight on ||x0 - x0_hat||^2", "log SNR (noisy on the left)", "weight")
    return fig


def _draw_contrastive() -> Figure:
    taus = (0.01, 0.07, 0.1, 0.5, 1.0)
    names = {0.01: "clip at its limit s = 100", 0.07: "info-nce, clip init", 0.1: "supcon", 0.5: "nt-xent"}
    # dense near s = 0, where small temperatures are steep
    s = np.concatenate([np.linspace(-0.99, -0.2, 40, endpoint=False), np.linspace(-0.2, 0.2, 81),
                        np.linspace(0.2, 0.99, 41)[1:]])
    c = softmax_contrastive_curves(s, taus, batch=64)
    k = int(c["negatives"])
    fig, (a, b, m) = _figure(3, f"Contrastive losses on the unit sphere (softmax: N = 64, {k} negatives at cos 0)")
    for tau in taus:
        label = f"tau={tau}" + (f" ({names[tau]})" if tau in names else "")
        a.plot(s, c[f"loss_{tau}"], label=label)
        b.plot(s, np.maximum(np.abs(c[f"grad_{tau}"]), 1e-12), label=label)
    a.axhline(math.log(k + 1), color="0.5", ls=":", label=f"log(2N - 1) = {math.log(k + 1):.2f}: all equal")
    a.set_ylim(0, 12)
    _label(a, "NT-Xent per anchor", "cosine s of the positive pair", "loss (nats)")
    b.set_yscale("log")
    b.set_ylim(1e-6, 200)
    _label(b, "|derivative| w.r.t. s", "cosine s of the positive pair", "|dL / ds|")
    d = np.linspace(0.01, 1.99, 199)
    mc = margin_curves(d)
    for key, label, style in (
        ("contrastive_pos", "contrastive, positive: D^2/2", "-"),
        ("contrastive_neg", "contrastive, negative: max(0, 1 - D)^2/2", "-"),
        ("triplet", "triplet, negative at D (positive at 0.7)", "-"),
        ("bce_pos", "pairwise-bce, positive", "--"),
        ("bce_neg", "pairwise-bce, negative", "--"),
    ):
        m.plot(d, mc[f"{key}_loss"], style, label=label)
    _label(m, "pair and triplet losses", "distance D of unit vectors (D^2 = 2 - 2 cos)", "loss")
    return fig




# --------------------------------------------------------------------------- the figures; explanations name them

SATURATION = LossFigure(
    "saturation",
    _draw_saturation,
    "Generator loss and its derivative w.r.t. the logit over D(G(z)): minimax's gradient D(G(z)) vanishes "
    "when D rejects the fakes, ns's 1 - D(G(z)) tends to 1.",
)
CRITIC_1D = LossFigure(
    "critic_1d",
    _draw_critic_1d,
    "Real data at 0, fakes at distance d (exact): JS saturates at log 2 while W1 = d grows; the optimal BCE "
    "discriminator's slope at the fakes vanishes while the optimal W1 critic's is 1.",
)
LSGAN = LossFigure(
    "lsgan",
    partial(_draw_margins, "lsgan"),
    "Per-sample LSGAN terms: quadratic, with slopes proportional to the distance from the target.",
)
HINGE = LossFigure(
    "hinge",
    partial(_draw_margins, "hinge"),
    "Per-sample hinge terms: D stops pushing beyond the margins +-1; G's slope is a constant -1.",
)
RELATIVISTIC = LossFigure(
    "relativistic",
    _draw_relativistic,
    "Relativistic pairing: D's and G's loss of one (real, fake) pair depend only on the difference of their "
    "logits; G's slope tends to 1 (not 0) when the critic prefers the real sample, like ns's.",
)
EBGAN = LossFigure(
    "ebgan",
    _draw_ebgan,
    "EBGAN energies and the margin, and the pulling-away term: 0 for orthogonal codes, 1 for parallel ones.",
)
BEGAN = LossFigure(
    "began",
    _draw_began,
    "BEGAN: D's loss terms for several k_t, and M_global, minimal at L(G) = gamma L(x).",
)
BINARY = LossFigure(
    "binary",
    _draw_binary,
    "float32, target 1: bce on probabilities caps at -log(1e-7) with a zero gradient; "
    "bce-with-logits keeps the gradient -1.",
)
SOFTMAX = LossFigure(
    "softmax",
    _draw_softmax,
    "Cross-entropy against the logit gap: without smoothing the loss keeps decreasing; with smoothing 0.1 it "
    "has a finite optimum.",
)
FOCAL = LossFigure(
    "focal",
    _draw_focal,
    "Focal loss against the probability of the true class for several gamma (Lin et al. Figure 1).",
)
DIFFUSION = LossFigure(
    "diffusion",
    _draw_diffusion,
    "log SNR of the schedules, and the weight each diffusion loss puts on the x0 error (flow matching and EDM "
    "at their own SNR: ((1 - t) / t)^2 and 1 / sigma^2).",
)
CONTRASTIVE = LossFigure(
    "contrastive",
    _draw_contrastive,
    "NT-Xent per anchor (N = 64, 126 negatives at cosine 0) and its slope against the positive's cosine "
    "for several temperatures (the same curves hold for info-nce and each direction of clip): every "
    "temperature gives log(2N - 1) when all similarities are equal, a small tau a steep loss and large "
    "gradients, tau = 1 a high floor and a weak pull. Right: the margin losses stop at their hinge, "
    "pairwise-bce (tau = 1) never does.",
)
EBM_CD = LossFigure(
    "ebm_cd",
    draw_ebm_cd,
    "A double-well energy and its Boltzmann density exp(-E)/Z; 4,000 Langevin chains from uniform noise: "
    "after 10 steps the samples are not yet distributed as exp(-E)/Z (short-run chains define their own "
    "sampler), after 1,000 they are.",
)
EBM_DSM = LossFigure(
    "ebm_dsm",
    draw_ebm_dsm,
    "Denoising score matching of a quadratic energy on Gaussian data: the loss is minimal where the energy's "
    "score equals the noisy data's, c = 1/(s0^2 + sigma^2); right, the score of a two-mode mixture smoothed by "
    "noise of several sigma, as in the noise levels of diffusion models.",
)
