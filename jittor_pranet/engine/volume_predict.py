"""NIfTI volume in, NIfTI label volume out: a trained 2-D multi-class model applied slice by slice.

The volume is cut along its acquisition's slice axis, each slice gets the intensity preprocessing the
model was trained with (recorded in the checkpoint as ``preprocessing``, see :func:`preprocessing_of`),
is resized to the model input (SciPy ``zoom``, order 3, as the official test scripts), the class is
the argmax of the logits and the label slice is resized back with nearest neighbour. The result is a
uint8 volume in the input's voxel grid, written with the input's affine and header.

Slices are laid out as the prepare step wrote them for training, so a volume predicted here gets the
labels that ``test`` gives the same volume through the prepared files: Synapse-style CT keeps the
in-plane axes in file order, ACDC-style MRI swaps them (``in_plane`` ``"ascending"`` / ``"descending"``).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..data.volume_slices import (  # noqa: F401  (re-exported: the names predict and its tests use)
    check_preprocessing,
    describe_preprocessing,
    from_slices,
    normalise_intensity,
    slice_axis_of,
    to_slices,
)
from ..errors import UserError
from ..utils.io import atomic_imwrite, atomic_write_with

NIFTI_SUFFIX = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
#: Largest volume read (voxels): 2**29 float32 voxels are 2 GiB; a header declaring more is refused
#: before any data is read.
MAX_VOXELS = 1 << 29
CT_WINDOW = (-125.0, 275.0)
#: What a checkpoint without recorded preprocessing is assumed to have been trained with (Synapse CT).
DEFAULT_PREPROCESSING: Dict[str, Any] = {"intensity": "ct_window", "window": list(CT_WINDOW), "in_plane": "ascending"}

PredictLogits = Callable[[np.ndarray], np.ndarray]


def is_nifti(path: Path) -> bool:
    return bool(NIFTI_SUFFIX.search(Path(path).name))


def nifti_stem(path: Path) -> str:
    return NIFTI_SUFFIX.sub("", Path(path).name)


def preprocessing_of(manifest: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The intensity / layout a prepared dataset's ``dataset.json`` describes (None when it says nothing).

    ``prepare synapse`` (and ``kits19``) write ``ct_window``; ``prepare acdc`` writes a per-volume
    min-max ``normalisation`` and transposes the in-plane axes."""
    if not isinstance(manifest, dict):
        return None
    if manifest.get("ct_window"):
        lo, hi = (float(v) for v in manifest["ct_window"])
        return {"intensity": "ct_window", "window": [lo, hi], "in_plane": "ascending"}
    if "min-max" in str(manifest.get("normalisation", "")):
        return {"intensity": "minmax", "in_plane": "descending"}
    return None


def training_preprocessing(data) -> Optional[Dict[str, Any]]:
    """What a :class:`~jittor_pranet.data.multiclass_layouts.MultiClassData` was prepared with, from its
    ``dataset.json``, else from its layout (synapse: the CT window; acdc: per-volume min-max); None if unknown."""
    import json

    intensity = getattr(data, "intensity", None)  # raw volumes normalised at read time (nnU-Net NIfTI)
    if intensity is not None and intensity.preprocessing is not None:
        return dict(intensity.preprocessing)
    manifest = None
    path = Path(data.root) / "dataset.json"
    if path.is_file():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            manifest = None
    found = preprocessing_of(manifest)
    if found is not None:
        return found
    if data.kind == "synapse":
        return dict(DEFAULT_PREPROCESSING)
    if str(data.kind).startswith("acdc"):
        return {"intensity": "minmax", "in_plane": "descending"}
    return None


@dataclass
class NiftiVolume:
    path: Path
    data: np.ndarray            # file voxel order, float32
    affine: np.ndarray
    header: Any                 # nibabel header (copied into the output)
    zooms: Tuple[float, ...]


def check_nifti_header(path: Path) -> Tuple[int, ...]:
    """Shape from the header only (nothing read): 3-D (a trailing 4th axis of 1 is allowed), not huge."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
    except Exception as exc:  # nibabel raises several types for broken or non-NIfTI files
        raise UserError(f"{path}: not a readable NIfTI volume ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise UserError(f"{path}: a {len(shape)}-D image of shape {'x'.join(map(str, shape))}; "
                        "predict takes 3-D volumes (one channel, one time point)")
    if min(shape) < 1:
        raise UserError(f"{path}: the header declares an empty volume ({'x'.join(map(str, shape))})")
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise UserError(f"{path}: the header declares {'x'.join(map(str, shape))} = {voxels:,} voxels, more than "
                        f"the {MAX_VOXELS:,} this reads; crop or resample the volume first")
    return shape


def read_nifti_volume(path: Path) -> NiftiVolume:
    import nibabel as nib

    shape = check_nifti_header(path)
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except Exception as exc:  # a truncated file fails here, on reading the data
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: cannot read the voxel data (truncated or corrupt file?): {first}") from None
    if not np.isfinite(data).all():
        raise UserError(f"{path}: the volume holds NaN or infinite values")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return NiftiVolume(path=Path(path), data=data, affine=np.asarray(img.affine), header=img.header, zooms=zooms)


def _tiles(length: int, size: int) -> List[int]:
    """Window starts covering ``length`` with windows of ``size`` overlapping by half."""
    if length <= size:
        return [0]
    stride = max(1, size // 2)
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def slice_probabilities(slices: np.ndarray, predict_logits: PredictLogits, input_size: int, batch_size: int = 8,
                        tile: bool = False, progress: bool = True) -> np.ndarray:
    """D x H x W slices -> D x K x H x W softmax probabilities at the slices' size.

    Default: each slice zoomed to the input (order 3), logits zoomed back (order 1) for the
    probabilities. The labels (argmax) are taken at the model's size and zoomed with order 0 by
    :func:`predict_slices`, as the official test scripts do. ``tile``: slices larger than the input
    are cut into overlapping input-size windows (half overlap) whose logits are averaged, no resizing.
    """
    logits = _slice_logits(slices, predict_logits, input_size, batch_size, tile, progress)
    out = []
    for lg in logits:
        if lg.shape[1:] != slices.shape[1:]:
            lg = ndimage.zoom(lg, (1, slices.shape[1] / lg.shape[1], slices.shape[2] / lg.shape[2]), order=1)
        e = np.exp(lg - lg.max(axis=0, keepdims=True))
        out.append((e / e.sum(axis=0, keepdims=True)).astype(np.float32))
    return np.stack(out)


def _slice_logits(slices: np.ndarray, predict_logits: PredictLogits, input_size: int, batch_size: int,
                  tile: bool, progress: bool) -> List[np.ndarray]:
    """Per slice: K x S x S logits at the model size (resize mode) or K x H x W (tile mode)."""
    from tqdm import tqdm

    depth, h, w = slices.shape
    use_tiles = tile and (h > input_size or w > input_size)
    inputs: List[Tuple[int, Tuple[int, int], np.ndarray]] = []  # (slice, tile origin, input)
    for k in range(depth):
        s = slices[k]
        if use_tiles:
            padded = np.pad(s, ((0, max(0, input_size - h)), (0, max(0, input_size - w))), mode="edge")
            for y in _tiles(padded.shape[0], input_size):
                for x in _tiles(padded.shape[1], input_size):
                    inputs.append((k, (y, x), padded[y:y + input_size, x:x + input_size]))
        else:
            if (h, w) != (input_size, input_size):
                s = ndimage.zoom(s, (input_size / h, input_size / w), order=3)
            inputs.append((k, (0, 0), s))
    results: List[Optional[np.ndarray]] = [None] * depth
    counts: List[Optional[np.ndarray]] = [None] * depth
    bar = tqdm(total=len(inputs), desc="slices", unit="slice", file=sys.stderr, leave=False,
               disable=None if progress else True)
    batch_size = max(1, batch_size)
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start:start + batch_size]
        batch = np.ascontiguousarray(np.stack([c[2] for c in chunk])[:, None], dtype=np.float32)
        logits = np.asarray(predict_logits(batch), dtype=np.float32)
        if logits.ndim != 4 or logits.shape[0] != batch.shape[0] or logits.shape[2:] != batch.shape[2:]:
            raise UserError(f"the model returned logits of shape {tuple(logits.shape)} for input {tuple(batch.shape)}")
        for (k, (y, x), _), lg in zip(chunk, logits):
            if not use_tiles:
                results[k] = lg
                continue
            if results[k] is None:
                ph, pw = max(h, input_size), max(w, input_size)
                results[k] = np.zeros((lg.shape[0], ph, pw), np.float32)
                counts[k] = np.zeros((ph, pw), np.float32)
            results[k][:, y:y + input_size, x:x + input_size] += lg
            counts[k][y:y + input_size, x:x + input_size] += 1.0
        bar.update(len(chunk))
    bar.close()
    if use_tiles:
        return [(r / c)[:, :h, :w] for r, c in zip(results, counts)]
    return results  # type: ignore[return-value]


def predict_slices(slices: np.ndarray, predict_logits: PredictLogits, input_size: int, batch_size: int = 8,
                   tile: bool = False, progress: bool = True) -> np.ndarray:
    """D x H x W slices -> D x H x W uint8 labels (argmax at the model size, nearest resize back)."""
    depth, h, w = slices.shape
    out = np.zeros((depth, h, w), np.uint8)
    for k, lg in enumerate(_slice_logits(slices, predict_logits, input_size, batch_size, tile, progress)):
        lab = lg.argmax(axis=0)
        if lab.shape != (h, w):
            lab = ndimage.zoom(lab, (h / lab.shape[0], w / lab.shape[1]), order=0)
        out[k] = lab
    return out


def write_nifti_like(path: Path, data: np.ndarray, like: NiftiVolume) -> Path:
    """``data`` in ``like``'s voxel grid, with its affine and a copy of its header (dtype set from data)."""
    import nibabel as nib

    header = like.header.copy()
    header.set_data_dtype(data.dtype)
    img = nib.Nifti1Image(data, like.affine, header=header)
    img.header.set_slope_inter(1.0, 0.0)
    return atomic_write_with(path, lambda fh: _save_nifti(img, fh, Path(path)))


def _save_nifti(img, fh, final: Path) -> None:
    """nibabel picks gzip from the file name, which a temporary name lacks: compress here."""
    import gzip

    raw = img.to_bytes()
    if final.name.lower().endswith(".gz"):
        with gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
            gz.write(raw)
    else:
        fh.write(raw)


def montage(slices: np.ndarray, labels: np.ndarray, num_classes: int, count: int = 4) -> np.ndarray:
    """BGR picture: up to ``count`` slices (evenly spread over those with a predicted class) side by side."""
    from ..evaluation.volumes import overlay_slice_indices
    from ..utils.overlay import label_palette, overlay_labels

    palette = label_palette(max(num_classes, 2))
    lo, hi = float(slices.min()), float(slices.max())
    tiles = []
    for k in overlay_slice_indices(labels, count):
        gray = np.clip(np.rint((slices[k] - lo) / (hi - lo) * 255.0) if hi > lo else 0 * slices[k], 0, 255)
        rgb = np.repeat(gray.astype(np.uint8)[:, :, None], 3, axis=2)
        tiles.append(overlay_labels(rgb, labels[k], palette=palette))
        tiles.append(np.full((rgb.shape[0], 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)[:, :, ::-1]


@dataclass
class VolumeOutputs:
    labels: Path
    probabilities: List[Path]
    montage: Optional[Path]
    slice_axis: int
    shape: Tuple[int, ...]


def predict_nifti(path: Path, out_dir: Path, predict_logits: PredictLogits, input_size: int,
                  preprocessing: Dict[str, Any], class_names: Sequence[str], axis: Optional[int] = None,
                  batch_size: int = 8, probabilities: bool = False, montage_slices: int = 4, tile: bool = False,
                  progress: bool = True) -> VolumeOutputs:
    """Predict one NIfTI volume; writes ``<stem>_seg.nii.gz`` (+ ``_prob_<class>.nii.gz``, ``_montage.png``)."""
    vol = read_nifti_volume(path)
    slice_axis = slice_axis_of(vol.affine, vol.zooms, vol.data.shape) if axis is None else int(axis)
    in_plane = preprocessing.get("in_plane", "ascending")
    slices = to_slices(normalise_intensity(vol.data, preprocessing), slice_axis, in_plane)
    stem = nifti_stem(path)
    labels = predict_slices(slices, predict_logits, input_size, batch_size, tile, progress)
    written_probs: List[Path] = []
    if probabilities:
        probs = slice_probabilities(slices, predict_logits, input_size, batch_size, tile, progress=False)
        for c, name in enumerate(["background", *class_names]):
            data = np.ascontiguousarray(from_slices(probs[:, c], slice_axis, in_plane), dtype=np.float32)
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
            written_probs.append(write_nifti_like(out_dir / f"{stem}_prob_{c}_{safe}.nii.gz", data, vol))
    seg = write_nifti_like(out_dir / f"{stem}_seg.nii.gz",
                           np.ascontiguousarray(from_slices(labels, slice_axis, in_plane)), vol)
    picture = None
    if montage_slices > 0:
        picture = atomic_imwrite(out_dir / f"{stem}_montage.png",
                                 montage(slices, labels, len(class_names) + 1, montage_slices))
    return VolumeOutputs(labels=seg, probabilities=written_probs, montage=picture, slice_axis=slice_axis,
                         shape=tuple(vol.data.shape))


__all__ = ["training_preprocessing", "DEFAULT_PREPROCESSING", "MAX_VOXELS", "check_nifti_header", "describe_preprocessing", "from_slices",
           "is_nifti", "montage", "nifti_stem", "normalise_intensity", "predict_nifti", "predict_slices",
           "preprocessing_of", "read_nifti_volume", "slice_axis_of", "slice_probabilities", "to_slices",
           "write_nifti_like"]
