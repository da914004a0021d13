"""nnU-Net raw datasets (``DatasetXXX_Name/{dataset.json, imagesTr, labelsTr, imagesTs}``) as a layout.

nnU-Net names an image ``<case>_<channel>.<ext>`` (``case_0000.png``) and its label map ``<case>.<ext>``
(pixel value = class id); ``dataset.json`` names the classes under ``labels``, either as nnU-Net v2
writes it (``{"background": 0, "kidney": 1}``) or as v1 does (``{"0": "background", "1": "kidney"}``).
Every 2-D image is a case of its own, so validation splits are by case as for every layout. The test
set is ``imagesTs`` with ``labelsTs`` when the dataset has ground truth for it (nnU-Net's own raw data
usually does not, then there is no test set). Only single-channel 2-D PNG datasets are read.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from jittor_pranet.data.multiclass import ClassSet, SliceRecord, volumes_from_slices
from jittor_pranet.errors import UserError

VOLUME_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".tif", ".tiff")


def _listing(folder: Path) -> List[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))


def nnunet_class_names(labels: object, where: Path) -> Tuple[str, ...]:
    """Foreground class names ordered by label value, from a v1 or v2 ``labels`` entry."""
    if not isinstance(labels, dict) or not labels:
        raise UserError(f"{where}: 'labels' must be a mapping of class names and label values, got {labels!r}")
    by_value: Dict[int, str] = {}
    for key, value in labels.items():
        v1 = isinstance(value, str)  # v1: "1": "kidney"; v2: "kidney": 1
        name, raw = (value, key) if v1 else (key, value)
        if isinstance(raw, (list, tuple)):
            raise UserError(f"{where}: region-based label {name!r} ({raw}) is not supported; give one value per class")
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise UserError(f"{where}: label value {raw!r} of class {name!r} is not an integer") from None
        if number in by_value:
            raise UserError(f"{where}: label value {number} given twice ({by_value[number]!r}, {name!r})")
        by_value[number] = str(name)
    expected = list(range(len(by_value)))
    if sorted(by_value) != expected:
        raise UserError(f"{where}: label values must be 0..{len(by_value) - 1} (0 = background), got {sorted(by_value)}")
    if len(by_value) < 2:
        raise UserError(f"{where}: 'labels' names no foreground class")
    return tuple(by_value[v] for v in expected[1:])


def _pairs(image_dir: Path, label_dir: Path, ending: str) -> List[SliceRecord]:
    images, labels = _listing(image_dir), set(_listing(label_dir))
    out = []
    for name in images:
        if not name.endswith(ending):
            continue
        stem = name[: -len(ending)]
        case, _, channel = stem.rpartition("_")
        if not case or len(channel) != 4 or not channel.isdigit():
            raise UserError(f"{image_dir / name}: nnU-Net images are named <case>_0000{ending}")
        if channel != "0000":
            raise UserError(f"{image_dir / name}: only single-channel nnU-Net datasets are read "
                            f"(channel {channel} found)")
        if case + ending not in labels:
            raise UserError(f"{image_dir / name}: no label {label_dir / (case + ending)}")
        out.append(SliceRecord(path=image_dir / name, volume=case, case=case, index=0,
                               label_path=label_dir / (case + ending)))
    return out


def detect_nnunet(root: Path) -> Optional[dict]:
    """The nnU-Net layout under ``root`` (``imagesTr/`` present), or None; malformed ones are errors."""
    image_dir = root / "imagesTr"
    if not image_dir.is_dir():
        return None
    meta_path = root / "dataset.json"
    found = ", ".join(sorted(e + ("/" if (root / e).is_dir() else "") for e in os.listdir(root)))
    if not meta_path.is_file():
        raise UserError(f"nnU-Net layout in {root} has no dataset.json (found: {found})")
    if not (root / "labelsTr").is_dir():
        raise UserError(f"nnU-Net layout in {root} has no labelsTr/ (found: {found})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: expected a JSON object")
    names = nnunet_class_names(meta.get("labels"), meta_path)
    ending = meta.get("file_ending")
    if ending is None:  # v1 has no file_ending: take it from the files
        endings = {n[n.index("."):] for n in _listing(image_dir) if "." in n}
        ending = endings.pop() if len(endings) == 1 else None
        if ending is None:
            raise UserError(f"{image_dir}: cannot tell the file type (endings {sorted(endings) or 'none'}); "
                            "set file_ending in dataset.json")
    if str(ending).lower() in VOLUME_ENDINGS:
        raise UserError(f"nnU-Net layout in {root}: {ending} volumes are not read yet; only 2-D .png datasets")
    if str(ending).lower() != ".png":
        raise UserError(f"nnU-Net layout in {root}: file_ending {ending!r} is not supported (2-D .png only)")
    train = _pairs(image_dir, root / "labelsTr", ending)
    if not train:
        raise UserError(f"{image_dir}: no <case>_0000{ending} images (found: {', '.join(_listing(image_dir)[:5]) or 'nothing'})")
    test: List[SliceRecord] = []
    if (root / "imagesTs").is_dir() and (root / "labelsTs").is_dir():
        test = _pairs(root / "imagesTs", root / "labelsTs", ending)
    return {"kind": "nnunet", "train": train, "val": None, "test": volumes_from_slices(test),
            "classes": ClassSet("nnunet", names)}


__all__ = ["detect_nnunet", "nnunet_class_names"]
