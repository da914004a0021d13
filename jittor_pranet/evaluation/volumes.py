"""Per-volume, per-class evaluation of a 2-D multi-class model, as the Synapse/ACDC papers do it.

Model-agnostic: the model is a callable ``predict_logits(batch) -> logits`` on numpy arrays
(N x C_in x S x S float32 -> N x K x S x S), so this runs with any framework or a fake model.

Protocol of the official test scripts (``test_single_volume``): every slice is zoomed to the
training size (SciPy ``zoom``, order 3), the class is the argmax of the logits, and the label map is
zoomed back to the slice's size with order 0. Per volume and per foreground class, Dice, IoU and
HD95 follow :mod:`jittor_pranet.metrics.multiclass` (medpy, upstream's empty-case rules); scores are
averaged over volumes per class, then over classes. HD95 is reported twice, each named:
``HD95_vox`` in voxels (no spacing; what the official tables report) and ``HD95_mm`` with the
volume's voxel spacing (only when every volume's spacing is known).
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
from scipy import ndimage

from jittor_pranet.data.multiclass import VolumeCase
from jittor_pranet.errors import UserError
from jittor_pranet.metrics.hausdorff import EMPTY_CASE_RULES, check_convention
from jittor_pranet.metrics.multiclass import case_metrics, overlap_scores
from jittor_pranet.utils.io import atomic_imwrite, atomic_write_text
from jittor_pranet.utils.overlay import label_palette, overlay_labels

PredictLogits = Callable[[np.ndarray], np.ndarray]
METRIC_NAMES = ("Dice", "IoU", "HD95_vox", "HD95_mm")


def predict_volume(image: np.ndarray, predict_logits: PredictLogits, input_size: int,
                   batch_size: int = 8) -> np.ndarray:
    """D x H x W (or D x H x W x 3) image -> D x H x W int64 label map, slice by slice (module docstring)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (3, 4) or image.shape[0] == 0:
        raise UserError(f"need a D x H x W volume with at least one slice, got shape {tuple(image.shape)}")
    depth, h, w = image.shape[:3]
    factors = (input_size / h, input_size / w)
    slices = []
    for k in range(depth):
        s = image[k]
        if (h, w) != (input_size, input_size):
            s = ndimage.zoom(s, factors + ((1,) if s.ndim == 3 else ()), order=3)
        slices.append(s[None] if s.ndim == 2 else s.transpose(2, 0, 1))
    out = np.zeros((depth, h, w), dtype=np.int64)
    for start in range(0, depth, max(1, batch_size)):
        batch = np.ascontiguousarray(np.stack(slices[start:start + batch_size]), dtype=np.float32)
        logits = np.asarray(predict_logits(batch))
        if logits.ndim != 4 or logits.shape[0] != batch.shape[0] or logits.shape[2:] != batch.shape[2:]:
            raise UserError(f"predict_logits returned shape {tuple(logits.shape)} for input "
                            f"{tuple(batch.shape)}; expected N x classes x {input_size} x {input_size}")
        labels = logits.argmax(axis=1)
        for i, lab in enumerate(labels):
            if (h, w) != (input_size, input_size):
                lab = ndimage.zoom(lab, (h / input_size, w / input_size), order=0)
            out[start + i] = lab
    return out


def score_volume(pred: np.ndarray, gt: np.ndarray, class_names: Sequence[str],
                 spacing: Optional[Sequence[float]] = None,
                 compute_hd95: bool = True, hd95_convention: str = "medpy") -> Dict[str, Dict[str, Optional[float]]]:
    """Per-class Dice, IoU, HD95 in voxels and (with ``spacing``) in mm for one volume.

    ``hd95_convention``: ``medpy`` (pooled) or ``monai`` (directed maximum), see
    :mod:`jittor_pranet.metrics.hausdorff`.

    ``compute_hd95=False`` skips the surface distances (HD95 fields None): enough to select a
    checkpoint by Dice, and much cheaper on large volumes.
    """
    if pred.shape != gt.shape:
        raise UserError(f"prediction {tuple(pred.shape)} and label {tuple(gt.shape)} differ in shape")
    scores = {}
    for c, name in enumerate(class_names, start=1):
        p, g = pred == c, gt == c
        if not compute_hd95:
            scores[name] = {**overlap_scores(p, g), "HD95_vox": None, "HD95_mm": None}
            continue
        m = case_metrics(p, g, hd95_convention=hd95_convention)
        hd_mm: Optional[float] = None
        if spacing is not None:
            hd_mm = case_metrics(p, g, spacing, hd95_convention)["HD95"] if (p.any() and g.any()) else m["HD95"]
        scores[name] = {"Dice": m["Dice"], "IoU": m["IoU"], "HD95_vox": m["HD95"], "HD95_mm": hd_mm}
    return scores


@dataclass
class VolumeEvalResult:
    """Scores of every volume; per-class means and tables derived from them."""

    class_names: List[str]
    volumes: List[Dict[str, object]] = field(default_factory=list)
    hd95_convention: str = "medpy"

    def per_class(self) -> Dict[str, Dict[str, Optional[float]]]:
        """Mean over volumes per class (``HD95_mm`` None unless every volume had a spacing)."""
        if not self.volumes:
            raise UserError("no volume was evaluated")
        out = {}
        for name in self.class_names:
            row = {}
            for metric in METRIC_NAMES:
                values = [v["scores"][name][metric] for v in self.volumes]
                row[metric] = None if any(x is None for x in values) else float(np.mean(values))
            out[name] = row
        return out

    def means(self) -> Dict[str, Optional[float]]:
        """Mean over classes of the per-class means: mDice, mIoU, mHD95_vox, mHD95_mm."""
        per_class = self.per_class()
        out = {}
        for metric in METRIC_NAMES:
            values = [row[metric] for row in per_class.values()]
            out["m" + metric] = None if any(x is None for x in values) else float(np.mean(values))
        return out

    def markdown_table(self) -> str:
        per_class, means = self.per_class(), self.means()
        lines = ["| class | Dice | IoU | HD95 (voxels) | HD95 (mm) |", "|---|---:|---:|---:|---:|"]
        for name, row in per_class.items():
            lines.append(f"| {name} | {_fmt(row['Dice'], 4)} | {_fmt(row['IoU'], 4)} | "
                         f"{_fmt(row['HD95_vox'], 2)} | {_fmt(row['HD95_mm'], 2)} |")
        lines.append(f"| **mean** | **{_fmt(means['mDice'], 4)}** | **{_fmt(means['mIoU'], 4)}** | "
                     f"**{_fmt(means['mHD95_vox'], 2)}** | **{_fmt(means['mHD95_mm'], 2)}** |")
        return "\n".join(lines)

    def conventions(self) -> str:
        """One line naming the HD95 convention and the empty-case rules behind the table."""
        kind = ("pooled 95th percentile, medpy" if self.hd95_convention == "medpy"
                else "max of the directed 95th percentiles, MONAI")
        return f"HD95: {kind}; {EMPTY_CASE_RULES}."

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["class", *METRIC_NAMES])
        for name, row in self.per_class().items():
            writer.writerow([name, *("" if row[m] is None else f"{row[m]:.6f}" for m in METRIC_NAMES)])
        means = self.means()
        writer.writerow(["mean", *("" if means["m" + m] is None else f"{means['m' + m]:.6f}" for m in METRIC_NAMES)])
        return buf.getvalue()

    def to_json(self) -> str:
        return json.dumps({"classes": self.class_names, "per_class": self.per_class(), "mean": self.means(),
                           "volumes": self.volumes, "hd95_convention": self.hd95_convention,
                           "empty_cases": EMPTY_CASE_RULES,
                           "units": {"HD95_vox": "voxels (no spacing; the official tables)",
                                     "HD95_mm": "mm, from each volume's voxel spacing"}}, indent=2)

    def write(self, out_dir: Path) -> List[Path]:
        """per_class.md, per_class.csv and metrics.json under ``out_dir``, each written atomically."""
        out_dir = Path(out_dir)
        return [atomic_write_text(out_dir / "per_class.md", self.markdown_table() + "\n\n" + self.conventions() + "\n"),
                atomic_write_text(out_dir / "per_class.csv", self.csv_text()),
                atomic_write_text(out_dir / "metrics.json", self.to_json() + "\n")]


def _fmt(value: Optional[float], digits: int) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def overlay_slice_indices(label: np.ndarray, count: int) -> List[int]:
    """Up to ``count`` slices, evenly spread over those with foreground (over all when none has)."""
    if count <= 0:
        return []
    candidates = np.flatnonzero(label.reshape(label.shape[0], -1).any(axis=1))
    if candidates.size == 0:
        candidates = np.arange(label.shape[0])
    picks = np.linspace(0, candidates.size - 1, num=min(count, candidates.size)).round().astype(int)
    return sorted({int(candidates[i]) for i in picks})


def _to_rgb(image_slice: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (image_slice - lo) / (hi - lo) if hi > lo else np.zeros_like(image_slice)
    gray = np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)
    return gray if gray.ndim == 3 else np.repeat(gray[:, :, None], 3, axis=2)


def write_overlays(case: VolumeCase, pred: np.ndarray, num_classes: int, out_dir: Path, count: int) -> List[Path]:
    """PNG per chosen slice: ground truth (left) and prediction (right) tinted with the class colours."""
    palette = label_palette(max(num_classes, 2))
    lo, hi = float(case.image.min()), float(case.image.max())
    paths = []
    for k in overlay_slice_indices(case.label, count):
        rgb = _to_rgb(case.image[k], lo, hi)
        gt = overlay_labels(rgb, case.label[k], palette=palette)
        pr = overlay_labels(rgb, pred[k], palette=palette)
        gap = np.full((rgb.shape[0], 4, 3), 255, dtype=np.uint8)
        picture = np.concatenate([gt, gap, pr], axis=1)
        paths.append(atomic_imwrite(out_dir / f"{case.name}_slice{k:03d}.png", picture[:, :, ::-1]))
    return paths


def evaluate_volumes(volumes: Iterable[VolumeCase], predict_logits: PredictLogits, class_names: Sequence[str],
                     input_size: int, batch_size: int = 8, out_dir: Optional[Path] = None,
                     overlays_per_volume: int = 3, progress: bool = True,
                     total: Optional[int] = None, compute_hd95: bool = True,
                     hd95_convention: str = "medpy") -> VolumeEvalResult:
    """Predict and score every volume; with ``out_dir``, write the tables and overlay PNGs there.

    ``class_names``: foreground classes 1..K (the model outputs K + 1 channels). ``total``: number
    of volumes, for the progress bar when ``volumes`` is a generator. ``compute_hd95=False``: Dice
    and IoU only (validation during training).
    """
    from tqdm import tqdm

    class_names = list(class_names)
    result = VolumeEvalResult(class_names=class_names, hd95_convention=check_convention(hd95_convention))
    bar = tqdm(volumes, total=total, desc="volumes", unit="volume", file=sys.stderr, leave=False,
               disable=None if progress else True)
    for case in bar:
        pred = predict_volume(case.image, predict_logits, input_size, batch_size)
        scores = score_volume(pred, case.label, class_names, case.spacing, compute_hd95, hd95_convention)
        result.volumes.append({"name": case.name, "shape": list(case.label.shape),
                               "spacing": None if case.spacing is None else list(case.spacing), "scores": scores})
        if out_dir is not None and overlays_per_volume > 0:
            write_overlays(case, pred, len(class_names) + 1, Path(out_dir) / "overlays", overlays_per_volume)
    if not result.volumes:
        raise UserError("no volume to evaluate")
    if out_dir is not None:
        result.write(Path(out_dir))
    return result


__all__ = ["METRIC_NAMES", "VolumeEvalResult", "evaluate_volumes", "overlay_slice_indices", "predict_volume",
           "score_volume", "write_overlays"]
