"""PraNet-V1 (reverse attention) and PraNet-V2 (DSRA) on Res2Net-v1b or PVTv2 encoders.

Attribute names follow the official PyTorch classes so official state_dicts load unchanged:
V1/Res2Net keeps its encoder under ``resnet``; the other three under ``backbone``.  Outputs are in
the official order and all at the input resolution:

* V1: ``(lateral_map_5, lateral_map_4, lateral_map_3, lateral_map_2)``
* V2: ``(fg2, fg3, fg4, fg5, bg2, bg3, bg4, bg5)``

All resizes target explicit sizes; for inputs that are multiples of 32 (the official protocol)
this equals the official ``scale_factor`` calls, and other sizes still work.
"""
from __future__ import annotations

from typing import Dict, List

from ..ops import BatchNorm2d, Conv2d, jt, resize_bilinear
from .catalog import encoder_family
from .decoders.dsra import GAIN_MODES, dsra_fuse
from .decoders.pranet import Aggregation, RFB_modified, run_stage, stage_convs
from .encoders import build_encoder
from .layers.conv import BasicConv2d
from .weight_init import init_pranet_decoder_

from jittor import nn


class _PraNetBase(nn.Module):
    encoder_attr = "backbone"

    def _init_common(self, encoder: str, channel: int, drop_path_rate: float):
        family = encoder_family(encoder)
        kw = {"drop_path_rate": drop_path_rate} if family is not None and family.drop_path else {}
        enc = build_encoder(encoder, **kw)
        setattr(self, self.encoder_attr, enc)
        self.encoder_name = encoder
        c2, c3, c4 = enc.out_channels[1:]
        self.channels = (c2, c3, c4)
        self.rfb2_1 = RFB_modified(c2, channel)
        self.rfb3_1 = RFB_modified(c3, channel)
        self.rfb4_1 = RFB_modified(c4, channel)

    def encode(self, x) -> List["jt.Var"]:
        return getattr(self, self.encoder_attr).forward_features(x)

    def _rfb(self, feats, inter):
        x1, x2, x3, x4 = feats
        inter.update(x1=x1, x2=x2, x3=x3, x4=x4)
        r2, r3, r4 = self.rfb2_1(x2), self.rfb3_1(x3), self.rfb4_1(x4)
        inter.update(x2_rfb=r2, x3_rfb=r3, x4_rfb=r4)
        return r2, r3, r4


class PraNetV1(_PraNetBase):
    """PraNet-V1: partial decoder then three reverse-attention stages ``(1 - sigmoid(prev)) * F``."""

    num_outputs = 4
    dual = False

    def __init__(self, encoder: str = "res2net50_v1b_26w_4s", channel: int = 32, num_classes: int = 1,
                 drop_path_rate: float = 0.1):
        if num_classes != 1:
            raise ValueError("PraNet-V1 is binary only (num_classes=1); use a PraNet-V2 model for more classes")
        # the official PraNet-V1 keeps a Res2Net encoder under ``resnet``
        family = encoder_family(encoder)
        self.encoder_attr = "resnet" if family is not None and family.name == "res2net" else "backbone"
        self.num_classes = 1
        self._init_common(encoder, channel, drop_path_rate)
        c2, c3, c4 = self.channels
        # creation order = state_dict order = the official one
        self.agg1 = Aggregation(channel, dual=False)
        stage_convs(self, "ra4", c4, 256, 5, 3)
        self.ra4_conv5 = BasicConv2d(256, 1, 1)
        stage_convs(self, "ra3", c3, 64, 3, 2)
        self.ra3_conv4 = BasicConv2d(64, 1, 3, padding=1)
        stage_convs(self, "ra2", c2, 64, 3, 2)
        self.ra2_conv4 = BasicConv2d(64, 1, 3, padding=1)
        init_pranet_decoder_(self)

    def _reverse_stage(self, prefix: str, head: str, n: int, prev, feat):
        crop = resize_bilinear(prev, feat.shape[2:])
        x = (1 - jt.sigmoid(crop)) * feat
        x = getattr(self, head)(run_stage(self, prefix, x, n))
        return x + crop

    def execute(self, x, return_intermediates: bool = False):
        size = x.shape[2:]
        inter: Dict[str, jt.Var] = {}
        feats = self.encode(x)
        r2, r3, r4 = self._rfb(feats, inter)
        _, x2, x3, x4 = feats
        ra5 = self.agg1(r4, r3, r2)
        ra4 = self._reverse_stage("ra4", "ra4_conv5", 3, ra5, x4)
        ra3 = self._reverse_stage("ra3", "ra3_conv4", 2, ra4, x3)
        ra2 = self._reverse_stage("ra2", "ra2_conv4", 2, ra3, x2)
        inter.update(ra5_feat=ra5, ra4_out=ra4, ra3_out=ra3, ra2_out=ra2)
        outs = tuple(resize_bilinear(t, size) for t in (ra5, ra4, ra3, ra2))
        return (outs, inter) if return_intermediates else outs


class PraNetV2(_PraNetBase):
    """PraNet-V2: partial decoder with fg/bg heads, then three DSRA stages (see :mod:`.dsra`)."""

    num_outputs = 8
    dual = True

    def __init__(self, encoder: str = "res2net50_v1b_26w_4s", channel: int = 32, num_classes: int = 1,
                 gain: str = "softmax", drop_path_rate: float = 0.1):
        if num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        if gain not in GAIN_MODES:
            raise ValueError(f"unknown DSRA gain {gain!r}; choose one of {GAIN_MODES}")
        self.num_classes = num_classes
        self.gain = gain
        # Unused 1->3 channel stem of the official classes (in their state_dicts). Like the official
        # PVT variant we apply it to single-channel inputs.
        self.conv = nn.Sequential(Conv2d(1, 3, 1), BatchNorm2d(3), nn.ReLU())
        self._init_common(encoder, channel, drop_path_rate)
        c2, c3, c4 = self.channels
        # creation order = state_dict order = the official one
        self.agg1 = Aggregation(channel, num_classes, dual=True)
        stage_convs(self, "ra4", c4, 256, 5, 3)
        self.ra4_conv5_fg = BasicConv2d(256, num_classes, 1)
        self.ra4_conv5_bg = BasicConv2d(256, num_classes, 1)
        stage_convs(self, "ra3", c3, 64, 3, 2)
        self.ra3_conv4_fg = BasicConv2d(64, num_classes, 3, padding=1)
        self.ra3_conv4_bg = BasicConv2d(64, num_classes, 3, padding=1)
        stage_convs(self, "ra2", c2, 64, 3, 2)
        self.ra2_conv4_fg = BasicConv2d(64, num_classes, 3, padding=1)
        self.ra2_conv4_bg = BasicConv2d(64, num_classes, 3, padding=1)
        init_pranet_decoder_(self)

    def _dsra_stage(self, prefix: str, head: str, n: int, feat, deeper_fg, deeper_bg):
        h = run_stage(self, prefix, feat, n)
        p_fg, p_bg = getattr(self, f"{head}_fg")(h), getattr(self, f"{head}_bg")(h)
        return dsra_fuse(p_fg, p_bg, deeper_fg, deeper_bg, self.gain)

    def execute(self, x, return_intermediates: bool = False):
        if x.shape[1] == 1:
            x = self.conv(x)
        size = x.shape[2:]
        inter: Dict[str, jt.Var] = {}
        feats = self.encode(x)
        r2, r3, r4 = self._rfb(feats, inter)
        _, x2, x3, x4 = feats
        fg5, bg5 = self.agg1(r4, r3, r2)
        fg4, bg4 = self._dsra_stage("ra4", "ra4_conv5", 3, x4, fg5, bg5)
        fg3, bg3 = self._dsra_stage("ra3", "ra3_conv4", 2, x3, fg4, bg4)
        fg2, bg2 = self._dsra_stage("ra2", "ra2_conv4", 2, x2, fg3, bg3)
        inter.update(ra5_feat_fg=fg5, ra5_feat_bg=bg5, ra4_feat_fg=fg4, ra4_feat_bg=bg4,
                     ra3_feat_fg=fg3, ra3_feat_bg=bg3, ra2_feat_fg=fg2, ra2_feat_bg=bg2)
        outs = tuple(resize_bilinear(t, size) for t in (fg2, fg3, fg4, fg5, bg2, bg3, bg4, bg5))
        return (outs, inter) if return_intermediates else outs


def prediction_logits(model, outputs):
    """The map the official test scripts turn into a prediction: V2 sums fg2..fg5, V1 takes lateral_map_2."""
    from .registry import prediction_logits as by_rule

    return by_rule(model, outputs)
