"""Fast CPU paths for Jittor (issue #5): our own oneDNN/OpenMP ops, swapped into the models in place.

Why (measured; numbers and commands in ``docs/benchmarks.md``):

* Jittor lowers ``nn.Conv2d`` to a reindex-multiply-reduce graph that its conv tuner relays to
  ``mkl_conv``/``mkl_conv_backward_x``/``mkl_conv_backward_w``.  Those let oneDNN pick blocked/NHWC
  layouts, so every call reorders its NCHW activations in and out (~10 reorders per convolution per
  training step: 1574 reorders, 0.62 s of a 4.8 s Res2Net step on one thread), and the 1x1
  convolutions -- 65% of Res2Net's FLOPs -- pay the same reorders.
* Jittor's generated CPU kernels are single-threaded (no OpenMP in them): everything that is not a
  oneDNN call -- BatchNorm statistics and backward above all -- does not use the second core.
* A batched ``jt.matmul`` on CPU is a broadcast-multiply-reduce loop, not a GEMM: PVTv2's attention
  runs in generic loops, after materialising per-head transposes.

The ops in ``jittor_pranet/csrc`` (compiled on first use with ``jt.compile_custom_ops``):

* ``conv``: 1x1/stride-1 convolutions as plain GEMMs on NCHW memory (forward, backward-data,
  backward-weights; no reorder), other convolutions through cached oneDNN primitives; optional
  bias + fused ReLU (used by :func:`fuse_for_inference`);
* ``bn``: training-mode BatchNorm as one forward and one backward op, OpenMP over channels,
  statistics accumulated in double (two-pass variance, as PyTorch);
* ``attention``: PVTv2's multi-head attention as one op on the token-major q/kv tensors (heads are
  addressed through GEMM leading dimensions: no transposes), softmax in place;
* ``norm``: PVTv2's LayerNorm (forward and backward, statistics in double) and exact GELU as
  multi-threaded ops;
* ``tokens``: PVTv2's depth-wise, spatial-reduction and patch-embedding convolutions read and write
  token-major (NHWC) tensors directly instead of transposing to NCHW and back.

:func:`accelerate` switches a model's modules to these implementations in place (same parameters,
same state dict; ``build_model`` does it by default).  Numerics: float32 rounding differences only;
the parity suite runs with the fast path on.  ``JITTOR_PRANET_FAST=0`` (before the model is built)
or :func:`disabled` restores Jittor's own kernels; :class:`features` keeps only some optimisations
(benchmarks use it to measure each one).  On CUDA everything falls back to Jittor's own path.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from pathlib import Path
from typing import Optional

from .ops import BatchNorm2d, LayerNorm, jt
from jittor import nn

__all__ = [
    "available",
    "enabled",
    "set_enabled",
    "disabled",
    "features",
    "FEATURES",
    "conv2d",
    "FastConv2d",
    "FastBatchNorm2d",
    "FastLayerNorm",
    "FastGELU",
    "FastLinear",
    "linear",
    "batch_norm_train",
    "accelerate",
    "fuse_for_inference",
    "unfuse",
    "set_num_threads",
    "get_num_threads",
    "CONV_MODES",
    "pool2d",
    "conv2d_window",
    "cat_conv1x1",
]

_CSRC = Path(__file__).parent / "csrc"
_OPS = None
_OPS_ERROR: Optional[str] = None
_LOCK = threading.Lock()
_ENABLED = os.environ.get("JITTOR_PRANET_FAST", "1") != "0"
# oneDNN layout for non-1x1 convolutions: 0 "any" (oneDNN's blocked/NHWC + reorders),
# 1 plain NCHW (no activation reorders), 2 = everything through oneDNN "any" (as Jittor's own op)
CONV_MODES = {"auto": 0, "nchw": 1, "onednn": 2}
_MODE = CONV_MODES.get(os.environ.get("JITTOR_PRANET_CONV_MODE", "auto"), 0)
# the separately switchable optimisations (benchmarks measure each one's contribution):
#   conv      - our convolution ops (1x1 as GEMM on NCHW, others through cached oneDNN primitives)
#   bn        - training-mode BatchNorm as two multi-threaded ops
#   attention - PVTv2 attention as one op on token-major tensors (no per-head transposes)
#   tokens    - PVTv2's convolutions read/write token-major (NHWC) tensors directly (no transposes)
#   norm      - LayerNorm and GELU (PVTv2) as multi-threaded ops
#   linear    - nn.Linear (+ PVTv2's residual adds and its GELU) fused into GEMMs when no gradient is needed
FEATURES = ("conv", "bn", "attention", "tokens", "norm", "linear")
_ACTIVE = set(FEATURES)


def _mkl_flags() -> Optional[str]:
    """Compile/link flags for the oneDNN Jittor itself uses (its ``mkl`` folder), or None."""
    ce = getattr(jt, "compile_extern", None)
    if ce is None or not getattr(ce, "use_mkl", False) or getattr(ce, "mkl_ops", None) is None:
        return None
    from jittor_utils import home

    mkl_root = Path(home()) / ".cache" / "jittor" / "mkl"
    for d in sorted(mkl_root.glob("dnnl*")):
        if (d / "lib" / "libmkldnn.so").is_file():
            return f' -I"{d / "include"}" -L"{d / "lib"}" -lmkldnn '
    return None


def _load_ops():
    global _OPS, _OPS_ERROR
    if _OPS is not None or _OPS_ERROR is not None:
        return _OPS
    with _LOCK:
        if _OPS is not None or _OPS_ERROR is not None:
            return _OPS
        if jt.flags.use_cuda:
            return None  # Jittor's CUDA path; not cached, the CPU may be selected later
        flags = _mkl_flags()
        if flags is None:
            _OPS_ERROR = "Jittor was imported without oneDNN (use_mkl=0)"
            return None
        names = ["pranet_conv_op", "pranet_conv_bwd_x_op", "pranet_conv_bwd_w_op", "pranet_bn_fwd_op",
                 "pranet_bn_bwd_op", "pranet_attn_fwd_op", "pranet_attn_bwd_op", "pranet_ln_fwd_op",
                 "pranet_ln_bwd_op", "pranet_gelu_op", "pranet_conv_fused_op", "pranet_cat_gemm_op", "pranet_pool_op", "pranet_linear_op"]
        files = [str(_CSRC / f"{n}.{ext}") for n in names for ext in ("h", "cc")]
        try:
            _OPS = jt.compile_custom_ops(files, extra_flags=flags)
        except Exception as exc:  # pragma: no cover - depends on the machine's compiler
            _OPS_ERROR = f"could not compile jittor_pranet/csrc: {exc}"
            import warnings

            warnings.warn(f"jittor-pranet: {_OPS_ERROR}; using Jittor's own (slower) kernels", RuntimeWarning)
            return None
        return _OPS


def available() -> bool:
    """True when the fast ops compiled (CPU Jittor with oneDNN)."""
    return _load_ops() is not None


def unavailable_reason() -> Optional[str]:
    if jt.flags.use_cuda:
        return "CUDA: Jittor's own CUDA/cuDNN kernels are used"
    _load_ops()
    return _OPS_ERROR


def enabled() -> bool:
    return _ENABLED and not jt.flags.use_cuda and available()


def set_enabled(flag: bool) -> None:
    global _ENABLED
    _ENABLED = bool(flag)


class disabled:
    """Context manager: build graphs with Jittor's own convolution inside the block (benchmarks)."""

    def __enter__(self):
        global _ENABLED
        self._prev, _ENABLED = _ENABLED, False
        return self

    def __exit__(self, *exc):
        global _ENABLED
        _ENABLED = self._prev
        return False


class features:
    """Context manager: only the named optimisations (subset of :data:`FEATURES`) inside the block."""

    def __init__(self, names, conv_mode: Optional[str] = None):
        unknown = set(names) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown fast feature(s) {sorted(unknown)}; choose from {FEATURES}")
        self.names, self.conv_mode = set(names), conv_mode

    def __enter__(self):
        global _ACTIVE, _MODE
        self._prev = (_ACTIVE, _MODE)
        _ACTIVE = set(self.names)
        if self.conv_mode is not None:
            _MODE = CONV_MODES[self.conv_mode]
        return self

    def __exit__(self, *exc):
        global _ACTIVE, _MODE
        _ACTIVE, _MODE = self._prev
        return False


def _on(feature: str) -> bool:
    return _ENABLED and feature in _ACTIVE


def set_conv_mode(mode: str) -> None:
    global _MODE
    _MODE = CONV_MODES[mode]


def get_conv_mode() -> str:
    return {v: k for k, v in CONV_MODES.items()}[_MODE]


class _ConvFn(jt.Function):
    """Autograd wrapper: forward/backward-data/backward-weights ops (bias handled outside)."""

    def __init__(self, stride, padding, dilation, groups, mode, layout=0):
        self.cfg = (stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups)
        self.mode, self.layout = mode, layout

    def execute(self, x, w):
        self.x, self.w = x, w
        return _OPS.pranet_conv([x, w], *self.cfg, self.mode, 0, self.layout)

    def grad(self, dy):
        sh, sw, ph, pw, dh, dw, g = self.cfg
        x, w = self.x, self.w
        xh, xw = (x.shape[1], x.shape[2]) if self.layout & 1 else (x.shape[2], x.shape[3])
        dx = _OPS.pranet_conv_bwd_x(w, dy, xh, xw, sh, sw, ph, pw, dh, dw, g, self.mode, self.layout)
        dwt = _OPS.pranet_conv_bwd_w(x, dy, w.shape[2], w.shape[3], sh, sw, ph, pw, dh, dw, g, self.mode,
                                     self.layout)
        return dx, dwt


def _pair(v):
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _usable3(x, w, feature: str) -> bool:
    """The fast ops apply: feature on, CPU, float32 input and weight, ops compiled (any rank)."""
    return (_on(feature) and not jt.flags.use_cuda and str(x.dtype) == "float32" and str(w.dtype) == "float32"
            and available())


def _usable(x, w, feature: str = "conv") -> bool:
    return x.ndim == 4 and _usable3(x, w, feature)


def _no_grad_needed(*vs) -> bool:
    """No gradient can flow to any of ``vs`` (None entries ignored): the forward-only ops apply."""
    return jt.flags.no_grad or all(v is None or v.is_stop_grad() for v in vs)


ACTIVATIONS = {None: 0, "relu": 1, "gelu": 2}


def _activate(y, act: Optional[str]):
    return nn.relu(y) if act == "relu" else nn.gelu(y) if act == "gelu" else y


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu: bool = False, layout: int = 0,
           feature: str = "conv", act: Optional[str] = None):
    """``nn.conv2d`` (float32) through the fast ops; falls back to Jittor's own otherwise.

    ``layout`` bit 0: ``x`` is NHWC, bit 1: the result is NHWC (PVTv2's token-major tensors are NHWC
    views, so its convolutions need no transposes); 0 = NCHW in and out.  ``act`` ("relu" or "gelu",
    exact erf GELU; ``relu=True`` is short for "relu") is applied to the result, fused into the
    convolution when no gradient is needed.
    """
    act = "relu" if relu else act
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(a for a in ACTIVATIONS if a)} or None")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if not _usable(x, weight, feature):
        if layout & 1:
            x = x.transpose(0, 3, 1, 2)
        y = _activate(nn.conv2d(x, weight, bias, stride, padding, dilation, groups), act)
        return y.transpose(0, 2, 3, 1) if layout & 2 else y
    if _no_grad_needed(x, weight, bias):
        ins = [x, weight] + ([bias] if bias is not None else [])
        return _OPS.pranet_conv(ins, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
                                groups, _MODE, ACTIVATIONS[act], int(layout))
    y = _ConvFn(stride, padding, dilation, groups, _MODE, int(layout))(x, weight)
    if bias is not None:
        y = y + (bias if layout & 2 else bias.reshape(1, -1, 1, 1))
    return _activate(y, act)


def linear(x, weight, bias=None, residual=None):
    """``residual + (x @ weight.T + bias)`` as one GEMM and one multi-threaded epilogue when no
    gradient is needed (Jittor adds the bias and the residual in single-threaded kernels);
    Jittor's own ops otherwise."""
    if not (_usable3(x, weight, "linear") and (bias is None or str(bias.dtype) == "float32")
            and (residual is None or str(residual.dtype) == "float32") and _no_grad_needed(x, weight, bias, residual)):
        y = nn.matmul_transpose(x, weight)
        y = y if bias is None else y + bias
        return y if residual is None else residual + y
    ins = [x, weight] + ([bias] if bias is not None else []) + ([residual] if residual is not None else [])
    return _OPS.pranet_linear(ins, int(bias is not None), int(residual is not None))


def _like(x, weight):
    """``x`` in ``weight``'s floating-point type: a half-precision model (``engine.inference.cast_model``)
    meets float32 activations where parameter-free ops (resize, softmax) promoted them; every layer
    with weights then computes in its weights' type, as mixed precision does."""
    return x if x.dtype == weight.dtype else x.cast(weight.dtype)


class FastLinear(nn.Linear):
    """``nn.Linear`` through :func:`linear` (inference); same parameters and state-dict names."""

    def execute(self, x, residual=None):
        x = _like(x, self.weight)
        if residual is None and not _no_grad_needed(x, self.weight, self.bias):
            return nn.Linear.execute(self, x)
        return linear(x, self.weight, self.bias, residual)


class FastConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward uses :func:`conv2d`; same parameters and state-dict names.

    After :func:`fuse_for_inference` it holds BatchNorm-folded weights in private (non-parameter)
    attributes and may apply the following ReLU itself.
    """

    def execute(self, x):
        x = _like(x, self.weight)
        fused = getattr(self, "_fused", None)
        if fused is not None and not self.is_training():
            w, b, relu = fused
            return conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups, relu=relu)
        if not _usable(x, self.weight):
            return nn.Conv2d.execute(self, x)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _BatchNormFn(jt.Function):
    """Training-mode BatchNorm (+ residual, + ReLU): one parallel op forward (statistics +
    normalisation), one backward (the ReLU mask and the residual's gradient included)."""

    def __init__(self, eps: float, relu: bool = False):
        self.eps, self.relu = float(eps), int(relu)

    def execute(self, x, w, b, *residual):
        y, mean, var = _OPS.pranet_bn_fwd([x, w, b, *residual], self.eps, self.relu)
        self.saved = (x, w, mean, var, y if self.relu else None)
        self.has_res = bool(residual)
        return y, mean.stop_grad(), var.stop_grad()

    def grad(self, dy, *_):
        x, w, mean, var, y = self.saved
        ins = [x, dy, mean, var, w] + ([y] if y is not None else [])
        dx, dw, db, dres = _OPS.pranet_bn_bwd(ins, self.eps, self.relu, int(self.has_res))
        return (dx, dw, db, dres) if self.has_res else (dx, dw, db)


def batch_norm_train(x, weight, bias, eps: float, residual=None, relu: bool = False):
    """(y, batch mean, biased batch variance) of a training-mode BatchNorm whose output is
    ``act(bn(x) + residual)``; None when not applicable."""
    if not (_usable(x, weight, "bn") and str(bias.dtype) == "float32"
            and (residual is None or str(residual.dtype) == "float32")):
        return None
    extra = [residual] if residual is not None else []
    if jt.flags.no_grad:
        return _OPS.pranet_bn_fwd([x, weight, bias] + extra, float(eps), int(relu))
    y, mean, var = _BatchNormFn(eps, relu)(x, weight, bias, *extra)
    return y, mean, var


class FastBatchNorm2d(BatchNorm2d):
    """:class:`jittor_pranet.ops.BatchNorm2d` whose training-mode statistics, normalisation and
    backward run as two multi-threaded ops (Jittor's own CPU kernels are single-threaded).  Same
    semantics: biased variance normalises, the unbiased one updates ``running_var``; eval mode is
    unchanged."""

    def execute(self, x):
        x = _like(x, self.weight)
        y = self._train_op(x, None, False)
        return y if y is not None else BatchNorm2d.execute(self, x)

    def bn_act(self, x, residual=None, relu: bool = False):
        """``relu(self(x) + residual)`` (either part optional); in training one op forward and one
        backward, so the ReLU and the residual add cost no extra single-threaded passes."""
        y = self._train_op(x, residual, relu)
        return y if y is not None else BatchNorm2d.bn_act(self, x, residual, relu)

    def _train_op(self, x, residual, relu):
        if not self.is_training() or (self.sync_stats and jt.in_mpi):  # SyncBN: the plain module
            return None
        out = batch_norm_train(x, self.weight, self.bias, self.eps, residual, relu)
        if out is None:
            return None
        y, mean, var = out
        self.track_batch_statistics(mean, var, x.numel() // self.num_features)
        return y


class _AttnFn(jt.Function):
    def __init__(self, heads: int, scale: float):
        self.heads, self.scale = int(heads), float(scale)

    def execute(self, q, kv):
        out, p = _OPS.pranet_attn_fwd(q, kv, self.heads, self.scale)
        self.saved = (q, kv, p)
        return out, p.stop_grad()

    def grad(self, dout, *_):
        q, kv, p = self.saved
        dq, dkv = _OPS.pranet_attn_bwd(q, kv, p, dout, self.heads, self.scale)
        return dq, dkv


def attention(q, kv, heads: int, scale: float):
    """``concat_h softmax(scale Q_h K_h^T) V_h`` on token-major ``q`` [B, N, C] and ``kv`` [B, M, 2C]
    (PVTv2's layout) without materialising per-head transposes; None when not applicable."""
    if not (q.ndim == 3 and _usable3(q, kv, "attention")):
        return None
    if jt.flags.no_grad:
        return _OPS.pranet_attn_fwd(q, kv, int(heads), float(scale))[0]
    return _AttnFn(heads, scale)(q, kv)[0]



class _LayerNormFn(jt.Function):
    def __init__(self, eps: float):
        self.eps = float(eps)

    def execute(self, x, w, b):
        y, mean, rstd = _OPS.pranet_ln_fwd(x, w, b, self.eps)
        self.saved = (x, w, mean, rstd)
        return y

    def grad(self, dy):
        x, w, mean, rstd = self.saved
        dx, dw, db = _OPS.pranet_ln_bwd(x, dy, mean, rstd, w)
        return dx, dw, db


class FastLayerNorm(LayerNorm):
    """:class:`jittor_pranet.ops.LayerNorm` as one multi-threaded op forward and one backward
    (same parameters; two-pass statistics in double)."""

    def execute(self, x):
        x = _like(x, self.weight)
        if not (_usable3(x, self.weight, "norm") and str(self.bias.dtype) == "float32"):
            return LayerNorm.execute(self, x)
        if _no_grad_needed(x, self.weight, self.bias):
            return _OPS.pranet_ln_fwd(x, self.weight, self.bias, float(self.eps))[0]
        return _LayerNormFn(self.eps)(x, self.weight, self.bias)


class _GeluFn(jt.Function):
    def execute(self, x):
        self.x = x
        return _OPS.pranet_gelu(x, x, 0)

    def grad(self, dy):
        return _OPS.pranet_gelu(self.x, dy, 1)


class FastGELU(nn.GELU):
    """Exact (erf) GELU as one multi-threaded op (Jittor's own element-wise kernels are serial)."""

    def execute(self, x):
        if not _usable3(x, x, "norm"):
            return nn.GELU.execute(self, x)
        if _no_grad_needed(x):
            return _OPS.pranet_gelu(x, x, 0)
        return _GeluFn()(x)


def _fast_attention_class():
    from .models.pvtv2 import Attention

    class FastAttention(Attention):
        """PVTv2 spatial-reduction attention with the fused attention op (same parameters)."""

        def execute(self, x, h: int, w: int, residual=None):
            """``residual`` (inference only): added to the output inside the projection GEMM."""
            b, n, c = x.shape
            if not _usable3(x, self.q.weight, "attention"):
                y = Attention.execute(self, x, h, w)
                return y if residual is None else residual + y
            q = self.q(x)
            src = x
            if self.sr_ratio > 1 and not _usable3(x, self.sr.weight, "tokens"):
                red = self.sr(x.transpose(0, 2, 1).reshape(b, c, h, w))
                src = self.norm(red.reshape(b, c, -1).transpose(0, 2, 1))
            elif self.sr_ratio > 1:
                sr = self.sr
                red = conv2d(x.reshape(b, h, w, c), sr.weight, sr.bias, sr.stride, sr.padding, sr.dilation,
                             sr.groups, layout=3, feature="tokens")
                src = self.norm(red.reshape(b, -1, c))
            kv = self.kv(src)
            if jt.flags.no_grad:
                out = _OPS.pranet_attn_fwd(q, kv, self.num_heads, float(self.scale))[0]
            else:
                out = _AttnFn(self.num_heads, self.scale)(q, kv)[0]
            if residual is not None:
                return linear(out, self.proj.weight, self.proj.bias, residual)
            return self.proj(out)

    FastAttention._base = Attention
    return FastAttention


def _fast_pvt_classes():
    """(original, fast) class pairs for PVTv2's token-major convolutions (no NCHW transposes)."""
    from .models.pvtv2 import Block, DWConv, Mlp, OverlapPatchEmbed

    class FastDWConv(DWConv):
        def execute(self, x, h: int, w: int, act: Optional[str] = None):
            """``act`` ("gelu", inference): applied inside the convolution (oneDNN post-op)."""
            b, n, c = x.shape
            conv = self.dwconv
            if not _usable3(x, conv.weight, "tokens"):
                return _activate(DWConv.execute(self, x, h, w), act)
            y = conv2d(x.reshape(b, h, w, c), conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation,
                       conv.groups, layout=3, feature="tokens", act=act)
            return y.reshape(b, n, c)

    class FastOverlapPatchEmbed(OverlapPatchEmbed):
        def execute(self, x):
            p = self.proj
            if not _usable3(x, p.weight, "tokens"):
                return OverlapPatchEmbed.execute(self, x)
            y = conv2d(x, p.weight, p.bias, p.stride, p.padding, p.dilation, p.groups, layout=2, feature="tokens")
            b, h, w, c = y.shape
            return self.norm(y.reshape(b, h * w, c)), h, w

    class FastMlp(Mlp):
        """Inference (``jt.no_grad``): fc1, the depth-wise conv with GELU fused into it, and fc2 with
        the block's residual added in its GEMM epilogue; the plain graph otherwise."""

        def execute(self, x, h: int, w: int, residual=None):
            if not jt.flags.no_grad:
                y = Mlp.execute(self, x, h, w)
                return y if residual is None else residual + y
            hid = self.fc1(x)
            conv = self.dwconv.dwconv
            if _usable3(hid, conv.weight, "tokens") and _on("linear") and isinstance(self.dwconv, FastDWConv):
                hid = self.dwconv(hid, h, w, act="gelu")
            else:
                hid = self.act(self.dwconv(hid, h, w))
            return linear(hid, self.fc2.weight, self.fc2.bias, residual)

    class FastBlock(Block):
        """Inference (``jt.no_grad``): the two residual adds happen inside the projection GEMMs
        (drop-path is the identity in eval mode); the plain graph otherwise."""

        def execute(self, x, h: int, w: int):
            if self.is_training() or not jt.flags.no_grad:
                return Block.execute(self, x, h, w)
            x = self.attn(self.norm1(x), h, w, residual=x)
            return self.mlp(self.norm2(x), h, w, residual=x)

    return [(DWConv, FastDWConv), (OverlapPatchEmbed, FastOverlapPatchEmbed), (Mlp, FastMlp), (Block, FastBlock)]


_SWAPS = None


def accelerate(model, enable: bool = True):
    """Switch ``model``'s modules to the fast classes in place: ``nn.Conv2d``, ``BatchNorm2d``,
    ``nn.Linear``, ``LayerNorm``, ``nn.GELU``, PVTv2's attention/MLP/block/patch-embedding/depth-wise
    conv and Res2Net's block and encoder (same parameters, same state dict); ``enable=False``
    switches them back."""
    global _SWAPS
    if enable and not _ENABLED:  # JITTOR_PRANET_FAST=0: leave Jittor's own modules in place
        return model
    if _SWAPS is None:
        fa = _fast_attention_class()
        _SWAPS = [(nn.Conv2d, FastConv2d), (BatchNorm2d, FastBatchNorm2d), (fa._base, fa),
                  (LayerNorm, FastLayerNorm), (nn.GELU, FastGELU), (nn.Linear, FastLinear)]
        _SWAPS += _fast_pvt_classes() + _fast_res2net_classes()
    for m in model.modules():
        for plain, fast_cls in _SWAPS:
            if enable and type(m) is plain:
                m.__class__ = fast_cls
                break
            if not enable and type(m) is fast_cls:
                if fast_cls is FastConv2d and getattr(m, "_fused", None) is not None:
                    break
                m.__class__ = plain
                break
    return model


# ---------------------------------------------------------------------------------------------
# inference-only block ops (no gradient): Res2Net's eval forward with BatchNorm folded

POOL_KINDS = {"max": 0, "avg": 1, "avg_valid": 2}


def _ops():
    """The compiled ops, or a clear error (the block ops below have no Jittor fallback)."""
    if jt.flags.use_cuda or _load_ops() is None:
        raise RuntimeError(f"jittor-pranet's CPU ops are not available: {unavailable_reason()}")
    return _OPS


def pool2d(x, kind: str, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False,
           channels: Optional[tuple] = None):
    """Max / average pooling of NCHW ``x`` (or of its channel window ``channels=(first, count)``) as
    one multi-threaded op with PyTorch's semantics: ``avg`` counts the zero padding
    (``count_include_pad=True``), ``avg_valid`` does not; ``ceil_mode`` as ``nn.AvgPool2d``.
    Inference only (no backward), CPU fast ops only, like the two helpers below."""
    first, count = channels if channels is not None else (0, -1)
    return _ops().pranet_pool(x, POOL_KINDS[kind], int(kernel), int(stride), int(padding), int(ceil_mode),
                            int(first), int(count))


def conv2d_window(x, weight, bias, stride=1, padding=0, dilation=1, groups: int = 1, first: int = 0,
                  addend=None, addend_first: int = 0, relu: bool = False):
    """``act(conv2d(x[:, first:first+C] (+ addend[:, addend_first:addend_first+C]), weight) + bias)``
    for NCHW float32 tensors, C = ``weight.shape[1] * groups``; the windows are read in place."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    ins = [x, weight, bias] + ([addend] if addend is not None else [])
    return _ops().pranet_conv_fused(ins, sh, sw, ph, pw, dh, dw, int(groups), _MODE, int(relu), int(first),
                                  int(addend_first) if addend is not None else -1)


def cat_conv1x1(pieces, weight, bias, residual=None, relu: bool = False):
    """``act(conv1x1(concat(windows), weight) + bias (+ residual))`` where ``pieces`` is a list of
    ``(tensor, first_channel)`` windows of ``weight.shape[1] / len(pieces)`` channels each."""
    ins = [t for t, _ in pieces] + [weight, bias] + ([residual] if residual is not None else [])
    return _ops().pranet_cat_gemm(ins, [int(o) for _, o in pieces], int(relu), int(residual is not None))


# ---------------------------------------------------------------------------------------------
# BatchNorm folding for inference


class _FoldedBatchNorm(FastBatchNorm2d):
    """A BatchNorm whose affine transform lives in the preceding convolution (eval mode only)."""

    def execute(self, x):
        if self.is_training():
            return FastBatchNorm2d.execute(self, x)
        return x


def _folded(conv, bn):
    """(weight, bias) of ``bn(conv(x))`` in eval mode as one convolution (folded in float64)."""
    import numpy as np

    w = conv.weight.numpy().astype(np.float64)
    scale = bn.weight.numpy().astype(np.float64) / np.sqrt(bn.running_var.numpy().astype(np.float64) + bn.eps)
    shift = bn.bias.numpy().astype(np.float64) - bn.running_mean.numpy().astype(np.float64) * scale
    if conv.bias is not None:
        shift = shift + conv.bias.numpy().astype(np.float64) * scale
    fw = jt.array((w * scale.reshape(-1, 1, 1, 1)).astype(np.float32)).stop_grad()
    fb = jt.array(shift.astype(np.float32)).stop_grad()
    return fw, fb


def _fold(conv, bn, relu: bool = False) -> None:
    """Make ``conv`` compute ``bn(conv(x))`` (and the ReLU that always follows it, when ``relu``)."""
    fw, fb = _folded(conv, bn)
    conv.__class__ = FastConv2d
    conv._fused = (fw, fb, bool(relu))
    bn.__class__ = _FoldedBatchNorm


def _fast_res2net_classes():
    """(original, fast) class pairs for Res2Net-v1b's eval forward once :func:`fuse_for_inference`
    folded the BatchNorms (in training the blocks' ``bn_act`` calls already reach
    :meth:`FastBatchNorm2d.bn_act`)."""
    from .models.res2net import Bottle2neck, Res2NetV1b

    class FastBottle2neck(Bottle2neck):
        """Folded eval: ``2 + nums`` multi-threaded ops: conv1 (+ReLU), each 3x3 conv reading its
        channel window of conv1's output in place (adding the previous piece while staging it,
        +ReLU), and conv3 over the pieces (no concatenation) + residual + ReLU.  Same arithmetic as
        the plain forward's single-threaded slice/add/ReLU/concat ops."""

        def execute(self, x):
            blk = getattr(self, "_folded_block", None)
            if (blk is not None and not self.is_training() and _usable(x, blk["conv1"][0])
                    and _no_grad_needed(x)):  # the block ops have no backward
                return self._folded_forward(x, blk)
            return Bottle2neck.execute(self, x)

        def _folded_forward(self, x, blk):
            w1, b1 = blk["conv1"]
            out1 = conv2d_window(x, w1, b1, relu=True)
            wd = self.width
            pieces = []
            for i, conv in enumerate(self.convs):
                wi, bi = blk["convs"][i]
                prev = None if (i == 0 or self.stype == "stage") else pieces[-1][0]
                piece = conv2d_window(out1, wi, bi, conv.stride, conv.padding, conv.dilation, conv.groups,
                                      first=i * wd, addend=prev, relu=True)
                pieces.append((piece, 0))
            if self.scale != 1:
                if self.stype == "stage":  # AvgPool2d(3, stride, 1) of the last window
                    pieces.append((pool2d(out1, "avg", 3, self.stride, 1, channels=(self.nums * wd, wd)), 0))
                else:
                    pieces.append((out1, self.nums * wd))
            residual = x
            if self.downsample is not None:  # AvgPoolCeil, conv (BatchNorm folded), folded BatchNorm
                pool, conv, bn = self.downsample[0], self.downsample[1], self.downsample[2]
                r = x if pool.k == 1 else pool2d(x, "avg_valid", pool.k, pool.k, ceil_mode=True)
                residual = bn(conv(r))
            w3, b3 = blk["conv3"]
            return cat_conv1x1(pieces, w3, b3, residual, relu=True)

    class FastRes2NetV1b(Res2NetV1b):
        """Folded eval: the stem's BatchNorms and ReLUs live in its convolutions and the max-pool is
        one multi-threaded op."""

        def stem(self, x):
            c = self.conv1
            fused = getattr(c[6], "_fused", None)
            if (not self.is_training() and fused is not None and fused[2] and _usable(x, fused[0])
                    and _no_grad_needed(x)):  # the pooling op has no backward
                return pool2d(c[6](c[3](c[0](x))), "max", 3, 2, 1)  # MaxPool2d(3, 2, 1)
            return Res2NetV1b.stem(self, x)

    return [(Bottle2neck, FastBottle2neck), (Res2NetV1b, FastRes2NetV1b)]


def _conv_bn_pairs(model):
    """(conv, bn, relu) triples where the BN directly follows the conv in every forward path of our
    models, and ``relu`` says a ReLU always follows the BN."""
    from .models.layers import BasicConv2d
    from .models.res2net import Bottle2neck, Res2NetV1b

    pairs = []
    for m in model.modules():
        if isinstance(m, BasicConv2d):
            pairs.append((m.conv, m.bn, False))
        elif isinstance(m, Bottle2neck):
            pairs.append((m.conv1, m.bn1, True))
            pairs.extend((c, b, True) for c, b in zip(m.convs, m.bns))
            pairs.append((m.conv3, m.bn3, False))
            if m.downsample is not None:
                pairs.append((m.downsample[1], m.downsample[2], False))
        elif isinstance(m, Res2NetV1b):
            stem = m.conv1
            pairs.extend([(stem[0], stem[1], True), (stem[3], stem[4], True), (stem[6], m.bn1, True)])
    return pairs


def fuse_for_inference(model):
    """Fold every BatchNorm that follows a convolution into it (eval mode only; in place), and run
    Res2Net's blocks as fused ops.

    The model's parameters and state dict are untouched (the folded weights are private
    attributes), ``model.train()`` runs the unfused graph again, and :func:`unfuse` removes the
    folding.  The folded weights are a snapshot: call again after loading new weights or training
    steps (or :func:`unfuse`), else eval mode keeps running the old ones.  Inputs that need a
    gradient take the folded convolutions but not Res2Net's block ops (they have no backward).
    """
    if not enabled():
        return model
    accelerate(model)
    for conv, bn, relu in _conv_bn_pairs(model):
        _fold(conv, bn, relu)
    for m in model.modules():
        if type(m).__name__ == "FastBottle2neck":
            m._folded_block = {"conv1": m.conv1._fused[:2], "convs": [c._fused[:2] for c in m.convs],
                               "conv3": m.conv3._fused[:2]}
    model.eval()
    return model


def unfuse(model):
    for m in model.modules():
        if isinstance(m, FastConv2d) and getattr(m, "_fused", None) is not None:
            m._fused = None
        if type(m) is _FoldedBatchNorm:
            m.__class__ = FastBatchNorm2d
        if getattr(m, "_folded_block", None) is not None:
            m._folded_block = None
    return model


# ---------------------------------------------------------------------------------------------
# threads


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
    """Threads for Jittor's oneDNN calls (OpenMP, this thread); Jittor's own kernels are serial."""
    lib = _libgomp()
    if lib is not None:
        lib.omp_set_num_threads(int(n))


def get_num_threads() -> int:
    lib = _libgomp()
    return int(lib.omp_get_max_threads()) if lib is not None else 1
