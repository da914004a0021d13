"""Numerical building blocks with PyTorch's exact semantics (the parity traps of JITTOR_NOTES.md).

* Bilinear resizing is done as two small matrix products ``A_h @ x @ A_w^T`` whose interpolation
  matrices are built in numpy with PyTorch's coordinate rules (``align_corners`` True/False, source
  index clamped at 0, right neighbour clamped at the border).  This is exact for any pair of sizes,
  differentiable, and cheap (the matrices are at most a few hundred wide).
* Pooling uses padded strided slices or reshapes, so ceil-mode averaging with
  ``count_include_pad=False`` and windows larger than the input behave as in PyTorch.
* BatchNorm and LayerNorm compute variance in two passes (Jittor's own use E[x^2]-E[x]^2) and
  BatchNorm updates ``running_var`` with the *unbiased* batch variance as PyTorch does.

The layers with weights (:class:`Conv2d`, :class:`Linear`, :class:`BatchNorm2d`, :class:`LayerNorm`,
and :class:`GELU`) have the parameters and state-dict names of Jittor's own and call the CPU
kernels of :mod:`jittor_pranet.kernels` whenever :mod:`jittor_pranet.kernels.flags` says they are
on, Jittor's own ops otherwise: the choice is made at every call, never by changing the module.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import numpy as np

from .interp import interp_matrix  # noqa: F401  (re-exported)
from .runtime import import_jittor

jt = import_jittor()
from .kernels import batchnorm as _k_batchnorm  # noqa: E402
from .kernels import conv as _k_conv  # noqa: E402
from .kernels import gelu as _k_gelu  # noqa: E402
from .kernels import layernorm as _k_layernorm  # noqa: E402
from .kernels import linear as _k_linear  # noqa: E402

from jittor import init, nn  # noqa: E402

__all__ = [
    "interp_matrix",
    "resize_bilinear",
    "max_pool3x3_s2",
    "avg_pool3x3",
    "avg_pool_ceil",
    "BatchNorm2d",
    "batch_norm_act",
    "LayerNorm",
    "Conv2d",
    "Linear",
    "GELU",
    "match_dtype",
]


def _as_hw(size) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


def resize_bilinear(x: "jt.Var", size, align_corners: bool = False) -> "jt.Var":
    """Bilinear resize of an NCHW tensor to ``size`` exactly like ``F.interpolate(size=...)``.

    When the target is an integer multiple/fraction of the input this also equals PyTorch's
    ``scale_factor=`` form used by the official code (1/scale is exact in binary for the
    factors PraNet uses: 0.25, 2, 8, 16, 32).
    """
    oh, ow = _as_hw(size)
    n, c, h, w = x.shape
    if (oh, ow) == (h, w) and not align_corners:
        return x
    out = x
    if oh != h or align_corners:
        ah = jt.array(interp_matrix(h, oh, align_corners))
        out = jt.matmul(ah, out.reshape(n * c, h, w))  # [N*C, oh, w]
    else:
        out = out.reshape(n * c, h, w)
    if ow != w or align_corners:
        aw = jt.array(interp_matrix(w, ow, align_corners).T.copy())
        out = jt.matmul(out, aw)  # [N*C, oh, ow]
    return out.reshape(n, c, oh, ow)


def _strided_windows(x: "jt.Var", k: int, stride: int, out_h: int, out_w: int):
    """Yield the k*k shifted, strided views of a (pre-padded) NCHW tensor."""
    for dy in range(k):
        for dx in range(k):
            yield x[:, :, dy : dy + stride * (out_h - 1) + 1 : stride, dx : dx + stride * (out_w - 1) + 1 : stride]


def max_pool3x3_s2(x: "jt.Var") -> "jt.Var":
    """``nn.MaxPool2d(3, stride=2, padding=1)`` (ceil_mode=False)."""
    n, c, h, w = x.shape
    oh, ow = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    xp = jt.nn.pad(x, (1, 1, 1, 1), mode="constant", value=-float("inf"))
    out = None
    for v in _strided_windows(xp, 3, 2, oh, ow):
        out = v if out is None else jt.maximum(out, v)
    return out


def avg_pool3x3(x: "jt.Var", stride: int) -> "jt.Var":
    """``nn.AvgPool2d(3, stride, padding=1)`` with PyTorch's default ``count_include_pad=True``."""
    n, c, h, w = x.shape
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
    xp = jt.nn.pad(x, (1, 1, 1, 1))
    out = None
    for v in _strided_windows(xp, 3, stride, oh, ow):
        out = v if out is None else out + v
    return out / 9.0


@lru_cache(maxsize=64)
def _ceil_pool_counts(h: int, w: int, k: int) -> np.ndarray:
    oh, ow = -(-h // k), -(-w // k)
    ch = np.minimum(k, h - np.arange(oh) * k)
    cw = np.minimum(k, w - np.arange(ow) * k)
    return (ch[:, None] * cw[None, :]).astype(np.float32)


def avg_pool_ceil(x: "jt.Var", k: int) -> "jt.Var":
    """``nn.AvgPool2d(k, k, ceil_mode=True, count_include_pad=False)`` (Res2Net-v1b downsample)."""
    if k == 1:
        return x
    n, c, h, w = x.shape
    oh, ow = -(-h // k), -(-w // k)
    if h % k or w % k:
        x = jt.nn.pad(x, (0, ow * k - w, 0, oh * k - h))
        summed = x.reshape(n, c, oh, k, ow, k).sum(dims=(3, 5))
        return summed / jt.array(_ceil_pool_counts(h, w, k))
    return x.reshape(n, c, oh, k, ow, k).mean(dims=(3, 5))


def mpi_mean(v: "jt.Var") -> "jt.Var":
    """Mean of ``v`` over MPI ranks with the right gradient.

    Jittor's ``mpi_all_reduce("mean")`` back-propagates an all-reduce *sum* of the incoming gradient
    (``mpi_all_reduce_op.cc``), i.e. world_size times too much; sum-then-divide differentiates exactly.
    """
    return v.mpi_all_reduce("add") / jt.world_size


class BatchNorm2d(nn.Module):
    """BatchNorm with PyTorch's training semantics (unbiased running_var, two-pass variance).

    State-dict names match PyTorch (``weight, bias, running_mean, running_var``);
    ``num_batches_tracked`` is not kept (PyTorch only uses it when momentum is None).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = init.constant((num_features,), "float32", 1.0)
        self.bias = init.constant((num_features,), "float32", 0.0)
        self.running_mean = init.constant((num_features,), "float32", 0.0).stop_grad()
        self.running_var = init.constant((num_features,), "float32", 1.0).stop_grad()

    def track_batch_statistics(self, mean: "jt.Var", var: "jt.Var", count: int) -> None:
        """PyTorch's running-statistics update: momentum average, *unbiased* variance of ``count`` values."""
        m = self.momentum
        unbiased = var * (count / max(count - 1, 1))
        self.running_mean.update((self.running_mean * (1 - m) + mean.detach() * m).stop_grad())
        self.running_var.update((self.running_var * (1 - m) + unbiased.detach() * m).stop_grad())

    #: data-parallel (MPI) training: batch statistics over all ranks' batches ("SyncBN"), so that N
    #: ranks x batch b train exactly as one process with batch N*b. Set by the trainer, not by default.
    sync_stats: bool = False

    def execute(self, x: "jt.Var") -> "jt.Var":
        x = match_dtype(x, self.weight)
        y = _batch_norm_kernel(self, x)
        return y if y is not None else self._plain(x)

    def _plain(self, x: "jt.Var") -> "jt.Var":
        c = self.num_features
        if self.is_training():
            sync = self.sync_stats and jt.in_mpi
            mean = x.mean(dims=(0, 2, 3))
            if sync:
                mean = mpi_mean(mean)
            centred = x - mean.reshape(1, c, 1, 1)
            var = (centred * centred).mean(dims=(0, 2, 3))
            if sync:
                var = mpi_mean(var)
            self.track_batch_statistics(mean, var, x.numel() // c * (jt.world_size if sync else 1))
            scale = self.weight / jt.sqrt(var + self.eps)
            return centred * scale.reshape(1, c, 1, 1) + self.bias.reshape(1, c, 1, 1)
        scale = self.weight / jt.sqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, c, 1, 1) + shift.reshape(1, c, 1, 1)


def _batch_norm_kernel(bn: BatchNorm2d, x, residual=None, relu: bool = False):
    """``relu(bn(x) + residual)`` by the training-mode BatchNorm kernel (statistics tracked), or
    None when it does not apply (eval mode, SyncBN under MPI, kernel off)."""
    if not bn.is_training() or (bn.sync_stats and jt.in_mpi):
        return None
    out = _k_batchnorm.batch_norm_train(x, bn.weight, bn.bias, bn.eps, residual, relu)
    if out is None:
        return None
    y, mean, var = out
    bn.track_batch_statistics(mean, var, x.numel() // bn.num_features)
    return y


def batch_norm_act(bn: BatchNorm2d, x: "jt.Var", residual: Optional["jt.Var"] = None,
                   relu: bool = False) -> "jt.Var":
    """``relu(bn(x) + residual)`` (either part optional), for the modules that own the residual and
    the activation after a BatchNorm (Res2Net): one kernel each way in training when the
    BatchNorm kernel is on (the add and the ReLU then cost no extra single-threaded passes)."""
    y = _batch_norm_kernel(bn, match_dtype(x, bn.weight), residual, relu)
    if y is not None:
        return y
    y = bn(x)
    y = y if residual is None else y + residual
    return nn.relu(y) if relu else y


def set_sync_batchnorm(model: nn.Module, sync: bool) -> None:
    """Switch every BatchNorm2d of ``model`` to (or from) statistics over all MPI ranks."""
    for module in model.modules():
        if isinstance(module, BatchNorm2d):
            module.sync_stats = bool(sync)


class LayerNorm(nn.Module):
    """LayerNorm over the last dimension with a two-pass variance (PyTorch's numerics)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        self.eps = eps
        self.weight = init.constant((dim,), "float32", 1.0)
        self.bias = init.constant((dim,), "float32", 0.0)

    def execute(self, x: "jt.Var") -> "jt.Var":
        x = match_dtype(x, self.weight)
        y = _k_layernorm.layer_norm(x, self.weight, self.bias, self.eps)
        if y is not None:
            return y
        mean = x.mean(dim=-1, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(dim=-1, keepdims=True)
        return centred / jt.sqrt(var + self.eps) * self.weight + self.bias


def match_dtype(x: "jt.Var", weight: "jt.Var") -> "jt.Var":
    """``x`` in ``weight``'s floating-point type: a half-precision model (``engine.precision.cast_model``)
    meets float32 activations where parameter-free ops (resize, softmax) promoted them; every layer
    with weights then computes in its weights' type, as mixed precision does."""
    return x if x.dtype == weight.dtype else x.cast(weight.dtype)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state-dict names) through the convolution kernels when on."""

    def execute(self, x: "jt.Var") -> "jt.Var":
        x = match_dtype(x, self.weight)
        if not _k_conv.usable(x, self.weight):
            return nn.Conv2d.execute(self, x)
        return _k_conv.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict names); the fused GEMM kernel for inference."""

    def execute(self, x: "jt.Var") -> "jt.Var":
        x = match_dtype(x, self.weight)
        if not _k_linear.fused(x, self.weight, self.bias):
            return nn.Linear.execute(self, x)
        return _k_linear.linear(x, self.weight, self.bias)


class GELU(nn.GELU):
    """Exact (erf) GELU; the multi-threaded kernel when on."""

    def execute(self, x: "jt.Var") -> "jt.Var":
        y = _k_gelu.gelu(x)
        return y if y is not None else nn.GELU.execute(self, x)
