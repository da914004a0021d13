"""Test-time augmentation (TTA): several views of each image, their probabilities averaged.

Two families, composable (every scale is run with every flip):

* ``flip``: the four mirror images of the network input (identity, horizontal, vertical, both); each
  view's logits are mirrored back, resized to the output size and turned into probabilities, then the
  four probability maps are averaged.  Using the whole mirror group (as nnU-Net does) makes the result
  exactly flip-equivariant: the prediction of a mirrored image is the mirrored prediction, and a
  mirror-symmetric image gets a mirror-symmetric map.
* ``scales``: the network input at several sizes, each ``round(size * scale / 32) * 32`` (the encoders
  downsample by 32); every view's probabilities are resized to the output size before averaging.

Averaging happens in probability space (after the sigmoid / softmax), then the official per-image
min-max normalisation applies to the average as usual.  Cost: one forward pass per view, i.e. 4x for
``flip``, ``len(scales)`` times (each at its own size, so about sum(scale^2)) for ``scales``, and the
product when combined (12 forward passes for ``flip`` + 0.75/1/1.25, ~12.5x the single-view compute).
Each scale compiles its own kernels once (Jittor compiles per input shape).
"""
from __future__ import annotations

import math
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UserError
from .predictor import Predictor, Size

TTA_MODES = ("flip", "scales")
DEFAULT_SCALES = (0.75, 1.0, 1.25)
#: largest TTA scale: 4x the side is 16x the pixels and memory of a forward pass
MAX_SCALE = 4.0
#: (flip rows, flip columns) of each mirror view, identity first
FLIPS = ((False, False), (False, True), (True, False), (True, True))
_NO_FLIP = ((False, False),)


def parse_modes(values: Union[None, str, Iterable[str]]) -> Tuple[str, ...]:
    """``--tta`` values (repeatable, each may be comma-separated) -> sorted unique modes; ``none`` or
    nothing means no TTA.  Unknown names are a UserError listing the choices."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    modes = set()
    for value in values:
        for name in str(value).split(","):
            name = name.strip().lower()
            if not name or name == "none":
                continue
            if name not in TTA_MODES:
                raise UserError(f"--tta: unknown mode {name!r}; choose from {', '.join(TTA_MODES)} (comma-separated "
                                "or repeated to combine them)")
            modes.add(name)
    return tuple(m for m in TTA_MODES if m in modes)


def parse_scales(text: Union[str, Sequence[float]]) -> Tuple[float, ...]:
    """``"0.75,1,1.25"`` -> (0.75, 1.0, 1.25); every scale must be a number in (0, MAX_SCALE]."""
    items = text.split(",") if isinstance(text, str) else list(text)
    scales = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise UserError(f"--tta-scales: {item!r} is not a number (expected e.g. 0.75,1,1.25)") from None
        if not math.isfinite(value) or not 0 < value <= MAX_SCALE:
            raise UserError(f"--tta-scales: every scale must be a number > 0 and <= {MAX_SCALE:g}, not {item!r}")
        scales.append(value)
    if not scales:
        raise UserError("--tta-scales is empty (expected e.g. 0.75,1,1.25)")
    return tuple(scales)


def scale_sizes(size: int, scales: Sequence[float]) -> Tuple[int, ...]:
    """Network input side for each scale: ``size * scale`` rounded to the nearest multiple of 32.

    A scale that rounds below 32, or two scales that round to the same side (the average would count that
    view twice), are UserErrors naming the scales involved."""
    sizes: List[int] = []
    for scale in scales:
        parse_scales([scale])  # the same bounds: a huge scale would overflow or exhaust memory
        side = int(round(size * scale / 32.0)) * 32
        if side < 32:
            raise UserError(f"--tta-scales: {scale:g} x {size} px rounds to {side} px; the smallest input is 32 px")
        if side in sizes:
            other = scales[sizes.index(side)]
            raise UserError(f"--tta-scales: {other:g} and {scale:g} both give {side} px at size {size} "
                            "(each scale is rounded to a multiple of 32); drop one")
        sizes.append(side)
    return tuple(sizes)


def _mirror(x: np.ndarray, rows: bool, cols: bool) -> np.ndarray:
    """Flip the last two axes as asked (a view: no copy)."""
    if rows:
        x = x[..., ::-1, :]
    if cols:
        x = x[..., ::-1]
    return x


class TTAPredictor(Predictor):
    """A :class:`Predictor` that averages the probabilities of flipped and/or rescaled views.

    Same interface and output as :class:`Predictor` (probability maps at each image's output size);
    ``views`` is the number of forward passes per image.  Every view of a chunk runs as one padded batch
    of ``batch_size`` images, so each scale has one forward shape (kernels compile once per scale).
    """

    def __init__(self, model, size: int, batch_size: int = 1, num_classes: Optional[int] = None,
                 modes: Sequence[str] = ("flip",), scales: Sequence[float] = DEFAULT_SCALES,
                 pad_batches: bool = True):
        super().__init__(model, size=size, batch_size=batch_size, num_classes=num_classes, pad_batches=pad_batches)
        self.modes = parse_modes(list(modes))
        if not self.modes:
            raise UserError("TTA needs at least one mode: flip and/or scales")
        self.sizes = scale_sizes(self.size, parse_scales(scales)) if "scales" in self.modes else (self.size,)
        from ..models.registry import input_contract

        contract = input_contract(model)
        refused = [s for s in self.sizes if not contract.accepts(s)]
        if refused:
            raise UserError(f"--tta scales: this model takes {contract.describe()} inputs only, not "
                            f"{'/'.join(map(str, refused))} px; use --tta flip")
        self.flips = FLIPS if "flip" in self.modes else _NO_FLIP

    @classmethod
    def from_predictor(cls, predictor: Predictor, modes: Sequence[str],
                       scales: Sequence[float] = DEFAULT_SCALES) -> "TTAPredictor":
        return cls(predictor.model, size=predictor.size, batch_size=predictor.batch_size,
                   num_classes=predictor.num_classes, modes=modes, scales=scales, pad_batches=predictor.pad_batches)

    @property
    def views(self) -> int:
        return len(self.sizes) * len(self.flips)

    def describe(self) -> str:
        parts = []
        if "flip" in self.modes:
            parts.append("flip (4 mirror views)")
        if "scales" in self.modes:
            parts.append("scales " + "/".join(str(s) for s in self.sizes) + " px")
        return f"TTA {' x '.join(parts)}: {self.views} forward passes per image"

    def predict_chunk(self, images: Sequence[np.ndarray], out_sizes: Sequence[Size]) -> List[np.ndarray]:
        from ..data import preprocess_rgb
        from ..interp import probabilities

        n = len(images)
        if n == 0:
            return []
        if n > self.batch_size:
            raise ValueError(f"{n} images for a batch of {self.batch_size}")
        for im in images:
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise ValueError(f"expected an HxWx3 uint8 RGB image, got {im.dtype} {im.shape}")
        sums: List[Optional[np.ndarray]] = [None] * n
        for side in self.sizes:
            batch = np.stack([preprocess_rgb(im, side)[0] for im in images])
            if self.pad_batches and n < self.batch_size:
                batch = np.concatenate([batch, np.repeat(batch[-1:], self.batch_size - n, axis=0)])
            for rows, cols in self.flips:
                logits = self.logits(np.ascontiguousarray(_mirror(batch, rows, cols))).numpy()
                logits = _mirror(logits, rows, cols)  # back to the image's orientation
                for i in range(n):
                    prob = probabilities(np.ascontiguousarray(logits[i]), tuple(int(v) for v in out_sizes[i]))
                    sums[i] = prob if sums[i] is None else sums[i] + prob
        scale = np.float32(1.0 / self.views)
        maps = []
        for total in sums:
            mean = total * scale
            maps.append(mean[0] if self.num_classes == 1 else mean)
        return maps


def add_tta_args(parser) -> None:
    """``--tta`` and ``--tta-scales`` for ``predict`` and ``test``."""
    parser.add_argument("--tta", action="append", default=None, metavar="MODE",
                        help="test-time augmentation: flip (4 mirror views, 4x the time) and/or scales (--tta-scales, "
                             "one pass per scale); combine as --tta flip,scales (every scale x every flip). "
                             "Probabilities are averaged, then min-max normalised per image as usual")
    parser.add_argument("--tta-scales", default=",".join(f"{s:g}" for s in DEFAULT_SCALES), metavar="S1,S2,...",
                        help="scales of --size for --tta scales, each rounded to a multiple of 32 "
                             "(default 0.75,1,1.25)")


def check_tta_args(args, size: int) -> Tuple[Tuple[str, ...], Tuple[float, ...]]:
    """Validate ``--tta``/``--tta-scales`` before any model is loaded; returns (modes, scales)."""
    modes = parse_modes(getattr(args, "tta", None))
    scales = parse_scales(getattr(args, "tta_scales", None) or DEFAULT_SCALES)
    if "scales" in modes:
        scale_sizes(size, scales)
    return modes, scales


def with_tta(predictor: Predictor, args) -> Predictor:
    """The predictor itself without ``--tta``, else a :class:`TTAPredictor` on the same model."""
    modes, scales = check_tta_args(args, predictor.size)
    if not modes:
        return predictor
    return TTAPredictor.from_predictor(predictor, modes, scales)


__all__ = ["DEFAULT_SCALES", "FLIPS", "TTAPredictor", "TTA_MODES", "add_tta_args", "check_tta_args",
           "parse_modes", "parse_scales", "scale_sizes", "with_tta"]
