"""Deterministic synthetic "abdominal CT" volumes in the Synapse layout, so multi-class training runs
with no download.

Each volume is a stack of slices through a body-shaped ellipse (soft-tissue background with slow
drift, fat-like dark patches and noise) holding five organ-like structures, each with its own shape,
intensity and texture, whose cross-sections grow and shrink along the stack as real organs do:

1. liver: a large lobed blob, mid-gray with a smooth mottled texture;
2. spleen: a medium ellipse on the other side, brighter and smooth;
3. kidney: a pair of small ellipses with a bright rim (cortex) around a darker core;
4. aorta: a small, very bright disc in front of the spine;
5. stomach: a gas-filled (very dark) crescent with a speckled texture.

Intensities overlap a little with the background and with each other once noise is added, so a
model has to use shape and texture as well as brightness. Every volume is a pure function of
(seed, case index), so the same seed gives the same arrays.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from scipy import ndimage

from jittor_pranet.data.io import PathLike
from jittor_pranet.data.medical_io import write_h5, write_npz
from jittor_pranet.data.multiclass import DATASET_JSON
from jittor_pranet.errors import UserError
from jittor_pranet.utils.io import atomic_write_text

#: Foreground classes of the synthetic volumes, in label order.
SYNTHETIC_ORGANS: Tuple[str, ...] = ("liver", "spleen", "kidney", "aorta", "stomach")
GENERATOR_VERSION = 1
#: Voxel spacing (d, h, w) recorded for the synthetic volumes, in mm: typical of abdominal CT at 128 px.
SYNTHETIC_SPACING = (3.0, 2.5, 2.5)


def _smooth(rng: np.random.Generator, shape: Tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth noise of unit standard deviation at the scale of ``sigma`` pixels."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() + 1e-8)


def _ellipse(yy, xx, cy, cx, ry, rx, angle=0.0) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = yy - cy, xx - cx
    u = (dx * c + dy * s) / max(rx, 1e-3)
    v = (-dx * s + dy * c) / max(ry, 1e-3)
    return u * u + v * v <= 1.0


def _profile(z: float, centre: float, half_extent: float) -> float:
    """Relative cross-section radius at stack position ``z`` (0 outside the organ's extent)."""
    t = (z - centre) / half_extent
    return float(np.sqrt(max(0.0, 1.0 - t * t)))


def render_organ_volume(seed: int, case_index: int, size: int = 128, depth: int = 16) -> Tuple[np.ndarray, np.ndarray]:
    """(image D x H x W float32 in [0, 1], label D x H x W uint8) of one synthetic volume."""
    if size < 32 or depth < 1:
        raise UserError(f"synthetic volumes need size >= 32 and depth >= 1, got {size} and {depth}")
    rng = np.random.default_rng((int(seed), int(case_index), GENERATOR_VERSION))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size  # coordinates in [0, 1)
    # Per-volume anatomy: centres, radii and extents along the stack.
    j = lambda scale: rng.uniform(-scale, scale)  # noqa: E731
    body = dict(cy=0.5 + j(0.02), cx=0.5 + j(0.02), ry=0.36 + j(0.03), rx=0.45 + j(0.03))
    side = 1.0 if rng.random() < 0.5 else -1.0  # liver and spleen swap sides between volumes
    liver = dict(cy=0.42 + j(0.04), cx=0.5 - side * (0.2 + j(0.03)), ry=0.15 + j(0.03), rx=0.15 + j(0.03),
                 angle=j(0.5), zc=depth * (0.45 + j(0.1)), zr=depth * (0.6 + j(0.1)))
    spleen = dict(cy=0.42 + j(0.05), cx=0.5 + side * (0.27 + j(0.03)), ry=0.09 + j(0.02), rx=0.06 + j(0.015),
                  angle=j(0.6), zc=depth * (0.4 + j(0.1)), zr=depth * (0.4 + j(0.1)))
    kidney = dict(cy=0.64 + j(0.03), dx=0.21 + j(0.02), ry=0.075 + j(0.015), rx=0.05 + j(0.01),
                  zc=depth * (0.6 + j(0.1)), zr=depth * (0.35 + j(0.08)))
    aorta = dict(cy=0.6 + j(0.02), cx=0.5 + j(0.03), r=0.045 + j(0.008))
    stomach = dict(cy=0.33 + j(0.04), cx=0.5 + side * (0.08 + j(0.04)), ry=0.1 + j(0.02), rx=0.13 + j(0.02),
                   angle=j(0.5), zc=depth * (0.35 + j(0.1)), zr=depth * (0.35 + j(0.08)))
    gain = 1.0 + j(0.04)  # scanner-like global intensity change per volume

    images, labels = [], []
    for z in range(depth):
        image = np.zeros((size, size))
        label = np.zeros((size, size), dtype=np.uint8)
        inside = _ellipse(yy, xx, body["cy"], body["cx"], body["ry"], body["rx"])
        tissue = 0.42 + 0.05 * _smooth(rng, (size, size), size / 10) + 0.03 * _smooth(rng, (size, size), 1.5)
        fat = _smooth(rng, (size, size), size / 24) > 1.3
        tissue = np.where(fat, 0.18, tissue)
        image[inside] = tissue[inside]
        spine = _ellipse(yy, xx, body["cy"] + body["ry"] * 0.75, body["cx"], 0.055, 0.07)
        image[spine & inside] = 0.78 + 0.05 * _smooth(rng, (size, size), 2.0)[spine & inside]

        p = _profile(z, liver["zc"], liver["zr"])
        if p > 0.15:
            lobes = _smooth(rng, (size, size), size / 12) * 0.025
            mask = _ellipse(yy + lobes, xx, liver["cy"], liver["cx"], liver["ry"] * p, liver["rx"] * p, liver["angle"])
            mask &= inside
            texture = 0.6 + 0.04 * _smooth(rng, (size, size), size / 30)
            image[mask], label[mask] = texture[mask], 1
        p = _profile(z, spleen["zc"], spleen["zr"])
        if p > 0.15:
            mask = _ellipse(yy, xx, spleen["cy"], spleen["cx"], spleen["ry"] * p, spleen["rx"] * p, spleen["angle"])
            mask &= inside
            image[mask], label[mask] = 0.75, 2
        p = _profile(z, kidney["zc"], kidney["zr"])
        if p > 0.2:
            for sign in (-1.0, 1.0):
                cx = body["cx"] + sign * kidney["dx"]
                outer = _ellipse(yy, xx, kidney["cy"], cx, kidney["ry"] * p, kidney["rx"] * p, sign * 0.3)
                core = _ellipse(yy, xx, kidney["cy"], cx, kidney["ry"] * p * 0.55, kidney["rx"] * p * 0.5, sign * 0.3)
                image[outer], label[outer] = 0.82, 3
                image[core] = 0.5
        mask = _ellipse(yy, xx, aorta["cy"], aorta["cx"], aorta["r"], aorta["r"])
        image[mask], label[mask] = 0.97, 4
        p = _profile(z, stomach["zc"], stomach["zr"])
        if p > 0.2:
            outer = _ellipse(yy, xx, stomach["cy"], stomach["cx"], stomach["ry"] * p, stomach["rx"] * p, stomach["angle"])
            bite = _ellipse(yy, xx, stomach["cy"] + 0.06 * p, stomach["cx"], stomach["ry"] * p * 0.7,
                            stomach["rx"] * p * 0.65, stomach["angle"])
            mask = outer & ~bite & inside & (label == 0)
            speckle = 0.08 + 0.04 * _smooth(rng, (size, size), 0.8)  # gas-filled: darker than fat
            image[mask], label[mask] = speckle[mask], 5
        image = ndimage.gaussian_filter(image, 0.7) * gain + rng.normal(0.0, 0.035, (size, size))
        images.append(np.clip(image, 0.0, 1.0).astype(np.float32))
        labels.append(label)
    return np.stack(images), np.stack(labels)


def make_synthetic_organs(out: PathLike, seed: int = 0, train_cases: int = 8, test_cases: int = 4,
                          size: int = 128, depth: int = 16) -> Dict[str, object]:
    """Write the synthetic dataset in the Synapse layout under ``out`` and return its manifest.

    ``train_npz/caseNNNN_sliceKKK.npz``, ``test_vol_h5/caseNNNN.npy.h5``, ``lists/lists_Synapse`` and a
    ``dataset.json`` with the class names and spacing. An existing ``out`` written with the same
    parameters is reused; other contents are an error, so nothing of the user's is overwritten.
    """
    out = Path(out)
    params = {"generator": "synthetic_organs", "version": GENERATOR_VERSION, "seed": int(seed),
              "train_cases": int(train_cases), "test_cases": int(test_cases), "size": int(size), "depth": int(depth)}
    manifest_path = out / DATASET_JSON
    if manifest_path.is_file():
        try:
            existing = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            existing = {}
        if existing.get("params") == params:
            return existing
        raise UserError(f"{out} already holds a different dataset; choose an empty folder")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose an empty folder for the synthetic dataset")
    if train_cases < 1 or test_cases < 0:
        raise UserError(f"need at least one training case, got train_cases={train_cases}, test_cases={test_cases}")
    train_names: List[str] = []
    test_names: List[str] = []
    spacing: Dict[str, List[float]] = {}
    for index in range(train_cases + test_cases):
        case = f"case{index + 1:04d}"
        image, label = render_organ_volume(seed, index, size=size, depth=depth)
        spacing[case] = list(SYNTHETIC_SPACING)
        if index < train_cases:
            for k in range(depth):
                name = f"{case}_slice{k:03d}"
                write_npz(out / "train_npz" / f"{name}.npz", image[k], label[k])
                train_names.append(name)
        else:
            write_h5(out / "test_vol_h5" / f"{case}.npy.h5", image, label, spacing=SYNTHETIC_SPACING)
            test_names.append(case)
    lists = out / "lists" / "lists_Synapse"
    atomic_write_text(lists / "train.txt", "\n".join(train_names) + "\n")
    atomic_write_text(lists / "test_vol.txt", "\n".join(test_names) + ("\n" if test_names else ""))
    manifest = {"format": "synapse", "labels": "direct", "class_names": list(SYNTHETIC_ORGANS),
                "spacing": spacing, "params": params}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")  # last: marks completion
    return manifest


__all__ = ["SYNTHETIC_ORGANS", "SYNTHETIC_SPACING", "make_synthetic_organs", "render_organ_volume"]
