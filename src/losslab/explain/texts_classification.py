"""The classification losses explained: the ``classification`` docs page and ``losslab explain NAME``.

:data:`PAGE` is the page's title and introduction, :data:`EXPLANATIONS` maps each loss name
to its :class:`~losslab.explain.explanation.Explanation`, which names the figure that
``losslab explain NAME --plot FILE.png`` draws.

Text conventions: inline mathematics is written between backticks (a code
span in Markdown; the backticks are dropped in the terminal).
"""

from __future__ import annotations

from losslab.explain.explanation import Explanation
from losslab.explain.figures import BINARY, FOCAL, SOFTMAX

# the docs page: (title, introduction)
PAGE: tuple[str, str] = (
    "Classification losses",
    "Cross-entropy losses and their building blocks, written to stay finite at any logit: "
    "`sigmoid`, `softplus`, `logit`, `softmax` and `log_softmax` in "
    "`src/losslab/losses/classification.py` evaluate only `exp(-|z|)` or `exp(z - max z)`, never "
    "an exponential that can overflow. `z` is a logit, `p = sigmoid(z)` or `softmax(z)`, `y` the "
    "target. Every loss is the batch mean in nats and is checked against `torch.nn.functional` "
    "in `tests/test_classification.py`.",
)

EXPLANATIONS: dict[str, Explanation] = {
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
        figure=BINARY,
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
        figure=BINARY,
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
        figure=SOFTMAX,
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
        figure=SOFTMAX,
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
        figure=FOCAL,
    ),
}
