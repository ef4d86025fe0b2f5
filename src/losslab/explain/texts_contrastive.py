"""The contrastive losses explained: the ``contrastive`` docs page and ``losslab explain NAME``.

:data:`PAGE` is the page's title and introduction, :data:`EXPLANATIONS` maps each loss name
to its :class:`~losslab.explain.explanation.Explanation`, which names the figure that
``losslab explain NAME --plot FILE.png`` draws.

Text conventions: inline mathematics is written between backticks (a code
span in Markdown; the backticks are dropped in the terminal).
"""

from __future__ import annotations

from losslab.explain.explanation import Explanation
from losslab.explain.figures import CONTRASTIVE

# the docs page: (title, introduction)
PAGE: tuple[str, str] = (
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
    "`src/losslab/losses/contrastive.py`, registered in `CONTRASTIVE_LOSSES` with their defaults. "
    "SigLIP (a sigmoid on every pair of the batch), Barlow Twins and VICReg (no negatives at all, "
    "collapse prevented by batch statistics) are in `src/losslab/losses/contrastive_ssl.py`; Barlow "
    "Twins and VICReg act on the raw embeddings. The report's diagnostics show every loss's collapse "
    "measures: the per-dimension std of the embedding and its off-diagonal covariance.",
)

EXPLANATIONS: dict[str, Explanation] = {
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
        figure=CONTRASTIVE,
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
        figure=CONTRASTIVE,
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
        figure=CONTRASTIVE,
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
        figure=CONTRASTIVE,
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
        figure=CONTRASTIVE,
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
        figure=CONTRASTIVE,
    ),
    "clip": Explanation(
        name="clip",
        family="contrastive",
        formula_text=(
            "logits_ij = s cos(I_i, T_j),   s = exp(t) learned, initialised to 1/0.07 = 14.3, clipped at 100\n"
            "CLIP:      L = ( CE(logits, target = i) + CE(logits^T, target = i) ) / 2   (image -> text and text -> image)\n"
            "losslab:   q_ik = [y_k = y_i] / |P(i)|,  P(i) = {k : y_k = y_i}   (every same-class caption a positive)\n"
            "           L = ( KL(q || softmax(logits)) + KL(q || softmax(logits^T)) ) / 2,  averaged over rows"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"\ell_{ij} &= s \cos(I_i, T_j), \qquad s = e^{t} \in (0, 100], \quad s_0 = 1/0.07 \\"
            r"L &= \frac{1}{2N}\sum_i \Big[-\log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}}}"
            r" - \log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ji}}}\Big] \quad \text{(CLIP)} \\"
            r"q_{ik} &= \frac{[y_k = y_i]}{|P(i)|}, \qquad "
            r"L = \frac{1}{2N}\sum_i \Big[\mathrm{KL}\big(q_i \,\|\, \mathrm{softmax}(\ell_{i\cdot})\big)"
            r" + \mathrm{KL}\big(q_i \,\|\, \mathrm{softmax}(\ell_{\cdot i})\big)\Big] \quad \text{(losslab, UniCL targets)}"
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
            "their class: with CLIP's targets (`target = i`) the other captions of the image's class are "
            "negatives, and with `c` images of its class in the batch a perfect class embedding still pays "
            "`log c` (1.93 nats on average for batches of 64 from 10 classes) and is pushed to tell apart "
            "captions that say the same thing. losslab therefore uses UniCL's label-aware targets (Yang et al. "
            "2022): every caption of the image's class is a positive, the target is the uniform distribution "
            "`q_i` over them, in both directions. The value reported is the cross-entropy against `q` minus the "
            "entropy of `q` (`log |P(i)|`, fixed by the labels), i.e. a KL divergence: the same gradients as "
            "UniCL's loss, and 0 for a perfect class embedding. With all labels distinct it is CLIP's loss. "
            "Batches hold distinct images, so no image meets itself as a negative."
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
            "Plain CLIP treats duplicate captions in a batch (few classes, short prompts) as negatives; the "
            "label-aware targets used here need the class labels",
        ),
        failure_modes=(
            "The learned scale runs to the clip at 100 and the logits become very sharp",
            "False negatives (plain CLIP targets): same-class images or repeated captions in a batch put a floor "
            "`log c` under the loss",
            "Collapse or no signal: all logits equal gives exactly `L = log N`",
        ),
        source="Radford et al. 2021, 'Learning Transferable Visual Models From Natural Language Supervision' "
        "(CLIP), arXiv:2103.00020, Figure 3, Sec. 2.5; Yang et al. 2022, 'Unified Contrastive Learning in "
        "Image-Text-Label Space' (UniCL), arXiv:2204.03610, Sec. 3.2 (label-aware targets, L_BiC)",
        compare_command="losslab compare --family contrastive --data digits --losses clip,supcon,nt-xent --seeds 3 "
        "--out explain-clip",
        figure=CONTRASTIVE,
    ),
    "siglip": Explanation(
        name="siglip",
        family="contrastive",
        formula_text=(
            "logits_ij = t cos(x_i, y_j) + b,   t = exp(t'),   z_ij = +1 if i = j else -1\n"
            "L = -(1/n) sum_{i, j} log sigmoid(z_ij logits_ij)   (all n^2 pairs; sum / n, not a mean)\n"
            "inputs: x_i, y_i the projections of the two augmented views of image i (normalised inside); "
            "t' and b learned with the encoder\n"
            "defaults: t' = log 10 (t = 10), b = -10 (Algorithm 1, Sec. 3.2); Adam 1e-3"
        ),
        formula_latex=(
            r"L = -\frac{1}{n}\sum_{i=1}^{n}\sum_{j=1}^{n}\log\sigma\big(z_{ij}\,(t\,\cos(x_i, y_j) + b)\big),"
            r"\quad t = e^{t'},\ z_{ij} = \begin{cases} 1 & i = j \\ -1 & i \ne j \end{cases},\quad"
            r" t'_0 = \log 10,\ b_0 = -10"
        ),
        derivation=(
            "SigLIP replaces CLIP's softmax over the batch by an independent binary decision for every pair: "
            "is `(x_i, y_j)` a matched pair? Each of the `n^2` pairs is a logistic regression on "
            "`t cos + b`, the `n` matched pairs positive and the `n^2 - n` others negative (Algorithm 1). "
            "No normalisation over the batch couples the pairs, so the loss needs no global view of the "
            "batch and scales to very large batches with little memory (Sec. 3.3).\n\n"
            "It is the principled form of the study's `pairwise-bce`, which also classifies pairs by a "
            "sigmoid of their cosine. Three things differ. (1) All pairs: `pairwise-bce` scores `n` "
            "positive and `n` negative pairs per batch, SigLIP every one of the `n^2 - n` negatives the batch "
            "holds, for the same encoder passes. (2) The imbalance that brings: with `n - 1` negatives per "
            "positive, a model that starts at 'probably the same' pays `log 2` on each of `n^2` pairs; the "
            "bias `b = -10` starts every logit near `10 cos - 10 <= 0`, i.e. at the prior 'different', so "
            "the many easy negatives cost about nothing and the initial gradient comes from the positives "
            "(Sec. 3.2: without it training starts with large corrections). `pairwise-bce` has no bias and "
            "balanced pairs, so it needs neither. (3) The learned temperature `t` (from 10): `pairwise-bce` "
            "uses `cos / tau` with `tau = 1`, which confines its logit to [-1, 1] and the loss to at least "
            "`softplus(-1) = 0.31` per pair; SigLIP learns how sharp its logits should be."
        ),
        used_by=(
            "SigLIP and SigLIP 2 image-text encoders (Zhai et al. 2023; Tschannen et al. 2025, "
            "arXiv:2502.14786), the vision towers of PaliGemma and many open vision-language models",
        ),
        strengths=(
            "Pairs are independent: no softmax over the batch, memory-light, works at small and very large "
            "batch sizes alike",
            "Every negative of the batch is used, with a bias that keeps their number from swamping the loss",
        ),
        weaknesses=(
            "The loss value grows with the batch size (a sum over n pairs per row): compare values only at "
            "one batch size",
            "Two more scalars to learn; a bad bias initialisation gives a long, noisy start",
        ),
        failure_modes=(
            "With b = 0 instead of -10: a large initial loss dominated by the n^2 - n negatives, which push all "
            "embeddings apart before the positives are aligned",
            "The learned bias drifting far below -10 with t small: every pair is called negative and the "
            "positives stop pulling (watch learned_bias and learned_t_prime in the diagnostics)",
        ),
        source="Zhai, Mustafa, Kolesnikov, Beyer 2023, 'Sigmoid Loss for Language Image Pre-Training', "
        "arXiv:2303.15343, Algorithm 1, Sec. 3.2-3.3 (numbers unchecked)",
        compare_command="losslab compare --family contrastive --data digits --losses siglip,pairwise-bce --seeds 3 "
        "--out explain-siglip",
        figure=CONTRASTIVE,
    ),
    "barlow-twins": Explanation(
        name="barlow-twins",
        family="contrastive",
        formula_text=(
            "C_ij = sum_b zA_bi zB_bj / N,   zA, zB = the two views' embeddings standardised over the batch "
            "(mean 0, std 1 per dimension)\n"
            "L = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2\n"
            "inputs: the raw (not L2-normalised) projections of two augmented views, N x D\n"
            "defaults: lambda = 5e-3 (the paper's, for D = 8,192; here D = 64); Adam 1e-3"
        ),
        formula_latex=(
            r"\mathcal{C}_{ij} = \frac{1}{N}\sum_b \hat z^A_{b,i}\, \hat z^B_{b,j},\qquad "
            r"L = \sum_i (1 - \mathcal{C}_{ii})^2 + \lambda \sum_i \sum_{j \ne i} \mathcal{C}_{ij}^2,"
            r"\quad \lambda = 5\cdot 10^{-3}"
        ),
        derivation=(
            "Barlow Twins has no negatives. It asks the cross-correlation matrix of the two views' "
            "embeddings, computed over the batch, to be the identity: the diagonal term makes each "
            "dimension invariant to the augmentations (the two views agree, correlation 1), the "
            "off-diagonal term makes different dimensions carry different information (redundancy "
            "reduction, after Barlow's 1961 principle; Eqs. 1-2). A collapsed encoder (a constant output) "
            "cannot satisfy the diagonal term, because standardising a constant dimension is undefined and "
            "its correlations cannot reach 1; a dimensionally collapsed one (all dimensions copies of one) "
            "pays the off-diagonal term. So the batch statistics, not negative pairs, prevent collapse.\n\n"
            "Algorithm 1 standardises with the unbiased std and then divides by N, so a perfect pair of "
            "views reaches `C_ii = (N - 1) / N`, not 1 (the authors' code uses a BatchNorm, the biased std, "
            "where it reaches 1); with D = 64 and N = 128 the difference is a loss floor of `D / N^2 = 0.004`."
        ),
        used_by=(
            "Barlow Twins (Zbontar et al. 2021) on ImageNet with an 8,192-d projector",
            "The redundancy-reduction family it started: VICReg, W-MSE, and decorrelation terms in SSL for "
            "speech and medical images",
        ),
        strengths=(
            "No negatives, no momentum encoder, no stop-gradient: symmetric and simple",
            "Works at small batch sizes; benefits from wide projectors",
        ),
        weaknesses=(
            "Needs a batch large enough to estimate a D x D correlation matrix (N well above D is safest)",
            "lambda depends on D; the paper's 5e-3 was set for D = 8,192",
        ),
        failure_modes=(
            "Dimensional collapse: the off-diagonal correlations stay high (z_corr_offdiag near 1 in the "
            "diagnostics) while the diagonal is satisfied by one shared direction",
            "A tiny per-dimension std (z_std near 0): standardisation amplifies noise and the loss is erratic",
        ),
        source="Zbontar, Jing, Misra, LeCun, Deny 2021, 'Barlow Twins: Self-Supervised Learning via Redundancy "
        "Reduction', arXiv:2103.03230, Eqs. 1-2, Algorithm 1 (numbers unchecked)",
        compare_command="losslab compare --family contrastive --data digits --losses barlow-twins,vicreg,nt-xent "
        "--seeds 3 --out explain-barlow-twins",
        figure=CONTRASTIVE,
    ),
    "vicreg": Explanation(
        name="vicreg",
        family="contrastive",
        formula_text=(
            "L = lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')]\n"
            "s = mean_{b, k} (z_bk - z'_bk)^2                      invariance (Algorithm 1's MSE)\n"
            "v(Z) = (1/D) sum_j max(0, gamma - sqrt(Var(z_j) + eps))   variance hinge\n"
            "c(Z) = (1/D) sum_{i != j} Cov(Z)_ij^2                 covariance\n"
            "inputs: Z, Z' the raw projections (N x D) of two augmented views\n"
            "defaults: lambda = mu = 25, nu = 1, gamma = 1, eps = 1e-4 (the paper's); Adam 1e-3"
        ),
        formula_latex=(
            r"\begin{aligned}"
            r"L &= \lambda\, s(Z, Z') + \mu\,[v(Z) + v(Z')] + \nu\,[c(Z) + c(Z')] \\"
            r"v(Z) &= \frac1D \sum_j \max\big(0, \gamma - \sqrt{\mathrm{Var}(z^j) + \epsilon}\big),\quad"
            r" c(Z) = \frac1D \sum_{i \ne j} C(Z)_{ij}^2,\quad s = \frac{1}{ND}\sum_{b,k} (z_{bk} - z'_{bk})^2"
            r"\end{aligned}"
        ),
        derivation=(
            "VICReg splits what Barlow Twins asks of one correlation matrix into three explicit terms. "
            "Invariance pulls the two views' embeddings together (a plain mean squared error, which alone "
            "would collapse everything to one point). Variance keeps each dimension's standard deviation "
            "over the batch at least gamma = 1 with a hinge, so a constant output is penalised directly. "
            "Covariance drives the off-diagonal covariances to 0, so dimensions do not copy each other "
            "(Eqs. 1-6). Unlike Barlow Twins nothing is standardised, so the scale of the embedding is "
            "pinned by the variance term, and the two branches need not share weights.\n\n"
            "Conventions: the invariance term is Algorithm 1's mean over the N x D entries (Eq. 5 writes "
            "the per-sample sum, D times larger); the variance terms are not halved as in the authors' code. "
            "Equation numbers are as cited from memory of the paper: unchecked against the PDF."
        ),
        used_by=(
            "VICReg (Bardes et al. 2022) and VICRegL; the variance-covariance terms recur in JEPA-style "
            "self-supervised models (I-JEPA, V-JEPA regularisers) and in audio and graph SSL",
        ),
        strengths=(
            "Each collapse mode has its own visible term: the diagnostics say which guard is working",
            "No negatives, no batch-wide normalisation; works with different architectures in the two branches",
        ),
        weaknesses=(
            "Three coefficients to balance; the paper's 25 / 25 / 1 were tuned for its 8,192-d projector",
            "The covariance term costs D^2 per batch",
        ),
        failure_modes=(
            "Complete collapse (z_std falling towards 0 and the variance term stuck at mu x 2 x gamma): the "
            "invariance term won",
            "Dimensional collapse: z_std held at gamma but z_corr_offdiag high, the covariance term too weak",
        ),
        source="Bardes, Ponce, LeCun 2022, 'VICReg: Variance-Invariance-Covariance Regularization for "
        "Self-Supervised Learning', arXiv:2105.04906, Eqs. 1-6, Algorithm 1 (numbers unchecked)",
        compare_command="losslab compare --family contrastive --data digits --losses vicreg,barlow-twins,nt-xent "
        "--seeds 3 --out explain-vicreg",
        figure=CONTRASTIVE,
    ),
}
