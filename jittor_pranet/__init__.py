"""jittor-pranet: PraNet-V1/V2 (DSRA) in Jittor, faithful to the official PyTorch models.

Importing the package configures Jittor for this machine (CPU when no CUDA runtime, system oneDNN,
no downloads) *before* Jittor is imported; Jittor itself is imported on first use of a model API.
"""
from __future__ import annotations

import os as _os

from . import runtime as _runtime

# OpenCV prints its own "[ WARN ]" lines for unreadable files before our one-line error; ours say it
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"

_runtime.configure()

_LAZY = {
    "build_model": ("jittor_pranet.models", "build_model"),
    "list_models": ("jittor_pranet.models", "list_models"),
    "DSRA": ("jittor_pranet.models", "DSRA"),
    "load_checkpoint": ("jittor_pranet.checkpoint", "load_checkpoint"),
    "save_checkpoint": ("jittor_pranet.checkpoint", "save_checkpoint"),
    "read_state_dict": ("jittor_pranet.checkpoint", "read_state_dict"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'jittor_pranet' has no attribute {name!r}")


__all__ = list(_LAZY) + ["__version__"]
