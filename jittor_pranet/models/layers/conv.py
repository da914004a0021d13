"""Convolution helpers shared by the decoders."""
from __future__ import annotations

from typing import Tuple, Union

from ...ops import BatchNorm2d, Conv2d

from jittor import nn

IntPair = Union[int, Tuple[int, int]]


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm.  The official class also defines a ReLU it never applies; we keep
    the same (parameter-free) attribute and the same behaviour: callers apply ReLU explicitly."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: IntPair, stride: int = 1,
                 padding: IntPair = 0, dilation: int = 1):
        self.conv = Conv2d(in_planes, out_planes, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, bias=False)
        self.bn = BatchNorm2d(out_planes)
        self.relu = nn.ReLU()

    def execute(self, x):
        return self.bn(self.conv(x))


class NearestUpsample2x(nn.Module):
    """``nn.Upsample(scale_factor=2)`` (nearest): output pixel (i, j) reads input (i // 2, j // 2)."""

    def execute(self, x):
        n, c, h, w = x.shape
        return x.reindex([n, c, 2 * h, 2 * w], ["i0", "i1", "i2/2", "i3/2"])
