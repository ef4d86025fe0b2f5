"""Feature networks of FID/KID/PRDC for any image data, trained once per dataset and cached.

FID is defined for any feature embedding (Heusel et al. 2017, arXiv:1706.08500, Sec. 4); the
Inception network needs torchvision and downloads, so losslab trains small networks on the
data itself (:func:`get_feature_net`): for unlabelled images a SimCLR encoder
(:class:`SimCLREncoder`, Chen et al. 2020, arXiv:2002.05709); for labelled images that encoder
beside a small classifier (:class:`ClassifierNet`), both L2-normalised (:class:`CalibratedNet`:
the space in which FID orders the quality ladder of :mod:`losslab.metrics.ladder` as a person
does); the classifier's logits give the classes of generated samples (PacGAN, arXiv:1712.04086).

Each trained network is cached under ``$LOSSLAB_CACHE/features/`` (default
``~/.cache/losslab/features/``) as ``KEY.safetensors`` plus ``KEY.json``; the
key depends on the dataset name and shape, a hash of a sample of its
training data and labels, and the training hyperparameters, and the JSON
holds the SHA-256 of the weights file, checked on every load.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.data.stacked import digit_view
from losslab.errors import UserError
from losslab.io import atomic_write_bytes, atomic_write_json
from losslab.metrics.representation import alignment, uniformity
from losslab.metrics.ssl import SSL_AUGMENT, SSL_BLUR_P, SSL_BLUR_SIGMA, SimCLREncoder, ssl_views, train_simclr

# Bump when the architecture or the training recipe changes: it is part of the cache key.
RECIPE_VERSION = 1

# Name of the Stacked MNIST dataset (losslab.data.stacked); its feature network is StackedDigitNet.
STACKED_NAME = "stacked-mnist"


def as_features(x: Tensor | np.ndarray, name: str) -> Tensor:
    """(N, F) float64 CPU copy of features; ValueError if not 2-D or not finite."""
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, F) array, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contain NaN or inf")
    return t


class ClassifierNet(nn.Module):
    """Small CNN classifier whose penultimate layer is the FID feature space.

    ``conv5x5/2(C->32) - BN - ReLU - conv5x5/2(32->64) - BN - ReLU -
    linear(-> num_features)`` gives the features; ``ReLU - linear(-> classes)``
    gives the logits. The features are taken *before* the ReLU so that no unit
    is constantly zero (a dead ReLU would make the feature covariance singular).
    Strided convolutions instead of conv + max-pool keep training on MNIST
    under a minute on 2 CPU cores (3 epochs: about 99.1% test accuracy).

    Parameters
    ----------
    shape : (C, H, W)
        Image shape; any H, W >= 1 (each stride-2 layer gives ceil(H / 2)).
    num_classes : int
        Number of classes of the logits, >= 2.
    num_features : int
        Width of the feature layer (``self.num_features``, read by torchmetrics'
        ``FrechetInceptionDistance`` for a custom feature extractor).

    Attributes
    ----------
    name : str
        ``"classifier-<dataset>-<hash>"`` once trained by :func:`get_feature_net`.
    test_accuracy : float or None
        Accuracy on the dataset's test split, in [0, 1].
    cache_file, sha256 : str or None
        The cached weights file and its SHA-256, once loaded or trained.
    """

    def __init__(self, shape: tuple[int, int, int], num_classes: int, num_features: int = 128) -> None:
        super().__init__()
        c, h, w = (int(s) for s in shape)
        h4, w4 = math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2)
        self.shape = (c, h, w)
        self.num_classes = int(num_classes)
        self.num_features = int(num_features)
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 5, stride=2, padding=2),  # (N, 32, ceil(H/2), ceil(W/2))
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 5, stride=2, padding=2),  # (N, 64, h4, w4)
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * h4 * w4, self.num_features),
        )
        self.head = nn.Linear(self.num_features, self.num_classes)
        self.name = "classifier-untrained"
        self.test_accuracy: float | None = None
        self.cache_file: str | None = None
        self.sha256: str | None = None

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(N, num_features)`` float32 of images ``(N, C, H, W)`` in [-1, 1]."""
        return self.body(x.float())

    def logits(self, x: Tensor) -> Tensor:
        """Class logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        return self.head(F.relu(self.forward(x)))


@torch.no_grad()
def extract(
    net: nn.Module, images: Tensor | Any, *, chunk_size: int = 1000, logits: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Features (and optionally logits) of images, float64, one pass of the network.

    Parameters
    ----------
    net : nn.Module
        ``forward(x) -> (n, F)``; ``logits(x) -> (n, K)`` when ``logits=True``. Put
        in eval mode for the pass and restored afterwards; no gradients. The
        chunks run on the device of its parameters (CPU when it has none); the
        results come back on the CPU.
    images : (N, C, H, W) tensor or array
        Images in the network's input scale ([-1, 1] inside losslab), passed to it
        as float32 chunks, unchanged.
    chunk_size : int, keyword-only
        Images per forward pass; the result does not depend on it (eval mode).
    logits : bool, keyword-only
        Also return the logits (computed from the same forward pass when the net
        has a ``head``, as :class:`ClassifierNet`).

    Returns
    -------
    (Tensor, Tensor or None)
        ``(N, F)`` float64 features and ``(N, K)`` float64 logits (or None).

    Raises
    ------
    ValueError
        If the images contain NaN or inf, or the network returns non-finite values.
    """
    x = torch.as_tensor(images).detach().to("cpu", torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    was_training = net.training
    net.eval()
    feats, outs = [], []
    dev = next((p.device for p in net.parameters()), torch.device("cpu"))
    try:
        for chunk in x.split(chunk_size):
            chunk = chunk.to(dev)
            f = net(chunk)
            feats.append(f.double().cpu())
            if logits:
                head = getattr(net, "head", None)
                z = head(F.relu(f)) if isinstance(net, ClassifierNet) and head is not None else net.logits(chunk)
                outs.append(z.double().cpu())
    finally:
        net.train(was_training)
    f_all = torch.cat(feats) if feats else torch.zeros(0, int(getattr(net, "num_features", 0)), dtype=torch.float64)
    z_all = (torch.cat(outs) if outs else None) if logits else None
    if not torch.isfinite(f_all).all() or (z_all is not None and not torch.isfinite(z_all).all()):
        raise ValueError(f"feature network {getattr(net, 'name', type(net).__name__)} returned NaN or inf")
    return f_all, z_all


class StackedDigitNet(nn.Module):
    """Per-channel digit classifier for Stacked MNIST (three digits in three channels).

    Each channel of an image ``(N, 3, H, W)`` goes through the same MNIST
    classifier. The features are the three feature vectors side by side
    ``(N, 3 F)``; the logits over the 1,000 modes ``100 d_R + 10 d_G + d_B`` are
    ``log p(d_R) + log p(d_G) + log p(d_B)`` (channels classified independently),
    so their argmax is the triple of per-channel argmaxes, as in the mode count
    of VEEGAN / PacGAN.

    Parameters
    ----------
    digit_net : ClassifierNet
        A 10-class classifier of ``(N, 1, H, W)`` digits.

    References
    ----------
    Metz et al. 2017, arXiv:1611.02163, Sec. 3.3.2; Srivastava et al. 2017,
    arXiv:1705.07761, Sec. 5.2; Lin et al. 2018, arXiv:1712.04086, Sec. 5.
    """

    def __init__(self, digit_net: nn.Module) -> None:
        super().__init__()
        self.digit_net = digit_net
        self.num_features = 3 * int(digit_net.num_features)
        self.num_classes = int(digit_net.num_classes) ** 3
        self.name = f"stacked-{getattr(digit_net, 'name', 'classifier')}"
        self.test_accuracy = getattr(digit_net, "test_accuracy", None)

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(N, 3 F)`` of images ``(N, 3, H, W)``."""
        return torch.cat([self.digit_net(x[:, c : c + 1]) for c in range(3)], dim=1)

    def logits(self, x: Tensor) -> Tensor:
        """Mode logits ``(N, K^3)``: index ``K^2 d_R + K d_G + d_B``."""
        lp = [torch.log_softmax(self.digit_net.logits(x[:, c : c + 1]), dim=1) for c in range(3)]
        k = lp[0].shape[1]
        joint = lp[0][:, :, None, None] + lp[1][:, None, :, None] + lp[2][:, None, None, :]  # (N, K, K, K)
        return joint.reshape(x.shape[0], k**3)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache directory: ``cache_dir``, else ``$LOSSLAB_CACHE``, else ``~/.cache/losslab``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("LOSSLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "losslab"


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cache_key(name: str, shape: tuple[int, ...], train: Tensor, labels: Tensor | None, hparams: dict,
               *, kind: str = "classifier") -> tuple[str, str]:
    """File key ``[<kind>-]<name>-<CxHxW>-<hash>`` and net name ``<kind>-<name>-<hash>``.

    The 12-hex hash covers 1,024 evenly spaced training rows, their labels (when given)
    and the hyperparameters. The classifier's key has no kind prefix (older caches stay valid).
    """
    h = hashlib.sha256()
    h.update(json.dumps({"recipe": RECIPE_VERSION, "n_rows": int(train.shape[0]), **hparams}, sort_keys=True).encode())
    idx = torch.linspace(0, train.shape[0] - 1, min(train.shape[0], 1024)).long()
    h.update(train[idx].to(torch.float32).contiguous().numpy().tobytes())
    if labels is not None:
        h.update(labels[idx].to(torch.int64).contiguous().numpy().tobytes())
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).name) or "data"
    digest = h.hexdigest()[:12]
    prefix = "" if kind == "classifier" else f"{kind}-"
    return f"{prefix}{safe}-{'x'.join(str(int(s)) for s in shape)}-{digest}", f"{kind}-{safe}-{digest}"


@torch.no_grad()
def accuracy(net: ClassifierNet, x: Tensor, y: Tensor, *, batch_size: int = 1000) -> float:
    """Fraction of rows of ``x`` (N, C, H, W) whose argmax logit equals ``y`` (N,)."""
    net.eval()
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += int((net.logits(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(x.shape[0], 1)


def _train_classifier(
    net: ClassifierNet, x: Tensor, y: Tensor, *, epochs: int, batch_size: int, lr: float, seed: int, progress: bool
) -> None:
    """Adam (Kingma & Ba 2014, arXiv:1412.6980) on softmax cross-entropy, shuffled minibatches,
    learning rate decayed linearly from ``lr`` to 0 over all steps."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    total_steps = epochs * math.ceil(x.shape[0] / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total_steps)
    net.train()
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        total, batches = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(net.logits(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, batches = total + loss.item(), batches + 1
        if progress:
            print(f"feature net: epoch {epoch + 1}/{epochs} loss {total / max(batches, 1):.4f}", file=sys.stderr)
    net.eval()


@contextlib.contextmanager
def _entry_lock(folder: Path, key: str):
    """Hold an exclusive lock on cache entry ``key`` while it is looked up and, if missing, trained.

    Two processes that need the same feature network at once (two comparisons on MNIST, or test workers)
    train it once: the second waits for the first and then loads its weights. ``fcntl.flock`` on
    ``FOLDER/KEY.lock``; the lock goes with the process if it dies.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{key}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _try_load(net: ClassifierNet, weights: Path, meta_path: Path) -> dict[str, Any] | None:
    """Load cached weights into ``net`` if both files exist and the checksum matches; else None."""
    if not (weights.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if _sha256_file(weights) != meta["sha256"]:
            warnings.warn(f"cached feature network {weights} fails its SHA-256 check; retraining", stacklevel=3)
            return None
        net.load_state_dict(safetensors.torch.load(weights.read_bytes()))
    except Exception as e:  # unreadable JSON, missing key, wrong tensors: the cache is unusable
        warnings.warn(f"cached feature network {weights} is unreadable ({e}); retraining", stacklevel=3)
        return None
    return meta


# ----------------------------------------------------------------------------- self-supervised feature net

class CalibratedNet(nn.Module):
    """FID feature space of a labelled image dataset: classifier and SimCLR features, each L2-normalised.

    ``forward(x) = [c(x) / ||c(x)||, h(x) / ||h(x)||]`` ``(N, F_c + F_h)``: the penultimate
    features ``c`` of the dataset's :class:`ClassifierNet` (what the image is: the class
    structure) beside the representation ``h`` of its :class:`SimCLREncoder` (how it looks:
    strokes, texture, noise, blur). ``logits`` are the classifier's (Inception Score, classes
    covered). Each half has unit norm, so FID is in units of squared distance between unit
    vectors (real vs real about 0.002 at n = 2,000, uniform noise about 1.1 on MNIST) and
    neither network dominates by its scale.

    Why (the quality ladder of :mod:`losslab.metrics.ladder`, MNIST, n = 2,000): in the
    classifier's raw features uniform noise was no farther than one real class (FID 2,999 vs
    2,999 with the largest class); the classifier ignores what does not change the class.
    SimCLR features, trained with noise and blur among the augmentations, see those changes
    weakly and pure noise as far off. Together they order the ladder as a person does on
    MNIST and Fashion-MNIST (MNIST: real 0.002 < blur 0.010, noise 0.053 < two classes 0.32 <
    one class 0.52 < uniform noise 1.10; tests/test_ladder.py).

    Parameters
    ----------
    classifier : ClassifierNet
    ssl : SimCLREncoder
        Both trained on the same dataset (:func:`get_feature_net`).

    Attributes
    ----------
    name : str
        ``"<classifier name> + <simclr name>"``.
    num_features, num_classes, test_accuracy, quality
        From the two networks.
    """

    def __init__(self, classifier: ClassifierNet, ssl: SimCLREncoder) -> None:
        super().__init__()
        self.classifier, self.ssl = classifier, ssl
        self.num_features = int(classifier.num_features) + int(ssl.num_features)
        self.num_classes = int(classifier.num_classes)
        self.name = f"{classifier.name} + {ssl.name}"
        self.test_accuracy = classifier.test_accuracy
        self.quality = ssl.quality
        self.cache_file = classifier.cache_file
        self.sha256 = classifier.sha256

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(N, F_c + F_h)`` of images ``(N, C, H, W)`` in [-1, 1]: two unit-norm halves."""
        return torch.cat([F.normalize(self.classifier(x), dim=1), self.ssl(x)], dim=1)

    def logits(self, x: Tensor) -> Tensor:
        """The classifier's logits ``(N, num_classes)``."""
        return self.classifier.logits(x)


@torch.no_grad()
def ssl_quality(net: nn.Module, images: Tensor, *, seed: int = 0) -> dict[str, float]:
    """How well a self-supervised encoder separates images: two fresh augmented views of each image.

    Parameters
    ----------
    net : nn.Module
        ``forward(x) -> (n, F)``.
    images : (N, C, H, W) tensor, N >= 2
        Images in [-1, 1] (losslab uses up to 1,000 held-out ones).
    seed : int
        Seeds the views.

    Returns
    -------
    dict
        ``view_knn_agreement``: share of images whose view-2 embedding has its own
        view-1 embedding as nearest view-1 neighbour (cosine), in [0, 1], chance ``1 / N``;
        ``alignment``: L_align (alpha 2) of the L2-normalised view pairs, in [0, 4], lower is better;
        ``uniformity``: L_uniform (t 2) of the L2-normalised view-1 embeddings, in [-4, 0],
        lower is more uniform (Wang & Isola 2020, arXiv:2005.10242, Sec. 4.1, Eqs. 4-5);
        ``n``: number of images.
    """
    g = torch.Generator().manual_seed(seed)
    v1, v2 = ssl_views(images, g)
    h1, _ = extract(net, v1)
    h2, _ = extract(net, v2)
    u1, u2 = F.normalize(h1, dim=1), F.normalize(h2, dim=1)
    nearest = (u2 @ u1.T).argmax(dim=1)  # (N,) index of the nearest view-1 embedding
    agree = float((nearest == torch.arange(len(u1))).double().mean())
    return {"view_knn_agreement": agree, "alignment": alignment(u1.numpy(), u2.numpy()),
            "uniformity": uniformity(u1.numpy()), "n": int(len(u1))}


def get_ssl_feature_net(
    dataset: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    steps: int = 200,
    batch_size: int = 128,
    lr: float = 2e-3,
    temperature: float = 0.5,
    num_features: int = 128,
    max_train: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> SimCLREncoder:
    """A SimCLR encoder trained on the dataset's own images (no labels): loaded from the cache, or trained.

    Parameters
    ----------
    dataset : Dataset-like
        Needs ``name``, ``shape`` (C, H, W) and ``train`` (N, C, H, W) float32 in [-1, 1];
        the quality figures use 1,000 images: the first rows of ``test`` (if any), topped up
        with training rows when the test split is smaller.
    cache_dir : path, optional
        Cache root (see :func:`cache_root`); files ``<root>/features/simclr-KEY.{safetensors,json}``.
    steps, batch_size, lr, temperature : training hyperparameters
        Adam steps on NT-Xent (tau = ``temperature``) over minibatches of ``batch_size``
        images (``2 batch_size`` views). The defaults train in about 30-60 s on one CPU core
        for 28x28 images.
    num_features : int
        Width of the representation (the FID features).
    max_train : int, optional
        Use the first ``max_train`` training rows only.
    seed : int
        Seeds the weights, the minibatches and the views.
    progress : bool
        Print the loss every 50 steps to stderr.

    Returns
    -------
    SimCLREncoder
        In eval mode, ``requires_grad`` off, with ``name`` ``"simclr-<sha8> on <data>"``,
        ``quality`` (:func:`ssl_quality` on up to 1,000 images), ``cache_file``, ``sha256``.

    Raises
    ------
    UserError
        If the data are not images or have no or fewer than 2 training rows.

    Source: Chen et al. 2020, SimCLR, arXiv:2002.05709 (Algorithm 1, NT-Xent Eq. 1).
    """
    shape = tuple(int(s) for s in dataset.shape)
    if len(shape) != 3:
        raise UserError(f"the feature network needs images (C, H, W); dataset {dataset.name!r} has shape {shape}")
    x = getattr(dataset, "train", None)
    if x is None:
        raise UserError(f"{dataset.name!r} has no training images to train a feature network on (pass feature_net=)")
    x = x if max_train is None else x[:max_train]
    if x.shape[0] < 2:
        raise UserError(f"the self-supervised feature network needs at least 2 images; {dataset.name!r} has {len(x)}")
    hparams = {"kind": "simclr", "steps": steps, "batch_size": batch_size, "lr": lr, "temperature": temperature,
               "seed": seed, "n_train": int(x.shape[0]), "num_features": num_features, "augment": SSL_AUGMENT,
               "blur": [SSL_BLUR_P, *SSL_BLUR_SIGMA]}
    key, _ = _cache_key(dataset.name, shape, x, None, hparams, kind="simclr")
    folder = cache_root(cache_dir) / "features"
    weights, meta_path = folder / f"{key}.safetensors", folder / f"{key}.json"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SimCLREncoder(shape, num_features)
    with _entry_lock(folder, key):
        meta = _try_load(net, weights, meta_path)
        if meta is None:
            train_simclr(net, x, steps=steps, batch_size=batch_size, lr=lr, temperature=temperature, seed=seed,
                          progress=progress)
            test = getattr(dataset, "test", None)
            held = x[:1000] if test is None else torch.cat([test[:1000], x[: max(0, 1000 - len(test))]])
            quality = ssl_quality(net, held, seed=seed)
            blob = safetensors.torch.save({k: v.contiguous() for k, v in net.state_dict().items()})
            sha = hashlib.sha256(blob).hexdigest()
            atomic_write_bytes(weights, blob)
            meta = {"name": f"simclr-{sha[:8]} on {dataset.name}", "sha256": sha, "quality": quality, "key": key,
                    "shape": list(shape), "recipe": RECIPE_VERSION, **hparams}
            atomic_write_json(meta_path, meta)
            if progress:
                print(f"feature net: {meta['name']} quality {quality}", file=sys.stderr)
    net.name, net.quality, net.sha256 = meta["name"], meta["quality"], meta["sha256"]
    net.cache_file = str(weights)
    net.eval().requires_grad_(False)
    return net


def get_classifier_net(
    dataset: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    epochs: int = 3,
    max_train: int | None = None,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    num_features: int = 128,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> ClassifierNet:
    """The dataset's classifier: loaded from the cache, or trained and cached.

    The classifier alone is the feature space of :class:`StackedDigitNet` and one half of
    :class:`CalibratedNet`; :func:`get_feature_net` is what FID uses.

    Parameters
    ----------
    dataset : Dataset-like
        Needs ``name``, ``shape`` (C, H, W), ``train`` (N, C, H, W) float32 in
        [-1, 1], ``train_labels`` (N,) int64, ``test``, ``test_labels``
        (may be None: then ``test_accuracy`` is None) and ``num_classes``
        (None: ``max(label) + 1``).
    cache_dir : path, optional
        Cache root; default ``$LOSSLAB_CACHE`` or ``~/.cache/losslab``.
        Files go to ``<root>/features/KEY.safetensors`` and ``KEY.json``.
    epochs, batch_size, lr : training hyperparameters (Adam, cross-entropy,
        linear decay); 3 epochs at batch 128 reach about 99.1% test accuracy
        on MNIST in under a minute on 2 CPU cores.
    max_train : int, optional
        Train on the first ``max_train`` rows only.
    seed : int
        Seed of the initial weights and of the minibatch order.
    num_features : int
        Width of the feature layer.
    progress : bool
        Print the loss of every epoch to stderr.
    device : str or torch.device, optional
        Where the returned network runs (:func:`extract` follows it); default
        the CPU. It is trained and cached on the CPU, so the cached weights of
        a key are the same whichever device asks for them.

    Returns
    -------
    ClassifierNet
        In eval mode with ``requires_grad`` off, with ``name``
        (``"classifier-<dataset>-<hash>"``), ``test_accuracy``, ``cache_file``
        and ``sha256`` set.

    Raises
    ------
    UserError
        If the dataset is not an image dataset, has no labels or fewer than 2 classes.

    Notes
    -----
    A cached file whose SHA-256 differs from the one in its JSON, or that
    cannot be read, is reported with ``warnings.warn`` and retrained.
    """
    shape = tuple(int(s) for s in dataset.shape)
    if len(shape) != 3:
        raise UserError(f"the FID feature network needs images (C, H, W); dataset {dataset.name!r} has shape {shape}")
    labels = getattr(dataset, "train_labels", None)
    if labels is None:
        raise UserError(
            f"the classifier needs a labelled dataset; {dataset.name!r} has no labels "
            "(get_feature_net trains a self-supervised feature network instead)"
        )
    x, y = dataset.train, torch.as_tensor(labels).long()
    if max_train is not None:
        x, y = x[:max_train], y[:max_train]
    num_classes = int(dataset.num_classes) if getattr(dataset, "num_classes", None) else int(y.max()) + 1
    if num_classes < 2:
        raise UserError(f"the FID feature network needs at least 2 classes; {dataset.name!r} has {num_classes}")

    hparams = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
               "n_train": int(x.shape[0]), "num_features": num_features, "num_classes": num_classes}
    key, name = _cache_key(dataset.name, shape, x, y, hparams)
    folder = cache_root(cache_dir) / "features"
    weights, meta_path = folder / f"{key}.safetensors", folder / f"{key}.json"

    with torch.random.fork_rng(devices=[]):  # do not disturb the caller's global RNG
        torch.manual_seed(seed)
        net = ClassifierNet(shape, num_classes, num_features)
    with _entry_lock(folder, key):
        meta = _try_load(net, weights, meta_path)
        if meta is None:
            _train_classifier(net, x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
            test_labels = getattr(dataset, "test_labels", None)
            test_acc = None if test_labels is None else accuracy(net, dataset.test, torch.as_tensor(test_labels).long())
            if progress:
                print(f"feature net: test accuracy {test_acc}", file=sys.stderr)
            blob = safetensors.torch.save({k: v.contiguous() for k, v in net.state_dict().items()})
            atomic_write_bytes(weights, blob)
            meta = {"name": name,
                    "test_accuracy": test_acc, "sha256": hashlib.sha256(blob).hexdigest(),
                    "epochs": epochs, "n_train": int(x.shape[0]), "key": key, "shape": list(shape),
                    "num_classes": num_classes, "num_features": num_features, "batch_size": batch_size,
                    "lr": lr, "seed": seed, "recipe": RECIPE_VERSION}
            atomic_write_json(meta_path, meta)

    net.name = meta["name"]
    net.test_accuracy = meta["test_accuracy"]
    net.cache_file = str(weights)
    net.sha256 = meta["sha256"]
    net.eval().requires_grad_(False)
    return _on(net, device)


def get_feature_net(
    dataset: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    epochs: int = 3,
    max_train: int | None = None,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    num_features: int = 128,
    ssl_steps: int = 200,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> nn.Module:
    """The FID feature network of an image dataset, labelled or not: loaded from the cache, or trained.

    ==========================  ========================================================
    dataset                     feature network
    ==========================  ========================================================
    labelled images             :class:`CalibratedNet`: classifier + SimCLR features,
                                each L2-normalised; logits from the classifier
    unlabelled images (a        :class:`SimCLREncoder` trained on the images
    folder of PNGs, an .npy)    (L2-normalised features, no logits)
    ``stacked-mnist``           :class:`StackedDigitNet` around the MNIST classifier
                                (the VEEGAN / PacGAN protocol)
    ==========================  ========================================================

    Parameters
    ----------
    dataset : Dataset-like
        ``name``, ``shape`` (C, H, W), ``train`` (N, C, H, W) float32 in [-1, 1];
        ``train_labels`` (N,) int64 or None, ``test``, ``test_labels`` and
        ``num_classes`` as :func:`get_classifier_net` reads them.
    cache_dir : path, optional
        Cache root (:func:`cache_root`).
    epochs, batch_size, lr, num_features, max_train, seed
        The classifier's (:func:`get_classifier_net`); ``max_train`` and ``seed`` also the SimCLR encoder's.
    ssl_steps : int
        Training steps of the SimCLR encoder (:func:`get_ssl_feature_net`).
    progress : bool
        Print training progress to stderr.
    device : str or torch.device, optional
        Where the returned network runs (it is trained and cached on the CPU, so
        the cached weights of a key are the same whichever device asks).

    Returns
    -------
    nn.Module
        In eval mode with ``requires_grad`` off and a ``name`` that names the networks
        (``"classifier-mnist-<hash> + simclr-<sha8> on mnist"``, ``"simclr-<sha8> on my-pngs"``).

    Raises
    ------
    UserError
        If the dataset is not an image dataset (C, H, W), or labelled with fewer than 2 classes.

    Notes
    -----
    A cached file whose SHA-256 differs from the one in its JSON, or that
    cannot be read, is reported with ``warnings.warn`` and retrained.
    """
    clf_kwargs = {"cache_dir": cache_dir, "epochs": epochs, "max_train": max_train, "seed": seed,
                  "batch_size": batch_size, "lr": lr, "num_features": num_features, "progress": progress}
    if getattr(dataset, "name", None) == STACKED_NAME:
        digit_net = get_classifier_net(digit_view(dataset), **clf_kwargs)
        return _on(StackedDigitNet(digit_net).eval().requires_grad_(False), device)
    shape = tuple(int(s) for s in dataset.shape)
    if len(shape) != 3:
        raise UserError(f"the FID feature network needs images (C, H, W); dataset {dataset.name!r} has shape {shape}")
    ssl = get_ssl_feature_net(dataset, cache_dir=cache_dir, steps=ssl_steps, max_train=max_train, seed=seed,
                              progress=progress)
    if getattr(dataset, "train_labels", None) is None:
        return _on(ssl, device)
    return _on(CalibratedNet(get_classifier_net(dataset, **clf_kwargs), ssl).eval().requires_grad_(False), device)


def _on(net: nn.Module, device: str | torch.device | None) -> nn.Module:
    return net.to(device) if device is not None else net
