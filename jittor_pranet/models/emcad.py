"""EMCAD (Rahman et al., CVPR 2024) on a PVTv2 encoder, and its PraNet-V2 DSRA variant.

The decoder refines the deepest encoder map stage by stage (1/32 -> 1/4):

* MSCAM = channel attention (CAB) x spatial attention (SAB) x multi-scale conv block (MSCB: 1x1
  expansion, parallel depth-wise convolutions of kernel sizes [1, 3, 5] summed, channel shuffle,
  1x1 projection, residual);
* EUCB = nearest x2 upsampling, depth-wise 3x3 conv, 1x1 conv to the next stage's width;
* LGAG = grouped-conv attention gate on the skip connection, added to the upsampled map.

``emcad_b2`` has a 1x1 head per stage (``out_head4..1``).  ``emcad_b2_dsra`` (the official
``EMCADNet(dual=True)`` of PraNet-V2) has per-stage fg/bg heads ``decoder.ConvBlock{k}_fg/_bg``
(conv + BN, 1x1 at stage 4, 3x3 elsewhere) refined with the DSRA reverse gain of :mod:`.dsra`;
its ``out_head1..4`` exist but are unused, as in the official class (they are in its checkpoints).

Parameter names are those of the official state_dicts; the hyper-parameters are those of the
official training script (expansion factor 2, MSCB activation relu6, parallel depth-wise convs
summed, LGAG kernel 3), not the decoder class defaults.  Outputs, deepest stage first, each
resized to the input size (official: ``scale_factor`` 32/16/8/4, identical for the multiple-of-32
inputs the architecture accepts):

* ``emcad_b2``: ``(p4, p3, p2, p1)``; the official test prediction is ``p1`` (the last one);
* ``emcad_b2_dsra``: ``(p4, p3, p2, p1, p4_bg, p3_bg, p2_bg, p1_bg)``; the official test
  prediction is ``p4 + p3 + p2 + p1``.
"""
from __future__ import annotations

from math import gcd
from typing import Dict, List, Sequence

from ..errors import UserError
from ..ops import GELU, BatchNorm2d, Conv2d, jt, resize_bilinear
from .dsra import GAIN_MODES, dsra_fuse
from .layers import BasicConv2d
from .pvtv2 import PVT_VARIANTS
from .weight_init import init_emcad_

from jittor import nn

OUTPUTS = ("p4", "p3", "p2", "p1")
DUAL_OUTPUTS = OUTPUTS + ("p4_bg", "p3_bg", "p2_bg", "p1_bg")

#: what the trainer/CLI need to know about each registered EMCAD model
MODEL_FACTS: Dict[str, dict] = {
    "emcad_b2": dict(family="emcad", dual=False, outputs=OUTPUTS, default_size=224, default_num_classes=9,
                     prediction="last", encoder="pvt_v2_b2"),
    "emcad_b2_dsra": dict(family="emcad", dual=True, outputs=DUAL_OUTPUTS, default_size=224,
                          default_num_classes=9, prediction="sum_fg", encoder="pvt_v2_b2"),
}

ACTIVATIONS = ("relu", "relu6", "leakyrelu", "gelu")


def activation(name: str) -> nn.Module:
    name = name.lower()
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "leakyrelu":
        return nn.LeakyReLU(0.2)
    if name == "gelu":
        return GELU()
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def channel_shuffle(x: "jt.Var", groups: int) -> "jt.Var":
    """ShuffleNet's channel interleave: [g][c/g] -> [c/g][g]. Identity (skipped) when either is 1."""
    b, c, h, w = x.shape
    per_group = c // groups
    if groups == 1 or per_group == 1:
        return x
    return x.reshape(b, groups, per_group, h, w).transpose(0, 2, 1, 3, 4).reshape(b, c, h, w)


class NearestUpsample2x(nn.Module):
    """``nn.Upsample(scale_factor=2)`` (nearest): output pixel (i, j) reads input (i // 2, j // 2)."""

    def execute(self, x):
        n, c, h, w = x.shape
        return x.reindex([n, c, 2 * h, 2 * w], ["i0", "i1", "i2/2", "i3/2"])


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
                p_fg = getattr(self, f"ConvBlock{k}_fg")(d)
                p_bg = getattr(self, f"ConvBlock{k}_bg")(d)
                fg, bg = dsra_fuse(p_fg, p_bg, fgs[-1], bgs[-1], self.gain)
                fgs.append(fg)
                bgs.append(bg)
        if self.dual:
            for k, fg, bg in zip((4, 3, 2, 1), fgs, bgs):
                inter[f"d{k}_fg"], inter[f"d{k}_bg"] = fg, bg
            return fgs + bgs
        return feats


class EMCADNet(nn.Module):
    """Official ``EMCADNet``: 1->3 channel stem for grayscale input, PVTv2 encoder, EMCAD decoder.

    ``dual=True`` selects the DSRA decoder (fg/bg heads per stage); ``out_head4..1`` are then
    unused but kept, as in the official class.  Inputs must be multiples of 32 in height and width
    (each stage's x2 upsampling must meet the next skip exactly, as in the official code).
    """

    def __init__(self, num_classes: int = 9, encoder: str = "pvt_v2_b2", dual: bool = False,
                 kernel_sizes: Sequence[int] = (1, 3, 5), expansion_factor: float = 2, dw_parallel: bool = True,
                 add: bool = True, lgag_ks: int = 3, activation: str = "relu6", gain: str = "softmax",
                 drop_path_rate: float = 0.1):
        if num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        if encoder not in PVT_VARIANTS:
            raise ValueError(f"unknown encoder {encoder!r} for EMCAD; choose one of {sorted(PVT_VARIANTS)}")
        self.num_classes, self.dual, self.encoder_name = num_classes, dual, encoder
        self.conv = nn.Sequential(Conv2d(1, 3, 1), BatchNorm2d(3), nn.ReLU())
        self.backbone = PVT_VARIANTS[encoder](drop_path_rate=drop_path_rate)
        channels = list(reversed(self.backbone.out_channels))
        self.decoder = EMCADDecoder(channels, kernel_sizes, expansion_factor, dw_parallel, add, lgag_ks, activation,
                                    dual=dual, num_classes=num_classes, gain=gain)
        for k, c in zip((4, 3, 2, 1), channels):
            setattr(self, f"out_head{k}", Conv2d(c, num_classes, 1))
        init_emcad_(self)

    @property
    def output_names(self):
        return DUAL_OUTPUTS if self.dual else OUTPUTS

    def execute(self, x, return_intermediates: bool = False):
        h, w = x.shape[2:]
        if h % 32 or w % 32:
            raise UserError(f"EMCAD input size must be a multiple of 32 in height and width, got {h}x{w}")
        if x.shape[1] == 1:
            x = self.conv(x)
        inter: Dict[str, jt.Var] = {}
        x1, x2, x3, x4 = self.backbone.forward_features(x)
        inter.update(x1=x1, x2=x2, x3=x3, x4=x4)
        dec = self.decoder(x4, [x3, x2, x1], inter)
        if not self.dual:
            dec = [getattr(self, f"out_head{k}")(d) for k, d in zip((4, 3, 2, 1), dec)]
            for k, p in zip((4, 3, 2, 1), dec):
                inter[f"head{k}"] = p
        outs = tuple(resize_bilinear(t, (h, w)) for t in dec)
        return (outs, inter) if return_intermediates else outs


def emcad_prediction_logits(model_or_dual, outputs):
    """The logits the official test script arg-maxes: dual -> ``p4 + p3 + p2 + p1``, else ``p1``."""
    dual = model_or_dual if isinstance(model_or_dual, bool) else getattr(model_or_dual, "dual", len(outputs) == 8)
    if dual:
        return outputs[0] + outputs[1] + outputs[2] + outputs[3]
    return outputs[-1]


def decoder_parameter_count(model: EMCADNet) -> int:
    """Learnable parameters of ``model.decoder`` only (the number the EMCAD paper reports)."""
    return sum(int(p.numel()) for n, p in model.decoder.named_parameters()
               if not n.endswith(("running_mean", "running_var")))
