"""Multi-head attention on token-major tensors as one op forward and one backward.

A batched ``jt.matmul`` on CPU is a broadcast-multiply-reduce loop, not a GEMM, and PVTv2's
attention materialises per-head transposes around it.  This op addresses the heads through GEMM
leading dimensions of the ``q`` [B, N, C] and ``kv`` [B, M, 2C] tensors (no transposes) and
computes the softmax in place.
"""
from __future__ import annotations

from . import flags
from ._common import float32
from ._loader import jt, load

OPS = ("pranet_attn_fwd_op", "pranet_attn_bwd_op")


def ops():
    return load("attention", OPS)


def usable(x, weight) -> bool:
    """The attention op applies to a block whose input is ``x`` and query weight ``weight``."""
    return flags.use("attention") and float32(x, weight) and ops() is not None


class _AttnFn(jt.Function):
    def __init__(self, heads: int, scale: float):
        self.heads, self.scale = int(heads), float(scale)

    def execute(self, q, kv):
        out, p = ops().pranet_attn_fwd(q, kv, self.heads, self.scale)
        self.saved = (q, kv, p)
        return out, p.stop_grad()

    def grad(self, dout, *_):
        q, kv, p = self.saved
        dq, dkv = ops().pranet_attn_bwd(q, kv, p, dout, self.heads, self.scale)
        return dq, dkv


def attention(q, kv, heads: int, scale: float):
    """``concat_h softmax(scale Q_h K_h^T) V_h`` of token-major ``q`` and ``kv`` (keys then values
    along the channels), or None when the op does not apply."""
    if not (q.ndim == 3 and usable(q, kv)):
        return None
    if jt.flags.no_grad:
        return ops().pranet_attn_fwd(q, kv, int(heads), float(scale))[0]
    return _AttnFn(heads, scale)(q, kv)[0]
