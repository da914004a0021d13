"""``residual + x @ W^T + b`` as one GEMM and one multi-threaded epilogue, for inference (Jittor
adds the bias and the residual in single-threaded kernels)."""
from __future__ import annotations

from . import flags
from ._common import float32, no_grad_needed
from ._loader import load

from jittor import nn

OPS = ("pranet_linear_op",)


def ops():
    return load("linear", OPS)


def fused(x, weight, bias=None, residual=None) -> bool:
    """The fused op applies: feature on, float32, no gradient needed, compiled."""
    return (flags.use("linear") and float32(x, weight, bias, residual)
            and no_grad_needed(x, weight, bias, residual) and ops() is not None)


def linear(x, weight, bias=None, residual=None):
    """``residual + (x @ weight.T + bias)`` (either part optional): the fused op when it applies,
    Jittor's own ops otherwise (gradients then flow as usual)."""
    if not fused(x, weight, bias, residual):
        y = nn.matmul_transpose(x, weight)
        y = y if bias is None else y + bias
        return y if residual is None else residual + y
    ins = [x, weight] + ([bias] if bias is not None else []) + ([residual] if residual is not None else [])
    return ops().pranet_linear(ins, int(bias is not None), int(residual is not None))
