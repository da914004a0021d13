"""PVTv2 encoder (Wang et al., "PVT v2"), b0-b5, parameter names identical to ``pvt_v2_b2.pth``.

The ImageNet files also carry a classification ``head`` that this encoder (like the official
PraNet code) does not have; the checkpoint API reports those keys as expected extras.

CPU kernels (:mod:`jittor_pranet.kernels`, when their flags are on): the convolutions read and
write the token-major tensors directly ("tokens"), attention is one op ("attention"), and for
inference the blocks add their residuals inside the output GEMMs and the MLP's GELU rides in its
depth-wise convolution ("linear").  Otherwise the plain graph below runs with Jittor's own ops.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ...kernels import attention as k_attention
from ...kernels import conv as k_conv
from ...kernels import flags
from ...kernels import linear as k_linear
from ...ops import GELU, Conv2d, LayerNorm, Linear, jt
from ..layers.drop import DropPath
from ..weight_init import init_pvtv2_

from jittor import nn


def _token_conv(conv: nn.Conv2d, x, h: int, w: int, act=None):
    """``conv`` on token-major ``x`` [B, h*w, C] read as an NHWC map, result token-major
    [B, h'*w', C'] (no transposes); ``act`` ("gelu") fused into the convolution."""
    b, _, c = x.shape
    y = k_conv.conv2d(x.reshape(b, h, w, c), conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation,
                      conv.groups, layout=3, feature="tokens", act=act)
    return y.reshape(b, -1, y.shape[3])


def _tokens_on(x, conv: nn.Conv2d) -> bool:
    return k_conv.usable(x, conv.weight, "tokens", ndim=None)


class DWConv(nn.Module):
    def __init__(self, dim: int):
        self.dwconv = Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def execute(self, x, h: int, w: int):
        if _tokens_on(x, self.dwconv):
            return _token_conv(self.dwconv, x, h, w)
        b, n, c = x.shape
        x = self.dwconv(x.transpose(0, 2, 1).reshape(b, c, h, w))
        return x.reshape(b, c, n).transpose(0, 2, 1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        self.fc1 = Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = GELU()
        self.fc2 = Linear(hidden, dim)

    def execute(self, x, h: int, w: int):
        return self.fc2(self.hidden(x, h, w))

    def hidden(self, x, h: int, w: int):
        """fc1, depth-wise conv, GELU: the tokens ``fc2`` projects (for inference with the "linear"
        kernels on, the GELU is applied inside the convolution)."""
        x = self.fc1(x)
        conv = self.dwconv.dwconv
        if jt.flags.no_grad and flags.use("linear") and _tokens_on(x, conv):
            return _token_conv(conv, x, h, w, act="gelu")
        return self.act(self.dwconv(x, h, w))


class Attention(nn.Module):
    """Spatial-reduction attention: keys/values come from a ``sr_ratio``-strided conv of the map."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, sr_ratio: int = 1):
        assert dim % num_heads == 0
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = Linear(dim, dim, bias=qkv_bias)
        self.kv = Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = LayerNorm(dim)

    def execute(self, x, h: int, w: int):
        return self.proj(self.attend(x, h, w))

    def attend(self, x, h: int, w: int):
        """The heads' outputs concatenated over channels: the tokens ``proj`` projects."""
        if k_attention.usable(x, self.q.weight):
            return self._attend_fused(x, h, w)
        b, n, c = x.shape
        heads, hd = self.num_heads, c // self.num_heads
        q = self.q(x).reshape(b, n, heads, hd).transpose(0, 2, 1, 3).reshape(b * heads, n, hd)
        src = x
        if self.sr_ratio > 1:
            red = self.sr(x.transpose(0, 2, 1).reshape(b, c, h, w))
            src = self.norm(red.reshape(b, c, -1).transpose(0, 2, 1))
        m = src.shape[1]
        kv = self.kv(src).reshape(b, m, 2, heads, hd).transpose(2, 0, 3, 1, 4)
        k = kv[0].reshape(b * heads, m, hd)
        v = kv[1].reshape(b * heads, m, hd)
        attn = nn.softmax(jt.matmul(q, k.transpose(0, 2, 1)) * self.scale, dim=-1)
        return jt.matmul(attn, v).reshape(b, heads, n, hd).transpose(0, 2, 1, 3).reshape(b, n, c)

    def _attend_fused(self, x, h: int, w: int):
        """:meth:`attend` with the attention kernel on the token-major q/kv (no per-head transposes)."""
        b, n, c = x.shape
        q = self.q(x)
        src = x
        if self.sr_ratio > 1 and _tokens_on(x, self.sr):
            src = self.norm(_token_conv(self.sr, x, h, w))
        elif self.sr_ratio > 1:
            red = self.sr(x.transpose(0, 2, 1).reshape(b, c, h, w))
            src = self.norm(red.reshape(b, c, -1).transpose(0, 2, 1))
        return k_attention.attention(q, self.kv(src), self.num_heads, self.scale)


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, drop_path: float, eps: float):
        self.norm1 = LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, True, sr_ratio)
        self.drop_path = DropPath(drop_path)
        self.norm2 = LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def execute(self, x, h: int, w: int):
        if not self.is_training() and jt.flags.no_grad and k_linear.fused(x, self.attn.proj.weight):
            # inference: drop-path is the identity, both residual adds happen in the output GEMMs
            attn, mlp = self.attn, self.mlp
            x = k_linear.linear(attn.attend(self.norm1(x), h, w), attn.proj.weight, attn.proj.bias, residual=x)
            return k_linear.linear(mlp.hidden(self.norm2(x), h, w), mlp.fc2.weight, mlp.fc2.bias, residual=x)
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int):
        self.proj = Conv2d(in_chans, embed_dim, patch_size, stride=stride, padding=patch_size // 2)
        self.norm = LayerNorm(embed_dim)  # eps 1e-5 here, as upstream (blocks use 1e-6)

    def execute(self, x):
        p = self.proj
        if _tokens_on(x, p):  # the convolution writes token-major (NHWC) output directly
            y = k_conv.conv2d(x, p.weight, p.bias, p.stride, p.padding, p.dilation, p.groups, layout=2,
                              feature="tokens")
            b, h, w, c = y.shape
            return self.norm(y.reshape(b, h * w, c)), h, w
        x = self.proj(x)
        b, c, h, w = x.shape
        return self.norm(x.reshape(b, c, h * w).transpose(0, 2, 1)), h, w


class PyramidVisionTransformerV2(nn.Module):
    def __init__(self, embed_dims: Sequence[int] = (64, 128, 320, 512), num_heads: Sequence[int] = (1, 2, 5, 8),
                 mlp_ratios: Sequence[float] = (8, 8, 4, 4), depths: Sequence[int] = (3, 4, 6, 3),
                 sr_ratios: Sequence[int] = (8, 4, 2, 1), drop_path_rate: float = 0.1, in_chans: int = 3):
        self.depths = list(depths)
        self.out_channels = list(embed_dims)
        dpr = np.linspace(0, drop_path_rate, sum(depths)).tolist()
        # creation order = state_dict order = the official one (all patch embeds, then block/norm pairs)
        for i in range(4):
            setattr(self, f"patch_embed{i + 1}", OverlapPatchEmbed(
                7 if i == 0 else 3, 4 if i == 0 else 2, in_chans if i == 0 else embed_dims[i - 1], embed_dims[i]))
        cur = 0
        for i in range(4):
            blocks = nn.ModuleList([Block(embed_dims[i], num_heads[i], mlp_ratios[i], sr_ratios[i], dpr[cur + j], 1e-6)
                                    for j in range(depths[i])])
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", LayerNorm(embed_dims[i], eps=1e-6))
            cur += depths[i]
        init_pvtv2_(self)

    def forward_features(self, x) -> List["jt.Var"]:
        outs = []
        for i in range(1, 5):
            x, h, w = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                x = blk(x, h, w)
            x = getattr(self, f"norm{i}")(x)
            b, n, c = x.shape
            x = x.transpose(0, 2, 1).reshape(b, c, h, w)
            outs.append(x)
        return outs

    def execute(self, x):
        return self.forward_features(x)


_PVT_CONFIGS = {
    "pvt_v2_b0": dict(embed_dims=(32, 64, 160, 256), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), depths=(2, 2, 2, 2)),
    "pvt_v2_b1": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), depths=(2, 2, 2, 2)),
    "pvt_v2_b2": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), depths=(3, 4, 6, 3)),
    "pvt_v2_b3": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), depths=(3, 4, 18, 3)),
    "pvt_v2_b4": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), depths=(3, 8, 27, 3)),
    "pvt_v2_b5": dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(4, 4, 4, 4), depths=(3, 6, 40, 3)),
}


def _make(name: str):
    def build(**kwargs) -> PyramidVisionTransformerV2:
        return PyramidVisionTransformerV2(**{**_PVT_CONFIGS[name], **kwargs})
    build.__name__ = name
    return build


PVT_VARIANTS = {name: _make(name) for name in _PVT_CONFIGS}
