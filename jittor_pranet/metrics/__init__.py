"""Evaluation metrics (numpy / OpenCV / SciPy only: usable without Jittor).

``binary``: the polyp-segmentation protocol (Dice/IoU curves, S-measure, E-measure, weighted F, MAE);
``multiclass``: per-class Dice / IoU / HD95 of the multi-class (Synapse, ACDC) test scripts.
"""
from .binary import (
    GT_THRESHOLDS,
    MAE,
    METRIC_KEYS,
    Dice,
    EMeasure,
    ImagePair,
    IoU,
    PolypMetrics,
    SMeasure,
    WeightedFMeasure,
    evaluate_arrays,
    thresholds,
)
from .multiclass import MultiClassMetrics, case_metrics, hd95

__all__ = [
    "GT_THRESHOLDS",
    "MAE",
    "METRIC_KEYS",
    "Dice",
    "EMeasure",
    "ImagePair",
    "IoU",
    "MultiClassMetrics",
    "PolypMetrics",
    "SMeasure",
    "WeightedFMeasure",
    "case_metrics",
    "evaluate_arrays",
    "hd95",
    "thresholds",
]
