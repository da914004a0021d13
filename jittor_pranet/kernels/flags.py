"""Which of the CPU kernels are on, read by the layers at call time.

* ``JITTOR_PRANET_FAST=0`` in the environment (or :func:`set_enabled`/:class:`disabled`) switches
  all of them off: every layer then runs Jittor's own ops;
* on CUDA they are always off (Jittor's CUDA/cuDNN kernels are used);
* :class:`features` keeps only some of them inside a block (the benchmark measures each one's
  contribution that way), :func:`set_conv_mode` picks the oneDNN layout of non-1x1 convolutions.

Graphs are built while a model runs, so whatever these say during a call decides the ops of that
call; a model built under one setting runs under another without being rebuilt.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

from ._loader import jt

#: the separately switchable optimisations:
#:   conv      - convolutions (1x1 as GEMM on NCHW memory, others through cached oneDNN primitives)
#:   bn        - training-mode BatchNorm (+ residual, + ReLU) as two multi-threaded ops
#:   attention - PVTv2 attention, and MaxViT's biased window/grid attention, as one op each on
#:               token-major tensors (no per-head transposes)
#:   tokens    - PVTv2's convolutions read/write token-major (NHWC) tensors directly (no transposes)
#:   norm      - LayerNorm and GELU as multi-threaded ops
#:   linear    - linear layers (+ PVTv2's residual adds and its GELU) fused into GEMMs when no
#:               gradient is needed
FEATURES = ("conv", "bn", "attention", "tokens", "norm", "linear")
#: oneDNN layout for non-1x1 convolutions: "auto" (oneDNN's blocked/NHWC choice, with reorders),
#: "nchw" (plain NCHW: no activation reorders), "onednn" (every convolution through oneDNN "any")
CONV_MODES = {"auto": 0, "nchw": 1, "onednn": 2}

_ENABLED = os.environ.get("JITTOR_PRANET_FAST", "1") != "0"
_ACTIVE = frozenset(FEATURES)
_MODE = CONV_MODES.get(os.environ.get("JITTOR_PRANET_CONV_MODE", "auto"), 0)


def enabled() -> bool:
    """The master switch is on and the device is the CPU (the ops may still fail to compile)."""
    return _ENABLED and not jt.flags.use_cuda


def use(feature: str) -> bool:
    """``feature`` (one of :data:`FEATURES`) is on for calls made now."""
    return _ENABLED and feature in _ACTIVE and not jt.flags.use_cuda


def set_enabled(flag: bool) -> None:
    global _ENABLED
    _ENABLED = bool(flag)


def conv_mode() -> int:
    """The numeric oneDNN layout mode passed to the convolution ops (see :data:`CONV_MODES`)."""
    return _MODE


def set_conv_mode(mode: str) -> None:
    global _MODE
    _MODE = CONV_MODES[mode]


def get_conv_mode() -> str:
    return {v: k for k, v in CONV_MODES.items()}[_MODE]


class disabled:
    """Context manager: Jittor's own kernels for every call inside the block."""

    def __enter__(self):
        global _ENABLED
        self._prev, _ENABLED = _ENABLED, False
        return self

    def __exit__(self, *exc):
        global _ENABLED
        _ENABLED = self._prev
        return False


class features:
    """Context manager: only the named optimisations (subset of :data:`FEATURES`) inside the block,
    optionally with another convolution layout (``conv_mode``, a key of :data:`CONV_MODES`)."""

    def __init__(self, names: Iterable[str], conv_mode: Optional[str] = None):
        names = frozenset(names)
        unknown = names - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown fast feature(s) {sorted(unknown)}; choose from {FEATURES}")
        if conv_mode is not None and conv_mode not in CONV_MODES:
            raise ValueError(f"unknown conv mode {conv_mode!r}; choose from {sorted(CONV_MODES)}")
        self.names, self.conv_mode = names, conv_mode

    def __enter__(self):
        global _ACTIVE, _MODE
        self._prev = (_ACTIVE, _MODE)
        _ACTIVE = self.names
        if self.conv_mode is not None:
            _MODE = CONV_MODES[self.conv_mode]
        return self

    def __exit__(self, *exc):
        global _ACTIVE, _MODE
        _ACTIVE, _MODE = self._prev
        return False
