"""Evaluate folders of saved prediction maps against GT masks (the ``eval`` command and the ``test`` command).

Layouts understood:

* one set: ``--pred`` holds images directly; ``--gt`` holds masks directly or in ``<gt>/masks/``.
  The set is named after the prediction folder.
* a test tree: ``--pred`` holds one folder per set (``<pred>/<set>/*.png``) and ``--gt`` one per set,
  each with its masks directly or in ``masks/`` (PraNet's ``TestDataset/<set>/masks/``).  Every set
  present on both sides is evaluated; the others are reported.

Files are paired by stem (``12.png`` <-> ``12.jpg``); unpaired and non-image files are reported, not
fatal.  A prediction whose size differs from its GT is resized to the GT size (bilinear; the MATLAB
toolbox likewise rescales the map to the GT) and counted.  Images are scored in worker processes
started by a fork server or spawn, so a script calling this with ``workers > 1`` needs the usual
``if __name__ == "__main__":`` guard.
"""
from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..data.io import IMAGE_EXTENSIONS, is_image_file, list_images  # noqa: F401  (IMAGE_EXTENSIONS re-exported)
from ..errors import UserError
from ..metrics.binary import GT_THRESHOLDS, METRIC_KEYS, ImagePair, PolypMetrics, thresholds, to_uint8_prediction

PathLike = Union[str, Path]
# when one folder holds the same stem twice, the first extension of this order wins
_EXT_PREFERENCE = (".png", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".gif", ".webp", ".jpg", ".jpeg")
_LIST_SHOWN = 5


# ------------------------------------------------------------------------------------------ listing
@dataclass
class FolderListing:
    """Image files of one folder by stem, plus what was left out."""

    folder: Path
    images: Dict[str, Path]
    skipped: int = 0  # non-image files
    duplicates: List[str] = field(default_factory=list)  # stems present with several image extensions


def index_images(folder: PathLike) -> FolderListing:
    """The package's one image listing (:func:`jittor_pranet.data.io.list_images`) keyed by file stem;
    two files with one stem (a.png, a.jpg) keep the lossless one and are reported."""
    images_found, skipped = list_images(folder)
    by_stem: Dict[str, List[Path]] = {}
    for path in images_found:
        by_stem.setdefault(path.stem, []).append(path)
    images, duplicates = {}, []
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            duplicates.append(stem)
            paths.sort(key=lambda p: _EXT_PREFERENCE.index(p.suffix.lower()))
        images[stem] = paths[0]
    return FolderListing(Path(folder), images, skipped, duplicates)


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() and is_image_file(p) for p in folder.iterdir())


def _mask_folder(folder: Path) -> Path:
    """Where a GT set keeps its masks: ``<set>/masks`` in the PraNet layout, else the folder itself."""
    masks = folder / "masks"
    return masks if masks.is_dir() else folder


@dataclass
class Pairing:
    """Prediction/GT files matched by stem, and what could not be matched."""

    pairs: List[Tuple[str, Path, Path]]  # (stem, prediction, GT), sorted by stem
    pred_only: List[str]
    gt_only: List[str]
    skipped_files: int
    duplicates: List[str]


def pair_folders(pred_dir: PathLike, gt_dir: PathLike) -> Pairing:
    """Match the image files of two folders by stem; nothing is fatal here."""
    pred, gt = index_images(pred_dir), index_images(gt_dir)
    common = sorted(set(pred.images) & set(gt.images), key=_natural_key)
    return Pairing(
        pairs=[(s, pred.images[s], gt.images[s]) for s in common],
        pred_only=sorted(set(pred.images) - set(gt.images), key=_natural_key),
        gt_only=sorted(set(gt.images) - set(pred.images), key=_natural_key),
        skipped_files=pred.skipped + gt.skipped,
        duplicates=sorted(set(pred.duplicates) | set(gt.duplicates)),
    )


def _natural_key(name: str):
    """Sort ``2`` before ``10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _subfolders(folder: Path) -> List[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _check_dir(path: PathLike, option: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{option} {p}: no such folder")
    if not p.is_dir():
        raise UserError(f"{option} {p}: not a folder")
    return p


def discover_sets(pred_dir: PathLike, gt_dir: PathLike, labels: Tuple[str, str] = ("pred_dir", "gt_dir")
                  ) -> Tuple[List[Tuple[str, Path, Path]], List[str], List[str]]:
    """Sets to evaluate as ``[(name, pred_folder, gt_folder)]``, plus set names found on one side only.
    ``labels`` name the two folders in errors (the CLI passes its flags)."""
    lp, lg = labels
    pred_dir, gt_dir = _check_dir(pred_dir, lp), _check_dir(gt_dir, lg)
    gt_flat = _mask_folder(gt_dir)
    gt_sets = {s.name: _mask_folder(s) for s in _subfolders(gt_dir) if _has_images(_mask_folder(s))}
    if _has_images(pred_dir):
        if _has_images(gt_flat):
            return [(pred_dir.resolve().name, pred_dir, gt_flat)], [], []
        if gt_sets:
            raise UserError(
                f"{lp} {pred_dir} holds images but {lg} {gt_dir} holds set folders "
                f"({', '.join(sorted(gt_sets))}): pass one set's mask folder as {lg}, or a folder of sets as {lp}"
            )
        raise UserError(f"{lg} {gt_dir}: no image files (looked in {gt_flat})")
    pred_sets = {s.name: s for s in _subfolders(pred_dir) if _has_images(s)}
    if not pred_sets:
        raise UserError(f"{lp} {pred_dir}: no image files, neither in it nor in its subfolders")
    if not gt_sets:
        if _has_images(gt_flat):
            raise UserError(
                f"{lp} {pred_dir} holds set folders ({', '.join(sorted(pred_sets))}) but {lg} {gt_dir} holds images: "
                f"pass one set's prediction folder as {lp}, or a folder of sets as {lg}"
            )
        raise UserError(f"{lg} {gt_dir}: no image files, neither in it nor in its subfolders")
    common = sorted(set(pred_sets) & set(gt_sets))
    if not common:
        raise UserError(
            f"no set folder is in both {lp} ({', '.join(sorted(pred_sets))}) and {lg} ({', '.join(sorted(gt_sets))})"
        )
    sets = [(name, pred_sets[name], gt_sets[name]) for name in common]
    return sets, sorted(set(pred_sets) - set(gt_sets)), sorted(set(gt_sets) - set(pred_sets))


# ------------------------------------------------------------------------------------------ scoring
def read_gray(path: PathLike) -> np.ndarray:
    """One channel of an image file as stored (8-bit or 16-bit); colour images give their red channel,
    as the upstream eval (``np.array(PIL image)[:, :, 0]``) does."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:  # e.g. GIF, which OpenCV does not decode
        img = _read_with_pillow(path)
    if img.ndim == 3:
        img = img[:, :, 2] if img.shape[2] >= 3 else img[:, :, 0]  # OpenCV is BGR(A): index 2 is red
    return np.ascontiguousarray(img)


def _read_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "I;16", "I", "F"):
                im = im.convert("L")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: not a valid image file ({type(exc).__name__})") from None


def _score_pair(task: Tuple[str, str, int]) -> Tuple[Dict[str, object], bool]:
    """Worker: read, resize if needed and score one pair. Returns (per-image metric values, resized?)."""
    pred_path, gt_path, gt_threshold = task
    gt = read_gray(gt_path)
    pred = read_gray(pred_path)
    if pred.dtype == np.uint16:
        raise UserError(f"{pred_path}: 16-bit prediction maps are not supported, save 8-bit maps (0..255)")
    try:
        pred = to_uint8_prediction(pred)
    except ValueError as exc:
        raise UserError(f"{pred_path}: {exc}") from None
    resized = pred.shape != gt.shape
    if resized:
        pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
    return PolypMetrics(gt_threshold).compute(ImagePair(pred, gt, gt_threshold)), resized


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one image per process already uses the cores


class _Scorer:
    """Scores pairs in-process (``workers <= 1``) or in a process pool shared by all sets.

    Workers come from a fork server (spawn where there is none), never from a plain fork: a forked child
    inherits OpenCV's (and Jittor's) thread pools in an unusable state and deadlocks in its first
    parallel call.  As with any spawn-based pool, a script calling this with ``workers > 1`` needs the
    ``if __name__ == "__main__":`` guard.
    """

    def __init__(self, workers: int, n_tasks: int):
        self.workers = min(workers, n_tasks)
        self.pool = None
        if self.workers > 1:
            methods = mp.get_all_start_methods()
            ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload([__name__])  # the server imports numpy/cv2/scipy once
            self.pool = ctx.Pool(self.workers, initializer=_worker_init)

    def imap(self, tasks: List[Tuple[str, str, int]]) -> Iterator[Tuple[Dict[str, object], bool]]:
        if self.pool is None or len(tasks) <= 1:
            return map(_score_pair, tasks)
        chunk = max(1, min(8, len(tasks) // (self.workers * 4)))
        return self.pool.imap(_score_pair, tasks, chunksize=chunk)

    def __enter__(self) -> "_Scorer":
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if self.pool is not None:
            if exc_type is None:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()


def evaluate_pairs(
    pairs: Sequence[Tuple[str, Path, Path]],
    *,
    gt_threshold: int = 0,
    workers: int = 2,
    progress: bool = True,
    desc: str = "eval",
    _scorer: Optional[_Scorer] = None,
) -> Tuple[PolypMetrics, int]:
    """Score ``[(stem, pred, gt)]`` pairs in ``workers`` processes; returns (metrics, number resized)."""
    if gt_threshold not in GT_THRESHOLDS:
        raise UserError(f"gt_threshold must be one of {', '.join(map(str, GT_THRESHOLDS))}, not {gt_threshold}")
    if _scorer is None:
        with _Scorer(workers, len(pairs)) as scorer:
            return evaluate_pairs(pairs, gt_threshold=gt_threshold, progress=progress, desc=desc, _scorer=scorer)
    from tqdm import tqdm

    metrics = PolypMetrics(gt_threshold)
    tasks = [(str(p), str(g), gt_threshold) for _, p, g in pairs]
    resized = 0
    bar = tqdm(total=len(tasks), desc=desc, unit="img", leave=False, file=sys.stderr, disable=None if progress else True)
    try:
        for values, was_resized in _scorer.imap(tasks):
            metrics.add(values)
            resized += was_resized
            bar.update()
    finally:
        bar.close()
    return metrics, resized


# ------------------------------------------------------------------------------------------ results
@dataclass
class SetResult:
    """Scores of one set and what happened while computing them."""

    name: str
    metrics: Dict[str, float]
    curves: Dict[str, np.ndarray]  # Dice / IoU / Em, descending thresholds (metrics.binary.thresholds)
    n_images: int
    n_resized: int = 0
    pred_only: List[str] = field(default_factory=list)
    gt_only: List[str] = field(default_factory=list)
    skipped_files: int = 0
    duplicates: List[str] = field(default_factory=list)

    def warnings(self) -> List[str]:
        out = []
        if self.pred_only:
            out.append(f"{self.name}: {len(self.pred_only)} prediction(s) without GT: {_shorten(self.pred_only)}")
        if self.gt_only:
            out.append(f"{self.name}: {len(self.gt_only)} GT mask(s) without prediction: {_shorten(self.gt_only)}")
        if self.skipped_files:
            out.append(f"{self.name}: skipped {self.skipped_files} non-image file(s)")
        if self.duplicates:
            out.append(f"{self.name}: same name with several image extensions, used the first: {_shorten(self.duplicates)}")
        if self.n_resized:
            out.append(f"{self.name}: resized {self.n_resized} prediction(s) to the GT size (bilinear)")
        return out


def _shorten(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LIST_SHOWN])
    return shown + (f" (+{len(names) - _LIST_SHOWN} more)" if len(names) > _LIST_SHOWN else "")


@dataclass
class EvaluationReport:
    """All evaluated sets, in name order, plus set folders present on one side only."""

    sets: Dict[str, SetResult]
    sets_only_in_pred: List[str] = field(default_factory=list)
    sets_only_in_gt: List[str] = field(default_factory=list)
    sets_without_pairs: List[str] = field(default_factory=list)  # set folders on both sides, no common stem

    def metrics(self) -> Dict[str, Dict[str, float]]:
        """``{set: {mDice, mIoU, wFm, Sm, meanEm, maxEm, MAE, maxDice, maxIoU}}``."""
        return {name: dict(r.metrics) for name, r in self.sets.items()}

    def warnings(self) -> List[str]:
        out = []
        if self.sets_only_in_pred:
            out.append(f"set folder(s) with predictions but no GT, not evaluated: {_shorten(self.sets_only_in_pred)}")
        if self.sets_only_in_gt:
            out.append(f"set folder(s) with GT but no predictions, not evaluated: {_shorten(self.sets_only_in_gt)}")
        for entry in self.sets_without_pairs:
            out.append(f"set not evaluated, no prediction has a GT of the same name: {entry}")
        for r in self.sets.values():
            out.extend(r.warnings())
        return out

    def markdown_table(self, digits: int = 4) -> str:
        header = "| Set | " + " | ".join(METRIC_KEYS) + " |"
        rule = "|---|" + "---:|" * len(METRIC_KEYS)
        rows = [
            f"| {name} | " + " | ".join(f"{r.metrics[k]:.{digits}f}" for k in METRIC_KEYS) + " |"
            for name, r in self.sets.items()
        ]
        return "\n".join([header, rule, *rows])

    def to_json(self) -> str:
        return json.dumps(self.metrics(), indent=2) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["set", "images", *METRIC_KEYS])
        for name, r in self.sets.items():
            writer.writerow([name, r.n_images, *(f"{r.metrics[k]:.6f}" for k in METRIC_KEYS)])
        return buf.getvalue()

    def write_curves(self, folder: PathLike) -> List[Path]:
        """One Dice/IoU-vs-threshold chart per set, ``<folder>/<set>_curves.png``."""
        from ..utils.plot import line_chart

        xs = thresholds() / 255.0
        written = []
        for name, r in self.sets.items():
            path = Path(folder) / f"{_safe_filename(name)}_curves.png"
            series = {
                f"Dice (max {r.metrics['maxDice']:.4f})": (xs, r.curves["Dice"]),
                f"IoU (max {r.metrics['maxIoU']:.4f})": (xs, r.curves["IoU"]),
            }
            title = f"{name}: Dice / IoU vs threshold ({r.n_images} images)"
            written.append(line_chart(path, series, title, "threshold (pred >= t)", "score", xlim=(0, 1), ylim=(0, 1)))
        return written


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "set"


def evaluate_folders_detailed(
    pred_dir: PathLike,
    gt_dir: PathLike,
    *,
    gt_threshold: int = 0,
    workers: int = 2,
    progress: bool = True,
    labels: Tuple[str, str] = ("pred_dir", "gt_dir"),
) -> EvaluationReport:
    """Evaluate one set or a whole test tree (see the module docstring); bad input raises UserError
    naming the argument (``labels``: how errors name the two folders; the CLI passes its flags)."""
    if workers < 1:
        raise UserError(f"workers must be >= 1, not {workers}")
    if gt_threshold not in GT_THRESHOLDS:
        raise UserError(f"gt_threshold must be one of {', '.join(map(str, GT_THRESHOLDS))}, not {gt_threshold}")
    sets, only_pred, only_gt = discover_sets(pred_dir, gt_dir, labels)
    pairings = [(name, pair_folders(pdir, gdir)) for name, pdir, gdir in sets]
    n_tasks = sum(len(p.pairs) for _, p in pairings)
    results: Dict[str, SetResult] = {}
    empty: List[str] = []
    with _Scorer(workers, n_tasks) as scorer:
        for name, pairing in pairings:
            if not pairing.pairs:
                empty.append(f"{name} (e.g. prediction {_first(pairing.pred_only)!r}, GT {_first(pairing.gt_only)!r})")
                continue
            metrics, n_resized = evaluate_pairs(
                pairing.pairs, gt_threshold=gt_threshold, progress=progress, desc=name, _scorer=scorer
            )
            results[name] = SetResult(
                name=name,
                metrics=metrics.results(),
                curves=metrics.curves(),
                n_images=len(metrics),
                n_resized=n_resized,
                pred_only=pairing.pred_only,
                gt_only=pairing.gt_only,
                skipped_files=pairing.skipped_files,
                duplicates=pairing.duplicates,
            )
    if not results:
        raise UserError(f"no prediction has a GT mask with the same file name: {'; '.join(empty)}")
    return EvaluationReport(results, only_pred, only_gt, empty)


def _first(names: Iterable[str]) -> Optional[str]:
    return next(iter(names), None)


def evaluate_folders(
    pred_dir: PathLike,
    gt_dir: PathLike,
    *,
    gt_threshold: int = 0,
    workers: int = 2,
    progress: bool = False,
) -> Dict[str, Dict[str, float]]:
    """``{set: {mDice, mIoU, wFm, Sm, meanEm, maxEm, MAE, maxDice, maxIoU}}`` for one set or a test tree."""
    return evaluate_folders_detailed(
        pred_dir, gt_dir, gt_threshold=gt_threshold, workers=workers, progress=progress
    ).metrics()


__all__ = [
    "EvaluationReport",
    "IMAGE_EXTENSIONS",
    "Pairing",
    "SetResult",
    "discover_sets",
    "evaluate_folders",
    "evaluate_folders_detailed",
    "evaluate_pairs",
    "index_images",
    "pair_folders",
    "read_gray",
]
