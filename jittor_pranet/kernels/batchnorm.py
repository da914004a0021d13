"""Training-mode BatchNorm (+ residual, + ReLU) as one multi-threaded op forward and one backward.

Jittor's generated CPU kernels are single-threaded, so BatchNorm statistics and their backward
use one core; these ops parallelise over channels and accumulate the statistics in double
(two-pass variance, as PyTorch).  An optional residual add and ReLU ride along in the same
passes (Res2Net's BN-add-ReLU pattern).  Eval-mode BatchNorm is an affine map and stays in Jittor.
"""
from __future__ import annotations

from . import flags
from ._common import float32
from ._loader import jt, load

OPS = ("pranet_bn_fwd_op", "pranet_bn_bwd_op")


def ops():
    return load("batchnorm", OPS)


class _BatchNormFn(jt.Function):
    def __init__(self, eps: float, relu: bool = False):
        self.eps, self.relu = float(eps), int(relu)

    def execute(self, x, w, b, *residual):
        y, mean, var = ops().pranet_bn_fwd([x, w, b, *residual], self.eps, self.relu)
        self.saved = (x, w, mean, var, y if self.relu else None)
        self.has_res = bool(residual)
        return y, mean.stop_grad(), var.stop_grad()

    def grad(self, dy, *_):
        x, w, mean, var, y = self.saved
        ins = [x, dy, mean, var, w] + ([y] if y is not None else [])
        dx, dw, db, dres = ops().pranet_bn_bwd(ins, self.eps, self.relu, int(self.has_res))
        return (dx, dw, db, dres) if self.has_res else (dx, dw, db)


def batch_norm_train(x, weight, bias, eps: float, residual=None, relu: bool = False):
    """``(act(bn(x) + residual), batch mean, biased batch variance)`` of a training-mode BatchNorm
    on NCHW ``x``, or None when the op does not apply (feature off, not float32, not compiled)."""
    if not (x.ndim == 4 and flags.use("bn") and float32(x, weight, bias, residual) and ops() is not None):
        return None
    extra = [residual] if residual is not None else []
    if jt.flags.no_grad:
        return ops().pranet_bn_fwd([x, weight, bias] + extra, float(eps), int(relu))
    y, mean, var = _BatchNormFn(eps, relu)(x, weight, bias, *extra)
    return y, mean, var
