"""Plain-PyTorch reference versions of the PraNet family (no timm, no torchvision).

Everything here exists so that the Jittor port can be checked against the official PyTorch code:

* module attribute names reproduce the official ``state_dict`` keys and shapes exactly, so official
  checkpoints (and the ImageNet backbone files) load into these classes, and
  :func:`state_dict_numpy` hands the very same tensors to the Jittor models;
* the forward passes perform the same operations in the same order as upstream (including
  its quirks, listed below), so with shared weights the outputs agree to float rounding.

Upstream behaviour that is reproduced on purpose
------------------------------------------------
* ``BasicConv2d`` is conv (no bias) + BN.  It owns a ``relu`` module that its forward never calls,
  hence the aggregation block and the RFB branches contain no ReLU except the one after the RFB sum.
* The aggregation block upsamples with ``align_corners=True``; every other resize is
  ``F.interpolate(scale_factor=s, mode="bilinear")`` with the default ``align_corners=False``.  The
  0.25 down-scale is therefore a 2-tap bilinear sample (mean of source pixels 4i+1 and 4i+2), not an
  area average.
* Res2Net-v1b 'stage' blocks push their last split through ``AvgPool2d(3, stride, padding=1)`` with
  ``count_include_pad=True`` (even in ``layer1`` where the stride is 1, which blurs and darkens the
  borders of that split); the shortcut starts with ``AvgPool2d(stride, stride, ceil_mode=True,
  count_include_pad=False)``.
* In PVTv2 the block norms and the four stage norms use ``eps=1e-6``, but the patch-embedding norms
  and the spatial-reduction norm inside the attention use ``nn.LayerNorm``'s default ``eps=1e-5``.
* PraNet-V2's fusion is ``fg + fg * softmax(crop_fg - crop_bg, dim=1)``; with one class the softmax is
  identically 1, so every fg map is just doubled and the deeper stages do not influence the outputs.
* The V2 models own an unused 1->3 channel stem ``conv``.  Only the PVT variant applies it, and only
  when the input has one channel.
* Input height and width must be multiples of 32: the aggregation doubles the H/32 map and multiplies
  it with the H/16 one, which only lines up then.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "Bottle2neck",
    "Res2NetV1b",
    "res2net50_v1b_26w_4s",
    "res2net101_v1b_26w_4s",
    "DropPath",
    "PyramidVisionTransformerV2",
    "PVT_V2_CONFIGS",
    "pvt_v2",
    "BasicConv2d",
    "RFBModified",
    "Aggregation",
    "PraNetV1Res2Net",
    "PraNetV1PVT",
    "PraNetV2Res2Net",
    "PraNetV2PVT",
    "TORCH_MODELS",
    "build_torch_model",
    "randomize_",
    "state_dict_numpy",
    "load_state_dict_numpy",
]


# ---------------------------------------------------------------------------------------------------
# Res2Net-v1b encoder
# ---------------------------------------------------------------------------------------------------
class Bottle2neck(nn.Module):
    """Res2Net bottleneck: 1x1 reduce, hierarchical 3x3 convs over ``scale`` splits, 1x1 expand."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 base_width: int = 26, scale: int = 4, stype: str = "normal"):
        super().__init__()
        if stype not in ("normal", "stage"):
            raise ValueError(f"stype must be 'normal' or 'stage', got {stype!r}")
        width = int(math.floor(planes * (base_width / 64.0)))
        self.conv1 = nn.Conv2d(inplanes, width * scale, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.nums = 1 if scale == 1 else scale - 1
        if stype == "stage":
            # count_include_pad keeps its default (True), as upstream.
            self.pool = nn.AvgPool2d(kernel_size=3, stride=stride, padding=1)
        self.convs = nn.ModuleList(
            [nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False) for _ in range(self.nums)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(width) for _ in range(self.nums)])
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stype = stype
        self.scale = scale
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        splits = torch.split(y, self.width, 1)
        pieces = []
        sp = None
        for i in range(self.nums):
            # In a 'stage' block every split is processed on its own; otherwise each split also
            # receives the previous split's output.
            sp = splits[i] if (i == 0 or self.stype == "stage") else sp + splits[i]
            sp = self.relu(self.bns[i](self.convs[i](sp)))
            pieces.append(sp)
        if self.scale != 1:
            last = splits[self.nums]
            pieces.append(self.pool(last) if self.stype == "stage" else last)
        y = torch.cat(pieces, 1)

        y = self.bn3(self.conv3(y))
        y = y + (x if self.downsample is None else self.downsample(x))
        return self.relu(y)


class Res2NetV1b(nn.Module):
    """Res2Net-v1b (deep stem, average-pool shortcut).  ``layers=(3, 4, 6, 3)`` is Res2Net-50-v1b-26w-4s.

    The ImageNet classifier (``avgpool`` + ``fc``) is kept so that the official ImageNet files load
    strictly; :meth:`forward_stages` is what the segmentation models use.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), base_width: int = 26, scale: int = 4,
                 num_classes: int = 1000):
        super().__init__()
        self.base_width = base_width
        self.scale = scale
        self.inplanes = 64
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, 1, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 1, 1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_stage(64, layers[0], stride=1)
        self.layer2 = self._make_stage(128, layers[1], stride=2)
        self.layer3 = self._make_stage(256, layers[2], stride=2)
        self.layer4 = self._make_stage(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * Bottle2neck.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out_planes = planes * Bottle2neck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(self.inplanes, out_planes, kernel_size=1, stride=1, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        modules = [Bottle2neck(self.inplanes, planes, stride, downsample=downsample, base_width=self.base_width,
                               scale=self.scale, stype="stage")]
        self.inplanes = out_planes
        for _ in range(1, blocks):
            modules.append(Bottle2neck(self.inplanes, planes, base_width=self.base_width, scale=self.scale))
        return nn.Sequential(*modules)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Outputs of layer1..layer4 (strides 4, 8, 16, 32; 256/512/1024/2048 channels)."""
        x = self.stem(x)
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return x1, x2, x3, x4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x4 = self.forward_stages(x)[3]
        return self.fc(torch.flatten(self.avgpool(x4), 1))


def res2net50_v1b_26w_4s(**kw) -> Res2NetV1b:
    return Res2NetV1b((3, 4, 6, 3), base_width=26, scale=4, **kw)


def res2net101_v1b_26w_4s(**kw) -> Res2NetV1b:
    return Res2NetV1b((3, 4, 23, 3), base_width=26, scale=4, **kw)


_RES2NET_LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


# ---------------------------------------------------------------------------------------------------
# PVTv2 encoder
# ---------------------------------------------------------------------------------------------------
class DropPath(nn.Module):
    """Stochastic depth on the residual branch (per sample), scaled by 1/keep at training time."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if keep > 0.0:
            mask.div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def _pvt_init(m: nn.Module) -> None:
    # Mirrors the upstream initialisation (only relevant when training from scratch).
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class OverlapPatchEmbed(nn.Module):
    """Strided conv patch embedding followed by LayerNorm (default eps, as upstream)."""

    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor):
        x = self.proj(x)
        h, w = x.shape[2], x.shape[3]
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x, h, w


class DWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).view(b, c, h, w))
        return x.flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x), h, w)))
        return self.drop(self.fc2(x))


class Attention(nn.Module):
    """Multi-head attention whose keys/values come from a spatially reduced (strided conv) copy."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, sr_ratio: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)  # default eps (1e-5), unlike the block norms

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        hd = c // self.num_heads
        q = self.q(x).reshape(b, n, self.num_heads, hd).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            red = self.sr(x.permute(0, 2, 1).reshape(b, c, h, w)).reshape(b, c, -1).permute(0, 2, 1)
            src = self.norm(red)
        else:
            src = x
        kv = self.kv(src).reshape(b, -1, 2, self.num_heads, hd).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out))


class PVTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float,
                 attn_drop: float, drop_path: float, sr_ratio: int, ln_eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=ln_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop,
                              sr_ratio=sr_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=ln_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        x = x + self.drop_path(self.mlp(self.norm2(x), h, w))
        return x


PVT_V2_CONFIGS: Dict[str, dict] = {
    "b0": dict(embed_dims=(32, 64, 160, 256), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
               depths=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1)),
    "b1": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
               depths=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1)),
    "b2": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
               depths=(3, 4, 6, 3), sr_ratios=(8, 4, 2, 1)),
    "b3": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
               depths=(3, 4, 18, 3), sr_ratios=(8, 4, 2, 1)),
    "b4": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
               depths=(3, 8, 27, 3), sr_ratios=(8, 4, 2, 1)),
    "b5": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(4, 4, 4, 4),
               depths=(3, 6, 40, 3), sr_ratios=(8, 4, 2, 1)),
}


class PyramidVisionTransformerV2(nn.Module):
    """PVTv2 backbone without classifier head; ``forward`` returns the four NCHW stage maps
    (strides 4, 8, 16, 32)."""

    def __init__(self, embed_dims: Sequence[int] = (64, 128, 320, 512), num_heads: Sequence[int] = (1, 2, 5, 8),
                 mlp_ratios: Sequence[float] = (8, 8, 4, 4), depths: Sequence[int] = (3, 4, 6, 3),
                 sr_ratios: Sequence[int] = (8, 4, 2, 1), qkv_bias: bool = True, in_chans: int = 3,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 ln_eps: float = 1e-6):
        super().__init__()
        self.embed_dims = tuple(embed_dims)
        self.depths = tuple(depths)
        dpr = [v.item() for v in torch.linspace(0, drop_path_rate, sum(depths))]
        cur = 0
        for s in range(4):
            patch, stride = (7, 4) if s == 0 else (3, 2)
            prev = in_chans if s == 0 else embed_dims[s - 1]
            setattr(self, f"patch_embed{s + 1}", OverlapPatchEmbed(patch, stride, prev, embed_dims[s]))
        for s in range(4):
            blocks = nn.ModuleList([
                PVTBlock(embed_dims[s], num_heads[s], mlp_ratios[s], qkv_bias, drop_rate, attn_drop_rate,
                         dpr[cur + i], sr_ratios[s], ln_eps)
                for i in range(depths[s])])
            setattr(self, f"block{s + 1}", blocks)
            setattr(self, f"norm{s + 1}", nn.LayerNorm(embed_dims[s], eps=ln_eps))
            cur += depths[s]
        self.apply(_pvt_init)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        outs = []
        for s in range(1, 5):
            x, h, w = getattr(self, f"patch_embed{s}")(x)
            for blk in getattr(self, f"block{s}"):
                x = blk(x, h, w)
            x = getattr(self, f"norm{s}")(x)
            x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return tuple(outs)

    forward_stages = forward


def pvt_v2(variant: str = "b2", **kw) -> PyramidVisionTransformerV2:
    if variant not in PVT_V2_CONFIGS:
        raise ValueError(f"unknown PVTv2 variant {variant!r}; choose from {sorted(PVT_V2_CONFIGS)}")
    cfg = dict(PVT_V2_CONFIGS[variant])
    cfg.update(kw)
    return PyramidVisionTransformerV2(**cfg)


# ---------------------------------------------------------------------------------------------------
# PraNet building blocks
# ---------------------------------------------------------------------------------------------------
class BasicConv2d(nn.Module):
    """Conv (no bias) + BN.  ``relu`` exists (so module trees match upstream) but is not applied."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size, stride=1, padding=0, dilation=1):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding,
                              dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class RFBModified(nn.Module):
    """Receptive-field block: four branches (1x1; 1xk, kx1, 3x3 dilated k for k = 3, 5, 7), concatenated,
    fused by a 3x3 conv, plus a 1x1 shortcut, then ReLU."""

    def __init__(self, in_channel: int, out_channel: int):
        super().__init__()
        self.relu = nn.ReLU(True)
        self.branch0 = nn.Sequential(BasicConv2d(in_channel, out_channel, 1))
        for idx, k in ((1, 3), (2, 5), (3, 7)):
            p = k // 2
            setattr(self, f"branch{idx}", nn.Sequential(
                BasicConv2d(in_channel, out_channel, 1),
                BasicConv2d(out_channel, out_channel, kernel_size=(1, k), padding=(0, p)),
                BasicConv2d(out_channel, out_channel, kernel_size=(k, 1), padding=(p, 0)),
                BasicConv2d(out_channel, out_channel, 3, padding=k, dilation=k),
            ))
        self.conv_cat = BasicConv2d(4 * out_channel, out_channel, 3, padding=1)
        self.conv_res = BasicConv2d(in_channel, out_channel, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat = torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)
        return self.relu(self.conv_cat(cat) + self.conv_res(x))


class Aggregation(nn.Module):
    """Partial decoder over the three deepest RFB maps; output at the resolution of the shallowest (H/8).

    ``dual=False`` (V1) ends in ``conv5`` (1 channel); ``dual=True`` (V2) ends in ``conv5_fg`` and
    ``conv5_bg`` with ``num_classes`` channels each.  All 1x1 heads have a bias.
    """

    def __init__(self, channel: int, num_classes: int = 1, dual: bool = False):
        super().__init__()
        self.dual = dual
        self.relu = nn.ReLU(True)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv_upsample1 = BasicConv2d(channel, channel, 3, padding=1)
        self.conv_upsample2 = BasicConv2d(channel, channel, 3, padding=1)
        self.conv_upsample3 = BasicConv2d(channel, channel, 3, padding=1)
        self.conv_upsample4 = BasicConv2d(channel, channel, 3, padding=1)
        self.conv_upsample5 = BasicConv2d(2 * channel, 2 * channel, 3, padding=1)
        self.conv_concat2 = BasicConv2d(2 * channel, 2 * channel, 3, padding=1)
        self.conv_concat3 = BasicConv2d(3 * channel, 3 * channel, 3, padding=1)
        self.conv4 = BasicConv2d(3 * channel, 3 * channel, 3, padding=1)
        if dual:
            self.conv5_fg = nn.Conv2d(3 * channel, num_classes, 1)
            self.conv5_bg = nn.Conv2d(3 * channel, num_classes, 1)
        else:
            self.conv5 = nn.Conv2d(3 * channel, num_classes, 1)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor):
        # x1: deepest (H/32), x2: H/16, x3: H/8.
        up = self.upsample
        x2_1 = self.conv_upsample1(up(x1)) * x2
        x3_1 = self.conv_upsample2(up(up(x1))) * self.conv_upsample3(up(x2)) * x3
        x2_2 = self.conv_concat2(torch.cat((x2_1, self.conv_upsample4(up(x1))), 1))
        x3_2 = self.conv_concat3(torch.cat((x3_1, self.conv_upsample5(up(x2_2))), 1))
        x = self.conv4(x3_2)
        if self.dual:
            return self.conv5_fg(x), self.conv5_bg(x)
        return self.conv5(x)


def _up(x: torch.Tensor, s: float) -> torch.Tensor:
    # Upstream resize: scale_factor, bilinear, align_corners left at its default (False).
    return F.interpolate(x, scale_factor=s, mode="bilinear")


def _reverse_attention(crop: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    rev = -1 * torch.sigmoid(crop) + 1
    return rev.expand(-1, feat.shape[1], -1, -1).mul(feat)


# ---------------------------------------------------------------------------------------------------
# PraNet-V1
# ---------------------------------------------------------------------------------------------------
class _PraNetV1(nn.Module):
    """Shared decoder of the V1 models; subclasses create the encoder first (for key order) and
    implement :meth:`encode`."""

    def _build_decoder(self, dims: Sequence[int], channel: int) -> None:
        c2, c3, c4 = dims[1], dims[2], dims[3]
        self.rfb2_1 = RFBModified(c2, channel)
        self.rfb3_1 = RFBModified(c3, channel)
        self.rfb4_1 = RFBModified(c4, channel)
        self.agg1 = Aggregation(channel, 1, dual=False)
        self.ra4_conv1 = BasicConv2d(c4, 256, kernel_size=1)
        self.ra4_conv2 = BasicConv2d(256, 256, kernel_size=5, padding=2)
        self.ra4_conv3 = BasicConv2d(256, 256, kernel_size=5, padding=2)
        self.ra4_conv4 = BasicConv2d(256, 256, kernel_size=5, padding=2)
        self.ra4_conv5 = BasicConv2d(256, 1, kernel_size=1)
        self.ra3_conv1 = BasicConv2d(c3, 64, kernel_size=1)
        self.ra3_conv2 = BasicConv2d(64, 64, kernel_size=3, padding=1)
        self.ra3_conv3 = BasicConv2d(64, 64, kernel_size=3, padding=1)
        self.ra3_conv4 = BasicConv2d(64, 1, kernel_size=3, padding=1)
        self.ra2_conv1 = BasicConv2d(c2, 64, kernel_size=1)
        self.ra2_conv2 = BasicConv2d(64, 64, kernel_size=3, padding=1)
        self.ra2_conv3 = BasicConv2d(64, 64, kernel_size=3, padding=1)
        self.ra2_conv4 = BasicConv2d(64, 1, kernel_size=3, padding=1)

    def encode(self, x: torch.Tensor):
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_intermediates: bool = False):
        x1, x2, x3, x4 = self.encode(x)
        x2_rfb = self.rfb2_1(x2)
        x3_rfb = self.rfb3_1(x3)
        x4_rfb = self.rfb4_1(x4)

        ra5_feat = self.agg1(x4_rfb, x3_rfb, x2_rfb)  # H/8
        lateral_map_5 = _up(ra5_feat, 8)

        crop_4 = _up(ra5_feat, 0.25)  # H/32
        y = self.ra4_conv1(_reverse_attention(crop_4, x4))
        y = F.relu(self.ra4_conv2(y))
        y = F.relu(self.ra4_conv3(y))
        y = F.relu(self.ra4_conv4(y))
        ra4_out = self.ra4_conv5(y) + crop_4
        lateral_map_4 = _up(ra4_out, 32)

        crop_3 = _up(ra4_out, 2)  # H/16
        y = self.ra3_conv1(_reverse_attention(crop_3, x3))
        y = F.relu(self.ra3_conv2(y))
        y = F.relu(self.ra3_conv3(y))
        ra3_out = self.ra3_conv4(y) + crop_3
        lateral_map_3 = _up(ra3_out, 16)

        crop_2 = _up(ra3_out, 2)  # H/8
        y = self.ra2_conv1(_reverse_attention(crop_2, x2))
        y = F.relu(self.ra2_conv2(y))
        y = F.relu(self.ra2_conv3(y))
        ra2_out = self.ra2_conv4(y) + crop_2
        lateral_map_2 = _up(ra2_out, 8)

        outputs = (lateral_map_5, lateral_map_4, lateral_map_3, lateral_map_2)
        if not return_intermediates:
            return outputs
        inter = dict(x1=x1, x2=x2, x3=x3, x4=x4, x2_rfb=x2_rfb, x3_rfb=x3_rfb, x4_rfb=x4_rfb,
                     ra5_feat=ra5_feat, ra4_out=ra4_out, ra3_out=ra3_out, ra2_out=ra2_out)
        return outputs, inter


class PraNetV1Res2Net(_PraNetV1):
    """Official ``PraNet`` (Res2Net-50-v1b-26w-4s encoder under the attribute ``resnet``)."""

    def __init__(self, channel: int = 32, res2net_depth: int = 50):
        super().__init__()
        self.resnet = Res2NetV1b(_RES2NET_LAYERS[res2net_depth])
        self._build_decoder((256, 512, 1024, 2048), channel)

    def encode(self, x):
        return self.resnet.forward_stages(x)


class PraNetV1PVT(_PraNetV1):
    """Official ``PVT_PraNet`` (PVTv2 encoder under the attribute ``backbone``)."""

    def __init__(self, channel: int = 32, pvt_variant: str = "b2", drop_path_rate: float = 0.1):
        super().__init__()
        self.backbone = pvt_v2(pvt_variant, drop_path_rate=drop_path_rate)
        self._build_decoder(self.backbone.embed_dims, channel)

    def encode(self, x):
        return self.backbone(x)


# ---------------------------------------------------------------------------------------------------
# PraNet-V2
# ---------------------------------------------------------------------------------------------------
class _PraNetV2(nn.Module):
    """Shared parts of the V2 models (dual fg/bg heads and the DSRA fusion)."""

    sem_downsample = 1  # upstream constructor argument, fixed to 1 here

    def _build_stem(self, channel: int, num_classes: int, use_softmax: bool) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.channel = channel
        self.num_classes = num_classes
        self.use_softmax = use_softmax
        # Unused 1->3 channel adapter kept for checkpoint compatibility.
        self.conv = nn.Sequential(nn.Conv2d(1, 3, kernel_size=1), nn.BatchNorm2d(3), nn.ReLU(inplace=True))

    def _build_decoder(self, dims: Sequence[int], channel: int, num_classes: int) -> None:
        c2, c3, c4 = dims[1], dims[2], dims[3]
        self.rfb2_1 = RFBModified(c2, channel)
        self.rfb3_1 = RFBModified(c3, channel)
        self.rfb4_1 = RFBModified(c4, channel)
        self.agg1 = Aggregation(channel, num_classes, dual=True)
        self.ra4_conv1 = BasicConv2d(c4, 256, kernel_size=1)
        self.ra4_conv2 = BasicConv2d(256, 256, kernel_size=5, padding=2)
        self.ra4_conv3 = BasicConv2d(256, 256, kernel_size=5, padding=2)
        self.ra4_conv4 = BasicConv2d(256, 256, kernel_size=5, padding=2)
        self.ra4_conv5_fg = BasicConv2d(256, num_classes, kernel_size=1)
        self.ra4_conv5_bg = BasicConv2d(256, num_classes, kernel_size=1)
        self.ra3_conv1 = BasicConv2d(c3, 64, kernel_size=1)
        self.ra3_conv2 = BasicConv2d(64, 64, kernel_size=3, padding=1)
        self.ra3_conv3 = BasicConv2d(64, 64, kernel_size=3, padding=1)
        self.ra3_conv4_fg = BasicConv2d(64, num_classes, kernel_size=3, padding=1)
        self.ra3_conv4_bg = BasicConv2d(64, num_classes, kernel_size=3, padding=1)
        self.ra2_conv1 = BasicConv2d(c2, 64, kernel_size=1)
        self.ra2_conv2 = BasicConv2d(64, 64, kernel_size=3, padding=1)
        self.ra2_conv3 = BasicConv2d(64, 64, kernel_size=3, padding=1)
        self.ra2_conv4_fg = BasicConv2d(64, num_classes, kernel_size=3, padding=1)
        self.ra2_conv4_bg = BasicConv2d(64, num_classes, kernel_size=3, padding=1)

    def encode(self, x: torch.Tensor):
        raise NotImplementedError

    def _fuse(self, fg: torch.Tensor, crop_fg: torch.Tensor, crop_bg: torch.Tensor) -> torch.Tensor:
        if self.use_softmax:
            return fg + fg.mul(F.softmax(crop_fg - crop_bg, dim=1))
        return fg + fg.mul(crop_fg - crop_bg)

    def forward(self, x: torch.Tensor, return_intermediates: bool = False):
        x1, x2, x3, x4 = self.encode(x)
        x2_rfb = self.rfb2_1(x2)
        x3_rfb = self.rfb3_1(x3)
        x4_rfb = self.rfb4_1(x4)
        sd = self.sem_downsample

        ra5_feat_fg, ra5_feat_bg = self.agg1(x4_rfb, x3_rfb, x2_rfb)  # H/8
        map5_fg = _up(ra5_feat_fg, 8 / sd)
        map5_bg = _up(ra5_feat_bg, 8 / sd)

        crop_4_fg = _up(ra5_feat_fg, 0.25)
        crop_4_bg = _up(ra5_feat_bg, 0.25)
        y = self.ra4_conv1(x4)
        y = F.relu(self.ra4_conv2(y))
        y = F.relu(self.ra4_conv3(y))
        y = F.relu(self.ra4_conv4(y))
        ra4_feat_fg = self._fuse(self.ra4_conv5_fg(y), crop_4_fg, crop_4_bg)
        ra4_feat_bg = self.ra4_conv5_bg(y)
        map4_fg = _up(ra4_feat_fg, 32 / sd)
        map4_bg = _up(ra4_feat_bg, 32 / sd)

        crop_3_fg = _up(ra4_feat_fg, 2)
        crop_3_bg = _up(ra4_feat_bg, 2)
        y = self.ra3_conv1(x3)
        y = F.relu(self.ra3_conv2(y))
        y = F.relu(self.ra3_conv3(y))
        ra3_feat_fg = self._fuse(self.ra3_conv4_fg(y), crop_3_fg, crop_3_bg)
        ra3_feat_bg = self.ra3_conv4_bg(y)
        map3_fg = _up(ra3_feat_fg, 16 / sd)
        map3_bg = _up(ra3_feat_bg, 16 / sd)

        crop_2_fg = _up(ra3_feat_fg, 2)
        crop_2_bg = _up(ra3_feat_bg, 2)
        y = self.ra2_conv1(x2)
        y = F.relu(self.ra2_conv2(y))
        y = F.relu(self.ra2_conv3(y))
        ra2_feat_fg = self._fuse(self.ra2_conv4_fg(y), crop_2_fg, crop_2_bg)
        ra2_feat_bg = self.ra2_conv4_bg(y)
        map2_fg = _up(ra2_feat_fg, 8 / sd)
        map2_bg = _up(ra2_feat_bg, 8 / sd)

        outputs = (map2_fg, map3_fg, map4_fg, map5_fg, map2_bg, map3_bg, map4_bg, map5_bg)
        if not return_intermediates:
            return outputs
        inter = dict(x1=x1, x2=x2, x3=x3, x4=x4, x2_rfb=x2_rfb, x3_rfb=x3_rfb, x4_rfb=x4_rfb,
                     ra5_feat_fg=ra5_feat_fg, ra5_feat_bg=ra5_feat_bg,
                     ra4_feat_fg=ra4_feat_fg, ra4_feat_bg=ra4_feat_bg,
                     ra3_feat_fg=ra3_feat_fg, ra3_feat_bg=ra3_feat_bg,
                     ra2_feat_fg=ra2_feat_fg, ra2_feat_bg=ra2_feat_bg)
        return outputs, inter


class PraNetV2Res2Net(_PraNetV2):
    """Official ``PraNet_V2`` (Res2Net-50-v1b-26w-4s encoder under ``backbone``).  The 1->3 stem
    ``conv`` is never applied, as upstream."""

    def __init__(self, channel: int = 32, num_classes: int = 1, use_softmax: bool = True,
                 res2net_depth: int = 50):
        super().__init__()
        self._build_stem(channel, num_classes, use_softmax)
        self.backbone = Res2NetV1b(_RES2NET_LAYERS[res2net_depth])
        self._build_decoder((256, 512, 1024, 2048), channel, num_classes)

    def encode(self, x):
        return self.backbone.forward_stages(x)


class PraNetV2PVT(_PraNetV2):
    """Official ``PVT_PraNet_V2`` (PVTv2-B2 encoder under ``backbone``).  A one-channel input goes
    through the 1->3 stem ``conv`` first, as upstream."""

    def __init__(self, channel: int = 32, num_classes: int = 1, use_softmax: bool = True,
                 pvt_variant: str = "b2", drop_path_rate: float = 0.1):
        super().__init__()
        self._build_stem(channel, num_classes, use_softmax)
        self.backbone = pvt_v2(pvt_variant, drop_path_rate=drop_path_rate)
        self._build_decoder(self.backbone.embed_dims, channel, num_classes)

    def encode(self, x):
        if x.shape[1] == 1:
            x = self.conv(x)
        return self.backbone(x)


# ---------------------------------------------------------------------------------------------------
# Registry and helpers
# ---------------------------------------------------------------------------------------------------
TORCH_MODELS = {
    "pranet_v1_res2net": PraNetV1Res2Net,
    "pranet_v1_pvt": PraNetV1PVT,
    "pranet_v2_res2net": PraNetV2Res2Net,
    "pranet_v2_pvt": PraNetV2PVT,
}


def build_torch_model(name: str, num_classes: int = 1, **kw) -> nn.Module:
    """Instantiate a reference model by registry name.  V1 models only support ``num_classes=1``."""
    if name not in TORCH_MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(TORCH_MODELS)}")
    cls = TORCH_MODELS[name]
    if issubclass(cls, _PraNetV1):
        if num_classes != 1:
            raise ValueError(f"{name} is a single-output model; num_classes must be 1, got {num_classes}")
        return cls(**kw)
    return cls(num_classes=num_classes, **kw)


@torch.no_grad()
def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every parameter and BN buffer of ``model`` deterministically from ``seed``.

    Conv/Linear weights ~ N(0, sqrt(1/fan_in)), their biases ~ N(0, 0.02); BatchNorm weight ~ U(0.5, 1.5),
    bias ~ N(0, 0.1), running_mean ~ N(0, 0.1), running_var ~ U(0.5, 2.0); LayerNorm weight ~ U(0.5, 1.5),
    bias ~ N(0, 0.1); LayerScale ``gamma`` ~ U(0.5, 1.5); MultiheadAttention (packed q/k/v) ``in_proj_weight``
    ~ N(0, sqrt(1/embed_dim)), ``in_proj_bias`` ~ N(0, 0.02) (its ``out_proj`` is a Linear).  Modules are
    visited in ``named_modules`` order, so the result depends only on the architecture and the seed.  A
    parameter owned by any other module type raises ``TypeError``.
    """
    gen = torch.Generator().manual_seed(int(seed))

    def normal(t: torch.Tensor, std: float) -> None:
        t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float32) * std)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=gen, dtype=torch.float32) * (hi - lo) + lo)

    done = set()
    for _, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()  # in_channels/groups * kernel area, or in_features
            normal(m.weight, math.sqrt(1.0 / fan_in))
            if m.bias is not None:
                normal(m.bias, 0.02)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            uniform(m.weight, 0.5, 1.5)
            normal(m.bias, 0.1)
            normal(m.running_mean, 0.1)
            uniform(m.running_var, 0.5, 2.0)
        elif isinstance(m, nn.LayerNorm):
            uniform(m.weight, 0.5, 1.5)
            normal(m.bias, 0.1)
        elif isinstance(m, nn.MultiheadAttention) and m.in_proj_weight is not None:
            normal(m.in_proj_weight, math.sqrt(1.0 / m.embed_dim))
            if m.in_proj_bias is not None:
                normal(m.in_proj_bias, 0.02)
        elif isinstance(getattr(m, "gamma", None), nn.Parameter) and len(list(m.parameters(recurse=False))) == 1:
            uniform(m.gamma, 0.5, 1.5)  # LayerScale: of order 1, so that the scaled branch counts
        else:
            continue
        done.update(id(p) for p in m.parameters(recurse=False))
    missed = [n for n, p in model.named_parameters() if id(p) not in done]
    if missed:
        raise TypeError(f"randomize_ does not know how to initialise: {missed[:5]}")
    return model


def state_dict_numpy(model: nn.Module) -> Dict[str, np.ndarray]:
    """float32 numpy copies of the state_dict, without the ``num_batches_tracked`` counters."""
    return {k: v.detach().cpu().to(torch.float32).numpy().copy()
            for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def load_state_dict_numpy(model: nn.Module, arrays: Dict[str, np.ndarray], strict: bool = True):
    """Inverse of :func:`state_dict_numpy` (``num_batches_tracked`` may be absent)."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    result = model.load_state_dict(tensors, strict=False)
    if strict:
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise KeyError(f"missing keys {missing[:5]}, unexpected keys {result.unexpected_keys[:5]}")
    return result
