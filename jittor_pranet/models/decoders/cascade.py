"""CASCADE (Rahman & Marculescu, WACV 2023), the additive decoder of Cascaded MERIT, and its DSRA variant.

Per stage (1/32 -> 1/4): up-convolution (nearest x2, 3x3 conv + BN + ReLU) to the next width, an
attention gate on the skip (1x1 convs, ``skip * sigmoid(BN(psi(relu(W_g up + W_x skip))))``) added
to the upsampled map, CAM = channel attention x spatial attention, then a double 3x3 conv block.
The deepest stage starts with a 1x1 conv instead of the up-convolution and has no gate.

``dual=True`` (the official ``CASCADE_Add_dual``) adds per-stage fg/bg heads ``ConvBlock{k}_fg/_bg``
(conv without bias + BN, 1x1 at stage 4, 3x3 elsewhere); stages 3..1 refine their fg head with the
DSRA reverse gain of the deeper stage's (refined) fg and bg maps, bilinear-resized to this stage.

Parameter names and creation order are those of the official modules, so official checkpoints load
as they are.  ``channels`` runs deepest first (small MaxViT: 768, 384, 192, 96).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from ...ops import BatchNorm2d, Conv2d, jt
from ..layers.attention import CAB
from ..layers.conv import BasicConv2d, NearestUpsample2x
from .dsra import GAIN_MODES, dsra_stage
from .emcad import LGAG

from jittor import nn


class ConvBlock(nn.Module):
    """Two (3x3 conv with bias + BN + ReLU): ``conv.0/1`` and ``conv.3/4``."""

    def __init__(self, in_channels: int, out_channels: int):
        self.conv = nn.Sequential(
            Conv2d(in_channels, out_channels, 3, 1, 1, bias=True), BatchNorm2d(out_channels), nn.ReLU(),
            Conv2d(out_channels, out_channels, 3, 1, 1, bias=True), BatchNorm2d(out_channels), nn.ReLU())

    def execute(self, x):
        return self.conv(x)


class UpConv(nn.Module):
    """Nearest x2 upsampling then 3x3 conv with bias + BN + ReLU: ``up.1/2``."""

    def __init__(self, in_channels: int, out_channels: int):
        self.up = nn.Sequential(NearestUpsample2x(), Conv2d(in_channels, out_channels, 3, 1, 1, bias=True),
                                BatchNorm2d(out_channels), nn.ReLU())

    def execute(self, x):
        return self.up(x)


def attention_gate(f_g: int, f_l: int, f_int: int) -> LGAG:
    """CASCADE's gate: EMCAD's LGAG with 1x1 ungrouped convs (same names ``W_g``, ``W_x``, ``psi``)."""
    return LGAG(f_g, f_l, f_int, kernel_size=1, groups=1)


class SpatialAttention(nn.Module):
    """``sigmoid(conv1([mean_c(x), max_c(x)]))`` (7x7, no bias): the SAB of EMCAD with the conv named
    ``conv1`` as in CASCADE's checkpoints."""

    def __init__(self, kernel_size: int = 7):
        if kernel_size not in (3, 7):
            raise ValueError(f"spatial attention kernel must be 3 or 7, got {kernel_size}")
        self.conv1 = Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def execute(self, x):
        pooled = jt.concat([x.mean(dim=1, keepdims=True), x.max(dim=1, keepdims=True)], dim=1)
        return jt.sigmoid(self.conv1(pooled))


class CascadeDecoder(nn.Module):
    """Official ``CASCADE_Add`` (``dual=False``) or ``CASCADE_Add_dual`` (``dual=True``).

    Gate widths as official: F_int = channels[2] at stage 3, channels[3] at stage 2 and
    channels[3] // 2 at stage 1.  One spatial attention ``SA`` is shared by all four stages.
    Channel attention reduces by 16, so every width must be >= 16.
    """

    def __init__(self, channels: Sequence[int] = (512, 320, 128, 64), dual: bool = False, num_classes: int = 9,
                 gain: str = "softmax"):
        if gain not in GAIN_MODES:
            raise ValueError(f"unknown DSRA gain {gain!r}; choose one of {GAIN_MODES}")
        channels = [int(c) for c in channels]
        if len(channels) != 4 or min(channels) < 16:
            raise ValueError(f"CASCADE needs 4 widths >= 16 (deepest first), got {channels}")
        self.dual, self.gain, self.num_classes, self.channels = dual, gain, num_classes, tuple(channels)
        c4, c3, c2, c1 = channels
        # creation order = state_dict order = the official one
        self.Conv_1x1 = Conv2d(c4, c4, 1, 1, 0, bias=True)
        self.ConvBlock4 = ConvBlock(c4, c4)
        if dual:
            self._heads(4, c4, 1)
        for k, cin, cout, f_int in ((3, c4, c3, c2), (2, c3, c2, c1), (1, c2, c1, c1 // 2)):
            setattr(self, f"Up{k}", UpConv(cin, cout))
            setattr(self, f"AG{k}", attention_gate(cout, cout, f_int))
            setattr(self, f"ConvBlock{k}", ConvBlock(cout, cout))
            if dual:
                self._heads(k, cout, 3)
        for k, c in zip((4, 3, 2, 1), channels):
            setattr(self, f"CA{k}", CAB(c))
        self.SA = SpatialAttention()

    def _heads(self, k: int, channels: int, kernel_size: int) -> None:
        for side in ("fg", "bg"):
            setattr(self, f"ConvBlock{k}_{side}",
                    BasicConv2d(channels, self.num_classes, kernel_size, padding=kernel_size // 2))

    def _cam(self, k: int, d):
        d = getattr(self, f"CA{k}")(d) * d
        d = self.SA(d) * d
        return getattr(self, f"ConvBlock{k}")(d)

    def execute(self, x, skips: Sequence["jt.Var"], inter: Optional[Dict[str, "jt.Var"]] = None,
                prefix: str = "") -> List["jt.Var"]:
        """``x``: deepest encoder map; ``skips``: the 1/16, 1/8, 1/4 maps.  Returns ``[d4, d3, d2, d1]``
        or, dual, ``[d4_fg .. d1_fg, d4_bg .. d1_bg, d1]`` (fused fg; ``d1`` feeds MERIT's feedback
        head), as the official classes.  ``inter`` collects every stage under ``prefix``."""
        inter = {} if inter is None else inter
        d = self._cam(4, self.Conv_1x1(x))
        inter[f"{prefix}d4"] = d
        feats, fgs, bgs = [d], [], []
        if self.dual:
            fgs.append(self.ConvBlock4_fg(d))
            bgs.append(self.ConvBlock4_bg(d))
        for k, skip in zip((3, 2, 1), skips):
            up = getattr(self, f"Up{k}")(d)
            gate = getattr(self, f"AG{k}")(up, skip)
            d = self._cam(k, up + gate)
            inter[f"{prefix}ag{k}"], inter[f"{prefix}d{k}"] = gate, d
            feats.append(d)
            if self.dual:
                dsra_stage(self, k, d, fgs, bgs, self.gain)
        if not self.dual:
            return feats
        for k, fg, bg in zip((4, 3, 2, 1), fgs, bgs):
            inter[f"{prefix}d{k}_fg"], inter[f"{prefix}d{k}_bg"] = fg, bg
        return fgs + bgs + [d]


__all__ = ["CascadeDecoder", "ConvBlock", "SpatialAttention", "UpConv", "attention_gate"]
