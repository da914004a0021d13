"""Inference shared by ``predict``, ``test`` and the trainer: the official test-time protocol.

Per image, as the official PraNet-V1/V2 test scripts do:

1. RGB, resized to ``size`` x ``size`` (PIL bilinear, 352 by default), /255, ImageNet mean/std;
2. forward; logits = fg2 + fg3 + fg4 + fg5 (V2) or lateral_map_2 (V1)
   (:func:`jittor_pranet.models.prediction_logits`);
3. bilinear resize (``align_corners=False``) of the logits to the original (or GT) size;
4. sigmoid;
5. min-max normalisation *of this image alone*: ``(p - min) / (max - min + 1e-8)``;
6. ``* 255`` rounded to the nearest integer, ties to even (what upstream's ``cv2.imwrite`` of the float
   map does; checked) -> uint8.

Steps 2-4 run in Jittor (:class:`Predictor`), steps 5-6 in numpy per image (:func:`to_uint8_map`).
Images are batched for the forward pass only; nothing is ever computed across a batch (the official
Jittor test script min-max-normalises a whole batch at once, which makes a prediction depend on the
other images in its batch).  The model is in eval mode, so BatchNorm uses running statistics and the
forward pass itself is per-sample.

Multi-class models (``num_classes > 1``): steps 3-4 become resize + softmax over classes;
:func:`label_map` takes the argmax.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UserError

DEFAULT_SIZE = 352
#: added to the denominator of the per-image min-max normalisation, as upstream
MINMAX_EPS = 1e-8

Size = Tuple[int, int]


# ------------------------------------------------------------------------------ model from checkpoint
@dataclass
class ModelSpec:
    """What to build for a checkpoint, and where each value came from (for messages)."""

    name: str
    num_classes: int = 1
    encoder: Optional[str] = None
    gain: Optional[str] = None  # V2 DSRA gain when not the default (softmax)
    test_size: Optional[int] = None
    sources: Dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in (("encoder", self.encoder), ("gain", self.gain)) if v)
        return f"{self.name} (num_classes {self.num_classes}{extra})"


def _get(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` or ``obj.a.b`` for ``"a.b"``; None when any part is missing."""
    for part in dotted.split("."):
        if obj is None:
            return None
        if isinstance(obj, Mapping):
            obj = obj.get(part)
        else:
            obj = getattr(obj, part, None)
    return obj


def _size_of(cfg: Any) -> Optional[int]:
    """A config's test size: ``data.test_size``, else the size it trained at (``data.train_size``)."""
    value = _get(cfg, "data.test_size")
    return value if value is not None else _get(cfg, "data.train_size")


def resolve_model_spec(
    meta: Mapping[str, Any],
    state_dict: Optional[Mapping[str, np.ndarray]] = None,
    *,
    model: Optional[str] = None,
    num_classes: Optional[int] = None,
    encoder: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    source: str = "checkpoint",
) -> ModelSpec:
    """Model name / classes / encoder / DSRA gain / test size, from the first of: explicit arguments,
    ``config`` (only the keys it sets), the checkpoint's metadata (ours: ``model``, ``num_classes``,
    ``encoder``; training checkpoints also the run's ``config``), and the weights (``num_classes``).

    The test size is ``data.test_size`` or else ``data.train_size`` of a config: a model is tested at the
    size it was trained at (352 in the official recipe)."""
    from ..models.registry import head_classes, identify, list_models, model_info

    meta = meta if isinstance(meta, Mapping) else {}
    weights_model, weights_encoder, weights_classes = identify(state_dict or {})
    meta_cfg = meta.get("config")
    candidates = {
        "name": [("--model", model), ("config", _get(config, "model.name")),
                 ("checkpoint", meta.get("model") if isinstance(meta.get("model"), str) else None),
                 ("checkpoint config", _get(meta_cfg, "model.name")),
                 ("weights", weights_model)],
        "num_classes": [("--num-classes", num_classes), ("config", _get(config, "model.num_classes")),
                        ("checkpoint", meta.get("num_classes")),
                        ("checkpoint config", _get(meta_cfg, "model.num_classes")),
                        ("weights", weights_classes)],
        "encoder": [("--encoder", encoder), ("config", _get(config, "model.encoder")), ("checkpoint", meta.get("encoder")),
                    ("checkpoint config", _get(meta_cfg, "model.encoder")),
                    ("weights", weights_encoder)],
        "gain": [("config", _get(config, "model.gain")), ("checkpoint", meta.get("gain")),
                 ("checkpoint config", _get(meta_cfg, "model.gain"))],
        "test_size": [("config", _size_of(config)), ("checkpoint config", _size_of(meta_cfg))],
    }
    chosen: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for key, options in candidates.items():
        for where, value in options:
            if value is not None:
                chosen[key], sources[key] = value, where
                break
    name = chosen.get("name")
    if not name:
        raise UserError(f"{source}: neither its metadata nor its keys say which model it holds; pass --model "
                        f"({', '.join(list_models())})")
    if name not in list_models():
        raise UserError(f"unknown model {name!r} (from {sources['name']}); available: {', '.join(list_models())}")
    if sources.get("num_classes") in (None, "weights"):  # the model's own head says it best
        from_head = head_classes(name, state_dict or {})
        if from_head is not None:
            chosen["num_classes"], sources["num_classes"] = from_head, "weights"
        elif "num_classes" not in chosen:
            chosen["num_classes"], sources["num_classes"] = model_info(name).default_num_classes, "model default"
    # what the checkpoint records about *its* model does not apply when another model was asked for
    recorded = {"checkpoint": meta.get("model"), "checkpoint config": _get(meta_cfg, "model.name")}
    for key in ("encoder", "gain"):
        where = sources.get(key)
        if where in recorded and recorded[where] and recorded[where] != name:
            chosen.pop(key)
    try:
        n_cls = int(chosen.get("num_classes", 1))
        size = int(chosen["test_size"]) if chosen.get("test_size") is not None else None
    except (TypeError, ValueError):
        raise UserError(f"{source}: num_classes / test size must be integers") from None
    if n_cls < 1:
        raise UserError(f"num_classes must be >= 1, not {n_cls} (from {sources.get('num_classes')})")
    gain = chosen.get("gain") if model_info(name).dual else None
    return ModelSpec(name, n_cls, chosen.get("encoder") or None, gain if gain != "softmax" else None, size, sources)


def load_model(checkpoint: Union[str, os.PathLike], spec: Optional[ModelSpec] = None, *,
               model: Optional[str] = None, num_classes: Optional[int] = None,
               config: Optional[Mapping[str, Any]] = None, loaded=None, fuse: bool = True,
               precision: str = "fp32"):
    """Build the model a checkpoint belongs to and load it strictly; returns ``(model, spec)`` in
    eval mode.

    ``loaded`` is the checkpoint already read with :func:`jittor_pranet.checkpoint.read_state_dict`
    (to avoid reading it twice).  ``fuse``: fold the BatchNorms into the convolutions and use the
    fused inference ops (:func:`jittor_pranet.fuse.fuse_for_inference`; CPU kernels only, a no-op
    otherwise; equal to the unfused model within the parity tolerance; the folded weights are a
    snapshot, so to train the returned model pass ``fuse=False`` or call ``fuse.unfuse``).
    ``precision``: ``fp32`` (default), or ``fp16`` for half-precision inference (see
    :func:`cast_model`; no folding then: the fused ops are float32 only).  Jittor must already be
    configured (``cli.common.setup_device``).
    """
    from ..checkpoint import load_state_dict, read_state_dict
    from ..models import build_model

    ck = loaded if loaded is not None else read_state_dict(checkpoint)
    if spec is None:
        spec = resolve_model_spec(ck.meta, ck.state_dict, model=model, num_classes=num_classes,
                                  config=config, source=str(checkpoint))
    kw = {"encoder": spec.encoder} if spec.encoder else {}
    if spec.gain:
        kw["gain"] = spec.gain
    try:
        net = build_model(spec.name, num_classes=spec.num_classes, **kw)
    except (TypeError, ValueError, KeyError) as exc:
        raise UserError(f"cannot build {spec.describe()}: {exc}") from None
    load_state_dict(net, ck.state_dict, strict=True, source=str(checkpoint))
    net.eval()
    if precision_dtype(precision) != "float32":
        cast_model(net, precision)
    elif fuse:
        from ..fuse import fuse_for_inference

        net = fuse_for_inference(net)
    return net, spec


# bf16 is not offered: Jittor 1.3.11's CPU matmul / convolution kernels accumulate bfloat16 products in
# bfloat16 (measured 6% / 11% relative error for one 32-deep matmul / 72-deep convolution, against 0.15% /
# 0.2% in float16), which made a PraNet-V2/PVT's logits 75% of their range wrong.
PRECISIONS = {"fp32": "float32", "fp16": "float16"}


def precision_dtype(precision: str) -> str:
    """Jittor dtype of a ``--precision`` name; clear error for anything else."""
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise UserError(f"unknown precision {precision!r}: choose {', '.join(PRECISIONS)}") from None


def cast_model(net, precision: str):
    """Half-precision inference: every floating-point weight and BatchNorm statistic cast to float16.

    Activations then run in that type; Jittor accumulates sums and means of half tensors in float32
    (its reduce op), and :class:`Predictor` casts the logits back to float32 before the sigmoid.
    Layers with weights cast float32 inputs (from parameter-free ops) to their own type
    (``ops.match_dtype``), so the rest is mixed precision.  Agreement with float32 is measured in
    ``tests/test_predict.py`` (docs/benchmarks.md, "Half precision").  Meant for GPUs: on CPU, Jittor
    runs float16 through generic loops (oneDNN's paths and ours are float32), ~170x slower.
    """
    dtype = precision_dtype(precision)
    for v in net.parameters():
        if v.dtype.is_float() and str(v.dtype) != dtype:
            v.assign(v.cast(dtype))
    return net


def model_dtype(net) -> str:
    """The floating-point type of a model's weights (``float32`` for a model without any)."""
    return next((str(v.dtype) for v in net.parameters() if v.dtype.is_float()), "float32")


# ------------------------------------------------------------------------------ Jittor side
class Predictor:
    """Batched forward + per-image resize + sigmoid (softmax for several classes), in Jittor.

    ``predict_batch(images)`` takes RGB uint8 arrays of any sizes and returns one float32 map per
    image at its original size (or at ``out_sizes``): HxW sigmoid probabilities for one class,
    CxHxW softmax probabilities for several.  Images are processed ``batch_size`` at a time; a
    short last chunk is padded with copies of its last image so that every forward pass has the
    same shape: no recompilation (Jittor compiles kernels per new shape), and a map does not depend on
    what else shares its batch: bit-identical at the same batch position, within float32 rounding at
    another (kernels may block rows differently by position: 0 on AVX-512 here, 4.5e-7 with AVX2
    kernels; batched kernels of another batch size likewise).  The padded outputs are discarded.
    The model is put in eval mode (a trainer calling this mid-training switches it back with
    ``model.train()``).
    """

    def __init__(self, model, size: int = DEFAULT_SIZE, batch_size: int = 1, num_classes: Optional[int] = None,
                 pad_batches: bool = True):
        from ..models.registry import input_contract

        problem = input_contract(model).problem(int(size))
        if problem:
            raise UserError(f"size {problem} (the input sizes this model accepts)")
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, not {batch_size}")
        self.model = model
        self.model.eval()
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.num_classes = int(num_classes or getattr(model, "num_classes", 1) or 1)
        self.pad_batches = pad_batches
        self.dtype = model_dtype(model)  # half-precision models (cast_model) take half inputs

    # -- preprocessing (numpy, per image)
    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """3xSxS float32, the official test transform (PIL bilinear resize, /255, ImageNet mean/std)."""
        from ..data import preprocess_rgb

        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
        return preprocess_rgb(rgb, self.size)[0]

    # -- Jittor
    def logits(self, batch: np.ndarray):
        """Network logits ``[N, C, S, S]`` (a lazy ``jt.Var``) for a preprocessed ``[N, 3, S, S]`` batch."""
        from ..models import prediction_logits
        from ..ops import jt

        with jt.no_grad():
            x = jt.array(np.ascontiguousarray(batch, dtype=np.float32))
            if self.dtype != "float32":
                x = x.cast(self.dtype)
            logits = prediction_logits(self.model, self.model(x))
            return logits if str(logits.dtype) == "float32" else logits.float32()

    def predict_chunk(self, images: Sequence[np.ndarray], out_sizes: Sequence[Size]) -> List[np.ndarray]:
        """At most ``batch_size`` images in one forward pass.

        The network runs in Jittor at the fixed network size; the resize to each image's own size and
        the sigmoid/softmax run in numpy (:mod:`jittor_pranet.interp`, the same PyTorch-exact
        interpolation), so new image sizes never make Jittor compile new kernels.
        """
        from ..interp import probabilities

        n = len(images)
        if n == 0:
            return []
        if n > self.batch_size:
            raise ValueError(f"{n} images for a batch of {self.batch_size}")
        batch = np.stack([self.preprocess(im) for im in images])
        if self.pad_batches and n < self.batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], self.batch_size - n, axis=0)])
        logits = self.logits(batch).numpy()
        maps = []
        for i in range(n):
            prob = probabilities(logits[i], tuple(int(v) for v in out_sizes[i]))
            maps.append(prob[0] if self.num_classes == 1 else prob)
        return maps

    def predict_batch(self, images: Sequence[np.ndarray], out_sizes: Optional[Sequence[Size]] = None) -> List[np.ndarray]:
        """Probability maps (float32) at the original size of each image (or ``out_sizes``), in order."""
        images = list(images)
        if out_sizes is None:
            out_sizes = [im.shape[:2] for im in images]
        out_sizes = list(out_sizes)
        if len(out_sizes) != len(images):
            raise ValueError("out_sizes must have one (H, W) per image")
        maps: List[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            stop = start + self.batch_size
            maps.extend(self.predict_chunk(images[start:stop], out_sizes[start:stop]))
        return maps

    def predict_image(self, rgb: np.ndarray, out_size: Optional[Size] = None) -> np.ndarray:
        return self.predict_batch([rgb], None if out_size is None else [out_size])[0]


# ------------------------------------------------------------------------------ numpy side, per image
def minmax_normalize(prob: np.ndarray) -> np.ndarray:
    """``(p - min) / (max - min + 1e-8)`` over this one map, in float32 as upstream."""
    prob = np.asarray(prob, dtype=np.float32)
    lo, hi = prob.min(), prob.max()
    return (prob - lo) / (hi - lo + np.float32(MINMAX_EPS))


def to_uint8_map(prob: np.ndarray) -> np.ndarray:
    """Per-image min-max normalised map as uint8 0..255 (round to nearest, as ``cv2.imwrite`` of ``res*255``)."""
    if np.ndim(prob) != 2:
        raise ValueError(f"expected one HxW probability map, got shape {np.shape(prob)}")
    scaled = minmax_normalize(prob) * np.float32(255.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def binary_mask(map_u8: np.ndarray, threshold: float) -> np.ndarray:
    """0/255 mask of the pixels whose normalised value (``map_u8 / 255``) is >= ``threshold``.

    Computed from the saved uint8 map, so the mask can be reproduced from ``<stem>.png`` alone.
    """
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"threshold must be in [0, 1], not {threshold}")
    return np.where(map_u8.astype(np.float32) / 255.0 >= threshold, 255, 0).astype(np.uint8)


def label_map(probs: np.ndarray) -> np.ndarray:
    """Argmax over classes of a CxHxW map -> HxW uint8 labels (0 = first class, background)."""
    if probs.ndim != 3:
        raise ValueError(f"expected a CxHxW map, got shape {probs.shape}")
    if probs.shape[0] > 256:
        raise ValueError("more than 256 classes do not fit a uint8 label map")
    return np.argmax(probs, axis=0).astype(np.uint8)


# ------------------------------------------------------------------------------ files in, files out
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


# ------------------------------------------------------------------------------ test sets
@dataclass
class TestSetPlan:
    """One test set: what to predict (maps at the GT size, into ``<out>/<set>/``) and its GT masks."""

    name: str
    jobs: List[ImageJob]
    masks: List[Path]
    gt_only: List[str] = field(default_factory=list)  # GT stems without an image


def _default_log(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


def select_test_sets(data: Union[str, os.PathLike], sets: Union[None, str, Sequence[str]] = None
                     ) -> Dict[str, Tuple[Path, Path]]:
    """``{set: (image folder, mask folder)}`` under a TestDataset tree, optionally only ``sets`` (a list or
    ``"A,B"``); an unknown name is a UserError listing the sets found."""
    from ..data import find_test_sets

    found = find_test_sets(data)
    if sets is None:
        return found
    names = [n.strip() for n in (sets.split(",") if isinstance(sets, str) else sets) if n and n.strip()]
    if not names:
        raise UserError("--sets is empty")
    unknown = [n for n in names if n not in found]
    if unknown:
        raise UserError(f"--sets: no set {', '.join(unknown)} in {data} (found: {', '.join(found)})")
    return {n: found[n] for n in names}


def plan_test_sets(data: Union[str, os.PathLike], out: Union[str, os.PathLike],
                   sets: Union[None, str, Sequence[str]] = None, log=_default_log) -> List[TestSetPlan]:
    """Pair images with masks by stem and read every header (cheap) so that bad data fails before any
    model is loaded.  Images without a mask are reported through ``log`` and left out."""
    from ..data import image_size, pair_by_stem

    out = Path(out)
    plans = []
    for name, (img_dir, mask_dir) in select_test_sets(data, sets).items():
        report = pair_by_stem(img_dir, mask_dir)
        if report.unpaired_images or report.unpaired_masks or report.skipped_files:
            log(f"warning: {name}: {report.summary()}")
        jobs, masks = [], []
        for img, mask in report.pairs:
            image_size(img)  # raises UserError naming a broken file
            jobs.append(ImageJob(img, out / name, img.stem, out_size=image_size(mask)))
            masks.append(mask)
        plans.append(TestSetPlan(name, jobs, masks, [m.stem for m in report.unpaired_masks]))
    return plans


def run_test_sets(predictor: Predictor, plans: Sequence[TestSetPlan], *, gt_threshold: int = 0, workers: int = 2,
                  progress: bool = True, log=_default_log):
    """Predict every planned set into ``<out>/<set>/<stem>.png`` and evaluate it: an EvaluationReport."""
    import time

    from ..evaluation import EvaluationReport, SetResult, evaluate_pairs

    if predictor.num_classes != 1:
        raise UserError(f"test sets are scored as binary segmentation; this model has {predictor.num_classes} classes")
    for plan in plans:
        if plan.jobs:
            prepare_output_folder(plan.jobs[0].folder, option="output folder")
    start = time.perf_counter()
    total = 0
    for plan in plans:
        predict_files(predictor, plan.jobs, OutputOptions(), progress=progress, desc=plan.name)
        total += len(plan.jobs)
    seconds = time.perf_counter() - start
    log(f"predicted {total} images in {len(plans)} set(s) ({seconds:.1f} s, {total / max(seconds, 1e-9):.2f} img/s)")
    results = {}
    for plan in plans:
        pairs = [(job.stem, job.folder / f"{job.stem}.png", mask) for job, mask in zip(plan.jobs, plan.masks)]
        metrics, n_resized = evaluate_pairs(pairs, gt_threshold=gt_threshold, workers=workers, progress=progress,
                                            desc=f"eval {plan.name}")
        results[plan.name] = SetResult(name=plan.name, metrics=metrics.results(), curves=metrics.curves(),
                                       n_images=len(metrics), n_resized=n_resized)
    return EvaluationReport(results)


def predict_test_sets(checkpoint: Union[str, os.PathLike], data: Union[str, os.PathLike],
                      out: Union[str, os.PathLike], *, size: Optional[int] = None,
                      sets: Union[None, str, Sequence[str]] = None, batch_size: int = 4, gt_threshold: int = 0,
                      workers: int = 2, progress: bool = True, model: Optional[str] = None,
                      num_classes: Optional[int] = None, config: Optional[Mapping[str, Any]] = None,
                      precision: str = "fp32", log=_default_log):
    """Checkpoint + TestDataset tree -> ``<out>/<set>/<stem>.png`` maps and an EvaluationReport.

    For scripts and the trainer (Jittor must be configured, e.g. by ``cli.common.setup_device``); the
    ``test`` command does the same with messages and output files.  ``size`` defaults to the test size
    recorded in the checkpoint's config, else 352.
    """
    from ..checkpoint import read_state_dict

    loaded = read_state_dict(checkpoint)
    spec = resolve_model_spec(loaded.meta, loaded.state_dict, model=model, num_classes=num_classes,
                              config=config, source=str(checkpoint))
    if spec.num_classes != 1:
        raise UserError(f"test sets are scored as binary segmentation; {checkpoint} has {spec.num_classes} classes")
    plans = plan_test_sets(data, out, sets, log=log)
    net, spec = load_model(checkpoint, spec, loaded=loaded, precision=precision)
    predictor = Predictor(net, size=size or spec.test_size or DEFAULT_SIZE, batch_size=batch_size)
    return run_test_sets(predictor, plans, gt_threshold=gt_threshold, workers=workers, progress=progress, log=log)


__all__ = [
    "DEFAULT_SIZE", "MINMAX_EPS", "PRECISIONS", "ImageJob", "ModelSpec", "OutputOptions", "PredictSummary",
    "Predictor", "TestSetPlan", "binary_mask", "cast_model", "label_map", "load_model", "minmax_normalize",
    "model_dtype", "plan_test_sets", "precision_dtype", "predict_files", "predict_test_sets",
    "prepare_output_folder", "resolve_model_spec", "run_test_sets", "select_test_sets", "to_uint8_map",
    "write_prediction",
]
