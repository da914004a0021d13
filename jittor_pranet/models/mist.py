"""MIST (Rahman & Marculescu) on a MaxxViT encoder, and its PraNet-V2 DSRA variant (official ``MIST_CAM``).

A 1->3 channel stem (conv 1x1 + BN + ReLU, used for grayscale input), the MaxxViT-rmlp encoder
``backbone1`` (maps at 1/4, 1/8, 1/16, 1/32), the ``CAM`` decoder of :mod:`.decoders.mist` and 1x1
heads.  Single: ``out_head1..4`` on the decoder's block 6..9 features (``out_head1`` = deepest).  Dual
(``dual=True``): the decoder's DSRA heads ``decoder.out_head{1-4}_{fg,bg}``; ``out_head1..4`` are then
unused but kept, as in the official class (they are in its checkpoints).

Outputs, deepest first, each bilinearly resized to the input size (official: ``scale_factor``
32/16/8/4, ``align_corners=False``, the same for the fixed input size):

* single: ``(p11, p12, p13, p14)``; the official test prediction is their sum;
* dual: ``(p11, p12, p13, p14, p11_bg, p12_bg, p13_bg, p14_bg)``; the official test prediction is
  ``p11 + p12 + p13 + p14`` (the fg maps).

Input: the official resizes every input to 256 x 256 first; this model instead requires a square
``img_size`` x ``img_size`` input (the encoder's window partition and the decoder's attention are built
for it) and raises :class:`~jittor_pranet.errors.UserError` otherwise.  Dropout acts in training only
(the official's is active in eval too): see :mod:`.decoders.mist`.
"""
from __future__ import annotations

from typing import Dict

from ..errors import UserError
from ..ops import BatchNorm2d, Conv2d, jt, resize_bilinear
from .catalog import MIST_DUAL_OUTPUTS, MIST_OUTPUTS
from .decoders.dsra import GAIN_MODES
from .decoders.mist import MISTDecoder
from .encoders import build_encoder
from .weight_init import init_mist_

from jittor import nn

OUTPUTS, DUAL_OUTPUTS = MIST_OUTPUTS, MIST_DUAL_OUTPUTS


class MISTNet(nn.Module):
    """Official ``MIST_CAM``: stem, ``backbone1``, ``decoder`` (CAM), ``out_head1..4`` (state_dict order)."""

    #: the encoder's attribute = the state_dict prefix ImageNet weights are loaded under
    encoder_attr = "backbone1"

    def __init__(self, num_classes: int = 9, encoder: str = "maxxvit_rmlp_small_rw_256", dual: bool = False,
                 gain: str = "softmax", img_size: int = 256, drop_path_rate: float = 0.0):
        if num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        if gain not in GAIN_MODES:
            raise ValueError(f"unknown DSRA gain {gain!r}; choose one of {GAIN_MODES}")
        self.num_classes, self.dual, self.encoder_name, self.img_size = num_classes, dual, encoder, img_size
        self.conv = nn.Sequential(Conv2d(1, 3, 1), BatchNorm2d(3), nn.ReLU())
        # drop_path_rate: stochastic depth in the encoder (the official model uses 0)
        self.backbone1 = build_encoder(encoder, img_size=img_size, drop_path_rate=drop_path_rate)
        channels = tuple(self.backbone1.out_channels)
        self.decoder = MISTDecoder(channels, dual=dual, num_classes=num_classes, gain=gain)
        for k, c in zip((1, 2, 3, 4), reversed(channels)):
            setattr(self, f"out_head{k}", Conv2d(c, num_classes, 1))
        init_mist_(self)

    @property
    def output_names(self):
        return DUAL_OUTPUTS if self.dual else OUTPUTS

    def execute(self, x, return_intermediates: bool = False):
        h, w = x.shape[2:]
        if (h, w) != (self.img_size, self.img_size):
            raise UserError(f"MIST input must be {self.img_size}x{self.img_size} (square, fixed), got {h}x{w}")
        if x.shape[1] == 1:
            x = self.conv(x)
        inter: Dict[str, jt.Var] = {}
        x1, x2, x3, x4 = self.backbone1.forward_features(x)
        inter.update(x1=x1, x2=x2, x3=x3, x4=x4)
        dec = self.decoder(x1, x2, x3, x4, inter)
        if not self.dual:
            dec = [getattr(self, f"out_head{k}")(d) for k, d in zip((1, 2, 3, 4), dec)]
            for k, p in zip((1, 2, 3, 4), dec):
                inter[f"head{k}"] = p
        outs = tuple(resize_bilinear(t, (h, w)) for t in dec)
        return (outs, inter) if return_intermediates else outs


def decoder_parameter_count(model: nn.Module) -> int:
    """Learnable parameters of ``model.decoder`` (or of a bare decoder)."""
    decoder = getattr(model, "decoder", model)
    return sum(int(p.numel()) for _, p in decoder.named_parameters())
