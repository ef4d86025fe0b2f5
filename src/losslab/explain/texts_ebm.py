"""The energy-based model losses explained: the ``ebm`` docs page and ``losslab explain NAME`` for each.

:data:`PAGE` is the page's title and introduction, :data:`EXPLANATIONS` maps each loss name
to its :class:`~losslab.explain.explanation.Explanation` and its figure.

Text conventions: inline mathematics is written between backticks (a code
span in Markdown; the backticks are dropped in the terminal).
"""

from __future__ import annotations

from losslab.explain.explanation import Explanation
from losslab.explain.figures import EBM_CD, EBM_DSM

# The MNIST sample grid of issue 16 (docs/img/ebm_mnist.png); the numbers are the runs' result.json.
MNIST_NOTE = (
    "\n\n**On MNIST.** Images use their own Langevin settings (each loss's `image_defaults` in "
    "`src/losslab/losses/ebm.py`; `--set ebm.*` still overrides them): the vector step `s = 1e-3` barely moves a "
    "784-pixel chain in 60 steps (5 and 10 updates gave noise, FID 1.14). `ebm-cd` takes a large gradient step "
    "and a small noise, as Du & Mordatch (step 10, noise std 0.005 on [0, 1] images) and Nijkamp et al. (short-run chains) do: "
    "`step_size 100`, `noise_scale 0.001` (a gradient step of `50 grad_x E`, noise std 0.01), 20 steps per update, "
    "60 per sample. `ebm-dsm` learns one larger noise level, `sigma 0.5`, so that its score reaches the uniform noise "
    "the sampler starts from, and samples with a cold chain (`step_size 0.05`, `noise_scale 0.1`, 100 steps).\n\n"
    "![ebm_mnist](img/ebm_mnist.png)\n\n"
    "*Fresh-noise samples of one seed on a shared 2-core CPU (`losslab train --data mnist --loss ebm-cd --steps 150 "
    "--set train.batch_size=32`, 3.5 min of training; `ebm-dsm` 200 updates of batch 64, 2.7 min; FID and classes "
    "from 300 samples, ladder rungs at 2,000 images: two classes 0.32, one class 0.52, uniform noise 1.10). "
    "`ebm-cd` draws digit-like strokes: FID 0.35, 8 of 10 classes covered, precision 0.75. `ebm-dsm` draws stroke "
    "textures, not digits: FID 0.54, 6 classes, precision 0.03; a single noise level does not carry a chain "
    "from noise to digits at this budget (annealed noise levels would, Song & Ermon 2019). Tried: `ebm-cd` step 10 "
    "/ noise 0.003 (strokes, FID 0.39, 5 classes); `ebm-dsm` sigma 0.3 at noise_scale 1 (noise, FID 1.18), "
    "sigma 0.3 cold (textures, FID 0.65, 3 classes), sigma 1.0 cold (FID 0.73, 3 classes).*"
)

PAGE: tuple[str, str] = (
    "Energy-based models",
    "An energy-based model (EBM) is one network, the energy `E(x)`, one scalar per sample, that defines "
    "the Boltzmann density `p(x) = exp(-E(x)) / Z` with `Z = integral exp(-E(x)) dx`: low energy means "
    "likely. `Z` is never computed. Samples come from Langevin dynamics, "
    "`x <- x - (s/2) grad_x E(x) + sqrt(s) eps`, which needs only the gradient of the energy; each step is "
    "one forward and one backward pass, so a sample costs as many network evaluations as the chain has steps. "
    "EBGAN's autoencoder energy (`ebgan` on the GAN page) is a critic for a generator; here the energy is the "
    "model. The losses are in `src/losslab/losses/ebm.py`, the sampler and the replay buffer in "
    "`src/losslab/langevin.py`."
    + MNIST_NOTE,
)

_CD_DERIVATION = (
    "Maximum likelihood minimises `-log p(x+) = E(x+) + log Z` over data `x+`. The partition function "
    "depends on the parameters, but its gradient is an expectation under the model: "
    "`grad log Z = (1/Z) integral grad exp(-E(x)) dx = -(1/Z) integral exp(-E(x)) grad E(x) dx = "
    "-E_{x- ~ p}[grad E(x-)]`. Hence `grad(-log p(x+)) = grad E(x+) - E_{x- ~ p}[grad E(x-)]`: push the "
    "energy down on data, up on the model's own samples. The surrogate `E(x+) - E(x-)` with the negatives "
    "`x-` detached has exactly this gradient; `Z` has cancelled.\n\n"
    "The negatives come from Langevin dynamics started, 95% of the time, from a replay buffer of past "
    "negatives and otherwise from uniform noise (Du & Mordatch 2019, Sec. 3), so that each short chain of "
    "`K = 60` steps continues earlier ones. The regulariser `alpha (E(x+)^2 + E(x-)^2)` keeps the energies "
    "near 0; for fixed samples it caps the gap `E(x-) - E(x+)` near `1 / alpha`.\n\n"
    "Short-run chains change what is learned (Nijkamp et al. 2019): the gradient balances data against "
    "whatever `K` steps of Langevin produce, not against `exp(-E)/Z`. The trained energy is then a good "
    "*sampler* (its K-step chain from noise looks like data) but `exp(-E)/Z` need not be a faithful "
    "density: running the chain much longer can drift to other, over-saturated states. losslab evaluates "
    "samples from fresh uniform noise with `sample_steps = 200` steps (more than training's 60, never "
    "from the buffer), which is the fairer test and the one a long-run failure shows up in."
)

_DSM_DERIVATION = (
    "Score matching fits the model score `s(x) = grad log p(x) = -grad_x E(x)`, which does not involve `Z` "
    "at all. Denoising score matching (Vincent 2011) avoids the unknown data score: corrupt the data, "
    "`x~ = x + sigma eps`; the score of the corruption kernel `N(x~; x, sigma^2 I)` is `-(x~ - x)/sigma^2`, "
    "and regressing the model score on it, `J_DSM = 0.5 E || s(x~) + (x~ - x)/sigma^2 ||^2`, has the same "
    "minimiser as matching the score of the noisy data density `q_sigma = p_data * N(0, sigma^2 I)`. For "
    "Gaussian data `N(mu, s0^2 I)` the optimum is `grad E(x~) = (x~ - mu) / (s0^2 + sigma^2)`.\n\n"
    "With `eps = (x~ - x)/sigma`, `sigma^2 J_DSM = 0.5 E || sigma s(x~) + eps ||^2`: the `ddpm` eps loss at "
    "one noise level with `eps_theta = -sigma s` (the sigma^2 weighting of Song & Ermon 2019). Diffusion "
    "models are DSM over many noise levels with a time-conditioned network; this EBM has one `sigma` "
    "(0.1 in standardised units) and a score that is a true gradient field. Its samples come from "
    "Langevin dynamics on the learned energy, from fresh uniform noise, so they follow `q_sigma` (the data "
    "blurred by `sigma`), not the data; and where data are sparse the score is poorly learned, so chains "
    "started far from the data mix slowly (Song & Ermon 2019, Sec. 3), the reason for their annealed "
    "Langevin over many sigmas."
)

EXPLANATIONS: dict[str, Explanation] = {
    "ebm-cd": Explanation(
        name="ebm-cd",
        family="ebm",
        formula_text=(
            "L = mean E(x+) - mean E(x-) + alpha mean(E(x+)^2 + E(x-)^2),   x+ ~ data,  x- = sg[Langevin_K(x0)]\n"
            "x0 ~ replay buffer (95%) or U(box) (5%);  x <- x - (s/2) grad_x E(x) + sqrt(s) eps"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L &= \mathbb{E}_{x^+}[E(x^+)] - \mathbb{E}_{x^-}[E(x^-)] + \alpha\,\mathbb{E}[E(x^+)^2 + E(x^-)^2] \\"
            r"\nabla_\theta(-\log p_\theta(x^+)) &= \nabla_\theta E(x^+) - \mathbb{E}_{x^- \sim p_\theta}"
            r"[\nabla_\theta E(x^-)], \quad x_{k} = x_{k-1} - \tfrac{s}{2}\nabla_x E(x_{k-1}) + \sqrt{s}\,\epsilon_k"
            r"\end{aligned}"
        ),
        derivation=_CD_DERIVATION,
        used_by=(
            "IGEBM (Du & Mordatch 2019); JEM (Grathwohl et al. 2020, arXiv:1912.03263)",
            "Short-run MCMC EBMs (Nijkamp et al. 2019); contrastive divergence in RBMs (Hinton 2002)",
        ),
        strengths=(
            "Maximum likelihood: the gradient covers every mode the sampler finds; no generator, no adversary",
            "One network; samples can be refined by more steps, composed (sum energies) or conditioned",
        ),
        weaknesses=(
            "Each update runs K Langevin steps (K forward and backward passes): far slower per update than "
            "a GAN or a denoiser",
            "The gradient is only as good as the negatives: a sampler that does not mix gives a biased "
            "gradient, and short-run training makes a sampler rather than a density",
        ),
        failure_modes=(
            "Energy gap exploding: E(x-) - E(x+) grows without bound while samples stop improving "
            "(logged as energy_gap; named by losslab.train.ebm.failure_signatures)",
            "Samples saturating at the clamp bounds: the energy decreases outwards and chains pile up on "
            "the box (logged as at_bounds)",
            "Long chains from noise drifting away from data the short training chains matched",
        ),
        source="Du & Mordatch 2019, 'Implicit Generation and Generalization in Energy-Based Models', "
        "arXiv:1903.08689, Secs. 2-3; Nijkamp et al. 2019, 'Learning Non-Convergent Non-Persistent Short-Run "
        "MCMC Toward Energy-Based Model', arXiv:1904.09770",
        compare_command="losslab compare --data ring8 --losses ebm-cd,ebm-dsm --seeds 3 --out explain-ebm-cd",
        figure=EBM_CD,
    ),
    "ebm-dsm": Explanation(
        name="ebm-dsm",
        family="ebm",
        formula_text=(
            "L = sigma^2 * 0.5 E || s(x~) + (x~ - x) / sigma^2 ||^2 = 0.5 E || sigma s(x~) + eps ||^2\n"
            "x~ = x + sigma eps,  eps ~ N(0, I),  s(x~) = -grad_x E(x~)"
        ),
        formula_latex=(
            r"L = \frac{\sigma^2}{2}\,\mathbb{E}\Big\|s_\theta(\tilde x) + \frac{\tilde x - x}{\sigma^2}\Big\|^2"
            r" = \frac12\,\mathbb{E}\big\|\sigma s_\theta(\tilde x) + \epsilon\big\|^2, \quad"
            r" \tilde x = x + \sigma\epsilon,\ s_\theta = -\nabla_x E_\theta"
        ),
        derivation=_DSM_DERIVATION,
        used_by=(
            "Denoising score matching (Vincent 2011); noise-conditional score networks (Song & Ermon 2019)",
            "Score-based diffusion (Song et al. 2021, arXiv:2011.13456); energy-parametrised diffusion "
            "(Salimans & Ho 2021, arXiv:2101.03288)",
        ),
        strengths=(
            "A plain regression: no sampling during training, no Z, one forward and one double-backward pass",
            "The same objective as a one-level DDPM eps loss, so it trains as stably",
        ),
        weaknesses=(
            "Learns the data blurred by sigma; a small sigma learns a sharp score only near the data",
            "Sampling still needs a Langevin chain; from noise far from the data a single sigma mixes poorly",
        ),
        failure_modes=(
            "Samples spread around the modes (width ~ sigma) or stuck between them when the chain is short",
            "The energy's constant is free (DSM sees only its gradient): absolute energies drift, only gaps matter",
        ),
        source="Vincent 2011, 'A Connection Between Score Matching and Denoising Autoencoders', Neural "
        "Computation 23(7) (J_DSM); Song & Ermon 2019, 'Generative Modeling by Estimating Gradients of the "
        "Data Distribution', arXiv:1907.05600, Eqs. 5-6",
        compare_command="losslab compare --data ring8 --losses ebm-dsm,ebm-cd --seeds 3 --out explain-ebm-dsm",
        figure=EBM_DSM,
    ),
}
