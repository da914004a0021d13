"""Exact (erf) GELU as one multi-threaded op (Jittor's element-wise CPU kernels are serial)."""
from __future__ import annotations

from . import flags
from ._common import float32, no_grad_needed
from ._loader import jt, load

OPS = ("pranet_gelu_op",)


def ops():
    return load("gelu", OPS)


class _GeluFn(jt.Function):
    def execute(self, x):
        self.x = x
        return ops().pranet_gelu(x, x, 0)

    def grad(self, dy):
        return ops().pranet_gelu(self.x, dy, 1)


def gelu(x):
    """``nn.gelu(x)`` through the op, or None when it does not apply."""
    if not (flags.use("norm") and float32(x) and ops() is not None):
        return None
    if no_grad_needed(x):
        return ops().pranet_gelu(x, x, 0)
    return _GeluFn()(x)
