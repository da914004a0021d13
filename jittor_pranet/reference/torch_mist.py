"""Plain-PyTorch twin of MIST (PraNet-V2 ``multiclass_seg/MIST``: ``MIST_CAM`` + decoder ``CAM``), parity only.

Written from the official ``lib/networks.py`` and ``lib/MIST.py`` with the official module names, so
its state_dict keys and their order are the official ones, and its forward performs the official
operations in the official order: LayerNorms on channels-last views (eps 1e-5), ``nn.Upsample
(scale_factor=2)`` (nearest), ``torch.cat((skip, x))``, ``nn.MultiheadAttention(batch_first=True)``
fed by depth-wise-conv q/k/v, ``F.max_pool2d(2)`` in the bottleneck, the unused ``conv3`` of each up
block, the DSRA heads fused with ``F.interpolate(size=..., mode="bilinear")`` and the outputs
upsampled with ``scale_factor`` 32/16/8/4.  Differences, the same as in the Jittor model
(:mod:`jittor_pranet.models.decoders.mist`): dropout only in training mode (the official applies it in
eval too), the attention output reshaped to H x W (the official: sqrt(HW) squared), and no resizing of
the input (the official resizes to 256; here it must already be ``img_size`` square).

With weights shared, this decoder equals the official ``CAM`` (official dropout disabled): see
``tests/reference/test_mist_parity.py`` for the measured difference.  Initial weights are PyTorch's defaults, as
in the official code (no scheme of its own).  The MaxViT encoder comes from
:func:`jittor_pranet.reference.torch_maxvit.build_torch_maxvit`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MISTDecoder", "MISTNet", "build_torch_mist", "TORCH_MIST", "decoder_heads", "decoder_widths"]

OFFICIAL_HEADS = (16, 12, 8, 4, 2)
BLOCK_DROPOUT = 0.3
WIDE_FOCUS_DROPOUT = 0.1


def decoder_widths(c: Sequence[int]):
    return 2 * c[3], c[3], c[2], c[1], c[0]


def decoder_heads(widths: Sequence[int]):
    return tuple(max(h for h in range(1, cap + 1) if w % h == 0) for w, cap in zip(widths, OFFICIAL_HEADS))


def _ln(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Attention(nn.Module):
    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        self.conv_q = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
        self.layernorm_q = nn.LayerNorm(channels, eps=1e-5)
        self.conv_k = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
        self.layernorm_k = nn.LayerNorm(channels, eps=1e-5)
        self.conv_v = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
        self.layernorm_v = nn.LayerNorm(channels, eps=1e-5)
        self.attention = nn.MultiheadAttention(embed_dim=channels, num_heads=num_heads, bias=True, batch_first=True)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = (_ln(norm, F.relu(conv(x))).reshape(b, c, h * w).permute(0, 2, 1)
                   for conv, norm in ((self.conv_q, self.layernorm_q), (self.conv_k, self.layernorm_k),
                                      (self.conv_v, self.layernorm_v)))
        out = self.attention(query=q, key=k, value=v, need_weights=False)[0]
        return out.permute(0, 2, 1).reshape(b, c, h, w)


class Dilated_Conv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, padding=1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, padding=2, dilation=2)
        self.conv3 = nn.Conv2d(cin, cout, 3, 1, padding=3, dilation=3)
        self.conv4 = nn.Conv2d(cin, cout, 3, 1, padding=1)

    def _branch(self, conv, x):
        return F.dropout(F.gelu(conv(x)), WIDE_FOCUS_DROPOUT, training=self.training)

    def forward(self, x):
        added = self._branch(self.conv1, x) + self._branch(self.conv2, x) + self._branch(self.conv3, x)
        return self._branch(self.conv4, added)


class Transformer(nn.Module):
    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        self.attention_output = Attention(channels, num_heads)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, padding=1)
        self.layernorm = nn.LayerNorm(channels, eps=1e-5)
        self.wide_focus = Dilated_Conv(channels, channels)

    def forward(self, x):
        x2 = self.conv1(self.attention_output(x)) + x
        return x2 + self.wide_focus(_ln(self.layernorm, x2))


class Block_encoder_bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, num_heads: int):
        super().__init__()
        self.layernorm = nn.LayerNorm(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1)
        self.trans = Transformer(cout, num_heads)

    def forward(self, x):
        x1 = F.relu(self.conv1(_ln(self.layernorm, x)))
        x1 = F.dropout(F.relu(self.conv2(x1)), BLOCK_DROPOUT, training=self.training)
        return self.trans(F.max_pool2d(x1, (2, 2)))


class Block_decoder(nn.Module):
    def __init__(self, cin: int, cout: int, num_heads: int):
        super().__init__()
        self.layernorm = nn.LayerNorm(cin, eps=1e-5)
        self.upsample = nn.Upsample(scale_factor=2)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, padding=1)
        self.conv2 = nn.Conv2d(cout * 2, cout, 3, 1, padding=1)
        self.conv3 = nn.Conv2d(cout, cout, 3, 1, padding=1)  # unused, as official
        self.trans = Transformer(cout, num_heads)

    def forward(self, x, skip):
        x1 = F.relu(self.conv1(self.upsample(_ln(self.layernorm, x))))
        x1 = F.relu(self.conv2(torch.cat((skip, x1), dim=1)))
        return self.trans(F.dropout(x1, BLOCK_DROPOUT, training=self.training))


class MISTDecoder(nn.Module):
    """Official ``CAM`` (``dual=True``: with ``out_head{1-4}_{fg,bg}``); ``encoder_channels`` shallow first."""

    def __init__(self, encoder_channels=(96, 192, 384, 768), dual: bool = False, num_classes: int = 9,
                 heads: Optional[Sequence[int]] = None):
        super().__init__()
        self.dual = dual
        w = decoder_widths(encoder_channels)
        h = tuple(heads) if heads is not None else decoder_heads(w)
        self.block_5 = Block_encoder_bottleneck(encoder_channels[3], w[0], h[0])
        self.block_6 = Block_decoder(w[0], w[1], h[1])
        self.block_7 = Block_decoder(w[1], w[2], h[2])
        self.block_8 = Block_decoder(w[2], w[3], h[3])
        self.block_9 = Block_decoder(w[3], w[4], h[4])
        if dual:
            for side in ("fg", "bg"):
                for k in (1, 2, 3, 4):
                    setattr(self, f"out_head{k}_{side}", nn.Conv2d(w[k], num_classes, 1))

    def forward(self, skip1, skip2, skip3, skip4, inter: Optional[Dict[str, torch.Tensor]] = None) -> List:
        inter = {} if inter is None else inter
        x = self.block_5(skip4)
        inter["d5"] = x
        feats = []
        for blk, name, skip in ((self.block_6, "d4", skip4), (self.block_7, "d3", skip3),
                                (self.block_8, "d2", skip2), (self.block_9, "d1", skip1)):
            x = blk(x, skip)
            inter[name] = x
            feats.append(x)
        if not self.dual:
            return feats
        fgs, bgs = [], []
        for k, (name, d) in enumerate(zip(("d4", "d3", "d2", "d1"), feats), start=1):
            fg = getattr(self, f"out_head{k}_fg")(d)
            bg = getattr(self, f"out_head{k}_bg")(d)
            if fgs:
                up_fg = F.interpolate(fgs[-1], size=d.shape[2:], mode="bilinear")
                up_bg = F.interpolate(bgs[-1], size=d.shape[2:], mode="bilinear")
                fg = fg + fg.mul(F.softmax(up_fg - up_bg, dim=1))
            inter[f"{name}_fg"], inter[f"{name}_bg"] = fg, bg
            fgs.append(fg)
            bgs.append(bg)
        return fgs + bgs


def _build_encoder(name: str, img_size: int) -> nn.Module:
    from .torch_maxvit import build_torch_maxvit

    return build_torch_maxvit(name, img_size=img_size)


class MISTNet(nn.Module):
    """Official ``MIST_CAM``: 1->3 stem for grayscale input, MaxViT encoder, ``CAM`` decoder, heads."""

    def __init__(self, num_classes: int = 9, encoder: str = "maxxvit_rmlp_small_rw_256", dual: bool = False,
                 img_size: int = 256):
        super().__init__()
        self.dual, self.img_size = dual, img_size
        self.conv = nn.Sequential(nn.Conv2d(1, 3, kernel_size=1), nn.BatchNorm2d(3), nn.ReLU(inplace=True))
        self.backbone1 = _build_encoder(encoder, img_size)
        c = tuple(self.backbone1.out_channels)
        self.decoder = MISTDecoder(c, dual=dual, num_classes=num_classes)
        for k, ch in zip((1, 2, 3, 4), reversed(c)):
            setattr(self, f"out_head{k}", nn.Conv2d(ch, num_classes, 1))

    def forward(self, x, return_intermediates: bool = False):
        if tuple(x.shape[2:]) != (self.img_size, self.img_size):
            raise ValueError(f"MIST input must be {self.img_size}x{self.img_size}, got {tuple(x.shape[2:])}")
        if x.shape[1] == 1:
            x = self.conv(x)
        f = self.backbone1(x)
        inter = dict(x1=f[0], x2=f[1], x3=f[2], x4=f[3])
        dec = self.decoder(f[0], f[1], f[2], f[3], inter)
        if not self.dual:
            dec = [getattr(self, f"out_head{k}")(d) for k, d in zip((1, 2, 3, 4), dec)]
            for k, p in zip((1, 2, 3, 4), dec):
                inter[f"head{k}"] = p
        factors = (32, 16, 8, 4)
        outs = [F.interpolate(p, scale_factor=factors[i % 4], mode="bilinear") for i, p in enumerate(dec)]
        return (outs, inter) if return_intermediates else outs


TORCH_MIST = {"mist": False, "mist_dsra": True}


def build_torch_mist(name: str, num_classes: int = 9, **kw) -> MISTNet:
    if name not in TORCH_MIST:
        raise ValueError(f"unknown MIST model {name!r}; choose from {sorted(TORCH_MIST)}")
    return MISTNet(num_classes=num_classes, dual=TORCH_MIST[name], **kw)
