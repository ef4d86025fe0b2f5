"""The logic behind ``losslab features train`` and ``losslab eval``.

* :func:`features_train` trains (or loads) a dataset's classifier feature
  network and reports its test accuracy, cache file and checksum.
* :func:`eval_run_dir` evaluates a run directory (or its checkpoint) of any
  family again: for generative families (GAN, diffusion) every metric of
  :func:`losslab.metrics.evaluate` on the run's samples, plus the family's
  metrics of the trained model (GAN: the critic's real-vs-fake accuracy on
  held-out data); for contrastive runs the family's own evaluation of the
  restored encoder (linear probe, kNN, ...).
* :func:`eval_samples` evaluates any generator's images, given as an ``.npz``
  file (array ``images``), an ``.npy`` array or a folder of PNG/JPEG files,
  against the dataset's test split.

Each returns a dict that names the feature network and the sample counts, and
writes it as JSON with ``out=``. :func:`format_table` prints it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from losslab import io, rundir
from losslab.data import DATASETS, load_dataset, stacked, take_train_subset
from losslab.data.images import resize_images
from losslab.data.user import images_to_unit, read_image_folder
from losslab.errors import UserError, unknown_choice
from losslab.metrics import METRIC_INFO, evaluate
from losslab.metrics.features import get_feature_net
from losslab.rundir import REFERENCE_SEED
from losslab.train.gan import critic_metrics
from losslab.train.loop import get_family

# Test accuracy each built-in dataset's classifier must reach (recorded in its cache JSON).
ACCURACY_THRESHOLDS: dict[str, float] = {"mnist": 0.99, "fashion-mnist": 0.90}
FEATURES = ("classifier", "inception")
_COUNT_KEYS = ("class_counts", "mode_counts")


def load_data(name: str, *, data_dir: str | None = None, image_size: int | None = None,
              n_train: int | None = None):
    """:func:`losslab.data.load_dataset`, plus ``"stacked-mnist"`` (:mod:`losslab.data.stacked`).

    Raises
    ------
    UserError
        As :func:`losslab.data.load_dataset`.
    """
    if name == stacked.NAME and name not in DATASETS:  # until load_dataset knows it: the same steps
        if image_size not in (None, 28):
            raise UserError(f"{stacked.NAME} is 28x28; remove the image size {image_size}")
        ds = stacked.load_stacked_mnist(data_dir=data_dir)
        return ds if n_train is None else take_train_subset(ds, n_train, 0)
    return load_dataset(name, data_dir=data_dir, image_size=image_size, n_train=n_train)


def feature_network(dataset, features: str = "classifier", *, progress: bool = False):
    """The feature network named by ``features`` for an image dataset.

    ``"classifier"``: the dataset's cached classifier (trained on first use);
    ``"inception"``: the FID InceptionV3 (optional extra ``losslab[inception]``).

    Raises
    ------
    UserError
        Unknown name, vector data, an unlabelled dataset with ``"classifier"``,
        or the Inception extra not installed.
    """
    if features not in FEATURES:
        raise unknown_choice("feature network", features, FEATURES)
    if dataset.kind != "image":
        raise UserError(f"feature networks are for images; {dataset.name!r} is vector data")
    if features == "inception":
        from losslab.metrics.inception import get_inception_net  # an optional extra: loaded only when asked for

        return get_inception_net()
    return get_feature_net(dataset, progress=progress)


def features_train(data: str, *, data_dir: str | None = None, image_size: int | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Train (or load from the cache) the classifier feature network of ``data``.

    Parameters
    ----------
    data : str
        A labelled image dataset: ``mnist``, ``fashion-mnist``, ``digits``,
        ``stacked-mnist`` (its per-channel MNIST classifier) or a folder of
        images in class subfolders.
    data_dir, image_size : optional
        As :func:`losslab.data.load_dataset`.
    progress : bool
        Print the training loss per epoch to stderr.

    Returns
    -------
    dict
        ``name``, ``test_accuracy`` (fraction on the test split), ``threshold``
        (required accuracy for built-in data, else None), ``meets_threshold``,
        ``weights`` (cache file), ``sha256``, ``num_classes``, ``num_features``.

    Raises
    ------
    UserError
        Unknown or unlabelled data, vector data, missing files.

    Warns
    -----
    UserWarning
        If the recorded accuracy is below the dataset's threshold.
    """
    ds = load_data(data, data_dir=data_dir, image_size=image_size)
    net = feature_network(ds, "classifier", progress=progress)
    # Stacked MNIST: its per-channel digit classifier; the calibrated space: its classifier half.
    digit = getattr(net, "digit_net", None) or getattr(net, "classifier", net)
    if not hasattr(digit, "num_classes"):
        raise UserError(f"{ds.name!r} has no class labels: `losslab features train` trains the classifier; "
                        "image metrics on unlabelled data use a self-supervised network trained by compare / eval")
    threshold = ACCURACY_THRESHOLDS.get("mnist" if hasattr(net, "digit_net") else ds.name)  # Stacked: MNIST digits
    acc = digit.test_accuracy
    meets = None if threshold is None or acc is None else bool(acc >= threshold)
    if meets is False:
        warnings.warn(f"{digit.name}: test accuracy {acc:.4f} is below the {threshold:.2f} required for "
                      f"{ds.name}", stacklevel=2)
    return {"data": ds.name, "name": digit.name, "test_accuracy": acc, "threshold": threshold,
            "meets_threshold": meets, "weights": getattr(digit, "cache_file", None),
            "sha256": getattr(digit, "sha256", None), "num_classes": int(digit.num_classes),
            "num_features": int(digit.num_features), "feature_net": net.name}


# ----------------------------------------------------------------------------- samples


def load_samples(path: str | Path, *, image_size: int = 28) -> Tensor:
    """Read generated images from an ``.npz`` / ``.npy`` file or a folder of images.

    Parameters
    ----------
    path : path-like
        * ``.npz`` with an array ``images``: ``(N, H, W)``, ``(N, C, H, W)`` or
          ``(N, H, W, C)`` (C in 1, 3), uint8 in [0, 255] or float in [0, 1]. A
          losslab ``samples.npz`` (array ``samples``, float in [-1, 1]) is read as is.
        * ``.npy``: one such array.
        * a folder: every PNG/JPEG below it (grayscale if all are), center-cropped
          and resized to ``image_size``.
    image_size : int, keyword-only
        Side of the images read from a folder (a multiple of 4).

    Returns
    -------
    Tensor
        ``(N, C, H, W)`` float32 in [-1, 1].

    Raises
    ------
    UserError
        Missing path, unsupported type, no ``images`` array, wrong shape or dtype,
        values out of range, NaN / inf, unreadable images.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"no such file or folder: {p}")
    if p.is_dir():
        return read_image_folder(p, image_size=image_size)[0]
    suffix = p.suffix.lower()
    if suffix == ".npz":
        z = io.read_npz(p, keys=("images", "samples"))  # UserError: not a zip, truncated, corrupt
        if "images" in z:
            arr = z["images"]
        elif "samples" in z:  # losslab's own samples.npz: float32 in [-1, 1]
            arr = z["samples"].astype(np.float32)
            if arr.ndim != 4:
                raise UserError(f"{p}: losslab samples of shape {arr.shape} are not images (N, C, H, W)")
            if not np.all(np.isfinite(arr)):
                raise UserError(f"{p}: the samples contain NaN or infinite values")
            if arr.min() < -1 - 1e-5 or arr.max() > 1 + 1e-5:
                lo, hi = float(arr.min()), float(arr.max())
                raise UserError(f"{p}: losslab samples must be in [-1, 1], found [{lo:g}, {hi:g}]")
            return torch.from_numpy(np.clip(arr, -1.0, 1.0))
        else:
            with np.load(p, allow_pickle=False) as names:  # a readable archive (read_npz opened it)
                keys = list(names.files)
            raise UserError(f"{p}: no array named 'images' (found: {', '.join(keys) or 'none'}); save with "
                            "numpy.savez(path, images=array)")
    elif suffix == ".npy":
        arr = io.read_npy(p)  # UserError: not .npy, truncated, corrupt
    else:
        raise UserError(f"{p}: unsupported samples file {suffix!r}; give an .npz (array 'images'), an .npy, "
                        "or a folder of PNG/JPEG images")
    if arr.ndim == 3:
        arr = arr[:, None]  # (N, 1, H, W)
    elif arr.ndim == 4 and arr.shape[1] not in (1, 3) and arr.shape[3] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[0] == 0:
        raise UserError(f"{p}: images of shape {arr.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C) "
                        "with N >= 1 and C in 1 or 3")
    return images_to_unit(np.ascontiguousarray(arr), p)


def _match_shape(x: Tensor, dataset, source: str) -> tuple[Tensor, str | None]:
    """Samples in the dataset's shape: channels must agree; other sizes are resized (with a note)."""
    c, h, w = (int(s) for s in dataset.shape)
    if x.shape[1] != c:
        raise UserError(f"{source}: images have {x.shape[1]} channel(s) but {dataset.name} has {c}")
    if tuple(x.shape[2:]) == (h, w):
        return x, None
    note = f"samples resized from {x.shape[2]}x{x.shape[3]} to {h}x{w} (bilinear, antialiased) to match {dataset.name}"
    warnings.warn(note, stacklevel=3)
    return resize_images(x, h), note


# ----------------------------------------------------------------------------- eval


def eval_samples(
    path: str | Path,
    data: str,
    *,
    features: str = "classifier",
    out: str | Path | None = None,
    n: int | None = None,
    full: bool = False,
    data_dir: str | None = None,
    seed: int = REFERENCE_SEED,
) -> dict[str, Any]:
    """Evaluate any generator's images against the test split of ``data``.

    Parameters
    ----------
    path : path-like
        Samples, see :func:`load_samples`.
    data : str
        The dataset the generator imitates (its test split is the reference).
    features : str, keyword-only
        ``"classifier"`` (default; the dataset's cached classifier) or
        ``"inception"`` (FID InceptionV3; needs ``losslab[inception]``).
    out : path-like, keyword-only, optional
        Write the result as JSON there.
    n : int, keyword-only, optional
        Use the first ``n`` samples (default all); the reference takes
        ``min(n, test size)`` test rows.
    full : bool, keyword-only
        Also the exact feature-space W1 and the two-sample classifier test.
    data_dir : str, keyword-only, optional
        Folder of the MNIST / Fashion-MNIST files.
    seed : int, keyword-only
        Seed of the choice of reference rows.

    Returns
    -------
    dict
        ``samples`` (path), ``data``, ``features``, ``feature_net``, ``n_eval``,
        ``n_real``, ``metrics`` (every metric of :func:`losslab.metrics.evaluate`),
        ``notes`` (list of str).

    Raises
    ------
    UserError
        Bad samples (see :func:`load_samples`), channels that differ from the
        data, vector data, unknown feature network, too few samples.
    """
    if features not in FEATURES:  # cheap checks before loading any data
        raise unknown_choice("feature network", features, FEATURES)
    if not Path(path).expanduser().exists():
        raise UserError(f"no such file or folder: {path}")
    ds = load_data(data, data_dir=data_dir)
    if ds.kind != "image":
        raise UserError(f"eval --samples compares images; {ds.name!r} is vector data")
    x, note = _match_shape(load_samples(path, image_size=int(ds.shape[-1])), ds, str(path))
    n = x.shape[0] if n is None else int(n)
    if n < 2:
        raise UserError(f"need at least 2 samples to evaluate, got n={n}")
    net = feature_network(ds, features, progress=True)
    metrics = evaluate(ds, x, generator=torch.Generator().manual_seed(seed), n=n, feature_net=net, full=full)
    result = {"samples": str(path), "data": ds.name, "features": features, "feature_net": metrics["feature_net"],
              "n_eval": metrics["n_eval"], "n_real": metrics["n_real"], "metrics": metrics,
              "notes": [note] if note else []}
    if out is not None:
        io.atomic_write_json(out, result)
    return result


def _restore(info: rundir.RunInfo, fam, cfg, ds):
    """The family state of the run restored from its checkpoint, or None without one."""
    ck = rundir.load_checkpoint(info.run_dir)
    if ck is None:
        return None
    state = fam.init_state(cfg, ds, info.loss, info.seed)
    fam.load_state_dict(state, *ck)
    return state


def discriminator_accuracy(state, real: Tensor, fake: Tensor, *, chunk_size: int = 1000) -> dict[str, float]:
    """Real-vs-fake accuracy of a GAN's trained critic: :func:`losslab.train.gan.critic_metrics`."""
    return critic_metrics(state, real, fake, chunk_size=chunk_size)


def eval_run_dir(
    run_dir: str | Path,
    *,
    full: bool = False,
    out: str | Path | None = None,
    features: str = "classifier",
    n: int | None = None,
) -> dict[str, Any]:
    """Evaluate a run directory (or its checkpoint file) of any family and seed again.

    The run is read through :func:`losslab.rundir.read_run` (family, loss,
    seed, resolved config) and evaluated by its family:

    * generative families (GAN, diffusion): the run's ``samples.npz``; a run
      without them (interrupted, deleted) is sampled from its checkpoint with
      the run's seed, as the training loop sampled it. The reference rows are
      drawn as ``losslab compare`` draws them (:data:`REFERENCE_SEED`), so with
      the defaults the metrics repeat the run's ``result.json``. With a
      checkpoint, the family's ``model_metrics`` are added (GAN: the trained
      critic's accuracy on held-out real vs generated samples,
      :func:`losslab.train.gan.critic_metrics`).
    * families measured on the model itself (contrastive): the checkpoint is
      restored and the family's ``evaluate`` runs (it repeats ``result.json``).

    Parameters
    ----------
    run_dir : path-like
        A run directory, or its ``checkpoint.safetensors``.
    full : bool, keyword-only
        Images: also the exact feature-space W1 and the two-sample classifier test.
    out : path-like, keyword-only, optional
        Write the result as JSON there.
    features : str, keyword-only
        ``"classifier"`` or ``"inception"`` (images only; generative families).
    n : int, keyword-only, optional
        Samples to evaluate; default the run's ``train.n_eval``.

    Returns
    -------
    dict
        ``run_dir``, ``family``, ``loss``, ``seed``, ``data``, ``feature_net``
        (None for vectors and contrastive runs), ``n_eval``, ``n_real`` (None for
        contrastive runs), ``metrics``, ``notes``.

    Raises
    ------
    UserError
        Not a run directory or an unreadable config.json; no samples and no
        checkpoint (generative), no checkpoint (contrastive); unknown feature
        network or family; a feature network other than the classifier for
        a run that generates no images (vector data, contrastive).
    """
    info = rundir.read_run(run_dir)
    rd = info.run_dir
    cfg = info.cfg()
    fam = get_family(info.family)
    d = cfg.data
    ds = load_data(d.name, data_dir=d.data_dir, image_size=d.image_size, n_train=d.n_train)
    n = cfg.train.n_eval if n is None else int(n)
    if features != "classifier" and (ds.kind != "image" or fam.evaluate is not None):
        what = "vector data" if ds.kind != "image" else f"a {info.family} run (measured on the model itself)"
        raise UserError(f"--features {features}: a feature network measures generated images; {rd} is {what}")
    notes: list[str] = []
    state = _restore(info, fam, cfg, ds)
    head = {"run_dir": str(rd), "family": info.family, "loss": info.loss, "seed": info.seed, "data": ds.name}
    if fam.evaluate is not None:  # measured on the model itself
        if state is None:
            raise UserError(f"{rd} has no {rundir.CHECKPOINT} to restore the {info.family} model from")
        metrics = fam.evaluate(state, ds)
        result = {**head, "feature_net": None, "n_eval": None, "n_real": None, "metrics": metrics, "notes": notes}
    else:
        samples = rundir.read_samples(rd)
        if samples is None:
            if state is None:
                raise UserError(f"{rd} has neither {rundir.SAMPLES} nor a checkpoint to sample from")
            samples = fam.sample(state, n, seed=info.seed)
            notes.append(f"no {rundir.SAMPLES}: {n} samples drawn from the checkpoint at generator update "
                         f"{state.g_updates} with the run's seed {info.seed}")
        if not bool(torch.isfinite(samples).all()):
            raise UserError(f"{rd}: the run's samples contain NaN or inf (the run diverged)")
        net = feature_network(ds, features, progress=True) if ds.kind == "image" else None
        gen = torch.Generator().manual_seed(REFERENCE_SEED)
        metrics = evaluate(ds, samples, generator=gen, n=n, feature_net=net, full=full)
        if state is not None and fam.model_metrics is not None:
            metrics.update(fam.model_metrics(state, ds, samples, n=n, seed=REFERENCE_SEED))
        result = {**head, "feature_net": metrics.get("feature_net"), "n_eval": metrics["n_eval"],
                  "n_real": metrics.get("n_real", metrics["n_eval"]), "metrics": metrics, "notes": notes}
    if out is not None:
        io.atomic_write_json(out, result)
    return result


def format_table(result: dict[str, Any]) -> str:
    """The metrics of a result as an aligned text table: name, value, direction, description.

    Histograms (``class_counts``, ``mode_counts``) are summarised by their
    non-zero bins; the header names the data, feature network and sample counts.
    """
    m = result["metrics"]
    if result.get("n_eval") is None and "n_probe_test" in m:  # a representation (contrastive run)
        head = (f"data {result.get('data')}  representation probed on {m['n_probe_train']} train / "
                f"{m['n_probe_test']} test images")
    else:
        head = (f"data {result.get('data')}  feature net {result.get('feature_net')}  "
                f"generated {result.get('n_eval')}  real {result.get('n_real')}")
    rows = []
    for key, value in m.items():
        info = METRIC_INFO.get(key, {})
        hib = info.get("higher_is_better")
        arrow = {True: "higher better", False: "lower better"}.get(hib, "")
        if key in _COUNT_KEYS:
            value = f"{sum(1 for v in value if v)} non-zero of {len(value)} bins"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        rows.append((key, str(value), arrow))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [head] + [f"{k:<{w0}}  {v:>{w1}}  {a}" for k, v, a in rows]
    lines += [f"note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)
