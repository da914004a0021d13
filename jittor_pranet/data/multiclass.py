"""Multi-class (organ / cardiac structure) segmentation data: layouts, splits, samples, volumes.

Layouts recognised by :func:`load_multiclass_data` (the ones in circulation, plus one for your own data):

* ``synapse``: TransUNet preprocessing, ``train_npz/<case>_slice<k>.npz`` (image, label) and
  ``test_vol_h5/<case>.npy.h5`` (D x H x W), optional ``lists/lists_Synapse/{train,test_vol}.txt``;
* ``acdc_npz``: MT-UNet/CASCADE/MIST preprocessing, ``{train,valid}/case_XXX_slice{ED,ES}_<k>.npz``
  slices and ``test/case_XXX_volume_{ED,ES}.npz`` volumes, arrays ``img``/``label``;
* ``acdc_h5``: SSL4MIS preprocessing, ``<patient>_<frame>_slice_<k>.h5`` slices and
  ``<patient>_<frame>.h5`` volumes (``image``/``label``), optional ``train_slices.list``/``val.list``/``test.list``;
* ``custom``: ``[train/]images`` + ``[train/]labels`` (PNG label maps: pixel value = class id, a
  palette PNG's indices, or RGB colours mapped by a palette), optional ``val/`` and ``test/`` alike.

A ``dataset.json`` next to the data (written by ``jittor-pranet prepare`` and the synthetic generator)
gives class names, the label set and voxel spacings. The validation set is always a set of whole
cases (patients): slices of one case never sit on both sides, and a case on both sides is an error.
Everything here is numpy/SciPy only, like the rest of the data layer.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from jittor_pranet.data.io import PathLike, read_image_rgb
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


def remap_labels(label: np.ndarray, table: np.ndarray, source: str = "labels") -> np.ndarray:
    """``table[label]``; a value outside the table is an error naming ``source``."""
    label = np.asarray(label, dtype=np.int64)
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
        return _stem(self.path)


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


def _stem(path: Path) -> str:
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


def _slice_record(path: Path) -> SliceRecord:
    parsed = parse_slice_name(_stem(path))
    if parsed is None:  # a file that is a case of its own (2-D data)
        return SliceRecord(path=path, volume=_stem(path), case=_stem(path), index=0)
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


def _volume_record(path: Path) -> VolumeRecord:
    name = _stem(path)
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
    if arr.dtype.kind == "f":
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


def _as_2d(array: np.ndarray, source: str, what: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim > 2:
        arr = arr.reshape([s for s in arr.shape if s != 1]) if sum(s != 1 for s in arr.shape) == 2 else arr
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
    if record.label_path is not None:
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
        image, label, file_spacing = read_arrays(record.path)
        image = _as_3d(image, source, "image").astype(np.float32)
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


# ---------------------------------------------------------------------------------------------
# Layout detection


@dataclass
class MultiClassData:
    """A multi-class dataset found on disk: training slices, validation and test volumes, classes."""

    kind: str
    root: Path
    class_names: Tuple[str, ...]
    train_slices: List[SliceRecord]
    val_volumes: List[VolumeRecord]
    test_volumes: List[VolumeRecord]
    label_table: Optional[np.ndarray] = None
    spacings: Dict[str, Tuple[float, ...]] = field(default_factory=dict)
    palette: Optional[np.ndarray] = None
    channels: int = 1
    val_source: str = "none"
    notes: List[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) + 1

    @property
    def train_cases(self) -> List[str]:
        return sorted({s.case for s in self.train_slices})

    def train_dataset(self, size: int, augment: bool = True) -> MultiClassSliceDataset:
        """Training slices at ``size`` x ``size``, with the official augmentation unless ``augment=False``."""
        return MultiClassSliceDataset(self.train_slices, self.num_classes, size,
                                      augment=SliceAugment() if augment else None,
                                      label_table=self.label_table, palette=self.palette, channels=self.channels)

    def volumes(self, split: str) -> List[VolumeRecord]:
        if split not in ("val", "test"):
            raise UserError(f"split must be 'val' or 'test', got {split!r}")
        return self.val_volumes if split == "val" else self.test_volumes

    def iter_volumes(self, split: str = "test") -> Iterator[VolumeCase]:
        """Load the ``val`` or ``test`` volumes one at a time (D x H x W image and label, spacing)."""
        for record in self.volumes(split):
            yield load_volume(record, self.num_classes, self.label_table, self.spacings.get(record.name),
                              self.palette, self.channels)

    def summary(self) -> str:
        val_cases = sorted({v.case for v in self.val_volumes})
        parts = [
            f"{self.kind} data in {self.root}: {self.num_classes} classes ({', '.join(self.class_names)})",
            f"train {len(self.train_slices)} slices from {len(self.train_cases)} cases",
            f"val {len(self.val_volumes)} volumes from {len(val_cases)} cases ({self.val_source})",
            f"test {len(self.test_volumes)} volumes",
        ]
        return "; ".join(parts + self.notes)


def _files(folder: Path, suffixes: Tuple[str, ...]) -> List[Path]:
    if not folder.is_dir():
        return []
    return sorted((folder / e.name for e in os.scandir(folder)
                   if e.is_file() and not e.name.startswith(".") and e.name.endswith(suffixes)),
                  key=lambda p: p.name)


def _read_list(path: Path) -> Optional[List[str]]:
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [_stem(Path(n)) for n in names]


def _first_dir(root: Path, names: Sequence[str]) -> Optional[Path]:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _first_file(root: Path, names: Sequence[str]) -> Optional[Path]:
    for name in names:
        if (root / name).is_file():
            return root / name
    return None


def _filter_by_list(records, listed: Optional[List[str]], key, what: str, list_path: Optional[Path]):
    if listed is None:
        return records
    table = {key(r): r for r in records}
    missing = [n for n in listed if n not in table]
    if missing:
        raise UserError(f"{list_path} names {len(missing)} {what} not found on disk (e.g. {', '.join(missing[:3])})")
    return [table[n] for n in listed]


def _detect_synapse(root: Path, data: dict) -> Optional[dict]:
    train_dir = _first_dir(root, ("train_npz", "train_npz_new"))
    test_dir = _first_dir(root, ("test_vol_h5", "test_vol_h5_new"))
    if train_dir is None and test_dir is None:
        return None
    list_dir = _first_dir(root, ("lists/lists_Synapse", "lists_Synapse", "lists")) or root
    train = [_slice_record(p) for p in _files(train_dir, (".npz",))] if train_dir else []
    test = [_volume_record(p) for p in _files(test_dir, (".h5",))] if test_dir else []
    train_list = list_dir / "train.txt"
    test_list = list_dir / "test_vol.txt"
    train = _filter_by_list(train, _read_list(train_list), lambda r: r.name, "slices", train_list)
    test = _filter_by_list(test, _read_list(test_list), lambda r: r.name, "volumes", test_list)
    return {"kind": "synapse", "train": train, "val": None, "test": test, "classes": SYNAPSE_CLASSES}


def _detect_acdc_npz(root: Path, data: dict) -> Optional[dict]:
    train = _files(root / "train", (".npz",))
    if not train:
        return None
    valid = [_slice_record(p) for p in _files(root / "valid", (".npz",))]
    test = [_volume_record(p) for p in _files(root / "test", (".npz",))]
    return {"kind": "acdc_npz", "train": [_slice_record(p) for p in train],
            "val": volumes_from_slices(valid) if valid else None, "test": test, "classes": ACDC_CLASSES}


def _detect_acdc_h5(root: Path, data: dict) -> Optional[dict]:
    slice_dir = _first_dir(root, ("data/slices", "slices", "all_slices", "ACDC_training_slices"))
    volume_dir = _first_dir(root, ("data", "all_volumes", "volumes", "ACDC_training_volumes"))
    if slice_dir is None and volume_dir is None:
        slice_dir = volume_dir = root
    slices = [p for p in _files(slice_dir, (".h5",)) if "_slice_" in p.name] if slice_dir else []
    volumes = [p for p in _files(volume_dir, (".h5",)) if "_slice_" not in p.name] if volume_dir else []
    if not slices and not volumes:
        return None
    train = [_slice_record(p) for p in slices]
    vols = [_volume_record(p) for p in volumes]
    train_list, val_list, test_list = (root / "train_slices.list", root / "val.list", root / "test.list")
    train = _filter_by_list(train, _read_list(train_list), lambda r: r.name, "slices", train_list)
    listed_val, listed_test = _read_list(val_list), _read_list(test_list)
    val = _filter_by_list(vols, listed_val, lambda r: r.name, "volumes", val_list) if listed_val is not None else None
    if listed_test is not None:
        test = _filter_by_list(vols, listed_test, lambda r: r.name, "volumes", test_list)
    else:  # no list: volumes of patients with no training slice are the test set
        seen = {r.case for r in train} | ({v.case for v in val} if val else set())
        test = [v for v in vols if v.case not in seen]
    return {"kind": "acdc_h5", "train": train, "val": val, "test": test, "classes": ACDC_CLASSES}


_IMAGE_DIRS = ("images", "image", "imgs")
_LABEL_DIRS = ("labels", "label", "masks", "annotations")


def _custom_pairs(folder: Path) -> Optional[List[SliceRecord]]:
    from jittor_pranet.data.datasets import pair_by_stem

    img_dir, lab_dir = _first_dir(folder, _IMAGE_DIRS), _first_dir(folder, _LABEL_DIRS)
    if img_dir is None or lab_dir is None:
        return None
    report = pair_by_stem(img_dir, lab_dir)
    out = []
    for image_path, label_path in report.pairs:
        record = _slice_record(image_path)
        out.append(SliceRecord(path=image_path, volume=record.volume, case=record.case, index=record.index,
                               label_path=label_path))
    return out


def _detect_custom(root: Path, data: dict) -> Optional[dict]:
    train_root = root / "train" if (root / "train").is_dir() else root
    train = _custom_pairs(train_root)
    if train is None:
        return None
    val = _custom_pairs(root / "val") if (root / "val").is_dir() else None
    test = _custom_pairs(root / "test") if (root / "test").is_dir() else None
    return {"kind": "custom", "train": train, "val": volumes_from_slices(val) if val else None,
            "test": volumes_from_slices(test) if test else [], "classes": None}


_DETECTORS = (_detect_synapse, _detect_acdc_npz, _detect_acdc_h5, _detect_custom)

_EXPECTED = ("train_npz/ + test_vol_h5/ (Synapse), train/ valid/ test/ with .npz (ACDC, CASCADE), "
             "*_slice_<k>.h5 + <patient>_<frame>.h5 (ACDC, SSL4MIS), [train/]images/ + [train/]labels/ (custom)")


def _found_text(root: Path) -> str:
    entries = sorted(os.listdir(root))
    shown = [e + ("/" if (root / e).is_dir() else "") for e in entries if not e.startswith(".")][:10]
    more = ", ..." if len(entries) > 10 else ""
    return ", ".join(shown) + more if shown else "nothing"


def _read_dataset_json(root: Path) -> dict:
    path = root / DATASET_JSON
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def load_multiclass_data(root: PathLike, class_names: Optional[Sequence[str]] = None,
                         label_remap: str = "auto", val_fraction: float = 0.1, seed: int = 0,
                         palette: Optional[Sequence[Sequence[int]]] = None, channels: int = 1) -> MultiClassData:
    """Find the layout under ``root`` and build the train / val / test sets.

    ``class_names``: foreground names (background excluded); defaults to dataset.json, then the
    layout's class set (required for custom data). ``label_remap``: ``auto`` (what dataset.json says),
    ``none``, or ``synapse14`` (raw 14-label Synapse -> the 8 organs, as the official loader).
    Validation: the layout's own validation set when it has one, else a seeded split of the
    training cases (``val_fraction`` of them; 0 gives no validation set).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {root}")
    if label_remap not in ("auto", "none", *LABEL_REMAPS):
        raise UserError(f"label_remap must be auto, none or {', '.join(LABEL_REMAPS)}; got {label_remap!r}")
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels}")
    meta = _read_dataset_json(root)
    found = None
    for detect in _DETECTORS:
        found = detect(root, meta)
        if found is not None:
            break
    if found is None:
        raise UserError(f"no multi-class dataset layout in {root} (found: {_found_text(root)}); expected one of: {_EXPECTED}")
    if not found["train"] and not found["test"]:
        raise UserError(f"{found['kind']} layout in {root} holds no slices and no volumes (found: {_found_text(root)})")

    remap = label_remap
    if remap == "auto":
        remap = "synapse14" if meta.get("labels") == "synapse14" and class_names is None else "none"
    table = LABEL_REMAPS.get(remap)
    if class_names is None:
        if table is not None:
            class_names = SYNAPSE_CLASSES.names
        elif meta.get("class_names"):
            class_names = meta["class_names"]
        elif found["classes"] is not None:
            class_names = found["classes"].names
        else:
            raise UserError(f"custom data in {root}: give the class names (foreground classes, background excluded)")
    class_names = tuple(str(n) for n in class_names)
    if not class_names:
        raise UserError("class_names is empty: give the names of the foreground classes")
    if table is not None and len(class_names) != int(table.max()):
        raise UserError(f"label_remap={remap} gives {int(table.max())} foreground classes, "
                        f"but {len(class_names)} class names were given")

    train: List[SliceRecord] = found["train"]
    val: Optional[List[VolumeRecord]] = found["val"]
    test: List[VolumeRecord] = found["test"]
    if val is not None:
        val_source = "the layout's validation set"
    elif val_fraction > 0 and train:
        train_cases, val_cases = split_cases([s.case for s in train], val_fraction, seed)
        val_set = set(val_cases)
        val = volumes_from_slices([s for s in train if s.case in val_set])
        train = [s for s in train if s.case not in val_set]
        val_source = f"{len(val_cases)} training cases held out, seed {seed}"
    else:
        val, val_source = [], "none"
    check_disjoint([s.case for s in train], [v.case for v in val], "training", "validation")
    check_disjoint([s.case for s in train], [v.case for v in test], "training", "test")
    spacings = {str(k): tuple(float(x) for x in v) for k, v in (meta.get("spacing") or {}).items()}
    notes = [f"labels remapped ({remap})"] if table is not None else []
    return MultiClassData(kind=found["kind"], root=root, class_names=class_names, train_slices=train,
                          val_volumes=val, test_volumes=test, label_table=table, spacings=spacings,
                          palette=None if palette is None else np.asarray(palette, dtype=np.int64),
                          channels=channels, val_source=val_source, notes=notes)


__all__ = [
    "ACDC_CLASSES", "DATASET_JSON", "LABEL_REMAPS", "SYNAPSE_14_TO_8", "SYNAPSE_CLASSES", "SYNAPSE_RAW_CLASSES",
    "ClassSet", "MultiClassData", "MultiClassSliceDataset", "SliceAugment", "SliceRecord", "VolumeCase",
    "VolumeRecord", "case_of_volume", "check_disjoint", "check_labels", "load_multiclass_data", "load_volume",
    "parse_slice_name", "read_slice", "remap_labels", "resize_slice", "split_cases", "volumes_from_slices",
]
