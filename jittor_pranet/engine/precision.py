"""Inference precision: the ``--precision`` names, casting a model to half precision, a model's dtype."""
from __future__ import annotations

from ..errors import UserError

# bf16 is not offered: Jittor 1.3.11's CPU matmul / convolution kernels accumulate bfloat16 products in
# bfloat16 (measured 6% / 11% relative error for one 32-deep matmul / 72-deep convolution, against 0.15% /
# 0.2% in float16), which made a PraNet-V2/PVT's logits 75% of their range wrong.
PRECISIONS = {"fp32": "float32", "fp16": "float16"}


def precision_dtype(precision: str) -> str:
    """Jittor dtype of a ``--precision`` name; clear error for anything else."""
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise UserError(f"unknown precision {precision!r}: choose {', '.join(PRECISIONS)}") from None


def cast_model(net, precision: str):
    """Half-precision inference: every floating-point weight and BatchNorm statistic cast to float16.

    Activations then run in that type; Jittor accumulates sums and means of half tensors in float32
    (its reduce op), and :class:`Predictor` casts the logits back to float32 before the sigmoid.
    Layers with weights cast float32 inputs (from parameter-free ops) to their own type
    (``ops.match_dtype``), so the rest is mixed precision.  Agreement with float32 is measured in
    ``tests/engine/test_predict.py`` (docs/benchmarks.md, "Half precision").  Meant for GPUs: on CPU, Jittor
    runs float16 through generic loops (oneDNN's paths and ours are float32), ~170x slower.
    """
    dtype = precision_dtype(precision)
    for v in net.parameters():
        if v.dtype.is_float() and str(v.dtype) != dtype:
            v.assign(v.cast(dtype))
    return net


def model_dtype(net) -> str:
    """The floating-point type of a model's weights (``float32`` for a model without any)."""
    return next((str(v.dtype) for v in net.parameters() if v.dtype.is_float()), "float32")


__all__ = ["PRECISIONS", "cast_model", "model_dtype", "precision_dtype"]
