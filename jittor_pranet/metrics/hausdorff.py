"""HD95 as each community computes it, on the same surface distances.

Both conventions take the surface of a mask as the voxels one erosion (connectivity 1, the outside of
the array counting as background) removes, and measure Euclidean distances between the two surfaces
with the voxel spacing (:func:`jittor_pranet.metrics.surface.surface_distances`). They differ only
in how the two directions are combined:

* ``medpy`` (default; ``medpy.metric.binary.hd95``, what the official EMCAD / MIST / PraNet-V2 test
  scripts and their tables use): the 95th percentile of the *pooled* distances of both directions;
* ``monai`` (``monai.metrics.HausdorffDistanceMetric(percentile=95)``): the larger of the two
  *directed* 95th percentiles, ``max(p95(d(pred -> gt)), p95(d(gt -> pred)))``, never smaller
  than the medpy value.

Empty cases are decided before any distance, with the official ``calculate_metric_percase`` rules,
whatever the convention (so the tables stay comparable with the papers):

==========================  =====  =====  ===================================================
prediction / ground truth   Dice   HD95   what MONAI 1.6.1 returns for that HD95
==========================  =====  =====  ===================================================
non-empty / non-empty       dice   value  the same value
non-empty / empty           1      0      NaN (no GT surface; the false positive is rewarded)
empty / non-empty           0      0      NaN (inf one way, no surface the other way)
empty / empty               0      0      NaN (a correctly absent class still scores 0)
==========================  =====  =====  ===================================================
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .surface import Spacing, surface_distances

HD95_CONVENTIONS: Tuple[str, ...] = ("medpy", "monai")
DEFAULT_HD95_CONVENTION = "medpy"

EMPTY_CASE_RULES = ("empty cases (official calculate_metric_percase, either convention): prediction of a class "
                    "absent from the GT -> Dice 1, HD95 0; empty prediction -> Dice 0, HD95 0 (even when the "
                    "class is correctly absent)")


def check_convention(convention: str) -> str:
    """``convention`` if it is one of :data:`HD95_CONVENTIONS`, else ``ValueError``."""
    if convention not in HD95_CONVENTIONS:
        raise ValueError(f"HD95 convention must be one of {', '.join(HD95_CONVENTIONS)}, not {convention!r}")
    return convention


def directed_distances(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None,
                       connectivity: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Surface distances pred -> gt and gt -> pred (both masks must be non-empty)."""
    return (surface_distances(pred, gt, spacing, connectivity), surface_distances(gt, pred, spacing, connectivity))


def hd95_pooled(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None, connectivity: int = 1) -> float:
    """medpy: 95th percentile of both directions' distances pooled together."""
    forward, backward = directed_distances(pred, gt, spacing, connectivity)
    return float(np.percentile(np.concatenate((forward, backward)), 95))


def hd95_directed_max(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None, connectivity: int = 1) -> float:
    """MONAI: the larger of the two directed 95th percentiles."""
    forward, backward = directed_distances(pred, gt, spacing, connectivity)
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def hd95_by_convention(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = None,
                       convention: str = DEFAULT_HD95_CONVENTION) -> float:
    """HD95 of two non-empty masks in the named convention (module docstring)."""
    if check_convention(convention) == "monai":
        return hd95_directed_max(pred, gt, spacing)
    return hd95_pooled(pred, gt, spacing)


__all__ = ["DEFAULT_HD95_CONVENTION", "EMPTY_CASE_RULES", "HD95_CONVENTIONS", "check_convention",
           "directed_distances", "hd95_by_convention", "hd95_directed_max", "hd95_pooled"]
