"""Biased multi-head attention over many small partitions (MaxViT's windows and grids) as one op
forward and one backward.

MaxViT attends within 8x8 windows and grids (T = 64 tokens; 7x7 in MERIT's 224 encoder) with a
relative-position bias per head.  Jittor's batched ``jt.matmul`` on CPU is a broadcast-multiply-reduce
loop, not a GEMM, and the per-head split of ``qkv`` costs three transposes.  This op reads each head's
q, k and v in place from the ``qkv`` projection [B, T, 3C] (timm's per-head q|k|v order) through
GEMM leading dimensions, runs the partitions x heads small GEMMs in parallel, one per thread, and
returns the bias gradient summed over the partitions.
"""
from __future__ import annotations

from . import flags
from ._common import float32
from ._loader import jt, load

OPS = ("pranet_wattn_fwd_op", "pranet_wattn_bwd_op")


def ops():
    return load("window_attention", OPS)


def usable(qkv, bias) -> bool:
    """The op applies to this ``qkv`` projection and bias (float32 on the CPU, compiled)."""
    return flags.use("attention") and float32(qkv, bias) and ops() is not None


class _WindowAttnFn(jt.Function):
    def __init__(self, heads: int, scale: float):
        self.heads, self.scale = int(heads), float(scale)

    def execute(self, qkv, bias):
        out, p = ops().pranet_wattn_fwd(qkv, bias, self.heads, self.scale)
        self.saved = (qkv, p)
        return out, p.stop_grad()

    def grad(self, dout, *_):
        qkv, p = self.saved
        dqkv, dbias = ops().pranet_wattn_bwd(qkv, p, dout, self.heads, self.scale)
        return dqkv, dbias


def window_attention(qkv, bias, heads: int, scale: float):
    """``concat_h softmax(scale Q_h K_h^T + bias_h) V_h`` [B, T, C] of ``qkv`` [B, T, 3C] (per head
    q|k|v) and ``bias`` [heads, T, T], or None when the op does not apply."""
    if not (qkv.ndim == 3 and bias.ndim == 3 and usable(qkv, bias)):
        return None
    if jt.flags.no_grad:
        return ops().pranet_wattn_fwd(qkv, bias, int(heads), float(scale))[0]
    return _WindowAttnFn(heads, scale)(qkv, bias)[0]
