"""Image datasets: scikit-learn ``digits``, MNIST and Fashion-MNIST (gzip IDX files).

MNIST / Fashion-MNIST are read from the four standard gzip IDX files with a small
numpy parser. The files are looked for, in order, in ``data_dir``, ``$LOSSLAB_DATA``
and the cache ``$LOSSLAB_CACHE/data`` (default ``$XDG_CACHE_HOME/losslab/data``,
i.e. ``~/.cache/losslab/data``); in each root ``ROOT/<name>/<file>``,
``ROOT/<file>`` and torchvision's ``ROOT/MNIST/raw/<file>`` (``FashionMNIST``) are
accepted. Missing files are downloaded from the official mirrors into the cache
and checked against the published MD5 sums.

Sources: LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to
document recognition" (MNIST, IDX format at http://yann.lecun.com/exdb/mnist/);
Xiao, Rasul, Vollgraf 2017, Fashion-MNIST, arXiv:1708.07747.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.data.dataset import Dataset
from losslab.errors import UserError
from losslab.io import check_file

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions (N, H, W)
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension (N,)

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
IDX_FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Published MD5 sums of the original distribution files (the same torchvision pins).
IDX_FILES: dict[str, dict[str, str]] = {
    "mnist": {
        TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
        TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
        TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
        TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
        TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# Official locations, tried in order (MNIST: torchvision's S3 mirror, then LeCun's page).
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

_TORCHVISION_DIR = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}

CLASS_NAMES: dict[str, list[str]] = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}

DOWNLOAD_TIMEOUT_S = 30.0


# ----------------------------------------------------------------------------- image helpers


def check_image_size(size: int, *, what: str = "image size") -> int:
    """Check that an image side is a positive multiple of 4 (the image models halve it twice).

    Parameters
    ----------
    size : int
        Image side in pixels.
    what : str
        How to name it in the error message.

    Returns
    -------
    int
        ``size``.

    Raises
    ------
    UserError
        If ``size`` is not a positive multiple of 4; the message suggests the nearest one.
    """
    size = int(size)
    if size >= 4 and size % 4 == 0:
        return size
    nearest = max(4, 4 * math.floor(size / 4 + 0.5))
    raise UserError(f"{what} {size} is not a multiple of 4 (the image models halve it twice); use {nearest}")


def resize_images(x: Tensor, size: int) -> Tensor:
    """Resize ``(N, C, H, W)`` images to ``(N, C, size, size)``: bilinear with antialiasing.

    Non-square images are first center-cropped to a square (aspect ratio kept).
    Returns ``x`` itself when it already has that size. Values stay in ``[-1, 1]``.

    Parameters
    ----------
    x : Tensor
        ``(N, C, H, W)`` float32 in ``[-1, 1]``.
    size : int
        Target side in pixels.

    Returns
    -------
    Tensor
        ``(N, C, size, size)`` float32.
    """
    h, w = x.shape[-2:]
    if h != w:  # center crop to the short side
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top : top + s, left : left + s]
    if x.shape[-1] == size:
        return x
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.clamp_(-1.0, 1.0)


def uint8_to_unit(arr: np.ndarray) -> Tensor:
    """uint8 ``[0, 255]`` array -> float32 tensor in ``[-1, 1]`` (0 -> -1, 255 -> 1)."""
    x = arr.astype(np.float32)
    x /= np.float32(127.5)  # in place: no temporaries of 60000 x 28 x 28 floats
    x -= np.float32(1.0)
    return torch.from_numpy(x)


# Full-scale value of each integer pixel mode (Pillow mode -> the bit depth's maximum).
_FULL_SCALE = {"L": 255.0, "I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0,
               "I": 65535.0}
_ALPHA_MODES = {"LA": "L", "La": "L", "PA": "RGB", "RGBA": "RGB", "RGBa": "RGB"}


def pil_to_unit(img, path: str | os.PathLike = "image") -> np.ndarray:
    """A Pillow image as float32 intensities in ``[0, 1]``, scaled by its own bit depth.

    * ``1`` (1-bit): 0 or 1.
    * ``L`` (8-bit): ``v / 255``; ``I;16``, ``I;16B``, ``I;16L`` (16-bit PNG) and
      ``I`` (how older Pillow opens a 16-bit PNG): ``v / 65535``. A plain
      ``convert("L")`` would clip 16-bit values to 255 (an all-white image).
    * ``P`` (palette): its colours, as RGB (RGBA when the palette has transparency).
    * Alpha (``LA``, ``RGBA``, ``PA``, a transparent palette): composited on black,
      i.e. each channel is multiplied by the alpha in ``[0, 1]`` (premultiplied
      alpha; fully transparent pixels are 0, whatever colour they store).
    * ``RGB`` and other colour modes (``CMYK``, ``YCbCr`` JPEGs): Pillow's RGB, ``v / 255``.

    Parameters
    ----------
    img : PIL.Image.Image
        A loaded image.
    path : path-like
        Named in error messages.

    Returns
    -------
    ndarray
        float32, ``(H, W)`` for a greyscale mode, ``(H, W, 3)`` for colour, values in ``[0, 1]``.

    Raises
    ------
    UserError
        A mode without a known full scale (``F``: 32-bit float), or an ``I`` image with
        values outside ``[0, 65535]``.
    """
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in _ALPHA_MODES:
        a = np.asarray(img.convert("RGBA" if _ALPHA_MODES[mode] == "RGB" else "LA"), dtype=np.float32) / 255.0
        colour, alpha = a[..., :-1], a[..., -1:]
        out = colour * alpha  # composite on black
        return np.ascontiguousarray(out[..., 0] if out.shape[-1] == 1 else out)
    if mode == "1":
        return np.asarray(img, dtype=np.float32)  # bool -> 0.0 / 1.0
    if mode in _FULL_SCALE:
        a = np.asarray(img)
        if mode == "I" and a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            raise UserError(f"{path}: 32-bit integer image with values in [{a.min()}, {a.max()}]; "
                            "save it as an 8-bit or 16-bit PNG")
        return a.astype(np.float32) / np.float32(_FULL_SCALE[mode])
    if mode == "F" or mode.startswith("I"):
        raise UserError(f"{path}: image mode {mode} has no known value range; save it as an 8-bit or 16-bit PNG")
    return np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255.0)


def open_image(path: str | os.PathLike):
    """Open and fully decode one image file with Pillow, refusing decompression bombs.

    Parameters
    ----------
    path : path-like
        A PNG or JPEG file.

    Returns
    -------
    PIL.Image.Image
        The loaded image (detached from the file).

    Raises
    ------
    UserError
        A file Pillow cannot read (truncated, corrupt, not an image), or an image whose
        pixel count exceeds Pillow's decompression-bomb limit ``Image.MAX_IMAGE_PIXELS``
        (a small file that would expand to gigabytes): one line naming the file.
    """
    import struct
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return img.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError(f"{path}: refusing a possible decompression bomb ({e}); "
                        "shrink the image or remove it from the folder") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as e:
        raise UserError(f"{path}: Pillow cannot read this image ({e}); replace or remove the file") from None


# ----------------------------------------------------------------------------- digits


def load_digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (UCI optdigits test set), scaled to ``[-1, 1]``.

    1797 images with values 0..16, mapped by ``x / 8 - 1``; a stratified 80/20
    train/test split with the fixed seed 0 (1437 / 360 rows). Native size;
    :func:`losslab.data.load_dataset` resizes.

    Returns
    -------
    Dataset
        ``kind="image"``, ``shape=(1, 8, 8)``, labels 0..9, ``num_classes=10``.
    """
    # scikit-learn only here: importing it costs about a second at start-up.
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = torch.from_numpy((bunch.images / 8.0 - 1.0).astype(np.float32)).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=bunch.target)
    return Dataset(
        name="digits",
        kind="image",
        shape=tuple(x.shape[1:]),
        train=x[idx_train],
        test=x[idx_test],
        train_labels=y[idx_train],
        test_labels=y[idx_test],
        num_classes=10,
        class_names=list(CLASS_NAMES["digits"]),
    )


# ----------------------------------------------------------------------------- IDX files


def read_idx(path: str | os.PathLike, *, magic: int) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes.

    Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian int32
    magic number ``0x000008NN`` (type 0x08 = unsigned byte, NN = number of
    dimensions), NN big-endian int32 sizes, then ``prod(sizes)`` bytes.

    Parameters
    ----------
    path : path-like
        The ``.gz`` file.
    magic : int
        Expected magic number: ``0x803`` for images ``(N, H, W)``, ``0x801`` for labels ``(N,)``.

    Returns
    -------
    ndarray
        uint8 array of the stored shape (read-only view on the decompressed bytes).

    Raises
    ------
    UserError
        Not gzip, truncated, wrong magic number or wrong byte count; names the file.
    """
    path = check_file(path, "gzip IDX file")
    try:
        with gzip.open(path, "rb") as f:  # bounded: a gzip bomb is refused, not decompressed into memory
            raw = f.read(MAX_IDX_BYTES + 1)
        if len(raw) > MAX_IDX_BYTES:
            raise UserError(f"{path}: decompresses to more than {MAX_IDX_BYTES >> 20} MiB; not an MNIST-style "
                            "IDX file")
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: not a readable gzip IDX file ({e}); replace it with a good copy") from None
    if len(raw) < 4:
        raise UserError(f"{path}: IDX file is truncated ({len(raw)} bytes); replace it with a good copy")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise UserError(f"{path}: IDX magic number 0x{got:x}, expected 0x{magic:x}; wrong or corrupt file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: IDX header is truncated; replace it with a good copy")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    if len(raw) - header != expected:
        raise UserError(
            f"{path}: IDX file has {len(raw) - header} data bytes but its dims {dims} need {expected}; "
            "truncated or corrupt, replace it with a good copy"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


MAX_IDX_BYTES = 1 << 30
"""Largest decompressed IDX file read (1 GiB; MNIST's training images are 47 MB)."""


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 digest of a file (read in 1 MiB chunks)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_md5(path: str | os.PathLike, expected: str) -> bool:
    """True when the file's MD5 equals ``expected`` (a published checksum, hex)."""
    return md5sum(path) == expected.lower()


def cache_dir() -> Path:
    """Where downloaded data lives: ``$LOSSLAB_CACHE/data``.

    The cache root is ``$LOSSLAB_CACHE`` if set, else ``$XDG_CACHE_HOME/losslab``,
    else ``~/.cache/losslab``.
    """
    root = os.environ.get("LOSSLAB_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = str(Path(xdg) / "losslab") if xdg else str(Path.home() / ".cache" / "losslab")
    return Path(root).expanduser() / "data"


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched, in order, for the four IDX files of ``name``.

    Roots: ``data_dir``, ``$LOSSLAB_DATA``, :func:`cache_dir`; in each root
    ``ROOT/<name>``, ``ROOT`` and torchvision's ``ROOT/<MNIST|FashionMNIST>/raw``.
    """
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get("LOSSLAB_DATA"):
        roots.append(Path(os.environ["LOSSLAB_DATA"]).expanduser())
    roots.append(cache_dir())
    dirs: list[Path] = []
    for root in roots:
        for d in (root / name, root, root / _TORCHVISION_DIR[name] / "raw"):
            if d not in dirs:
                dirs.append(d)
    return dirs


def _how_to(name: str, dirs: list[Path], reason: str) -> str:
    files = ", ".join(IDX_FILE_NAMES)
    return (
        f"{name} data not found ({reason}); searched {', '.join(str(d) for d in dirs)}. "
        f"Pass --data-dir DIR or set LOSSLAB_DATA=DIR where DIR or DIR/{name} holds {files}, "
        f"or go online to download them into {cache_dir() / name}"
    )


def _download_file(url: str, dest: Path, md5: str, timeout: float) -> None:
    """Stream ``url`` to ``dest.part``, check its MD5, then rename to ``dest``.

    Raises
    ------
    OSError
        Network failure (``urllib.error.URLError`` and timeouts are OSErrors).
    UserError
        MD5 mismatch (the partial file is deleted).
    """
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if not verify_md5(part, md5):
        got = md5sum(part)
        part.unlink(missing_ok=True)
        raise UserError(f"download of {url} has MD5 {got}, expected {md5}; deleted it, try again later")
    os.replace(part, dest)


def download_idx(name: str, dest_dir: Path, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download the missing IDX files of ``name`` into ``dest_dir``, MD5-checked.

    Each file is tried on every mirror of :data:`MIRRORS` in order.

    Raises
    ------
    OSError
        Every mirror failed for some file (the last network error).
    UserError
        A downloaded file does not match its published MD5, or ``dest_dir`` cannot be created.
    """
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        msg = f"cannot create the data cache {dest_dir} ({e}); set LOSSLAB_CACHE to a writable folder"
        raise UserError(msg) from None
    for fname, md5 in IDX_FILES[name].items():
        dest = dest_dir / fname
        if dest.exists():
            continue
        last_error: OSError | None = None
        for base in MIRRORS[name]:
            try:
                _download_file(base + fname, dest, md5, timeout)
                break
            except OSError as e:
                last_error = e
        else:
            assert last_error is not None
            raise last_error


def find_idx_dir(name: str, *, data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The first folder of :func:`candidate_dirs` holding all four IDX files, downloading if needed.

    Raises
    ------
    UserError
        ``data_dir`` does not exist, or the files are missing and cannot be downloaded
        (one line saying how to supply them).
    """
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise UserError(f"data directory {data_dir} does not exist")
    dirs = candidate_dirs(name, data_dir)
    for d in dirs:
        if all((d / f).is_file() for f in IDX_FILE_NAMES):
            return d
    if not download:
        raise UserError(_how_to(name, dirs, "download disabled"))
    dest = cache_dir() / name
    try:
        download_idx(name, dest)
    except OSError as e:
        raise UserError(_how_to(name, dirs, f"download failed: {e}")) from None
    return dest


def load_idx_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> Dataset:
    """MNIST or Fashion-MNIST from the standard gzip IDX files, images in ``[-1, 1]``.

    Native size (28); :func:`losslab.data.load_dataset` subsets and resizes.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    data_dir : path-like, optional
        First place to look (see :func:`candidate_dirs`).
    download : bool
        Download missing files into :func:`cache_dir` (MD5-checked).

    Returns
    -------
    Dataset
        ``kind="image"``, ``shape=(1, 28, 28)``, 60000 train / 10000 test rows, labels,
        ``num_classes=10`` and the class names.

    Raises
    ------
    UserError
        Missing data while offline, corrupt files, images and labels of different lengths.
    """
    d = find_idx_dir(name, data_dir=data_dir, download=download)
    splits = {}
    for split, (fimg, flab) in {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}.items():
        imgs = read_idx(d / fimg, magic=IDX_IMAGES_MAGIC)  # (N, H, W) uint8
        labels = read_idx(d / flab, magic=IDX_LABELS_MAGIC)  # (N,) uint8
        if len(imgs) != len(labels):
            raise UserError(f"{d / fimg} has {len(imgs)} images but {d / flab} has {len(labels)} labels")
        if labels.size and labels.max() >= 10:
            raise UserError(f"{d / flab}: label {labels.max()} out of range 0..9")
        splits[split] = (uint8_to_unit(imgs).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    if x_train.shape[1:] != x_test.shape[1:]:  # headers that disagree: refused, not resized into agreement
        raise UserError(f"{d / TEST_IMAGES} holds {x_test.shape[-2]}x{x_test.shape[-1]} images but "
                        f"{d / TRAIN_IMAGES} {x_train.shape[-2]}x{x_train.shape[-1]}; the two splits must agree")
    return Dataset(
        name=name,
        kind="image",
        shape=tuple(x_train.shape[1:]),
        train=x_train,
        test=x_test,
        train_labels=y_train,
        test_labels=y_test,
        num_classes=10,
        class_names=list(CLASS_NAMES[name]),
    )
