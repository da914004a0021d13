"""MaxViT variant table and the derived relative-position tables (no Jittor, no torch: the Jittor
encoder, its PyTorch twin and the catalog share them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

HEAD_DIM = 32
#: window and grid side = input side // PARTITION_RATIO (timm's ``partition_ratio``)
PARTITION_RATIO = 32


@dataclass(frozen=True)
class MaxVitSpec:
    """One timm MaxViT configuration (the "rw" variants with an MLP relative position)."""

    dims: Tuple[int, int, int, int]
    depths: Tuple[int, int, int, int]
    stem: Tuple[int, int]
    conv: str                       # mbconv | convnext
    layer_scale: Optional[float]    # LayerScale init (None: no LayerScale parameters)
    img_size: int                   # the size timm names the variant after (its default window: /32)
    init: str = "vit_eff"           # timm's weight_init scheme: vit_eff | normal


_M, _X = "mbconv", "convnext"
MAXVIT_SPECS: Dict[str, MaxVitSpec] = {
    "maxvit_rmlp_pico_rw_256": MaxVitSpec((32, 64, 128, 256), (2, 2, 5, 2), (24, 32), _M, None, 256),
    "maxvit_rmlp_nano_rw_256": MaxVitSpec((64, 128, 256, 512), (1, 2, 3, 1), (32, 64), _M, None, 256),
    "maxvit_rmlp_tiny_rw_256": MaxVitSpec((64, 128, 256, 512), (2, 2, 5, 2), (32, 64), _M, None, 256),
    "maxvit_rmlp_small_rw_224": MaxVitSpec((96, 192, 384, 768), (2, 2, 5, 2), (32, 64), _M, 1e-6, 224),
    "maxvit_rmlp_small_rw_256": MaxVitSpec((96, 192, 384, 768), (2, 2, 5, 2), (32, 64), _M, 1e-6, 256),
    "maxxvit_rmlp_nano_rw_256": MaxVitSpec((64, 128, 256, 512), (1, 2, 3, 1), (32, 64), _X, 1e-6, 256, "normal"),
    "maxxvit_rmlp_tiny_rw_256": MaxVitSpec((64, 128, 256, 512), (2, 2, 5, 2), (32, 64), _X, 1e-6, 256),
    "maxxvit_rmlp_small_rw_256": MaxVitSpec((96, 192, 384, 768), (2, 2, 5, 2), (48, 96), _X, 1e-6, 256),
}


def make_divisible(v: float, divisor: int = 8) -> int:
    """timm's channel rounding (nearest multiple of ``divisor``, never more than 10% below ``v``)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def relative_position_index(window: int) -> np.ndarray:
    """[w*w, w*w] index of each (query, key) offset into the (2w-1)^2 offset table, row-major in (dy, dx)."""
    ys, xs = np.meshgrid(np.arange(window), np.arange(window), indexing="ij")
    coords = np.stack([ys.ravel(), xs.ravel()])                       # 2, T
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)      # 2, T, T
    return (rel[0] * (2 * window - 1) + rel[1]).astype(np.int32)


def relative_log_coords(window: int) -> np.ndarray:
    """[(2w-1)^2, 2] offsets ``(dy, dx)`` mapped to ``sign(d) * ln(1 + |d|)`` (timm's 'cr' mode)."""
    d = np.arange(-(window - 1), window, dtype=np.float32)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    table = np.stack([dy, dx], axis=-1).reshape(-1, 2)
    return (np.sign(table) * np.log1p(np.abs(table))).astype(np.float32)


__all__ = ["HEAD_DIM", "MAXVIT_SPECS", "PARTITION_RATIO", "MaxVitSpec", "make_divisible",
           "relative_log_coords", "relative_position_index"]
