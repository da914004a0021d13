"""Volumes as 2-D slices: the acquisition's slice axis, the slice layout and the intensity preprocessing.

Shared by what reads volumes for training and testing (the nnU-Net NIfTI layout) and by ``predict`` on
NIfTI files (:mod:`jittor_pranet.engine.volume_predict`), so that both cut and normalise a volume the same
way. A ``preprocessing`` record is ``{"intensity": "ct_window", "window": [low, high]}`` (HU clipped
and scaled to [0, 1]) or ``{"intensity": "minmax"}`` (per-volume min-max to [0, 1]), with ``in_plane``
``"ascending"`` (in-plane axes in file order) or ``"descending"`` (swapped, as the ACDC layout stores them).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from jittor_pranet.errors import UserError


def describe_preprocessing(pre: Dict[str, Any]) -> str:
    if pre["intensity"] == "ct_window":
        lo, hi = pre["window"]
        text = f"CT window [{lo:g}, {hi:g}] HU scaled to [0, 1]"
    else:
        text = "per-volume min-max to [0, 1] (MRI)"
    return text + ("" if pre.get("in_plane", "ascending") == "ascending" else ", in-plane axes swapped")


def check_preprocessing(pre: Any) -> Dict[str, Any]:
    """A recorded ``preprocessing`` entry, checked (one-line error when malformed)."""
    if not isinstance(pre, dict) or pre.get("intensity") not in ("ct_window", "minmax"):
        raise UserError(f"checkpoint preprocessing must have intensity ct_window or minmax, got {pre!r}")
    if pre.get("in_plane", "ascending") not in ("ascending", "descending"):
        raise UserError(f"checkpoint preprocessing in_plane must be ascending or descending, got {pre!r}")
    if pre["intensity"] == "ct_window":
        window = pre.get("window")
        if not (isinstance(window, (list, tuple)) and len(window) == 2 and float(window[1]) > float(window[0])):
            raise UserError(f"checkpoint preprocessing window must be [low, high] with high > low, got {window!r}")
    return pre


def normalise_intensity(volume: np.ndarray, pre: Dict[str, Any],
                        value_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """float32 volume in [0, 1] as the prepare step produced it for training.

    ``value_range``: the (min, max) of the whole volume when ``volume`` is part of it (slices read one by
    one), so that ``minmax`` gives every part the values the whole volume would get."""
    if pre["intensity"] == "ct_window":
        lo, hi = (float(v) for v in pre["window"])
        return ((np.clip(volume, lo, hi) - lo) / (hi - lo)).astype(np.float32)
    lo, hi = (float(volume.min()), float(volume.max())) if value_range is None else map(float, value_range)
    return ((volume - lo) / (hi - lo) if hi > lo else np.zeros_like(volume)).astype(np.float32)

def slice_axis_of(affine: np.ndarray, zooms: Sequence[float], shape: Optional[Sequence[int]] = None) -> int:
    """The acquisition's slice axis: the voxel axis with the clearly largest spacing (thick slices);
    for (near-)isotropic voxels, the voxel axis pointing most along the scanner's z (head-foot).
    With ``shape``: a 2-D image stored as a volume (exactly one axis of length 1) is sliced along that axis."""
    if shape is not None:
        flat = [a for a, n in enumerate(list(shape)[:3]) if int(n) == 1]
        if len(flat) == 1:
            return flat[0]
    zooms = np.asarray(zooms[:3], dtype=np.float64)
    order = np.argsort(zooms)[::-1]
    if zooms[order[0]] > 1.01 * zooms[order[1]]:
        return int(order[0])
    directions = np.abs(np.asarray(affine, dtype=np.float64)[:3, :3])
    directions = directions / np.maximum(directions.sum(axis=0, keepdims=True), 1e-12)
    return int(np.argmax(directions[2]))

def to_slices(volume: np.ndarray, axis: int, in_plane: str) -> np.ndarray:
    """File voxel order -> D x H x W slices along ``axis`` (the prepared layout)."""
    slices = np.moveaxis(volume, axis, 0)
    return slices.transpose(0, 2, 1) if in_plane == "descending" else slices


def from_slices(slices: np.ndarray, axis: int, in_plane: str) -> np.ndarray:
    """Inverse of :func:`to_slices`."""
    if in_plane == "descending":
        slices = slices.transpose(0, 2, 1)
    return np.moveaxis(slices, 0, axis)


__all__ = ["check_preprocessing", "describe_preprocessing", "from_slices", "normalise_intensity", "slice_axis_of",
           "to_slices"]
