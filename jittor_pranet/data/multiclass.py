"""Multi-class (organ / cardiac structure) segmentation samples: class sets, slice and volume records,
case-level splits, label checks, the official augmentation, the training dataset and volume loading.

Finding a dataset on disk is :mod:`jittor_pranet.data.multiclass_layouts` (``load_multiclass_data``).
Everything here is numpy/SciPy only, like the rest of the data layer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from jittor_pranet.data.io import read_image_rgb
from jittor_pranet.data.medical_io import read_arrays
from jittor_pranet.errors import UserError

DATASET_JSON = "dataset.json"


# ---------------------------------------------------------------------------------------------
# Class sets


@dataclass(frozen=True)
class ClassSet:
    """Names of the foreground classes 1..K of a dataset (class 0 is the background)."""

    name: str
    names: Tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.names) + 1


#: The 8 organs of the Synapse benchmark, in label order (official test script's ``classes``).
SYNAPSE_CLASSES = ClassSet("synapse", (
    "spleen", "right kidney", "left kidney", "gallbladder", "pancreas", "liver", "stomach", "aorta"))
#: The 13 organs of the raw BTCV/Synapse labels.
SYNAPSE_RAW_CLASSES = ClassSet("synapse14", (
    "spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
    "inferior vena cava", "portal vein and splenic vein", "pancreas", "right adrenal gland",
    "left adrenal gland"))
#: ACDC: right ventricle, myocardium, left ventricle.
ACDC_CLASSES = ClassSet("acdc", ("RV", "Myo", "LV"))

#: Raw 14-label Synapse -> the 8-organ set, as the official loader maps it for 9 classes:
#: esophagus, IVC, portal/splenic vein and both adrenal glands (5, 9, 10, 12, 13) become background,
#: pancreas (11) becomes 5.
SYNAPSE_14_TO_8 = np.array([0, 1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 5, 0, 0], dtype=np.int64)
LABEL_REMAPS = {"synapse14": SYNAPSE_14_TO_8}
#: ``data.label_remap``: auto (what dataset.json says), none, or one of the tables of LABEL_REMAPS
LABEL_REMAP_CHOICES = ("auto", "none", *LABEL_REMAPS)


def remap_labels(label: np.ndarray, table: np.ndarray, source: str = "labels") -> np.ndarray:
    """``table[label]``; a value outside the table is an error naming ``source``."""
    label = np.asarray(label)
    if label.dtype.kind == "f" and label.size and not np.isfinite(label).all():
        raise UserError(f"{source}: label map holds NaN or infinite values")
    label = (np.rint(label) if label.dtype.kind == "f" else label).astype(np.int64)
    if label.size and (label.min() < 0 or label.max() >= len(table)):
        bad = int(label.max()) if label.max() >= len(table) else int(label.min())
        raise UserError(f"{source}: label value {bad} is outside the remap table (values 0..{len(table) - 1})")
    return table[label]


# ---------------------------------------------------------------------------------------------
# Records: where a slice or a volume is, and which case it belongs to


@dataclass(frozen=True)
class SliceRecord:
    """One 2-D training sample: an npz/h5 slice, or an image with a PNG label map (``label_path``)."""

    path: Path
    volume: str
    case: str
    index: int
    label_path: Optional[Path] = None

    @property
    def name(self) -> str:
        return file_stem(self.path)


@dataclass(frozen=True)
class VolumeRecord:
    """A volume for evaluation: one npz/h5 file (D x H x W), or slices stacked in index order."""

    name: str
    case: str
    path: Optional[Path] = None
    slices: Tuple[SliceRecord, ...] = ()


@dataclass
class VolumeCase:
    """A loaded volume: image D x H x W float32, label D x H x W int64, spacing (d, h, w) or None."""

    name: str
    image: np.ndarray
    label: np.ndarray
    spacing: Optional[Tuple[float, float, float]] = None


_SUFFIXES = (".npy.h5", ".npz", ".h5", ".hdf5")

_SLICE_PATTERNS = (
    re.compile(r"^(?P<case>case_\d+)_slice(?P<phase>ED|ES)_(?P<index>\d+)$"),     # MT-UNet/CASCADE ACDC
    re.compile(r"^(?P<case>patient\d+)_(?P<frame>frame\d+)_slice_(?P<index>\d+)$"),  # SSL4MIS ACDC
    re.compile(r"^(?P<case>.+?)_slice_?(?P<index>\d+)$"),                            # TransUNet and generic
)
_VOLUME_PATTERNS = (
    re.compile(r"^(?P<case>case_\d+)_volume_(?:ED|ES)$"),
    re.compile(r"^(?P<case>patient\d+)_frame\d+$"),
)


def file_stem(path: Path) -> str:
    """File name without its data suffix (``case0001.npy.h5`` -> ``case0001``)."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def parse_slice_name(stem: str) -> Optional[Tuple[str, str, int]]:
    """(volume, case, slice index) from a slice file's stem, or None when it names no slice.

    ``case0005_slice012`` -> (case0005, case0005, 12); ``case_019_sliceED_3`` -> (case_019_ED, case_019, 3);
    ``patient001_frame01_slice_4`` -> (patient001_frame01, patient001, 4).
    """
    for pattern in _SLICE_PATTERNS:
        m = pattern.match(stem)
        if m:
            parts = m.groupdict()
            case = parts["case"]
            if parts.get("phase"):
                volume = f"{case}_{parts['phase']}"
            elif parts.get("frame"):
                volume = f"{case}_{parts['frame']}"
            else:
                volume = case
            return volume, case, int(parts["index"])
    return None


def case_of_volume(name: str) -> str:
    """The case (patient) a volume belongs to: ``patient001_frame01`` -> ``patient001``."""
    for pattern in _VOLUME_PATTERNS:
        m = pattern.match(name)
        if m:
            return m.group("case")
    return name


def slice_record(path: Path) -> SliceRecord:
    """Record of a slice file, with volume, case and index parsed from its name."""
    parsed = parse_slice_name(file_stem(path))
    if parsed is None:  # a file that is a case of its own (2-D data)
        return SliceRecord(path=path, volume=file_stem(path), case=file_stem(path), index=0)
    volume, case, index = parsed
    return SliceRecord(path=path, volume=volume, case=case, index=index)


def volumes_from_slices(slices: Sequence[SliceRecord]) -> List[VolumeRecord]:
    """Group slices into volumes (sorted by name), slices in index order within each."""
    groups: Dict[str, List[SliceRecord]] = {}
    for record in slices:
        groups.setdefault(record.volume, []).append(record)
    out = []
    for name in sorted(groups):
        members = sorted(groups[name], key=lambda r: r.index)
        out.append(VolumeRecord(name=name, case=members[0].case, slices=tuple(members)))
    return out


def volume_record(path: Path) -> VolumeRecord:
    """Record of a volume file, with its case parsed from its name."""
    name = file_stem(path)
    return VolumeRecord(name=name, case=case_of_volume(name), path=path)


# ---------------------------------------------------------------------------------------------
# Splits by case


def split_cases(cases: Sequence[str], val_fraction: float, seed: int = 0) -> Tuple[List[str], List[str]]:
    """Seeded split of case (patient) ids into (train, val), both sorted; independent of input order.

    With ``0 < val_fraction`` and two or more cases, each side gets at least one case.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    unique = sorted(set(cases))
    n_val = int(round(len(unique) * val_fraction))
    if val_fraction > 0 and len(unique) >= 2:
        n_val = min(max(n_val, 1), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    val = sorted(unique[i] for i in order[:n_val])
    train = sorted(set(unique) - set(val))
    return train, val


def check_disjoint(first: Sequence[str], second: Sequence[str], first_name: str, second_name: str) -> None:
    """Raise when a case is on both sides (slices of one patient in training and in evaluation)."""
    both = sorted(set(first) & set(second))
    if both:
        shown = ", ".join(both[:5]) + (", ..." if len(both) > 5 else "")
        raise UserError(
            f"{len(both)} case(s) in both the {first_name} and the {second_name} set: {shown} "
            "(the split must be by case/patient)"
        )


# ---------------------------------------------------------------------------------------------
# Reading slices and checking labels


def check_labels(label: np.ndarray, num_classes: int, source: str) -> np.ndarray:
    """``label`` as int64 after checking that every value is an integer in ``[0, num_classes)``."""
    arr = np.asarray(label)
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{source}: label map holds {arr.dtype} values, not class numbers")
    if arr.dtype.kind == "f":
        if arr.size and not np.isfinite(arr).all():
            raise UserError(f"{source}: label map holds NaN or infinite values")
        rounded = np.rint(arr)
        if arr.size and np.max(np.abs(arr - rounded)) > 1e-3:
            raise UserError(f"{source}: label map holds non-integer values (e.g. {arr[arr != rounded].flat[0]:g})")
        arr = rounded
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        high, low = int(arr.max()), int(arr.min())
        if high >= num_classes:
            hint = " (raw 14-label Synapse data: use label_remap=synapse14)" if high <= 13 and num_classes == 9 else ""
            raise UserError(
                f"{source}: label value {high} >= num_classes {num_classes} (valid: 0..{num_classes - 1}){hint}"
            )
        if low < 0:
            raise UserError(f"{source}: negative label value {low}")
    return arr


def check_image(image: np.ndarray, source: str) -> np.ndarray:
    """A NaN or infinite intensity would train silently into NaN weights: refuse the file instead."""
    if image.size and not np.isfinite(image).all():
        bad = int(np.size(image) - np.count_nonzero(np.isfinite(image)))
        raise UserError(f"{source}: image holds {bad} NaN or infinite values")
    return image


def _as_2d(array: np.ndarray, source: str, what: str) -> np.ndarray:
    """The array as H x W; singleton axes (1 x H x W, H x W x 1) are dropped."""
    arr = np.asarray(array)
    if arr.ndim > 2:
        kept = [n for n in arr.shape if n != 1]
        if len(kept) == 2:
            arr = arr.reshape(kept)
    if arr.ndim != 2:
        raise UserError(f"{source}: {what} is not a 2-D slice (shape {tuple(np.asarray(array).shape)})")
    return arr


def _read_label_png(path: Path, palette: Optional[np.ndarray]) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "L", "I", "I;16", "1"):
                return np.asarray(img).astype(np.int64)
            rgb = np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise UserError(f"cannot read label map {path}: {exc}") from None
    if palette is None:
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0].astype(np.int64)
        raise UserError(f"{path}: colour label map but no palette given (set palette: one RGB colour per class)")
    codes = rgb.astype(np.int64) @ np.array([65536, 256, 1])
    table = {int(c[0]) * 65536 + int(c[1]) * 256 + int(c[2]): i for i, c in enumerate(palette)}
    out = np.full(codes.shape, -1, dtype=np.int64)
    for code, cls in table.items():
        out[codes == code] = cls
    if (out < 0).any():
        colour = rgb[out < 0][0]
        raise UserError(f"{path}: colour {tuple(int(v) for v in colour)} is not in the palette")
    return out


def read_slice(record: SliceRecord, num_classes: int, label_table: Optional[np.ndarray] = None,
               palette: Optional[np.ndarray] = None, channels: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """(image float32 H x W, or H x W x 3 for colour custom data; label int64 H x W), checked."""
    source = str(record.path)
    reader = getattr(record, "read_pair", None)  # records that read themselves (slices of nnU-Net NIfTI volumes)
    if reader is not None:
        image, label = reader()
        source = f"{record.label_path}"
    elif record.label_path is not None:
        rgb = read_image_rgb(record.path).astype(np.float32) / 255.0
        image = rgb if channels == 3 else rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        label = _read_label_png(record.label_path, palette)
        source = f"{record.label_path}"
    else:
        image, label, _ = read_arrays(record.path)
        image = _as_2d(image, source, "image").astype(np.float32)
        label = _as_2d(label, source, "label")
    if image.shape[:2] != label.shape:
        raise UserError(f"{source}: image {tuple(image.shape[:2])} and label {tuple(label.shape)} differ in shape")
    check_image(image, str(record.path))
    if label_table is not None:
        label = remap_labels(label, label_table, source)
    return image, check_labels(label, num_classes, source)


# ---------------------------------------------------------------------------------------------
# Augmentation and resizing (the official RandomGenerator)


def resize_slice(image: np.ndarray, label: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """SciPy ``zoom`` to size x size: order 3 for the image, order 0 for the label (official)."""
    h, w = label.shape
    if (h, w) == (size, size):
        return image, label
    factors = (size / h, size / w)
    if image.ndim == 3:
        image = ndimage.zoom(image, factors + (1,), order=3)
    else:
        image = ndimage.zoom(image, factors, order=3)
    return image, ndimage.zoom(label, factors, order=0)


@dataclass
class SliceAugment:
    """The official ``RandomGenerator`` draws, with a numpy Generator instead of global state.

    With probability ``rot_flip_p``: rot90 by k in {0..3}, then a flip along a random axis; else,
    with probability ``rotate_p``: a rotation by an integer angle in [-max_angle, max_angle)
    (``np.random.randint(-20, 20)`` upstream), nearest-neighbour for image and label alike, no reshape.
    """

    rot_flip_p: float = 0.5
    rotate_p: float = 0.5
    max_angle: int = 20

    def __call__(self, image: np.ndarray, label: np.ndarray,
                 rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        if rng.random() < self.rot_flip_p:
            k = int(rng.integers(0, 4))
            axis = int(rng.integers(0, 2))
            image, label = np.rot90(image, k), np.rot90(label, k)
            image, label = np.flip(image, axis=axis), np.flip(label, axis=axis)
        elif rng.random() < self.rotate_p:
            angle = int(rng.integers(-self.max_angle, self.max_angle))
            image = ndimage.rotate(image, angle, order=0, reshape=False)
            label = ndimage.rotate(label, angle, order=0, reshape=False)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)


class MultiClassSliceDataset:
    """Slices -> ``dict(image=C x S x S float32, label=S x S int64, name=str)`` (C = 1, or 3 for colour).

    Like upstream, the image keeps its stored intensities (CT window / MRI normalisation done at
    preprocessing time); grayscale stays one channel, the model's 1 -> 3 stem handles it. ``get`` with
    a Generator augments (when ``augment`` is set), which is how
    :class:`~jittor_pranet.data.loader.BatchLoader` calls it, seeded per (seed, epoch, index).
    """

    def __init__(self, slices: Sequence[SliceRecord], num_classes: int, size: int,
                 augment: Optional[SliceAugment] = None, label_table: Optional[np.ndarray] = None,
                 palette: Optional[np.ndarray] = None, channels: int = 1) -> None:
        if size < 8:
            raise UserError(f"image size must be at least 8 pixels, got {size}")
        if num_classes < 2:
            raise UserError(f"num_classes counts the background and must be >= 2, got {num_classes}")
        self.slices = list(slices)
        self.num_classes = int(num_classes)
        self.size = int(size)
        self.augment = augment
        self.label_table = label_table
        self.palette = palette
        self.channels = channels

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int) -> Dict[str, object]:
        return self.get(index)

    def get(self, index: int, rng: Optional[np.random.Generator] = None) -> Dict[str, object]:
        record = self.slices[index]
        image, label = read_slice(record, self.num_classes, self.label_table, self.palette, self.channels)
        if self.augment is not None and rng is not None:
            image, label = self.augment(image, label, rng)
        image, label = resize_slice(image, label, self.size)
        chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        return {"image": np.ascontiguousarray(chw, dtype=np.float32),
                "label": np.ascontiguousarray(label, dtype=np.int64), "name": record.name}


# ---------------------------------------------------------------------------------------------
# Volumes


def _as_3d(array: np.ndarray, source: str, what: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise UserError(f"{source}: {what} must be D x H x W, got shape {tuple(arr.shape)}")
    return arr


def load_volume(record: VolumeRecord, num_classes: int, label_table: Optional[np.ndarray] = None,
                spacing: Optional[Sequence[float]] = None, palette: Optional[np.ndarray] = None,
                channels: int = 1) -> VolumeCase:
    """Read one volume (a file, or its slices stacked), check it, and attach its spacing if known."""
    if record.path is not None:
        source = str(record.path)
        reader = getattr(record, "read_volume", None)  # records that read themselves (nnU-Net NIfTI volumes)
        image, label, file_spacing = reader() if reader is not None else read_arrays(record.path)
        image = check_image(_as_3d(image, source, "image").astype(np.float32), source)
        label = _as_3d(label, source, "label")
        if image.shape != label.shape:
            raise UserError(f"{source}: image {tuple(image.shape)} and label {tuple(label.shape)} differ in shape")
        if label_table is not None:
            label = remap_labels(label, label_table, source)
        label = check_labels(label, num_classes, source)
        spacing = file_spacing if file_spacing is not None else spacing
    else:
        source = f"volume {record.name}"
        if not record.slices:
            raise UserError(f"{source} has no slices")
        pairs = [read_slice(s, num_classes, label_table, palette, channels) for s in record.slices]
        shapes = {p[1].shape for p in pairs}
        if len(shapes) > 1:
            raise UserError(f"{source}: its slices differ in size ({', '.join(str(s) for s in sorted(shapes))})")
        image = np.stack([p[0] for p in pairs]).astype(np.float32)
        label = np.stack([p[1] for p in pairs])
    if image.shape[0] == 0 or image.size == 0:
        raise UserError(f"{source} is empty (shape {tuple(image.shape)})")
    if spacing is not None:
        spacing = tuple(float(v) for v in spacing)
        if len(spacing) != 3:
            raise UserError(f"{source}: spacing needs 3 values (d, h, w), got {spacing}")
    return VolumeCase(name=record.name, image=image, label=label.astype(np.int64, copy=False), spacing=spacing)


__all__ = [
    "ACDC_CLASSES", "DATASET_JSON", "LABEL_REMAP_CHOICES", "LABEL_REMAPS", "SYNAPSE_14_TO_8", "SYNAPSE_CLASSES", "SYNAPSE_RAW_CLASSES",
    "ClassSet", "MultiClassSliceDataset", "SliceAugment", "SliceRecord", "VolumeCase", "VolumeRecord",
    "case_of_volume", "check_disjoint", "check_image", "check_labels", "file_stem", "load_volume", "parse_slice_name", "read_slice",
    "remap_labels", "resize_slice", "slice_record", "split_cases", "volume_record", "volumes_from_slices",
]
