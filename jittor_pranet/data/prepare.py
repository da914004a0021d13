"""Raw NIfTI releases -> the preprocessed layouts everyone trains on, with the voxel spacing kept.

* Synapse (BTCV abdomen, ``img0001.nii.gz`` / ``label0001.nii.gz``): CT clipped to [-125, 275] HU and
  scaled to [0, 1], axes (x, y, z) -> (z, x, y) as the official preprocessing does; the TransUNet test
  list of 12 cases becomes ``test_vol_h5/caseNNNN.npy.h5`` volumes, the other cases
  ``train_npz/caseNNNN_sliceKKK.npz`` slices. The 14 labels are kept (the loader maps them to the 8
  organs, as the official loader does) or remapped here with ``remap=True``.
* ACDC (``patientNNN_frameNN.nii.gz`` + ``..._gt.nii.gz``): each volume min-max normalised to [0, 1]
  (SSL4MIS preprocessing), axes (x, y, z) -> (z, y, x), written in the SSL4MIS h5 layout
  (``data/slices/<volume>_slice_<k>.h5`` for training patients, ``data/<volume>.h5`` volumes for
  validation and test patients, ``*.list`` files) with the chosen standard split.

Spacings go into each h5 volume (``spacing`` attribute, (d, h, w) in mm) and into ``dataset.json``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from jittor_pranet.data.io import PathLike
from jittor_pranet.data.medical_io import nifti_shape, read_nifti, write_h5, write_npz
from jittor_pranet.data.multiclass import (
    ACDC_CLASSES,
    DATASET_JSON,
    SYNAPSE_14_TO_8,
    SYNAPSE_CLASSES,
    SYNAPSE_RAW_CLASSES,
)
from jittor_pranet.errors import UserError
from jittor_pranet.utils.io import atomic_write_text, staged_output_folder

#: The 12 test volumes of the TransUNet split (``lists_Synapse/test_vol.txt``), used by every Synapse paper.
SYNAPSE_TEST_CASES: Tuple[str, ...] = (
    "case0008", "case0022", "case0038", "case0036", "case0032", "case0002",
    "case0029", "case0003", "case0001", "case0004", "case0025", "case0035",
)
CT_WINDOW = (-125.0, 275.0)

#: ACDC patient splits (validation, test) over patients 1..100; the others train.
#: ``cascade``: the MT-UNet lists used by CASCADE/MIST (and so by the MIST + DSRA results);
#: ``ssl4mis``: the SSL4MIS lists. Both: 70 training, 10 validation, 20 test patients.
ACDC_SPLITS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    "cascade": ((19, 21, 29, 33, 41, 50, 61, 71, 76, 80),
                (2, 3, 8, 9, 12, 14, 17, 24, 42, 48, 49, 53, 55, 64, 67, 79, 81, 88, 92, 95)),
    "ssl4mis": ((2, 19, 28, 30, 39, 45, 78, 82, 85, 87),
                (1, 7, 8, 11, 13, 22, 24, 33, 52, 59, 64, 65, 66, 68, 75, 80, 81, 83, 84, 93)),
}

_NIFTI = re.compile(r"\.nii(\.gz)?$")


def _nifti_files(root: Path) -> List[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file() and _NIFTI.search(p.name)
                   and not p.name.startswith(".")), key=lambda p: str(p))


def _strip_nifti(name: str) -> str:
    return _NIFTI.sub("", name)


def _check_pair_shapes(pairs: Sequence[Tuple[str, Path, Path]]) -> None:
    """Compare image and label shapes from the headers before anything is written (the headers'
    sizes are also checked against the files, see :func:`read_nifti`)."""
    for _, image_path, label_path in pairs:
        a, b = nifti_shape(image_path), nifti_shape(label_path)
        if a != b:
            raise UserError(f"{image_path.name} is {'x'.join(map(str, a))} but its label "
                            f"{label_path.name} is {'x'.join(map(str, b))}: the NIfTI pair must match")
        if len(a) != 3:
            raise UserError(f"{image_path}: expected a 3-D volume, got shape {a}")
        if 0 in a:
            raise UserError(f"{image_path}: an empty volume (shape {'x'.join(map(str, a))}, no voxels)")


def staged_output(out: Path):
    """All-or-nothing output folder (a temporary folder next to ``out``, renamed at the end)."""
    return staged_output_folder(out, error=UserError)


def _labels_uint8(array: np.ndarray, top: int, source: Path) -> np.ndarray:
    rounded = np.rint(array)
    if rounded.size and (rounded.min() < 0 or rounded.max() > top):
        bad = rounded.max() if rounded.max() > top else rounded.min()
        raise UserError(f"{source}: label value {bad:g} outside 0..{top}")
    return rounded.astype(np.uint8)


def _progress(items, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="volume", file=sys.stderr, leave=False, disable=None if enabled else True)


def _found(root: Path) -> str:
    names = [p.name for p in sorted(root.iterdir())][:8] if root.is_dir() else []
    return ", ".join(names) or "nothing"


# ---------------------------------------------------------------------------------------------
# Synapse


def find_synapse_pairs(raw: PathLike) -> List[Tuple[str, Path, Path]]:
    """(case name, image, label) for every ``imgNNNN`` with a ``labelNNNN`` under ``raw``, sorted."""
    raw = Path(raw)
    if not raw.is_dir():
        raise UserError(f"raw data folder not found: {raw}")
    images: Dict[str, Path] = {}
    labels: Dict[str, Path] = {}
    for path in _nifti_files(raw):
        m = re.fullmatch(r"(img|label)(\d+)", _strip_nifti(path.name))
        if m:
            (images if m.group(1) == "img" else labels)[m.group(2)] = path
    pairs = [(f"case{num}", images[num], labels[num]) for num in sorted(images.keys() & labels.keys())]
    if not pairs:
        raise UserError(f"no Synapse imgNNNN.nii.gz / labelNNNN.nii.gz pairs under {raw} (found: {_found(raw)})")
    return pairs


def prepare_synapse(raw: PathLike, out: PathLike, remap: bool = False,
                    test_cases: Sequence[str] = SYNAPSE_TEST_CASES, progress: bool = True) -> Dict[str, object]:
    """Write the TransUNet Synapse layout under ``out`` from the raw NIfTI files under ``raw``."""
    out = Path(out)
    pairs = find_synapse_pairs(raw)
    _check_pair_shapes(pairs)
    with staged_output(out) as dst:
        test_set = set(test_cases)
        train_names: List[str] = []
        test_names: List[str] = []
        spacing: Dict[str, List[float]] = {}
        lo, hi = CT_WINDOW
        for case, image_path, label_path in _progress(pairs, "synapse", progress):
            ct, zooms = read_nifti(image_path)
            seg, _ = read_nifti(label_path)
            image = ((np.clip(ct, lo, hi) - lo) / (hi - lo)).astype(np.float32).transpose(2, 0, 1)
            label = _labels_uint8(seg, 13, label_path).transpose(2, 0, 1)
            if remap:
                label = SYNAPSE_14_TO_8[label].astype(np.uint8)
            vox = (zooms[2], zooms[0], zooms[1])
            spacing[case] = list(vox)
            if case in test_set:
                write_h5(dst / "test_vol_h5" / f"{case}.npy.h5", np.ascontiguousarray(image),
                         np.ascontiguousarray(label), spacing=vox)
                test_names.append(case)
            else:
                for k in range(image.shape[0]):
                    name = f"{case}_slice{k:03d}"
                    write_npz(dst / "train_npz" / f"{name}.npz", np.ascontiguousarray(image[k]),
                              np.ascontiguousarray(label[k]))
                    train_names.append(name)
        lists = dst / "lists" / "lists_Synapse"
        atomic_write_text(lists / "train.txt", "".join(n + "\n" for n in train_names))
        atomic_write_text(lists / "test_vol.txt", "".join(n + "\n" for n in test_names))
        names = SYNAPSE_CLASSES.names if remap else SYNAPSE_RAW_CLASSES.names
        manifest = {"format": "synapse", "labels": "synapse8" if remap else "synapse14", "class_names": list(names),
                    "spacing": spacing, "ct_window": list(CT_WINDOW),
                    "cases": {"train": sorted({n.split("_slice")[0] for n in train_names}), "test": test_names},
                    "missing_test_cases": sorted(test_set - {c for c, _, _ in pairs})}
        atomic_write_text(dst / DATASET_JSON, json.dumps(manifest, indent=2) + "\n")
    return manifest


# ---------------------------------------------------------------------------------------------
# ACDC


def find_acdc_pairs(raw: PathLike) -> List[Tuple[str, Path, Path]]:
    """(volume name such as patient001_frame01, image, label) for every ``*_gt`` file under ``raw``."""
    raw = Path(raw)
    if not raw.is_dir():
        raise UserError(f"raw data folder not found: {raw}")
    files = {_strip_nifti(p.name): p for p in _nifti_files(raw)}
    pairs = []
    for name in sorted(files):
        if name.endswith("_gt") and name[:-3] in files and re.fullmatch(r"patient\d+_frame\d+", name[:-3]):
            pairs.append((name[:-3], files[name[:-3]], files[name]))
    if not pairs:
        raise UserError(f"no ACDC patientNNN_frameNN.nii.gz / ..._gt.nii.gz pairs under {raw} (found: {_found(raw)})")
    return pairs


def prepare_acdc(raw: PathLike, out: PathLike, split: str = "cascade", progress: bool = True) -> Dict[str, object]:
    """Write the SSL4MIS-style h5 layout under ``out`` from the raw ACDC NIfTI files under ``raw``."""
    if split not in ACDC_SPLITS:
        raise UserError(f"ACDC split must be one of {', '.join(ACDC_SPLITS)}; got {split!r}")
    out = Path(out)
    pairs = find_acdc_pairs(raw)
    _check_pair_shapes(pairs)
    val_ids, test_ids = (set(ids) for ids in ACDC_SPLITS[split])
    role = {}
    skipped = []
    for name, _, _ in pairs:
        pid = int(re.match(r"patient(\d+)", name).group(1))
        if pid in test_ids:
            role[name] = "test"
        elif pid in val_ids:
            role[name] = "val"
        elif 1 <= pid <= 100:
            role[name] = "train"
        else:
            skipped.append(name)
    with staged_output(out) as dst:
        lists: Dict[str, List[str]] = {"train": [], "val": [], "test": []}
        spacing: Dict[str, List[float]] = {}
        for name, image_path, label_path in _progress([p for p in pairs if p[0] in role], "acdc", progress):
            mri, zooms = read_nifti(image_path)
            seg, _ = read_nifti(label_path)
            lo, hi = float(mri.min()), float(mri.max())
            image = ((mri - lo) / (hi - lo) if hi > lo else np.zeros_like(mri)).astype(np.float32).transpose(2, 1, 0)
            label = _labels_uint8(seg, 3, label_path).transpose(2, 1, 0)
            vox = (zooms[2], zooms[1], zooms[0])
            spacing[name] = list(vox)
            if role[name] == "train":
                for k in range(image.shape[0]):
                    write_h5(dst / "data" / "slices" / f"{name}_slice_{k}.h5", np.ascontiguousarray(image[k]),
                             np.ascontiguousarray(label[k]), compression="gzip")
                    lists["train"].append(f"{name}_slice_{k}")
            else:
                write_h5(dst / "data" / f"{name}.h5", np.ascontiguousarray(image), np.ascontiguousarray(label),
                         spacing=vox, compression="gzip")
                lists[role[name]].append(name)
        for key, file_name in (("train", "train_slices.list"), ("val", "val.list"), ("test", "test.list")):
            atomic_write_text(dst / file_name, "".join(n + "\n" for n in lists[key]))
        manifest = {"format": "acdc_h5", "labels": "acdc", "class_names": list(ACDC_CLASSES.names), "split": split,
                    "spacing": spacing, "normalisation": "per-volume min-max to [0, 1]",
                    "volumes": {k: (sorted({n.rsplit('_slice_', 1)[0] for n in v}) if k == "train" else v)
                                for k, v in lists.items()},
                    "skipped": skipped}
        atomic_write_text(dst / DATASET_JSON, json.dumps(manifest, indent=2) + "\n")
    return manifest


__all__ = ["ACDC_SPLITS", "CT_WINDOW", "SYNAPSE_TEST_CASES", "find_acdc_pairs", "find_synapse_pairs",
           "prepare_acdc", "prepare_synapse"]
