"""Max / average pooling as one multi-threaded op (Res2Net's folded inference; forward only)."""
from __future__ import annotations

from typing import Optional

from ._loader import error, jt, load

OPS = ("pranet_pool_op",)
POOL_KINDS = {"max": 0, "avg": 1, "avg_valid": 2}


def ops():
    return load("pooling", OPS)


def pool2d(x, kind: str, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False,
           channels: Optional[tuple] = None):
    """Pooling of NCHW ``x`` (or of its channel window ``channels=(first, count)``) with PyTorch's
    semantics: ``avg`` counts the zero padding (``count_include_pad=True``), ``avg_valid`` does not;
    ``ceil_mode`` as ``nn.AvgPool2d``.  No backward and no Jittor fallback: RuntimeError when the op
    is not available."""
    o = None if jt.flags.use_cuda else ops()
    if o is None:
        raise RuntimeError(f"jittor-pranet's CPU pooling op is not available: {error('pooling')}")
    first, count = channels if channels is not None else (0, -1)
    return o.pranet_pool(x, POOL_KINDS[kind], int(kernel), int(stride), int(padding), int(ceil_mode),
                         int(first), int(count))
