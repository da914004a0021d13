"""Plain-PyTorch reference of EMCAD / EMCAD + DSRA and of the multi-class training loss (parity only).

Written from the official PraNet-V2 ``multiclass_seg/EMCAD`` code (``EMCADNet``, ``EMCAD``,
``EMCAD_dual``, ``trainer.py``, ``utils.DiceLoss``) with the same module names, so that its
state_dict keys and shapes are the official ones (checked against a key list extracted from the
official classes, ``tests/fixtures/emcad_official_keys.json``) and its forward performs the official
operations in the official order, including:

* EUCB upsamples with ``nn.Upsample(scale_factor=2)`` (nearest) and shuffles with one channel per
  group (a no-op); MSCB shuffles the summed depth-wise outputs with ``gcd(2c, c) = c`` groups;
* one ``sab`` is shared by all four stages;
* the dual decoder fuses ``fg + fg * softmax(up(deeper_fg) - up(deeper_bg))`` with
  ``F.interpolate(size=...)`` and keeps the stage-4 maps unfused;
* outputs are upsampled with ``F.interpolate(scale_factor=32/16/8/4, mode="bilinear")``;
* MSDC, MSCB, EUCB, LGAG, CAB and SAB end their constructors with the official
  ``init_weights('normal')`` (conv normal(0, 0.02), zero bias), so a twin built from scratch starts
  from the official distribution (the DSRA heads, stem and ``out_head*`` keep PyTorch's defaults);
* the loss loops over the 15 non-empty subsets of the four outputs in the official powerset order,
  summing logits from an initial ``0.0``.

The PVTv2 encoder is :func:`jittor_pranet.reference.torch_models.pvt_v2` (official names).
"""
from __future__ import annotations

from math import gcd
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .torch_models import BasicConv2d, pvt_v2

__all__ = ["EMCADNet", "EMCADDecoder", "build_torch_emcad", "TORCH_EMCAD", "powerset", "DiceLoss",
           "multiclass_dsra_loss", "multiclass_loss", "inverted_one_hot"]

_PVT = {f"pvt_v2_{v}": v for v in ("b0", "b1", "b2", "b3", "b4", "b5")}


def _act(name: str) -> nn.Module:
    if name == "leakyrelu":
        return nn.LeakyReLU(0.2)
    return {"relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU}[name]()


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


def _init_normal(module: nn.Module) -> None:
    """The official ``init_weights('normal')`` each decoder block ends its constructor with: every
    Conv2d normal(0, 0.02) with a zero bias, every BatchNorm weight 1 / bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class MSDC(nn.Module):
    def __init__(self, channels, kernel_sizes, stride, act, dw_parallel):
        super().__init__()
        self.dw_parallel = dw_parallel
        self.dwconvs = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels, channels, k, stride, k // 2, groups=channels, bias=False),
                          nn.BatchNorm2d(channels), _act(act))
            for k in kernel_sizes])
        _init_normal(self)

    def forward(self, x):
        outs = []
        for branch in self.dwconvs:
            y = branch(x)
            outs.append(y)
            if not self.dw_parallel:
                x = x + y
        return outs


class MSCB(nn.Module):
    def __init__(self, cin, cout, stride, kernel_sizes, expansion_factor, dw_parallel, add, act):
        super().__init__()
        self.cin, self.cout, self.stride, self.add = cin, cout, stride, add
        ex = int(cin * expansion_factor)
        self.pconv1 = nn.Sequential(nn.Conv2d(cin, ex, 1, 1, 0, bias=False), nn.BatchNorm2d(ex), _act(act))
        self.msdc = MSDC(ex, kernel_sizes, stride, act, dw_parallel)
        self.combined = ex if add else ex * len(kernel_sizes)
        self.pconv2 = nn.Sequential(nn.Conv2d(self.combined, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout))
        if stride == 1 and cin != cout:
            self.conv1x1 = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)
        _init_normal(self)

    def forward(self, x):
        outs = self.msdc(self.pconv1(x))
        if self.add:
            d = 0
            for o in outs:
                d = d + o
        else:
            d = torch.cat(outs, dim=1)
        out = self.pconv2(_shuffle(d, gcd(self.combined, self.cout)))
        if self.stride != 1:
            return out
        if self.cin != self.cout:
            x = self.conv1x1(x)
        return x + out


class EUCB(nn.Module):
    def __init__(self, cin, cout, kernel_size=3, stride=1):
        super().__init__()
        self.cin = cin
        self.up_dwc = nn.Sequential(nn.Upsample(scale_factor=2),
                                    nn.Conv2d(cin, cin, kernel_size, stride, kernel_size // 2, groups=cin, bias=False),
                                    nn.BatchNorm2d(cin), nn.ReLU())
        self.pwc = nn.Sequential(nn.Conv2d(cin, cout, 1, 1, 0, bias=True))
        _init_normal(self)

    def forward(self, x):
        return self.pwc(_shuffle(self.up_dwc(x), self.cin))


class LGAG(nn.Module):
    def __init__(self, f_g, f_l, f_int, kernel_size=3, groups=1):
        super().__init__()
        groups = 1 if kernel_size == 1 else groups
        p = kernel_size // 2
        self.W_g = nn.Sequential(nn.Conv2d(f_g, f_int, kernel_size, 1, p, groups=groups, bias=True),
                                 nn.BatchNorm2d(f_int))
        self.W_x = nn.Sequential(nn.Conv2d(f_l, f_int, kernel_size, 1, p, groups=groups, bias=True),
                                 nn.BatchNorm2d(f_int))
        self.psi = nn.Sequential(nn.Conv2d(f_int, 1, 1, 1, 0, bias=True), nn.BatchNorm2d(1), nn.Sigmoid())
        self.activation = nn.ReLU()
        _init_normal(self)

    def forward(self, g, x):
        return x * self.psi(self.activation(self.W_g(g) + self.W_x(x)))


class CAB(nn.Module):
    def __init__(self, cin, ratio=16):
        super().__init__()
        ratio = min(ratio, cin)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.activation = nn.ReLU()
        self.fc1 = nn.Conv2d(cin, cin // ratio, 1, bias=False)
        self.fc2 = nn.Conv2d(cin // ratio, cin, 1, bias=False)
        self.sigmoid = nn.Sigmoid()
        _init_normal(self)

    def forward(self, x):
        a = self.fc2(self.activation(self.fc1(self.avg_pool(x))))
        m = self.fc2(self.activation(self.fc1(self.max_pool(x))))
        return self.sigmoid(a + m)


class SAB(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.sigmoid = nn.Sigmoid()
        _init_normal(self)

    def forward(self, x):
        pooled = torch.cat([torch.mean(x, dim=1, keepdim=True), torch.max(x, dim=1, keepdim=True)[0]], dim=1)
        return self.sigmoid(self.conv(pooled))


class EMCADDecoder(nn.Module):
    """``EMCAD`` (dual=False) / ``EMCAD_dual`` (dual=True); module names and order as official."""

    def __init__(self, channels=(512, 320, 128, 64), kernel_sizes=(1, 3, 5), expansion_factor=2, dw_parallel=True,
                 add=True, lgag_ks=3, activation="relu6", dual=False, num_classes=9):
        super().__init__()
        self.dual = dual
        c = list(channels)
        kw = dict(kernel_sizes=list(kernel_sizes), expansion_factor=expansion_factor, dw_parallel=dw_parallel,
                  add=add, act=activation)
        self.mscb4 = nn.Sequential(MSCB(c[0], c[0], 1, **kw))
        self.eucb3 = EUCB(c[0], c[1])
        self.lgag3 = LGAG(c[1], c[1], c[1] // 2, lgag_ks, c[1] // 2)
        self.mscb3 = nn.Sequential(MSCB(c[1], c[1], 1, **kw))
        self.eucb2 = EUCB(c[1], c[2])
        self.lgag2 = LGAG(c[2], c[2], c[2] // 2, lgag_ks, c[2] // 2)
        self.mscb2 = nn.Sequential(MSCB(c[2], c[2], 1, **kw))
        self.eucb1 = EUCB(c[2], c[3])
        self.lgag1 = LGAG(c[3], c[3], c[3] // 2, lgag_ks, c[3] // 2)
        self.mscb1 = nn.Sequential(MSCB(c[3], c[3], 1, **kw))
        self.cab4, self.cab3, self.cab2, self.cab1 = CAB(c[0]), CAB(c[1]), CAB(c[2]), CAB(c[3])
        self.sab = SAB()
        if dual:
            self.ConvBlock4_fg = BasicConv2d(c[0], num_classes, kernel_size=1)
            self.ConvBlock4_bg = BasicConv2d(c[0], num_classes, kernel_size=1)
            self.ConvBlock3_fg = BasicConv2d(c[1], num_classes, kernel_size=3, padding=1)
            self.ConvBlock3_bg = BasicConv2d(c[1], num_classes, kernel_size=3, padding=1)
            self.ConvBlock2_fg = BasicConv2d(c[2], num_classes, kernel_size=3, padding=1)
            self.ConvBlock2_bg = BasicConv2d(c[2], num_classes, kernel_size=3, padding=1)
            self.ConvBlock1_fg = BasicConv2d(c[3], num_classes, kernel_size=3, padding=1)
            self.ConvBlock1_bg = BasicConv2d(c[3], num_classes, kernel_size=3, padding=1)

    def _mscam(self, k, d):
        d = getattr(self, f"cab{k}")(d) * d
        d = self.sab(d) * d
        return getattr(self, f"mscb{k}")(d)

    def forward(self, x, skips, inter: Dict[str, torch.Tensor]):
        d4 = self._mscam(4, x)
        inter["d4"] = d4
        if self.dual:
            fg, bg = self.ConvBlock4_fg(d4), self.ConvBlock4_bg(d4)
            fgs, bgs = [fg], [bg]
        d, feats = d4, [d4]
        for k, skip in zip((3, 2, 1), skips):
            up = getattr(self, f"eucb{k}")(d)
            if self.dual:
                up_fg = F.interpolate(fgs[-1], size=up.shape[2:], mode="bilinear")
                up_bg = F.interpolate(bgs[-1], size=up.shape[2:], mode="bilinear")
            gate = getattr(self, f"lgag{k}")(g=up, x=skip)
            d = self._mscam(k, up + gate)
            inter[f"lgag{k}"], inter[f"d{k}"] = gate, d
            feats.append(d)
            if self.dual:
                fg = getattr(self, f"ConvBlock{k}_fg")(d)
                bg = getattr(self, f"ConvBlock{k}_bg")(d)
                fg = fg + fg.mul(F.softmax(up_fg - up_bg, dim=1))
                fgs.append(fg)
                bgs.append(bg)
        if self.dual:
            for k, f, b in zip((4, 3, 2, 1), fgs, bgs):
                inter[f"d{k}_fg"], inter[f"d{k}_bg"] = f, b
            return fgs + bgs
        return feats


class EMCADNet(nn.Module):
    """Official ``EMCADNet`` (PVTv2 encoders; no pretrained-file loading here)."""

    def __init__(self, num_classes=9, kernel_sizes=(1, 3, 5), expansion_factor=2, dw_parallel=True, add=True,
                 lgag_ks=3, activation="relu6", encoder="pvt_v2_b2", dual=False, drop_path_rate=0.1):
        super().__init__()
        self.dual = dual
        self.conv = nn.Sequential(nn.Conv2d(1, 3, kernel_size=1), nn.BatchNorm2d(3), nn.ReLU())
        self.backbone = pvt_v2(_PVT[encoder], drop_path_rate=drop_path_rate)
        channels = list(reversed(self.backbone.embed_dims))
        self.decoder = EMCADDecoder(channels, kernel_sizes, expansion_factor, dw_parallel, add, lgag_ks, activation,
                                    dual=dual, num_classes=num_classes)
        self.out_head4 = nn.Conv2d(channels[0], num_classes, 1)
        self.out_head3 = nn.Conv2d(channels[1], num_classes, 1)
        self.out_head2 = nn.Conv2d(channels[2], num_classes, 1)
        self.out_head1 = nn.Conv2d(channels[3], num_classes, 1)

    def forward(self, x, return_intermediates: bool = False):
        if x.shape[1] == 1:
            x = self.conv(x)
        x1, x2, x3, x4 = self.backbone(x)
        inter = dict(x1=x1, x2=x2, x3=x3, x4=x4)
        dec = self.decoder(x4, [x3, x2, x1], inter)
        if not self.dual:
            dec = [self.out_head4(dec[0]), self.out_head3(dec[1]), self.out_head2(dec[2]), self.out_head1(dec[3])]
            for k, p in zip((4, 3, 2, 1), dec):
                inter[f"head{k}"] = p
        factors = (32, 16, 8, 4)
        outs = [F.interpolate(p, scale_factor=factors[i % 4], mode="bilinear") for i, p in enumerate(dec)]
        return (outs, inter) if return_intermediates else outs


TORCH_EMCAD = {"emcad_b2": False, "emcad_b2_dsra": True}


def build_torch_emcad(name: str, num_classes: int = 9, **kw) -> EMCADNet:
    if name not in TORCH_EMCAD:
        raise ValueError(f"unknown EMCAD model {name!r}; choose from {sorted(TORCH_EMCAD)}")
    return EMCADNet(num_classes=num_classes, dual=TORCH_EMCAD[name], **kw)


# --------------------------------------------------------------------------------------- the loss
def powerset(seq: Sequence[int]):
    """All subsets in the official generator's order (the empty one included)."""
    if len(seq) <= 1:
        yield list(seq)
        yield []
    else:
        for rest in powerset(seq[1:]):
            yield [seq[0]] + rest
            yield rest


class DiceLoss(nn.Module):
    """Official ``utils.DiceLoss``: per class ``1 - (2 sum(p t) + 1e-5) / (sum(p^2) + sum(t^2) + 1e-5)``
    over the whole batch, averaged over all classes (background included)."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, inputs, target, weight=None, softmax=False):
        if softmax:
            inputs = torch.softmax(inputs, dim=1)
        onehot = torch.cat([(target == i).unsqueeze(1) for i in range(self.n_classes)], dim=1).to(inputs.dtype)
        weight = [1] * self.n_classes if weight is None else weight
        loss = 0.0
        for i in range(self.n_classes):
            s, t = inputs[:, i], onehot[:, i]
            dice = 1 - (2 * torch.sum(s * t) + 1e-5) / (torch.sum(s * s) + torch.sum(t * t) + 1e-5)
            loss += dice * weight[i]
        return loss / self.n_classes


def inverted_one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The official background mask: channel c is 1 where the label is not c (uint8)."""
    onehot = torch.zeros((labels.shape[0], num_classes) + tuple(labels.shape[1:]), dtype=torch.uint8)
    onehot.scatter_(1, labels.long().unsqueeze(1), 1)
    return torch.logical_not(onehot).to(torch.uint8)


def multiclass_dsra_loss(outputs: List[torch.Tensor], labels: torch.Tensor, num_classes: int,
                         weights=(0.5, 0.7, 0.3)) -> torch.Tensor:
    """Official dual loss: every non-empty subset of the 4 outputs, 0.5 CE + 0.7 Dice + 0.3 BCE(bg)."""
    ce, dice, bce = nn.CrossEntropyLoss(), DiceLoss(num_classes), nn.BCEWithLogitsLoss()
    labels_f = labels.to(outputs[0].dtype)
    bg_mask = inverted_one_hot(labels, num_classes).to(outputs[0].dtype)
    p_fg, p_bg = outputs[:4], outputs[-4:]
    loss = 0.0
    for s in powerset(list(range(4))):
        if not s:
            continue
        fg, bg = 0.0, 0.0
        for i in s:
            fg += p_fg[i]
            bg += p_bg[i]
        loss += (weights[0] * ce(fg, labels_f.long()) + weights[1] * dice(fg, labels_f, softmax=True)
                 + weights[2] * bce(bg, bg_mask))
    return loss


def multiclass_loss(outputs: List[torch.Tensor], labels: torch.Tensor, num_classes: int,
                    weights=(0.3, 0.7)) -> torch.Tensor:
    """Official single-supervision loss: every non-empty subset, 0.3 CE + 0.7 Dice."""
    ce, dice = nn.CrossEntropyLoss(), DiceLoss(num_classes)
    labels_f = labels.to(outputs[0].dtype)
    loss = 0.0
    for s in powerset(list(range(len(outputs)))):
        if not s:
            continue
        p = 0.0
        for i in s:
            p += outputs[i]
        loss += weights[0] * ce(p, labels_f.long()) + weights[1] * dice(p, labels_f, softmax=True)
    return loss
