"""What each loss is, where it comes from, and why: the one source of ``losslab explain`` and ``docs/``.

:data:`EXPLANATIONS` maps every loss name of every registry (GAN, diffusion,
classification, contrastive) to an :class:`Explanation`: the formula (plain text for
the terminal, LaTeX for the docs), a short derivation, the models that use it,
strengths, weaknesses, failure modes, the source, and a command that shows
it at work on data. :func:`explain_text` renders one for the terminal,
:func:`explain_markdown` renders one docs page per family (``scripts/make_docs.py``
writes them to ``docs/<family>.md``), and :func:`plot_loss` draws the figure
of ``losslab explain NAME --plot FILE.png``.

The figures are computed, not drawn from memory: every curve comes from the
real loss functions of :mod:`losslab.losses` through autograd, or from a
closed form that the tests check against autograd. The public ``*_curves``
functions return the numbers behind each figure.

Text conventions: inline mathematics is written between backticks (a code
span in Markdown; the backticks are dropped in the terminal).
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import integrate, special

from losslab.errors import UserError, unknown_choice
from losslab.io import atomic_write_bytes

DPI = 90  # docs figures stay small


@dataclass(frozen=True)
class Explanation:
    """Everything ``losslab explain NAME`` says about one loss.

    Attributes
    ----------
    name : str
        The loss's CLI name (the key in :data:`EXPLANATIONS` and in its registry).
    family : str
        "gan" | "diffusion" | "classification" | "contrastive" (one docs page each).
    formula_text : str
        The formula in plain text, one equation per line (terminal).
    formula_latex : str
        The same formula in LaTeX (docs; one display block).
    derivation : str
        Where the formula comes from, paragraphs separated by blank lines.
    used_by, strengths, weaknesses, failure_modes : tuple of str
        Bullet points.
    source : str
        Papers with arXiv ids (or books with years) and equation numbers.
    compare_command : str
        A command line that shows the loss at work on data.
    """

    name: str
    family: str
    formula_text: str
    formula_latex: str
    derivation: str
    used_by: tuple[str, ...]
    strengths: tuple[str, ...]
    weaknesses: tuple[str, ...]
    failure_modes: tuple[str, ...]
    source: str
    compare_command: str


# --------------------------------------------------------------------------- family pages

FAMILY_PAGES: dict[str, tuple[str, str]] = {
    "gan": (
        "GAN losses",
        "A GAN trains a generator `G(z)`, `z ~ N(0, I)`, against a critic `D`. The losses differ in what "
        "the critic outputs (a logit `l` with `D = sigmoid(l)`, a raw score, a 1-Lipschitz critic value, "
        "or the reconstruction energy of an autoencoder), in which divergence or distance the pair "
        "ends up minimising, and in where the generator's gradient comes from when the critic wins. "
        "Each loss is a pure keyword-only function in `src/losslab/losses/gan.py`, registered with its "
        "optimiser defaults in `src/losslab/losses/__init__.py`; the penalties are in "
        "`src/losslab/losses/penalties.py`. `x` is a real sample, expectations are batch means.",
    ),
    "diffusion": (
        "Diffusion losses",
        "A denoising diffusion model corrupts data with Gaussian noise, `x_t = sqrt(a_t) x0 + "
        "sqrt(1 - a_t) eps` with `a_t = alpha_bar_t` falling from 1 to about 0 over `T` steps, and "
        "trains one network to undo one step at a time. The three losses here train the same network "
        "and differ only in what it predicts (the noise `eps`, the clean sample `x0`, or the velocity "
        "`v`), which is the same as weighting the timesteps differently. `SNR(t) = a_t / (1 - a_t)` is "
        "the signal-to-noise ratio of `x_t`. The objectives are in `src/losslab/losses/diffusion.py`, "
        "the schedules and samplers in `src/losslab/schedules.py`.",
    ),
    "classification": (
        "Classification losses",
        "Cross-entropy losses and their building blocks, written to stay finite at any logit: "
        "`sigmoid`, `softplus`, `logit`, `softmax` and `log_softmax` in "
        "`src/losslab/losses/classification.py` evaluate only `exp(-|z|)` or `exp(z - max z)`, never "
        "an exponential that can overflow. `z` is a logit, `p = sigmoid(z)` or `softmax(z)`, `y` the "
        "target. Every loss is the batch mean in nats and is checked against `torch.nn.functional` "
        "in `tests/test_classification.py`.",
    ),
    "contrastive": (
        "Contrastive losses",
        "A contrastive loss trains an encoder without a decoder: the embeddings of two inputs that should "
        "match (a positive pair: two augmented views of one image, two images with one label, an image and "
        "its caption) are pulled together and the others pushed apart. Every loss here L2-normalises the "
        "embeddings first, so they live on the unit sphere: the cosine similarity `s` in `[-1, 1]` and the "
        "distance `D`, `D^2 = 2 - 2 s`, describe one geometry, and margins and temperatures mean the same for "
        "every encoder. The losses differ in how many negatives each positive is compared with (one pair, one "
        "triplet, or the whole batch through a softmax) and in where the positives come from. There is no "
        "sample to score: `src/losslab/train/contrastive.py` measures the representation with a linear probe "
        "and a kNN classifier against raw pixels and an untrained encoder. The losses are pure functions in "
        "`src/losslab/losses/contrastive.py`, registered in `CONTRASTIVE_LOSSES` with their defaults.",
    ),
}

# --------------------------------------------------------------------------- the explanations

EXPLANATIONS: dict[str, Explanation] = {
    # ------------------------------------------------------------------ GAN
    "minimax": Explanation(
        name="minimax",
        family="gan",
        formula_text=(
            "min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]\n"
            "L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]   (D = sigmoid(l), l the logit)\n"
            "L_G =  E_z[log(1 - D(G(z)))] = -E_z[softplus(l(G(z)))]"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"\min_G \max_D V(D,G) &= \mathbb{E}_{x\sim p_\text{data}}[\log D(x)]"
            r" + \mathbb{E}_{z\sim p_z}[\log(1 - D(G(z)))] \\"
            r"L_D &= -\mathbb{E}_x[\log D(x)] - \mathbb{E}_z[\log(1 - D(G(z)))], \qquad D = \sigma(\ell) \\"
            r"L_G &= \mathbb{E}_z[\log(1 - D(G(z)))] = -\mathbb{E}_z[\operatorname{softplus}(\ell(G(z)))]"
            r"\end{aligned}"
        ),
        derivation=(
            "For a fixed generator with density `p_g`, `V = integral p_data(x) log D(x) + p_g(x) log(1 - D(x)) dx`. "
            "Pointwise, `a log y + b log(1 - y)` is maximal at `y = a / (a + b)`, so the optimal discriminator "
            "is `D*(x) = p_data(x) / (p_data(x) + p_g(x))` (Proposition 1). Substituting it, "
            "`V(D*, G) = -log 4 + KL(p_data || m) + KL(p_g || m) = -log 4 + 2 JS(p_data || p_g)` with "
            "`m = (p_data + p_g) / 2` (Theorem 1): against an optimal discriminator the generator minimises "
            "the Jensen-Shannon divergence, and the only equilibrium is `p_g = p_data`, `D* = 1/2`.\n\n"
            "Why it saturates: write `D = sigmoid(l)`. Then `dL_G/dD = -1 / (1 - D)`, about -1 when "
            "`D(G(z))` is small, but the sigmoid's slope `dD/dl = D (1 - D)` multiplies it, so "
            "`dL_G/dl = -D(G(z))`: when the discriminator confidently rejects the fakes (early in training, "
            "`D(G(z)) -> 0`) the generator's gradient vanishes exactly when it is needed most. Worse, when "
            "`p_data` and `p_g` live on disjoint low-dimensional sets, `JS = log 2` whatever their "
            "distance, so even the ideal objective says nothing about which way to move "
            "(Arjovsky & Bottou 2017)."
        ),
        used_by=(
            "Goodfellow et al. 2014: the original GAN game and its analysis (optimal D, JS divergence)",
            "Theory: the starting point of most analyses of GAN training (e.g. Arjovsky & Bottou 2017)",
            "Rarely trained as is: the original paper already trains G with the non-saturating loss (ns)",
        ),
        strengths=(
            "A true zero-sum game with a clean theory: closed-form optimal D, a known divergence, a unique optimum",
            "The discriminator is ordinary logistic regression (binary cross-entropy), calibrated and well understood",
        ),
        weaknesses=(
            "The generator's gradient `-D(G(z))` (w.r.t. the logit) vanishes when D rejects the fakes",
            "JS is constant (`log 2`) for disjoint supports: no notion of distance between the distributions",
        ),
        failure_modes=(
            "Stalls early: D wins, `d_acc -> 1`, `p_fake -> 0`, and `g_grad_norm` collapses "
            "(see the report's diagnostics)",
            "Mode collapse and oscillation, as in every JS-based GAN",
        ),
        source="Goodfellow et al. 2014, 'Generative Adversarial Nets', arXiv:1406.2661, Eq. 1, Proposition 1, "
        "Theorem 1; Arjovsky & Bottou 2017, arXiv:1701.04862",
        compare_command="losslab compare --data ring8 --losses minimax,ns --seeds 3 --out explain-minimax",
    ),
    "ns": Explanation(
        name="ns",
        family="gan",
        formula_text=(
            "L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]   (as minimax)\n"
            "L_G = -E_z[log D(G(z))] = E_z[softplus(-l(G(z)))]"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L_D &= -\mathbb{E}_x[\log D(x)] - \mathbb{E}_z[\log(1 - D(G(z)))], \qquad D = \sigma(\ell) \\"
            r"L_G &= -\mathbb{E}_z[\log D(G(z))] = \mathbb{E}_z[\operatorname{softplus}(-\ell(G(z)))]"
            r"\end{aligned}"
        ),
        derivation=(
            "Goodfellow et al. (Sec. 3) keep the discriminator of the minimax game but let the generator "
            "maximise `log D(G(z))` instead of minimising `log(1 - D(G(z)))`. Both push `D(G(z))` up and "
            "have the same fixed point, but with `D = sigmoid(l)` the gradient is `dL_G/dl = -(1 - D(G(z)))`, "
            "which tends to -1 (not 0) when the discriminator rejects the fakes: the generator learns "
            "fastest exactly when it is worst. The numerically stable form `softplus(-l)` is the binary "
            "cross-entropy of the fakes against the label 'real'.\n\n"
            "The price is that it is no longer a zero-sum game minimising one divergence. Against the "
            "optimal discriminator its expected gradient is the gradient of "
            "`KL(p_g || p_data) - 2 JS(p_g || p_data)` (Arjovsky & Bottou 2017, Theorem 2.5): the reverse "
            "KL punishes fakes where there is no data much more than data where there are no fakes, "
            "which favours sharp samples and dropped modes."
        ),
        used_by=(
            "DCGAN (Radford et al. 2016, arXiv:1511.06434) and most 'vanilla GAN' code",
            "StyleGAN / StyleGAN2 (Karras et al. 2019-2020, arXiv:1912.04958): non-saturating logistic loss "
            "with an R1 penalty",
            "Large-scale benchmark: Lucic et al. 2018 (arXiv:1711.10337) found no loss consistently better "
            "than ns given a hyperparameter search",
        ),
        strengths=(
            "No saturation: the generator's gradient w.r.t. the logit tends to -1 when D rejects fakes",
            "Same cheap discriminator as minimax; robust default with a good architecture",
        ),
        weaknesses=(
            "Not a minimax game: no single divergence is minimised; the reverse-KL term is mode-seeking",
            "With a near-optimal D the generator's updates become noisy and unstable "
            "(Arjovsky & Bottou 2017, Theorem 2.6)",
        ),
        failure_modes=(
            "Mode collapse: few modes of ring8 / grid25 covered (the report's modes and collapse_rate)",
            "Oscillation when D is much stronger than G; D overfitting on small data sets",
        ),
        source="Goodfellow et al. 2014, arXiv:1406.2661, Sec. 3; Arjovsky & Bottou 2017, arXiv:1701.04862, Theorem 2.5",
        compare_command="losslab compare --data ring8 --losses minimax,ns --seeds 3 --out explain-ns",
    ),
    "wgan": Explanation(
        name="wgan",
        family="gan",
        formula_text=(
            "W1(P_r, P_g) = inf_{gamma in Pi(P_r, P_g)} E_{(x, y) ~ gamma} ||x - y||\n"
            "             = sup_{||f||_L <= 1} E_{x ~ P_r}[f(x)] - E_{x ~ P_g}[f(x)]\n"
            "L_D = E_z[f(G(z))] - E_x[f(x)],  then clip every critic weight to [-c, c]\n"
            "L_G = -E_z[f(G(z))]"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"W_1(P_r, P_g) &= \inf_{\gamma \in \Pi(P_r, P_g)} \mathbb{E}_{(x,y)\sim\gamma}\|x - y\|"
            r" = \sup_{\|f\|_L \le 1} \mathbb{E}_{x\sim P_r}[f(x)] - \mathbb{E}_{x\sim P_g}[f(x)] \\"
            r"L_D &= \mathbb{E}_z[f(G(z))] - \mathbb{E}_x[f(x)], \qquad w \leftarrow \operatorname{clip}(w, -c, c) \\"
            r"L_G &= -\mathbb{E}_z[f(G(z))]"
            r"\end{aligned}"
        ),
        derivation=(
            "The Wasserstein-1 (earth mover's) distance is the cheapest cost of transporting the mass of "
            "`P_g` onto `P_r`. Kantorovich-Rubinstein duality rewrites it as a supremum over 1-Lipschitz "
            "functions `f` of `E_r f - E_g f`: a critic that is trained to maximise this difference, "
            "and kept Lipschitz, estimates `W1` (up to the Lipschitz constant `K` of the constrained "
            "family, i.e. `K W1`). Clipping every weight to `[-c, c]` bounds `K` for a given architecture.\n\n"
            "Why it helps: for two point masses at 0 and `theta`, `JS = log 2` for every `theta != 0` "
            "while `W1 = |theta|` (Example 1); `W1` is continuous in the generator's parameters under "
            "mild conditions (Theorem 1), so its gradient points towards the data even when the supports "
            "do not overlap. The critic should be trained close to optimality (5 critic steps per "
            "generator step): unlike a classifier, a better critic gives better gradients, never "
            "vanishing ones. Its estimate `E f(x) - E f(G(z))` tracks sample quality and is logged "
            "as `w_estimate`."
        ),
        used_by=(
            "Arjovsky et al. 2017: DCGAN and MLP generators on LSUN bedrooms, with the W1 estimate as a learning curve",
            "The starting point of WGAN-GP and of spectrally normalised critics",
        ),
        strengths=(
            "A loss curve that means something: the W1 estimate falls as samples improve",
            "No saturation; reported to reduce mode collapse and to work without batch norm in G",
        ),
        weaknesses=(
            "Weight clipping is a crude Lipschitz constraint: the critic underuses its capacity and its gradients "
            "explode or vanish depending on `c` (Gulrajani et al. 2017, Sec. 3)",
            "Slow: RMSprop at lr 5e-5 and 5 critic updates per generator update; momentum optimisers were "
            "unstable in the paper",
        ),
        failure_modes=(
            "`c` too large: the critic takes long to reach its optimum; too small: vanishing gradients",
            "Critic weights pile up at `+-c`; training with Adam instead of RMSprop diverges or oscillates",
        ),
        source="Arjovsky et al. 2017, 'Wasserstein GAN', arXiv:1701.07875, Sec. 3 (Kantorovich-Rubinstein duality), "
        "Example 1, Theorem 1, Algorithm 1",
        compare_command="losslab compare --data ring8 --losses wgan,wgan-gp,ns --seeds 3 --out explain-wgan",
    ),
    "wgan-gp": Explanation(
        name="wgan-gp",
        family="gan",
        formula_text=(
            "L_D = E_z[f(G(z))] - E_x[f(x)] + lambda E_xh[(||grad_xh f(xh)||_2 - 1)^2]\n"
            "      xh = eps x + (1 - eps) G(z),  eps ~ U[0, 1] per sample,  lambda = 10\n"
            "L_G = -E_z[f(G(z))]"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L_D &= \mathbb{E}_z[f(G(z))] - \mathbb{E}_x[f(x)]"
            r" + \lambda\, \mathbb{E}_{\hat x}\big[(\|\nabla_{\hat x} f(\hat x)\|_2 - 1)^2\big],"
            r" \quad \hat x = \epsilon x + (1 - \epsilon) G(z),\ \epsilon \sim U[0, 1] \\"
            r"L_G &= -\mathbb{E}_z[f(G(z))]"
            r"\end{aligned}"
        ),
        derivation=(
            "A differentiable function is 1-Lipschitz if and only if its gradient norm is at most 1 "
            "everywhere. The optimal critic of the Kantorovich-Rubinstein dual has gradient norm exactly 1 "
            "on the straight lines between points that the optimal transport plan couples (Gulrajani et al., "
            "Proposition 1). So instead of clipping weights, WGAN-GP penalises `(||grad f|| - 1)^2` at random "
            "points on lines between a real and a fake sample: a soft, two-sided constraint where it matters. "
            "The norm is per sample, so the critic must treat samples independently (layer norm, no batch norm).\n\n"
            "The 1-D experiment, exactly: real data at 0, fakes at distance `d`. The optimal W1 critic is "
            "`f(x) = -x` (`E_r f - E_g f = d = W1`), whose slope is 1 at every distance, so the generator is "
            "always pulled towards the data at unit rate. The optimal BCE discriminator between two narrow "
            "Gaussians `N(0, s^2)` and `N(d, s^2)` is `D*(x) = sigmoid(d (d - 2x) / (2 s^2))`; at the fake "
            "point its slope is `sigmoid(l)(1 - sigmoid(l)) d / s^2` with `l = -d^2 / (2 s^2)`, which "
            "vanishes like `exp(-d^2 / (2 s^2))` (the figure of `--plot`)."
        ),
        used_by=(
            "Gulrajani et al. 2017: 101-layer ResNet critics on CIFAR-10 and a character-level language model, "
            "no batch norm",
            "Progressive GAN (Karras et al. 2018, arXiv:1710.10196) trained with the WGAN-GP loss",
            "A standard baseline of later GAN comparisons",
        ),
        strengths=(
            "Stable across architectures and hyperparameters; Adam works; no clipping pathologies",
            "Keeps WGAN's meaningful W1 estimate and its non-vanishing gradients",
        ),
        weaknesses=(
            "Costs a second backward pass (double backprop) for the penalty, and 5 critic updates per generator update",
            "The constraint holds only on the sampled interpolates; it forbids batch norm in the critic; "
            "training is not guaranteed to converge locally (Mescheder et al. 2018, arXiv:1801.04406)",
        ),
        failure_modes=(
            "`lambda` too small: the critic is not Lipschitz and its values and `w_estimate` drift away",
            "Batch norm in the critic mixes samples and breaks the per-sample penalty",
        ),
        source="Gulrajani et al. 2017, 'Improved Training of Wasserstein GANs', arXiv:1704.00028, Eq. 3, "
        "Proposition 1, Algorithm 1",
        compare_command="losslab compare --data ring8 --losses wgan-gp,wgan,ns --seeds 3 --out explain-wgan-gp",
    ),
    "lsgan": Explanation(
        name="lsgan",
        family="gan",
        formula_text=(
            "L_D = 1/2 E_x[(D(x) - b)^2] + 1/2 E_z[(D(G(z)) - a)^2]\n"
            "L_G = 1/2 E_z[(D(G(z)) - c)^2]          (0-1 coding: a = 0, b = c = 1; D is a raw score)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L_D &= \tfrac12\,\mathbb{E}_x[(D(x) - b)^2] + \tfrac12\,\mathbb{E}_z[(D(G(z)) - a)^2] \\"
            r"L_G &= \tfrac12\,\mathbb{E}_z[(D(G(z)) - c)^2], \qquad a = 0,\ b = c = 1"
            r"\end{aligned}"
        ),
        derivation=(
            "Mao et al. observe that with the sigmoid cross-entropy, fakes that are already on the 'real' "
            "side of the decision boundary but still far from the data get almost no gradient. Regressing "
            "the raw score onto targets instead penalises every sample in proportion to its distance from "
            "the target: the generator's gradient w.r.t. the score is `D(G(z)) - c`, which grows, rather "
            "than vanishes, the further a fake is from what D believes about real data.\n\n"
            "For a fixed generator the optimal discriminator is `D*(x) = (b p_data(x) + a p_g(x)) / "
            "(p_data(x) + p_g(x))` (minimise the pointwise quadratic). With the coding `b - c = 1`, "
            "`b - a = 2` (e.g. `a = -1, b = 1, c = 0`) and a G-independent term added to `L_G`, the "
            "generator minimises the Pearson chi-square divergence `chi2(p_data + p_g || 2 p_g)` (Sec. 3.2.2). "
            "The 0-1 coding used here does not satisfy those conditions but performed as well in the paper."
        ),
        used_by=(
            "Mao et al. 2017: LSUN scenes and a 3740-class Chinese character data set",
            "CycleGAN (Zhu et al. 2017, arXiv:1703.10593) uses the least-squares adversarial loss",
        ),
        strengths=(
            "Gradients proportional to the error: no saturation, and fakes far from the data are pulled hardest",
            "As cheap as the BCE losses; reported more stable than minimax in the paper",
        ),
        weaknesses=(
            "The score is unbounded: outliers produce large quadratic gradients",
            "The divergence interpretation needs a different coding than the 0-1 coding people use",
        ),
        failure_modes=(
            "Large score magnitudes and exploding gradients without a bounded or normalised D",
            "Mode collapse on multimodal data, as with the other f-divergence GANs",
        ),
        source="Mao et al. 2017, 'Least Squares Generative Adversarial Networks', arXiv:1611.04076, Eq. 2, Sec. 3.2.2",
        compare_command="losslab compare --data ring8 --losses lsgan,ns --seeds 3 --out explain-lsgan",
    ),
    "hinge": Explanation(
        name="hinge",
        family="gan",
        formula_text=(
            "L_D = E_x[max(0, 1 - D(x))] + E_z[max(0, 1 + D(G(z)))]\n"
            "L_G = -E_z[D(G(z))]          (D is an unbounded score)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L_D &= \mathbb{E}_x[\max(0, 1 - D(x))] + \mathbb{E}_z[\max(0, 1 + D(G(z)))] \\"
            r"L_G &= -\mathbb{E}_z[D(G(z))]"
            r"\end{aligned}"
        ),
        derivation=(
            "Geometric GAN (Lim & Ye) treats the discriminator as a soft-margin linear classifier in "
            "feature space (an SVM): a sample contributes to `L_D` only while it is inside the margin "
            "(`D(x) < 1` for real, `D(G(z)) > -1` for fake), so D stops pushing on samples it already "
            "separates instead of growing their scores without end. The generator moves its samples along "
            "the normal of the separating hyperplane, `-E D(G(z))`, whose gradient w.r.t. the score is a "
            "constant -1: it never saturates.\n\n"
            "Optimal discriminator: minimising `p(1 - D) + q(1 + D)` pointwise over `D` in `[-1, 1]` "
            "(`p = p_data`, `q = p_g`; values outside only add loss) gives `D*(x) = sign(p(x) - q(x))` and "
            "a minimal loss of `integral 2 min(p, q) = 2 - 2 TV(p_data, p_g)`: the hinge discriminator "
            "measures the total variation distance."
        ),
        used_by=(
            "SN-GAN (Miyato et al. 2018), SAGAN (Zhang et al. 2019, arXiv:1805.08318) and BigGAN "
            "(Brock et al. 2019, arXiv:1809.11096), all with spectral normalisation",
        ),
        strengths=(
            "Margins stop D from over-optimising confident samples; G's gradient never saturates",
            "With spectral normalisation, the loss behind state-of-the-art class-conditional GANs",
        ),
        weaknesses=(
            "Without a Lipschitz constraint (spectral norm; losslab has none here) `-E D(G(z))` is unbounded",
            "The generator loss is not a distance estimate; its value says little about sample quality",
        ),
        failure_modes=(
            "D loss stuck at 0: every sample beyond its margin, so D gets no gradient until fakes cross it",
            "Drifting or exploding critic scores and G loss without normalisation",
        ),
        source="Lim & Ye 2017, 'Geometric GAN', arXiv:1705.02894; Miyato et al. 2018, 'Spectral Normalization "
        "for GANs', arXiv:1802.05957, Sec. 4 (hinge loss)",
        compare_command="losslab compare --data ring8 --losses hinge,ns --seeds 3 --out explain-hinge",
    ),
    "dragan": Explanation(
        name="dragan",
        family="gan",
        formula_text=(
            "L_D = E_x[softplus(-l(x))] + E_z[softplus(l(G(z)))] + lambda E_xh[(||grad_xh l(xh)||_2 - 1)^2]\n"
            "      xh = x + alpha (x_p - x),  x_p = x + c std(x) u,  u ~ U[0, 1]^d, alpha ~ U[0, 1]\n"
            "L_G = E_z[softplus(-l(G(z)))]          (lambda = 10, c = 0.5)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L_D &= \mathbb{E}_x[\operatorname{softplus}(-\ell(x))]"
            r" + \mathbb{E}_z[\operatorname{softplus}(\ell(G(z)))]"
            r" + \lambda\,\mathbb{E}_{\hat x}\big[(\|\nabla_{\hat x}\ell(\hat x)\|_2 - 1)^2\big] \\"
            r"\hat x &= x + \alpha (x_p - x), \quad x_p = x + c\,\operatorname{std}(x)\,u,"
            r" \quad u \sim U[0,1]^d,\ \alpha \sim U[0,1] \\"
            r"L_G &= \mathbb{E}_z[\operatorname{softplus}(-\ell(G(z)))]"
            r"\end{aligned}"
        ),
        derivation=(
            "Kodali et al. analyse simultaneous gradient descent on the GAN game as regret minimisation and "
            "argue that it can settle in bad local equilibria in which the discriminator has very sharp "
            "gradients around some real points, a signature of mode collapse. Their fix is to keep the "
            "non-saturating BCE game and penalise the discriminator's gradient norm in a small neighbourhood "
            "of the real data (not between real and fake samples, as WGAN-GP does): D must stay smooth "
            "where the data are, so it cannot build narrow spikes that trap the generator.\n\n"
            "The paper writes the perturbation as Gaussian noise `x + delta`; losslab follows the authors' "
            "reference code (uniform noise scaled by half the batch standard deviation, a random point on "
            "the segment). The generator's side is exactly ns, so its gradient does not saturate."
        ),
        used_by=(
            "Kodali et al. 2017: DCGAN architectures with fewer tricks, and as a fix for mode collapse",
            "Included in large GAN comparisons (Lucic et al. 2018, arXiv:1711.10337)",
        ),
        strengths=(
            "Keeps ns's strong generator gradient and adds smoothness of D around the data",
            "One critic step per generator step; works with the usual DCGAN settings",
        ),
        weaknesses=(
            "A second backward pass per critic update; a per-sample penalty forbids batch norm in D",
            "The perturbation scale `c` depends on the data's scale and is one more hyperparameter",
        ),
        failure_modes=(
            "`c` too small: no smoothing, back to ns's failure modes; too large: an over-smoothed D and weak signal",
            "`lambda` too large: D cannot separate real from fake and the generator drifts",
        ),
        source="Kodali et al. 2017, 'On Convergence and Stability of GANs', arXiv:1705.07215, Sec. 4 "
        "(and the authors' reference code for the perturbation)",
        compare_command="losslab compare --data ring8 --losses dragan,ns,wgan-gp --seeds 3 --out explain-dragan",
    ),
    "ebgan": Explanation(
        name="ebgan",
        family="gan",
        formula_text=(
            "D(x) = mean((x - Dec(Enc(x)))^2)          energy >= 0 of an autoencoder critic\n"
            "L_D = E_x[D(x)] + E_z[max(0, m - D(G(z)))]\n"
            "L_G = E_z[D(G(z))] + w f_PT(S)\n"
            "f_PT(S) = 1/(N(N-1)) sum_i sum_{j != i} (S_i . S_j / (||S_i|| ||S_j||))^2   (S: codes of the fake batch)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"D(x) &= \|x - \operatorname{Dec}(\operatorname{Enc}(x))\|^2 \\"
            r"L_D &= \mathbb{E}_x[D(x)] + \mathbb{E}_z[\max(0, m - D(G(z)))] \\"
            r"L_G &= \mathbb{E}_z[D(G(z))] + w\, f_\text{PT}(S), \quad"
            r" f_\text{PT}(S) = \frac{1}{N(N-1)} \sum_i \sum_{j \ne i}"
            r" \Big(\frac{S_i^\top S_j}{\|S_i\|\,\|S_j\|}\Big)^2"
            r"\end{aligned}"
        ),
        derivation=(
            "EBGAN views the discriminator as an energy function: low energy on the data, high energy "
            "elsewhere. An autoencoder's reconstruction error is a natural energy, and it can learn from "
            "real data alone. The margin hinge raises the energy of fakes up to `m` and no further, so D "
            "is never asked to make an energy infinite; the generator lowers the energy of its samples. "
            "At a Nash equilibrium of this game `p_G = p_data` almost everywhere (Zhao et al., Theorems 1-2).\n\n"
            "Why the pulling-away term exists: an autoencoder reconstructs some points very well, and a "
            "generator that maps every `z` to one such point has low energy, i.e. it collapses. `f_PT` is the "
            "mean squared cosine similarity between the encoder codes of different generated samples of the "
            "batch; adding it to the generator's loss rewards batches whose codes point in different "
            "directions (orthogonal codes give 0, identical ones give 1). Cosines make it invariant to the "
            "codes' scale, so G cannot satisfy it by shrinking or growing them. Weight `w = 0.1`."
        ),
        used_by=(
            "Zhao et al. 2017: MNIST, LSUN, CelebA and ImageNet at up to 256 x 256 with an autoencoder critic",
            "The autoencoder-critic idea that BEGAN builds on",
        ),
        strengths=(
            "The critic can be pre-trained on real data; energies are interpretable reconstruction errors",
            "The margin bounds the critic's objective; the pulling-away term directly counters mode collapse",
        ),
        weaknesses=(
            "The margin `m` depends on the data's scale and had to be grid-searched in the paper",
            "An autoencoder critic costs more than a classifier; the pulling-away term needs batches of at least 2",
        ),
        failure_modes=(
            "`m` too small: fakes sit above the margin, D stops learning from them and G drifts",
            "Collapse onto a few well-reconstructed samples when the pulling-away weight is 0",
        ),
        source="Zhao et al. 2017, 'Energy-based Generative Adversarial Network', arXiv:1609.03126, Eqs. 1-2, "
        "Eq. 6 (pulling-away term), Theorems 1-2",
        compare_command="losslab compare --data ring8 --losses ebgan,began,ns --seeds 3 --out explain-ebgan",
    ),
    "began": Explanation(
        name="began",
        family="gan",
        formula_text=(
            "L(v) = mean(|v - D(v)|^eta)   (eta = 1)   energy of an autoencoder critic\n"
            "L_D = L(x) - k_t L(G(z_D)),   L_G = L(G(z_G))\n"
            "k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1)\n"
            "M_global = L(x) + |gamma L(x) - L(G(z_G))|"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"\mathcal{L}(v) &= |v - D(v)|^\eta \\"
            r"L_D &= \mathcal{L}(x) - k_t\,\mathcal{L}(G(z_D)), \qquad L_G = \mathcal{L}(G(z_G)) \\"
            r"k_{t+1} &= \operatorname{clip}_{[0,1]}"
            r"\big(k_t + \lambda_k(\gamma\,\mathcal{L}(x) - \mathcal{L}(G(z_G)))\big) \\"
            r"\mathcal{M}_\text{global} &= \mathcal{L}(x) + |\gamma\,\mathcal{L}(x) - \mathcal{L}(G(z_G))|"
            r"\end{aligned}"
        ),
        derivation=(
            "BEGAN matches the distributions of autoencoder losses instead of the distributions of samples. "
            "With `mu1`, `mu2` the distributions of the reconstruction loss on real and fake data and `m1`, "
            "`m2` their means, Jensen's inequality gives `W1(mu1, mu2) >= |m1 - m2|`; D maximises this "
            "lower bound by reconstructing real data well and fakes badly, G minimises it.\n\n"
            "The zero-sum version is easy for D to win, so BEGAN asks for an equilibrium instead: "
            "`E L(G(z)) = gamma E L(x)`, with the diversity ratio `gamma` in (0, 1]. The variable `k_t` is "
            "a proportional controller with gain `lambda_k` that decides how hard D pushes fakes' losses up: "
            "it rises while fakes are reconstructed too well (`L(G) < gamma L(x)`) and falls otherwise. "
            "Lower `gamma` makes D focus on reconstructing real data: sharper, less diverse samples. "
            "`M_global` is zero only when real data are reconstructed perfectly and the equilibrium holds, "
            "and it is used as a convergence measure (logged as `m_global`)."
        ),
        used_by=(
            "Berthelot et al. 2017: 128 x 128 CelebA faces with a simple architecture, no batch norm or dropout",
        ),
        strengths=(
            "A convergence measure (`M_global`) that tracks image quality",
            "A single knob (`gamma`) for the quality-diversity trade-off; stable with simple architectures",
        ),
        weaknesses=(
            "Extra state (`k_t`) and hyperparameters (`gamma`, `lambda_k`); an autoencoder critic",
            "Samples tend to be smooth (L1 reconstruction energy); low `gamma` lowers diversity",
        ),
        failure_modes=(
            "`k` pinned at 0 or 1 for long: the controller cannot hold the equilibrium (watch the `k` column)",
            "Low-diversity, near-duplicate samples at low `gamma`",
        ),
        source="Berthelot et al. 2017, 'BEGAN: Boundary Equilibrium GANs', arXiv:1703.10717, Eq. 4, Sec. 3.4.1",
        compare_command="losslab compare --data ring8 --losses began,ebgan,ns --seeds 3 --out explain-began",
    ),
    # ------------------------------------------------------------------ diffusion
    "ddpm": Explanation(
        name="ddpm",
        family="diffusion",
        formula_text=(
            "L_simple = E_{t, x0, eps} ||eps - eps_theta(sqrt(a_t) x0 + sqrt(1 - a_t) eps, t)||^2\n"
            "t ~ U{1..T},  eps ~ N(0, I),  a_t = alpha_bar_t = prod_{s <= t} (1 - beta_s)"
        ),
        formula_latex=(
            r"L_\text{simple} = \mathbb{E}_{t, x_0, \epsilon}\Big[\big\|\epsilon - \epsilon_\theta\big("
            r"\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon,\ t\big)\big\|^2\Big],"
            r" \quad t \sim U\{1,\dots,T\},\ \epsilon \sim \mathcal{N}(0, I)"
        ),
        derivation=(
            "The forward process `q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)` has the closed-form "
            "marginal `q(x_t | x0) = N(sqrt(a_t) x0, (1 - a_t) I)` (Eq. 4). The variational bound on "
            "`-log p(x0)` splits into KL divergences between the Gaussian posteriors `q(x_{t-1} | x_t, x0)` "
            "and the model's reverse steps (Eq. 5); with fixed variances each KL is a squared error between "
            "means. Writing the model mean through a noise predictor, "
            "`mu_theta = (x_t - beta_t / sqrt(1 - a_t) eps_theta) / sqrt(1 - beta_t)`, turns each term into "
            "`beta_t^2 / (2 sigma_t^2 alpha_t (1 - a_t)) ||eps - eps_theta||^2` (Eq. 12). Dropping that "
            "weight gives `L_simple` (Eq. 14): a reweighted bound that down-weights the easy low-noise steps "
            "and gave the best samples.\n\n"
            "In terms of the clean sample: `x_t` fixes `x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)`, so an "
            "error in `eps` is an error in `x0` and `||eps - eps_hat||^2 = SNR(t) ||x0 - x0_hat||^2`. "
            "`L_simple` weights the `x0` error by `SNR(t)`, which is about 0 at the noisiest steps."
        ),
        used_by=(
            "DDPM (Ho et al. 2020); improved DDPM (Nichol & Dhariwal 2021, arXiv:2102.09672)",
            "Guided diffusion / ADM (Dhariwal & Nichol 2021, arXiv:2105.05233); latent diffusion and "
            "Stable Diffusion 1.x (Rombach et al. 2022, arXiv:2112.10752)",
        ),
        strengths=(
            "A plain regression onto a unit-variance target at every timestep: well scaled, no adversary, stable",
            "Likelihood-based training covers all modes; strong sample quality",
        ),
        weaknesses=(
            "Sampling needs many network evaluations (T = 1000 ancestral steps; fewer with DDIM)",
            "At high noise the implied `x0 = (x_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t)` divides by `sqrt(a_t) -> 0`: "
            "errors blow up, which hurts few-step sampling and distillation (Salimans & Ho 2022, Sec. 4)",
        ),
        failure_modes=(
            "A schedule whose last `a_T` is not close to 0: training never sees pure noise but sampling starts "
            "from it (Lin et al. 2024, arXiv:2305.08891)",
            "Too few sampling steps: noisy or smeared samples; undertrained models blur nearby modes",
        ),
        source="Ho et al. 2020, 'Denoising Diffusion Probabilistic Models', arXiv:2006.11239, Eq. 14 (Eqs. 4, 5, 12)",
        compare_command="losslab compare --family diffusion --data ring8 --losses ddpm,ddpm-x0,ddpm-v --seeds 3 "
        "--out explain-ddpm",
    ),
    "ddpm-x0": Explanation(
        name="ddpm-x0",
        family="diffusion",
        formula_text=(
            "L = E_{t, x0, eps} ||x0 - x0_theta(x_t, t)||^2,   x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps\n"
            "  = E ||eps - eps_hat||^2 / SNR(t),   SNR(t) = a_t / (1 - a_t)"
        ),
        formula_latex=(
            r"L = \mathbb{E}_{t, x_0, \epsilon}\big[\|x_0 - \hat x_\theta(x_t, t)\|^2\big]"
            r" = \mathbb{E}\Big[\frac{1}{\mathrm{SNR}(t)}\,\|\epsilon - \hat\epsilon\|^2\Big],"
            r" \quad \mathrm{SNR}(t) = \frac{\bar\alpha_t}{1 - \bar\alpha_t}"
        ),
        derivation=(
            "Same forward process and network as `ddpm`; the network predicts the clean sample. Because "
            "`x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps`, a prediction of `x0` determines one of `eps`, and the "
            "two errors are tied by `||x0 - x0_hat||^2 = ||eps - eps_hat||^2 / SNR(t)`. So predicting `x0` "
            "is predicting `eps` with the weight `1 / SNR(t)`: compared with `ddpm` it weights every "
            "timestep's `x0` error equally, which moves the emphasis to the noisy steps and away from the "
            "nearly clean ones where the fine detail is decided.\n\n"
            "Ho et al. (Sec. 3.2) report that predicting `x0` gave worse samples than predicting `eps` "
            "early in their experiments. Conversely, at high noise the `x0` target is well posed (the "
            "best guess is the data mean), while recovering `eps` from an `x0` prediction multiplies its "
            "error by `sqrt(SNR(t))` at low noise."
        ),
        used_by=(
            "The x0 parametrisation compared by Ho et al. 2020 (Sec. 3.2)",
            "The DALL-E 2 prior (Ramesh et al. 2022, arXiv:2204.06125) predicts the un-noised embedding directly",
        ),
        strengths=(
            "The target is the data itself (bounded, e.g. images in [-1, 1]); easy to clip and to interpret",
            "Well-behaved at high noise; suits low-dimensional embeddings and few-step regimes",
        ),
        weaknesses=(
            "Little weight on the nearly clean steps: fine detail is learned poorly, samples are smoother",
            "Usually worse sample quality than eps prediction at equal budget on images",
        ),
        failure_modes=(
            "Blurry or averaged samples: at high noise the regression target is the conditional mean",
            "Modes pulled towards each other on multimodal toys when undertrained",
        ),
        source="Ho et al. 2020, arXiv:2006.11239, Sec. 3.2; Salimans & Ho 2022, arXiv:2202.00512, Sec. 4 (weightings)",
        compare_command="losslab compare --family diffusion --data ring8 --losses ddpm-x0,ddpm,ddpm-v --seeds 3 "
        "--out explain-ddpm-x0",
    ),
    "ddpm-v": Explanation(
        name="ddpm-v",
        family="diffusion",
        formula_text=(
            "v_t = sqrt(a_t) eps - sqrt(1 - a_t) x0\n"
            "L = E_{t, x0, eps} ||v_t - v_theta(x_t, t)||^2 = E (1 + SNR(t)) ||x0 - x0_hat||^2"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"v_t &= \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1 - \bar\alpha_t}\,x_0 \\"
            r"L &= \mathbb{E}_{t, x_0, \epsilon}\big[\|v_t - \hat v_\theta(x_t, t)\|^2\big]"
            r" = \mathbb{E}\big[(1 + \mathrm{SNR}(t))\,\|x_0 - \hat x_0\|^2\big]"
            r"\end{aligned}"
        ),
        derivation=(
            "Write `alpha = sqrt(a_t)`, `sigma = sqrt(1 - a_t)` (so `alpha^2 + sigma^2 = 1`) and the angle "
            "`phi` with `alpha = cos(phi)`, `sigma = sin(phi)`. Then `x_t = cos(phi) x0 + sin(phi) eps` and "
            "the velocity `v = d x_t / d phi = cos(phi) eps - sin(phi) x0`. From `x_t` and a prediction "
            "`v_hat` both other targets follow without division: `x0_hat = alpha x_t - sigma v_hat`, "
            "`eps_hat = sigma x_t + alpha v_hat`.\n\n"
            "With `x_t` fixed, `||v - v_hat||^2 = ||eps - eps_hat||^2 / a_t = (1 + SNR(t)) ||x0 - x0_hat||^2`: "
            "the 'SNR + 1' weighting, which behaves like `ddpm` at low noise and like `ddpm-x0` at high "
            "noise, and never gives zero weight to the noisiest steps. Salimans & Ho introduced it for "
            "progressive distillation, where few-step samplers query the model at high noise and eps "
            "prediction's implied `x0` (a division by `alpha -> 0`) is useless."
        ),
        used_by=(
            "Progressive distillation (Salimans & Ho 2022)",
            "Imagen Video (Ho et al. 2022, arXiv:2210.02303) and the 768-v Stable Diffusion 2 models",
        ),
        strengths=(
            "A well-scaled target at every noise level; stable at both ends of the schedule",
            "Works with few-step samplers, distillation and zero-terminal-SNR schedules",
        ),
        weaknesses=(
            "Less intuitive target; conventions differ between code bases (sign, scaling)",
            "For many-step sampling often no better than eps prediction",
        ),
        failure_modes=(
            "Training and sampling code disagreeing on the definition of v (or on the schedule): garbage samples",
            "Data far from unit variance change the implied weighting between noise levels",
        ),
        source="Salimans & Ho 2022, 'Progressive Distillation for Fast Sampling of Diffusion Models', "
        "arXiv:2202.00512, Sec. 4",
        compare_command="losslab compare --family diffusion --data ring8 --losses ddpm-v,ddpm,ddpm-x0 --seeds 3 "
        "--out explain-ddpm-v",
    ),
    # ------------------------------------------------------------------ classification
    "bce": Explanation(
        name="bce",
        family="classification",
        formula_text=(
            "L = -mean_n [ y_n log p_n + (1 - y_n) log(1 - p_n) ],   p_n clamped to [eps, 1 - eps], eps = 1e-7\n"
            "dL/dp = (p - y) / (p (1 - p))   (per element, before the mean)"
        ),
        formula_latex=(
            r"L = -\frac{1}{N}\sum_n \big[y_n \log \hat p_n + (1 - y_n)\log(1 - \hat p_n)\big],"
            r" \quad \hat p_n = \operatorname{clip}(p_n, \epsilon, 1 - \epsilon)"
        ),
        derivation=(
            "For a Bernoulli target with `P(y = 1 | x) = p`, the log-likelihood of one label is "
            "`y log p + (1 - y) log(1 - p)`; minimising the mean negative log-likelihood is maximum "
            "likelihood, and for soft targets it is the cross-entropy `H(y, p) = KL(y || p) + H(y)`.\n\n"
            "Why the clamp: `log 0 = -inf`. In float32, `sigmoid(z)` rounds to exactly 1.0 for `z > 16.6` "
            "and falls below 1e-7 for `z < -16.1`, so a model that outputs probabilities hits the log's "
            "singularity long before its logits are extreme. Clamping `p` into `[eps, 1 - eps]` caps the loss "
            "at `-log(eps) = 16.1` nats, but where the clamp is active the gradient is exactly zero: the "
            "network gets no signal from its most confidently wrong predictions. The derivative "
            "`(p - y) / (p (1 - p))` times the sigmoid's slope `p (1 - p)` is `p - y` w.r.t. the logit; "
            "`bce-with-logits` does this cancellation on paper, `bce` on rounded numbers cannot."
        ),
        used_by=(
            "Models whose output already is a probability, e.g. a VAE's Bernoulli decoder on binarised MNIST",
            "Keras' default `binary_crossentropy(from_logits=False)`; early GAN code (`sigmoid` + `BCELoss`)",
        ),
        strengths=(
            "Works directly on probabilities and with soft labels; interpretable in nats per element",
            "Matches `torch.nn.functional.binary_cross_entropy` wherever `p` is inside the clamp",
        ),
        weaknesses=(
            "Loses precision and gradient once `sigmoid` saturates; the clamp changes the loss there",
            "Needs a separate sigmoid whose rounding the loss cannot undo",
        ),
        failure_modes=(
            "Gradients silently zero for confident wrong predictions (the flat part of the figure)",
            "inf/NaN if the clamp is removed; logits passed instead of probabilities "
            "(rejected here: values outside [0, 1])",
        ),
        source="Bishop 2006, 'Pattern Recognition and Machine Learning', Sec. 4.3.2, Eq. 4.90; clamp as in "
        "Keras (Chollet et al. 2015)",
        compare_command="python examples/plot_classification_stability.py",
    ),
    "bce-with-logits": Explanation(
        name="bce-with-logits",
        family="classification",
        formula_text=(
            "L = mean_n [ softplus(z_n) - y_n z_n ],   softplus(z) = max(z, 0) + log(1 + exp(-|z|))\n"
            "dL/dz_n = (sigmoid(z_n) - y_n) / N"
        ),
        formula_latex=(
            r"L = \frac{1}{N}\sum_n \big[\operatorname{softplus}(z_n) - y_n z_n\big], \quad"
            r" \operatorname{softplus}(z) = \max(z, 0) + \log(1 + e^{-|z|}), \quad"
            r" \frac{\partial L}{\partial z_n} = \frac{\sigma(z_n) - y_n}{N}"
        ),
        derivation=(
            "Take the logs before the sigmoid: `log sigmoid(z) = -softplus(-z)` and "
            "`log(1 - sigmoid(z)) = -softplus(z)`, so the binary cross-entropy is "
            "`y softplus(-z) + (1 - y) softplus(z) = softplus(z) - y z` (using `softplus(-z) = softplus(z) - z`). "
            "Written as `max(z, 0) + log1p(exp(-|z|))`, softplus only ever exponentiates a non-positive "
            "number, so it is finite for every `z`; `log1p` keeps the small term accurate.\n\n"
            "Its gradient `sigmoid(z) - y` is bounded by 1 and tends to -1 for a confidently wrong "
            "prediction (`y = 1`, `z -> -inf`): the strongest possible signal, where `bce` on probabilities "
            "gives zero. The same identity is why the ns GAN loss is written `softplus(-l)`."
        ),
        used_by=(
            "`torch.nn.BCEWithLogitsLoss`; multi-label classifiers (one independent sigmoid per label)",
            "The discriminator losses of minimax / ns / dragan in losslab; the basis of the focal loss",
        ),
        strengths=(
            "Finite loss and gradient at any logit; the gradient never vanishes on a wrong prediction",
            "Matches `torch.nn.functional.binary_cross_entropy_with_logits` exactly",
        ),
        weaknesses=(
            "Needs logits, not probabilities; does not address class imbalance (see `focal`)",
            "On separable data the loss only reaches 0 as `|z| -> inf`: logits grow without a regulariser",
        ),
        failure_modes=(
            "Applying a sigmoid before it (probabilities passed as logits): training runs but gradients are squashed",
            "Over-confident, badly calibrated probabilities after long training on separable data",
        ),
        source="Bishop 2006, 'Pattern Recognition and Machine Learning', Sec. 4.3.2, Eqs. 4.90-4.91",
        compare_command="python examples/plot_classification_stability.py",
    ),
    "cce": Explanation(
        name="cce",
        family="classification",
        formula_text=(
            "L = -mean_n sum_k q'_nk log softmax(z_n)_k,   q' = (1 - e) q + e / K   (label smoothing e)\n"
            "log softmax(z)_k = z_k - m - log sum_j exp(z_j - m),  m = max_j z_j\n"
            "dL/dz_n = (softmax(z_n) - q'_n) / N"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L &= -\frac{1}{N}\sum_n \sum_k q'_{nk} \log\operatorname{softmax}(z_n)_k,"
            r" \qquad q' = (1 - \varepsilon)\, q + \varepsilon / K \\"
            r"\log\operatorname{softmax}(z)_k &= z_k - m - \log\sum_j e^{z_j - m}, \qquad m = \max_j z_j"
            r"\end{aligned}"
        ),
        derivation=(
            "Softmax turns `K` logits into a categorical distribution; the cross-entropy against a one-hot "
            "target is the negative log-likelihood of the true class, and against a soft target `q` it is "
            "`H(q, p)`. Its gradient w.r.t. the logits is `softmax(z) - q`: bounded, and largest for the "
            "worst predictions. Subtracting the row maximum before exponentiating (softmax is "
            "shift-invariant) keeps every exponent at most `exp(0) = 1` and the log's argument at least 1.\n\n"
            "Label smoothing (Szegedy et al., Sec. 7): with one-hot targets the loss is minimised only as the "
            "logit gap goes to infinity, so the model grows over-confident and the gradient shrinks as its "
            "logits grow. Mixing the target with the uniform distribution, `q' = (1 - e) q + e/K`, gives "
            "`H(q', p) = (1 - e) H(q, p) + e H(u, p)`; the optimum is `softmax(z) = q'`, a finite logit gap "
            "`log((1 - e + e/K) / (e/K))` (4.51 nats for `e = 0.1`, `K = 10`), marked in the figure."
        ),
        used_by=(
            "Image classification: Inception-v3 on ImageNet with `e = 0.1` (Szegedy et al. 2016)",
            "The Transformer (Vaswani et al. 2017, arXiv:1706.03762) trains with label smoothing 0.1",
            "Knowledge distillation trains on a teacher's soft targets (Hinton et al. 2015, arXiv:1503.02531)",
        ),
        strengths=(
            "A proper scoring rule; gradients bounded and non-vanishing on wrong predictions",
            "Soft targets (smoothing, mixup, distillation) fit naturally",
        ),
        weaknesses=(
            "Over-confidence without smoothing; one-hot targets cost `N x K` memory (see `sparse-cce`)",
            "Label smoothing erases information that distillation needs (Muller et al. 2019, arXiv:1906.02629)",
        ),
        failure_modes=(
            "Logits growing without bound on separable training data; memorised label noise",
            "NaN from a naive `log(softmax(z))` when a probability underflows to 0",
        ),
        source="Bishop 2006, 'Pattern Recognition and Machine Learning', Sec. 4.3.4, Eq. 4.108; Szegedy et al. 2016, "
        "'Rethinking the Inception Architecture', arXiv:1512.00567, Sec. 7",
        compare_command="python examples/plot_classification_stability.py",
    ),
    "sparse-cce": Explanation(
        name="sparse-cce",
        family="classification",
        formula_text=(
            "L = mean_n [ (1 - e) (-log p_{n, y_n}) + e mean_k (-log p_nk) ],   p_n = softmax(z_n)\n"
            "  = cce(z, one_hot(y)) with the same label smoothing e"
        ),
        formula_latex=(
            r"L = \frac{1}{N}\sum_n \Big[(1 - \varepsilon)\big(-\log p_{n, y_n}\big)"
            r" + \varepsilon\, \frac{1}{K}\sum_k \big(-\log p_{nk}\big)\Big],"
            r" \quad p_n = \operatorname{softmax}(z_n)"
        ),
        derivation=(
            "The same loss as `cce` when the target is one-hot: the sum over classes picks out one term, "
            "`-log p_y`, so there is no need to build the `N x K` one-hot matrix; the target is the `(N,)` "
            "vector of class indices. With label smoothing `e`, `-sum_k q'_k log p_k` with "
            "`q' = (1 - e) onehot(y) + e/K` is `(1 - e)(-log p_y) + e mean_k(-log p_k)`, the form computed "
            "here. Values and gradients equal `cce` on `one_hot(y)` (tested), and "
            "`torch.nn.functional.cross_entropy` with class indices."
        ),
        used_by=(
            "Language models: next-token prediction over vocabularies of tens of thousands of tokens",
            "`torch.nn.functional.cross_entropy` with class indices; Keras' `sparse_categorical_crossentropy`",
        ),
        strengths=(
            "O(N) targets instead of O(N K); identical values and gradients to cce on one-hot targets",
            "Label smoothing without materialising smoothed targets",
        ),
        weaknesses=(
            "Hard labels only (no soft targets other than uniform smoothing)",
            "The same over-confidence and class-imbalance issues as cce",
        ),
        failure_modes=(
            "Labels outside `[0, K)` or off by one (rejected here with an error)",
            "A dominant class swamps the rest on imbalanced data (consider class weights or `focal`)",
        ),
        source="Bishop 2006, 'Pattern Recognition and Machine Learning', Eq. 4.108; Szegedy et al. 2016, "
        "arXiv:1512.00567, Sec. 7",
        compare_command="python examples/plot_classification_stability.py",
    ),
    "focal": Explanation(
        name="focal",
        family="classification",
        formula_text=(
            "FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)\n"
            "p_t = p if y = 1 else 1 - p;  alpha_t = alpha if y = 1 else 1 - alpha;  gamma = 2, alpha = 0.25\n"
            "computed as alpha_t exp(gamma log_sigmoid(-s z)) softplus(-s z),  s = 2y - 1"
        ),
        formula_latex=(
            r"\mathrm{FL}(p_t) = -\alpha_t (1 - p_t)^\gamma \log p_t, \quad"
            r" p_t = \begin{cases} p & y = 1 \\ 1 - p & y = 0 \end{cases}, \quad"
            r" \alpha_t = \begin{cases} \alpha & y = 1 \\ 1 - \alpha & y = 0 \end{cases}"
        ),
        derivation=(
            "In dense object detection a one-stage detector scores about 100k candidate boxes per image, "
            "almost all easy background. Each easy negative has a small cross-entropy, but together they "
            "dominate the loss and its gradient. The modulating factor `(1 - p_t)^gamma` switches them off: "
            "with `gamma = 2`, an example classified with `p_t = 0.9` has 100x lower loss than with "
            "cross-entropy, and with `p_t ~ 0.968` 1000x lower (Sec. 3.2); `gamma = 0` is cross-entropy. "
            "`alpha` balances positives and negatives; with `gamma = 2` the best `alpha` was 0.25, i.e. "
            "positives are down-weighted because the modulation already removed the easy negatives.\n\n"
            "Stability: computing `(1 - p_t)^gamma` from a rounded probability gives an infinite derivative at "
            "`p_t = 1` when `gamma < 1`; here every factor comes from the logit "
            "(`log p_t = log_sigmoid(s z)`, `(1 - p_t)^gamma = exp(gamma log_sigmoid(-s z))`), finite for any "
            "`z`. The derivative w.r.t. the logit, `s (1 - p_t)^gamma (gamma p_t log p_t + p_t - 1)` for "
            "`alpha_t = 1` (the paper's appendix), is checked against autograd in the tests."
        ),
        used_by=(
            "RetinaNet (Lin et al. 2017), the one-stage detector it was designed for",
            "Later one-stage detectors such as FCOS (Tian et al. 2019, arXiv:1904.01355); imbalanced segmentation",
        ),
        strengths=(
            "Handles extreme class imbalance without hard-negative mining or sampling",
            "One main knob (`gamma`) with a robust default; reduces to cross-entropy at `gamma = 0`",
        ),
        weaknesses=(
            "`gamma` and `alpha` interact and need tuning together",
            "Not a strictly proper scoring rule for `gamma > 0` (Charoenphakdee et al. 2021): outputs need "
            "recalibration when probabilities matter",
        ),
        failure_modes=(
            "Unstable start without the paper's prior initialisation of the last bias (`p = 0.01` for the rare class)",
            "Very large `gamma`: almost every example is 'easy', learning slows down",
        ),
        source="Lin et al. 2017, 'Focal Loss for Dense Object Detection', arXiv:1708.02002, Eq. 5, Sec. 3.2-3.3",
        compare_command="python examples/plot_classification_stability.py",
    ),
    # ------------------------------------------------------------------ contrastive
    "pairwise-bce": Explanation(
        name="pairwise-bce",
        family="contrastive",
        formula_text=(
            "L = mean_i BCEWithLogits(s_i / tau, y_i) = mean_i [ softplus(s_i / tau) - y_i s_i / tau ]\n"
            "s_i = cos(a_i, b_i) in [-1, 1];  y_i = 1 (same image / class) or 0 (different);  tau = 1 (the study's form)\n"
            "dL/ds_i = (sigmoid(s_i / tau) - y_i) / tau   (per pair, before the mean)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L &= \frac{1}{N}\sum_i \Big[\operatorname{softplus}\big(s_i/\tau\big) - y_i\, s_i/\tau\Big],"
            r" \qquad s_i = \cos(a_i, b_i) \in [-1, 1], \quad y_i \in \{0, 1\} \\"
            r"\frac{\partial L}{\partial s_i} &= \frac{\sigma(s_i/\tau) - y_i}{N\tau}, \qquad \tau = 1"
            r"\end{aligned}"
        ),
        derivation=(
            "The siamese recipe: one shared encoder embeds both members of a pair, a similarity compares them, and "
            "a binary classifier answers 'same or different?' with the binary cross-entropy (Bromley et al. 1993; "
            "Koch et al. 2015, Eq. 1, a sigmoid of a learned similarity). In the study's form the logit is the raw "
            "cosine similarity, `tau = 1`. That confines the logit to `[-1, 1]` and the predicted probability to "
            "`[sigmoid(-1), sigmoid(1)] = [0.27, 0.73]`: a perfect positive (`s = 1`) still costs "
            "`softplus(-1) = 0.313` nats, the gradient `sigmoid(s) - y` never falls below 0.27 in magnitude, and "
            "every negative pair is pushed towards `s = -1`, which is impossible for more than two points: "
            "`||sum_i u_i||^2 >= 0` gives a mean pairwise cosine of at least `-1/(M - 1)` for `M` unit vectors. "
            "Each positive is compared with one negative only, where the softmax losses (`nt-xent`, `info-nce`) "
            "compare it with the whole batch.\n\n"
            "Why the study got chance accuracy on random tensors: its pairs were random tensors with random "
            "same/different targets, so nothing in a pair predicted its target. The best any encoder can do is "
            "`p = 0.5` for every pair (`s = 0`), `BCE = ln 2 = 0.693` nats, and 50% accuracy: chance. The loss was "
            "not at fault; the positives were. A contrastive loss learns exactly what the two members of a "
            "positive pair share: two augmented views of one image (the encoder learns what survives a crop, a "
            "rotation and noise) or two images with one label. losslab builds the positives by augmentation: "
            "`N` pairs of two views of one image and `N` pairs of views of two different images. On "
            "`--data random` the views still define positives, but the labels are drawn independently of the "
            "pixels, so the linear probe stays at chance whatever the loss (the report says so with the run's "
            "numbers)."
        ),
        used_by=(
            "Siamese verification: signatures (Bromley et al. 1993), one-shot character recognition (Koch et al. 2015)",
            "The study's pairwise contrastive model (raw cosine as the logit, `tau = 1`)",
            "SigLIP (Zhai et al. 2023, arXiv:2303.15343): a sigmoid loss on every image-text pair of the batch, "
            "with a learned temperature and bias instead of `tau = 1`",
        ),
        strengths=(
            "Simplest possible objective: one independent binary decision per pair, any batch size",
            "Outputs a probability of 'same', usable for verification with a threshold",
        ),
        weaknesses=(
            "With `tau = 1` the logit is bounded: the loss cannot fall below 0.313 nats and never stops pushing",
            "One negative per positive: far less signal per update than a softmax over the batch",
            "Asks for cosine -1 between every negative pair, which the sphere cannot give",
        ),
        failure_modes=(
            "Chance accuracy when positives share nothing the task needs (random tensors with random targets: "
            "the loss sits at `ln 2 = 0.693` and the probe at chance)",
            "False negatives: views of two different images of one class are labelled 'different' and pushed apart",
            "Easy negatives dominate: random pairs of different images are quickly separated and stop teaching",
        ),
        source="Koch et al. 2015, 'Siamese Neural Networks for One-shot Image Recognition', ICML workshop, Eq. 1; "
        "Bromley et al. 1993, 'Signature Verification using a Siamese Time Delay Neural Network', NeurIPS",
        compare_command="losslab compare --family contrastive --data digits --losses pairwise-bce,nt-xent --seeds 3 "
        "--out explain-pairwise-bce",
    ),
    "contrastive": Explanation(
        name="contrastive",
        family="contrastive",
        formula_text=(
            "L = mean_i [ y_i D_i^2 / 2 + (1 - y_i) max(0, m - D_i)^2 / 2 ],   y_i = 1 same, 0 different\n"
            "D_i = || a_i/|a_i| - b_i/|b_i| ||  in [0, 2]  (D^2 = 2 - 2 cos);  m = 1, i.e. negatives pushed to cos <= 0.5\n"
            "dL/dD = D (positive pair),  -(m - D) for D < m and 0 beyond (negative pair)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L &= \frac{1}{N}\sum_i \Big[y_i\,\tfrac{1}{2}D_i^2 + (1 - y_i)\,\tfrac{1}{2}\max(0, m - D_i)^2\Big] \\"
            r"D_i &= \Big\lVert \tfrac{a_i}{\lVert a_i\rVert} - \tfrac{b_i}{\lVert b_i\rVert} \Big\rVert \in [0, 2],"
            r" \qquad m = 1"
            r"\end{aligned}"
        ),
        derivation=(
            "Hadsell, Chopra & LeCun (DrLIM) learn a mapping in which similar inputs are close and dissimilar ones "
            "far apart, with a physical picture: similar pairs are joined by attract-only springs (`D^2 / 2`, "
            "force `D`), dissimilar pairs by repel-only springs of rest length `m` (`max(0, m - D)^2 / 2`, force "
            "`m - D`, zero once `D >= m`). The first term alone is minimised by mapping every input to one point "
            "(collapse); the second prevents that, and its margin means negatives that are already far apart cost "
            "nothing and do not dominate the loss (Eq. 4; the paper's `Y = 0` marks similar pairs, losslab's "
            "`same = 1 - Y`).\n\n"
            "On the unit sphere `D^2 = 2 - 2 cos`, so the margin has a fixed meaning: `m = 1` stops pushing at "
            "`cos = 0.5`, `m = sqrt(2)` at orthogonal vectors, and `m >= 2` can never be met. Positives are "
            "pulled all the way to `D = 0`: the encoder is asked to be exactly invariant to the augmentation."
        ),
        used_by=(
            "DrLIM dimensionality reduction (Hadsell et al. 2006); siamese face verification (Chopra, Hadsell & "
            "LeCun 2005, CVPR)",
            "Deep metric learning baselines (e.g. `ContrastiveLoss` of pytorch-metric-learning)",
        ),
        strengths=(
            "Simple and bounded; negatives beyond the margin cost nothing and give no gradient",
            "Geometric: the margin is a distance on the sphere, the same for every encoder",
        ),
        weaknesses=(
            "An absolute margin, the same for every class and every pair; `m` needs tuning",
            "One negative per pair; positives pulled to a point discards everything the augmentation changes",
        ),
        failure_modes=(
            "Random negatives are soon beyond the margin: the loss and gradient of most pairs are zero and learning slows",
            "Collapse towards one point when negatives are rare or the margin is small",
            "`m >= 2` (on the unit sphere) pushes negatives forever, against the positives",
        ),
        source="Hadsell, Chopra & LeCun 2006, 'Dimensionality Reduction by Learning an Invariant Mapping', CVPR, Eq. 4",
        compare_command="losslab compare --family contrastive --data digits --losses contrastive,triplet,nt-xent "
        "--seeds 3 --out explain-contrastive",
    ),
    "triplet": Explanation(
        name="triplet",
        family="contrastive",
        formula_text=(
            "L = mean_i max(0, ||a_i - p_i||^2 - ||a_i - n_i||^2 + alpha),   unit vectors, alpha = 0.2\n"
            "batch-hard: L = mean_i max(0, max_{p: y_p = y_i, p != i} D_ip - min_{n: y_n != y_i} D_in + alpha)\n"
            "D = squared distance 2 - 2 cos in [0, 4]"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L &= \frac{1}{N}\sum_i \max\big(0,\ \lVert a_i - p_i\rVert^2 - \lVert a_i - n_i\rVert^2 + \alpha\big),"
            r" \qquad \alpha = 0.2 \\"
            r"L_\text{BH} &= \frac{1}{N}\sum_i \max\Big(0,\ \max_{p:\, y_p = y_i,\, p \ne i} D_{ip}"
            r" - \min_{n:\, y_n \ne y_i} D_{in} + \alpha\Big)"
            r"\end{aligned}"
        ),
        derivation=(
            "FaceNet asks for a ranking, not absolute distances: the anchor must be closer to any positive (same "
            "identity) than to any negative by a margin, `||a - p||^2 + alpha < ||a - n||^2` (Schroff et al., "
            "Eq. 1), and the hinge turns each violated triplet into a loss (Eq. 2). Because the constraint is "
            "relative, each identity may keep its own spread, unlike the `contrastive` loss which pulls positives "
            "to a point. The embedding lives on the unit sphere, so `alpha = 0.2` is a squared distance in `[0, 4]`.\n\n"
            "Most triplets satisfy the constraint soon after the start, give zero loss and zero gradient, so "
            "everything rests on choosing the negatives. FaceNet mines semi-hard negatives inside large batches "
            "and warns that the hardest negatives early in training can collapse the model to `f(x) = 0` "
            "(Sec. 3.2): then every distance is 0 and the loss is stuck at `alpha`. Hermans et al. (Eq. 5) make "
            "the batch the unit of mining: for each anchor the farthest positive and the nearest negative in the "
            "batch ('batch hard'), which they find works well with P classes x K images per batch. losslab uses "
            "random negatives by default (anchor = view 1, positive = view 2 of one image, negative = view 2 of "
            "another) and batch-hard with `mining='batch-hard'`, on squared distances in both cases."
        ),
        used_by=(
            "FaceNet face recognition and clustering (Schroff et al. 2015)",
            "Person re-identification with batch-hard mining (Hermans et al. 2017)",
            "Image retrieval and deep metric learning in general",
        ),
        strengths=(
            "A relative constraint: only the ranking of distances matters, classes keep their own spread",
            "Satisfied triplets cost nothing; batch-hard mining finds informative triplets for free in the batch",
        ),
        weaknesses=(
            "`O(N^3)` possible triplets, most of them easy: needs mining, and mining needs tuning",
            "One negative per anchor per term; the margin `alpha` is one more hyperparameter",
        ),
        failure_modes=(
            "Collapse to one point (loss stuck at `alpha = 0.2`) with the hardest negatives from the start",
            "Random triplets become easy: the loss reaches 0 and learning stops long before the representation is good",
            "Batch-hard on noisy labels trains on the outliers and the mislabelled samples",
        ),
        source="Schroff, Kalenichenko & Philbin 2015, 'FaceNet', arXiv:1503.03832, Eqs. 1-2, Sec. 3.2; "
        "Hermans, Beyer & Leibe 2017, 'In Defense of the Triplet Loss for Person Re-Identification', "
        "arXiv:1703.07737, Eq. 5",
        compare_command="losslab compare --family contrastive --data digits --losses triplet,nt-xent --seeds 3 "
        "--out explain-triplet",
    ),
    "nt-xent": Explanation(
        name="nt-xent",
        family="contrastive",
        formula_text=(
            "l(i, j) = -log( exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau) ),   s = cosine similarity, tau = 0.5\n"
            "L = 1/(2N) sum_k [ l(2k-1, 2k) + l(2k, 2k-1) ]   (2N views, each the anchor once)\n"
            "per anchor: 1 positive (the other view of its image), 2N - 2 negatives (every other view)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"\ell(i, j) &= -\log \frac{\exp(s_{ij}/\tau)}{\sum_{k \ne i} \exp(s_{ik}/\tau)},"
            r" \qquad s_{ij} = \frac{z_i^\top z_j}{\lVert z_i\rVert \lVert z_j\rVert}, \quad \tau = 0.5 \\"
            r"L &= \frac{1}{2N}\sum_{k=1}^{N} \big[\ell(2k-1, 2k) + \ell(2k, 2k-1)\big]"
            r"\end{aligned}"
        ),
        derivation=(
            "SimCLR augments each of `N` images twice and embeds the `2N` views with an encoder and a projection "
            "head. Each view then solves a `(2N - 1)`-way classification: which of the other views is my twin? "
            "The other view of the same image is the positive, the remaining `2N - 2` views are the negatives, "
            "and no memory bank is needed (Chen et al., Eq. 1, Algorithm 1). It is InfoNCE (`info-nce`) made "
            "symmetric and with both views as negatives, so `log(2N - 1) - L` bounds the mutual information of "
            "the two views.\n\n"
            "The gradient w.r.t. the positive similarity is `-(1 - p_pos) / tau` and w.r.t. a negative "
            "`p_k / tau`, with `p` the softmax over the `2N - 1` candidates (SimCLR's Table 2): negatives are "
            "weighted by how similar they are, so hard negatives get most of the push, and the temperature sets "
            "how sharply. A small `tau` concentrates on the few hardest negatives (and on same-class 'negatives'); "
            "a large `tau` spreads the push evenly and weakens it. In the figure, with the negatives at `s = 0`, "
            "`L = log(1 + (2N - 2) exp(-s / tau))`: at `tau = 1` the loss cannot fall below `log(1 + 126 / e) = "
            "3.86` nats for `N = 64`. Chen et al. found L2 normalisation with a tuned temperature essential "
            "(Table 5), larger batches (more negatives) better (Sec. 5.2, batches up to 8,192), and the "
            "representation before the projection head better than after it (Sec. 4.2). losslab uses `tau = 0.5`, "
            "their CIFAR-10 setting (Appendix B.9)."
        ),
        used_by=(
            "SimCLR and SimCLRv2 (Chen et al. 2020, arXiv:2002.05709 and arXiv:2006.10029)",
            "SimCSE sentence embeddings (Gao et al. 2021, arXiv:2104.08821), with dropout as the augmentation",
        ),
        strengths=(
            "Every other view in the batch is a negative: `2N - 2` negatives per anchor for free, no memory bank",
            "Hard negatives are weighted automatically by the softmax (no explicit mining)",
        ),
        weaknesses=(
            "Needs large batches; with small ones the bound `log(2N - 1)` is loose and the negatives few",
            "Temperature-sensitive; relies on strong augmentations (crop plus colour in SimCLR)",
        ),
        failure_modes=(
            "Collapse or no signal: all similarities equal gives exactly `L = log(2N - 1)` (4.84 nats for "
            "`N = 64`); a loss curve flat at that value means nothing is learned",
            "Too small `tau` with few classes: same-class images are the hardest 'negatives' and get pushed apart",
            "Dimensional collapse: embeddings span a low-dimensional subspace (Jing et al. 2022, arXiv:2110.09348)",
        ),
        source="Chen, Kornblith, Norouzi & Hinton 2020, 'A Simple Framework for Contrastive Learning of Visual "
        "Representations' (SimCLR), arXiv:2002.05709, Eq. 1, Algorithm 1, Table 2, Appendix B.9",
        compare_command="losslab compare --family contrastive --data digits --losses nt-xent,info-nce,supcon "
        "--seeds 3 --out explain-nt-xent",
    ),
    "info-nce": Explanation(
        name="info-nce",
        family="contrastive",
        formula_text=(
            "L = -mean_i log( exp(s_ii / tau) / sum_{j=1..N} exp(s_ij / tau) ),   s_ij = cos(q_i, k_j), tau = 0.07\n"
            "  = cross_entropy(logits = S / tau, target = i)   (one direction: N - 1 in-batch negatives per query)\n"
            "I(q; k) >= log N - L"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L &= -\frac{1}{N}\sum_i \log \frac{\exp(s_{ii}/\tau)}{\sum_{j=1}^{N} \exp(s_{ij}/\tau)},"
            r" \qquad s_{ij} = \cos(q_i, k_j), \quad \tau = 0.07 \\"
            r"I(q; k) &\ge \log N - L"
            r"\end{aligned}"
        ),
        derivation=(
            "Contrastive Predictive Coding scores a candidate `x` against a context `c` with `f(x, c)`. Among `N` "
            "candidates, one drawn from `p(x | c)` (the positive) and `N - 1` from `p(x)` (the negatives), the "
            "loss is the cross-entropy of picking the positive (van den Oord et al., Eq. 4): an `N`-way "
            "classification. The probability that candidate `i` is the positive is "
            "`[p(x_i | c) / p(x_i)] / sum_j [p(x_j | c) / p(x_j)]`, so the optimal score is the density ratio "
            "`f(x, c)` proportional to `p(x | c) / p(x)` (Eq. 5), and substituting it gives `I(x; c) >= log N - L` (Sec. 2.3, "
            "Appendix A.1). The bound can never exceed `log N` (Poole et al. 2019, arXiv:1905.06922): as an "
            "estimator it needs many negatives, as an objective it simply improves with them.\n\n"
            "losslab uses the form of MoCo (He et al. 2020): queries from view 1, keys from view 2, cosine "
            "similarity over a temperature `tau = 0.07`, and the other keys of the batch as negatives (MoCo keeps "
            "a queue of 65,536 keys from a momentum encoder instead). Unlike `nt-xent` it is one-directional, "
            "and only keys are negatives (`N - 1` per query). Wang & Isola (2020) split the loss into an alignment "
            "term `-E[s_pos] / tau` that pulls positives together and a uniformity term "
            "`E[log sum_j exp(s_ij / tau)]` that spreads the embeddings over the sphere; the figure shows how "
            "`tau` scales both."
        ),
        used_by=(
            "CPC on audio, images, text and reinforcement learning (van den Oord et al. 2018)",
            "MoCo v1-v3 (He et al. 2020, arXiv:1911.05722) with a momentum encoder and a queue of negatives",
            "The per-direction term of CLIP (`clip`) and the basis of `nt-xent` and `supcon`",
        ),
        strengths=(
            "A principled objective: a lower bound on mutual information, tight as `N` grows",
            "Plain cross-entropy over an `N x N` similarity matrix: cheap, stable, easy to implement",
        ),
        weaknesses=(
            "The bound saturates at `log N`: small batches give a loose bound and few negatives",
            "`tau = 0.07` makes the logits span `[-14.3, 14.3]`: sharp, temperature-sensitive gradients",
        ),
        failure_modes=(
            "Collapse or no signal: all similarities equal gives exactly `L = log N` (4.16 nats for `N = 64`)",
            "Small batches with few classes: many in-batch 'negatives' share the query's class (false negatives)",
            "Temperature sensitivity: too small a `tau` over-weights the hardest negatives (Wang & Liu 2021, "
            "arXiv:2012.09740); too large a `tau` stops separating them",
        ),
        source="van den Oord, Li & Vinyals 2018, 'Representation Learning with Contrastive Predictive Coding', "
        "arXiv:1807.03748, Eqs. 4-5, Sec. 2.3; He et al. 2020, MoCo, arXiv:1911.05722, Eq. 1; Wang & Isola 2020, "
        "arXiv:2005.10242",
        compare_command="losslab compare --family contrastive --data digits --losses info-nce,nt-xent --seeds 3 "
        "--out explain-info-nce",
    ),
    "supcon": Explanation(
        name="supcon",
        family="contrastive",
        formula_text=(
            "L = mean_i [ -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / tau) / sum_{a != i} exp(s_ia / tau) ) ]\n"
            "P(i) = the other views with the label of view i;  tau = 0.1;  anchors without a positive are left out\n"
            "one positive per anchor (labels = image ids) gives nt-xent"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L &= \frac{1}{|I|}\sum_{i \in I} \frac{-1}{|P(i)|}\sum_{p \in P(i)}"
            r" \log \frac{\exp(s_{ip}/\tau)}{\sum_{a \ne i} \exp(s_{ia}/\tau)} \\"
            r"P(i) &= \{p \ne i : y_p = y_i\}, \qquad \tau = 0.1"
            r"\end{aligned}"
        ),
        derivation=(
            "Khosla et al. generalise NT-Xent to labelled data: every other view in the batch with the anchor's "
            "class label is a positive, not only the other view of the same image. Averaging over the positives "
            "can be done outside the log (`L^sup_out`, Eq. 2, used here) or inside it (`L^sup_in`, Eq. 3); by "
            "Jensen's inequality `L^sup_in <= L^sup_out`, and the paper finds `L^sup_out` clearly better. With one "
            "positive per anchor it is exactly `nt-xent`.\n\n"
            "The softmax still weighs hard negatives most, and every anchor's positives are pulled together "
            "jointly, so all views of a class gather into one cluster: the representation is trained for the "
            "label, and a linear classifier is trained on it afterwards. The paper reports higher ImageNet "
            "accuracy than cross-entropy and more robustness to hyperparameters. losslab's mean over anchors "
            "(the paper sums) keeps the scale independent of the batch size; `tau = 0.1` is losslab's choice for "
            "its small batches."
        ),
        used_by=(
            "Supervised pre-training of image encoders (Khosla et al. 2020), followed by a linear classifier",
            "Fine-tuning and domain adaptation where labels exist but a good embedding is wanted (retrieval, few-shot)",
        ),
        strengths=(
            "Uses labels and augmentations together: many positives per anchor, fewer false negatives",
            "Reported to beat cross-entropy and to be less sensitive to hyperparameters and corruptions",
        ),
        weaknesses=(
            "Needs labels, so it is not self-supervised; still needs large batches and a temperature",
            "Pulls every class to one cluster: within-class structure is discarded",
        ),
        failure_modes=(
            "Rows without a same-class partner in the batch contribute nothing (an error if no row has one)",
            "Label noise: mislabelled images are pulled into the wrong cluster with full weight",
            "Temperature too small or too large, as for `nt-xent`",
        ),
        source="Khosla et al. 2020, 'Supervised Contrastive Learning', arXiv:2004.11362, Eq. 2 (L^sup_out), Eq. 3",
        compare_command="losslab compare --family contrastive --data digits --losses supcon,nt-xent --seeds 3 "
        "--out explain-supcon",
    ),
    "clip": Explanation(
        name="clip",
        family="contrastive",
        formula_text=(
            "logits_ij = s cos(I_i, T_j),   s = exp(t) learned, initialised to 1/0.07 = 14.3, clipped at 100\n"
            "L = ( CE(logits, target = i) + CE(logits^T, target = i) ) / 2   (image -> text and text -> image)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"\ell_{ij} &= s \cos(I_i, T_j), \qquad s = e^{t} \in (0, 100], \quad s_0 = 1/0.07 \\"
            r"L &= \frac{1}{2N}\sum_i \Big[-\log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}}}"
            r" - \log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ji}}}\Big]"
            r"\end{aligned}"
        ),
        derivation=(
            "CLIP trains an image encoder and a text encoder on image-caption pairs. Instead of predicting the "
            "caption's words, each encoder only has to tell which of the `N` captions in the batch belongs to its "
            "image and vice versa: InfoNCE in both directions over the `N x N` cosine-similarity matrix, averaged "
            "(Radford et al., Figure 3 pseudocode). The paper reports this contrastive objective several times "
            "more efficient for zero-shot transfer than predicting a bag of words.\n\n"
            "The temperature is learned: the logits are multiplied by `s = exp(t)`, where the log-parametrisation "
            "keeps `s` positive, initialised to the equivalent of `tau = 0.07` (`s = 14.3`) and clipped so that the "
            "logits are never scaled by more than 100 (`tau >= 0.01`), for training stability (Sec. 2.5). "
            "Zero-shot classification embeds a prompt per class ('a photo of a {label}') and picks the closest. "
            "losslab's captions are the class names under prompt templates, so several images of a batch share "
            "their class's caption: those columns are indistinguishable to an image, and with `c` copies of its "
            "caption in the batch the image's loss cannot fall below `log c`."
        ),
        used_by=(
            "CLIP (Radford et al. 2021): 400M image-text pairs, batches of 32,768, zero-shot classification",
            "ALIGN (Jia et al. 2021, arXiv:2102.05918) and the open reproduction OpenCLIP",
            "Text-image models that use CLIP's encoders (retrieval, guidance, captioning)",
        ),
        strengths=(
            "Learns from natural-language supervision; zero-shot classification through prompts",
            "Symmetric and simple; the temperature needs no tuning (it is learned)",
        ),
        weaknesses=(
            "Needs paired data, two encoders and very large batches",
            "Duplicate captions in a batch (few classes, short prompts) are treated as negatives",
        ),
        failure_modes=(
            "The learned scale runs to the clip at 100 and the logits become very sharp",
            "False negatives: same-class images or repeated captions in a batch put a floor `log c` under the loss",
            "Collapse or no signal: all logits equal gives exactly `L = log N`",
        ),
        source="Radford et al. 2021, 'Learning Transferable Visual Models From Natural Language Supervision' "
        "(CLIP), arXiv:2103.00020, Figure 3, Sec. 2.5",
        compare_command="losslab compare --family contrastive --data digits --losses clip,supcon,nt-xent --seeds 3 "
        "--out explain-clip",
    ),
}


def _families() -> list[str]:
    """Families that have explanations, in page order."""
    return [f for f in FAMILY_PAGES if any(e.family == f for e in EXPLANATIONS.values())]


def _get(name: str) -> Explanation:
    try:
        return EXPLANATIONS[name]
    except (KeyError, TypeError):
        raise unknown_choice("loss", name, EXPLANATIONS) from None


# --------------------------------------------------------------------------- the numbers behind the figures


def _pointwise(loss: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, dtype=torch.float64):
    """Value and derivative of ``loss`` (a scalar function of a one-element tensor) at each point of ``x``.

    One autograd call per point, so the derivative is exactly the per-sample
    derivative of the real loss function, whatever its reduction.

    Returns
    -------
    values, grads : (len(x),) float64 arrays
    """
    values, grads = np.empty(len(x)), np.empty(len(x))
    for i, xi in enumerate(np.asarray(x, dtype=np.float64)):
        t = torch.tensor([xi], dtype=dtype, requires_grad=True)
        v = loss(t)
        (g,) = torch.autograd.grad(v, t)
        values[i], grads[i] = v.detach().item(), g.item()
    return values, grads


def _vmapped(loss: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and derivative of ``loss`` (a scalar function of a 0-d tensor) at each point of ``x``, in float64.

    The same numbers as :func:`_pointwise`, computed in one vectorised call
    (``torch.func.vmap`` of ``torch.func.grad_and_value``) instead of one
    autograd call per point: for losses of a whole batch, where the loop is slow.

    Returns
    -------
    values, grads : (len(x),) float64 arrays
    """
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    grads, values = torch.func.vmap(torch.func.grad_and_value(loss))(t)
    return values.detach().numpy().copy(), grads.detach().numpy().copy()


def saturation_curves(d_fake: np.ndarray) -> dict[str, np.ndarray]:
    """Generator losses of minimax and ns, and their derivatives w.r.t. the logit, over ``D(G(z))``.

    Computed with :func:`losslab.losses.gan.minimax_g_loss` and
    :func:`losslab.losses.gan.ns_g_loss` and autograd (float64), one fake
    sample at a time. Closed forms: ``dL/dl = -D`` (minimax) and
    ``-(1 - D)`` (ns); ``dL/dD = -1 / (1 - D)`` and ``-1 / D``.

    Parameters
    ----------
    d_fake : (n,) array
        Discriminator probabilities ``D(G(z))`` in ``(0, 1)``.

    Returns
    -------
    dict of (n,) float64 arrays
        ``d_fake``, ``logit``, ``minimax_loss``, ``minimax_grad``, ``ns_loss``,
        ``ns_grad`` (``grad``: derivative w.r.t. the logit).

    Raises
    ------
    UserError
        If a probability is not strictly inside (0, 1).

    References
    ----------
    Goodfellow et al. 2014, arXiv:1406.2661, Eq. 1 and Sec. 3.
    """
    from losslab.losses import gan

    p = np.asarray(d_fake, dtype=np.float64)
    if not np.all((p > 0) & (p < 1)):
        raise UserError("D(G(z)) values must lie strictly inside (0, 1)")
    logit = special.logit(p)
    out = {"d_fake": p, "logit": logit}
    for key, fn in (("minimax", gan.minimax_g_loss), ("ns", gan.ns_g_loss)):
        out[f"{key}_loss"], out[f"{key}_grad"] = _pointwise(lambda t, fn=fn: fn(d_fake=t), logit)
    return out


def optimal_discriminator_logit(x: np.ndarray, distance: float, sigma: float) -> np.ndarray:
    """Logit of the optimal BCE discriminator between ``N(0, s^2)`` (real) and ``N(d, s^2)`` (fake).

    ``D*(x) = p(x) / (p(x) + q(x)) = sigmoid(log p(x) - log q(x))`` and
    ``log p - log q = ((x - d)^2 - x^2) / (2 s^2) = d (d - 2x) / (2 s^2)``.

    Parameters
    ----------
    x : array
        Points (data units).
    distance : float
        ``d``, the position of the fake Gaussian.
    sigma : float
        ``s`` > 0, the common standard deviation.

    Returns
    -------
    array, like ``x``
        Logits (nats).

    References
    ----------
    Goodfellow et al. 2014, arXiv:1406.2661, Proposition 1.
    """
    x = np.asarray(x, dtype=np.float64)
    return distance * (distance - 2.0 * x) / (2.0 * sigma**2)


def js_gaussians(distance: float, sigma: float) -> float:
    """Jensen-Shannon divergence (nats) between ``N(0, s^2)`` and ``N(d, s^2)``.

    By symmetry ``JS = E_{x ~ P}[log(2 p / (p + q))] = log 2 - E_{u ~ N(0,1)}
    softplus(delta u - delta^2 / 2)`` with ``delta = d / s``; the expectation is
    computed with ``scipy.integrate.quad``. Tends to ``log 2`` as ``d / s`` grows
    and is exactly ``log 2`` for point masses at distinct points.

    Parameters
    ----------
    distance : float
        ``d`` (data units).
    sigma : float
        ``s`` > 0.

    Returns
    -------
    float
        JS in ``[0, log 2]`` (nats).
    """
    delta = abs(distance) / sigma
    if delta == 0:
        return 0.0
    def integrand(u: float) -> float:  # N(0, 1) density times softplus(delta u - delta^2 / 2)
        return math.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi) * float(np.logaddexp(0.0, delta * u - delta**2 / 2))

    expectation, _ = integrate.quad(integrand, -np.inf, np.inf)
    return float(min(max(math.log(2.0) - expectation, 0.0), math.log(2.0)))


def critic_1d_curves(distances: np.ndarray, sigma: float = 0.1) -> dict[str, np.ndarray]:
    """The 1-D experiment, exactly: real data at 0, fakes at distance ``d``.

    * ``js``: JS divergence between ``N(0, s^2)`` and ``N(d, s^2)``
      (:func:`js_gaussians`); the minimax discriminator's optimal loss is
      ``2 log 2 - 2 JS`` (Goodfellow et al. Theorem 1).
    * ``w1``: the Wasserstein-1 distance ``|d|`` (a translation).
    * ``bce_grad``: ``|dD*/dx|`` at the fake point ``x = d`` for the optimal BCE
      discriminator ``D* = sigmoid(l)``, ``l`` from
      :func:`optimal_discriminator_logit`: ``sigmoid(l) (1 - sigmoid(l)) |d| / s^2``
      with ``l = -d^2 / (2 s^2)``; it vanishes like ``exp(-d^2 / (2 s^2))``.
    * ``wgan_grad``: ``|f'| = 1`` for the optimal 1-Lipschitz critic ``f(x) = -x``.

    Parameters
    ----------
    distances : (n,) array
        Distances ``d >= 0`` of the fake distribution (data units).
    sigma : float
        Standard deviation ``s > 0`` of both narrow Gaussians.

    Returns
    -------
    dict of (n,) float64 arrays
        ``distance``, ``js``, ``w1``, ``bce_grad``, ``wgan_grad``.

    Raises
    ------
    UserError
        If ``sigma <= 0``.

    References
    ----------
    Goodfellow et al. 2014, arXiv:1406.2661, Prop. 1, Theorem 1; Arjovsky et al.
    2017, arXiv:1701.07875, Example 1; Gulrajani et al. 2017, arXiv:1704.00028, Prop. 1.
    """
    if not sigma > 0:
        raise UserError(f"sigma must be > 0, got {sigma}")
    d = np.asarray(distances, dtype=np.float64)
    l_fake = optimal_discriminator_logit(d, d, sigma)  # logit of D* at the fake point x = d
    bce_grad = special.expit(l_fake) * special.expit(-l_fake) * np.abs(d) / sigma**2
    return {
        "distance": d,
        "js": np.array([js_gaussians(float(di), sigma) for di in d]),
        "w1": np.abs(d),
        "bce_grad": bce_grad,
        "wgan_grad": np.ones_like(d),
    }


def binary_stability_curves(logits: np.ndarray) -> dict[str, np.ndarray]:
    """``bce(sigmoid(z))`` against ``bce_with_logits(z)`` for target 1, in float32.

    Both come from :mod:`losslab.losses.classification` with autograd w.r.t.
    the logit, in float32 (where rounding bites): ``bce`` flattens at
    ``-log(1e-7)`` with a zero gradient once ``sigmoid(z) < 1e-7``, while
    ``bce_with_logits`` stays ``softplus(-z)`` with gradient ``sigmoid(z) - 1 -> -1``.

    Parameters
    ----------
    logits : (n,) array
        Logits ``z`` of the true class.

    Returns
    -------
    dict of (n,) float64 arrays
        ``logit``, ``bce_loss``, ``bce_grad``, ``logits_loss``, ``logits_grad``.
    """
    from losslab.losses import classification as C

    z = np.asarray(logits, dtype=np.float64)
    one = torch.ones(1, dtype=torch.float32)
    out = {"logit": z}
    out["bce_loss"], out["bce_grad"] = _pointwise(lambda t: C.bce(probs=C.sigmoid(t), target=one), z, torch.float32)
    out["logits_loss"], out["logits_grad"] = _pointwise(
        lambda t: C.bce_with_logits(logits=t, target=one), z, torch.float32
    )
    return out


def softmax_curves(gaps: np.ndarray, num_classes: int = 10, smoothings=(0.0, 0.1)) -> dict[str, np.ndarray]:
    """Sparse categorical cross-entropy of logits ``(g, 0, ..., 0)`` with target class 0.

    Uses :func:`losslab.losses.classification.sparse_cce` and autograd w.r.t. ``g``.

    Parameters
    ----------
    gaps : (n,) array
        Logit gap ``g`` between the true class and the ``K - 1`` others.
    num_classes : int
        ``K``.
    smoothings : sequence of float
        Label-smoothing values ``e``.

    Returns
    -------
    dict
        ``gap`` and, per ``e``, ``loss_{e}`` and ``grad_{e}`` (n,) arrays.
    """
    from losslab.losses import classification as C

    g = np.asarray(gaps, dtype=np.float64)
    target = torch.zeros(1, dtype=torch.int64)
    rest = torch.zeros(1, num_classes - 1, dtype=torch.float64)
    out: dict[str, np.ndarray] = {"gap": g}
    for e in smoothings:
        out[f"loss_{e}"], out[f"grad_{e}"] = _pointwise(
            lambda t, e=e: C.sparse_cce(
                logits=torch.cat([t.reshape(1, 1), rest], dim=1), target=target, label_smoothing=e
            ),
            g,
        )
    return out


def focal_curves(p_t: np.ndarray, gammas=(0.0, 0.5, 1.0, 2.0, 5.0)) -> dict[str, np.ndarray]:
    """Focal loss (``alpha = None``) against ``p_t`` for several ``gamma`` (Lin et al. Figure 1).

    A positive example (``y = 1``) with logit ``logit(p_t)``; derivative w.r.t.
    the logit by autograd through :func:`losslab.losses.classification.focal`.

    Parameters
    ----------
    p_t : (n,) array
        Probability of the true class in ``(0, 1)``.
    gammas : sequence of float
        Focusing parameters.

    Returns
    -------
    dict
        ``p_t``, ``logit`` and, per ``gamma``, ``loss_{gamma}``, ``grad_{gamma}``.
    """
    from losslab.losses import classification as C

    p = np.asarray(p_t, dtype=np.float64)
    z = special.logit(p)
    one = torch.ones(1, dtype=torch.float64)
    out: dict[str, np.ndarray] = {"p_t": p, "logit": z}
    for gamma in gammas:
        out[f"loss_{gamma}"], out[f"grad_{gamma}"] = _pointwise(
            lambda t, gamma=gamma: C.focal(logits=t, target=one, gamma=gamma, alpha=None), z
        )
    return out


def _linear_alpha_bar(T: int = 1000) -> np.ndarray:
    """``alpha_bar_t`` of Ho et al.'s linear schedule (beta 1e-4 .. 0.02, Sec. 4)."""
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, T))


def _cosine_alpha_bar(T: int = 1000, s: float = 0.008) -> np.ndarray:
    """``alpha_bar_t`` of Nichol & Dhariwal's cosine schedule (arXiv:2102.09672, Eq. 17; betas clipped at 0.999)."""
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], 0.999)
    return np.cumprod(1.0 - betas)


def diffusion_weight_curves(log_snr: np.ndarray) -> dict[str, np.ndarray]:
    """The weight each diffusion loss puts on the squared ``x0`` error, against ``log SNR``.

    For a fixed ``x_t``: ``||eps - eps_hat||^2 = SNR ||x0 - x0_hat||^2`` and
    ``||v - v_hat||^2 = (1 + SNR) ||x0 - x0_hat||^2``, so the three losses are
    one ``x0`` regression weighted by ``SNR`` (ddpm), ``1`` (ddpm-x0) and
    ``1 + SNR`` (ddpm-v).

    Parameters
    ----------
    log_snr : (n,) array
        Natural log of ``SNR = alpha_bar / (1 - alpha_bar)``.

    Returns
    -------
    dict of (n,) arrays
        ``log_snr``, ``ddpm``, ``ddpm-x0``, ``ddpm-v``.

    References
    ----------
    Salimans & Ho 2022, arXiv:2202.00512, Sec. 4; Ho et al. 2020, arXiv:2006.11239, Eq. 14.
    """
    ls = np.asarray(log_snr, dtype=np.float64)
    snr = np.exp(ls)
    return {"log_snr": ls, "ddpm": snr, "ddpm-x0": np.ones_like(snr), "ddpm-v": 1.0 + snr}


def softmax_contrastive_curves(
    cos_pos: np.ndarray, temperatures=(0.01, 0.07, 0.1, 0.5, 1.0), batch: int = 64
) -> dict[str, np.ndarray]:
    """NT-Xent per anchor and its derivative w.r.t. the positive's cosine similarity, for several temperatures.

    A batch of ``N = batch`` images whose two views have cosine similarity
    ``s`` with each other and 0 with every other view (orthonormal directions
    in ``2N`` dimensions), fed to :func:`losslab.losses.contrastive.nt_xent_loss`;
    every anchor is alike, so the batch mean is the per-anchor loss, and
    autograd (float64, vectorised over the points) gives ``dL/ds``. Closed forms, with ``K = 2N - 2``
    negatives: ``L = log(1 + K exp(-s / tau))``,
    ``dL/ds = -(1 / tau) K exp(-s / tau) / (1 + K exp(-s / tau))``; at
    ``s = 0`` every logit is equal and ``L = log(2N - 1)`` for every ``tau``.
    The same curves describe ``info-nce`` with ``N - 1`` negatives and each
    direction of ``clip`` (``tau = 1 / logit_scale``).

    Parameters
    ----------
    cos_pos : (n,) array
        Cosine similarity ``s`` of the positive pair, strictly inside (-1, 1).
    temperatures : sequence of float
        ``tau > 0``.
    batch : int
        ``N >= 2`` images (``2N`` views).

    Returns
    -------
    dict
        ``cos``, ``negatives`` (a 0-d array, ``2N - 2``) and, per ``tau``,
        ``loss_{tau}`` and ``grad_{tau}`` (n,) arrays.

    Raises
    ------
    UserError
        If a similarity is not strictly inside (-1, 1) or ``batch < 2``.

    References
    ----------
    Chen et al. 2020, SimCLR, arXiv:2002.05709, Eq. 1 and Table 2.
    """
    from losslab.losses.contrastive import nt_xent_loss

    s = np.asarray(cos_pos, dtype=np.float64)
    if not np.all((s > -1) & (s < 1)):
        raise UserError("positive similarities must lie strictly inside (-1, 1)")
    if batch < 2:
        raise UserError(f"batch must be at least 2, got {batch}")
    e = torch.eye(2 * batch, dtype=torch.float64)
    first, other = e[:batch], e[batch:]

    def loss(t: torch.Tensor, tau: float) -> torch.Tensor:
        z2 = t * first + torch.sqrt(1 - t * t) * other  # unit rows, cos(z1_i, z2_i) = t, 0 elsewhere
        return nt_xent_loss(z1=first, z2=z2, temperature=tau)

    out: dict[str, np.ndarray] = {"cos": s, "negatives": np.array(2 * batch - 2)}
    for tau in temperatures:
        out[f"loss_{tau}"], out[f"grad_{tau}"] = _vmapped(lambda t, tau=tau: loss(t, tau), s)
    return out


def margin_curves(distance: np.ndarray, margin: float = 1.0, alpha: float = 0.2, d_pos: float = 0.7
                  ) -> dict[str, np.ndarray]:
    """Pair and triplet losses of one sample against a distance on the unit sphere.

    Each curve comes from the real loss of :mod:`losslab.losses.contrastive`
    through autograd (float64, vectorised over the points), with two unit vectors at Euclidean distance
    ``D`` (cosine ``1 - D^2 / 2``):

    * ``contrastive_pos`` ``= D^2 / 2`` and ``contrastive_neg``
      ``= max(0, m - D)^2 / 2`` (:func:`contrastive_loss`, ``same = 1`` / ``0``);
    * ``triplet`` ``= max(0, d_pos^2 - D^2 + alpha)``: the negative at ``D``,
      the positive fixed at ``d_pos`` (:func:`triplet_loss`);
    * ``bce_pos`` ``= softplus(-cos)`` and ``bce_neg`` ``= softplus(cos)``
      (:func:`pairwise_bce_loss`, ``tau = 1``).

    Parameters
    ----------
    distance : (n,) array
        Euclidean distance ``D`` of unit vectors, strictly inside (0, 2).
    margin : float
        ``m`` of the contrastive loss.
    alpha : float
        Triplet margin on squared distances.
    d_pos : float
        Anchor-positive distance of the triplet, in [0, 2].

    Returns
    -------
    dict of (n,) arrays
        ``distance`` and, per curve above, ``{key}_loss`` and ``{key}_grad``
        (derivative w.r.t. ``D``).

    Raises
    ------
    UserError
        If a distance is not strictly inside (0, 2).

    References
    ----------
    Hadsell et al. 2006, CVPR, Eq. 4; Schroff et al. 2015, arXiv:1503.03832, Eq. 1.
    """
    from losslab.losses import contrastive as C

    d = np.asarray(distance, dtype=np.float64)
    if not np.all((d > 0) & (d < 2)):
        raise UserError("distances of unit vectors must lie strictly inside (0, 2)")
    e = torch.eye(3, dtype=torch.float64)
    anchor = e[:1]

    def at(t: torch.Tensor) -> torch.Tensor:
        c = 1 - t * t / 2  # the unit vector at distance t from the anchor, in the plane of e0, e1
        return (c * e[0] + torch.sqrt(1 - c * c) * e[1]).reshape(1, 3)

    c_pos = 1 - d_pos**2 / 2
    positive = (c_pos * e[0] + math.sqrt(max(0.0, 1 - c_pos**2)) * e[2]).reshape(1, 3)
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    fns = {
        "contrastive_pos": lambda t: C.contrastive_loss(a=anchor, b=at(t), same=one, margin=margin),
        "contrastive_neg": lambda t: C.contrastive_loss(a=anchor, b=at(t), same=zero, margin=margin),
        "triplet": lambda t: C.triplet_loss(anchor=anchor, positive=positive, negative=at(t), margin=alpha),
        "bce_pos": lambda t: C.pairwise_bce_loss(a=anchor, b=at(t), same=one, temperature=1.0),
        "bce_neg": lambda t: C.pairwise_bce_loss(a=anchor, b=at(t), same=zero, temperature=1.0),
    }
    out: dict[str, np.ndarray] = {"distance": d}
    for key, fn in fns.items():
        out[f"{key}_loss"], out[f"{key}_grad"] = _vmapped(fn, d)
    return out


# --------------------------------------------------------------------------- figures


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
    from losslab.losses import GAN_LOSSES

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
        v, g = _pointwise(fn, t)
        a.plot(t, v, label=label)
        b.plot(t, g, label=label)
    _label(a, "loss", "critic output D (raw score)", "loss")
    _label(b, "derivative w.r.t. the score", "critic output D", "dL / dD")
    return fig


def _draw_ebgan() -> Figure:
    from losslab.losses import gan
    from losslab.losses.penalties import pulling_away_term

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
        v, g = _pointwise(fn, e)
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
    from losslab.losses import gan
    from losslab.losses.penalties import BEGANEquilibrium

    e = np.linspace(0.0, 1.0, 101)
    zero = torch.zeros(1, dtype=torch.float64)
    fig, (a, b) = _figure(2, "began: D's loss terms for several k_t, and the convergence measure")
    v, _ = _pointwise(lambda s: gan.began_d_loss(e_real=s, e_fake=zero, k=0.0), e)
    a.plot(e, v, "k-", label="D loss, real: L(x)")
    for k in (0.25, 0.5, 1.0):
        v, _ = _pointwise(lambda s, k=k: gan.began_d_loss(e_real=zero, e_fake=s, k=k), e)
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
    from losslab.losses.classification import smoothed_optimal_logit_gap

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
    fig, (a, b) = _figure(2, "Diffusion: eps, x0 and v prediction are one x0 regression, weighted")
    t = np.arange(1, 1001)
    for label, ab in (("linear (ddpm, ddpm-x0)", _linear_alpha_bar()), ("cosine (ddpm-v)", _cosine_alpha_bar())):
        a.plot(t, np.log(ab) - np.log1p(-ab), label=label)
    _label(a, "schedules", "timestep t", "log SNR(t)")
    c = diffusion_weight_curves(np.linspace(-10.0, 10.0, 201))
    for name, label in (("ddpm", "ddpm (eps): SNR"), ("ddpm-x0", "ddpm-x0: 1"), ("ddpm-v", "ddpm-v: 1 + SNR")):
        b.plot(c["log_snr"], c[name], label=label)
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


# figure key -> (drawing function, caption); several losses share a figure
_FIGURES: dict[str, tuple[Callable[[], Figure], str]] = {
    "saturation": (
        _draw_saturation,
        "Generator loss and its derivative w.r.t. the logit over D(G(z)): minimax's gradient D(G(z)) vanishes "
        "when D rejects the fakes, ns's 1 - D(G(z)) tends to 1.",
    ),
    "critic_1d": (
        _draw_critic_1d,
        "Real data at 0, fakes at distance d (exact): JS saturates at log 2 while W1 = d grows; the optimal BCE "
        "discriminator's slope at the fakes vanishes while the optimal W1 critic's is 1.",
    ),
    "lsgan": (
        partial(_draw_margins, "lsgan"),
        "Per-sample LSGAN terms: quadratic, with slopes proportional to the distance from the target.",
    ),
    "hinge": (
        partial(_draw_margins, "hinge"),
        "Per-sample hinge terms: D stops pushing beyond the margins +-1; G's slope is a constant -1.",
    ),
    "ebgan": (_draw_ebgan, "EBGAN energies and the margin, and the pulling-away term: 0 for orthogonal codes, "
              "1 for parallel ones."),
    "began": (_draw_began, "BEGAN: D's loss terms for several k_t, and M_global, minimal at L(G) = gamma L(x)."),
    "binary": (_draw_binary, "float32, target 1: bce on probabilities caps at -log(1e-7) with a zero gradient; "
               "bce-with-logits keeps the gradient -1."),
    "softmax": (_draw_softmax, "Cross-entropy against the logit gap: without smoothing the loss keeps "
                "decreasing; with smoothing 0.1 it has a finite optimum."),
    "focal": (_draw_focal, "Focal loss against the probability of the true class for several gamma "
              "(Lin et al. Figure 1)."),
    "diffusion": (_draw_diffusion, "log SNR of the schedules, and the weight each diffusion loss puts on "
                  "the x0 error."),
    "contrastive": (
        _draw_contrastive,
        "NT-Xent per anchor (N = 64, 126 negatives at cosine 0) and its slope against the positive's cosine "
        "for several temperatures (the same curves hold for info-nce and each direction of clip): every "
        "temperature gives log(2N - 1) when all similarities are equal, a small tau a steep loss and large "
        "gradients, tau = 1 a high floor and a weak pull. Right: the margin losses stop at their hinge, "
        "pairwise-bce (tau = 1) never does.",
    ),
}

_FIGURE_OF: dict[str, str] = {
    "minimax": "saturation",
    "ns": "saturation",
    "dragan": "saturation",
    "wgan": "critic_1d",
    "wgan-gp": "critic_1d",
    "lsgan": "lsgan",
    "hinge": "hinge",
    "ebgan": "ebgan",
    "began": "began",
    "ddpm": "diffusion",
    "ddpm-x0": "diffusion",
    "ddpm-v": "diffusion",
    "bce": "binary",
    "bce-with-logits": "binary",
    "cce": "softmax",
    "sparse-cce": "softmax",
    "focal": "focal",
    "pairwise-bce": "contrastive",
    "contrastive": "contrastive",
    "triplet": "contrastive",
    "nt-xent": "contrastive",
    "info-nce": "contrastive",
    "supcon": "contrastive",
    "clip": "contrastive",
}


def figure_file(name: str) -> str:
    """File name of the figure of loss ``name`` in ``docs/img/`` (losses can share one).

    Raises
    ------
    UserError
        If ``name`` is unknown.
    """
    _get(name)
    return f"explain_{_FIGURE_OF[name]}.png"


def plot_loss(name: str, path: str | Path) -> Path:
    """Draw the figure of ``losslab explain NAME --plot PATH`` and write it atomically.

    Each figure plots a loss and its gradient against its input, computed from
    the real loss functions (autograd) or exact closed forms: generator losses
    over ``D(G(z))`` (minimax, ns, dragan), the exact 1-D critic experiment
    (wgan, wgan-gp), per-sample terms (lsgan, hinge, ebgan, began), float32
    stability (bce, bce-with-logits), label smoothing (cce, sparse-cce), the
    focal modulation (focal), the diffusion weightings (ddpm*), and the
    contrastive losses against the positive's similarity or a distance on
    the unit sphere (pairwise-bce, contrastive, triplet, nt-xent, info-nce,
    supcon, clip).

    Parameters
    ----------
    name : str
        A key of :data:`EXPLANATIONS`.
    path : str or Path
        Output file; must end in ``.png``. Parent directories are created.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    UserError
        If ``name`` is unknown or ``path`` does not end in ``.png``.
    """
    _get(name)
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"--plot needs a .png file name, got {str(path)!r}")
    draw, _ = _FIGURES[_FIGURE_OF[name]]
    fig = draw()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
    return path


# --------------------------------------------------------------------------- rendering

_SECTIONS = (
    ("used_by", "Used by"),
    ("strengths", "Strengths"),
    ("weaknesses", "Weaknesses"),
    ("failure_modes", "Failure modes"),
)


def _plain(text: str) -> str:
    """Inline math without its Markdown backticks (terminal)."""
    return text.replace("`", "")


def _wrap(text: str, indent: str = "    ", width: int = 92) -> str:
    return "\n\n".join(
        textwrap.fill(_plain(p), width=width, initial_indent=indent, subsequent_indent=indent)
        for p in text.split("\n\n")
    )


def explain_text(name: str) -> str:
    """Terminal text of ``losslab explain NAME``.

    Parameters
    ----------
    name : str
        A loss name of any family (a key of :data:`EXPLANATIONS`).

    Returns
    -------
    str
        Formula, derivation, users, strengths, weaknesses, failure modes,
        source and the commands that show the loss at work.

    Raises
    ------
    UserError
        If ``name`` is unknown; the message lists every explained loss.
    """
    e = _get(name)
    lines = [f"{e.name}  ({FAMILY_PAGES[e.family][0]})", f"source: {e.source}", "", "FORMULA"]
    lines += ["    " + line for line in e.formula_text.splitlines()]
    lines += ["", "DERIVATION", _wrap(e.derivation)]
    for attr, title in _SECTIONS:
        lines += ["", title.upper()]
        for item in getattr(e, attr):
            lines.append(textwrap.fill(_plain(item), width=92, initial_indent="  - ", subsequent_indent="    "))
    lines += ["", "SEE IT AT WORK", "    " + e.compare_command]
    lines += [f"    losslab explain {e.name} --plot {e.name}.png", _wrap(_FIGURES[_FIGURE_OF[name]][1], "      ")]
    return "\n".join(lines) + "\n"


def explain_cli(name: str, plot: str | None) -> str:
    """What ``losslab explain NAME [--plot FILE.png]`` prints; writes the plot when asked.

    Parameters
    ----------
    name : str
        A loss name.
    plot : str or None
        Where to write the figure (a ``.png`` path), or None.

    Returns
    -------
    str
        :func:`explain_text`, plus the path of the figure when one was written.

    Raises
    ------
    UserError
        If ``name`` is unknown or ``plot`` does not end in ``.png``.
    """
    text = explain_text(name)
    if plot is not None:
        text += f"\nplot: {plot_loss(name, plot)}\n"
    return text


def explain_markdown(family: str) -> str:
    """One docs page (Markdown with LaTeX) for every loss of ``family``.

    ``scripts/make_docs.py`` writes it to ``docs/<family>.md``; figures are
    referenced as ``img/<figure_file(name)>``.

    Parameters
    ----------
    family : str
        "gan" | "diffusion" | "classification" | "contrastive".

    Returns
    -------
    str
        The page.

    Raises
    ------
    UserError
        If no loss belongs to ``family``.
    """
    if family not in _families():
        raise unknown_choice("family", family, _families())
    title, intro = FAMILY_PAGES[family]
    names = [n for n, e in EXPLANATIONS.items() if e.family == family]
    out = [
        "<!-- Generated by scripts/make_docs.py from src/losslab/explain.py: edit that file, not this one. -->",
        "",
        f"# {title}",
        "",
        intro,
        "",
        "The same text is printed by `losslab explain NAME`; `losslab explain NAME --plot FILE.png` draws the figure.",
        "",
        "| loss | source |",
        "|---|---|",
    ]
    out += [f"| [`{n}`](#{_anchor(n)}) | {EXPLANATIONS[n].source} |" for n in names]
    shown: set[str] = set()
    for n in names:
        e = EXPLANATIONS[n]
        out += ["", f"## {n}", "", "```math", _latex_lines(e.formula_latex), "```", "", "**Derivation.** " + e.derivation]
        for attr, heading in _SECTIONS:
            out += ["", f"**{heading}.**", ""] + [f"- {item}" for item in getattr(e, attr)]
        out += ["", f"**Source.** {e.source}", "", "**See it at work.**", "", "```bash", e.compare_command,
                f"losslab explain {n} --plot {n}.png", "```"]
        key = _FIGURE_OF[n]
        caption = _FIGURES[key][1]
        if key in shown:
            out += ["", f"Figure: `{figure_file(n)}` (shown above). {caption}"]
        else:
            shown.add(key)
            out += ["", f"![{key}](img/{figure_file(n)})", "", f"*{caption}*"]
    return "\n".join(out) + "\n"


def _latex_lines(latex: str) -> str:
    """One display line per equation of an ``aligned`` block (readable Markdown source)."""
    latex = latex.replace(r"\begin{aligned}", "\\begin{aligned}\n").replace(r"\end{aligned}", "\n\\end{aligned}")
    return latex.replace(" \\\\", " \\\\\n")


def _anchor(name: str) -> str:
    """GitHub's heading anchor for ``## name``."""
    return re.sub(r"[^a-z0-9 _-]", "", name.lower()).replace(" ", "-")


__all__ = [
    "EXPLANATIONS",
    "Explanation",
    "FAMILY_PAGES",
    "binary_stability_curves",
    "critic_1d_curves",
    "diffusion_weight_curves",
    "explain_cli",
    "explain_markdown",
    "explain_text",
    "figure_file",
    "focal_curves",
    "js_gaussians",
    "margin_curves",
    "optimal_discriminator_logit",
    "plot_loss",
    "saturation_curves",
    "softmax_contrastive_curves",
    "softmax_curves",
]
