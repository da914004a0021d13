"""Multi-class metrics of the EMCAD / MIST / MERIT test scripts: per-class Dice, IoU and HD95.

Each case (a 2-D slice or a 3-D volume of labels) is scored per foreground class with the upstream
per-case convention (``calculate_metric_percase``), which decides the empty cases *before* medpy:

* prediction and GT both non-empty: medpy ``dc``, ``jc`` and ``hd95``;
* prediction non-empty, GT empty: Dice = IoU = 1, HD95 = 0 (sic: upstream rewards the false positive);
* prediction empty: Dice = IoU = 0, HD95 = 0.

Scores are averaged over cases per class, then over classes, as the upstream ``inference`` does.
HD95 is in physical units when ``spacing`` is given (e.g. mm per voxel along each axis; upstream passes
none, i.e. pixels).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .surface import Spacing, hd95, surface_distances


def case_metrics(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None,
                 hd95_convention: str = "medpy") -> Dict[str, float]:
    """Dice, IoU and HD95 of one binary case with the upstream empty-case convention (module docstring).

    ``hd95_convention``: ``medpy`` (pooled, default) or ``monai`` (directed maximum), see
    :mod:`jittor_pranet.metrics.hausdorff`; the empty-case rules are the same for both."""
    pred = np.asarray(pred) > 0
    gt = np.asarray(gt) > 0
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != GT shape {gt.shape}")
    scores = overlap_scores(pred, gt)
    scores["HD95"] = _hd95(pred, gt, spacing, hd95_convention) if (pred.any() and gt.any()) else 0.0
    return scores


def overlap_scores(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """Dice and IoU of one binary case with the upstream empty-case rules (a non-empty prediction of
    an absent class scores 1, an empty prediction 0): the one Dice every evaluator uses."""
    pred = np.asarray(pred) > 0
    gt = np.asarray(gt) > 0
    n_pred, n_gt = int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
    if n_pred and n_gt:
        inter = int(np.count_nonzero(pred & gt))
        return {"Dice": 2.0 * inter / (n_pred + n_gt), "IoU": inter / (n_pred + n_gt - inter)}
    value = 1.0 if n_pred else 0.0
    return {"Dice": value, "IoU": value}


def _hd95(pred: np.ndarray, gt: np.ndarray, spacing: Spacing, convention: str) -> float:
    if convention == "medpy":
        return hd95(pred, gt, spacing)
    from .hausdorff import hd95_by_convention

    return hd95_by_convention(pred, gt, spacing, convention)


class MultiClassMetrics:
    """Per-class Dice / IoU / HD95 accumulated over cases (2-D slices or 3-D label volumes).

    Class 0 is background and is not scored; ``step`` takes integer label maps of the same shape.
    """

    def __init__(self, num_classes: int, class_names: Optional[Sequence[str]] = None, spacing: Spacing = None,
                 hd95_convention: str = "medpy"):
        if num_classes < 2:
            raise ValueError("num_classes counts the background: it must be >= 2")
        self.num_classes = num_classes
        names = list(class_names) if class_names is not None else [f"class{i}" for i in range(1, num_classes)]
        if len(names) != num_classes - 1:
            raise ValueError(f"need {num_classes - 1} class names (background excluded), got {len(names)}")
        self.class_names = names
        self.spacing = spacing
        from .hausdorff import check_convention

        self.hd95_convention = check_convention(hd95_convention)
        self._cases: List[np.ndarray] = []  # (num_classes - 1, 3): Dice, IoU, HD95

    def step(self, pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None) -> Dict[str, Dict[str, float]]:
        """Score one case; returns its per-class scores. ``spacing`` overrides the default for this case."""
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape or pred.ndim not in (2, 3):
            raise ValueError(f"need 2-D or 3-D label maps of one shape, got {pred.shape} and {gt.shape}")
        sp = self.spacing if spacing is None else spacing
        per_class = {}
        rows = []
        for c, name in enumerate(self.class_names, start=1):
            m = case_metrics(pred == c, gt == c, sp, self.hd95_convention)
            per_class[name] = m
            rows.append((m["Dice"], m["IoU"], m["HD95"]))
        self._cases.append(np.asarray(rows, dtype=np.float64))
        return per_class

    def __len__(self) -> int:
        return len(self._cases)

    def results(self) -> Dict[str, object]:
        """``{"per_class": {name: {Dice, IoU, HD95}}, "mDice", "mIoU", "mHD95"}`` (means over cases, then classes)."""
        if not self._cases:
            raise RuntimeError("MultiClassMetrics: no case was scored")
        per_case_mean = np.mean(self._cases, axis=0)
        per_class = {
            name: {"Dice": float(r[0]), "IoU": float(r[1]), "HD95": float(r[2])}
            for name, r in zip(self.class_names, per_case_mean)
        }
        overall = per_case_mean.mean(axis=0)
        return {"per_class": per_class, "mDice": float(overall[0]), "mIoU": float(overall[1]), "mHD95": float(overall[2])}


__all__ = ["MultiClassMetrics", "case_metrics", "hd95", "surface_distances"]
