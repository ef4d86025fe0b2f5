"""The contrastive model family: its state, its step, its hyperparameters, its evaluation.

The loop (:mod:`losslab.train.loop`) calls it through the
:class:`~losslab.train.loop.Family` protocol. This family has an
:func:`evaluate`, which measures the learned representation
(linear probe, kNN, alignment, uniformity, CLIP zero-shot) against two
baselines measured in the same call (raw pixels, a randomly initialised
encoder of the same architecture), instead of comparing generated samples.

Budget: one encoder update counts as one generator update (``g_updates``);
``d_updates`` stays 0. One update (:func:`step`):

1. draw a batch of distinct training images (:func:`batch_rows`: rows
   without replacement within the batch, so no image is its own negative)
   and their labels;
2. make the views: two augmentations of each image
   (:func:`losslab.data.augment.two_views`), or, for CLIP, one augmentation
   and the caption of the image's class under a random prompt template (the
   loss gets the labels: every caption of the image's class is a positive);
3. project them with the encoder (both views in one batch, so batch norm sees
   2N images, as in SimCLR) and evaluate the loss on the inputs its
   declared scheme builds (``ContrastiveLoss.inputs``, see :data:`SCHEMES`
   and :mod:`losslab.losses.contrastive`);
4. one optimizer step (CLIP: then clip the logit scale at 100).

Hyperparameters: :func:`hparams`.

Device: the encoders, the training stream (a generator on that device), the
batches and their augmentations live on ``train.device``; representations
(:func:`sample`, the evaluation's features) come back on the CPU, where the
probes are fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab import io, rundir
from losslab.config import Config, loss_hparams
from losslab.data.augment import augment, two_views
from losslab.errors import UserError
from losslab.losses.contrastive import (
    ContrastiveLoss,
    batch_hard_triplet_loss,
    get_contrastive_loss,
)
from losslab.losses.families import FAMILY_SPECS
from losslab.metrics import representation as rep
from losslab.losses.contrastive_ssl import collapse_stats
from losslab.models.encoder import ImageEncoder, LearnedScalars, LogitScale, TextEncoder, build_vocabulary
from losslab.train.common import (
    Diverged,
    grad_stats,
    load_state,
    make_optimizer,
    resolve_device,
    save_state,
    seeded_generator,
    single_network_lr,
)
from losslab.train.members import Members, loop_step

NAME = "contrastive"
FAMILY = NAME  # the name this module had before the Family protocol

KEYS: frozenset[str] = FAMILY_SPECS[NAME].keys
"""The config keys this family reads besides the loop's (see :data:`losslab.train.loop.LOOP_KEYS`)."""

model_metrics = None  # evaluate() measures the model itself
snapshot = None  # a representation: no samples to draw while it learns

PROBE_TRAIN = 5000
"""At most this many training images fit the linear probe and the kNN index."""

PROBE_TEST = 2000
"""At most this many test images are classified (and used for alignment / uniformity)."""

MINING = ("random", "batch-hard")

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

DIGIT_TEMPLATES = ("a photo of the digit {}", "a handwritten {}", "the number {}")
OBJECT_TEMPLATES = ("a photo of a {}", "a picture of the {}", "an image of a {}")


@dataclass
class ContrastiveState:
    """Everything a contrastive run carries between steps (and saves in a checkpoint).

    Attributes
    ----------
    model : nn.ModuleDict
        ``"image"``: :class:`ImageEncoder`; for CLIP also ``"text"``:
        :class:`TextEncoder` and ``"scale"``: :class:`LogitScale`.
    opt : torch.optim.Optimizer
        Over every parameter of ``model``.
    loss : ContrastiveLoss
    hp : dict
        Resolved hyperparameters (:func:`hparams`).
    rng : torch.Generator
        Batches, augmentations, negatives and prompt templates of training.
    seed : int
        The run seed (rebuilds the initial encoder for the random-encoder baseline).
    shape : tuple of int
        ``(C, H, W)`` of one image.
    data : Dataset
        The dataset the run trains on (not saved: :func:`init_state` gets it
        again on resume); :func:`sample` embeds its test images.
    captions : list of list of str, or None
        CLIP: ``captions[k][j]`` is class k under template j.
    device : torch.device
        Where ``model`` and ``rng`` live (``train.device``).
    """

    model: nn.ModuleDict
    opt: torch.optim.Optimizer
    loss: ContrastiveLoss
    hp: dict[str, Any]
    rng: torch.Generator
    seed: int
    shape: tuple[int, ...]
    data: Any
    captions: list[list[str]] | None = None
    g_updates: int = 0
    d_updates: int = 0
    device: torch.device = torch.device("cpu")


def class_captions(class_names: list[str]) -> list[list[str]]:
    """Captions of every class under every prompt template: ``out[k][j]``.

    Class names that are digits ("7") are spelled out ("seven") under digit
    templates ("a photo of the digit seven"); other names use object
    templates ("a photo of a sneaker").

    Raises
    ------
    UserError
        No class names, or a class name without letters or digits.
    """
    if not class_names:
        raise UserError("CLIP needs class names to write captions")
    digits = all(n.strip().isdigit() and int(n) < len(NUMBER_WORDS) for n in class_names)
    templates = DIGIT_TEMPLATES if digits else OBJECT_TEMPLATES
    words = [NUMBER_WORDS[int(n)] if digits else n.lower() for n in class_names]
    if any(not build_vocabulary([w]) for w in words):
        raise UserError(f"class names must contain letters or digits to be captioned, got {class_names}")
    return [[t.format(w) for t in templates] for w in words]


def _check(hp: dict[str, Any]) -> None:
    if "temperature" in hp and not float(hp["temperature"]) > 0:
        raise UserError(f"temperature must be > 0, got {hp['temperature']}")
    if "margin" in hp and not float(hp["margin"]) >= 0:
        raise UserError(f"margin must be >= 0, got {hp['margin']}")
    if "mining" in hp and hp["mining"] not in MINING:
        raise UserError(f"triplet mining must be one of {', '.join(MINING)}, got {hp['mining']!r}")
    if not float(hp["lr"]) > 0:
        raise UserError(f"learning rate must be > 0, got {hp['lr']}")


def _build_image_encoder(shape: tuple[int, ...]) -> ImageEncoder:
    return ImageEncoder(shape[0], min(shape[1], shape[2]))


def hparams(loss: ContrastiveLoss, cfg: Config, dataset=None) -> dict[str, Any]:
    """The run's hyperparameters: the loss's ``defaults`` overridden by the config.

    ``loss.*`` keys the loss has (``temperature``, ``margin``, ``mining``,
    ``optimizer``, ``beta1``/``beta2``) replace its values
    (:func:`losslab.config.loss_hparams`); ``loss.lr_scale`` multiplies its
    ``lr``; ``loss.lr_g`` or ``loss.lr_d`` (the encoder is the family's one
    network) replaces the ``lr``.

    Raises:
        UserError: ``loss.lr_g`` and ``loss.lr_d`` differ; a value out of range.
    """
    hp = loss_hparams(loss.defaults, cfg.loss)
    lr = single_network_lr(cfg.loss, NAME)
    if lr is not None:
        hp["lr"] = lr
    _check(hp)
    return hp


def init_state(cfg: Config, dataset, loss_name: str, seed: int) -> ContrastiveState:
    """Encoder(s), optimizer and RNG of one (loss, seed) run.

    The seed fixes the initial weights (``torch.manual_seed``; the image
    encoder is built first, so the same seed rebuilds it for the
    random-encoder baseline) and the stream of batches, augmentations and
    negatives (a dedicated ``torch.Generator``).

    Raises
    ------
    UserError
        Unknown loss; vector data (augmentations need images); a dataset
        without train and test labels (the evaluation is a probe on labels);
        CLIP without class names; hyperparameters out of range.
    """
    loss = get_contrastive_loss(loss_name)
    if dataset.kind != "image" or len(dataset.shape) != 3:
        raise UserError(f"the contrastive family needs images (digits, mnist, fashion-mnist, random, "
                        f"an image folder); {dataset.name!r} holds {dataset.kind} data")
    if dataset.train_labels is None or dataset.test_labels is None:
        raise UserError(f"contrastive runs are evaluated by a linear probe on class labels; {dataset.name!r} "
                        "has none (put the images in one subfolder per class)")
    hp = hparams(loss, cfg, dataset)
    device = resolve_device(getattr(cfg.train, "device", "cpu"))
    shape = tuple(int(s) for s in dataset.shape)
    torch.manual_seed(seed)
    modules: dict[str, nn.Module] = {"image": _build_image_encoder(shape)}
    captions = None
    if loss.inputs == "text":
        captions = class_captions(list(dataset.class_names or []))
        if len(captions) < int(dataset.train_labels.max()) + 1:
            raise UserError(f"{dataset.name!r} has {len(captions)} class names but labels up to "
                            f"{int(dataset.train_labels.max())}")
        modules["text"] = TextEncoder(build_vocabulary([c for cs in captions for c in cs]))
        modules["scale"] = LogitScale(hp["logit_scale_init"], hp["logit_scale_max"])
    if loss.learnable:  # e.g. SigLIP's temperature and bias, trained with the encoder
        modules["learned"] = LearnedScalars({arg: hp[key] for arg, key in loss.learnable})
    model = nn.ModuleDict(modules).to(device)
    return ContrastiveState(
        model=model,
        opt=make_optimizer(model.parameters(), hp, hp["lr"]),
        loss=loss,
        hp=hp,
        rng=seeded_generator(seed, device),
        seed=seed,
        shape=shape,
        data=dataset,
        captions=captions,
        device=device,
    )


def _caption_table(state: ContrastiveState) -> Tensor:
    """Text embeddings of every (class, template) caption, ``(K * T, d)``, row ``k * T + j``."""
    flat = [c for cs in state.captions for c in cs]
    return state.model["text"](flat)


def _call(state: ContrastiveState, *tensors: Tensor, **extra) -> Tensor:
    """``loss.fn`` on the scheme's tensors under the loss's declared ``args``, with its ``hparams`` and
    its ``learnable`` scalars."""
    loss = state.loss
    learned = state.model["learned"]() if "learned" in state.model else {}
    return loss.fn(**dict(zip(loss.args, tensors, strict=True)), **{k: state.hp[k] for k in loss.hparams},
                   **learned, **extra)


def _projections(state: ContrastiveState, x: Tensor, idx: Tensor):
    """Two augmented views of ``x`` projected in one batch: ``z`` (2N, d), ``z1``, ``z2`` (N, d), positives."""
    n = len(x)
    v1, v2 = two_views(x, state.rng)
    z = state.model["image"](torch.cat([v1, v2]))  # (2N, d): one batch, batch norm sees both views
    pos = idx[:, None] == idx[None, :]  # same source image: the identity, rows are distinct (batch_rows)
    return z, z[:n], z[n:], pos


def _other_image(state: ContrastiveState, z2: Tensor) -> Tensor:
    """Row i: view 2 of image i - k, another image (one random shift k in 1..N-1 per batch)."""
    k = int(torch.randint(1, len(z2), (1,), generator=state.rng, device=state.rng.device))
    return z2.roll(k, dims=0)


def _pairs(state, x, idx, y):
    z, z1, z2, pos = _projections(state, x, idx)
    n = len(x)
    z2_neg = _other_image(state, z2)
    same = torch.cat([torch.ones(n, device=z1.device), torch.zeros(n, device=z1.device)])  # N pos., N neg. pairs
    return _call(state, torch.cat([z1, z1]), torch.cat([z2, z2_neg]), same), z1, z2, pos


def _triplet(state, x, idx, y):
    z, z1, z2, pos = _projections(state, x, idx)
    z2_neg = _other_image(state, z2)  # drawn for both minings: one stream of random numbers
    if state.hp["mining"] == "batch-hard":  # Hermans et al. 2017: hardest positive / negative in the batch
        loss = batch_hard_triplet_loss(z=z, labels=torch.cat([idx, idx]), margin=state.hp["margin"])
    else:
        loss = _call(state, z1, z2, z2_neg)
    return loss, z1, z2, pos


def _views(state, x, idx, y):
    z, z1, z2, pos = _projections(state, x, idx)
    return _call(state, z1, z2), z1, z2, pos


def _labels(state, x, idx, y):
    z, z1, z2, pos = _projections(state, x, idx)
    return _call(state, z, torch.cat([y, y])), z1, z2, pos


def _text(state, x, idx, y):
    """CLIP: image <-> caption of its class under a random template; same-class captions are positives."""
    img = state.model["image"](augment(x, state.rng))
    n_t = len(state.captions[0])
    t = torch.randint(n_t, (len(x),), generator=state.rng, device=state.rng.device).to(y.device)
    txt = _caption_table(state)[y * n_t + t]  # (N, d)
    return _call(state, img, txt, y, logit_scale=state.model["scale"]()), img, txt, y[:, None] == y[None, :]


SCHEMES = {"pairs": _pairs, "triplet": _triplet, "views": _views, "labels": _labels, "text": _text}
"""Batch builders by :attr:`ContrastiveLoss.inputs`: ``(state, x, idx, y) -> (loss, a, b, pos)``,
``a`` (N, d), ``b`` (M, d) the projections whose row pairs ``pos[i, j]`` are
positives (for the logged similarities)."""


def batch_rows(n: int, batch_size: int, rng: torch.Generator) -> Tensor:
    """``batch_size`` distinct row indices of ``range(n)``, drawn uniformly without replacement, (B,) int64.

    The first ``batch_size`` entries of a fresh random permutation. Each batch
    is drawn independently of the others (as before, when rows were drawn
    with replacement), so the only state is ``rng``, which the checkpoint
    already saves: a resumed run draws the same batches. An epoch-wise
    permutation (every image once per epoch) would need its position saved
    as well, for no difference that matters at a few hundred updates.

    Raises:
        UserError: ``batch_size > n``.
    """
    if batch_size > n:
        raise UserError(f"batch_size={batch_size} is larger than the {n} training images; a batch holds "
                        "distinct images")
    return torch.randperm(n, generator=rng, device=rng.device)[:batch_size]


def step(state: ContrastiveState, data, batch_size: int, *, record: bool = False) -> dict[str, float]:
    """One encoder update (see the module docstring for the four stages).

    Args:
        state: the run's :class:`ContrastiveState` (modified in place).
        data: a :class:`losslab.data.Dataset` of labelled images.
        batch_size: images per batch (>= 2: every image needs a negative).
        record: compute the diagnostics.

    Returns:
        Empty unless ``record``: ``g_loss`` (the contrastive loss),
        ``g_grad_norm``, ``g_grad_mean`` (over every trained parameter),
        ``pos_sim`` / ``neg_sim`` (mean cosine similarity of positive /
        negative pairs of the batch: the two views of one image, or for CLIP
        an image and captions of its / another class), ``match_acc`` (fraction
        of view-1 rows whose most similar view-2 row is a positive), the
        collapse diagnostics of the view-1 projections ``z_std``,
        ``z_std_unit``, ``z_cov_offdiag``, ``z_corr_offdiag``
        (:func:`losslab.losses.contrastive_ssl.collapse_stats`), for CLIP
        ``logit_scale`` and for a loss with learned scalars each as
        ``learned_<name>`` (SigLIP: ``learned_t_prime``, ``learned_bias``).

    Raises:
        UserError: ``batch_size < 2`` or larger than the training set.
        Diverged: the loss is NaN/inf.
    """
    if batch_size < 2:
        raise UserError(f"contrastive losses need batch_size >= 2 (negatives come from the batch), got {batch_size}")
    step_no = state.g_updates + 1
    state.model.train()
    idx = batch_rows(len(data.train), batch_size, state.rng)  # 1. on the generator's device
    rows, idx = idx.to(data.train.device), idx.to(state.device)
    x = data.train[rows].to(state.device)
    y = data.train_labels[rows].to(state.device) if data.train_labels is not None else None
    loss, a, b, pos = SCHEMES[state.loss.inputs](state, x, idx, y)  # 2.-3.
    if not bool(torch.isfinite(loss)):
        raise Diverged(step_no, "contrastive loss")
    state.opt.zero_grad(set_to_none=True)  # 4.
    loss.backward()
    log: dict[str, float] = {}
    if record:
        norm, mean = grad_stats(state.model)
        with torch.no_grad():
            sim = F.normalize(a.detach(), dim=1) @ F.normalize(b.detach(), dim=1).T  # (N, N)
            neg = ~pos
            log.update(
                g_loss=float(loss.detach()),
                g_grad_norm=norm,
                g_grad_mean=mean,
                pos_sim=float(sim.diagonal().mean()),
                neg_sim=float(sim[neg].mean()) if bool(neg.any()) else 0.0,
                match_acc=float(pos[torch.arange(len(sim), device=sim.device), sim.argmax(dim=1)].float().mean()),
            )
            log.update(collapse_stats(a))
            if "scale" in state.model:
                log["logit_scale"] = float(state.model["scale"]())
            if "learned" in state.model:
                log.update({f"learned_{k}": float(v) for k, v in state.model["learned"]().items()})
    state.opt.step()
    if "scale" in state.model:
        state.model["scale"].clamp_()
    state.g_updates += 1
    return log


def members(states: Sequence[Any], *, stack: bool | None = None) -> Members:
    """The runs ``states`` (one loss) as one :class:`~losslab.train.members.Members`. This family's networks
    do not stack (``stack`` is ignored): :func:`step_members` runs :func:`step` member by member, each on
    its own state and stream."""
    return Members(states)


step_members = loop_step(step)
"""One update of every active member: :func:`step`, member after member (:func:`losslab.train.members.loop_step`)."""


def nfe(state: ContrastiveState) -> int:
    """Network evaluations per embedded image: one encoder pass."""
    return 1


@torch.no_grad()
def _features(enc: ImageEncoder, x: Tensor, *, project: bool = False, batch: int = 1000) -> Tensor:
    """h = f(x) (or z = g(f(x)) if ``project``) in eval mode, in batches, (N, d), on the CPU
    (computed on the encoder's device)."""
    was = enc.training
    enc.eval()
    dev = next(enc.parameters()).device
    out = [(enc(x[i:i + batch].to(dev)) if project else enc.features(x[i:i + batch].to(dev))).cpu()
           for i in range(0, len(x), batch)]
    enc.train(was)
    return torch.cat(out)


@torch.no_grad()
def sample(state: ContrastiveState, n: int, *, seed: int = 0, dataset=None) -> Tensor:
    """Representations h of ``n`` test images, ``(min(n, M), FEATURE_DIM)``.

    The images are ``n`` test rows drawn without replacement by a generator
    seeded with ``seed``; the dataset is the one :func:`init_state` saw
    (remembered in ``state``) unless given.
    """
    ds = dataset if dataset is not None else state.data
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(ds.test), generator=g)[:n]
    return _features(state.model["image"], ds.test[rows])


def probe_rows(dataset, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Fixed subsets (seed 0) of the train / test rows the evaluation uses."""
    g = torch.Generator().manual_seed(seed)
    tr = torch.randperm(len(dataset.train), generator=g)[:PROBE_TRAIN]
    te = torch.randperm(len(dataset.test), generator=g)[:PROBE_TEST]
    return tr, te


@torch.no_grad()
def zero_shot_accuracy(state: ContrastiveState, images: Tensor, labels: Tensor) -> float:
    """CLIP zero-shot accuracy: each image takes the class whose prompt embedding is most similar.

    A class's prompt embedding is the normalised mean of its captions' unit
    text embeddings over the templates (CLIP's prompt ensembling, Radford et
    al. 2021, Sec. 3.1.4).

    Raises
    ------
    ValueError
        The run is not a CLIP run.
    """
    if state.captions is None:
        raise ValueError("zero-shot classification needs a CLIP run (a text encoder)")
    text = state.model["text"]
    was = text.training
    text.eval()
    n_t = len(state.captions[0])
    table = F.normalize(_caption_table(state), dim=1).reshape(len(state.captions), n_t, -1)
    classes = F.normalize(table.mean(dim=1), dim=1).cpu()  # (K, d)
    text.train(was)
    img = F.normalize(_features(state.model["image"], images, project=True), dim=1)
    pred = (img @ classes.T).argmax(dim=1)
    return float((pred == labels).float().mean())


def evaluate(state: ContrastiveState, dataset) -> dict[str, Any]:
    """Measure the learned representation and the two baselines on the test split.

    On fixed subsets (seed 0) of at most :data:`PROBE_TRAIN` training and
    :data:`PROBE_TEST` test images:

    - ``linear_probe`` (primary), ``knn``: on the trained encoder's h;
    - ``linear_probe_pixels``, ``knn_pixels``: on the raw pixels;
    - ``linear_probe_random_encoder``, ``knn_random_encoder``: on h of the
      encoder as initialised by this run's seed, untrained;
    - ``alignment``, ``uniformity``: Wang & Isola 2020 on the unit projections
      z of two augmented views of each test image (uniformity averaged over
      the two views, as in their code);
    - ``view_match``: fraction of test images whose view-2 projection is the
      nearest (cosine) to their view-1 projection among all view-2 projections;
    - ``z_std``, ``z_std_unit``, ``z_cov_offdiag``, ``z_corr_offdiag``: the
      collapse diagnostics of the view-1 test projections
      (:func:`losslab.losses.contrastive_ssl.collapse_stats`);
    - ``zero_shot`` (CLIP only), ``chance`` (most frequent class),
      ``n_probe_train``, ``n_probe_test``, ``dataset`` (name).

    Raises
    ------
    ValueError
        Non-finite features (the loop records the run as failed).
    """
    tr, te = probe_rows(dataset)
    xtr, xte = dataset.train[tr], dataset.test[te]
    ytr, yte = dataset.train_labels[tr], dataset.test_labels[te]
    enc = state.model["image"]
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
        torch.manual_seed(state.seed)
        enc0 = _build_image_encoder(state.shape)  # the same initial weights as this run
    out: dict[str, Any] = {}
    for suffix, ftr, fte in (
        ("", _features(enc, xtr), _features(enc, xte)),
        ("_pixels", xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)),
        ("_random_encoder", _features(enc0, xtr), _features(enc0, xte)),
    ):
        out[f"linear_probe{suffix}"] = rep.linear_probe_accuracy(ftr, ytr, fte, yte)
        out[f"knn{suffix}"] = rep.knn_accuracy(ftr, ytr, fte, yte)
    g = torch.Generator().manual_seed(1)
    v1, v2 = two_views(xte, g)
    z1_raw = _features(enc, v1, project=True)
    z1 = F.normalize(z1_raw, dim=1)
    z2 = F.normalize(_features(enc, v2, project=True), dim=1)
    out["alignment"] = rep.alignment(z1, z2)
    out["uniformity"] = 0.5 * (rep.uniformity(z1) + rep.uniformity(z2))
    out["view_match"] = float(((z1 @ z2.T).argmax(dim=1) == torch.arange(len(z1))).float().mean())
    out.update(collapse_stats(z1_raw))
    if state.captions is not None:
        out["zero_shot"] = zero_shot_accuracy(state, xte, yte)
    out["chance"] = rep.chance_accuracy(ytr.numpy(), yte.numpy())
    out["n_probe_train"] = int(len(tr))
    out["n_probe_test"] = int(len(te))
    out["dataset"] = str(dataset.name)
    return out


def artifacts(state: ContrastiveState, dataset, run_dir: str | Path) -> None:
    """Write ``run_dir/embedding.npz``: the 2-D PCA of test representations, for the report.

    Arrays: ``xy`` (M, 2) float32, the first two principal components of h
    on the evaluation's test subset (scikit-learn ``PCA``); ``labels`` (M,)
    int64; ``class_names`` (K,) str; ``explained_variance`` (2,) fraction of
    variance of each component; ``loss`` and ``data`` (str); ``g_updates``.
    """
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    _, te = probe_rows(dataset)
    h = _features(state.model["image"], dataset.test[te]).numpy().astype(np.float64)
    if not np.isfinite(h).all():
        raise Diverged(state.g_updates, "test representations")
    with threadpool_limits(limits=torch.get_num_threads()):  # see losslab.metrics.representation
        pca = PCA(n_components=2, random_state=0).fit(h)
        xy = pca.transform(h)
    names = list(dataset.class_names or [str(k) for k in range(int(dataset.test_labels.max()) + 1)])
    arrays = {
        "xy": xy.astype(np.float32),
        "labels": dataset.test_labels[te].numpy().astype(np.int64),
        "class_names": np.array(names),
        "explained_variance": pca.explained_variance_ratio_.astype(np.float64),
        "loss": np.array(state.loss.name),
        "data": np.array(str(dataset.name)),
        "g_updates": np.array(state.g_updates),
    }
    io.atomic_write_bytes(Path(run_dir) / rundir.EMBEDDING, io.npz_bytes(**arrays))


def state_dict(state: ContrastiveState) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors for safetensors, JSON metadata) that restore the run exactly."""
    return save_state(state, {"model": state.model}, {"opt": state.opt}, meta={"family": NAME})


def load_state_dict(state: ContrastiveState, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`state_dict` saved into a state built by :func:`init_state`."""
    load_state(state, {"model": state.model}, {"opt": state.opt}, tensors, meta)
