"""Atomic file writes: readers (and a crash) see either the old file or the complete new one.

The data goes to a temporary file in the destination folder (same filesystem, so ``os.replace`` is an
atomic rename), is fsync'ed, then renamed over the destination.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Mapping, Sequence, Tuple, Union

import numpy as np

from ..interrupt import removed_if_killed

PathLike = Union[str, "os.PathLike[str]"]


def can_create_in(folder: PathLike) -> bool:
    """Whether entries can be created in ``folder``: tried for real (a temporary folder made and removed),
    since permission bits say nothing for root or for special filesystems such as /proc."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=folder))
        return True
    except OSError:
        return False


def _temp_name_beside(path: Path) -> str:
    """A fresh temporary name in the destination folder. The name is chosen before the file exists,
    so that whoever creates it can always remove it: a Ctrl-C raised as ``mkstemp`` returns (Python
    checks for signals right after each call) left a stray ``.NAME.xxx.tmp`` that nobody knew."""
    import secrets

    return str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")


def _create_exclusive(tmp: str) -> int:
    """Create ``tmp`` (it must not exist) with the mode a plain ``open()`` gives: 0666 less the umask."""
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)


def _remove_quietly(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def atomic_write_to(path: PathLike, write: Callable[[str], None], make_parents: bool = True) -> Path:
    """``write(tmp_name)`` makes the file under a temporary name beside ``path`` (mode 0666 less the
    umask), which is then renamed into place. An error (a full disk, Ctrl-C, or one ``write`` raises on
    purpose, e.g. a failed check) leaves the previous file untouched and no temporary file. For
    writers that want a file name (h5py, ONNX); :func:`atomic_write_with` hands over an open file."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name_beside(path)
    with removed_if_killed(tmp):
        try:
            os.close(_create_exclusive(tmp))
            write(tmp)
            os.replace(tmp, path)
        except BaseException:
            _remove_quietly(tmp)
            raise
    _fsync_dir(path.parent)
    return path


def atomic_write_with(path: PathLike, write: Callable[[BinaryIO], None], make_parents: bool = True) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it and rename it over ``path``
    (see :func:`atomic_write_to`)."""

    def write_synced(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write_to(path, write_synced, make_parents)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders; returns the path."""
    return atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_many(files: Mapping[PathLike, bytes]) -> List[Path]:
    """Write several files all or nothing: every temporary file is written and synced before the first
    rename, so a failure (a full disk, an unwritable folder) leaves none of them half-done."""
    staged: List[Tuple[str, Path]] = []
    with ExitStack() as tracked:
        try:
            for path, data in files.items():
                path = Path(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                staged.append((_temp_name_beside(path), path))  # named before it exists: always removable
                tracked.enter_context(removed_if_killed(staged[-1][0]))
                with os.fdopen(_create_exclusive(staged[-1][0]), "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
        except BaseException:
            for tmp, _ in staged:
                _remove_quietly(tmp)
            raise
        for tmp, path in staged:
            os.replace(tmp, path)
            _fsync_dir(path.parent)
    return [path for _, path in staged]


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


__all__ = ["can_create_in", "atomic_imwrite", "atomic_write_to", "atomic_write_bytes", "atomic_write_many", "atomic_write_text", "atomic_write_with",
           "staged_output_folder"]


@contextmanager
def staged_output_folder(out: PathLike, error=None) -> Iterator[Path]:
    """Build a new output folder all-or-nothing: yields a temporary folder next to ``out`` (same file
    system), renamed to ``out`` when the block succeeds and removed when it fails.

    ``out`` must be absent or an empty folder; it is never touched before the rename, so a failure
    leaves it (and anything that was there before) exactly as it was, and parent folders this call
    had to create are removed again. ``error(message)`` builds the exception for a refused ``out``
    (default ``FileExistsError``)."""
    out = Path(out)
    make = error or FileExistsError
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise make(f"output folder {out} exists and is not empty; choose a new folder")
    created: List[Path] = []
    parent = out.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    import secrets

    stage = out.parent / f".{out.name}.partial-{secrets.token_hex(6)}"  # named first: always removable
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(stage, 0o777)  # an ordinary folder: 0777 less the umask
        yield stage
        os.replace(stage, out)  # an empty ``out`` folder is replaced as well
    except BaseException:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                break
        raise


class Unfinished:
    """What a command writes into a folder that may already hold files (a run folder, a results
    folder): when the block fails (a bad file met half-way, a full disk, Ctrl-C, SIGTERM), the files
    and folders it created are removed again and everything that was there before is left as it was.

    ``keep``: file names that make the partial result worth keeping. A training run whose
    ``last.pkl`` exists can be resumed, so if any ``keep`` file exists when the block fails,
    nothing is removed."""

    def __init__(self, folder: PathLike, keep: Sequence[str] = ()):
        self.folder = Path(folder).absolute()
        self.keep = tuple(keep)
        self.before: set = set()
        self.created_parents: List[Path] = []
        self._watchdog = None

    def _entries(self) -> set:
        if not self.folder.is_dir():
            return set()
        return {p for p in self.folder.rglob("*")}

    def __enter__(self) -> "Unfinished":
        self.before = self._entries()
        p = self.folder
        while not p.exists() and p != p.parent:
            self.created_parents.append(p)  # deepest first, the folder itself included
            p = p.parent
        if self.created_parents:  # all of it will be ours: the watchdog may remove it whole
            from ..interrupt import folder_removed_if_killed

            keep = self.folder / self.keep[0] if self.keep else None
            self._watchdog = folder_removed_if_killed(self.created_parents[-1], keep)
            self._watchdog.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._watchdog is not None:
            self._watchdog.__exit__(None, None, None)
            self._watchdog = None
        if exc_type is None or any((self.folder / name).exists() for name in self.keep):
            return False
        new = sorted(self._entries() - self.before, key=lambda p: len(p.parts), reverse=True)
        for path in new:  # deepest first: files, then the folders they emptied
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except OSError:
                pass
        for folder in self.created_parents:
            try:
                folder.rmdir()
            except OSError:
                break
        return False


__all__ += ["Unfinished"]
