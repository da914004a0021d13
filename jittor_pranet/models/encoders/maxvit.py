"""MaxViT encoders (Tu et al., "MaxViT", ECCV 2022) in timm's "rw" forms, parameter names identical to
timm's ImageNet files and to the official MIST / Cascaded MERIT checkpoints (``backbone1.`` /
``backbone2.``).

Each stage is a stack of MaxViT blocks; a block is a convolution block followed by two channels-last
transformer layers: attention inside non-overlapping ``w x w`` windows ("block"), then attention over
a dilated ``g x g`` grid spanning the whole map ("grid"), each with a pre-LayerNorm MLP.  Two
convolution blocks exist:

* ``maxvit_rmlp_*`` - MBConv: pre-BatchNorm, 1x1 expansion x4, BN + SiLU, depth-wise 3x3 (stride 2 in a
  stage's first block), BN + SiLU, squeeze-excitation (1/16 of the expanded width, SiLU, sigmoid), 1x1
  projection without bias; shortcut: 2x2 average pooling + 1x1 conv.  Stem: 3x3 s2 conv, BN + SiLU, 3x3.
* ``maxxvit_rmlp_*`` - ConvNeXt: depth-wise 7x7 with bias (stride 2 in a stage's first block, grouped
  x2 where the width doubles), LayerNorm2d, 1x1-conv MLP with GELU, LayerScale.  Stem: 3x3 s2 conv,
  LayerNorm2d + GELU, 3x3.

Attention ("rmlp"): the relative position bias is an MLP (2 -> 512, ReLU, dropout 0.125 in training,
-> heads) applied to ``sign(d) * ln(1 + |d|)`` of every offset ``d`` in ``[-(w-1), w-1]^2`` and gathered
per (query, key) pair; its index and coordinate tables are computed here, not stored (timm keeps them
out of the state_dict too).  ``qkv`` is split per head *interleaved*: head ``h`` owns rows
``[3 * h * d, 3 * (h + 1) * d)`` as q, k, v of ``d = 32`` channels each.  LayerNorm eps 1e-6, BatchNorm
eps 1e-5, head dimension 32, window = grid = input side / 32.

Features are returned as the official ``maxxvit_4out`` returns them: the four stage outputs (strides
4, 8, 16, 32), the final LayerNorm2d applied to the last one only; timm's classifier ``head`` is not
built (ImageNet files carry it: the checkpoint API reports those keys).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from ...errors import UserError
from ...kernels import window_attention as k_window_attention
from ...ops import GELU, BatchNorm2d, Conv2d, LayerNorm, Linear, jt
from ..layers.drop import DropPath
from ..layers.norm import LayerNorm2d
from ..weight_init import init_maxvit_
from .maxvit_specs import (
    HEAD_DIM,
    MAXVIT_SPECS,
    PARTITION_RATIO,
    MaxVitSpec,
    make_divisible,
    relative_log_coords,
    relative_position_index,
)

from jittor import nn


# --------------------------------------------------------------------------------- small layers
class LayerScale(nn.Module):
    """Per-channel scale ``gamma`` on the last axis (channels-last) or axis 1 (``channels_first``)."""

    def __init__(self, dim: int, init_value: float, channels_first: bool = False):
        self.gamma = jt.full((dim,), init_value, "float32")
        self.channels_first = channels_first

    def execute(self, x):
        return x * (self.gamma.reshape(1, -1, 1, 1) if self.channels_first else self.gamma)


def _scale(dim: int, value: Optional[float], channels_first: bool = False):
    return LayerScale(dim, value, channels_first) if value else nn.Identity()


class BatchNormAct2d(BatchNorm2d):
    """BatchNorm2d (its parameters at this module's own names) then SiLU, or no activation."""

    def __init__(self, channels: int, act: bool = True, eps: float = 1e-5):
        super().__init__(channels, eps)
        self.apply_act = act

    def execute(self, x):
        y = super().execute(x)
        return nn.silu(y) if self.apply_act else y


class LayerNormAct2d(LayerNorm2d):
    """LayerNorm2d then exact GELU (the ConvNeXt-style stem's norm)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__(channels, eps)
        self.act = GELU()

    def execute(self, x):
        return self.act(super().execute(x))


class Downsample2d(nn.Module):
    """2x2 average pooling, then a 1x1 conv where the width changes (``expand``)."""

    def __init__(self, dim: int, dim_out: int, bias: bool):
        self.expand = Conv2d(dim, dim_out, 1, bias=bias) if dim != dim_out else None

    def execute(self, x):
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // 2, 2, w // 2, 2).mean(dims=(3, 5))
        return self.expand(x) if self.expand is not None else x


class Mlp(nn.Module):
    """Linear -> activation -> (dropout) -> Linear on the last axis (timm's ``Mlp`` names)."""

    def __init__(self, dim: int, hidden: int, out: Optional[int] = None, act: str = "gelu", drop: float = 0.0):
        self.fc1 = Linear(dim, hidden)
        self.act = GELU() if act == "gelu" else nn.ReLU()
        self.drop1 = nn.Dropout(drop) if drop > 0 else None
        self.fc2 = Linear(hidden, out or dim)

    def execute(self, x):
        x = self.act(self.fc1(x))
        if self.drop1 is not None:
            x = self.drop1(x)
        return self.fc2(x)


class ConvMlp(nn.Module):
    """The same MLP as 1x1 convolutions on an NCHW map (timm's ``ConvMlp``)."""

    def __init__(self, dim: int, hidden: int):
        self.fc1 = Conv2d(dim, hidden, 1)
        self.act = GELU()
        self.fc2 = Conv2d(hidden, dim, 1)

    def execute(self, x):
        return self.fc2(self.act(self.fc1(x)))


class SqueezeExcite(nn.Module):
    """Global average -> 1x1 conv -> SiLU -> 1x1 conv -> sigmoid gate (timm's ``SEModule``)."""

    def __init__(self, channels: int, reduced: int):
        self.fc1 = Conv2d(channels, reduced, 1)
        self.fc2 = Conv2d(reduced, channels, 1)

    def execute(self, x):
        s = nn.silu(self.fc1(x.mean(dims=(2, 3), keepdims=True)))
        return x * jt.sigmoid(self.fc2(s))


# ------------------------------------------------------------------------------ conv blocks
class MbConvBlock(nn.Module):
    """timm's "rw" MBConv (see the module docstring); ``stride`` 2 in a stage's first block."""

    def __init__(self, dim: int, dim_out: int, stride: int = 1, drop_path: float = 0.0):
        mid = make_divisible(dim * 4)
        self.shortcut = Downsample2d(dim, dim_out, bias=False) if stride == 2 else None
        self.pre_norm = BatchNormAct2d(dim, act=False)
        self.conv1_1x1 = Conv2d(dim, mid, 1, bias=False)
        self.norm1 = BatchNormAct2d(mid)
        self.conv2_kxk = Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.norm2 = BatchNormAct2d(mid)
        self.se = SqueezeExcite(mid, int(mid / 16))
        self.conv3_1x1 = Conv2d(mid, dim_out, 1, bias=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def execute(self, x):
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        x = self.norm1(self.conv1_1x1(self.pre_norm(x)))
        x = self.se(self.norm2(self.conv2_kxk(x)))
        x = self.conv3_1x1(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        return x + shortcut


class ConvNeXtBlock(nn.Module):
    """timm's ConvNeXt block as MaxxViT uses it (see the module docstring)."""

    def __init__(self, dim: int, dim_out: int, stride: int = 1, layer_scale: Optional[float] = 1e-6,
                 drop_path: float = 0.0):
        if stride == 2:
            self.shortcut = Downsample2d(dim, dim_out, bias=True)
        elif dim != dim_out:
            self.shortcut = Conv2d(dim, dim_out, 1)
        else:
            self.shortcut = None
        self.conv_dw = Conv2d(dim, dim_out, 7, stride, 3, groups=dim)
        self.norm = LayerNorm2d(dim_out, 1e-6)
        self.mlp = ConvMlp(dim_out, 4 * dim_out)
        self.ls = _scale(dim_out, layer_scale, channels_first=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def execute(self, x):
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        x = self.ls(self.mlp(self.norm(self.conv_dw(x))))
        if self.drop_path is not None:
            x = self.drop_path(x)
        return x + shortcut


# -------------------------------------------------------------------------------- attention
class RelPosMlp(nn.Module):
    """The relative position bias of a ``window x window`` partition, computed by a small MLP."""

    def __init__(self, window: int, num_heads: int, hidden: int = 512):
        self.window, self.num_heads = window, num_heads
        self.mlp = Mlp(2, hidden, num_heads, act="relu", drop=0.125)
        # derived tables (not parameters, not in the state_dict): leading underscore
        self._index = relative_position_index(window).reshape(-1)
        self._coords = relative_log_coords(window)

    def bias(self):
        """[1, heads, T, T] additive attention bias (T = window^2)."""
        t = self.window * self.window
        table = self.mlp(jt.array(self._coords))                      # (2w-1)^2, heads
        bias = table[jt.array(self._index)].reshape(t, t, self.num_heads)
        return bias.transpose(2, 0, 1).unsqueeze(0)


class AttentionCl(nn.Module):
    """Multi-head self-attention over the tokens of each partition (channels-last [N, T, C])."""

    def __init__(self, dim: int, window: int, head_dim: int = HEAD_DIM):
        if dim % head_dim:
            raise ValueError(f"attention width {dim} is not a multiple of the head size {head_dim}")
        self.num_heads, self.head_dim = dim // head_dim, head_dim
        self.scale = head_dim ** -0.5
        self.qkv = Linear(dim, 3 * dim)
        self.rel_pos = RelPosMlp(window, self.num_heads)
        self.proj = Linear(dim, dim)

    def execute(self, x):
        n, t, c = x.shape
        heads, d = self.num_heads, self.head_dim
        qkv = self.qkv(x)
        bias = self.rel_pos.bias()
        fused = k_window_attention.window_attention(qkv, bias[0], heads, self.scale)  # None where the CPU op does not apply
        if fused is not None:
            return self.proj(fused)
        qkv = qkv.reshape(n, t, heads, 3 * d).transpose(0, 2, 1, 3)   # N, heads, T, 3d (per-head q|k|v)
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
        attn = jt.matmul(q, k.transpose(0, 1, 3, 2)) * self.scale + bias
        attn = nn.softmax(attn, dim=-1)
        out = jt.matmul(attn, v).transpose(0, 2, 1, 3).reshape(n, t, c)
        return self.proj(out)


def window_partition(x, w: int):
    """[B, H, W, C] -> [B * H/w * W/w, w*w, C]: contiguous ``w x w`` windows."""
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(parts, w: int, h: int, wd: int):
    c = parts.shape[-1]
    x = parts.reshape(-1, h // w, wd // w, w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


def grid_partition(x, g: int):
    """[B, H, W, C] -> [B * H/g * W/g, g*g, C]: the ``g x g`` tokens spaced H/g (W/g) apart."""
    b, h, wd, c = x.shape
    x = x.reshape(b, g, h // g, g, wd // g, c).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, g * g, c)


def grid_reverse(parts, g: int, h: int, wd: int):
    c = parts.shape[-1]
    x = parts.reshape(-1, h // g, wd // g, g, g, c).transpose(0, 3, 1, 4, 2, 5)
    return x.reshape(-1, h, wd, c)


class PartitionAttentionCl(nn.Module):
    """Pre-norm partition attention + pre-norm MLP, both residual (channels-last [B, H, W, C])."""

    def __init__(self, dim: int, partition: int, grid: bool, layer_scale: Optional[float], drop_path: float = 0.0):
        self.partition, self.grid = partition, grid
        self.norm1 = LayerNorm(dim, 1e-6)
        self.attn = AttentionCl(dim, partition)
        self.ls1 = _scale(dim, layer_scale)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else None
        self.norm2 = LayerNorm(dim, 1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = _scale(dim, layer_scale)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else None

    def _partition_attn(self, x):
        _, h, w, _ = x.shape
        p = self.partition
        if self.grid:
            return grid_reverse(self.attn(grid_partition(x, p)), p, h, w)
        return window_reverse(self.attn(window_partition(x, p)), p, h, w)

    def execute(self, x):
        y = self.ls1(self._partition_attn(self.norm1(x)))
        x = x + (self.drop_path1(y) if self.drop_path1 is not None else y)
        y = self.ls2(self.mlp(self.norm2(x)))
        return x + (self.drop_path2(y) if self.drop_path2 is not None else y)


class MaxxVitBlock(nn.Module):
    """Convolution block, then window attention, then grid attention."""

    def __init__(self, dim: int, dim_out: int, stride: int, spec: MaxVitSpec, partition: int, drop_path: float = 0.0):
        if spec.conv == "convnext":
            self.conv = ConvNeXtBlock(dim, dim_out, stride, spec.layer_scale, drop_path)
        else:
            self.conv = MbConvBlock(dim, dim_out, stride, drop_path)
        self.attn_block = PartitionAttentionCl(dim_out, partition, False, spec.layer_scale, drop_path)
        self.attn_grid = PartitionAttentionCl(dim_out, partition, True, spec.layer_scale, drop_path)

    def execute(self, x):
        x = self.conv(x).transpose(0, 2, 3, 1)
        x = self.attn_grid(self.attn_block(x))
        return x.transpose(0, 3, 1, 2)


class MaxxVitStage(nn.Module):
    def __init__(self, dim: int, dim_out: int, depth: int, spec: MaxVitSpec, partition: int,
                 drop_path: Sequence[float]):
        self.blocks = nn.Sequential(*[MaxxVitBlock(dim if i == 0 else dim_out, dim_out, 2 if i == 0 else 1, spec,
                                                   partition, drop_path[i]) for i in range(depth)])

    def execute(self, x):
        return self.blocks(x)


class Stem(nn.Module):
    def __init__(self, in_chans: int, widths: Tuple[int, int], spec: MaxVitSpec):
        self.conv1 = Conv2d(in_chans, widths[0], 3, 2, 1, bias=False)
        self.norm1 = LayerNormAct2d(widths[0]) if spec.conv == "convnext" else BatchNormAct2d(widths[0])
        self.conv2 = Conv2d(widths[0], widths[1], 3, 1, 1, bias=False)

    def execute(self, x):
        return self.conv2(self.norm1(self.conv1(x)))


class MaxxVit(nn.Module):
    """A MaxViT encoder returning the four stage maps (strides 4, 8, 16, 32), shallow first.

    ``img_size`` fixes the window/grid side (``img_size // 32``): inputs must be ``img_size`` square.
    ``drop_path_rate``: stochastic depth rising linearly over the blocks (timm's rule; the official
    MIST/MERIT models use 0)."""

    def __init__(self, spec: MaxVitSpec, img_size: Optional[int] = None, in_chans: int = 3,
                 drop_path_rate: float = 0.0, name: str = ""):
        self.spec, self.name = spec, name
        self.img_size = int(img_size or spec.img_size)
        if self.img_size % PARTITION_RATIO or self.img_size < PARTITION_RATIO:
            raise ValueError(f"MaxViT input side must be a positive multiple of {PARTITION_RATIO}, not {self.img_size}")
        partition = self.img_size // PARTITION_RATIO
        self.out_channels = tuple(spec.dims)
        self.stem = Stem(in_chans, spec.stem, spec)
        total = sum(spec.depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, start, dim = [], 0, spec.stem[1]
        for dim_out, depth in zip(spec.dims, spec.depths):
            stages.append(MaxxVitStage(dim, dim_out, depth, spec, partition, rates[start:start + depth]))
            start, dim = start + depth, dim_out
        self.stages = nn.Sequential(*stages)
        self.norm = LayerNorm2d(spec.dims[-1], 1e-6)
        init_maxvit_(self, spec.init)

    def forward_features(self, x) -> List["jt.Var"]:
        h, w = x.shape[2:]
        if h != self.img_size or w != self.img_size:
            raise UserError(f"{self.name or 'MaxViT'} was built for {self.img_size}x{self.img_size} inputs "
                            f"(its attention windows are {self.img_size // PARTITION_RATIO}x"
                            f"{self.img_size // PARTITION_RATIO}), not {h}x{w}")
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats.append(self.norm(x) if i == len(self.stages) - 1 else x)
        return feats

    def execute(self, x):
        return self.forward_features(x)


def _make(name: str):
    def build(img_size: Optional[int] = None, drop_path_rate: float = 0.0, **kwargs) -> MaxxVit:
        return MaxxVit(MAXVIT_SPECS[name], img_size=img_size, drop_path_rate=drop_path_rate, name=name, **kwargs)

    build.__name__ = name
    build.__doc__ = f"timm's ``{name}`` as a feature encoder (see :mod:`{__name__}`)."
    return build


MAXVIT_VARIANTS = {name: _make(name) for name in MAXVIT_SPECS}

__all__ = ["HEAD_DIM", "MAXVIT_SPECS", "MAXVIT_VARIANTS", "MaxVitSpec", "MaxxVit", "make_divisible"]
