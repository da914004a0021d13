"""Convolutions and GEMMs on NCHW (or token-major NHWC) memory.

Jittor lowers ``nn.Conv2d`` to a reindex-multiply-reduce graph that its tuner relays to oneDNN
with blocked/NHWC layouts, so every call reorders its NCHW activations in and out, 1x1
convolutions included.  These ops run 1x1/stride-1 convolutions as plain GEMMs on NCHW memory
(forward, backward-data, backward-weights; no reorder) and the others through cached oneDNN
primitives, with optional bias and fused activation.  The window ops (:func:`conv2d_window`,
:func:`cat_conv1x1`) are Res2Net's folded inference blocks: forward only, no Jittor fallback.
"""
from __future__ import annotations

from typing import Optional

from . import flags
from ._common import float32, no_grad_needed, pair
from ._loader import error, jt, load

from jittor import nn

OPS = ("pranet_conv_op", "pranet_conv_bwd_x_op", "pranet_conv_bwd_w_op", "pranet_conv_fused_op", "pranet_cat_gemm_op")
ACTIVATIONS = {None: 0, "relu": 1, "gelu": 2}


def ops():
    """The compiled convolution ops, or None (not compiled here, or CUDA)."""
    return load("conv", OPS)


def _require():
    """The compiled ops, or a clear error (for the window ops, which have no Jittor fallback)."""
    o = None if jt.flags.use_cuda else ops()
    if o is None:
        raise RuntimeError(f"jittor-pranet's CPU convolution ops are not available: {error('conv')}")
    return o


def usable(x, weight, feature: str = "conv", ndim: Optional[int] = 4) -> bool:
    """The ops apply to ``x`` and ``weight``: ``feature`` on, float32, compiled (``ndim=None``: any rank)."""
    return ((ndim is None or x.ndim == ndim) and flags.use(feature) and float32(x, weight)
            and ops() is not None)


def activate(y, act: Optional[str]):
    """Jittor's own ReLU / exact GELU (``act`` None: ``y`` unchanged)."""
    return nn.relu(y) if act == "relu" else nn.gelu(y) if act == "gelu" else y


class _ConvFn(jt.Function):
    """Autograd wrapper: forward, backward-data and backward-weights ops (bias handled outside)."""

    def __init__(self, stride, padding, dilation, groups, mode, layout=0):
        self.cfg = (stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups)
        self.mode, self.layout = mode, layout

    def execute(self, x, w):
        self.x, self.w = x, w
        return ops().pranet_conv([x, w], *self.cfg, self.mode, 0, self.layout)

    def grad(self, dy):
        sh, sw, ph, pw, dh, dw, g = self.cfg
        x, w = self.x, self.w
        xh, xw = (x.shape[1], x.shape[2]) if self.layout & 1 else (x.shape[2], x.shape[3])
        o = ops()
        dx = o.pranet_conv_bwd_x(w, dy, xh, xw, sh, sw, ph, pw, dh, dw, g, self.mode, self.layout)
        dwt = o.pranet_conv_bwd_w(x, dy, w.shape[2], w.shape[3], sh, sw, ph, pw, dh, dw, g, self.mode, self.layout)
        return dx, dwt


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu: bool = False, layout: int = 0,
           feature: str = "conv", act: Optional[str] = None):
    """``act(nn.conv2d(x, weight, bias, ...))`` through the ops when ``feature`` is on (float32, CPU),
    through Jittor's own convolution otherwise.

    ``layout`` bit 0: ``x`` is NHWC, bit 1: the result is NHWC (PVTv2's token-major tensors are NHWC
    views, so its convolutions need no transposes); 0 = NCHW in and out.  ``act`` ("relu" or "gelu",
    exact erf GELU; ``relu=True`` is short for "relu") is fused into the convolution when no
    gradient is needed.
    """
    act = "relu" if relu else act
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(a for a in ACTIVATIONS if a)} or None")
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
    if not usable(x, weight, feature):
        if layout & 1:
            x = x.transpose(0, 3, 1, 2)
        y = activate(nn.conv2d(x, weight, bias, stride, padding, dilation, groups), act)
        return y.transpose(0, 2, 3, 1) if layout & 2 else y
    if no_grad_needed(x, weight, bias):
        ins = [x, weight] + ([bias] if bias is not None else [])
        return ops().pranet_conv(ins, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
                                 groups, flags.conv_mode(), ACTIVATIONS[act], int(layout))
    y = _ConvFn(stride, padding, dilation, groups, flags.conv_mode(), int(layout))(x, weight)
    if bias is not None:
        y = y + (bias if layout & 2 else bias.reshape(1, -1, 1, 1))
    return activate(y, act)


def conv2d_window(x, weight, bias, stride=1, padding=0, dilation=1, groups: int = 1, first: int = 0,
                  addend=None, addend_first: int = 0, relu: bool = False):
    """``act(conv2d(x[:, first:first+C] (+ addend[:, addend_first:addend_first+C]), weight) + bias)``
    for NCHW float32 tensors, C = ``weight.shape[1] * groups``; the windows are read in place.
    Forward only."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    ins = [x, weight, bias] + ([addend] if addend is not None else [])
    return _require().pranet_conv_fused(ins, sh, sw, ph, pw, dh, dw, int(groups), flags.conv_mode(), int(relu),
                                        int(first), int(addend_first) if addend is not None else -1)


def cat_conv1x1(pieces, weight, bias, residual=None, relu: bool = False):
    """``act(conv1x1(concat(windows), weight) + bias (+ residual))`` where ``pieces`` is a list of
    ``(tensor, first_channel)`` windows of ``weight.shape[1] / len(pieces)`` channels each.
    Forward only."""
    ins = [t for t, _ in pieces] + [weight, bias] + ([residual] if residual is not None else [])
    return _require().pranet_cat_gemm(ins, [int(o) for _, o in pieces], int(relu), int(residual is not None))
