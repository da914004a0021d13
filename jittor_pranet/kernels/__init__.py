"""CPU kernels for Jittor: one module per op family, each with its loader (C++ in ``csrc/``,
compiled on first use), its autograd wrapper and a small functional API.

====================  ============================================================================
module                ops
====================  ============================================================================
``conv``              convolutions (1x1 as GEMM on NCHW, others through cached oneDNN primitives;
                      token-major layouts; folded-inference window ops)
``batchnorm``         training-mode BatchNorm (+ residual, + ReLU)
``layernorm``         LayerNorm over the last dimension
``gelu``              exact GELU
``attention``         multi-head attention on token-major tensors
``window_attention``  biased multi-head attention over MaxViT's windows and grids
``pooling``           max / average pooling (folded inference)
``linear``            linear layer (+ residual) for inference
====================  ============================================================================

The layers of :mod:`jittor_pranet.ops` and the models call these functions themselves and fall
back to Jittor's own ops whenever :mod:`.flags` says a kernel is off (``JITTOR_PRANET_FAST=0``,
CUDA, a benchmark's feature subset) or a kernel does not apply (not float32, not compiled).
Numerics: float32 rounding differences only; the parity suite runs with the kernels on.
Why each one exists and what it gains is measured in ``docs/benchmarks.md``.
"""
from __future__ import annotations

from typing import Optional

from . import attention, batchnorm, conv, flags, gelu, layernorm, linear, pooling, window_attention
from ._loader import error as _error
from .threads import get_num_threads, set_num_threads

FAMILIES = {"conv": conv, "batchnorm": batchnorm, "layernorm": layernorm, "gelu": gelu, "attention": attention,
            "pooling": pooling, "linear": linear, "window_attention": window_attention}


def available() -> bool:
    """Every op family compiled (CPU Jittor with oneDNN); False on CUDA."""
    return all(m.ops() is not None for m in FAMILIES.values())


def unavailable_reason() -> Optional[str]:
    """Why some op family is not available, or None."""
    for name, m in FAMILIES.items():
        if m.ops() is None:
            return _error(name) or f"{name} ops not loaded"
    return None


def enabled() -> bool:
    """The kernels are on (switch, device) and compiled."""
    return flags.enabled() and available()


__all__ = ["FAMILIES", "available", "unavailable_reason", "enabled", "flags", "set_num_threads",
           "get_num_threads", "conv", "batchnorm", "layernorm", "gelu", "attention", "pooling", "linear"]
