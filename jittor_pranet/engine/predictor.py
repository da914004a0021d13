"""The official test-time protocol, shared by ``predict``, ``test``, TTA, video and the trainer.

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

from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from .precision import model_dtype

DEFAULT_SIZE = 352
#: added to the denominator of the per-image min-max normalisation, as upstream
MINMAX_EPS = 1e-8

Size = Tuple[int, int]


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


__all__ = ["DEFAULT_SIZE", "MINMAX_EPS", "Predictor", "Size", "binary_mask", "label_map", "minmax_normalize",
           "to_uint8_map"]
