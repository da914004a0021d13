"""Pictures of predictions for people: a mask's outline and translucent tint drawn on the image, and
colour renderings of label maps (numpy + OpenCV, RGB in and out)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

RGB = Tuple[int, int, int]

#: first colours of label palettes (index 0 = background, black); more classes get generated colours
_BASE_PALETTE = np.array([
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
], dtype=np.uint8)


def label_palette(n: int) -> np.ndarray:
    """``n`` x 3 uint8 RGB colours, distinct, black for class 0 (PASCAL VOC bit pattern past the first 12)."""
    if n <= len(_BASE_PALETTE):
        return _BASE_PALETTE[:n].copy()
    extra = []
    for label in range(len(_BASE_PALETTE), n):
        r = g = b = 0
        c = label
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        extra.append((r, g, b))
    return np.concatenate([_BASE_PALETTE, np.array(extra, dtype=np.uint8)])


def colorize_labels(labels: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """HxW integer labels -> HxWx3 uint8 RGB picture (class 0 black)."""
    n = int(num_classes if num_classes is not None else int(labels.max(initial=0)) + 1)
    return label_palette(max(n, 1))[np.clip(labels, 0, max(n, 1) - 1)]


def _thickness(shape: Sequence[int]) -> int:
    return max(1, int(round(min(shape[0], shape[1]) / 200)))


def overlay_mask(rgb: np.ndarray, mask: np.ndarray, color: RGB = (0, 255, 0), alpha: float = 0.35,
                 contour_color: RGB = (255, 255, 0), thickness: Optional[int] = None) -> np.ndarray:
    """The image with the predicted region tinted (``alpha`` of ``color``) and its outline drawn."""
    return overlay_labels(rgb, (np.asarray(mask) > 0).astype(np.uint8),
                          palette=np.array([(0, 0, 0), color], dtype=np.uint8), alpha=alpha,
                          contour_color=contour_color, thickness=thickness)


def overlay_labels(rgb: np.ndarray, labels: np.ndarray, palette: Optional[np.ndarray] = None, alpha: float = 0.35,
                   contour_color: Optional[RGB] = None, thickness: Optional[int] = None) -> np.ndarray:
    """Every non-zero class tinted with its palette colour and outlined (in ``contour_color`` or its own colour)."""
    if rgb.shape[:2] != labels.shape[:2]:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape[:2]} differ in size")
    labels = np.asarray(labels)
    n = int(labels.max(initial=0)) + 1
    if palette is None or len(palette) < n:
        palette = label_palette(max(n, 2))
    out = rgb.astype(np.float32)
    fg = labels > 0
    if fg.any():
        colors = palette[labels].astype(np.float32)
        out[fg] = (1.0 - alpha) * out[fg] + alpha * colors[fg]
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    width = thickness or _thickness(labels.shape)
    for cls in np.unique(labels):
        if cls == 0:
            continue
        region = (labels == cls).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        line = contour_color if contour_color is not None else tuple(int(v) for v in palette[cls])
        cv2.drawContours(out, contours, -1, tuple(int(v) for v in line), width, lineType=cv2.LINE_AA)
    return out


__all__ = ["colorize_labels", "label_palette", "overlay_labels", "overlay_mask"]
