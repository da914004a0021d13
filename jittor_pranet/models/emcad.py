"""EMCAD (Rahman et al., CVPR 2024) on a PVTv2 encoder, and its PraNet-V2 DSRA variant.

The decoder refines the deepest encoder map stage by stage (1/32 -> 1/4):

* MSCAM = channel attention (CAB) x spatial attention (SAB) x multi-scale conv block (MSCB: 1x1
  expansion, parallel depth-wise convolutions of kernel sizes [1, 3, 5] summed, channel shuffle,
  1x1 projection, residual);
* EUCB = nearest x2 upsampling, depth-wise 3x3 conv, 1x1 conv to the next stage's width;
* LGAG = grouped-conv attention gate on the skip connection, added to the upsampled map.

``emcad_b2`` has a 1x1 head per stage (``out_head4..1``).  ``emcad_b2_dsra`` (the official
``EMCADNet(dual=True)`` of PraNet-V2) has per-stage fg/bg heads ``decoder.ConvBlock{k}_fg/_bg``
(conv + BN, 1x1 at stage 4, 3x3 elsewhere) refined with the DSRA reverse gain of :mod:`.decoders.dsra`;
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

from typing import Dict, Sequence

from ..errors import UserError
from ..ops import BatchNorm2d, Conv2d, jt, resize_bilinear
from .catalog import EMCAD_DUAL_OUTPUTS, EMCAD_OUTPUTS, combine_outputs, row
from .decoders.emcad import EMCADDecoder
from .encoders import build_encoder
from .weight_init import init_emcad_

from jittor import nn

OUTPUTS, DUAL_OUTPUTS = EMCAD_OUTPUTS, EMCAD_DUAL_OUTPUTS
_INPUT = row("emcad_b2").input
_ENCODERS = row("emcad_b2").encoders


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
        if encoder not in _ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r} for EMCAD; choose one of {sorted(_ENCODERS)}")
        self.num_classes, self.dual, self.encoder_name = num_classes, dual, encoder
        self.conv = nn.Sequential(Conv2d(1, 3, 1), BatchNorm2d(3), nn.ReLU())
        self.backbone = build_encoder(encoder, drop_path_rate=drop_path_rate)
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
        problem = _INPUT.problem(h, w)
        if problem:
            raise UserError(f"EMCAD input size {problem}")
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
    dual = model_or_dual if isinstance(model_or_dual, bool) else model_or_dual.dual
    return combine_outputs(row("emcad_b2_dsra" if dual else "emcad_b2").prediction_rule, outputs)


def decoder_parameter_count(model: EMCADNet) -> int:
    """Learnable parameters of ``model.decoder`` only (the number the EMCAD paper reports)."""
    return sum(int(p.numel()) for n, p in model.decoder.named_parameters()
               if not n.endswith(("running_mean", "running_var")))
