"""Plain-PyTorch reference of Cascaded MERIT and its DSRA variant (parity only).

Written from the official PraNet-V2 ``multiclass_seg/MERIT`` code (``MERIT_Cascaded``,
``MERIT_Cascaded_dual``, ``CASCADE_Add``, ``CASCADE_Add_dual``) with the same module names and
creation order, so that its state_dict keys are the official ones, and performing the official
operations in the official order:

* every resize is ``F.interpolate(mode="bilinear")`` with PyTorch's default ``align_corners=False``;
  the pass-1 maps and the feedback map use ``scale_factor=`` (32/16/8/4), everything else ``size=``;
  the up-convolutions use ``nn.Upsample(scale_factor=2)`` (nearest);
* the dual decoder resizes the deeper stage's refined fg and raw bg maps to the up-convolved map's
  size and refines ``fg + fg * softmax(fg_up - bg_up)`` (or ``fg_up - bg_up`` with
  ``use_softmax=False``); stage 4 is unrefined;
* no layer is re-initialised (the official classes keep PyTorch's defaults).

Not reproduced: the official forward swaps the two encoders when the input side is a multiple of
14 (and then fails); here backbone1 always gets the 256 input and backbone2 the 224 one.  The
encoders come from :func:`jittor_pranet.reference.torch_maxvit.build_torch_maxvit`; nothing is
loaded from files.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .torch_models import BasicConv2d

__all__ = ["CascadeDecoder", "MERITNet", "build_torch_merit", "TORCH_MERIT"]


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv(x)


class UpConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, 1, 1, bias=True),
                                nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.up(x)


class AttentionGate(nn.Module):
    def __init__(self, f_g: int, f_l: int, f_int: int):
        super().__init__()
        self.W_g = nn.Sequential(nn.Conv2d(f_g, f_int, 1, 1, 0, bias=True), nn.BatchNorm2d(f_int))
        self.W_x = nn.Sequential(nn.Conv2d(f_l, f_int, 1, 1, 0, bias=True), nn.BatchNorm2d(f_int))
        self.psi = nn.Sequential(nn.Conv2d(f_int, 1, 1, 1, 0, bias=True), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g, x):
        return x * self.psi(self.relu(self.W_g(g) + self.W_x(x)))


class ChannelAttention(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc1 = nn.Conv2d(cin, cin // 16, 1, bias=False)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Conv2d(cin // 16, cin, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        a = self.fc2(self.relu1(self.fc1(self.avg_pool(x))))
        m = self.fc2(self.relu1(self.fc1(self.max_pool(x))))
        return self.sigmoid(a + m)


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        pooled = torch.cat([torch.mean(x, dim=1, keepdim=True), torch.max(x, dim=1, keepdim=True)[0]], dim=1)
        return self.sigmoid(self.conv1(pooled))


class CascadeDecoder(nn.Module):
    """``CASCADE_Add`` (dual=False) / ``CASCADE_Add_dual`` (dual=True); names and order as official."""

    def __init__(self, channels: Sequence[int] = (512, 320, 128, 64), dual: bool = False, num_classes: int = 9,
                 use_softmax: bool = True):
        super().__init__()
        self.dual, self.use_softmax = dual, use_softmax
        c = [int(v) for v in channels]
        self.Conv_1x1 = nn.Conv2d(c[0], c[0], 1, 1, 0)
        self.ConvBlock4 = ConvBlock(c[0], c[0])
        if dual:
            self.ConvBlock4_fg = BasicConv2d(c[0], num_classes, kernel_size=1)
            self.ConvBlock4_bg = BasicConv2d(c[0], num_classes, kernel_size=1)
        self.Up3 = UpConv(c[0], c[1])
        self.AG3 = AttentionGate(c[1], c[1], c[2])
        self.ConvBlock3 = ConvBlock(c[1], c[1])
        if dual:
            self.ConvBlock3_fg = BasicConv2d(c[1], num_classes, kernel_size=3, padding=1)
            self.ConvBlock3_bg = BasicConv2d(c[1], num_classes, kernel_size=3, padding=1)
        self.Up2 = UpConv(c[1], c[2])
        self.AG2 = AttentionGate(c[2], c[2], c[3])
        self.ConvBlock2 = ConvBlock(c[2], c[2])
        if dual:
            self.ConvBlock2_fg = BasicConv2d(c[2], num_classes, kernel_size=3, padding=1)
            self.ConvBlock2_bg = BasicConv2d(c[2], num_classes, kernel_size=3, padding=1)
        self.Up1 = UpConv(c[2], c[3])
        self.AG1 = AttentionGate(c[3], c[3], int(c[3] / 2))
        self.ConvBlock1 = ConvBlock(c[3], c[3])
        if dual:
            self.ConvBlock1_fg = BasicConv2d(c[3], num_classes, kernel_size=3, padding=1)
            self.ConvBlock1_bg = BasicConv2d(c[3], num_classes, kernel_size=3, padding=1)
        self.CA4, self.CA3, self.CA2, self.CA1 = (ChannelAttention(v) for v in c)
        self.SA = SpatialAttention()

    def _cam(self, k: int, d):
        d = getattr(self, f"CA{k}")(d) * d
        d = self.SA(d) * d
        return getattr(self, f"ConvBlock{k}")(d)

    def forward(self, x, skips, inter: Optional[Dict[str, torch.Tensor]] = None, prefix: str = "") -> List:
        inter = {} if inter is None else inter
        d = self._cam(4, self.Conv_1x1(x))
        inter[f"{prefix}d4"] = d
        feats = [d]
        if self.dual:
            fgs, bgs = [self.ConvBlock4_fg(d)], [self.ConvBlock4_bg(d)]
        for k, skip in zip((3, 2, 1), skips):
            up = getattr(self, f"Up{k}")(d)
            if self.dual:
                up_fg = F.interpolate(fgs[-1], size=up.size()[2:], mode="bilinear")
                up_bg = F.interpolate(bgs[-1], size=up.size()[2:], mode="bilinear")
            gate = getattr(self, f"AG{k}")(g=up, x=skip)
            d = self._cam(k, up + gate)
            inter[f"{prefix}ag{k}"], inter[f"{prefix}d{k}"] = gate, d
            feats.append(d)
            if self.dual:
                fg = getattr(self, f"ConvBlock{k}_fg")(d)
                bg = getattr(self, f"ConvBlock{k}_bg")(d)
                gain = F.softmax(up_fg - up_bg, dim=1) if self.use_softmax else up_fg - up_bg
                fgs.append(fg + fg.mul(gain))
                bgs.append(bg)
        if not self.dual:
            return feats
        for k, f, b in zip((4, 3, 2, 1), fgs, bgs):
            inter[f"{prefix}d{k}_fg"], inter[f"{prefix}d{k}_bg"] = f, b
        return fgs + bgs + [d]


def _build_encoder(name: str, img_size: int) -> nn.Module:
    from .torch_maxvit import build_torch_maxvit

    return build_torch_maxvit(name, img_size=img_size)


class MERITNet(nn.Module):
    """Official ``MERIT_Cascaded`` (dual=False) / ``MERIT_Cascaded_dual`` (dual=True), small MaxViTs."""

    def __init__(self, num_classes: int = 9, encoder: str = "maxxvit_rmlp_small_rw_256",
                 encoder2: str = "maxvit_rmlp_small_rw_224", dual: bool = False, use_softmax: bool = True,
                 img_size: int = 256, img_size2: int = 224):
        super().__init__()
        self.dual, self.img_size, self.img_size2 = dual, img_size, img_size2
        self.conv = nn.Sequential(nn.Conv2d(1, 3, kernel_size=1), nn.BatchNorm2d(3), nn.ReLU(inplace=True))
        self.backbone1 = _build_encoder(encoder, img_size)
        self.backbone2 = _build_encoder(encoder2, img_size2)
        c = list(reversed(self.backbone1.out_channels))
        self.decoder = CascadeDecoder(c, dual=dual, num_classes=num_classes, use_softmax=use_softmax)
        self.out_head1 = nn.Conv2d(c[0], num_classes, 1)
        self.out_head2 = nn.Conv2d(c[1], num_classes, 1)
        self.out_head3 = nn.Conv2d(c[2], num_classes, 1)
        self.out_head4 = nn.Conv2d(c[3], num_classes, 1)
        self.out_head4_in = nn.Conv2d(c[3], 1, 1)
        self.sigmoid = nn.Sigmoid()

    def _heads(self, dec, inter, prefix):
        """Stage maps (deepest first, fg then bg when dual) and the finest decoder feature."""
        if self.dual:
            return list(dec[:8]), dec[8]
        maps = [self.out_head1(dec[0]), self.out_head2(dec[1]), self.out_head3(dec[2]), self.out_head4(dec[3])]
        for k, p in zip((1, 2, 3, 4), maps):
            inter[f"{prefix}head{k}"] = p
        return maps, dec[3]

    def forward(self, x, return_intermediates: bool = False):
        if x.size()[1] == 1:
            x = self.conv(x)
        inter: Dict[str, torch.Tensor] = {}
        f1 = self.backbone1(F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear"))
        for i, f in enumerate(f1):
            inter[f"pass1.x{i + 1}"] = f
        dec1 = self.decoder(f1[3], [f1[2], f1[1], f1[0]], inter, "pass1.")
        maps1, d1 = self._heads(dec1, inter, "pass1.")
        feedback = self.sigmoid(self.out_head4_in(d1))
        factors = (32, 16, 8, 4)
        maps1 = [F.interpolate(p, scale_factor=factors[i % 4], mode="bilinear") for i, p in enumerate(maps1)]
        feedback = F.interpolate(feedback, scale_factor=4, mode="bilinear")
        inter["feedback"] = feedback
        x_in = x * feedback
        f2 = self.backbone2(F.interpolate(x_in, size=(self.img_size2, self.img_size2), mode="bilinear"))
        for i, f in enumerate(f2):
            inter[f"pass2.x{i + 1}"] = f
        s = [F.interpolate(a, size=b.shape[-2:], mode="bilinear") for a, b in zip(f1, f2)]
        dec2 = self.decoder(f2[3] + s[3], [f2[2] + s[2], f2[1] + s[1], f2[0] + s[0]], inter, "pass2.")
        maps2, _ = self._heads(dec2, inter, "pass2.")
        outs = [p1 + F.interpolate(p2, size=p1.shape[-2:], mode="bilinear") for p1, p2 in zip(maps1, maps2)]
        return (outs, inter) if return_intermediates else outs


TORCH_MERIT = {"merit_cascaded": False, "merit_cascaded_dsra": True}


def build_torch_merit(name: str, num_classes: int = 9, **kw) -> MERITNet:
    if name not in TORCH_MERIT:
        raise ValueError(f"unknown MERIT model {name!r}; choose from {sorted(TORCH_MERIT)}")
    return MERITNet(num_classes=num_classes, dual=TORCH_MERIT[name], **kw)
