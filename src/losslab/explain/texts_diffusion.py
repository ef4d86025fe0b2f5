"""The diffusion losses explained: the ``diffusion`` docs page and ``losslab explain NAME`` for each.

:data:`PAGE` is the page's title and introduction, :data:`EXPLANATIONS` maps each loss name
to its :class:`~losslab.explain.explanation.Explanation`, which names the figure that
``losslab explain NAME --plot FILE.png`` draws.

Text conventions: inline mathematics is written between backticks (a code
span in Markdown; the backticks are dropped in the terminal).
"""

from __future__ import annotations

from losslab.explain.explanation import Explanation
from losslab.explain.figures import DIFFUSION

# the docs page: (title, introduction)
PAGE: tuple[str, str] = (
    "Diffusion losses",
    "A denoising diffusion model corrupts data with Gaussian noise, `x_t = sqrt(a_t) x0 + "
    "sqrt(1 - a_t) eps` with `a_t = alpha_bar_t` falling from 1 to about 0 over `T` steps, and "
    "trains one network to undo one step at a time. The three losses here train the same network "
    "and differ only in what it predicts (the noise `eps`, the clean sample `x0`, or the velocity "
    "`v`), which is the same as weighting the timesteps differently. `SNR(t) = a_t / (1 - a_t)` is "
    "the signal-to-noise ratio of `x_t`. The objectives are in `src/losslab/losses/diffusion.py`, "
    "the schedules and samplers in `src/losslab/schedules.py`.",
)

EXPLANATIONS: dict[str, Explanation] = {
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
        figure=DIFFUSION,
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
        figure=DIFFUSION,
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
        figure=DIFFUSION,
    ),
}
