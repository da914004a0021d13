"""CBAM-style attention gates, channel (CAB) and spatial (SAB): EMCAD's MSCAM, MERIT's CASCADE."""
from __future__ import annotations

from ...ops import Conv2d, jt

from jittor import nn


class CAB(nn.Module):
    """Channel attention: ``sigmoid(fc2(relu(fc1(avg))) + fc2(relu(fc1(max))))`` over global pools."""

    def __init__(self, in_channels: int, ratio: int = 16):
        ratio = min(ratio, in_channels)
        reduced = in_channels // ratio
        self.activation = nn.ReLU()
        self.fc1 = Conv2d(in_channels, reduced, 1, bias=False)
        self.fc2 = Conv2d(reduced, in_channels, 1, bias=False)

    def execute(self, x):
        avg = x.mean(dims=(2, 3), keepdims=True)
        mx = x.max(dims=(2, 3), keepdims=True)
        return jt.sigmoid(self.fc2(self.activation(self.fc1(avg))) + self.fc2(self.activation(self.fc1(mx))))


class SAB(nn.Module):
    """Spatial attention: ``sigmoid(conv7x7([mean_c(x), max_c(x)]))``."""

    def __init__(self, kernel_size: int = 7):
        if kernel_size not in (3, 7, 11):
            raise ValueError(f"SAB kernel must be 3, 7 or 11, got {kernel_size}")
        self.conv = Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def execute(self, x):
        pooled = jt.concat([x.mean(dim=1, keepdims=True), x.max(dim=1, keepdims=True)], dim=1)
        return jt.sigmoid(self.conv(pooled))
