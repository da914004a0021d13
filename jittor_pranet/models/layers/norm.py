"""``LayerNorm2d``: LayerNorm over the channels of an N x C x H x W map (timm's, as MaxViT uses it)."""
from __future__ import annotations

from ...ops import LayerNorm


class LayerNorm2d(LayerNorm):
    """Normalises each pixel's channel vector: parameters ``weight``/``bias`` of shape (C,) (timm's names),
    PyTorch's two-pass variance (:class:`~jittor_pranet.ops.LayerNorm` on the channels-last view)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__(channels, eps)

    def execute(self, x):
        return super().execute(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
