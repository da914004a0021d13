"""EMCAD's decoder (Rahman et al., CVPR 2024) and its blocks, optionally with DSRA's fg/bg heads.

MSCAM = channel attention (CAB) x spatial attention (SAB) x multi-scale conv block (MSCB); EUCB =
nearest x2 upsampling, depth-wise conv, 1x1 conv; LGAG = grouped-conv attention gate on the skip.
Names are those of the official modules (see :mod:`jittor_pranet.models.emcad`).
"""
from __future__ import annotations

from math import gcd
from typing import Dict, List, Sequence

from ...ops import BatchNorm2d, Conv2d, jt
from ..layers.activation import activation, channel_shuffle
from ..layers.attention import CAB, SAB
from ..layers.conv import BasicConv2d, NearestUpsample2x
from .dsra import GAIN_MODES, dsra_stage

from jittor import nn


class MSDC(nn.Module):
    """Depth-wise conv + BN + activation per kernel size; in series mode each adds onto the input."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int], stride: int, act: str, dw_parallel: bool):
        self.dw_parallel = dw_parallel
        self.dwconvs = nn.ModuleList([
            nn.Sequential(Conv2d(channels, channels, k, stride, k // 2, groups=channels, bias=False),
                          BatchNorm2d(channels), activation(act))
            for k in kernel_sizes])

    def execute(self, x) -> List["jt.Var"]:
        outs = []
        for branch in self.dwconvs:
            y = branch(x)
            outs.append(y)
            if not self.dw_parallel:
                x = x + y
        return outs


class MSCB(nn.Module):
    """Multi-scale convolution block: expand (1x1), MSDC, sum or concat, shuffle, project (1x1), skip."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_sizes: Sequence[int],
                 expansion_factor: float, dw_parallel: bool, add: bool, act: str):
        if stride not in (1, 2):
            raise ValueError(f"MSCB stride must be 1 or 2, got {stride}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_skip = stride == 1
        self.sum_scales = add
        ex = int(in_channels * expansion_factor)
        self.pconv1 = nn.Sequential(Conv2d(in_channels, ex, 1, 1, 0, bias=False), BatchNorm2d(ex), activation(act))
        self.msdc = MSDC(ex, kernel_sizes, stride, act, dw_parallel)
        self.combined_channels = ex if add else ex * len(kernel_sizes)
        self.pconv2 = nn.Sequential(Conv2d(self.combined_channels, out_channels, 1, 1, 0, bias=False),
                                    BatchNorm2d(out_channels))
        if self.use_skip and in_channels != out_channels:
            self.conv1x1 = Conv2d(in_channels, out_channels, 1, 1, 0, bias=False)

    def execute(self, x):
        outs = self.msdc(self.pconv1(x))
        if self.sum_scales:
            d = outs[0]
            for o in outs[1:]:
                d = d + o
        else:
            d = jt.concat(outs, dim=1)
        d = channel_shuffle(d, gcd(self.combined_channels, self.out_channels))
        out = self.pconv2(d)
        if not self.use_skip:
            return out
        if self.in_channels != self.out_channels:
            x = self.conv1x1(x)
        return x + out


def mscb_layer(in_channels: int, out_channels: int, n: int = 1, stride: int = 1, **kw) -> nn.Sequential:
    """``n`` MSCBs in sequence (the official decoder uses n = 1: names ``mscbK.0.*``)."""
    blocks = [MSCB(in_channels, out_channels, stride, **kw)]
    blocks += [MSCB(out_channels, out_channels, 1, **kw) for _ in range(1, n)]
    return nn.Sequential(*blocks)


class EUCB(nn.Module):
    """Efficient up-convolution: nearest x2, depth-wise conv + BN + ReLU, 1x1 conv (with bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        self.in_channels = in_channels
        self.up_dwc = nn.Sequential(
            NearestUpsample2x(),
            Conv2d(in_channels, in_channels, kernel_size, stride, kernel_size // 2, groups=in_channels, bias=False),
            BatchNorm2d(in_channels), nn.ReLU())
        self.pwc = nn.Sequential(Conv2d(in_channels, out_channels, 1, 1, 0, bias=True))

    def execute(self, x):
        # the official shuffle uses groups = channels: one channel per group, a no-op
        return self.pwc(channel_shuffle(self.up_dwc(x), self.in_channels))


class LGAG(nn.Module):
    """Large-kernel grouped attention gate: ``x * sigmoid(BN(conv(relu(W_g g + W_x x))))``."""

    def __init__(self, f_g: int, f_l: int, f_int: int, kernel_size: int = 3, groups: int = 1):
        if kernel_size == 1:
            groups = 1
        pad = kernel_size // 2
        self.W_g = nn.Sequential(Conv2d(f_g, f_int, kernel_size, 1, pad, groups=groups, bias=True),
                                 BatchNorm2d(f_int))
        self.W_x = nn.Sequential(Conv2d(f_l, f_int, kernel_size, 1, pad, groups=groups, bias=True),
                                 BatchNorm2d(f_int))
        self.psi = nn.Sequential(Conv2d(f_int, 1, 1, 1, 0, bias=True), BatchNorm2d(1), nn.Sigmoid())
        self.activation = nn.ReLU()

    def execute(self, g, x):
        return x * self.psi(self.activation(self.W_g(g) + self.W_x(x)))


class EMCADDecoder(nn.Module):
    """The official ``EMCAD`` (``dual=False``) or ``EMCAD_dual`` (``dual=True``) decoder.

    ``channels`` runs deepest first (PVTv2-B2: 512, 320, 128, 64).  One SAB is shared by all stages.
    """

    def __init__(self, channels: Sequence[int] = (512, 320, 128, 64), kernel_sizes: Sequence[int] = (1, 3, 5),
                 expansion_factor: float = 2, dw_parallel: bool = True, add: bool = True, lgag_ks: int = 3,
                 activation: str = "relu6", dual: bool = False, num_classes: int = 9, gain: str = "softmax"):
        if gain not in GAIN_MODES:
            raise ValueError(f"unknown DSRA gain {gain!r}; choose one of {GAIN_MODES}")
        self.dual, self.gain = dual, gain
        c4, c3, c2, c1 = channels
        mkw = dict(kernel_sizes=list(kernel_sizes), expansion_factor=expansion_factor, dw_parallel=dw_parallel,
                   add=add, act=activation)
        # creation order = state_dict order = the official one
        self.mscb4 = mscb_layer(c4, c4, **mkw)
        for k, (cin, cout) in zip((3, 2, 1), ((c4, c3), (c3, c2), (c2, c1))):
            setattr(self, f"eucb{k}", EUCB(cin, cout, 3, 1))
            setattr(self, f"lgag{k}", LGAG(cout, cout, cout // 2, lgag_ks, cout // 2))
            setattr(self, f"mscb{k}", mscb_layer(cout, cout, **mkw))
        for k, c in zip((4, 3, 2, 1), channels):
            setattr(self, f"cab{k}", CAB(c))
        self.sab = SAB()
        if dual:
            for k, c in zip((4, 3, 2, 1), channels):
                ks = 1 if k == 4 else 3
                setattr(self, f"ConvBlock{k}_fg", BasicConv2d(c, num_classes, ks, padding=ks // 2))
                setattr(self, f"ConvBlock{k}_bg", BasicConv2d(c, num_classes, ks, padding=ks // 2))

    def _mscam(self, k: int, d):
        d = getattr(self, f"cab{k}")(d) * d
        d = self.sab(d) * d
        return getattr(self, f"mscb{k}")(d)

    def execute(self, x, skips: Sequence["jt.Var"], inter: Dict[str, "jt.Var"]):
        """``x``: deepest encoder map; ``skips``: the 1/16, 1/8, 1/4 maps.  Returns the stage
        features ``[d4, d3, d2, d1]`` or, dual, ``[p4_fg .. p1_fg, p4_bg .. p1_bg]`` (fused fg)."""
        d = self._mscam(4, x)
        inter["d4"] = d
        feats, fgs, bgs = [d], [], []
        if self.dual:
            fgs.append(self.ConvBlock4_fg(d))
            bgs.append(self.ConvBlock4_bg(d))
        for k, skip in zip((3, 2, 1), skips):
            up = getattr(self, f"eucb{k}")(d)
            gate = getattr(self, f"lgag{k}")(up, skip)
            d = self._mscam(k, up + gate)
            inter[f"lgag{k}"], inter[f"d{k}"] = gate, d
            feats.append(d)
            if self.dual:
                dsra_stage(self, k, d, fgs, bgs, self.gain)
        if self.dual:
            for k, fg, bg in zip((4, 3, 2, 1), fgs, bgs):
                inter[f"d{k}_fg"], inter[f"d{k}_bg"] = fg, bg
            return fgs + bgs
        return feats
