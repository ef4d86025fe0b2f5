"""Files that are written atomically, so that an interrupted run loses nothing.

Every result file goes through :func:`atomic_write_bytes` (temp file in the
same directory, fsync, ``os.replace``): a reader sees either the old file or
the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable

from losslab.errors import UserError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-directory temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# The temp files of atomic_write_bytes: ".losslab-tmp." + NAME + "." + 8 characters of "a-z0-9_"
# (CPython's tempfile._RandomNameSequence) + ".tmp". The prefix is losslab's own: editors and other
# tools name their atomic-write temp files ".NAME.XXXXXXXX.tmp", and those are never touched.
TEMP_PREFIX = ".losslab-tmp."
_TEMP_NAME = re.compile(r"^\.losslab-tmp\..+\.[a-z0-9_]{8}\.tmp$")


def is_stale_temp(name: str) -> bool:
    """True for a name :func:`atomic_write_bytes` gives its temporary files: ``.losslab-tmp.NAME.XXXXXXXX.tmp``."""
    return bool(_TEMP_NAME.match(name))


def clean_stale_temps(directory: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Remove the temporary files that an interrupted :func:`atomic_write_bytes` left behind.

    Only regular files named ``.losslab-tmp.NAME.XXXXXXXX.tmp`` (see :func:`is_stale_temp`)
    are removed; nothing else is touched and symbolic links are not followed. A
    comparison cleans only its own folders (:func:`losslab.rundir.clean_temps`). Call it
    only while no other writer uses ``directory`` (hold
    :func:`losslab.rundir.lock_dir`): a live writer's temp file looks the same.

    Parameters
    ----------
    directory : path-like
        Where to look; a missing directory removes nothing.
    recursive : bool
        Also look in every subdirectory (the run directories of a comparison).

    Returns
    -------
    list of Path
        The files removed.
    """
    root = Path(directory)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    walk = os.walk(root) if recursive else [(str(root), [], os.listdir(root))]
    for folder, _dirs, names in walk:
        for name in names:
            p = Path(folder) / name
            if is_stale_temp(name) and p.is_file() and not p.is_symlink():
                try:
                    p.unlink()
                except FileNotFoundError:  # another cleaner got there first
                    continue
                removed.append(p)
    return removed


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_NUMPY_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)


def check_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Check that ``path`` is a regular file (symbolic links followed) before anything opens it.

    A FIFO would block the reader forever and a device such as ``/dev/zero``
    never ends; both are refused, as is a directory.

    Raises:
        UserError: ``PATH: no such file`` or ``PATH: not a regular file (a FIFO); give a WHAT``.
    """
    import stat

    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
        kind = next((k for test, k in kinds if test(mode)), "not a file")
        raise UserError(f"{path}: not a regular file ({kind}); give a {what}")
    return path


def _magic(path: Path, n: int) -> bytes:
    check_file(path)
    with open(path, "rb") as f:
        return f.read(n)


def read_npy(path: str | os.PathLike) -> Any:
    """Read one array saved with ``numpy.save`` (no pickled objects).

    Parameters
    ----------
    path : path-like
        The ``.npy`` file.

    Returns
    -------
    ndarray
        The array, fully read.

    Raises
    ------
    UserError
        Missing file, not a ``.npy`` file (wrong magic bytes), truncated or corrupt
        data, or an object array: one line naming the file and what to do.
    """
    import numpy as np

    path = Path(path)
    if _magic(path, len(_NPY_MAGIC)) != _NPY_MAGIC:
        raise UserError(f"{path}: not a NumPy .npy file (wrong magic bytes); save the array with numpy.save")
    try:
        arr = np.load(path, allow_pickle=False)
    except _NUMPY_READ_ERRORS as e:
        raise UserError(f"{path}: corrupt or truncated .npy file ({e}); save the array again with numpy.save") from None
    return arr


def read_npz(path: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """Read the arrays of a ``numpy.savez`` archive (no pickled objects), every byte checked.

    Parameters
    ----------
    path : path-like
        The ``.npz`` file.
    keys : iterable of str, optional
        Read only these names (those the archive has); default: every array.

    Returns
    -------
    dict
        ``{name: ndarray}``, fully read (a corrupt member fails here, not later).

    Raises
    ------
    UserError
        Missing file, not a zip archive, a truncated archive, a bad CRC or deflate
        stream, or an object array: one line naming the file and what to do.
    """
    import numpy as np

    path = Path(path)
    if _magic(path, 4) not in _ZIP_MAGICS:
        raise UserError(f"{path}: not a NumPy .npz archive (not a zip file); save the arrays with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.keys()) if keys is None else [k for k in keys if k in z.files]
            return {k: z[k] for k in names}
    except _NUMPY_READ_ERRORS as e:
        raise UserError(f"{path}: corrupt or truncated .npz archive ({e}); write it again") from None


def _clean(obj: Any) -> Any:
    """JSON cannot hold NaN/inf: write them as null (strict JSON readers accept the file)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return _clean(obj.item())
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), indent=2, sort_keys=False, allow_nan=False)


def npz_bytes(**arrays) -> bytes:
    """A compressed ``.npz`` archive of ``arrays`` as bytes (to pass to :func:`atomic_write_bytes`)."""
    import io as _io

    import numpy as np

    buf = _io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (NaN/inf become null) atomically."""
    atomic_write_bytes(path, (dumps(obj) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append rows to a JSON-lines file and fsync (a crash loses at most the last line)."""
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(_clean(row), allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file; a torn last line (crash mid-write) is skipped."""
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows
