"""PraNet's structure loss (weighted BCE + weighted IoU) and PraNet-V2's background term.

The boundary weight ``1 + 5 |avgpool31(mask) - mask|`` uses PyTorch's ``avg_pool2d(k=31, s=1,
p=15)`` semantics (zero padding counted, divisor 961).  We compute the box sum as ``B_h @ mask @ B_w``
with banded 0/1 matrices: exact for any input size (Jittor's Pool refuses inputs not larger than
the kernel) and cheap, since the mask needs no gradient.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from ..models.catalog import V2_OUTPUTS
from ..ops import jt

BOX = 31


@lru_cache(maxsize=32)
def _band(n: int, radius: int) -> np.ndarray:
    idx = np.arange(n)
    return (np.abs(idx[:, None] - idx[None, :]) <= radius).astype(np.float32)


def boundary_weight(mask: "jt.Var", kernel: int = BOX) -> "jt.Var":
    """``1 + 5 * |avg_pool2d(mask, kernel, 1, kernel//2) - mask|`` (count_include_pad=True)."""
    n, c, h, w = mask.shape
    r = kernel // 2
    flat = mask.reshape(n * c, h, w)
    box = jt.matmul(jt.matmul(jt.array(_band(h, r)), flat), jt.array(_band(w, r)))
    avg = box.reshape(n, c, h, w) / float(kernel * kernel)
    return (1 + 5 * jt.abs(avg - mask)).stop_grad()


def bce_with_logits(logits: "jt.Var", target: "jt.Var") -> "jt.Var":
    """Element-wise, numerically stable: max(x,0) - x*y + log(1 + exp(-|x|)) (PyTorch's formula)."""
    return jt.maximum(logits, 0) - logits * target + jt.log(1 + jt.exp(-jt.abs(logits)))


def _weighted_mean(values, weight):
    return (weight * values).sum(dims=(2, 3)) / weight.sum(dims=(2, 3))


def structure_loss(pred: "jt.Var", mask: "jt.Var", pred_bg: "jt.Var" = None, mask_bg: "jt.Var" = None,
                   bg_weight: float = 0.8, weight: "jt.Var" = None) -> "jt.Var":
    """Weighted BCE + weighted IoU on ``pred`` vs ``mask``; with ``pred_bg`` adds
    ``bg_weight`` x weighted BCE of the background map against ``mask_bg`` (PraNet-V2)."""
    weit = boundary_weight(mask) if weight is None else weight
    wbce = _weighted_mean(bce_with_logits(pred, mask), weit)
    prob = jt.sigmoid(pred)
    inter = (prob * mask * weit).sum(dims=(2, 3))
    union = ((prob + mask) * weit).sum(dims=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    total = wbce + wiou
    if pred_bg is not None:
        total = total + bg_weight * _weighted_mean(bce_with_logits(pred_bg, mask_bg), weit)
    return total.mean()


def pranet_loss(outputs: Sequence["jt.Var"], mask: "jt.Var", bg_weight: float = 0.8,
                dual: Optional[bool] = None) -> "jt.Var":
    """Sum of the structure loss over the side outputs.

    V1 (``dual=False``): plain structure loss on each. V2 (``dual=True``: fg2..fg5 then bg2..bg5): each
    fg/bg pair with the background BCE against ``1 - mask``, as the official MyTrain_med.py.  The trainer
    passes ``dual`` from the model's catalog row; ``None`` (callers without one) reads the PraNet-V2
    output layout, fg and bg outputs for each of the V1 stages.
    """
    weit = boundary_weight(mask)
    if dual is None:
        dual = len(outputs) == len(V2_OUTPUTS)
    if dual:
        half = len(outputs) // 2
        bg_mask = (1 - mask).stop_grad()
        return sum(structure_loss(outputs[i], mask, outputs[i + half], bg_mask, bg_weight, weit) for i in range(half))
    return sum(structure_loss(o, mask, weight=weit) for o in outputs)
