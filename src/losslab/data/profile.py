"""The data profile: what a dataset is like, measured once per comparison.

:func:`profile` returns a JSON-ready ``dict`` of flat fields, one figure each,
and a sibling ``methods`` dict that names, for every figure, how it was
computed and where the method comes from::

    {"name": "ring8", "kind": "vector", "num_modes": 8, ...,
     "methods": {"num_modes": {"method": "...", "source": "..."}, ...},
     "advice": [...]}

Fields (``None`` where a field does not apply, e.g. ``channels`` for vectors):

``name, kind, shape, dim, n_samples, n_used, seed``
    ``kind`` is ``"vector"`` or ``"image"``; ``dim`` is ``d`` or ``C*H*W``;
    ``n_samples`` counts the training rows, ``n_used`` the seeded subsample
    (at most ``max_samples``) that the estimators below see.
``num_modes`` (int), ``num_modes_capped`` (bool)
    Vectors and unlabelled images: the number of components of a Gaussian
    mixture chosen by BIC (scikit-learn ``GaussianMixture``); labelled images:
    the number of classes. ``num_modes_capped`` says the search hit its cap
    (read the count as "at least").
``separation_min, separation_median``
    Minimum and median distance between mode centres over the pooled
    within-mode standard deviation (``None`` for one mode).
``intrinsic_dim``
    TwoNN (Facco et al. 2017).
``kurtosis_max, kurtosis_mean, outlier_share, heavy_tailed``
    Tails: excess kurtosis per dimension; share of entries beyond 3 robust
    standard deviations (median / MAD) of the median.
``channels, height, width, sparsity, sparsity_threshold, mean_intensity, class_balance``
    Images only (``class_balance`` wherever there are labels).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from losslab.data import Dataset
from losslab.data.advice import advise
from losslab.errors import UserError

__all__ = [
    "DEFAULT_MAX_SAMPLES",
    "MAX_MODES",
    "OUTLIER_Z",
    "SPARSITY_THRESHOLD",
    "class_balance",
    "estimate_num_modes",
    "format_profile",
    "mode_separation",
    "profile",
    "tail_statistics",
    "twonn_dimension",
]

DEFAULT_MAX_SAMPLES = 2000
MAX_MODES = 30  # cap of the BIC search over k = 1..MAX_MODES
PATIENCE = 4  # stop the BIC search this many k past the best k so far
MAX_FIT_DIM = 10  # mixtures are fitted on at most this many principal components
OUTLIER_Z = 3.0  # robust z beyond which an entry counts as an outlier
HEAVY_TAIL_SHARE = 0.01  # outlier share that flags heavy tails (a Gaussian gives 0.27%)
SPARSITY_THRESHOLD = 0.02  # per-pixel std in [-1, 1] units (1% of the pixel range)
MIN_SAMPLES = 10

GMM_SOURCE = (
    "scikit-learn GaussianMixture (EM, k-means init); BIC: Schwarz 1978, Ann. Statist. 6(2):461-464"
)
TWONN_SOURCE = "Facco et al. 2017, Sci. Rep. 7:12140, arXiv:1803.06992 (TwoNN)"


# ---------------------------------------------------------------------------------------------
# Estimators (numpy in, numbers out; each usable alone)
# ---------------------------------------------------------------------------------------------


def estimate_num_modes(
    x: np.ndarray, *, seed: int = 0, max_modes: int = MAX_MODES, patience: int = PATIENCE, n_init: int = 2
) -> dict:
    """Number of modes of ``x``: the Gaussian-mixture size that minimises BIC.

    Each column is standardised (an affine map, which leaves the mixture fit
    unchanged up to the tiny covariance regulariser and makes it unit-free),
    then ``GaussianMixture(k, covariance_type="full", n_init=n_init,
    random_state=seed)`` is fitted for ``k = 1, 2, ...`` up to ``max_modes``,
    stopping ``patience`` values of ``k`` after the best BIC so far. BIC counts
    mixture components: a single non-Gaussian blob (uniform, skewed) can need
    several components, so read the count as "Gaussian components".

    Parameters
    ----------
    x : ndarray
        ``(N, d)`` samples, ``N >= 2``.
    seed : int
        Seeds every fit (deterministic).
    max_modes : int
        Largest ``k`` tried; also capped at ``N // 10`` (at least 1).

    Returns
    -------
    dict
        ``k`` (int), ``capped`` (bool: the best ``k`` was the largest tried and
        the search could not go further), ``means`` ``(k, d)`` and
        ``covariances`` ``(k, d, d)`` in the units of ``x``, ``weights`` ``(k,)``,
        ``bic`` (dict k -> BIC).

    Source: scikit-learn ``GaussianMixture``; BIC of Schwarz 1978.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    mu, s = x.mean(axis=0), x.std(axis=0)
    s = np.where(s > 0, s, 1.0)
    z = (x - mu) / s
    k_top = max(1, min(int(max_modes), n // 10))
    bics: dict[int, float] = {}
    best_k, best_fit = 1, None
    # Small matrices: BLAS threads only add overhead. A k larger than the number of distinct
    # points warns (ConvergenceWarning); BIC then rejects that k, so the warning is noise here.
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in range(1, k_top + 1):
            gm = GaussianMixture(k, covariance_type="full", n_init=n_init, random_state=seed, reg_covar=1e-6)
            gm.fit(z)
            bics[k] = float(gm.bic(z))
            if best_fit is None or bics[k] < bics[best_k]:
                best_k, best_fit = k, gm
            if k - best_k >= patience:
                break
    capped = best_k == k_top and k_top < n  # the optimum may lie beyond the cap
    means = best_fit.means_ * s + mu  # (k, d) back to data units
    covs = best_fit.covariances_ * s[None, :, None] * s[None, None, :]  # (k, d, d): S Sigma S
    return {"k": best_k, "capped": bool(capped and best_k > 1), "means": means, "covariances": covs,
            "weights": best_fit.weights_.copy(), "bic": bics}


def mode_separation(means: np.ndarray, variances: np.ndarray, weights: np.ndarray) -> tuple[float, float] | None:
    """Minimum and median distance between mode centres in units of the pooled within-mode std.

    ``sigma_pooled = sqrt(sum_k w_k v_k)`` where ``v_k`` is mode ``k``'s mean
    per-dimension variance (``trace(Sigma_k) / d``); the pairwise Euclidean
    distances ``||mu_i - mu_j||`` (i < j) are divided by it. For two isotropic
    Gaussians of std ``sigma`` the overlap depends only on this ratio (project
    on the line through the means), whatever the dimension; for elongated modes
    it overstates the separation. The 8-mode ring (neighbours 1.53 apart,
    std 0.02) gives about 77.

    Parameters
    ----------
    means : ndarray
        ``(K, d)`` centres.
    variances : ndarray
        ``(K,)`` mean per-dimension variance of each mode.
    weights : ndarray
        ``(K,)`` mode weights (normalised here).

    Returns
    -------
    (float, float) or None
        ``(min, median)``; ``None`` when ``K < 2`` or the pooled std is 0.
    """
    means = np.asarray(means, dtype=np.float64)
    if len(means) < 2:
        return None
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    sigma = math.sqrt(float(np.sum(w * np.asarray(variances, dtype=np.float64))))
    if not sigma > 0:
        return None
    dist = pdist(means)  # (K(K-1)/2,) Euclidean distances, i < j
    return float(dist.min() / sigma), float(np.median(dist) / sigma)


def twonn_dimension(x: np.ndarray, *, discard_fraction: float = 0.1) -> float:
    """Intrinsic dimension by TwoNN: the linear fit of Facco et al. 2017.

    For each point, ``mu = r2 / r1``, the ratio of its second to first
    nearest-neighbour distance (scikit-learn ``NearestNeighbors``, the point
    itself excluded). On a locally uniform ``d``-dimensional manifold ``mu`` is
    Pareto: ``F(mu) = 1 - mu^(-d)``, so ``-log(1 - F(mu)) = d log(mu)``. The
    empirical ``F(mu_(i)) = i / N`` of the sorted ratios is fitted by a line
    through the origin after discarding the largest ``discard_fraction`` of the
    ratios (the paper's 10%); the slope is ``d``. Points with ``r1 = 0``
    (duplicates) are dropped.

    Parameters
    ----------
    x : ndarray
        ``(N, D)`` points, at least 3 distinct.
    discard_fraction : float
        Share of the largest ratios left out of the fit, in ``[0, 1)``.

    Returns
    -------
    float
        The estimated dimension (``nan`` when fewer than 3 points have ``r1 > 0``).

    Source: Facco, d'Errico, Rodriguez, Laio 2017, Sci. Rep. 7:12140,
    arXiv:1803.06992, Eq. 3 and the fit of Fig. 1 (discarding 10%).
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 3:
        return float("nan")
    dist, _ = NearestNeighbors(n_neighbors=2).fit(x).kneighbors()  # (N, 2), self excluded
    keep = dist[:, 0] > 0
    if keep.sum() < 3:
        return float("nan")
    mu = np.sort(dist[keep, 1] / dist[keep, 0])  # (N',) ascending
    n = len(mu)
    f = np.arange(1, n + 1) / n  # empirical CDF F(mu_(i))
    m = max(2, int(math.floor(n * (1.0 - discard_fraction))))
    m = min(m, n - 1)  # F = 1 at the last point: -log(0) is infinite
    xs, ys = np.log(mu[:m]), -np.log1p(-f[:m])
    denom = float(np.dot(xs, xs))
    return float(np.dot(xs, ys) / denom) if denom > 0 else float("nan")


def tail_statistics(x: np.ndarray, *, z: float = OUTLIER_Z) -> dict:
    """Heavy tails and outliers of ``(N, d)`` data, per dimension.

    * excess kurtosis (Fisher, bias-corrected, ``scipy.stats.kurtosis``) of each
      column with positive variance; 0 for a Gaussian, 6 for Laplace, infinite
      for Student-t with 4 or fewer degrees of freedom: its max and mean;
    * ``outlier_share``: the share of entries ``|x_ij - median_j| > z * 1.4826 * MAD_j``
      over the columns with ``MAD_j > 0`` (0.27% for a Gaussian at ``z = 3``;
      1.4826 MAD estimates the std of a normal);
    * ``heavy_tailed``: ``outlier_share > 0.01`` (about 4x the Gaussian share).

    Returns
    -------
    dict
        ``kurtosis_max``, ``kurtosis_mean``, ``outlier_share`` (floats, ``None``
        when no column varies) and ``heavy_tailed`` (bool).
    """
    x = np.asarray(x, dtype=np.float64)
    var_ok = x.std(axis=0) > 0
    kurt_max = kurt_mean = None
    if var_ok.any() and len(x) >= 4:
        k = stats.kurtosis(x[:, var_ok], axis=0, fisher=True, bias=False)
        kurt_max, kurt_mean = float(np.max(k)), float(np.mean(k))
    med = np.median(x, axis=0)
    mad = np.median(np.abs(x - med), axis=0)  # (d,)
    ok = mad > 0
    share = None
    if ok.any():
        robust_std = 1.4826 * mad[ok]
        share = float(np.mean(np.abs(x[:, ok] - med[ok]) > z * robust_std))
    heavy = share is not None and share > HEAVY_TAIL_SHARE
    return {"kurtosis_max": kurt_max, "kurtosis_mean": kurt_mean, "outlier_share": share, "heavy_tailed": heavy}


def class_balance(labels: np.ndarray, num_classes: int | None = None) -> dict:
    """Class counts, the min/max count ratio and the normalised entropy ``H / log K``.

    Parameters
    ----------
    labels : ndarray
        ``(N,)`` integer class indices in ``0..K-1``.
    num_classes : int, optional
        ``K``; default ``max(labels) + 1``. Classes with no sample count 0.

    Returns
    -------
    dict
        ``counts`` (list of int, length K), ``min_max_ratio`` (1 = balanced),
        ``normalized_entropy`` (1 = balanced; ``H = -sum p log p`` in nats over
        ``log K``; 1.0 when ``K = 1``).
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k)[:k]
    p = counts / counts.sum()
    nz = p[p > 0]
    h = float(-(nz * np.log(nz)).sum())
    return {
        "counts": [int(c) for c in counts],
        "min_max_ratio": float(counts.min() / counts.max()),
        "normalized_entropy": h / math.log(k) if k > 1 else 1.0,
    }


# ---------------------------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------------------------


def _subsample(n: int, max_samples: int, seed: int) -> np.ndarray:
    if n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))


def _pca(x: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    n_components = min(n_components, x.shape[0], x.shape[1])
    return PCA(n_components=n_components, random_state=seed).fit_transform(x)


def profile(dataset: Dataset, *, seed: int = 0, max_samples: int = DEFAULT_MAX_SAMPLES,
            max_modes: int = MAX_MODES) -> dict:
    """Profile ``dataset``: modes, their separation, intrinsic dimension, tails, image statistics.

    Every estimator runs on the same seeded subsample of at most
    ``max_samples`` training rows; image statistics (sparsity, mean intensity)
    and the class balance use every training row. Deterministic for a given
    ``seed``. A few seconds on two cores for the toys, digits and MNIST.

    Parameters
    ----------
    dataset : Dataset
        From :func:`losslab.data.load_dataset`.
    seed : int
        Seeds the subsample and every mixture fit.
    max_samples : int
        Rows the estimators see, >= 10.
    max_modes : int
        Cap of the BIC search, >= 1.

    Returns
    -------
    dict
        JSON-ready; the fields are listed in the module docstring, with
        ``methods`` (field -> ``{"method", "source"}``) and ``advice``
        (:func:`losslab.data.advice.advise`).

    Raises
    ------
    UserError
        Fewer than 10 training rows, ``max_samples < 10`` or ``max_modes < 1``.
    """
    if int(max_samples) < MIN_SAMPLES:
        raise UserError(f"max_samples must be >= {MIN_SAMPLES}, got {max_samples}")
    if int(max_modes) < 1:
        raise UserError(f"max_modes must be >= 1, got {max_modes}")
    train = dataset.train
    n = int(train.shape[0])
    if n < MIN_SAMPLES:
        raise UserError(f"{dataset.name}: {n} training rows; the profile needs at least {MIN_SAMPLES}")
    idx = _subsample(n, int(max_samples), seed)
    x = train[idx].reshape(len(idx), -1).double().numpy()  # (n_used, dim)
    dim = int(x.shape[1])
    labels = None if dataset.train_labels is None else dataset.train_labels.numpy()
    out: dict = {
        "name": dataset.name, "kind": dataset.kind, "shape": [int(s) for s in dataset.shape], "dim": dim,
        "n_samples": n, "n_used": int(len(idx)), "seed": int(seed),
    }
    methods: dict[str, dict[str, str]] = {}

    # 1. Modes: classes for labelled images, else a BIC-selected Gaussian mixture.
    if dataset.kind == "image" and labels is not None:
        k = int(dataset.num_classes or int(labels.max()) + 1)
        out.update(num_modes=k, num_modes_capped=False)
        methods["num_modes"] = {"method": "labelled images: the number of classes is the number of modes",
                                "source": "dataset labels"}
        lab = labels[idx]
        present = [c for c in range(k) if np.any(lab == c)]  # classes in the subsample
        means = np.stack([x[lab == c].mean(0) for c in present])  # (K', dim)
        sq = sum(float(((x[lab == c] - means[i]) ** 2).sum()) for i, c in enumerate(present))
        dof = dim * (len(lab) - len(present))  # pooled variance: one mean per class estimated
        pooled = sq / dof if dof > 0 else 0.0
        sep = mode_separation(means, np.full(len(present), pooled), np.ones(len(present)))
        methods["separation"] = {
            "method": "class means in pixel space (classes present in the subsample); min and median pairwise "
                      "distance over the pooled within-class std (squared deviations from the class means over "
                      "d (N - K) degrees of freedom)",
            "source": "losslab definition (distance between centres in within-mode standard deviations)"}
    else:
        fit_x, fit_note = x, "the data"
        if dim > MAX_FIT_DIM:
            fit_x = _pca(x, MAX_FIT_DIM, seed)
            fit_note = f"the first {fit_x.shape[1]} principal components"
        gm = estimate_num_modes(fit_x, seed=seed, max_modes=max_modes)
        out.update(num_modes=int(gm["k"]), num_modes_capped=gm["capped"])
        cap = " (cap reached: read as at least this many)" if gm["capped"] else ""
        methods["num_modes"] = {
            "method": f"Gaussian mixture (full covariance, standardised columns) on {fit_note}; k = 1..{max_modes} "
                      f"(stopping {PATIENCE} past the best), k minimising BIC{cap}",
            "source": GMM_SOURCE}
        variances = np.trace(gm["covariances"], axis1=1, axis2=2) / fit_x.shape[1]
        sep = mode_separation(gm["means"], variances, gm["weights"])
        methods["separation"] = {
            "method": f"fitted mixture on {fit_note}: min and median distance between component means over the "
                      "pooled within-component std sqrt(sum_k w_k trace(Sigma_k)/d)",
            "source": "losslab definition on the fit of " + GMM_SOURCE.split(";")[0]}
    out["separation_min"], out["separation_median"] = (None, None) if sep is None else sep

    # 2. Intrinsic dimension.
    out["intrinsic_dim"] = twonn_dimension(x)
    methods["intrinsic_dim"] = {
        "method": "TwoNN: ratio mu = r2/r1 of 2nd to 1st nearest-neighbour distance (scikit-learn NearestNeighbors), "
                  "linear fit through the origin of -log(1 - F(mu)) on log(mu), largest 10% discarded, duplicates "
                  "dropped",
        "source": TWONN_SOURCE + ", Eq. 3, Fig. 1"}

    # 3. Tails: raw columns for vectors; the first principal components for images.
    tail_x, tail_note = x, "each column"
    if dataset.kind == "image":
        tail_x = _pca(x, MAX_FIT_DIM, seed)
        tail_note = f"each of the first {tail_x.shape[1]} principal components (per-pixel tails are dominated by "\
                    "near-constant pixels)"
    out.update(tail_statistics(tail_x))
    methods["tails"] = {
        "method": f"{tail_note}: excess kurtosis (Fisher, bias-corrected) max and mean; outlier_share = share of "
                  f"entries beyond {OUTLIER_Z:g} x 1.4826 MAD of the median (0.27% for a Gaussian); heavy_tailed = "
                  f"outlier_share > {HEAVY_TAIL_SHARE:g}",
        "source": "scipy.stats.kurtosis; MAD scale 1.4826 (Hampel 1974, JASA 69:383-393)"}

    # 4. Images and labels.
    out.update(channels=None, height=None, width=None, sparsity=None, sparsity_threshold=None, mean_intensity=None)
    if dataset.kind == "image":
        c, h, w = (int(s) for s in dataset.shape)
        flat = train.reshape(n, -1)  # (N, C*H*W) in [-1, 1]
        pixel_std = flat.double().std(dim=0, unbiased=False).numpy()
        out.update(channels=c, height=h, width=w, sparsity=float(np.mean(pixel_std < SPARSITY_THRESHOLD)),
                   sparsity_threshold=SPARSITY_THRESHOLD,
                   mean_intensity=float((flat.double().mean() + 1.0) / 2.0))
        methods["sparsity"] = {
            "method": f"share of pixels (per channel) whose std over all training images is below "
                      f"{SPARSITY_THRESHOLD:g} in [-1, 1] units (1% of the range): near-constant pixels",
            "source": "losslab definition"}
        methods["mean_intensity"] = {"method": "mean pixel value over all training images, on [0, 1] (0 = black)",
                                     "source": "losslab definition"}
    out["class_balance"] = None
    if labels is not None:
        out["class_balance"] = class_balance(labels, dataset.num_classes)
        methods["class_balance"] = {
            "method": "training label counts; min/max count ratio; entropy over log K (1 = balanced)",
            "source": "Shannon entropy"}
    out["methods"] = methods
    out["advice"] = advise(out)
    return out


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def _fmt(v, spec: str = ".3g") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and not math.isfinite(v):
        return "n/a"
    return format(v, spec) if isinstance(v, float) else str(v)


def format_profile(p: dict) -> str:
    """The profile as a short two-column table (figure, value), then the advice with its sources."""
    shape = "x".join(str(s) for s in p["shape"])
    modes = str(p["num_modes"]) + ("+ (search cap)" if p.get("num_modes_capped") else "")
    rows = [
        ("data", f"{p['name']} ({p['kind']}, shape {shape}, dim {p['dim']})"),
        ("samples", f"{p['n_samples']} training rows ({p['n_used']} used, seed {p['seed']})"),
        ("modes", f"{modes}  [{p['methods']['num_modes']['method'].split(';')[0]}]"),
        ("separation", f"min {_fmt(p['separation_min'])}, median {_fmt(p['separation_median'])} "
                       "within-mode std"),
        ("intrinsic dim", f"{_fmt(p['intrinsic_dim'], '.2f')}  [TwoNN]"),
        ("tails", f"excess kurtosis max {_fmt(p['kurtosis_max'])}, mean {_fmt(p['kurtosis_mean'])}; "
                  f"outliers {'n/a' if p['outlier_share'] is None else format(100 * p['outlier_share'], '.2f') + '%'}"
                  + ("  (heavy-tailed)" if p["heavy_tailed"] else "")),
    ]
    if p["kind"] == "image":
        rows.append(("image", f"{p['channels']} channel(s), {p['height']}x{p['width']}, mean intensity "
                              f"{_fmt(p['mean_intensity'], '.3f')} on [0, 1]"))
        rows.append(("sparsity", f"{100 * p['sparsity']:.1f}% near-constant pixels (std < "
                                 f"{p['sparsity_threshold']:g})"))
    if p.get("class_balance"):
        cb = p["class_balance"]
        rows.append(("class balance", f"{len(cb['counts'])} classes, min/max {cb['min_max_ratio']:.3f}, "
                                      f"entropy/log K {cb['normalized_entropy']:.3f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows) + "\n"
