"""Cascaded MERIT (Rahman & Marculescu, MIDL 2023) on two small MaxViT encoders, and its DSRA variant.

Two passes share one CASCADE decoder (:mod:`.decoders.cascade`) and one set of heads:

1. ``backbone1`` (``maxxvit_rmlp_small_rw_256``) encodes the input resized to 256; the decoder and
   the heads ``out_head1..4`` (deepest first) give the pass-1 maps; ``sigmoid(out_head4_in(d1))``,
   upsampled x4, is a feedback mask that multiplies the input;
2. ``backbone2`` (``maxvit_rmlp_small_rw_224``) encodes the masked input resized to 224; its
   features plus pass 1's (bilinear-resized to pass 2's sizes) are decoded again.

Output k = pass-1 map upsampled to the input + pass-2 map resized to the same size.  With
``dual=True`` (the official ``MERIT_Cascaded_dual``) the maps are the decoder's DSRA fg/bg heads
``decoder.ConvBlock{k}_fg/_bg``, summed over the passes; ``out_head1..4`` then exist but are unused,
as in the official class (they are in its checkpoints).

Outputs, deepest stage first, each (B, classes, 256, 256), named as in the official code:

* single: ``(p1, p2, p3, p4)``; the official test prediction is ``p1 + p2 + p3 + p4``;
* dual: ``(p1, p2, p3, p4, p1_bg, p2_bg, p3_bg, p4_bg)``; the official test prediction is
  ``(p1 + p2 + p3 + p4) - (p1_bg + p2_bg + p3_bg + p4_bg)``.

Input: square, side ``img_size`` (256) only.  The official forward hands the input to the other
encoder when its side is a multiple of 14, which then fails on the window partition; that branch is
not reproduced: anything but 256x256 is refused with a :class:`~jittor_pranet.errors.UserError`.
Initial weights: PyTorch's defaults outside the encoders (the official classes re-initialise
nothing).  Nothing is loaded from files here.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from ..errors import UserError
from ..ops import BatchNorm2d, Conv2d, jt, resize_bilinear
from .catalog import combine_outputs
from .decoders.cascade import CascadeDecoder
from .encoders import build_encoder
from .weight_init import init_merit_

from jittor import nn

OUTPUTS = ("p1", "p2", "p3", "p4")
DUAL_OUTPUTS = OUTPUTS + ("p1_bg", "p2_bg", "p3_bg", "p4_bg")
#: pass-1 upsampling factors of the four stage maps (deepest first), as official
_FACTORS = (32, 16, 8, 4)


class MERITNet(nn.Module):
    """Official ``MERIT_Cascaded`` (``dual=False``) / ``MERIT_Cascaded_dual`` (``dual=True``).

    ``gain``: the DSRA reverse gain of the dual decoder (``"softmax"`` = official ``use_softmax=True``,
    ``"difference"`` = ``use_softmax=False``, ``"sigmoid"``: see :mod:`.decoders.dsra`).
    """

    def __init__(self, num_classes: int = 9, encoder: str = "maxxvit_rmlp_small_rw_256",
                 encoder2: str = "maxvit_rmlp_small_rw_224", dual: bool = False, gain: str = "softmax",
                 img_size: int = 256, img_size2: int = 224):
        if num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        self.num_classes, self.dual = num_classes, dual
        self.img_size, self.img_size2 = int(img_size), int(img_size2)
        self.encoder_name, self.encoder2_name = encoder, encoder2
        # creation order = state_dict order = the official one
        self.conv = nn.Sequential(Conv2d(1, 3, 1), BatchNorm2d(3), nn.ReLU())
        self.backbone1 = build_encoder(encoder, img_size=self.img_size)
        self.backbone2 = build_encoder(encoder2, img_size=self.img_size2)
        widths1, widths2 = tuple(self.backbone1.out_channels), tuple(self.backbone2.out_channels)
        if widths1 != widths2:
            raise ValueError(f"MERIT adds the two encoders' features: widths differ, {widths1} vs {widths2}")
        channels = list(reversed(widths1))
        self.decoder = CascadeDecoder(channels, dual=dual, num_classes=num_classes, gain=gain)
        for k, c in zip((1, 2, 3, 4), channels):
            setattr(self, f"out_head{k}", Conv2d(c, num_classes, 1))
        self.out_head4_in = Conv2d(channels[3], 1, 1)
        init_merit_(self)

    @property
    def output_names(self) -> Tuple[str, ...]:
        return DUAL_OUTPUTS if self.dual else OUTPUTS

    def _check_input(self, x) -> None:
        h, w = x.shape[2:]
        if h != w or h != self.img_size:
            raise UserError(f"MERIT input must be {self.img_size}x{self.img_size} (square), not {h}x{w}")

    def _stage_maps(self, dec: List["jt.Var"], inter: Dict[str, "jt.Var"], prefix: str):
        """The stage maps (deepest first; dual: fg then bg) and the finest decoder feature ``d1``."""
        if self.dual:
            return list(dec[:8]), dec[8]
        maps = [getattr(self, f"out_head{k}")(d) for k, d in zip((1, 2, 3, 4), dec)]
        for k, p in zip((1, 2, 3, 4), maps):
            inter[f"{prefix}head{k}"] = p
        return maps, dec[3]

    def execute(self, x, return_intermediates: bool = False):
        self._check_input(x)
        if x.shape[1] == 1:
            x = self.conv(x)
        inter: Dict[str, jt.Var] = {}
        s1, s2 = self.img_size, self.img_size2
        f1 = self.backbone1.forward_features(resize_bilinear(x, (s1, s1)))
        for i, f in enumerate(f1):
            inter[f"pass1.x{i + 1}"] = f
        maps1, d1 = self._stage_maps(self.decoder(f1[3], [f1[2], f1[1], f1[0]], inter, "pass1."), inter, "pass1.")
        # scale_factor forms of the official code as explicit sizes (identical for these exact ratios)
        maps1 = [resize_bilinear(p, (p.shape[2] * _FACTORS[i % 4], p.shape[3] * _FACTORS[i % 4]))
                 for i, p in enumerate(maps1)]
        feedback = jt.sigmoid(self.out_head4_in(d1))
        feedback = resize_bilinear(feedback, (feedback.shape[2] * 4, feedback.shape[3] * 4))
        inter["feedback"] = feedback
        f2 = self.backbone2.forward_features(resize_bilinear(x * feedback, (s2, s2)))
        for i, f in enumerate(f2):
            inter[f"pass2.x{i + 1}"] = f
        fused = [b + resize_bilinear(a, b.shape[2:]) for a, b in zip(f1, f2)]
        dec2 = self.decoder(fused[3], [fused[2], fused[1], fused[0]], inter, "pass2.")
        maps2, _ = self._stage_maps(dec2, inter, "pass2.")
        outs = tuple(p1 + resize_bilinear(p2, p1.shape[2:]) for p1, p2 in zip(maps1, maps2))
        return (outs, inter) if return_intermediates else outs


def merit_prediction_logits(model_or_dual, outputs):
    """The logits the official test arg-maxes: single ``p1 + .. + p4``; dual ``sum(fg) - sum(bg)``."""
    dual = model_or_dual if isinstance(model_or_dual, bool) else model_or_dual.dual
    return combine_outputs("sum_fg_minus_bg" if dual else "sum_all", outputs)


def decoder_parameter_count(model: MERITNet) -> int:
    """Learnable parameters of ``model.decoder`` only."""
    return sum(int(p.numel()) for n, p in model.decoder.named_parameters()
               if not n.endswith(("running_mean", "running_var")))


__all__ = ["DUAL_OUTPUTS", "MERITNet", "OUTPUTS", "decoder_parameter_count", "merit_prediction_logits"]
