"""KiTS19 (kidney and kidney-tumour CT) -> the TransUNet slice layout, with the PraNet-V2 protocol.

Raw release: ``case_XXXXX/imaging.nii.gz`` and ``segmentation.nii.gz`` (labels 0 background, 1 kidney,
2 tumour), volumes stored as (axial slice, row, column), so the slice axis is voxel axis 0.

Protocol of the paper's Appendix D (after MT-UNet): only the axial slices that contain *both* kidney
and tumour are kept; the labelled cases are split at random (seeded) into 168 training and 42 test
cases (the same 4 : 1 ratio for other case counts). CT is clipped to a window and scaled to [0, 1].
Training cases become ``train_npz/<case>_slice<k>.npz`` slices; test cases become
``test_vol_h5/<case>.npy.h5`` volumes made of their kept slices (with the voxel spacing, so HD95 is
reported in mm as Table 8 does). The split, the window, the spacings and the slices kept go into
``dataset.json``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from jittor_pranet.data.io import PathLike
from jittor_pranet.data.medical_io import nifti_shape, read_nifti, write_h5, write_npz
from jittor_pranet.errors import UserError
from jittor_pranet.utils.io import atomic_write_text, staged_output_folder

KITS19_CLASSES: Tuple[str, ...] = ("kidney", "tumor")
#: Abdominal soft-tissue window; a common choice for KiTS19 2-D pipelines (the paper gives none).
KITS19_CT_WINDOW: Tuple[float, float] = (-79.0, 304.0)
KITS19_TRAIN_CASES, KITS19_TEST_CASES = 168, 42
_CASE = re.compile(r"^case_\d{5}$")


def find_kits19_cases(raw: PathLike) -> List[Tuple[str, Path, Path]]:
    """(case, imaging, segmentation) for every labelled case folder under ``raw`` (sorted)."""
    raw = Path(raw)
    if not raw.is_dir():
        raise UserError(f"raw data folder not found: {raw}")
    pairs, unlabelled = [], 0
    folders = sorted(p for p in raw.iterdir() if p.is_dir() and _CASE.match(p.name))
    for folder in folders:
        image, seg = folder / "imaging.nii.gz", folder / "segmentation.nii.gz"
        if image.is_file() and seg.is_file():
            pairs.append((folder.name, image, seg))
        elif image.is_file():
            unlabelled += 1
    if not pairs:
        seen = ", ".join(p.name for p in sorted(raw.iterdir())[:8]) or "nothing"
        what = f"{len(folders)} case_XXXXX folders, {unlabelled} without segmentation.nii.gz" if folders else seen
        raise UserError(f"no KiTS19 case_XXXXX/imaging.nii.gz + segmentation.nii.gz under {raw} (found: {what})")
    return pairs


def split_kits19(cases: Sequence[str], seed: int = 0, n_test: Optional[int] = None) -> Tuple[List[str], List[str]]:
    """Seeded random case split: 42 test cases of 210, the same 1/5 for other counts (at least 1 each)."""
    cases = sorted(cases)
    if len(cases) < 2:
        raise UserError(f"KiTS19 needs at least 2 labelled cases for a train/test split, found {len(cases)}")
    if n_test is None:
        n_test = KITS19_TEST_CASES if len(cases) == KITS19_TRAIN_CASES + KITS19_TEST_CASES else round(len(cases) / 5)
    n_test = min(max(1, int(n_test)), len(cases) - 1)
    order = np.random.default_rng(seed).permutation(len(cases))
    test = sorted(cases[i] for i in order[:n_test])
    return sorted(set(cases) - set(test)), test


def both_classes_slices(label: np.ndarray) -> np.ndarray:
    """Indices (axis 0) of the slices holding both kidney (1) and tumour (2)."""
    flat = label.reshape(label.shape[0], -1)
    return np.flatnonzero((flat == 1).any(axis=1) & (flat == 2).any(axis=1))


def new_output_folder(out: Path):
    """All-or-nothing output folder: written in a temporary folder next to ``out``, renamed to ``out``
    at the end, removed on any failure (``out``, new or empty, is untouched until then)."""
    return staged_output_folder(out, error=UserError)


def _header_shape(path: Path) -> Tuple[int, ...]:
    try:
        return nifti_shape(path)
    except UserError as exc:
        prefix = f"cannot read NIfTI file {path}: "
        detail = str(exc)[len(prefix):] if str(exc).startswith(prefix) else str(exc)
        raise UserError(f"{path}: not a readable NIfTI file ({detail})") from None


def _labels(seg: np.ndarray, path: Path) -> np.ndarray:
    rounded = np.rint(seg)
    if rounded.size and (rounded.min() < 0 or rounded.max() > 2):
        raise UserError(f"{path}: label value {rounded.max() if rounded.max() > 2 else rounded.min():g} outside 0..2 "
                        "(KiTS19 labels: 0 background, 1 kidney, 2 tumor)")
    return rounded.astype(np.uint8)


def prepare_kits19(raw: PathLike, out: PathLike, seed: int = 0, window: Sequence[float] = KITS19_CT_WINDOW,
                   n_test: Optional[int] = None, progress: bool = True) -> Dict[str, object]:
    """Write the slice layout of the KiTS19 protocol under ``out`` (module docstring); returns the manifest."""
    from tqdm import tqdm

    out = Path(out)
    lo, hi = (float(v) for v in window)
    if not hi > lo:
        raise UserError(f"CT window must be LOW,HIGH with HIGH > LOW, got {lo:g},{hi:g}")
    pairs = find_kits19_cases(raw)
    for case, image_path, seg_path in pairs:  # every header before anything is written
        a, b = _header_shape(image_path), _header_shape(seg_path)
        if len(a) != 3 or a != b:
            raise UserError(f"{case}: imaging is {'x'.join(map(str, a))} and segmentation {'x'.join(map(str, b))}; "
                            "need two 3-D volumes of one shape")
        if 0 in a:
            raise UserError(f"{case}: imaging is {'x'.join(map(str, a))}, an empty volume (no voxels)")
    train_cases, test_cases = split_kits19([c for c, _, _ in pairs], seed, n_test)
    test_set = set(test_cases)
    kept: Dict[str, List[int]] = {}
    spacing: Dict[str, List[float]] = {}
    train_names: List[str] = []
    test_names: List[str] = []
    with new_output_folder(out) as dst:
        for case, image_path, seg_path in tqdm(pairs, desc="kits19", unit="case", file=sys.stderr, leave=False,
                                               disable=None if progress else True):
            ct, zooms = read_nifti(image_path)
            seg, _ = read_nifti(seg_path)
            label = _labels(seg, seg_path)
            keep = both_classes_slices(label)
            kept[case] = [int(k) for k in keep]
            spacing[case] = [float(z) for z in zooms[:3]]
            if keep.size == 0:
                continue
            image = ((np.clip(ct[keep], lo, hi) - lo) / (hi - lo)).astype(np.float32)
            label = np.ascontiguousarray(label[keep])
            if case in test_set:
                write_h5(dst / "test_vol_h5" / f"{case}.npy.h5", image, label, spacing=tuple(spacing[case]))
                test_names.append(case)
            else:
                for k, index in enumerate(keep):
                    name = f"{case}_slice{int(index):03d}"
                    write_npz(dst / "train_npz" / f"{name}.npz", np.ascontiguousarray(image[k]),
                              np.ascontiguousarray(label[k]))
                    train_names.append(name)
        if not train_names:
            raise UserError(f"no training slice holds both kidney and tumor in {raw}: nothing to train on")
        lists = dst / "lists" / "lists_Synapse"
        atomic_write_text(lists / "train.txt", "".join(n + "\n" for n in train_names))
        atomic_write_text(lists / "test_vol.txt", "".join(n + "\n" for n in test_names))
        manifest = {"format": "synapse", "dataset": "kits19", "labels": "kits19", "class_names": list(KITS19_CLASSES),
                    "ct_window": [lo, hi], "slice_axis": 0, "spacing": spacing, "seed": seed,
                    "split": {"train": train_cases, "test": test_cases},
                    "protocol": "axial slices containing both kidney and tumor; seeded random case split",
                    "slices_kept": kept,
                    "cases_without_kept_slices": sorted(c for c, k in kept.items() if not k)}
        atomic_write_text(dst / "dataset.json", json.dumps(manifest, indent=2) + "\n")
        atomic_write_text(dst / "split.json", json.dumps({"seed": seed, **manifest["split"]}, indent=2) + "\n")
    return manifest


__all__ = ["KITS19_CLASSES", "KITS19_CT_WINDOW", "both_classes_slices", "find_kits19_cases", "new_output_folder",
           "prepare_kits19", "split_kits19"]
