"""Small checks shared by the op families."""
from __future__ import annotations

from typing import Tuple

from ._loader import jt


def float32(*vs) -> bool:
    """Every var in ``vs`` (None entries ignored) is float32: the only type the ops implement."""
    return all(v is None or str(v.dtype) == "float32" for v in vs)


def no_grad_needed(*vs) -> bool:
    """No gradient can flow to any of ``vs`` (None entries ignored): forward-only ops apply."""
    return jt.flags.no_grad or all(v is None or v.is_stop_grad() for v in vs)


def pair(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
