"""nnU-Net raw datasets (``DatasetXXX_Name/{dataset.json, imagesTr, labelsTr, imagesTs}``) as a layout.

nnU-Net names an image ``<case>_<channel>.<ext>`` (``case_0000.png``, ``case_0000.nii.gz``) and its
label map ``<case>.<ext>`` (voxel value = class id); ``dataset.json`` names the classes under
``labels``, either as nnU-Net v2 writes it (``{"background": 0, "kidney": 1}``) or as v1 does
(``{"0": "background", "1": "kidney"}``). Two kinds of dataset are read, single-channel only:

* 2-D PNG (``file_ending: ".png"``): every image is a case of its own;
* NIfTI volumes (``.nii.gz`` / ``.nii``): every volume is a case. Training reads it as slices along
  the acquisition's slice axis (the same rule as ``predict`` on a NIfTI file: the voxel axis with the
  clearly largest spacing, else the one pointing most along the scanner's head-foot axis), ``test``
  scores whole volumes with the voxel spacing of their header. Raw intensities are normalised as
  nnU-Net's channel name says: ``CT`` is clipped to the 0.5 / 99.5 percentiles of the foreground
  intensities of the training cases (nnU-Net's CT statistics) and scaled to [0, 1]; any other
  channel is scaled per volume by its min and max. That preprocessing is recorded in the checkpoint,
  ``test`` applies the checkpoint's own, and ``predict`` on a NIfTI file applies the same, so a volume
  gets the same labels through both.

Validation splits are by case as for every layout. The test set is ``imagesTs`` with ``labelsTs``
when the dataset has ground truth for it (nnU-Net's own raw data usually does not: then there is none).
Decoded volumes are kept in memory (up to :data:`CACHE_BYTES` per process, least recently used out),
so a dataset that fits is decompressed once; a larger one is read again volume by volume.
"""
from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from jittor_pranet.data.multiclass import ClassSet, SliceRecord, VolumeRecord, volumes_from_slices
from jittor_pranet.data.volume_slices import check_preprocessing, normalise_intensity, slice_axis_of, to_slices
from jittor_pranet.errors import UserError

NIFTI_ENDINGS = (".nii.gz", ".nii")
#: endings nnU-Net reads through other readers (SimpleITK, tifffile) that are not read here
OTHER_ENDINGS = (".nrrd", ".mha", ".tif", ".tiff", ".jpg", ".bmp")
#: decoded volumes kept per process (bytes, float32); least recently used out
CACHE_BYTES = 1 << 30
#: nnU-Net's CT statistics: percentiles of foreground intensities, sampled per training case
CT_PERCENTILES = (0.5, 99.5)
CT_SAMPLES_PER_CASE = 10000


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
        if str(name).lower() == "ignore":
            raise UserError(f"{where}: the 'ignore' label (value {raw!r}) is not supported; relabel those voxels")
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


def _channel_names(meta: dict, where: Path) -> List[str]:
    """The channels dataset.json declares (v2 ``channel_names``, v1 ``modality``), in channel order."""
    channels = meta.get("channel_names", meta.get("modality"))
    if channels is None:
        return []
    if not isinstance(channels, dict) or not channels:
        raise UserError(f"{where}: 'channel_names' must map channel numbers to names, got {channels!r}")
    try:
        ordered = sorted(channels.items(), key=lambda kv: int(kv[0]))
    except (TypeError, ValueError):
        raise UserError(f"{where}: 'channel_names' keys must be channel numbers, got {sorted(map(str, channels))}") from None
    names = [str(v) for _, v in ordered]
    if len(names) > 1:
        raise UserError(f"{where}: {len(names)} input channels ({', '.join(names)}); only single-channel "
                        "nnU-Net datasets are read")
    return names


def _pairs(image_dir: Path, label_dir: Path, ending: str) -> List[Tuple[str, Path, Path]]:
    """(case, image, label) for every ``<case>_0000<ending>`` image in ``image_dir``."""
    images, labels = _listing(image_dir), set(_listing(label_dir))
    out = []
    for name in images:
        if not name.lower().endswith(ending.lower()):
            continue
        stem = name[: -len(ending)]
        case, _, channel = stem.rpartition("_")
        if not case or len(channel) != 4 or not channel.isdigit():
            raise UserError(f"{image_dir / name}: nnU-Net images are named <case>_0000{ending}")
        if channel != "0000":
            raise UserError(f"{image_dir / name}: only single-channel nnU-Net datasets are read "
                            f"(channel {channel} found)")
        label_name = case + name[len(stem):]
        if label_name not in labels:
            raise UserError(f"{image_dir / name}: no label {label_dir / label_name}")
        out.append((case, image_dir / name, label_dir / label_name))
    return out


# ---------------------------------------------------------------------------------------------
# NIfTI volumes: geometry from the header, decoded volumes cached, intensities normalised


@dataclass(frozen=True)
class NiftiCase:
    """One nnU-Net NIfTI case: image and label files, their 3-D shape and voxel sizes (file order) and
    the slice axis; ``intensity`` is the dataset's (shared) preprocessing."""

    name: str
    image: Path
    label: Path
    shape: Tuple[int, int, int]
    zooms: Tuple[float, float, float]
    axis: int
    intensity: "NiftiIntensity" = field(compare=False, hash=False, repr=False)

    def slices(self, array: np.ndarray, in_plane: str) -> np.ndarray:
        return to_slices(array, self.axis, in_plane)

    def spacing(self, in_plane: str) -> Tuple[float, float, float]:
        """Voxel sizes in the order of :meth:`slices` (slice, row, column)."""
        rest = [self.zooms[a] for a in range(3) if a != self.axis]
        if in_plane == "descending":
            rest = rest[::-1]
        return (self.zooms[self.axis], rest[0], rest[1])


class _VolumeCache:
    """Decoded float32 volumes by (path, size, mtime), least recently used out past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: "OrderedDict[tuple, Tuple[np.ndarray, float, float]]" = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path, shape: Tuple[int, int, int]) -> Tuple[np.ndarray, float, float]:
        """(volume in file order, its min, its max); read with the header-size check of read_nifti."""
        from jittor_pranet.data.medical_io import read_nifti

        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        array, _ = read_nifti(path)
        if array.size != int(np.prod(shape)):
            raise UserError(f"{path}: holds {array.size} voxels, its header {'x'.join(map(str, shape))}")
        array = array.reshape(shape)
        if not np.isfinite(array).all():
            raise UserError(f"{path}: the volume holds NaN or infinite values")
        entry = (array, float(array.min()), float(array.max()))
        with self.lock:
            self.items[key] = entry
            while len(self.items) > 1 and sum(a.nbytes for a, _, _ in self.items.values()) > self.limit:
                self.items.popitem(last=False)
        return entry


_CACHE = _VolumeCache(CACHE_BYTES)


class NiftiIntensity:
    """The intensity preprocessing of an nnU-Net NIfTI dataset: fitted on the training cases
    (:meth:`fit`) or taken from a checkpoint (:meth:`use`); every read normalises with it."""

    def __init__(self, channel: str, where: Path) -> None:
        self.channel = channel
        self.where = where
        self.preprocessing: Optional[Dict[str, Any]] = None

    @property
    def is_ct(self) -> bool:
        return self.channel.casefold() == "ct"

    def use(self, pre: Dict[str, Any]) -> Dict[str, Any]:
        self.preprocessing = dict(check_preprocessing(pre))
        return self.preprocessing

    def fit(self, cases: Sequence[NiftiCase]) -> Dict[str, Any]:
        """CT: the 0.5 / 99.5 percentiles of foreground intensities (voxels of any class > 0; every
        voxel when no case has any), sampled seeded per case, as the window; else per-volume min-max."""
        if not self.is_ct:
            return self.use({"intensity": "minmax", "in_plane": "ascending"})
        rng = np.random.default_rng(1234)
        samples, background = [], []
        for case in sorted(set(cases), key=lambda c: c.name):
            image = _CACHE.get(case.image, case.shape)[0]
            label = _CACHE.get(case.label, case.shape)[0]
            if label.shape != image.shape:
                raise UserError(f"{case.label}: shape {label.shape} differs from its image's {image.shape}")
            values = image[label > 0]
            pool = samples if values.size else background
            values = values if values.size else image.reshape(-1)
            pool.append(rng.choice(values, min(CT_SAMPLES_PER_CASE, values.size), replace=False))
        pooled = np.concatenate(samples or background)
        lo, hi = (float(v) for v in np.percentile(pooled, CT_PERCENTILES))
        if not hi > lo:
            hi = lo + 1.0
        return self.use({"intensity": "ct_window", "window": [lo, hi], "in_plane": "ascending",
                         "source": f"nnU-Net CT statistics: {CT_PERCENTILES[0]:g} / {CT_PERCENTILES[1]:g} "
                                   "percentiles of the training foreground"})

    def required(self) -> Dict[str, Any]:
        if self.preprocessing is None:
            raise UserError(f"{self.where}: NIfTI volumes read before their intensity preprocessing was set "
                            "(training fits it on the training cases; test takes the checkpoint's)")
        return self.preprocessing


def _read_case(case: NiftiCase, index: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(image, label) of slice ``index`` (H x W) or of the whole case (D x H x W), normalised."""
    pre = case.intensity.required()
    in_plane = pre.get("in_plane", "ascending")
    image, lo, hi = _CACHE.get(case.image, case.shape)
    label = _CACHE.get(case.label, case.shape)[0]
    image, label = case.slices(image, in_plane), case.slices(label, in_plane)
    if index is not None:
        image, label = image[index], label[index]
    return normalise_intensity(np.ascontiguousarray(image), pre, (lo, hi)), np.ascontiguousarray(label)


@dataclass(frozen=True)
class NiftiSliceRecord(SliceRecord):
    """A training slice of an nnU-Net NIfTI case (read by :func:`~jittor_pranet.data.multiclass.read_slice`)."""

    source: Optional[NiftiCase] = None

    @property
    def name(self) -> str:
        return f"{self.case}_slice{self.index:03d}"

    def read_pair(self) -> Tuple[np.ndarray, np.ndarray]:
        return _read_case(self.source, self.index)


@dataclass(frozen=True)
class NiftiVolumeRecord(VolumeRecord):
    """A whole nnU-Net NIfTI case for evaluation, with the spacing of its header."""

    source: Optional[NiftiCase] = None

    def read_volume(self) -> Tuple[np.ndarray, np.ndarray, Tuple[float, float, float]]:
        image, label = _read_case(self.source, None)
        return image, label, self.source.spacing(self.source.intensity.required().get("in_plane", "ascending"))


def _geometry(path: Path) -> Tuple[Tuple[int, int, int], Tuple[float, float, float], np.ndarray]:
    """3-D shape, voxel sizes and affine from a NIfTI header (2-D images get a third axis of 1)."""
    from jittor_pranet.data.medical_io import nifti_header

    img, shape = nifti_header(path)
    zooms = tuple(float(z) for z in img.header.get_zooms()[: len(shape)])
    if len(shape) == 4 and shape[3] == 1:
        shape, zooms = shape[:3], zooms[:3]
    if len(shape) == 2:
        shape, zooms = shape + (1,), zooms + (1.0,)
    if len(shape) != 3:
        raise UserError(f"{path}: a {len(shape)}-D image of shape {'x'.join(map(str, shape))}; nnU-Net volumes are "
                        "3-D (one file per channel)")
    if min(shape) < 1:
        raise UserError(f"{path}: the header declares an empty volume ({'x'.join(map(str, shape))})")
    if not all(np.isfinite(zooms)) or min(zooms) <= 0:
        raise UserError(f"{path}: voxel sizes must be positive, the header says {list(zooms)}")
    return shape, zooms, np.asarray(img.affine, dtype=np.float64)  # type: ignore[return-value]


def _nifti_case(case: str, image: Path, label: Path, intensity: NiftiIntensity) -> NiftiCase:
    shape, zooms, affine = _geometry(image)
    label_shape, label_zooms, _ = _geometry(label)
    if label_shape != shape:
        raise UserError(f"{label}: shape {'x'.join(map(str, label_shape))} differs from its image "
                        f"{image.name} ({'x'.join(map(str, shape))})")
    if not np.allclose(label_zooms, zooms, rtol=1e-3):
        raise UserError(f"{label}: voxel sizes {list(label_zooms)} differ from its image {image.name} ({list(zooms)})")
    axis = slice_axis_of(affine, zooms, shape)  # the rule of predict on a NIfTI file
    return NiftiCase(name=case, image=image, label=label, shape=shape, zooms=zooms, axis=axis, intensity=intensity)


def _nifti_records(pairs, intensity: NiftiIntensity) -> Tuple[List[NiftiSliceRecord], List[NiftiCase]]:
    records, cases = [], []
    for case, image, label in pairs:
        source = _nifti_case(case, image, label, intensity)
        cases.append(source)
        records.extend(NiftiSliceRecord(path=image, volume=case, case=case, index=k, label_path=label, source=source)
                       for k in range(source.shape[source.axis]))
    return records, cases


def nifti_test_volumes(cases: Sequence[NiftiCase]) -> List[NiftiVolumeRecord]:
    return [NiftiVolumeRecord(name=c.name, case=c.name, path=c.image, source=c) for c in cases]


def check_cases(cases: Sequence[NiftiCase], num_classes: int) -> None:
    """Read every case once before training (they stay cached when they fit): a truncated file or a
    label value outside ``0..num_classes-1`` is one error naming the file, before any run folder exists."""
    from jittor_pranet.data.multiclass import check_labels

    for case in cases:
        _CACHE.get(case.image, case.shape)
        check_labels(_CACHE.get(case.label, case.shape)[0], num_classes, str(case.label))


def cases_of(slices: Sequence[SliceRecord]) -> List[NiftiCase]:
    """The NIfTI cases behind slice records, by name."""
    found = {s.source.name: s.source for s in slices if isinstance(s, NiftiSliceRecord)}
    return [found[n] for n in sorted(found)]


def training_cases(slices: Sequence[SliceRecord]) -> List[NiftiCase]:
    """The NIfTI cases behind training slices (after the validation split), by name."""
    return cases_of(slices)


# ---------------------------------------------------------------------------------------------
# Detection


def _found(root: Path) -> str:
    return ", ".join(sorted(e + ("/" if (root / e).is_dir() else "") for e in os.listdir(root))) or "nothing"


def _file_ending(meta: dict, image_dir: Path) -> str:
    ending = meta.get("file_ending")
    if ending is not None:
        return str(ending)
    names = _listing(image_dir)  # v1 has no file_ending: take it from the files
    endings = {next((e for e in NIFTI_ENDINGS if n.lower().endswith(e)), n[n.index("."):] if "." in n else "")
               for n in names}
    if len(endings) != 1 or "" in endings:
        shown = sorted(e or "(none)" for e in endings)
        raise UserError(f"{image_dir}: cannot tell the file type (endings {', '.join(shown) or 'none'}); "
                        "set file_ending in dataset.json")
    return endings.pop()


def detect_nnunet(root: Path) -> Optional[dict]:
    """The nnU-Net layout under ``root`` (``imagesTr/`` present), or None; malformed ones are errors."""
    image_dir = root / "imagesTr"
    if not image_dir.is_dir():
        return None
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise UserError(f"nnU-Net layout in {root} has no dataset.json (found: {_found(root)})")
    if not (root / "labelsTr").is_dir():
        raise UserError(f"nnU-Net layout in {root} has no labelsTr/ (found: {_found(root)})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: expected a JSON object")
    names = nnunet_class_names(meta.get("labels"), meta_path)
    channels = _channel_names(meta, meta_path)
    ending = _file_ending(meta, image_dir)
    kind = ending.lower()
    if kind not in NIFTI_ENDINGS + (".png",):
        raise UserError(f"nnU-Net layout in {root}: file_ending {ending!r} is not read "
                        "(2-D .png and NIfTI .nii.gz / .nii only)")
    train = _pairs(image_dir, root / "labelsTr", ending)
    if not train:
        shown = ", ".join(_listing(image_dir)[:5]) or "nothing"
        raise UserError(f"{image_dir}: no <case>_0000{ending} images (found: {shown})")
    test = []
    if (root / "imagesTs").is_dir() and (root / "labelsTs").is_dir():
        test = _pairs(root / "imagesTs", root / "labelsTs", ending)
    classes = ClassSet("nnunet", names)
    if kind == ".png":
        records = [SliceRecord(path=img, volume=case, case=case, index=0, label_path=lab) for case, img, lab in train]
        tests = [SliceRecord(path=img, volume=case, case=case, index=0, label_path=lab) for case, img, lab in test]
        return {"kind": "nnunet", "train": records, "val": None, "test": volumes_from_slices(tests), "classes": classes}
    intensity = NiftiIntensity(channels[0] if channels else "", meta_path)
    records, _ = _nifti_records(train, intensity)
    _, test_cases = _nifti_records(test, intensity)
    return {"kind": "nnunet", "train": records, "val": None, "test": nifti_test_volumes(test_cases),
            "classes": classes, "intensity": intensity}


__all__ = ["CACHE_BYTES", "NiftiCase", "NiftiIntensity", "NiftiSliceRecord", "NiftiVolumeRecord", "cases_of",
           "check_cases", "detect_nnunet", "nifti_test_volumes", "nnunet_class_names", "training_cases"]
