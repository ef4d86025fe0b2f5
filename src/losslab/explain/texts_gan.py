"""The GAN losses explained: the ``gan`` docs page and ``losslab explain NAME`` for each GAN loss.

:data:`PAGE` is the page's title and introduction, :data:`EXPLANATIONS` maps each loss name
to its :class:`~losslab.explain.explanation.Explanation`, which names the figure that
``losslab explain NAME --plot FILE.png`` draws.

Text conventions: inline mathematics is written between backticks (a code
span in Markdown; the backticks are dropped in the terminal).
"""

from __future__ import annotations

from losslab.explain import dirac
from losslab.explain.explanation import Explanation
from losslab.explain.figures import BEGAN, CRITIC_1D, EBGAN, HINGE, LSGAN, RELATIVISTIC, SATURATION
from losslab.explain.figures_dirac import COMPARED, DIRAC

# the docs page: (title, introduction)
PAGE: tuple[str, str] = (
    "GAN losses",
    "A GAN trains a generator `G(z)`, `z ~ N(0, I)`, against a critic `D`. The losses differ in what "
    "the critic outputs (a logit `l` with `D = sigmoid(l)`, a raw score, a 1-Lipschitz critic value, "
    "or the reconstruction energy of an autoencoder), in which divergence or distance the pair "
    "ends up minimising, and in where the generator's gradient comes from when the critic wins. "
    "Each loss is a pure keyword-only function in `src/losslab/losses/gan.py`, registered with its "
    "optimiser defaults in `src/losslab/losses/gan_registry.py`; the penalties are in "
    "`src/losslab/losses/penalties.py`. `x` is a real sample, expectations are batch means.",
)

EXPLANATIONS: dict[str, Explanation] = {
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
        figure=SATURATION,
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
        figure=SATURATION,
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
        figure=CRITIC_1D,
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
        figure=CRITIC_1D,
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
        figure=LSGAN,
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
        figure=HINGE,
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
        figure=SATURATION,
    ),
    "r1": Explanation(
        name="r1",
        family="gan",
        formula_text=(
            "L_D = E_x[softplus(-l(x))] + E_z[softplus(l(G(z)))] + gamma/2 E_x[||grad_x l(x)||_2^2]\n"
            "L_G = E_z[softplus(-l(G(z)))]          (gamma = 10; R2: the same penalty on G(z), loss.r2_gamma)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L_D &= \mathbb{E}_x[\operatorname{softplus}(-\ell(x))]"
            r" + \mathbb{E}_z[\operatorname{softplus}(\ell(G(z)))]"
            r" + \tfrac{\gamma}{2}\,\mathbb{E}_{x\sim p_\text{data}}\big[\|\nabla_x \ell(x)\|_2^2\big] \\"
            r"L_G &= \mathbb{E}_z[\operatorname{softplus}(-\ell(G(z)))]"
            r"\end{aligned}"
        ),
        derivation=(
            "Mescheder et al. show with the Dirac-GAN (below) that unregularised GAN training is not locally "
            "convergent when the data and the generator live on low-dimensional sets: at the equilibrium the "
            "Jacobian of the gradient field has purely imaginary eigenvalues `+- f'(0) i`, so gradient descent "
            "circles around it (or spirals out, with simultaneous updates). WGAN-GP's penalty does not help, "
            "because it pulls the critic's gradient norm to 1, not to 0, at the equilibrium.\n\n"
            "R1 penalises the critic's squared gradient norm on the real data, `gamma/2 E||grad D(x)||^2`: "
            "once the generator matches the data the critic is pushed to be flat there, which adds "
            "`-gamma` to the critic's block of the Jacobian and gives the eigenvalues "
            "`-gamma/2 +- sqrt(gamma^2/4 - f'(0)^2)`, both with negative real part for every `gamma > 0` "
            "(Sec. 4.1, Theorem 4.1). R2 is the same penalty on generated samples. Here R1 is added to the "
            "non-saturating loss with the authors' reference settings (RMSprop, lr 1e-4, gamma 10); every "
            "BCE-family loss (minimax, ns, dragan, rpgan) takes it too through `loss.r1_gamma` and `loss.r2_gamma`."
        ),
        used_by=(
            "Mescheder et al. 2018: high-resolution CelebA-HQ, LSUN and ImageNet with ResNets and one setting",
            "StyleGAN, StyleGAN2 and StyleGAN3 (Karras et al. 2019-2021): non-saturating loss with R1",
            "R3GAN (Huang et al. 2024) as one half of its R1 + R2 regularisation",
        ),
        strengths=(
            "Locally convergent on the Dirac-GAN and, under the paper's assumptions, in general (Theorem 4.1)",
            "Cheap: one extra backward pass on the real batch, no interpolation, no target norm",
        ),
        weaknesses=(
            "`gamma` depends on the data's scale and dimension (10 for images in the paper; far less for toys)",
            "A per-sample penalty: no batch norm in the critic",
        ),
        failure_modes=(
            "`gamma` too large: the critic is too flat to separate real from fake, the generator drifts slowly",
            "`gamma` too small: the rotation of the unregularised game remains (oscillating `d_real`, `d_fake`)",
        ),
        source="Mescheder et al. 2018, 'Which Training Methods for GANs do actually Converge?', arXiv:1801.04406, "
        "Sec. 2 (Dirac-GAN), Sec. 4.1 (R1, R2); section and equation numbers unchecked",
        compare_command="losslab compare --data ring8 --losses r1,ns,wgan-gp --seeds 3 --out explain-r1",
        figure=SATURATION,
    ),
    "rpgan": Explanation(
        name="rpgan",
        family="gan",
        formula_text=(
            "L_D = E_{(x, z)}[softplus(C(G(z)) - C(x))]     (each real x paired with one fake G(z))\n"
            "L_G = E_{(x, z)}[softplus(C(x) - C(G(z)))]"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L_D &= \mathbb{E}_{(x,z)}\big[\operatorname{softplus}(C(G(z)) - C(x))\big] \\"
            r"L_G &= \mathbb{E}_{(x,z)}\big[\operatorname{softplus}(C(x) - C(G(z)))\big]"
            r"\end{aligned}"
        ),
        derivation=(
            "Jolicoeur-Martineau argues that the standard discriminator misses that half of every batch is "
            "fake: when the generator improves, D should also become less sure that the real data are real. "
            "A relativistic discriminator estimates the probability that a real sample is more realistic "
            "than a fake one, `sigmoid(C(x) - C(G(z)))`, and both players play with the difference of the two "
            "logits: D raises it, G lowers it. The generator's loss therefore depends on real samples too (the "
            "step gives it `d_real` because the loss declares `g_needs_real`).\n\n"
            "Huang et al. (2024) show that this paired form (RpGAN) has no local minima in which the generator "
            "covers only part of the data, unlike the standard GAN loss, which is why it drops fewer modes. "
            "Without a penalty, though, it is no more convergent than ns: on the Dirac-GAN its field is the "
            "ns field (`C(x) = 0` there), eigenvalues `+- i/2`."
        ),
        used_by=(
            "Jolicoeur-Martineau 2018: CIFAR-10, CAT 256 x 256 with DCGAN-style networks",
            "ESRGAN (Wang et al. 2018) uses the relativistic average variant for super-resolution",
            "R3GAN (Huang et al. 2024) as its loss, with R1 + R2",
        ),
        strengths=(
            "No mode-dropping local minima in the loss landscape (Huang et al. 2024, Sec. 2)",
            "G's gradient does not saturate when D wins, as with ns",
        ),
        weaknesses=(
            "G's loss needs a real batch too (one more critic pass per generator update)",
            "Unregularised it still circles around the equilibrium (Dirac-GAN: purely imaginary eigenvalues)",
        ),
        failure_modes=(
            "Oscillation of `d_real - d_fake` without convergence, as in the unregularised Dirac-GAN",
            "With a batch-norm critic the pairing couples all samples of the batch",
        ),
        source="Jolicoeur-Martineau 2018, 'The relativistic discriminator: a key element missing from standard "
        "GAN', arXiv:1807.00734, Sec. 4; Huang et al. 2024, arXiv:2501.05441, Sec. 2 (section and equation numbers "
        "unchecked)",
        compare_command="losslab compare --data ring8 --losses rpgan,ns,r3gan --seeds 3 --out explain-rpgan",
        figure=RELATIVISTIC,
    ),
    "r3gan": Explanation(
        name="r3gan",
        family="gan",
        formula_text=(
            "L_D = E[softplus(C(G(z)) - C(x))] + gamma/2 E_x[||grad_x C(x)||^2] + gamma/2 E_z[||grad C(G(z))||^2]\n"
            "L_G = E[softplus(C(x) - C(G(z)))]          (gamma = 0.05 for R1 and R2)"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L_D &= \mathbb{E}\big[\operatorname{softplus}(C(G(z)) - C(x))\big]"
            r" + \tfrac{\gamma}{2}\mathbb{E}_x\big[\|\nabla_x C(x)\|^2\big]"
            r" + \tfrac{\gamma}{2}\mathbb{E}_z\big[\|\nabla_{x} C(G(z))\|^2\big] \\"
            r"L_G &= \mathbb{E}\big[\operatorname{softplus}(C(x) - C(G(z)))\big]"
            r"\end{aligned}"
        ),
        derivation=(
            "R3GAN (Huang et al. 2024) is a modern minimal baseline: the relativistic paired loss (rpgan), "
            "which avoids mode-dropping minima, made locally convergent by the zero-centred penalties of "
            "Mescheder et al. on both the real (R1) and the generated (R2) samples. Their analysis shows that "
            "RpGAN + R1 + R2 is locally convergent, and that R1 alone was not enough in their experiments. "
            "On the Dirac-GAN the two penalties add `gamma psi^2` to the critic's loss, so the eigenvalues are "
            "`-gamma +- sqrt(gamma^2 - 1/4)`: a damped rotation that converges for every `gamma > 0`.\n\n"
            "The paper trains modern ConvNets with this loss and no other tricks. `gamma` is data dependent "
            "and decays during training in their presets (0.05 -> 0.005 for CIFAR-10 up to 150 -> 15 for "
            "FFHQ-256); losslab keeps the CIFAR-10 start, 0.05, constant, with Adam lr 2e-4 and betas (0, 0.9)."
        ),
        used_by=(
            "Huang et al. 2024: StackedMNIST (all 1000 modes), FFHQ, ImageNet and CIFAR-10 without StyleGAN's tricks",
        ),
        strengths=(
            "Convergent and mode-covering by construction: RpGAN's landscape with R1 + R2's local convergence",
            "Few hyperparameters (one `gamma`), one critic step per generator step",
        ),
        weaknesses=(
            "Two extra backward passes per critic update and a real batch for the generator",
            "`gamma` must be scaled to the data: too small leaves the rotation, too large flattens the critic",
        ),
        failure_modes=(
            "Slow, damped oscillation of `d_real - d_fake` when `gamma` is small (Dirac-GAN: decay rate gamma)",
            "Weak generator signal when `gamma` is too large for the data's scale",
        ),
        source="Huang et al. 2024, 'The GAN is dead; long live the GAN! A Modern Baseline GAN', arXiv:2501.05441, "
        "Sec. 2 (and the presets of its reference code); Jolicoeur-Martineau 2018, arXiv:1807.00734; "
        "Mescheder et al. 2018, arXiv:1801.04406, Sec. 4.1 (section numbers unchecked)",
        compare_command="losslab compare --data ring8 --losses r3gan,rpgan,r1,ns --seeds 3 --out explain-r3gan",
        figure=RELATIVISTIC,
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
        figure=EBGAN,
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
        figure=BEGAN,
    ),
}


# --------------------------------------------------------------------------- the Dirac-GAN

DIRAC_PAPER: dict[str, str] = {
    "minimax": "unregularised GAN: eigenvalues +- f'(0) i = +- i/2, purely imaginary; simultaneous gradient descent "
    "diverges and alternating gradient descent does not converge (Mescheder et al., Sec. 2)",
    "ns": "the non-saturating loss has the same Jacobian at the equilibrium as the unregularised GAN: +- i/2, "
    "not convergent (Sec. 2)",
    "wgan": "WGAN: f(t) = t, eigenvalues +- i; with a finite number of critic updates and clipping, not "
    "convergent in general (Sec. 3)",
    "wgan-gp": "WGAN-GP: the penalty (|psi| - 1)^2 is not zero-centred, the field is not differentiable at the "
    "equilibrium; not locally convergent in general (Sec. 3)",
    "lsgan": "not analysed in the paper",
    "hinge": "not analysed in the paper; near the equilibrium both hinge terms are linear, so its field there is "
    "WGAN's: eigenvalues +- i",
    "dragan": "not analysed as such; its penalty is WGAN-GP's (|grad D| - 1)^2, so the same jump at psi = 0",
    "r1": "R1 (zero-centred gradient penalty): eigenvalues -gamma/2 +- sqrt(gamma^2/4 - f'(0)^2), locally "
    "convergent for every gamma > 0 (Sec. 4.1)",
    "rpgan": "not analysed there; on the Dirac-GAN (C(x) = 0) it is the ns field: +- i/2",
    "r3gan": "R1 + R2 add gamma psi^2 to the critic's loss: eigenvalues -gamma +- sqrt(gamma^2 - 1/4), "
    "convergent (Mescheder et al. Sec. 4.1; Huang et al. 2024, Sec. 2)",
}
"""What the papers say each GAN loss should do on the Dirac-GAN (the explanation's and the docs' comparison)."""

DIRAC_NOT_LINEAR = ("the Dirac-GAN needs a critic D(x) = psi x with one value per sample; this loss's critic is "
                    "an autoencoder whose energy has no linear form, so no field is drawn for it")

DIRAC_LINEAR_WORDS = {
    "converges": "locally convergent: every eigenvalue has a negative real part",
    "circles": "purely imaginary eigenvalues: the continuous flow circles; gradient descent does not converge",
    "diverges": "an eigenvalue with a positive real part: the equilibrium repels",
    "undecided": "zero eigenvalues: the linearisation decides nothing (the trajectory does)",
    "jumps": "no Jacobian: the field jumps at psi = 0, (0, 0) is not a zero of its one-sided limits",
}

RING8_OBSERVED = (
    "`losslab compare --data ring8 --losses ns,wgan-gp,hinge,rpgan,r3gan --seeds 3 --quiet` (3,000 generator "
    "updates, seeds 0-2, on a shared 2-core CPU): r3gan had the lowest mean W1, 0.146 (95% CI 0.095 to 0.196; "
    "per seed 0.133, 0.135, 0.169) and all 8 modes in every seed; then hinge 0.243 (0.434, 0.133, 0.161), "
    "wgan-gp 0.256 (all 8 modes, but 9% high-quality samples against 35% for r3gan), ns 0.589 (one seed at "
    "1.23 with 7 modes) and rpgan 1.119 (1.04 to 1.25, 6 to 8 modes). The verdict was 'undertrained' (7 of 15 "
    "runs met the convergence rule) with best group r3gan, hinge, wgan-gp, ns: only rpgan was significantly "
    "worse than r3gan (Holm-adjusted p = 0.011). What the Dirac-GAN separates, the runs separated too: the "
    "same relativistic pairing without a penalty (rpgan, eigenvalues +- i/2) was last, above W1 1.0 on every "
    "seed, with R1 + R2 (r3gan, a damped rotation) first and the tightest across seeds. The same five losses on grid25 ranked "
    "r3gan 0.693, hinge 0.836, wgan-gp 1.060, rpgan 1.077, ns 1.095 (mean W1, 3 seeds each): no clear "
    "winner, ns significantly worse than r3gan (p = 0.007). One budget, three seeds, two toys: a sign, "
    "not a law."
)
"""What the ring8 comparison of ns, wgan-gp, hinge, rpgan and r3gan showed (from its results.json)."""


def dirac_summary(name: str) -> str:
    """The Dirac-GAN paragraph of ``losslab explain NAME`` for a GAN loss (linearisation only: cheap)."""
    if not dirac.applies(name):
        return DIRAC_NOT_LINEAR + "."
    a = dirac.analyse(name)
    return (f"Exact field from the loss's own functions (autograd). Jacobian at the equilibrium (0, 0): "
            f"eigenvalues {a.eigen_text()}; {DIRAC_LINEAR_WORDS[a.verdict]}. The paper: {DIRAC_PAPER[name]}. "
            f"--plot adds the field and a simulated trajectory (alternating gradient descent, the loss's own "
            f"learning-rate ratio and n_critic) and says whether it converges, circles, stalls or diverges.")


FIGURES = (DIRAC,)
"""Figures of the page besides the explanations' own (written by scripts/make_docs.py)."""


def appendix() -> str:
    """The page's closing section: the Dirac-GAN comparison (Markdown)."""
    rows = []
    for name in (n for n in EXPLANATIONS if dirac.applies(n)):
        a = dirac.analyse(name)
        rows.append(f"| `{name}` | {a.eigen_text()} | {a.verdict} | {DIRAC_PAPER[name]} |")
    observed = RING8_OBSERVED or "(not run yet)"
    return "\n".join([
        "## The Dirac-GAN: which losses converge",
        "",
        "Mescheder et al. (2018, arXiv:1801.04406, Sec. 2; section number unchecked) reduce GAN training to "
        "two numbers: the data are a "
        "Dirac at 0, the generator a Dirac at `theta`, the critic is linear, `D(x) = psi x`, and the only "
        "equilibrium is `(0, 0)`. Here every loss's field `v = (-dL_G/dtheta, -dL_D/dpsi)` is computed from "
        "its own functions and penalties in `src/losslab/losses/` with autograd "
        "(`src/losslab/explain/dirac.py`); the eigenvalues are those of its Jacobian at `(0, 0)` "
        "(`torch.autograd.functional.jacobian`; for wgan-gp and dragan, whose field jumps at `psi = 0`, the "
        "one-sided ones). The trajectories are alternating gradient descent as losslab's step trains (n_critic "
        "critic steps with clipping, then one generator step) with each loss's own learning-rate ratio and "
        "n_critic, scaled to a step of at most 0.2 (the paper's notebook). ebgan and began have autoencoder "
        f"critics and no linear form. `losslab explain NAME --plot FILE.png` draws any loss's field; here "
        f"{', '.join(COMPARED)} side by side.",
        "",
        f"![{DIRAC.key}](img/{DIRAC.file_name})",
        "",
        f"*{DIRAC.caption}*",
        "",
        "| loss | eigenvalues at (0, 0) | linearisation | what the paper says |",
        "|---|---|---|---|",
        *rows,
        "",
        "### What the ring8 runs then showed",
        "",
        observed,
    ])
