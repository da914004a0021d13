"""OpenMP thread count of this process (oneDNN and the CPU kernels run on OpenMP)."""
from __future__ import annotations

import ctypes
import ctypes.util


def _libgomp():
    for name in ("libgomp.so.1", ctypes.util.find_library("gomp")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def set_num_threads(n: int) -> None:
    """Threads for oneDNN calls and these kernels (OpenMP, calling thread); Jittor's own kernels are serial."""
    lib = _libgomp()
    if lib is not None:
        lib.omp_set_num_threads(int(n))


def get_num_threads() -> int:
    lib = _libgomp()
    return int(lib.omp_get_max_threads()) if lib is not None else 1
