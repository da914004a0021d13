"""PraNet's decoder blocks (RFB, partial-decoder aggregation, reverse-attention stage convs), shared by
PraNet-V1 and V2 and named exactly like the official PyTorch modules."""
from __future__ import annotations

from ...ops import Conv2d, jt, resize_bilinear
from ..layers.conv import BasicConv2d

from jittor import nn


def _branch(cin: int, cout: int, k: int) -> nn.Sequential:
    """1x1 reduce, (1,k) and (k,1) separable convs, then a 3x3 conv dilated by k."""
    half = k // 2
    return nn.Sequential(
        BasicConv2d(cin, cout, 1),
        BasicConv2d(cout, cout, (1, k), padding=(0, half)),
        BasicConv2d(cout, cout, (k, 1), padding=(half, 0)),
        BasicConv2d(cout, cout, 3, padding=k, dilation=k),
    )


class RFB_modified(nn.Module):  # noqa: N801 (official name, appears in nothing but kept for grep-ability)
    """Receptive-field block: four branches of growing dilation, concatenated, plus a 1x1 residual."""

    def __init__(self, in_channel: int, out_channel: int):
        self.relu = nn.ReLU()
        self.branch0 = nn.Sequential(BasicConv2d(in_channel, out_channel, 1))
        self.branch1 = _branch(in_channel, out_channel, 3)
        self.branch2 = _branch(in_channel, out_channel, 5)
        self.branch3 = _branch(in_channel, out_channel, 7)
        self.conv_cat = BasicConv2d(4 * out_channel, out_channel, 3, padding=1)
        self.conv_res = BasicConv2d(in_channel, out_channel, 1)

    def execute(self, x):
        cat = jt.concat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)
        return nn.relu(self.conv_cat(cat) + self.conv_res(x))


class Aggregation(nn.Module):
    """Partial decoder fusing the three deepest RFB features at 1/8 resolution.

    Upsampling uses ``align_corners=True`` as the official ``nn.Upsample`` does (the upstream Jittor
    port's False here is what puts it 30% off).  ``dual=True`` gives the V2 fg/bg heads
    (``conv5_fg``/``conv5_bg`` with ``num_classes`` channels); V1 has a single ``conv5``.
    """

    def __init__(self, channel: int, num_classes: int = 1, dual: bool = False):
        self.relu = nn.ReLU()
        self.dual = dual
        c = channel
        self.conv_upsample1 = BasicConv2d(c, c, 3, padding=1)
        self.conv_upsample2 = BasicConv2d(c, c, 3, padding=1)
        self.conv_upsample3 = BasicConv2d(c, c, 3, padding=1)
        self.conv_upsample4 = BasicConv2d(c, c, 3, padding=1)
        self.conv_upsample5 = BasicConv2d(2 * c, 2 * c, 3, padding=1)
        self.conv_concat2 = BasicConv2d(2 * c, 2 * c, 3, padding=1)
        self.conv_concat3 = BasicConv2d(3 * c, 3 * c, 3, padding=1)
        self.conv4 = BasicConv2d(3 * c, 3 * c, 3, padding=1)
        if dual:
            self.conv5_fg = Conv2d(3 * c, num_classes, 1)
            self.conv5_bg = Conv2d(3 * c, num_classes, 1)
        else:
            self.conv5 = Conv2d(3 * c, 1, 1)

    def execute(self, x1, x2, x3):
        """x1: deepest (1/32), x2: 1/16, x3: 1/8 feature."""
        s2, s3 = x2.shape[2:], x3.shape[2:]
        up = lambda t, s: resize_bilinear(t, s, align_corners=True)  # noqa: E731
        x1_up2 = up(x1, s2)
        x2_1 = self.conv_upsample1(x1_up2) * x2
        x3_1 = self.conv_upsample2(up(x1_up2, s3)) * self.conv_upsample3(up(x2, s3)) * x3
        x2_2 = self.conv_concat2(jt.concat([x2_1, self.conv_upsample4(x1_up2)], dim=1))
        x3_2 = self.conv_concat3(jt.concat([x3_1, self.conv_upsample5(up(x2_2, s3))], dim=1))
        x = self.conv4(x3_2)
        if self.dual:
            return self.conv5_fg(x), self.conv5_bg(x)
        return self.conv5(x)


def stage_convs(model, prefix: str, cin: int, mid: int, k: int, n: int) -> None:
    """``{prefix}_conv1`` (1x1 cin->mid) then ``n`` kxk convs, as attributes with official names."""
    setattr(model, f"{prefix}_conv1", BasicConv2d(cin, mid, 1))
    for i in range(2, 2 + n):
        setattr(model, f"{prefix}_conv{i}", BasicConv2d(mid, mid, k, padding=k // 2))


def run_stage(model, prefix: str, x, n: int):
    x = getattr(model, f"{prefix}_conv1")(x)
    for i in range(2, 2 + n):
        x = nn.relu(getattr(model, f"{prefix}_conv{i}")(x))
    return x
