"""Finding a multi-class segmentation dataset on disk and splitting it into train / validation / test.

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
Samples, records and volume loading live in :mod:`jittor_pranet.data.multiclass`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from jittor_pranet.data.io import PathLike
from jittor_pranet.data.multiclass import (
    ACDC_CLASSES,
    DATASET_JSON,
    LABEL_REMAP_CHOICES,
    LABEL_REMAPS,
    SYNAPSE_CLASSES,
    MultiClassSliceDataset,
    SliceAugment,
    SliceRecord,
    VolumeCase,
    VolumeRecord,
    check_disjoint,
    file_stem,
    load_volume,
    slice_record,
    split_cases,
    volume_record,
    volumes_from_slices,
)
from jittor_pranet.data.nnunet import detect_nnunet
from jittor_pranet.errors import UserError


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
    #: nnU-Net NIfTI volumes: their intensity preprocessing (fitted for training, a checkpoint's for testing)
    intensity: Optional[Any] = None

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
    return [file_stem(Path(n)) for n in names]


def _first_dir(root: Path, names: Sequence[str]) -> Optional[Path]:
    for name in names:
        if (root / name).is_dir():
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


def _detect_synapse(root: Path) -> Optional[dict]:
    train_dir = _first_dir(root, ("train_npz", "train_npz_new"))
    test_dir = _first_dir(root, ("test_vol_h5", "test_vol_h5_new"))
    if train_dir is None and test_dir is None:
        return None
    list_dir = _first_dir(root, ("lists/lists_Synapse", "lists_Synapse", "lists")) or root
    train = [slice_record(p) for p in _files(train_dir, (".npz",))] if train_dir else []
    test = [volume_record(p) for p in _files(test_dir, (".h5",))] if test_dir else []
    train_list = list_dir / "train.txt"
    test_list = list_dir / "test_vol.txt"
    train = _filter_by_list(train, _read_list(train_list), lambda r: r.name, "slices", train_list)
    test = _filter_by_list(test, _read_list(test_list), lambda r: r.name, "volumes", test_list)
    return {"kind": "synapse", "train": train, "val": None, "test": test, "classes": SYNAPSE_CLASSES}


def _detect_acdc_npz(root: Path) -> Optional[dict]:
    train = _files(root / "train", (".npz",))
    if not train:
        return None
    valid = [slice_record(p) for p in _files(root / "valid", (".npz",))]
    test = [volume_record(p) for p in _files(root / "test", (".npz",))]
    return {"kind": "acdc_npz", "train": [slice_record(p) for p in train],
            "val": volumes_from_slices(valid) if valid else None, "test": test, "classes": ACDC_CLASSES}


def _detect_acdc_h5(root: Path) -> Optional[dict]:
    slice_dir = _first_dir(root, ("data/slices", "slices", "all_slices", "ACDC_training_slices"))
    volume_dir = _first_dir(root, ("data", "all_volumes", "volumes", "ACDC_training_volumes"))
    if slice_dir is None and volume_dir is None:
        slice_dir = volume_dir = root
    elif volume_dir is None:  # volumes beside the slices folder (<root>/slices/ + <root>/*.h5)
        volume_dir = slice_dir.parent
    slices = [p for p in _files(slice_dir, (".h5",)) if "_slice_" in p.name] if slice_dir else []
    volumes = [p for p in _files(volume_dir, (".h5",)) if "_slice_" not in p.name] if volume_dir else []
    if not slices and not volumes:
        return None
    train = [slice_record(p) for p in slices]
    vols = [volume_record(p) for p in volumes]
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
        record = slice_record(image_path)
        out.append(SliceRecord(path=image_path, volume=record.volume, case=record.case, index=record.index,
                               label_path=label_path))
    return out


def _detect_custom(root: Path) -> Optional[dict]:
    train_root = root / "train" if (root / "train").is_dir() else root
    train = _custom_pairs(train_root)
    if train is None:
        return None
    val = _custom_pairs(root / "val") if (root / "val").is_dir() else None
    test = _custom_pairs(root / "test") if (root / "test").is_dir() else None
    return {"kind": "custom", "train": train, "val": volumes_from_slices(val) if val else None,
            "test": volumes_from_slices(test) if test else [], "classes": None}


#: the multi-class layouts by name (``MultiClassData.kind``), in the order they are tried
LAYOUTS = {"nnunet": detect_nnunet, "synapse": _detect_synapse, "acdc_npz": _detect_acdc_npz,
           "acdc_h5": _detect_acdc_h5, "custom": _detect_custom}
#: ``data.format``: auto (the layout found), or the name of the layout required
FORMATS = ("auto", *LAYOUTS)
#: ``data.channels`` of custom data: grayscale or colour images
IMAGE_CHANNELS = (1, 3)

_EXPECTED = ("train_npz/ + test_vol_h5/ (Synapse), train/ valid/ test/ with .npz (ACDC, CASCADE), "
             "*_slice_<k>.h5 + <patient>_<frame>.h5 (ACDC, SSL4MIS), [train/]images/ + [train/]labels/ (custom), "
             "dataset.json + imagesTr/ + labelsTr/ (nnU-Net raw: 2-D PNG or NIfTI volumes)")


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
    if label_remap not in LABEL_REMAP_CHOICES:
        raise UserError(f"label_remap must be auto, none or {', '.join(LABEL_REMAPS)}; got {label_remap!r}")
    if channels not in IMAGE_CHANNELS:
        raise UserError(f"channels must be {' or '.join(map(str, IMAGE_CHANNELS))}, got {channels}")
    meta = _read_dataset_json(root)
    found = None
    for detect in LAYOUTS.values():
        found = detect(root)
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
                          channels=channels, val_source=val_source, notes=notes, intensity=found.get("intensity"))




__all__ = ["FORMATS", "IMAGE_CHANNELS", "LAYOUTS", "MultiClassData", "load_multiclass_data"]
