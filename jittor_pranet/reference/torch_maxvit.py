"""PyTorch twin of :mod:`jittor_pranet.models.encoders.maxvit`: timm's MaxViT "rw" + MLP relative
position encoders as feature extractors, same parameter names, same four outputs.

Written for the parity tests (timm itself is not needed); ``tools/extract_maxvit_official_keys.py
--check`` compares it with the official ``maxxvit_4out`` classes of the MIST / MERIT code.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.encoders.maxvit_specs import (
    HEAD_DIM,
    MAXVIT_SPECS,
    PARTITION_RATIO,
    MaxVitSpec,
    make_divisible,
    relative_log_coords,
    relative_position_index,
)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    def __init__(self, dim: int, value: float, channels_first: bool = False):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), value))
        self.channels_first = channels_first

    def forward(self, x):
        return x * (self.gamma.view(1, -1, 1, 1) if self.channels_first else self.gamma)


def _scale(dim, value, channels_first=False):
    return LayerScale(dim, value, channels_first) if value else nn.Identity()


class BatchNormAct2d(nn.BatchNorm2d):
    def __init__(self, channels: int, act: bool = True):
        super().__init__(channels, eps=1e-5)
        self.apply_act = act

    def forward(self, x):
        y = super().forward(x)
        return F.silu(y) if self.apply_act else y


class LayerNormAct2d(LayerNorm2d):
    def forward(self, x):
        return F.gelu(super().forward(x))


class Downsample2d(nn.Module):
    def __init__(self, dim, dim_out, bias):
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        self.expand = nn.Conv2d(dim, dim_out, 1, bias=bias) if dim != dim_out else nn.Identity()

    def forward(self, x):
        return self.expand(self.pool(x))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, out=None, act="gelu", drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU() if act == "gelu" else nn.ReLU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x):
        return self.fc2(self.drop1(self.act(self.fc1(x))))


class ConvMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduced):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(x.mean((2, 3), keepdim=True)))))


class MbConvBlock(nn.Module):
    def __init__(self, dim, dim_out, stride=1):
        super().__init__()
        mid = make_divisible(dim * 4)
        self.shortcut = Downsample2d(dim, dim_out, False) if stride == 2 else nn.Identity()
        self.pre_norm = BatchNormAct2d(dim, act=False)
        self.conv1_1x1 = nn.Conv2d(dim, mid, 1, bias=False)
        self.norm1 = BatchNormAct2d(mid)
        self.conv2_kxk = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.norm2 = BatchNormAct2d(mid)
        self.se = SqueezeExcite(mid, int(mid / 16))
        self.conv3_1x1 = nn.Conv2d(mid, dim_out, 1, bias=False)

    def forward(self, x):
        shortcut = self.shortcut(x)
        x = self.norm1(self.conv1_1x1(self.pre_norm(x)))
        x = self.se(self.norm2(self.conv2_kxk(x)))
        return self.conv3_1x1(x) + shortcut


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, dim_out, stride=1, layer_scale=1e-6):
        super().__init__()
        if stride == 2:
            self.shortcut = Downsample2d(dim, dim_out, True)
        elif dim != dim_out:
            self.shortcut = nn.Conv2d(dim, dim_out, 1)
        else:
            self.shortcut = nn.Identity()
        self.conv_dw = nn.Conv2d(dim, dim_out, 7, stride, 3, groups=dim)
        self.norm = LayerNorm2d(dim_out, eps=1e-6)
        self.mlp = ConvMlp(dim_out, 4 * dim_out)
        self.ls = _scale(dim_out, layer_scale, True)

    def forward(self, x):
        return self.ls(self.mlp(self.norm(self.conv_dw(x)))) + self.shortcut(x)


class RelPosMlp(nn.Module):
    def __init__(self, window, num_heads, hidden=512):
        super().__init__()
        self.window, self.num_heads = window, num_heads
        self.mlp = Mlp(2, hidden, num_heads, act="relu", drop=0.125)
        self.register_buffer("index", torch.from_numpy(relative_position_index(window).reshape(-1).astype(np.int64)),
                             persistent=False)
        self.register_buffer("coords", torch.from_numpy(relative_log_coords(window)), persistent=False)

    def bias(self):
        t = self.window ** 2
        table = self.mlp(self.coords.to(self.mlp.fc1.weight.dtype))
        return table[self.index].view(t, t, self.num_heads).permute(2, 0, 1).unsqueeze(0)


class AttentionCl(nn.Module):
    def __init__(self, dim, window, head_dim=HEAD_DIM):
        super().__init__()
        self.num_heads, self.head_dim = dim // head_dim, head_dim
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.rel_pos = RelPosMlp(window, self.num_heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, self.num_heads, 3 * self.head_dim).transpose(1, 2).chunk(3, dim=3)
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.rel_pos.bias()
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n, t, c))


def _window_partition(x, w):
    b, h, wd, c = x.shape
    return x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)


def _window_reverse(p, w, h, wd):
    c = p.shape[-1]
    return p.view(-1, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, h, wd, c)


def _grid_partition(x, g):
    b, h, wd, c = x.shape
    return x.view(b, g, h // g, g, wd // g, c).permute(0, 2, 4, 1, 3, 5).reshape(-1, g * g, c)


def _grid_reverse(p, g, h, wd):
    c = p.shape[-1]
    return p.view(-1, h // g, wd // g, g, g, c).permute(0, 3, 1, 4, 2, 5).reshape(-1, h, wd, c)


class PartitionAttentionCl(nn.Module):
    def __init__(self, dim, partition, grid, layer_scale):
        super().__init__()
        self.partition, self.grid = partition, grid
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = AttentionCl(dim, partition)
        self.ls1 = _scale(dim, layer_scale)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = _scale(dim, layer_scale)

    def forward(self, x):
        _, h, w, _ = x.shape
        y, p = self.norm1(x), self.partition
        if self.grid:
            y = _grid_reverse(self.attn(_grid_partition(y, p)), p, h, w)
        else:
            y = _window_reverse(self.attn(_window_partition(y, p)), p, h, w)
        x = x + self.ls1(y)
        return x + self.ls2(self.mlp(self.norm2(x)))


class MaxxVitBlock(nn.Module):
    def __init__(self, dim, dim_out, stride, spec: MaxVitSpec, partition):
        super().__init__()
        self.conv = (ConvNeXtBlock(dim, dim_out, stride, spec.layer_scale) if spec.conv == "convnext"
                     else MbConvBlock(dim, dim_out, stride))
        self.attn_block = PartitionAttentionCl(dim_out, partition, False, spec.layer_scale)
        self.attn_grid = PartitionAttentionCl(dim_out, partition, True, spec.layer_scale)

    def forward(self, x):
        x = self.conv(x).permute(0, 2, 3, 1)
        return self.attn_grid(self.attn_block(x)).permute(0, 3, 1, 2)


class MaxxVitStage(nn.Module):
    def __init__(self, dim, dim_out, depth, spec, partition):
        super().__init__()
        self.blocks = nn.Sequential(*[MaxxVitBlock(dim if i == 0 else dim_out, dim_out, 2 if i == 0 else 1,
                                                   spec, partition) for i in range(depth)])

    def forward(self, x):
        return self.blocks(x)


class Stem(nn.Module):
    def __init__(self, in_chans, widths, spec):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 2, 1, bias=False)
        self.norm1 = LayerNormAct2d(widths[0], eps=1e-6) if spec.conv == "convnext" else BatchNormAct2d(widths[0])
        self.conv2 = nn.Conv2d(widths[0], widths[1], 3, 1, 1, bias=False)

    def forward(self, x):
        return self.conv2(self.norm1(self.conv1(x)))


class MaxxVit(nn.Module):
    """Four stage maps (strides 4..32), the final LayerNorm2d on the last; inputs ``img_size`` square."""

    def __init__(self, spec: MaxVitSpec, img_size: Optional[int] = None, in_chans: int = 3):
        super().__init__()
        self.img_size = int(img_size or spec.img_size)
        partition = self.img_size // PARTITION_RATIO
        self.out_channels = tuple(spec.dims)
        self.stem = Stem(in_chans, spec.stem, spec)
        stages, dim = [], spec.stem[1]
        for dim_out, depth in zip(spec.dims, spec.depths):
            stages.append(MaxxVitStage(dim, dim_out, depth, spec, partition))
            dim = dim_out
        self.stages = nn.Sequential(*stages)
        self.norm = LayerNorm2d(spec.dims[-1], eps=1e-6)

    def forward(self, x) -> List[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats.append(self.norm(x) if i == len(self.stages) - 1 else x)
        return feats


def build_torch_maxvit(name: str, img_size: Optional[int] = None, **kwargs) -> MaxxVit:
    """The twin of ``jittor_pranet.models.encoders.build_encoder(name, img_size=...)`` (random weights)."""
    if name not in MAXVIT_SPECS:
        raise ValueError(f"unknown MaxViT variant {name!r}; choose one of {sorted(MAXVIT_SPECS)}")
    return MaxxVit(MAXVIT_SPECS[name], img_size=img_size, **kwargs)


__all__ = ["MaxxVit", "build_torch_maxvit"]
