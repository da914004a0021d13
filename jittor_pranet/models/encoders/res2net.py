"""Res2Net-v1b encoder (Gao et al.), parameter names identical to ``res2net50_v1b_26w_4s-3cf99910.pth``.

v1b differs from the original Res2Net in Jittor's model zoo: a three-conv stem (``conv1.{0,1,3,4,6}``)
and an average-pool-then-1x1 downsample (``downsample.{0: AvgPool, 1: conv, 2: BN}``).  Those
Sequentials keep the official indices (state-dict keys); the code reaches their parts by name
(:meth:`Res2NetV1b.stem_conv_bns`, :class:`AvgDownsample`).
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Sequence

from ...ops import BatchNorm2d, Conv2d, Linear, avg_pool3x3, avg_pool_ceil, batch_norm_act, jt, max_pool3x3_s2
from ..weight_init import init_res2net_

from jittor import nn


class AvgPoolCeil(nn.Module):
    """``AvgPool2d(k, k, ceil_mode=True, count_include_pad=False)`` as a parameter-free module so the
    downsample Sequential keeps the official indices (0: pool, 1: conv, 2: BN)."""

    def __init__(self, k: int):
        self.k = k

    def execute(self, x):
        return avg_pool_ceil(x, self.k)


class AvgDownsample(nn.Sequential):
    """Residual projection of a stage's first block: average pool (stride), 1x1 conv, BatchNorm,
    held as a Sequential with the official indices (0: pool, 1: conv, 2: BN)."""

    def __init__(self, inplanes: int, outplanes: int, stride: int):
        super().__init__(AvgPoolCeil(stride), Conv2d(inplanes, outplanes, 1, stride=1, bias=False),
                         BatchNorm2d(outplanes))

    @property
    def pool(self) -> AvgPoolCeil:
        return self[0]

    @property
    def conv(self) -> nn.Conv2d:
        return self[1]

    @property
    def bn(self) -> BatchNorm2d:
        return self[2]


class ConvBN(NamedTuple):
    """A convolution and the BatchNorm that always follows it."""

    conv: nn.Conv2d
    bn: BatchNorm2d


class Bottle2neck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 base_width: int = 26, scale: int = 4, stype: str = "normal"):
        width = int(math.floor(planes * (base_width / 64.0)))
        self.conv1 = Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = BatchNorm2d(width * scale)
        self.nums = 1 if scale == 1 else scale - 1
        self.convs = nn.ModuleList([Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
                                    for _ in range(self.nums)])
        self.bns = nn.ModuleList([BatchNorm2d(width) for _ in range(self.nums)])
        self.conv3 = Conv2d(width * scale, planes * self.expansion, 1, bias=False)
        self.bn3 = BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stype = stype
        self.scale = scale
        self.width = width
        self.stride = stride

    def execute(self, x):
        out = batch_norm_act(self.bn1, self.conv1(x), relu=True)
        w = self.width
        splits = [out[:, i * w:(i + 1) * w] for i in range(self.scale)]
        pieces = []
        sp = None
        for i in range(self.nums):
            sp = splits[i] if (i == 0 or self.stype == "stage") else sp + splits[i]
            sp = batch_norm_act(self.bns[i], self.convs[i](sp), relu=True)
            pieces.append(sp)
        if self.scale != 1:
            last = splits[self.nums]
            pieces.append(avg_pool3x3(last, self.stride) if self.stype == "stage" else last)
        residual = self.downsample(x) if self.downsample is not None else x
        return batch_norm_act(self.bn3, self.conv3(jt.concat(pieces, dim=1)), residual, relu=True)


class Res2NetV1b(nn.Module):
    """Res2Net-v1b with the ImageNet head kept (``fc``) so official files load with no renaming."""

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), base_width: int = 26, scale: int = 4,
                 num_classes: int = 1000):
        self.inplanes = 64
        self.base_width = base_width
        self.scale = scale
        # deep stem: three 3x3 convs, each followed by a BatchNorm and a ReLU; the third BatchNorm
        # is ``bn1`` outside the Sequential (official layout, see stem_conv_bns)
        self.conv1 = nn.Sequential(
            Conv2d(3, 32, 3, 2, 1, bias=False), BatchNorm2d(32), nn.ReLU(),
            Conv2d(32, 32, 3, 1, 1, bias=False), BatchNorm2d(32), nn.ReLU(),
            Conv2d(32, 64, 3, 1, 1, bias=False),
        )
        self.bn1 = BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.fc = Linear(512 * Bottle2neck.expansion, num_classes)
        self.out_channels = [256, 512, 1024, 2048]
        init_res2net_(self)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottle2neck.expansion:
            downsample = AvgDownsample(self.inplanes, planes * Bottle2neck.expansion, stride)
        layers = [Bottle2neck(self.inplanes, planes, stride, downsample, self.base_width, self.scale, "stage")]
        self.inplanes = planes * Bottle2neck.expansion
        layers += [Bottle2neck(self.inplanes, planes, base_width=self.base_width, scale=self.scale)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem_conv_bns(self) -> List[ConvBN]:
        """The stem's three (conv, BatchNorm) pairs: ``conv1[0]/conv1[1]``, ``conv1[3]/conv1[4]``,
        ``conv1[6]/bn1`` (``conv1[2]`` and ``conv1[5]`` are its parameter-free ReLUs)."""
        seq = self.conv1
        return [ConvBN(seq[0], seq[1]), ConvBN(seq[3], seq[4]), ConvBN(seq[6], self.bn1)]

    def stem(self, x):
        """Deep stem then ``MaxPool2d(3, 2, 1)``: 1/4 resolution."""
        for conv, bn in self.stem_conv_bns():
            x = batch_norm_act(bn, conv(x), relu=True)
        return max_pool3x3_s2(x)

    def forward_features(self, x) -> List["jt.Var"]:
        """The four stage outputs (1/4, 1/8, 1/16, 1/32 resolution)."""
        x1 = self.layer1(self.stem(x))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return [x1, x2, x3, x4]

    def execute(self, x):
        x4 = self.forward_features(x)[-1]
        return self.fc(x4.mean(dims=(2, 3)))


def res2net50_v1b_26w_4s(**kwargs) -> Res2NetV1b:
    return Res2NetV1b((3, 4, 6, 3), 26, 4, **kwargs)


def res2net101_v1b_26w_4s(**kwargs) -> Res2NetV1b:
    return Res2NetV1b((3, 4, 23, 3), 26, 4, **kwargs)


RES2NET_VARIANTS = {
    "res2net50_v1b_26w_4s": res2net50_v1b_26w_4s,
    "res2net101_v1b_26w_4s": res2net101_v1b_26w_4s,
}
