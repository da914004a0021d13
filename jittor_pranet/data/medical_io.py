"""Reading and writing the array files of medical segmentation datasets (npz, h5, NIfTI).

Every reader checks the keys it needs and names the file and the keys it found, because a wrong
preprocessing archive (``img`` instead of ``image``, a prediction file instead of a data file) is the
usual cause of a failed run. Writers are atomic: a crash leaves the old file or the complete new one.
h5py and nibabel are imported where used, so the rest of the data layer works without them.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from jittor_pranet.data.io import PathLike
from jittor_pranet.errors import UserError
from jittor_pranet.utils.io import atomic_write_bytes, atomic_write_to

Spacing = Optional[Tuple[float, ...]]

#: Names the image array has in the layouts in circulation (TransUNet/SSL4MIS: image; MT-UNet/CASCADE ACDC: img).
IMAGE_KEYS: Tuple[str, ...] = ("image", "img")
LABEL_KEYS: Tuple[str, ...] = ("label",)


def _pick(found: Sequence[str], wanted: Sequence[str], path: Path, what: str) -> str:
    for key in wanted:
        if key in found:
            return key
    raise UserError(
        f"{path}: no {what} array (looked for {' or '.join(repr(k) for k in wanted)}; "
        f"found keys: {', '.join(sorted(found)) or 'none'})"
    )


def _spacing_tuple(value, path: Path) -> Spacing:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"{path}: voxel spacing must be numbers, got {value!r:.60}") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise UserError(f"{path}: voxel spacing must be positive numbers, got {arr.tolist()}")
    return tuple(float(v) for v in arr)


def _numeric(value, path: Path, key: str) -> np.ndarray:
    """An array read from a file, refused unless it holds numbers (a string or object array, or an
    h5 group where an array belongs, is a wrong file, not data)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{path}: {key!r} holds {arr.dtype} values, not numbers")
    return arr


def read_npz(path: PathLike) -> Tuple[np.ndarray, np.ndarray, Spacing]:
    """(image, label, spacing or None) of an ``.npz`` slice or volume (keys image|img, label[, spacing])."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # an .npy saved under an .npz name
            raise UserError(f"{path}: a single array ({type(data).__name__}), not an .npz archive with "
                            f"{' or '.join(repr(k) for k in IMAGE_KEYS)} and 'label'")
        with data:
            keys = list(data.files)
            image_key, label_key = _pick(keys, IMAGE_KEYS, path, "image"), _pick(keys, LABEL_KEYS, path, "label")
            image = _numeric(data[image_key], path, image_key)
            label = _numeric(data[label_key], path, label_key)
            spacing = data["spacing"] if "spacing" in keys else None
    except UserError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    return image, label, _spacing_tuple(spacing, path)


def read_h5(path: PathLike) -> Tuple[np.ndarray, np.ndarray, Spacing]:
    """(image, label, spacing or None) of an ``.h5`` slice or volume.

    Spacing comes from a ``spacing`` attribute or dataset, as our ``prepare`` writes it; the
    published archives carry none.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            keys = list(f.keys())
            image_key, label_key = _pick(keys, IMAGE_KEYS, path, "image"), _pick(keys, LABEL_KEYS, path, "label")
            image, label = (_h5_array(f, key, path) for key in (image_key, label_key))
            spacing = f.attrs.get("spacing")
            if spacing is None and "spacing" in keys:
                spacing = _h5_array(f, "spacing", path)
    except UserError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:  # truncated file, broken link
        raise UserError(f"cannot read {path}: {exc}") from None
    return image, label, _spacing_tuple(spacing, path)


def _h5_array(f, key: str, path: Path) -> np.ndarray:
    import h5py

    node = f[key]  # an external link to a missing file fails here (KeyError)
    if not isinstance(node, h5py.Dataset):
        raise UserError(f"{path}: {key!r} is an h5 {type(node).__name__.lower()}, not an array")
    return _numeric(node[()], path, key)


def read_arrays(path: PathLike) -> Tuple[np.ndarray, np.ndarray, Spacing]:
    """:func:`read_npz` or :func:`read_h5` by file suffix."""
    path = Path(path)
    if path.name.endswith(".npz"):
        return read_npz(path)
    if path.name.endswith((".h5", ".hdf5")):
        return read_h5(path)
    raise UserError(f"{path}: not an .npz or .h5 file")


def write_h5(path: PathLike, image: np.ndarray, label: np.ndarray, spacing: Spacing = None,
             compression: Optional[str] = None) -> Path:
    """Write ``image``/``label`` (and ``spacing`` as an attribute) to an ``.h5`` file atomically."""
    import h5py

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image, compression=compression)
            f.create_dataset("label", data=label, compression=compression)
            if spacing is not None:
                f.attrs["spacing"] = np.asarray(spacing, dtype=np.float64)

    return atomic_write_to(path, write)


def write_npz(path: PathLike, image: np.ndarray, label: np.ndarray, image_key: str = "image",
              spacing: Spacing = None) -> Path:
    """Write an uncompressed ``.npz`` with ``image_key`` and ``label`` (and ``spacing``) atomically."""
    arrays = {image_key: image, "label": label}
    if spacing is not None:
        arrays["spacing"] = np.asarray(spacing, dtype=np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


#: Deflate cannot compress better than about 1032:1, so a ``.gz`` file of n bytes inflates to at most
#: this many times n bytes; a header that declares more is corrupt (or built to exhaust memory).
DEFLATE_MAX_RATIO = 1032


def _load_nifti_header(path: Path):
    """``nib.load`` (header only; the voxels stay on disk) with the declared size checked against
    what the file can hold, so that no array is allocated for a volume the file cannot contain."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
        itemsize = int(img.get_data_dtype().itemsize)
        offset = int(img.header.get("vox_offset", 0) or 0) if hasattr(img.header, "get") else 0
    except Exception as exc:  # nibabel raises several types for broken or non-NIfTI files
        raise UserError(f"cannot read NIfTI file {path}: {exc}") from None
    declared = offset + itemsize * int(np.prod(shape, dtype=object))
    stored = path.stat().st_size
    compressed = path.name.lower().endswith(".gz")
    room = stored * DEFLATE_MAX_RATIO + 4096 if compressed else stored
    if declared > room:
        raise UserError(f"cannot read NIfTI file {path}: its header declares a {'x'.join(map(str, shape))} volume "
                        f"({declared:,} bytes) that a {stored:,}-byte{' compressed' if compressed else ''} file "
                        "cannot hold (truncated or corrupt)")
    return img, shape


def nifti_header(path: PathLike):
    """(nibabel image, declared shape) of a NIfTI file, header only, after the plausibility check of
    :func:`read_nifti` (the voxels stay on disk)."""
    return _load_nifti_header(Path(path))


def nifti_shape(path: PathLike) -> Tuple[int, ...]:
    """The volume shape a NIfTI header declares, after the plausibility check of :func:`read_nifti`."""
    return _load_nifti_header(Path(path))[1]


def read_nifti(path: PathLike) -> Tuple[np.ndarray, Tuple[float, ...]]:
    """(array in the file's voxel order, float32; voxel sizes along those axes) of a NIfTI file.

    float32 holds CT Hounsfield units and label ids exactly and halves the memory of float64. A
    header declaring more voxels than the file can hold is refused before anything is allocated.
    """
    path = Path(path)
    img, _ = _load_nifti_header(path)
    try:
        array = np.asarray(img.dataobj, dtype=np.float32)
        zooms = tuple(float(z) for z in img.header.get_zooms()[: array.ndim])
    except Exception as exc:  # nibabel raises several types for broken or non-NIfTI files
        raise UserError(f"cannot read NIfTI file {path}: {exc}") from None
    return array, zooms


__all__ = ["DEFLATE_MAX_RATIO", "IMAGE_KEYS", "LABEL_KEYS", "nifti_header", "nifti_shape", "read_arrays", "read_h5", "read_nifti",
           "read_npz", "write_h5", "write_npz"]
