"""Stochastic depth (``DropPath``), for the residual branches of transformer encoders (PVTv2, MaxViT)."""
from __future__ import annotations

from ...ops import jt

from jittor import nn


class DropPath(nn.Module):
    """Stochastic depth: drops the residual branch per sample, only in training mode."""

    def __init__(self, p: float = 0.0):
        self.p = p

    def execute(self, x):
        if self.p <= 0.0 or not self.is_training():
            return x
        keep = 1.0 - self.p
        mask = (jt.rand((x.shape[0],) + (1,) * (x.ndim - 1)) < keep).float32()
        return x * mask / keep
