"""LayerNorm over the last dimension as one multi-threaded op forward and one backward
(statistics in double, two-pass variance as PyTorch); Jittor's own kernels are single-threaded."""
from __future__ import annotations

from . import flags
from ._common import float32, no_grad_needed
from ._loader import jt, load

OPS = ("pranet_ln_fwd_op", "pranet_ln_bwd_op")


def ops():
    return load("layernorm", OPS)


class _LayerNormFn(jt.Function):
    def __init__(self, eps: float):
        self.eps = float(eps)

    def execute(self, x, w, b):
        y, mean, rstd = ops().pranet_ln_fwd(x, w, b, self.eps)
        self.saved = (x, w, mean, rstd)
        return y

    def grad(self, dy):
        x, w, mean, rstd = self.saved
        dx, dw, db = ops().pranet_ln_bwd(x, dy, mean, rstd, w)
        return dx, dw, db


def layer_norm(x, weight, bias, eps: float):
    """LayerNorm of ``x`` over its last dimension, or None when the op does not apply."""
    if not (flags.use("norm") and float32(x, weight, bias) and ops() is not None):
        return None
    if no_grad_needed(x, weight, bias):
        return ops().pranet_ln_fwd(x, weight, bias, float(eps))[0]
    return _LayerNormFn(eps)(x, weight, bias)
