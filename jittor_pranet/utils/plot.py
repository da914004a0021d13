"""A tiny line-chart renderer on OpenCV (no matplotlib dependency): axes, ticks, grid, legend, title.

Used for Dice/IoU-vs-threshold curves of ``eval`` and for training curves.  Non-finite points break a
line instead of failing, so partially logged curves still plot.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .io import PathLike, atomic_imwrite

Series = Dict[str, Tuple[Sequence[float], Sequence[float]]]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# tab10 colours, BGR
_COLORS = [
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
]
_BLACK = (0, 0, 0)
_GRID = (228, 228, 228)


def nice_ticks(lo: float, hi: float, target: int = 6) -> Tuple[np.ndarray, float]:
    """Round tick values covering [lo, hi] with a 1/2/2.5/5 x 10^k step; returns (ticks, step)."""
    span = hi - lo
    raw = span / max(target - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-6, step)
    return ticks, step


def _tick_label(value: float, step: float) -> str:
    if abs(value) >= 1e5 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step / 10.0 ** -decimals, 6) % 1:  # e.g. 0.25 needs one more digit
        decimals += 1
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def _auto_limits(values: List[np.ndarray], pad: float) -> Tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 1.0
    lo = float(min(v.min() for v in finite))
    hi = float(max(v.max() for v in finite))
    if hi == lo:
        half = abs(lo) * 0.5 or 0.5
        return lo - half, hi + half
    margin = (hi - lo) * pad
    return lo - margin, hi + margin


def _text(img: np.ndarray, text: str, org: Tuple[int, int], scale: float = 0.45, thickness: int = 1,
          anchor: str = "left") -> None:
    """Draw text with its baseline at ``org``; ``anchor`` is left, center or right."""
    (w, _h), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    x, y = org
    if anchor == "center":
        x -= w // 2
    elif anchor == "right":
        x -= w
    cv2.putText(img, text, (int(x), int(y)), _FONT, scale, _BLACK, thickness, cv2.LINE_AA)


def _vertical_text(img: np.ndarray, text: str, center: Tuple[int, int], scale: float = 0.5) -> None:
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    tile = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
    cv2.putText(tile, text, (2, h + 2), _FONT, scale, _BLACK, 1, cv2.LINE_AA)
    tile = cv2.rotate(tile, cv2.ROTATE_90_COUNTERCLOCKWISE)
    th, tw = tile.shape[:2]
    y0 = max(0, center[1] - th // 2)
    x0 = max(0, center[0] - tw // 2)
    y1, x1 = min(img.shape[0], y0 + th), min(img.shape[1], x0 + tw)
    img[y0:y1, x0:x1] = np.minimum(img[y0:y1, x0:x1], tile[: y1 - y0, : x1 - x0])


def render_line_chart(
    series: Series,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    *,
    size: Tuple[int, int] = (800, 500),
    xlim: Optional[Tuple[float, float]] = None,
    ylim: Optional[Tuple[float, float]] = None,
) -> np.ndarray:
    """Render ``{name: (xs, ys)}`` as a BGR uint8 image of ``size`` = (width, height)."""
    width, height = size
    left, right, top, bottom = 72, 20, 44 if title else 20, 58 if xlabel else 40
    pw, ph = width - left - right, height - top - bottom
    if pw < 50 or ph < 50:
        raise ValueError(f"chart size {size} leaves no room for the plot")
    data = []
    for name, (xs, ys) in series.items():
        x = np.asarray(xs, dtype=np.float64).ravel()
        y = np.asarray(ys, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"series {name!r}: {x.size} x values for {y.size} y values")
        data.append((str(name), x, y))

    x_lo, x_hi = xlim if xlim else _auto_limits([d[1] for d in data], 0.0)
    y_lo, y_hi = ylim if ylim else _auto_limits([d[2] for d in data], 0.05)
    if not x_hi > x_lo or not y_hi > y_lo:
        raise ValueError("axis limits must be increasing")
    xticks, xstep = nice_ticks(x_lo, x_hi)
    yticks, ystep = nice_ticks(y_lo, y_hi)

    img = np.full((height, width, 3), 255, np.uint8)

    def px(x):
        return left + (np.asarray(x) - x_lo) / (x_hi - x_lo) * (pw - 1)

    def py(y):
        return top + (y_hi - np.asarray(y)) / (y_hi - y_lo) * (ph - 1)

    for t in xticks:
        x = int(round(float(px(t))))
        cv2.line(img, (x, top), (x, top + ph - 1), _GRID, 1)
        cv2.line(img, (x, top + ph - 1), (x, top + ph + 4), _BLACK, 1)
        _text(img, _tick_label(t, xstep), (x, top + ph + 20), anchor="center")
    for t in yticks:
        y = int(round(float(py(t))))
        cv2.line(img, (left, y), (left + pw - 1, y), _GRID, 1)
        cv2.line(img, (left - 5, y), (left, y), _BLACK, 1)
        _text(img, _tick_label(t, ystep), (left - 8, y + 5), anchor="right")

    # lines are drawn on a plot-area canvas so that OpenCV clips them to the axes
    area = img[top : top + ph, left : left + pw].copy()
    for i, (_name, x, y) in enumerate(data):
        color = _COLORS[i % len(_COLORS)]
        ok = np.isfinite(x) & np.isfinite(y)
        pts = np.stack([px(x) - left, py(y) - top], axis=1)
        # split at non-finite points: each run is one polyline
        breaks = np.flatnonzero(np.diff(ok.astype(np.int8)) != 0) + 1
        for run in np.split(np.arange(x.size), breaks):
            if run.size == 0 or not ok[run[0]]:
                continue
            seg = np.round(pts[run] * 16).astype(np.int32)  # 4 fractional bits for smooth lines
            if seg.shape[0] == 1:
                cv2.circle(area, tuple(int(v) for v in seg[0]), 3 * 16, color, -1, cv2.LINE_AA, 4)
            else:
                cv2.polylines(area, [seg.reshape(-1, 1, 2)], False, color, 2, cv2.LINE_AA, 4)
    img[top : top + ph, left : left + pw] = area
    cv2.rectangle(img, (left, top), (left + pw - 1, top + ph - 1), _BLACK, 1)

    if data:
        _legend(img, [d[0] for d in data], (left + pw - 8, top + 8))
    if title:
        _text(img, title, (left + pw // 2, 28), scale=0.6, thickness=1, anchor="center")
    if xlabel:
        _text(img, xlabel, (left + pw // 2, height - 12), scale=0.5, anchor="center")
    if ylabel:
        _vertical_text(img, ylabel, (16, top + ph // 2))
    return img


def _legend(img: np.ndarray, names: List[str], top_right: Tuple[int, int]) -> None:
    scale, row = 0.45, 20
    text_w = max(cv2.getTextSize(n, _FONT, scale, 1)[0][0] for n in names)
    box_w, box_h = text_w + 44, row * len(names) + 8
    x1, y0 = top_right
    x0 = x1 - box_w
    cv2.rectangle(img, (x0, y0), (x1, y0 + box_h), (255, 255, 255), -1)
    cv2.rectangle(img, (x0, y0), (x1, y0 + box_h), (160, 160, 160), 1)
    for i, name in enumerate(names):
        y = y0 + 4 + row * i + row // 2
        color = _COLORS[i % len(_COLORS)]
        cv2.line(img, (x0 + 8, y), (x0 + 32, y), color, 2, cv2.LINE_AA)
        _text(img, name, (x0 + 38, y + 5), scale=scale)


def line_chart(
    path: PathLike,
    series: Series,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    **kwargs,
) -> Path:
    """Render ``{name: (xs, ys)}`` (see :func:`render_line_chart` for ``size``/``xlim``/``ylim``) to an
    image file, written atomically; returns the path."""
    return atomic_imwrite(path, render_line_chart(series, title, xlabel, ylabel, **kwargs))


__all__ = ["line_chart", "nice_ticks", "render_line_chart"]
