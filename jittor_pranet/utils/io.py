"""Atomic file writes: readers (and a crash) see either the old file or the complete new one.

The data goes to a temporary file in the destination folder (same filesystem, so ``os.replace`` is an
atomic rename), is fsync'ed, then renamed over the destination.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (best effort: not every platform/filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_imwrite(path: PathLike, array: np.ndarray) -> Path:
    """Encode ``array`` with OpenCV in the format of the path's suffix (BGR order) and write it atomically."""
    import cv2

    path = Path(path)
    ext = path.suffix.lower()
    if not ext:
        raise ValueError(f"{path}: an image path needs a suffix such as .png")
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(array))
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a {array.dtype} array of shape {array.shape} as {ext}")
    return atomic_write_bytes(path, buf.tobytes())


__all__ = ["atomic_imwrite", "atomic_write_bytes", "atomic_write_text"]
