"""Files in, files out: the maps (and masks, colour pictures, overlays) of images written atomically,
a batched predict-and-write loop over image files, and the writable-folder check."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UserError
from .predictor import Predictor, Size, binary_mask, label_map, to_uint8_map


@dataclass
class OutputOptions:
    """What to write per image besides the map."""

    threshold: Optional[float] = None  # binary: also write <stem>_mask.png
    overlay: Optional[str] = None  # "jpg" or "png": also write <stem>_overlay.<ext>
    overlay_threshold: float = 0.5  # region tinted in the overlay when no threshold is given
    num_classes: int = 1

    def names(self, stem: str) -> List[str]:
        """File names written for one image, map first."""
        names = [f"{stem}.png"]
        if self.num_classes > 1:
            names.append(f"{stem}_color.png")
        elif self.threshold is not None:
            names.append(f"{stem}_mask.png")
        if self.overlay:
            names.append(f"{stem}_overlay.{self.overlay}")
        return names


@dataclass
class ImageJob:
    """One input image and where its outputs go (``<folder>/<stem>.png`` ...)."""

    source: Path
    folder: Path
    stem: str
    out_size: Optional[Size] = None  # None: the image's own size


@dataclass
class PredictSummary:
    written: int = 0
    files: List[Path] = field(default_factory=list)
    bad: List[Tuple[Path, str]] = field(default_factory=list)  # (file, reason) skipped with skip_bad
    seconds: float = 0.0


def _write_image(path: Path, array: np.ndarray) -> Path:
    from ..utils.io import atomic_imwrite

    try:
        return atomic_imwrite(path, array)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_prediction(prob: np.ndarray, rgb: Optional[np.ndarray], folder: Path, stem: str,
                     options: OutputOptions) -> List[Path]:
    """Write the map (and mask / colour picture / overlay) of one image; returns the paths written.

    One class: ``<stem>.png`` = :func:`to_uint8_map`; ``<stem>_mask.png`` (0/255) with a threshold.
    Several classes: ``<stem>.png`` = argmax labels 0..C-1 (uint8), ``<stem>_color.png`` = their colours.
    Every file is written atomically (temporary file + rename).
    """
    import cv2

    from ..utils.overlay import colorize_labels, overlay_labels, overlay_mask

    folder = Path(folder)
    written = []
    if options.num_classes > 1:
        labels = label_map(prob)
        written.append(_write_image(folder / f"{stem}.png", labels))
        color = colorize_labels(labels, options.num_classes)
        written.append(_write_image(folder / f"{stem}_color.png", cv2.cvtColor(color, cv2.COLOR_RGB2BGR)))
        region = labels
    else:
        map_u8 = to_uint8_map(prob)
        written.append(_write_image(folder / f"{stem}.png", map_u8))
        if options.threshold is not None:
            mask = binary_mask(map_u8, options.threshold)
            written.append(_write_image(folder / f"{stem}_mask.png", mask))
        region = None
        if options.overlay:
            thr = options.threshold if options.threshold is not None else options.overlay_threshold
            region = binary_mask(map_u8, thr)
    if options.overlay:
        if rgb is None:
            raise ValueError("an overlay needs the image")
        if rgb.shape[:2] != prob.shape[-2:]:  # predicted at another (GT) size: draw on the image resized to it
            rgb = cv2.resize(rgb, (prob.shape[-1], prob.shape[-2]), interpolation=cv2.INTER_LINEAR)
        if options.num_classes > 1:
            pic = overlay_labels(rgb, region)
        else:
            pic = overlay_mask(rgb, region)
        written.append(_write_image(folder / f"{stem}_overlay.{options.overlay}", cv2.cvtColor(pic, cv2.COLOR_RGB2BGR)))
    return written


def _read_chunk(jobs: Sequence[ImageJob], skip_bad: bool):
    from ..data import read_image_rgb

    good, images, bad = [], [], []
    for job in jobs:
        try:
            images.append(read_image_rgb(job.source))
            good.append(job)
        except UserError as exc:
            if not skip_bad:
                raise
            bad.append((job.source, str(exc)))
    return good, images, bad


def predict_files(predictor: Predictor, jobs: Sequence[ImageJob], options: OutputOptions, *,
                  skip_bad: bool = False, progress: bool = True, desc: str = "predict",
                  on_skip=None) -> PredictSummary:
    """Predict ``jobs`` in batches of ``predictor.batch_size`` and write their outputs.

    The next batch is decoded in a background thread while the current one runs.  An unreadable
    image raises :class:`UserError` naming it, or with ``skip_bad`` is recorded in the summary (and
    passed to ``on_skip(path, reason)``) and skipped.
    """
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    summary = PredictSummary()
    bs = predictor.batch_size
    chunks = [list(jobs[i:i + bs]) for i in range(0, len(jobs), bs)]
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=desc, unit="img", file=sys.stderr, leave=False,
               disable=None if progress else True)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_read_chunk, chunks[0], skip_bad) if chunks else None
            for k in range(len(chunks)):
                good, images, bad = pending.result()
                pending = pool.submit(_read_chunk, chunks[k + 1], skip_bad) if k + 1 < len(chunks) else None
                for path, reason in bad:
                    summary.bad.append((path, reason))
                    if on_skip is not None:
                        on_skip(path, reason)
                if good:
                    sizes = [job.out_size or im.shape[:2] for job, im in zip(good, images)]
                    maps = predictor.predict_batch(images, sizes)
                    for job, im, prob in zip(good, images, maps):
                        summary.files.extend(write_prediction(prob, im, job.folder, job.stem, options))
                        summary.written += 1
                bar.update(len(chunks[k]))
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def prepare_output_folder(folder: Union[str, os.PathLike], option: str = "folder") -> Path:
    """Create ``folder`` (and parents) and prove it is writable by creating and removing a file in it."""
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{option} {folder}: not writable ({exc.strerror or exc})") from None
    return folder


__all__ = ["ImageJob", "OutputOptions", "PredictSummary", "predict_files", "prepare_output_folder",
           "write_prediction"]
