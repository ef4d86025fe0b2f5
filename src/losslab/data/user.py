"""A user's own data: a ``.csv`` matrix, a ``.npy`` array, or a folder of PNG/JPEG images.

* ``.csv``: N rows x d numeric columns -> vectors ``(N, d)``, raw values (no
  normalisation). One header row of non-numeric names is allowed and skipped.
* ``.npy``: 2-D ``(N, d)`` -> vectors (raw values); 3-D ``(N, H, W)``, 4-D
  ``(N, C, H, W)`` or ``(N, H, W, C)`` with ``C`` in {1, 3} -> images. Image pixels
  must be uint8 in ``[0, 255]`` or floats in ``[0, 1]``; both are mapped to ``[-1, 1]``.
* a folder: every ``*.png`` / ``*.jpg`` / ``*.jpeg`` below it (hidden files
  skipped), each scaled by its bit depth (8-bit, 16-bit, 1-bit, palette).
  Grayscale if every image is grayscale, else RGB (alpha composited on black).
  Center-cropped to a square and resized to ``image_size`` (default 28). When
  every image lies in a subfolder, the first-level subfolder names are the class
  labels (torchvision's ImageFolder convention), sorted.

Every user dataset is split 90/10 into train/test with the fixed seed 0
(stratified by class where possible), so all runs are evaluated on the same rows.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from losslab.data.checks import FLOAT32_MAX, first_bad_float32
from losslab.data.dataset import Dataset
from losslab.data.images import check_image_size, open_image, pil_to_unit, resize_images, uint8_to_unit
from losslab.errors import UserError
from losslab.io import check_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_IMAGE_SIZE = 28
TEST_FRACTION = 0.1
SPLIT_SEED = 0


def _number(cell: str) -> float | None:
    """``float(cell)`` when it is a finite number, else None."""
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def read_csv(path: str | Path) -> np.ndarray:
    """Read a numeric CSV matrix.

    Parameters
    ----------
    path : path-like
        Comma-separated file; blank lines are skipped; the first non-blank row may
        be a header of non-numeric names.

    Returns
    -------
    ndarray
        ``(N, d)`` float32 (``d = 1`` for a single column).

    Raises
    ------
    UserError
        Empty file, rows of different lengths, or a cell that is not a finite
        number (naming its row, counted in file lines, and column, 1-based).
    """
    path = check_file(path, "CSV file")
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                if any(c.strip() for c in row):
                    rows.append((reader.line_num, row))
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: not a readable CSV text file ({e})") from None
    except OSError as e:  # unreadable (permissions), a directory named .csv, ...
        raise UserError(f"{path}: cannot read the CSV file ({e.strerror or e})") from None
    if rows and all(_number(c) is None for c in rows[0][1]):
        header: list[str] | None = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    else:
        header = None
    if not rows:
        raise UserError(f"{path}: empty CSV file (no data rows)")
    width = len(header) if header is not None else len(rows[0][1])
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise UserError(f"{path}: row {line} has {len(row)} columns, expected {width}")
        for j, cell in enumerate(row):
            v = _number(cell)
            if v is None:
                col = f"column {j + 1}" + (f" ({header[j]})" if header else "")
                raise UserError(
                    f"{path}: row {line}, {col}: {cell.strip()!r} is not a finite number "
                    "(expected comma-separated numbers, one optional header row)"
                )
            if abs(v) > FLOAT32_MAX:
                col = f"column {j + 1}" + (f" ({header[j]})" if header else "")
                raise UserError(f"{path}: row {line}, {col}: {cell.strip()} does not fit float32 (|x| > 3.4e38); "
                                "rescale the data")
            out[i, j] = v
    return out.astype(np.float32)


def images_to_unit(arr: np.ndarray, path: Path) -> Tensor:
    """uint8 [0, 255] or float [0, 1] images -> float32 tensor in [-1, 1], same shape.

    Raises
    ------
    UserError
        Another dtype, NaN / inf, or float values outside [0, 1]; the message names ``path``.
    """
    if arr.dtype == np.uint8:
        return uint8_to_unit(arr)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            raise UserError(f"{path}: image {idx[0] + 1} holds a value that is not finite (at index {idx})")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise UserError(f"{path}: float images must be in [0, 1], found values in [{lo:g}, {hi:g}]")
        return torch.from_numpy(np.clip(arr, 0.0, 1.0).astype(np.float32) * 2.0 - 1.0)
    raise UserError(f"{path}: image array of dtype {arr.dtype}; use uint8 in [0, 255] or float in [0, 1]")


def _fit_size(x: Tensor, image_size: int | None, path: Path) -> Tensor:
    """Resize ``(N, C, H, W)`` to ``image_size`` (checked), or keep a valid native square size."""
    if image_size is not None:
        return resize_images(x, check_image_size(image_size))
    h, w = x.shape[-2:]
    if h != w:
        raise UserError(f"{path}: images are {h}x{w}, not square; give an image size to crop and resize them")
    check_image_size(h, what=f"{path}: native image size")
    return x


def read_npy(path: str | Path, *, image_size: int | None = None) -> tuple[str, Tensor]:
    """Read a ``.npy`` array as vectors or images.

    Parameters
    ----------
    path : path-like
        ``(N, d)`` -> vectors; ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)``
        with ``C`` in {1, 3} -> images (channels-first is tried first).
    image_size : int, optional
        Side to resize images to (multiple of 4); default the native side.

    Returns
    -------
    kind : str
        ``"vector"`` or ``"image"``.
    x : Tensor
        ``(N, d)`` float32 raw values, or ``(N, C, S, S)`` float32 in ``[-1, 1]``.

    Raises
    ------
    UserError
        Unreadable file, non-numeric dtype, non-finite values, any other number of
        dimensions, image values out of range, bad image size.
    """
    from losslab import io

    path = Path(path)
    arr = io.read_npy(path)  # UserError: not .npy, truncated, corrupt
    if not isinstance(arr, np.ndarray):
        raise UserError(f"{path}: expected a single array saved with numpy.save")
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{path}: array of dtype {arr.dtype}; expected numbers")
    if arr.size == 0:
        raise UserError(f"{path}: the array is empty (shape {arr.shape})")
    if arr.ndim == 2:
        bad = first_bad_float32(arr)
        if bad is not None:
            (i, j), why = bad
            raise UserError(f"{path}: row {i + 1}, column {j + 1}: {arr[i, j].item()!r} {why}; "
                            "expected finite numbers")
        return "vector", torch.from_numpy(arr.astype(np.float32))
    if arr.ndim == 3:
        arr = arr[:, None]  # (N, 1, H, W)
    elif arr.ndim == 4 and arr.shape[1] in (1, 3):
        pass  # (N, C, H, W)
    elif arr.ndim == 4 and arr.shape[3] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    else:
        raise UserError(
            f"{path}: array of shape {arr.shape}; expected (N, d) vectors or (N, H, W), (N, C, H, W), "
            "(N, H, W, C) images with C in 1 or 3"
        )
    x = images_to_unit(np.ascontiguousarray(arr), path)
    return "image", _fit_size(x, image_size, path)


def _is_grayscale(a: np.ndarray) -> bool:
    """True for a ``(H, W)`` array, and for an ``(H, W, 3)`` one whose three channels are equal."""
    if a.ndim == 2:
        return True
    return bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]))


def read_image_folder(
    path: str | Path, *, image_size: int = DEFAULT_IMAGE_SIZE
) -> tuple[Tensor, Tensor | None, list[str] | None]:
    """Read every PNG/JPEG image below ``path`` (recursively, hidden files skipped).

    Each image is scaled by its own bit depth (8-bit ``/255``, 16-bit ``/65535``,
    1-bit 0/1), palettes keep their colours, and alpha is composited on black
    (channels multiplied by alpha): see :func:`losslab.data.images.pil_to_unit`.

    Parameters
    ----------
    path : path-like
        The folder. When every image lies in a subfolder, the first-level
        subfolder name is its class (sorted names -> labels 0..K-1).
    image_size : int
        Output side (multiple of 4); images are center-cropped to a square and
        resized (bilinear, antialiased).

    Returns
    -------
    x : Tensor
        ``(N, C, S, S)`` float32 in ``[-1, 1]``; ``C = 1`` if every image is
        grayscale (or colour with three equal channels), else 3.
    labels : Tensor or None
        ``(N,)`` int64.
    class_names : list of str or None

    Raises
    ------
    UserError
        No images, a file Pillow cannot read or a decompression bomb (named), a
        pixel mode without a known range, bad image size.
    """
    root = Path(path)
    size = check_image_size(image_size)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise UserError(f"{root}: no PNG/JPEG images found in this folder or its subfolders")
    arrays = []
    for p in files:
        with open_image(p) as img:
            arrays.append(pil_to_unit(img, p))  # (H, W) or (H, W, 3) in [0, 1]
    grey = all(_is_grayscale(a) for a in arrays)
    tensors = []
    for a in arrays:
        if grey:
            a = a if a.ndim == 2 else a[..., 0]
            t = torch.from_numpy(np.ascontiguousarray(a))[None]  # (1, H, W)
        else:
            a = a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
            t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)  # (3, H, W)
        t = t * 2.0 - 1.0  # [0, 1] -> [-1, 1]
        tensors.append(resize_images(t[None], size)[0])
    x = torch.stack(tensors)  # (N, C, S, S)

    rel = [p.relative_to(root).parts for p in files]
    if all(len(parts) >= 2 for parts in rel):
        class_names = sorted({parts[0] for parts in rel})
        index = {c: i for i, c in enumerate(class_names)}
        labels = torch.tensor([index[parts[0]] for parts in rel], dtype=torch.int64)
        return x, labels, class_names
    return x, None, None


def split_train_test(n: int, labels: Tensor | None, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Fixed 90/10 train/test split of ``n`` rows (seed 0), stratified by ``labels`` when possible.

    Returns
    -------
    train_idx, test_idx : ndarray
        Disjoint index arrays covering ``range(n)``; the test part has ``ceil(0.1 n)`` rows.

    Raises
    ------
    UserError
        Fewer than 2 rows.
    """
    # scikit-learn only here: importing it costs about a second at start-up.
    from sklearn.model_selection import train_test_split

    if n < 2:
        raise UserError(f"{path}: only {n} sample(s); need at least 2 for a train/test split")
    idx = np.arange(n)
    if labels is not None:
        try:
            train, test = train_test_split(
                idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels.numpy()
            )
            return train, test
        except ValueError:  # a class too small to stratify: fall back to a plain split
            pass
    train, test = train_test_split(idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    return train, test


def load_user(path: str | Path, *, image_size: int | None = None) -> Dataset:
    """Load a user's ``.csv``, ``.npy`` or image folder as a :class:`~losslab.data.Dataset`.

    Parameters
    ----------
    path : path-like
        An existing file or folder.
    image_size : int, optional
        Image side (multiple of 4). Default: native side for ``.npy`` images, 28 for
        a folder. Ignored for vectors.

    Returns
    -------
    Dataset
        Named after the file/folder; ``modes`` etc. are None; 90/10 split.

    Raises
    ------
    UserError
        Unsupported file type and every error of the readers above.
    """
    path = Path(path)
    labels = class_names = None
    if path.is_dir():
        kind = "image"
        x, labels, class_names = read_image_folder(path, image_size=image_size or DEFAULT_IMAGE_SIZE)
    elif path.suffix.lower() == ".csv":
        kind, x = "vector", torch.from_numpy(read_csv(path))
    elif path.suffix.lower() == ".npy":
        kind, x = read_npy(path, image_size=image_size)
    else:
        raise UserError(
            f"{path}: unsupported file type {path.suffix!r}; give a .csv or .npy file or a folder of PNG/JPEG images"
        )
    train_idx, test_idx = split_train_test(len(x), labels, path)
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return Dataset(
        name=path.name,
        kind=kind,
        shape=tuple(x.shape[1:]),
        train=x[train_idx],
        test=x[test_idx],
        train_labels=None if labels is None else labels[train_idx],
        test_labels=None if labels is None else labels[test_idx],
        num_classes=None if class_names is None else len(class_names),
        class_names=class_names,
    )
