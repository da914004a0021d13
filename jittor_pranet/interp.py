"""PyTorch-exact bilinear interpolation weights, and the numpy resize used after the network.

Kept free of Jittor: the final resize of a prediction to its image's original size happens here in
numpy, because every new output size would make Jittor compile new kernels (seconds each), and
real test sets have many image sizes.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Tuple

import numpy as np
from scipy.special import expit


@lru_cache(maxsize=512)
def interp_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
    """[out, in] float32 matrix of 1-D linear interpolation weights, PyTorch conventions
    (``align_corners`` True/False, source index clamped at 0, right neighbour clamped at the border)."""
    m = np.zeros((out_size, in_size), dtype=np.float64)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    else:
        scale = in_size / out_size
    for dst in range(out_size):
        src = scale * dst if align_corners else max(scale * (dst + 0.5) - 0.5, 0.0)
        i0 = min(int(math.floor(src)), in_size - 1)
        i1 = i0 + 1 if i0 < in_size - 1 else i0
        lam = src - i0
        m[dst, i0] += 1.0 - lam
        m[dst, i1] += lam
    return m.astype(np.float32)


def resize_bilinear_np(x: np.ndarray, size: Tuple[int, int], align_corners: bool = False) -> np.ndarray:
    """Bilinear resize of a [..., H, W] float array to ``size`` (same maths as ``ops.resize_bilinear``)."""
    h, w = x.shape[-2:]
    oh, ow = int(size[0]), int(size[1])
    x = np.asarray(x, dtype=np.float32)
    if (h, w) == (oh, ow) and not align_corners:
        return x
    return interp_matrix(h, oh, align_corners) @ x @ interp_matrix(w, ow, align_corners).T


def probabilities(logits: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """[C, h, w] logits -> [C, H, W] probabilities at ``size``: sigmoid for one class, softmax for more."""
    up = resize_bilinear_np(logits, size)
    if up.shape[0] == 1:
        return expit(up).astype(np.float32)
    e = np.exp(up - up.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)
