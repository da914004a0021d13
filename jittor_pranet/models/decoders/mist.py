"""MIST's decoder ``CAM`` (Rahman & Marculescu, MIST; PraNet-V2 ``multiclass_seg/MIST``) and its blocks.

A bottleneck block (``block_5``) then four up blocks (``block_6..9``), each ending in a convolutional
transformer:

* ``block_5``: LayerNorm, two 3x3 convs + ReLU (c4 -> 2 c4), 2x2 max pool, transformer;
* ``block_{6..9}``: LayerNorm, nearest x2, 3x3 conv + ReLU, concat ``[skip, x]``, 3x3 conv + ReLU,
  transformer (``conv3`` is built but never called: it is in the official state_dict, so kept);
* transformer: attention (depth-wise 3x3 conv q / k / v, each + ReLU + LayerNorm, then multi-head
  attention over the H*W tokens), 3x3 conv, residual; LayerNorm, "wide focus" (3x3 convs of dilation
  1, 2, 3, each + GELU, summed, 3x3 conv + GELU), residual.

Widths come from the encoder's channels (c1, c2, c3, c4) as ``block_5: 2 c4``, ``block_6..9: c4, c3,
c2, c1`` -- the official list ``[.., 1536, 768, 384, 192, 96]`` for c = 96/192/384/768.  Heads: the
largest divisor of each width not above the official count (16, 12, 8, 4, 2 for blocks 5..9), i.e.
exactly the official heads for 'small' (e.g. 64/128/256/512 gives 16, 8, 8, 4, 2).

Deliberate differences from the official code (neither changes a training-mode forward on square maps):

* dropout (p 0.3 after each block's last conv, p 0.1 after every wide-focus GELU) is applied only in
  training; the official calls ``F.dropout`` without ``training=``, so its eval outputs are random
  (two eval forwards differ by up to 0.65).  Our eval is deterministic.
* the official reshapes the attention output to sqrt(H*W) x sqrt(H*W) (square maps only); we use
  H x W, the same thing on the square maps the official accepts.

Stochastic depth: the official builds a rate list ``linspace(0, 1, 9)`` and hands each block its rate,
but ``Transformer`` never uses it: there is no drop path in training or eval, and none here.

Dual (DSRA) decoder: 1x1 heads ``out_head{1..4}_{fg,bg}`` on the block 6..9 outputs (deepest first);
the deepest fg map is unrefined, each shallower fg map is refined with the previous *refined* fg and
raw bg maps through :func:`~.dsra.dsra_fuse`; bg maps stay raw.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ...kernels import attention as k_attention
from ...ops import GELU, Conv2d, LayerNorm, Linear, jt
from ..layers.conv import NearestUpsample2x
from ..layers.norm import LayerNorm2d
from .dsra import GAIN_MODES, dsra_fuse

from jittor import nn

#: the official per-block head counts (blocks 5, 6, 7, 8, 9) for the 'small' encoder
OFFICIAL_HEADS = (16, 12, 8, 4, 2)
BLOCK_DROPOUT = 0.3
WIDE_FOCUS_DROPOUT = 0.1


def decoder_widths(encoder_channels: Sequence[int]) -> Tuple[int, ...]:
    """Widths of ``block_5..9`` from the encoder's (c1, c2, c3, c4): (2 c4, c4, c3, c2, c1)."""
    c1, c2, c3, c4 = encoder_channels
    return 2 * c4, c4, c3, c2, c1


def decoder_heads(widths: Sequence[int], official: Sequence[int] = OFFICIAL_HEADS) -> Tuple[int, ...]:
    """Per block, the largest divisor of its width not above the official head count."""
    return tuple(max(h for h in range(1, cap + 1) if w % h == 0) for w, cap in zip(widths, official))


def _conv3x3(cin: int, cout: int, dilation: int = 1, groups: int = 1) -> Conv2d:
    """3x3 conv with PyTorch's ``padding="same"`` (symmetric: dilation on each side), with bias."""
    return Conv2d(cin, cout, 3, 1, dilation, dilation=dilation, groups=groups, bias=True)


def _dropout(module: nn.Module, x, p: float):
    """Inverted dropout in training mode only."""
    if p <= 0.0 or not module.is_training():
        return x
    return x * (jt.rand(x.shape) >= p).cast(x.dtype) / (1.0 - p)


def _channels_last_norm(norm: LayerNorm2d, x):
    """``norm`` over the channels of an NCHW map, returned channels-last (N, H, W, C)."""
    return LayerNorm.execute(norm, x.transpose(0, 2, 3, 1))


def softmax_last(x):
    """Max-subtracted softmax over the last dimension."""
    e = jt.exp(x - x.max(dim=-1, keepdims=True))
    return e / e.sum(dim=-1, keepdims=True)


class MultiheadAttention(nn.Module):
    """``torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)`` (no dropout, biases on):
    parameters ``in_proj_weight`` [3C, C] (q; k; v), ``in_proj_bias`` [3C], ``out_proj.{weight,bias}``."""

    def __init__(self, embed_dim: int, num_heads: int):
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.in_proj_weight = jt.zeros((3 * embed_dim, embed_dim))
        self.in_proj_bias = jt.zeros((3 * embed_dim,))
        self.out_proj = Linear(embed_dim, embed_dim)

    def _project(self, x, i: int):
        """Token-major projection (B, N, C) of ``x`` by the i-th block (q, k, v) of ``in_proj``."""
        c = self.embed_dim
        b, n, _ = x.shape
        w = self.in_proj_weight[i * c:(i + 1) * c]
        # as one 2-D GEMM: Jittor's matmul of a 3-D by a 2-D var broadcasts and reduces on the CPU
        y = jt.matmul(x.reshape(b * n, c), w.transpose(1, 0)).reshape(b, n, c)
        return y + self.in_proj_bias[i * c:(i + 1) * c]

    def _heads(self, y):
        b, n, c = y.shape
        return y.reshape(b, n, self.num_heads, c // self.num_heads).transpose(0, 2, 1, 3)  # B, h, N, d

    def execute(self, query, key, value):
        """(B, N, C) each -> (B, N, C)."""
        q, k, v = self._project(query, 0), self._project(key, 1), self._project(value, 2)
        d = self.embed_dim // self.num_heads
        if k_attention.usable(q, self.in_proj_weight):  # the CPU op: heads addressed in place, keys then values
            fused = k_attention.attention(q, jt.concat([k, v], dim=2), self.num_heads, d ** -0.5)
            if fused is not None:
                return self.out_proj(fused)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        attn = softmax_last(jt.matmul(q * (d ** -0.5), k.transpose(0, 1, 3, 2)))
        out = jt.matmul(attn, v)  # B, h, N, d
        b, h, n, _ = out.shape
        return self.out_proj(out.transpose(0, 2, 1, 3).reshape(b, n, self.embed_dim))


class Attention(nn.Module):
    """Convolutional projections (depth-wise 3x3 + ReLU + LayerNorm) for q, k, v, then attention."""

    def __init__(self, channels: int, num_heads: int):
        self.conv_q = _conv3x3(channels, channels, groups=channels)
        self.layernorm_q = LayerNorm2d(channels, eps=1e-5)
        self.conv_k = _conv3x3(channels, channels, groups=channels)
        self.layernorm_k = LayerNorm2d(channels, eps=1e-5)
        self.conv_v = _conv3x3(channels, channels, groups=channels)
        self.layernorm_v = LayerNorm2d(channels, eps=1e-5)
        self.attention = MultiheadAttention(channels, num_heads)

    def _tokens(self, conv: Conv2d, norm: LayerNorm2d, x):
        b, c, h, w = x.shape
        return _channels_last_norm(norm, nn.relu(conv(x))).reshape(b, h * w, c)

    def execute(self, x):
        b, c, h, w = x.shape
        q = self._tokens(self.conv_q, self.layernorm_q, x)
        k = self._tokens(self.conv_k, self.layernorm_k, x)
        v = self._tokens(self.conv_v, self.layernorm_v, x)
        out = self.attention(q, k, v)  # B, HW, C
        return out.transpose(0, 2, 1).reshape(b, c, h, w)


class DilatedConv(nn.Module):
    """"Wide focus": 3x3 convs of dilation 1, 2, 3 (+ GELU, dropout) summed, then 3x3 conv + GELU."""

    def __init__(self, in_channels: int, out_channels: int):
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.conv2 = _conv3x3(in_channels, out_channels, dilation=2)
        self.conv3 = _conv3x3(in_channels, out_channels, dilation=3)
        self.conv4 = _conv3x3(in_channels, out_channels)
        self.gelu = GELU()

    def _branch(self, conv: Conv2d, x):
        return _dropout(self, self.gelu(conv(x)), WIDE_FOCUS_DROPOUT)

    def execute(self, x):
        added = self._branch(self.conv1, x) + self._branch(self.conv2, x) + self._branch(self.conv3, x)
        return self._branch(self.conv4, added)


class Transformer(nn.Module):
    """Attention + 3x3 conv (residual), LayerNorm + wide focus (residual)."""

    def __init__(self, channels: int, num_heads: int):
        self.attention_output = Attention(channels, num_heads)
        self.conv1 = _conv3x3(channels, channels)
        self.layernorm = LayerNorm2d(channels, eps=1e-5)
        self.wide_focus = DilatedConv(channels, channels)

    def execute(self, x):
        x2 = self.conv1(self.attention_output(x)) + x
        return x2 + self.wide_focus(self.layernorm(x2))


class BottleneckBlock(nn.Module):
    """``block_5``: LayerNorm, conv + ReLU, conv + ReLU, dropout, 2x2 max pool, transformer."""

    def __init__(self, in_channels: int, out_channels: int, num_heads: int):
        self.layernorm = LayerNorm2d(in_channels, eps=1e-5)
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.trans = Transformer(out_channels, num_heads)

    def execute(self, x):
        x1 = nn.relu(self.conv1(self.layernorm(x)))
        x1 = _dropout(self, nn.relu(self.conv2(x1)), BLOCK_DROPOUT)
        n, c, h, w = x1.shape
        x1 = x1[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(dims=(3, 5))
        return self.trans(x1)


class UpBlock(nn.Module):
    """``block_{6..9}``: LayerNorm, nearest x2, conv + ReLU, concat ``[skip, x]``, conv + ReLU,
    dropout, transformer.  ``conv3`` is unused (kept for the official state_dict)."""

    def __init__(self, in_channels: int, out_channels: int, num_heads: int):
        self.layernorm = LayerNorm2d(in_channels, eps=1e-5)
        self.upsample = NearestUpsample2x()
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.conv2 = _conv3x3(2 * out_channels, out_channels)
        self.conv3 = _conv3x3(out_channels, out_channels)
        self.trans = Transformer(out_channels, num_heads)

    def execute(self, x, skip):
        x1 = nn.relu(self.conv1(self.upsample(self.layernorm(x))))
        x1 = nn.relu(self.conv2(jt.concat([skip, x1], dim=1)))
        return self.trans(_dropout(self, x1, BLOCK_DROPOUT))


class MISTDecoder(nn.Module):
    """The official ``CAM`` decoder (``dual=True``: with the DSRA heads ``out_head{1-4}_{fg,bg}``).

    ``encoder_channels``: (c1, c2, c3, c4), shallow to deep, as the encoder's ``out_channels``.
    ``heads``: per-block head counts for blocks 5..9 (default :func:`decoder_heads`).
    """

    def __init__(self, encoder_channels: Sequence[int] = (96, 192, 384, 768), dual: bool = False,
                 num_classes: int = 9, gain: str = "softmax", heads: Optional[Sequence[int]] = None):
        if gain not in GAIN_MODES:
            raise ValueError(f"unknown DSRA gain {gain!r}; choose one of {GAIN_MODES}")
        self.dual, self.gain = dual, gain
        self.widths = decoder_widths(encoder_channels)
        self.heads = tuple(heads) if heads is not None else decoder_heads(self.widths)
        if len(self.heads) != 5 or any(w % h for w, h in zip(self.widths, self.heads)):
            raise ValueError(f"heads {self.heads} must be 5 divisors of the block widths {self.widths}")
        c4 = encoder_channels[3]
        w, h = self.widths, self.heads
        self.block_5 = BottleneckBlock(c4, w[0], h[0])
        for i, k in enumerate((6, 7, 8, 9), start=1):
            setattr(self, f"block_{k}", UpBlock(w[i - 1], w[i], h[i]))
        if dual:
            for side in ("fg", "bg"):
                for k in (1, 2, 3, 4):
                    setattr(self, f"out_head{k}_{side}", Conv2d(w[k], num_classes, 1))

    def execute(self, skip1, skip2, skip3, skip4, inter: Optional[Dict[str, "jt.Var"]] = None) -> List["jt.Var"]:
        """Encoder maps shallow to deep.  Returns the block 6..9 features ``[d4, d3, d2, d1]`` (deepest
        first) or, dual, ``[d4_fg, d3_fg, d2_fg, d1_fg, d4_bg, d3_bg, d2_bg, d1_bg]`` (fg refined)."""
        inter = {} if inter is None else inter
        x = self.block_5(skip4)
        inter["d5"] = x
        feats = []
        for k, name, skip in zip((6, 7, 8, 9), ("d4", "d3", "d2", "d1"), (skip4, skip3, skip2, skip1)):
            x = getattr(self, f"block_{k}")(x, skip)
            inter[name] = x
            feats.append(x)
        if not self.dual:
            return feats
        fgs, bgs = [], []
        for k, (name, d) in enumerate(zip(("d4", "d3", "d2", "d1"), feats), start=1):
            fg, bg = getattr(self, f"out_head{k}_fg")(d), getattr(self, f"out_head{k}_bg")(d)
            if fgs:
                fg, bg = dsra_fuse(fg, bg, fgs[-1], bgs[-1], self.gain)
            inter[f"{name}_fg"], inter[f"{name}_bg"] = fg, bg
            fgs.append(fg)
            bgs.append(bg)
        return fgs + bgs
