"""Inference folding: every BatchNorm that follows a convolution is folded into it, and Res2Net's
blocks and stem run as a few fused CPU ops.

:func:`fuse_for_inference` is an explicit transform (in the manner of mmcv's ``fuse_conv_bn``): it
replaces each module that owns a convolution -> BatchNorm pair by a folded counterpart and returns
the model.  The replacements say what they are:

* :class:`FoldedConvBN` for a :class:`~jittor_pranet.models.layers.BasicConv2d` (decoders);
* :class:`FoldedBottle2neck` for a Res2Net block: conv1 (+ReLU), each 3x3 conv reading its channel
  window of conv1's output in place (adding the previous piece while staging it, +ReLU), conv3
  over the pieces with no concatenation (+ residual + ReLU): ``2 + nums`` multi-threaded ops;
* :class:`FoldedRes2NetV1b` for the encoder: its deep stem as three folded convolutions (+ReLU)
  and one max-pool op.

Invariants:

* **Same parameters, same state dict.**  A folded module shares every child and parameter of the
  module it replaces, under the same names, so ``state_dict()`` has the same keys and values
  (the unfolded parameters: it is still a checkpoint of the model).  The folded weights are
  private attributes, never saved.
* **A snapshot, for evaluation only.**  The folded weights are computed (in float64) when the
  transform runs.  In eval mode the folded modules use them; in training mode they run their
  unfolded children, so ``model.train()`` trains the real parameters -- but after training steps
  or loading other weights, eval mode would use the stale snapshot: call
  :func:`fuse_for_inference` again (it re-folds modules already folded) or :func:`unfuse`.
* **Float32, forward only.**  The fused block ops have no backward: an input that needs a
  gradient (saliency-style use) runs the unfolded block instead; the folded convolutions
  themselves differentiate.  With the kernels off (:mod:`jittor_pranet.kernels.flags`, CUDA) the
  folded convolutions run Jittor's own convolution and the blocks their unfolded graph.
* **The root may be replaced**: use the returned model (a Res2Net encoder passed on its own comes
  back as a :class:`FoldedRes2NetV1b` sharing its parameters).

Outputs equal the unfolded model's within float32 rounding (``tests/kernels/test_fast.py`` checks them
against PyTorch with the parity tolerance).
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import numpy as np

from . import kernels
from .kernels import conv as k_conv
from .kernels import pooling as k_pooling
from .kernels._common import no_grad_needed
from .models.encoders.res2net import Bottle2neck, Res2NetV1b
from .models.layers import BasicConv2d
from .ops import jt, match_dtype, max_pool3x3_s2

from jittor import nn

__all__ = ["fuse_for_inference", "unfuse", "fold_conv_bn", "FoldedConvBN", "FoldedBottle2neck", "FoldedRes2NetV1b",
           "is_folded", "folded_modules"]


def fold_conv_bn(conv: nn.Conv2d, bn) -> Tuple["jt.Var", "jt.Var"]:
    """(weight, bias) of ``bn(conv(x))`` in eval mode as one convolution (folded in float64,
    stored as float32, no gradient)."""
    w = conv.weight.numpy().astype(np.float64)
    scale = bn.weight.numpy().astype(np.float64) / np.sqrt(bn.running_var.numpy().astype(np.float64) + bn.eps)
    shift = bn.bias.numpy().astype(np.float64) - bn.running_mean.numpy().astype(np.float64) * scale
    if conv.bias is not None:
        shift = shift + conv.bias.numpy().astype(np.float64) * scale
    fw = jt.array((w * scale.reshape(-1, 1, 1, 1)).astype(np.float32)).stop_grad()
    fb = jt.array(shift.astype(np.float32)).stop_grad()
    return fw, fb


def _folded_conv(conv: nn.Conv2d, folded, x, relu: bool = False):
    w, b = folded
    return k_conv.conv2d(match_dtype(x, w), w, b, conv.stride, conv.padding, conv.dilation, conv.groups, relu=relu)


class _Folded:
    """Shared by the folded modules: adopt the replaced module's attributes, remember it for
    :func:`unfuse`, fold its weights (again, on :meth:`refold`)."""

    def _adopt(self, module: nn.Module) -> None:
        self.__dict__.update(vars(module))  # children and parameters by reference, in their order
        self._unfolded = [module]  # a list: not a child module (not walked, not in the state dict)
        self.refold()

    @property
    def unfolded(self) -> nn.Module:
        """The module this one replaced (sharing all its parameters)."""
        return self._unfolded[0]

    def refold(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


class FoldedConvBN(_Folded, nn.Module):
    """A :class:`BasicConv2d` (conv -> BatchNorm) as one convolution with folded weights in eval
    mode; its ``conv`` and ``bn`` children are the replaced module's."""

    def __init__(self, module: BasicConv2d):
        self._adopt(module)

    def refold(self) -> None:
        self._folded = fold_conv_bn(self.conv, self.bn)

    def execute(self, x):
        if self.is_training():
            return self.bn(self.conv(x))
        return _folded_conv(self.conv, self._folded, x)


def _block_ops_apply(x, weight) -> bool:
    """The fused block ops can run: convolution and pooling kernels on, float32, no gradient needed."""
    return k_conv.usable(x, weight) and k_pooling.ops() is not None and no_grad_needed(x)


class FoldedBottle2neck(_Folded, Bottle2neck):
    """A Res2Net block with its four BatchNorm kinds folded (conv1, the 3x3 convs, conv3 and the
    downsample's conv), run as fused ops in eval mode; training runs the block's own forward."""

    def __init__(self, module: Bottle2neck):
        self._adopt(module)

    def refold(self) -> None:
        ds = self.downsample
        self._conv1 = fold_conv_bn(self.conv1, self.bn1)
        self._convs = [fold_conv_bn(c, b) for c, b in zip(self.convs, self.bns)]
        self._conv3 = fold_conv_bn(self.conv3, self.bn3)
        self._downsample = fold_conv_bn(ds.conv, ds.bn) if ds is not None else None

    def execute(self, x):
        if self.is_training() or not _block_ops_apply(x, self._conv1[0]):
            return Bottle2neck.execute(self, x)
        out1 = k_conv.conv2d_window(x, *self._conv1, relu=True)
        wd = self.width
        pieces: List[tuple] = []
        for i, conv in enumerate(self.convs):
            prev = None if (i == 0 or self.stype == "stage") else pieces[-1][0]
            piece = k_conv.conv2d_window(out1, *self._convs[i], conv.stride, conv.padding, conv.dilation,
                                         conv.groups, first=i * wd, addend=prev, relu=True)
            pieces.append((piece, 0))
        if self.scale != 1:
            if self.stype == "stage":  # AvgPool2d(3, stride, 1) of the last window
                pieces.append((k_pooling.pool2d(out1, "avg", 3, self.stride, 1, channels=(self.nums * wd, wd)), 0))
            else:
                pieces.append((out1, self.nums * wd))
        residual = x
        if self.downsample is not None:  # average pool (ceil mode, padding not counted), folded 1x1 conv
            k = self.downsample.pool.k
            r = x if k == 1 else k_pooling.pool2d(x, "avg_valid", k, k, ceil_mode=True)
            residual = _folded_conv(self.downsample.conv, self._downsample, r)
        return k_conv.cat_conv1x1(pieces, *self._conv3, residual, relu=True)


class FoldedRes2NetV1b(_Folded, Res2NetV1b):
    """A Res2Net-v1b encoder whose stem runs three folded convolutions (+ReLU) and one max-pool
    op in eval mode (its blocks are folded separately); training runs the encoder's own stem."""

    def __init__(self, module: Res2NetV1b):
        self._adopt(module)

    def refold(self) -> None:
        self._stem = [fold_conv_bn(conv, bn) for conv, bn in self.stem_conv_bns()]

    def stem(self, x):
        if self.is_training():
            return Res2NetV1b.stem(self, x)
        use_ops = _block_ops_apply(x, self._stem[0][0])
        for (conv, _), folded in zip(self.stem_conv_bns(), self._stem):
            x = _folded_conv(conv, folded, x, relu=True)
        return k_pooling.pool2d(x, "max", 3, 2, 1) if use_ops else max_pool3x3_s2(x)  # MaxPool2d(3, 2, 1)


_FOLDED_KINDS = ((BasicConv2d, FoldedConvBN), (Bottle2neck, FoldedBottle2neck), (Res2NetV1b, FoldedRes2NetV1b))


def is_folded(module: nn.Module) -> bool:
    return isinstance(module, _Folded)


def _folded_version(module: nn.Module) -> nn.Module:
    if isinstance(module, _Folded):
        module.refold()
        return module
    for plain, folded in _FOLDED_KINDS:
        if isinstance(module, plain):
            return folded(module)
    return module


def _unfolded_version(module: nn.Module) -> nn.Module:
    return module.unfolded if isinstance(module, _Folded) else module


def _transform(root: nn.Module, swap: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """Apply ``swap`` to ``root`` and to every module below it (each once), replacing each child
    by what ``swap`` returns; returns the new root."""
    seen = set()

    def visit(module: nn.Module) -> nn.Module:
        module = swap(module)
        if id(module) in seen:
            return module
        seen.add(id(module))
        slots = module.layers if isinstance(module, nn.Sequential) else vars(module)
        for name, child in list(slots.items()):
            if isinstance(child, nn.Module) and not name.startswith("_"):
                new = visit(child)
                if new is not child:
                    slots[name] = new
        return module

    return visit(root)


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """The folded inference model (see the module docstring for what changes and the invariants),
    in eval mode; ``model`` unchanged when the CPU kernels are off or not compiled here."""
    if not kernels.enabled():
        return model
    model = _transform(model, _folded_version)
    model.eval()
    return model


def unfuse(model: nn.Module) -> nn.Module:
    """Undo :func:`fuse_for_inference`: the original modules back in place (returns the root)."""
    return _transform(model, _unfolded_version)


def folded_modules(model: nn.Module) -> List[nn.Module]:
    """The folded modules of ``model`` (empty when it was not fused)."""
    return [m for m in model.modules() if is_folded(m)]

