"""Deterministic synthetic "polyp" images, so the quickstart trains with no download.

Each image imitates a colonoscopy frame coarsely: pinkish mucosa with slow colour drift, fine
texture, dark vessel-like curves, soft folds, vignetting and specular glints; one (sometimes two)
smooth irregular blobs with a slightly different tint, dome shading, a soft rim shadow and glints
are the "polyps". The tint difference is kept smaller than the background's own colour drift, so a
global colour threshold does poorly and a model has to use local contrast, shading and shape.

Every sample is a pure function of (seed, split, index), so generation can run in any order or
in parallel and the same seed gives byte-identical PNG files.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, Tuple, Union

import cv2
import numpy as np

from jittor_pranet.data.io import PathLike
from jittor_pranet.errors import UserError

MANIFEST_NAME = "synthetic_manifest.json"
GENERATOR_VERSION = 1
TRAIN_DIR = "TrainDataset"
TEST_DIR = Path("TestDataset") / "Synthetic"

SizeSpec = Union[Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]]

# Below this many images, starting worker processes costs more than it saves.
_MIN_JOBS_FOR_PROCESSES = 64


# ---------------------------------------------------------------------------------------------
# Rendering helpers (float32 images in [0, 1], HxWx3)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid upsampled with bicubic interpolation."""
    grid = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    field = field.reshape(h, w, channels)
    return field / (np.abs(field).max() + 1e-6)


def _fine_noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Zero-mean texture of unit standard deviation at the scale of ``sigma`` pixels."""
    noise = cv2.GaussianBlur(rng.random((h, w), dtype=np.float32) - 0.5, (0, 0), sigma)
    return noise / (noise.std() + 1e-6)


def _random_curve(rng: np.random.Generator, h: int, w: int, length: float) -> np.ndarray:
    """Points of a smooth meandering curve (a random walk whose heading drifts slowly)."""
    steps = max(8, int(length / 4))
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.25, steps))
    start = rng.uniform((0, 0), (w, h))
    xy = start + np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=1) * 4.0, axis=0)
    return np.round(xy * 16).astype(np.int32)  # 4 fractional bits for cv2's shift argument


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = np.array([rng.uniform(0.72, 0.86), rng.uniform(0.36, 0.48), rng.uniform(0.30, 0.42)], np.float32)
    tone = _smooth_noise(rng, h, w, int(rng.integers(3, 6)))
    tint = _smooth_noise(rng, h, w, int(rng.integers(2, 5)), channels=3)
    img = base * (1.0 + 0.16 * tone) + 0.05 * tint
    img *= (1.0 + 0.035 * _fine_noise(rng, h, w, 1.0))[:, :, None]
    img *= (1.0 + 0.04 * _fine_noise(rng, h, w, 3.0))[:, :, None]
    img = _draw_folds(rng, img)
    return _draw_vessels(rng, img)


def _draw_folds(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Broad soft dark arcs, like haustral folds: edges that are *not* polyps."""
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(0, 3))):
        centre = (int(rng.uniform(-0.5, 1.5) * w), int(rng.uniform(-0.5, 1.5) * h))
        axes = (int(rng.uniform(0.4, 1.0) * w), int(rng.uniform(0.3, 0.9) * h))
        angle, thickness = rng.uniform(0, 180), int(rng.integers(3, 8))
        cv2.ellipse(layer, centre, axes, angle, 0, 360, 1.0, thickness, cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (0, 0), rng.uniform(3.0, 6.0))
    return img * (1.0 - 0.22 * np.clip(layer, 0, 1))[:, :, None]


def _draw_vessels(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 7))):
        pts = _random_curve(rng, h, w, rng.uniform(0.3, 1.0) * (h + w))
        cv2.polylines(layer, [pts], False, rng.uniform(0.5, 1.0), int(rng.integers(1, 3)), cv2.LINE_AA, 4)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.7)
    darken = np.array([0.18, 0.32, 0.26], np.float32)
    return img * (1.0 - layer[:, :, None] * darken)


def _blob_mask(rng: np.random.Generator, h: int, w: int, area_fraction: float) -> np.ndarray:
    """uint8 {0,1} mask of one smooth irregular blob of roughly ``area_fraction`` of the image."""
    r0 = np.sqrt(area_fraction * h * w / np.pi)
    theta = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 7):
        radius += rng.uniform(0, 0.16 / k ** 0.7) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.75, 1.3)
    x, y = r0 * radius * np.cos(theta) * aspect, r0 * radius * np.sin(theta) / aspect
    angle = rng.uniform(0, np.pi)
    xr, yr = x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)
    margin = 0.35 * r0
    cx = rng.uniform(min(w / 2, r0 - margin), max(w / 2, w - r0 + margin))
    cy = rng.uniform(min(h / 2, r0 - margin), max(h / 2, h - r0 + margin))
    pts = np.round(np.stack([xr + cx, yr + cy], axis=1) * 16).astype(np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, 4)
    return mask


def _highlights(
    rng: np.random.Generator, h: int, w: int, region: np.ndarray, count: int, scale: float
) -> np.ndarray:
    """Small blurred white glints at random points of ``region`` (float32 alpha layer)."""
    layer = np.zeros((h, w), np.float32)
    ys, xs = np.nonzero(region)
    if count == 0 or len(xs) == 0:
        return layer
    for j in rng.integers(0, len(xs), size=count):
        axes = (max(1, int(rng.uniform(0.6, 2.5) * scale)), max(1, int(rng.uniform(0.4, 1.5) * scale)))
        cv2.ellipse(layer, (int(xs[j]), int(ys[j])), axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
    return np.clip(cv2.GaussianBlur(layer, (0, 0), 0.8 * scale), 0, 1)


def _paint_polyp(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paint the blob ``mask`` onto ``img`` in place, working on its padded bounding box only."""
    radius = float(np.sqrt(mask.sum() / np.pi)) + 1.0
    ys, xs = np.nonzero(mask)
    pad = int(radius) + 8
    y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + pad + 1)
    crop, blob = img[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = _paint_polyp_crop(rng, crop, blob, radius)
    return img


def _paint_polyp_crop(
    rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, radius: float
) -> np.ndarray:
    h, w = mask.shape
    maskf = mask.astype(np.float32)
    # Dome height from a wide blur of the mask; shading from its slope against a light direction.
    dome = cv2.GaussianBlur(maskf, (0, 0), 0.4 * radius)
    gy, gx = np.gradient(dome)
    light = rng.uniform(0, 2 * np.pi)
    slope = (gx * np.cos(light) + gy * np.sin(light)) * radius
    shade = 1.0 + rng.uniform(0.10, 0.22) * np.clip(slope, -1.5, 1.5) + rng.uniform(0.0, 0.08) * dome
    # Polyps: a little paler/yellower than the mucosa, by less than the background's own drift.
    tint = 1.0 + np.array(
        [rng.uniform(-0.06, 0.06), rng.uniform(-0.03, 0.14), rng.uniform(-0.04, 0.14)], np.float32
    )
    texture = 1.0 + 0.05 * _fine_noise(rng, h, w, rng.uniform(1.2, 2.5))
    polyp = img * tint * (shade * texture)[:, :, None]
    alpha = cv2.GaussianBlur(maskf, (0, 0), rng.uniform(0.8, 2.0))[:, :, None]
    out = img * (1 - alpha) + polyp * alpha
    rim = np.clip(cv2.GaussianBlur(maskf, (0, 0), rng.uniform(1.5, 3.5)) - maskf, 0, 1)
    out *= (1.0 - rng.uniform(0.3, 0.7) * rim)[:, :, None]
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(radius * 0.25)))
    glints = _highlights(rng, h, w, inner, int(rng.integers(1, 5)), max(1.0, radius / 12))
    return out * (1 - glints[:, :, None]) + 0.97 * glints[:, :, None]


def _vignette(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((yy - cy) / (0.6 * h)) ** 2 + ((xx - cx) / (0.6 * w)) ** 2
    return img * (1.0 - rng.uniform(0.25, 0.5) * np.clip(r2, 0, 1.6))[:, :, None]


def render_polyp_sample(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One synthetic frame: (HxWx3 uint8 RGB, HxW uint8 mask in {0, 255}); the mask is never empty."""
    img = _background(rng, h, w)
    mask = np.zeros((h, w), np.uint8)
    n_polyps = 2 if rng.random() < 0.2 else 1
    for k in range(n_polyps):
        low, high = (0.03, 0.25) if k == 0 else (0.02, 0.08)
        for _ in range(10):  # re-draw blobs that fall mostly outside the frame
            blob = _blob_mask(rng, h, w, float(np.exp(rng.uniform(np.log(low), np.log(high)))))
            if blob.sum() >= 0.01 * h * w:
                break
        img = _paint_polyp(rng, img, blob)
        mask |= blob
    background_glints = _highlights(rng, h, w, 1 - mask, int(rng.integers(0, 4)), max(1.0, min(h, w) / 120))
    img = img * (1 - background_glints[:, :, None]) + 0.95 * background_glints[:, :, None]
    img = _vignette(rng, img)
    img += 0.04 * (rng.random(img.shape, dtype=np.float32) - 0.5)  # sensor noise, std ~0.012
    rgb = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return rgb, mask * 255


# ---------------------------------------------------------------------------------------------
# Writing a dataset to disk


def _size_ranges(size: SizeSpec) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """Normalise ``(H, W)`` or ``((hmin, hmax), (wmin, wmax))`` to inclusive ranges."""
    try:
        h, w = size
        h_range = (int(h), int(h)) if np.isscalar(h) else (int(h[0]), int(h[1]))
        w_range = (int(w), int(w)) if np.isscalar(w) else (int(w[0]), int(w[1]))
    except (TypeError, ValueError, IndexError):
        raise UserError(f"size must be (H, W) or ((hmin, hmax), (wmin, wmax)), got {size!r}") from None
    if min(h_range + w_range) < 32 or h_range[0] > h_range[1] or w_range[0] > w_range[1]:
        raise UserError(f"synthetic image sizes must be ranges of at least 32 pixels, got {size!r}")
    return h_range, w_range


def _sample_rng(seed: int, split: int, index: int) -> np.random.Generator:
    return np.random.default_rng((GENERATOR_VERSION, seed, split, index))


def _write_sample(folder: Path, name: str, seed: int, split: int, index: int, ranges) -> None:
    rng = _sample_rng(seed, split, index)
    (h_lo, h_hi), (w_lo, w_hi) = ranges
    h, w = int(rng.integers(h_lo, h_hi + 1)), int(rng.integers(w_lo, w_hi + 1))
    rgb, mask = render_polyp_sample(rng, h, w)
    ok_image = cv2.imwrite(str(folder / "images" / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    ok_mask = cv2.imwrite(str(folder / "masks" / name), mask)
    if not (ok_image and ok_mask):
        raise UserError(f"cannot write synthetic sample {name} under {folder}")


def _manifest(n_train: int, n_test: int, ranges, seed: int) -> Dict[str, object]:
    return {
        "generator": "jittor_pranet.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": [list(ranges[0]), list(ranges[1])],
        "counts": {"train": int(n_train), "test": int(n_test)},
    }


def _read_manifest(root: Path) -> Dict[str, object]:
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _is_complete(root: Path, manifest: Dict[str, object]) -> bool:
    """True when ``root`` holds exactly the dataset ``manifest`` describes (names and counts)."""
    if _read_manifest(root) != manifest:
        return False
    counts = manifest["counts"]
    for folder, count in ((root / TRAIN_DIR, counts["train"]), (root / TEST_DIR, counts["test"])):
        for sub in ("images", "masks"):
            directory = folder / sub
            if not directory.is_dir() or len([p for p in directory.iterdir() if p.suffix == ".png"]) != count:
                return False
    return True


def _generate_into(tmp: Path, n_train: int, n_test: int, ranges, seed: int, workers: int) -> None:
    jobs = []
    for split, (folder, count) in enumerate(((tmp / TRAIN_DIR, n_train), (tmp / TEST_DIR, n_test))):
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir(parents=True)
        jobs += [(folder, f"{i:05d}.png", seed, split, i, ranges) for i in range(count)]
    if workers <= 1 or len(jobs) < _MIN_JOBS_FOR_PROCESSES or "fork" not in mp.get_all_start_methods():
        for job in jobs:
            _write_sample(*job)
        return
    # Rendering is many small numpy calls that hold the GIL, so threads barely help: use processes.
    # "fork" needs no re-import of the caller's __main__ and starts in milliseconds.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_single_threaded) as pool:
        chunk = max(1, len(jobs) // (8 * workers))
        list(pool.map(_write_job, jobs, chunksize=chunk))


def _single_threaded() -> None:
    cv2.setNumThreads(1)  # one process per core already; cv2's own threads would oversubscribe


def _write_job(job) -> None:
    _write_sample(*job)


def make_synthetic_polyps(root: PathLike, n_train: int = 500, n_test: int = 100,
                          size: SizeSpec = ((240, 288), (256, 320)), seed: int = 0,
                          workers: int = 0) -> Path:
    """Write (or reuse) a synthetic dataset in the PraNet layout and return ``root``.

    Layout: ``root/TrainDataset/{images,masks}`` and ``root/TestDataset/Synthetic/{images,masks}``,
    PNG, plus a manifest. A ``root`` that already holds the same dataset (same manifest, complete) is
    reused as is; one holding an older synthetic dataset is replaced; anything else is left alone
    (UserError). Files are written to a temporary sibling folder that is renamed into place, so an
    interrupted run never leaves a half-written dataset behind. ``workers=0`` uses all CPUs (at
    most 8); the files do not depend on ``workers``.
    """
    root = Path(os.path.abspath(root))  # "." has no name to build a sibling temp folder from
    if n_train < 1 or n_test < 1:
        raise UserError(f"need at least one train and one test image, got n_train={n_train}, n_test={n_test}")
    manifest = _manifest(n_train, n_test, _size_ranges(size), seed)
    if _is_complete(root, manifest):
        return root
    _check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        _generate_into(tmp, n_train, n_test, _size_ranges(size), seed, workers or min(8, os.cpu_count() or 1))
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        _move_into_place(tmp, root, manifest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _check_replaceable(root: Path) -> None:
    """Only an empty folder or one of our own synthetic datasets may be replaced."""
    if not root.exists():
        return
    if not root.is_dir():
        raise UserError(f"cannot create a synthetic dataset at {root}: it is a file")
    if any(root.iterdir()) and _read_manifest(root).get("generator") != "jittor_pranet.data.synthetic":
        raise UserError(f"{root} is not empty and holds no synthetic dataset; choose another folder")


def _move_into_place(tmp: Path, root: Path, manifest: Dict[str, object]) -> None:
    old = None
    if root.exists() and any(root.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.replace(root, old / "data")
    try:
        os.replace(tmp, root)  # atomic; also succeeds onto an empty folder
    except OSError:
        # Another process finished first: use its copy if it is the one we wanted.
        if not _is_complete(root, manifest):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
