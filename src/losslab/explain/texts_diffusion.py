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
    "trains one network to undo one step at a time. The three DDPM losses here train the same network "
    "and differ only in what it predicts (the noise `eps`, the clean sample `x0`, or the velocity "
    "`v`), which is the same as weighting the timesteps differently. `SNR(t) = a_t / (1 - a_t)` is "
    "the signal-to-noise ratio of `x_t`. Two continuous-time losses train the same networks: flow "
    "matching (a straight path from data to noise, sampled by an ODE solver) and EDM (a preconditioned "
    "denoiser, sampled by Heun's method). Every loss is sampled with the same number of network "
    "evaluations per sample (`diffusion.sample_steps`, the NFE column of the report). The DDPM objectives "
    "are in `src/losslab/losses/diffusion.py`, flow matching and EDM in `src/losslab/losses/flow_edm.py`, "
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
    "flow-matching": Explanation(
        name="flow-matching",
        family="diffusion",
        formula_text=(
            "x_t = (1 - t) x0 + t x1,   x0 ~ data,   x1 ~ N(0, I),   t ~ U(0, 1)\n"
            "L = E_{t, x0, x1} ||v_theta(x_t, t) - (x1 - x0)||^2\n"
            "sampling: dx/dt = v_theta(x, t) from t = 1 (noise) to t = 0 (data), Euler (NFE = N steps) or Heun "
            "(2 evaluations per step)\n"
            "inputs: x0 a training sample (vectors standardised per dimension, images in [-1, 1]); x1 the "
            "noise; t the time, shown to the network as 1000 t\n"
            "defaults: Adam 2e-4, grad clip 1, EMA 0.995; Euler with diffusion.sample_steps network "
            "evaluations (vectors 100, images 25), the same NFE as ddpm's DDIM"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"x_t &= (1 - t)\,x_0 + t\,x_1, \quad x_1 \sim \mathcal{N}(0, I),\ t \sim U(0, 1) \\"
            r"L &= \mathbb{E}_{t, x_0, x_1}\big[\|v_\theta(x_t, t) - (x_1 - x_0)\|^2\big], \qquad"
            r" \frac{dx}{dt} = v_\theta(x, t)\ \text{from } t = 1 \text{ to } 0"
            r"\end{aligned}"
        ),
        derivation=(
            "Flow matching regresses a velocity field whose ODE carries the noise distribution to the data. "
            "The marginal field that does so is intractable, but its regression onto the velocity of one "
            "conditional path has the same gradients (Lipman et al., Theorem 2): for the straight path between "
            "a data point `x0` and a noise draw `x1` the conditional velocity is the constant `x1 - x0` "
            "(their optimal-transport path with sigma_min = 0, Eq. 23; Liu et al.'s rectified flow, Eq. 1). "
            "losslab names the data `x0` and the noise `x1`, as in its DDPM notation, so t grows with the "
            "noise; both papers name them the other way round (their t is 1 - t here).\n\n"
            "The regression's minimiser is the conditional mean `v*(x, t) = E[x1 - x0 | x_t = x]`. For 1-D "
            "Gaussian data N(mu, s^2) it is affine, `v* = -mu + (t - (1 - t) s^2) / V (x - (1 - t) mu)` with "
            "`V = (1 - t)^2 s^2 + t^2`, and its ODE maps noise exactly onto the data (the tests check both). "
            "In terms of the clean sample, `x0_hat = x_t - t v_hat`, so the loss is an x0 regression weighted "
            "by `1 / t^2 = (1 + sqrt(SNR))^2` with `SNR = ((1 - t) / t)^2`: between ddpm-v's `1 + SNR` and "
            "ddpm's `SNR` at low noise. Straight conditional paths make the learned ODE nearly straight, so "
            "few Euler steps already sample well (Liu et al., Sec. 2)."
        ),
        used_by=(
            "Stable Diffusion 3 (Esser et al. 2024, arXiv:2403.03206) and Flux: rectified-flow transformers",
            "Rectified flow and its reflow / distillation to one step (Liu et al. 2023)",
            "Voicebox and other speech and video generators trained with conditional flow matching",
        ),
        strengths=(
            "The simplest target of all: a constant velocity per pair, no schedule, no noise-level bookkeeping",
            "Deterministic ODE sampling with few evaluations; exact likelihoods through the ODE if wanted",
            "Any coupling and any path family fit the same loss (conditional OT, minibatch OT, reflow)",
        ),
        weaknesses=(
            "The loss at t near 1 stays high (the target x1 - x0 is mostly unpredictable noise): its value is "
            "not a quality measure",
            "Uniform t spends little training on the middle noise levels that matter most for images "
            "(Esser et al. reweight with a logit-normal t); losslab keeps the papers' uniform t",
        ),
        failure_modes=(
            "Too few Euler steps on a curved learned field: samples fall between modes (mode-bridging points "
            "on ring8 or grid25)",
            "An undertrained field near t = 0 leaves samples blurred around the modes (large W1, few "
            "high-quality samples)",
        ),
        source="Lipman et al. 2023, 'Flow Matching for Generative Modeling', arXiv:2210.02747, Eqs. 20-23, "
        "Theorem 2 (numbers unchecked); Liu et al. 2023, 'Flow Straight and Fast: Learning to Generate and "
        "Transfer Data with Rectified Flow', arXiv:2209.03003, Eq. 1 (number unchecked)",
        compare_command="losslab compare --family diffusion --data ring8 --losses ddpm,flow-matching,edm --seeds 3 "
        "--out explain-flow-matching",
        figure=DIFFUSION,
    ),
    "edm": Explanation(
        name="edm",
        family="diffusion",
        formula_text=(
            "D(x; sigma) = c_skip(sigma) x + c_out(sigma) F_theta(c_in(sigma) x; c_noise(sigma))\n"
            "c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),  "
            "c_in = 1 / sqrt(sigma^2 + sd^2),  c_noise = ln(sigma) / 4\n"
            "L = E_{sigma, x0, n} lambda(sigma) ||D(x0 + sigma n; sigma) - x0||^2,  "
            "lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2,  ln sigma ~ N(-1.2, 1.2^2)\n"
            "sampling: Heun on dx/dsigma = (x - D(x; sigma)) / sigma from sigma_max = 80 to 0, "
            "sigma_i = (80^(1/7) + i/(N-1) (0.002^(1/7) - 80^(1/7)))^7, deterministic (S_churn = 0), "
            "NFE = 2N - 1\n"
            "inputs: x0 a training sample; n ~ N(0, I); sd = sigma_data, the data's std (1 for losslab's "
            "standardised vectors, 0.5 for images in [-1, 1])\n"
            "defaults: Table 1's P_mean -1.2, P_std 1.2, sigma_min 0.002, sigma_max 80, rho 7; Adam 2e-4, "
            "grad clip 1, EMA 0.995; Heun within diffusion.sample_steps evaluations (100 -> 50 steps, 99 NFE)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"D_\theta(x; \sigma) &= c_\text{skip}(\sigma)\,x + c_\text{out}(\sigma)\,"
            r"F_\theta\big(c_\text{in}(\sigma)\,x;\ c_\text{noise}(\sigma)\big) \\"
            r"c_\text{skip} &= \frac{\sigma_d^2}{\sigma^2 + \sigma_d^2},\ "
            r"c_\text{out} = \frac{\sigma \sigma_d}{\sqrt{\sigma^2 + \sigma_d^2}},\ "
            r"c_\text{in} = \frac{1}{\sqrt{\sigma^2 + \sigma_d^2}},\ c_\text{noise} = \tfrac14 \ln\sigma \\"
            r"L &= \mathbb{E}_{\sigma, x_0, n}\Big[\lambda(\sigma)\,\|D_\theta(x_0 + \sigma n; \sigma) - x_0\|^2"
            r"\Big],\quad \lambda(\sigma) = \frac{\sigma^2 + \sigma_d^2}{(\sigma \sigma_d)^2},\quad"
            r" \ln \sigma \sim \mathcal{N}(-1.2, 1.2^2)"
            r"\end{aligned}"
        ),
        derivation=(
            "Karras et al. separate the design choices that DDPM, VP and VE diffusion tie together. The data "
            "are noised by adding `sigma n` (no scaling of the signal), and a denoiser `D(x; sigma)` estimates "
            "the clean sample, whose error is the score's: `grad log p(x; sigma) = (D(x; sigma) - x) / "
            "sigma^2`. The network F is wrapped so that its input and its effective target have unit "
            "variance at every sigma: `c_in` scales the noisy input, `c_skip` passes the part of `x` that "
            "already is the answer (all of it at small sigma, none at large), `c_out` scales the rest "
            "(Sec. 5, Appendix B.6). The weight `lambda(sigma) = 1 / c_out^2` makes the effective loss "
            "`||F - (x0 - c_skip x) / c_out||^2` equally scaled at every sigma, and the log-normal "
            "`p(sigma)` spends training on the middle noise levels where the loss can still fall.\n\n"
            "Sampling solves the probability-flow ODE `dx/dsigma = (x - D) / sigma` with Heun's second-order "
            "method on noise levels spaced by rho = 7 (Eq. 5, Algorithm 1): dense at low sigma, where detail "
            "is decided. The last step (to sigma = 0) is an Euler step, because the field divides by sigma; "
            "so N steps cost 2N - 1 evaluations. On the x0 error at `SNR = 1 / sigma^2` the weight is "
            "`1 / sd^2 + SNR`: ddpm-v's `1 + SNR` for unit-variance data. losslab shows the network "
            "`1000 c_noise` (its sinusoidal embedding was built for DDPM's 0..999), where NVlabs/edm feeds "
            "`c_noise` itself."
        ),
        used_by=(
            "EDM and EDM2 (Karras et al. 2022, 2024, arXiv:2312.02696); the preconditioning of Stable Video "
            "Diffusion and of many consistency models (Song et al. 2023, arXiv:2303.01469)",
            "The Heun sampler and rho = 7 noise levels are the k-diffusion defaults used across image models",
        ),
        strengths=(
            "Well-conditioned at every noise level by construction: input, output and loss all unit-scaled",
            "Second-order deterministic sampling: good samples at tens of network evaluations",
            "Each choice (weighting, noise distribution, sampler) is separate and can be changed alone",
        ),
        weaknesses=(
            "More constants to get right (sigma_data, P_mean, P_std, sigma_min/max, rho); the defaults were "
            "tuned on 32-64 px images, not on toys",
            "The deterministic sampler has no noise to correct errors; Algorithm 2's churn (not used here) "
            "helps on hard data",
        ),
        failure_modes=(
            "A wrong sigma_data: c_skip passes the wrong share of the input, the network's target is no "
            "longer unit-scaled and training is slow or unstable",
            "Too few Heun steps: samples overshoot between modes; an odd NFE budget wastes nothing, an even "
            "one leaves one evaluation unused (2N - 1)",
        ),
        source="Karras et al. 2022, 'Elucidating the Design Space of Diffusion-Based Generative Models', "
        "arXiv:2206.00364, Table 1, Eq. 5, Algorithm 1 (numbers unchecked); reference shape: NVlabs/edm "
        "training/loss.py (EDMLoss), "
        "training/networks.py (EDMPrecond)",
        compare_command="losslab compare --family diffusion --data ring8 --losses ddpm,flow-matching,edm --seeds 3 "
        "--out explain-edm",
        figure=DIFFUSION,
    ),
}
