"""Multi-class losses of the official EMCAD / MIST / MERIT trainers (PraNet-V2 ``multiclass_seg``).

For every supervised subset S of the four stage outputs (default: all 15 non-empty subsets, the
official ``supervision="mutation"``), the logits of S are summed and scored:

* DSRA models (8 outputs: four fg maps then four bg maps)::

      0.5 * CE(sum fg, label) + 0.7 * Dice(softmax(sum fg), label) + 0.3 * BCEWithLogits(sum bg, bg_mask)

  where ``bg_mask`` channel c is 1 where the label is *not* c;
* single-supervision models (4 outputs): ``0.3 * CE + 0.7 * Dice``.

Dice is the official ``DiceLoss``: per class ``1 - (2 sum(p t) + 1e-5) / (sum(p^2) + sum(t) + 1e-5)``
over the whole batch (not per image), then the mean over *all* classes, background included.
CE is the mean over pixels; BCE the mean over pixels and channels.

Shared work is done once: the one-hot target, its per-class sums and the background mask are built
once per batch; each subset sum is one addition onto the sum of the subset without its last member
(11 additions for 15 subsets instead of 17, in the official summation order); softmax and
log-softmax of a sum share one exponential.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..models.catalog import EMCAD_DUAL_OUTPUTS
from ..ops import jt
from .binary import bce_with_logits

SUPERVISIONS = ("mutation", "deep_supervision", "last_layer")
DICE_SMOOTH = 1e-5


def output_subsets(n: int = 4, supervision: str = "mutation") -> List[Tuple[int, ...]]:
    """The supervised subsets of ``n`` outputs: all non-empty ones (mutation), the singletons
    (deep_supervision) or the last output alone (last_layer).  Members in ascending order."""
    if supervision == "mutation":
        return [tuple(i for i in range(n) if mask >> i & 1) for mask in range(1, 1 << n)]
    if supervision == "deep_supervision":
        return [(i,) for i in range(n)]
    if supervision == "last_layer":
        return [(n - 1,)]
    raise ValueError(f"unknown supervision {supervision!r}; choose one of {SUPERVISIONS}")


def subset_sums(maps: Sequence["jt.Var"], subsets: Sequence[Tuple[int, ...]]) -> Dict[Tuple[int, ...], "jt.Var"]:
    """``{S: sum(maps[i] for i in S)}``, each built from the sum of ``S`` minus its last member
    (memoised), i.e. ((a + b) + c) + d as the official loop, with no addition done twice."""
    memo: Dict[Tuple[int, ...], jt.Var] = {}

    def get(s: Tuple[int, ...]):
        if s not in memo:
            memo[s] = maps[s[0]] if len(s) == 1 else get(s[:-1]) + maps[s[-1]]
        return memo[s]

    return {s: get(tuple(s)) for s in subsets}


def one_hot(labels: "jt.Var", num_classes: int, dtype: str = "float32") -> "jt.Var":
    """[B, H, W] (or [B, 1, H, W]) integer class map -> [B, C, H, W] one-hot (no gradient)."""
    if labels.ndim == 4:
        labels = labels.reshape(labels.shape[0], labels.shape[2], labels.shape[3])
    if not str(labels.dtype).startswith("int"):
        labels = labels.int32()  # the official code casts float labels with .long() (truncation)
    classes = jt.array(np.arange(num_classes, dtype=np.int32).reshape(1, num_classes, 1, 1))
    return (labels.unsqueeze(1) == classes).cast(dtype).stop_grad()


class _Targets:
    """Per-batch target tensors shared by every subset."""

    def __init__(self, labels: "jt.Var", num_classes: int, dtype: str, class_weights: Optional[Sequence[float]]):
        self.onehot = one_hot(labels, num_classes, dtype)
        self.class_sum = self.onehot.sum(dims=(0, 2, 3)).stop_grad()  # sum(t * t) = sum(t) for 0/1 targets
        self.num_classes = num_classes
        w = np.ones(num_classes) if class_weights is None else np.asarray(class_weights, np.float64)
        if w.shape != (num_classes,):
            raise ValueError(f"class_weights needs {num_classes} values, got {w.shape}")
        self.class_weights = None if class_weights is None else jt.array(w.astype(dtype)).stop_grad()
        self._bg = None

    @property
    def bg_mask(self) -> "jt.Var":
        if self._bg is None:
            self._bg = (1 - self.onehot).stop_grad()
        return self._bg


def _ce_and_dice(logits: "jt.Var", t: _Targets) -> Tuple["jt.Var", "jt.Var"]:
    """Cross-entropy (mean over pixels) and the official soft Dice loss from one exponential."""
    shifted = logits - logits.max(dim=1, keepdims=True).stop_grad()  # shift-invariant: no gradient needed
    e = jt.exp(shifted)
    total = e.sum(dim=1, keepdims=True)
    prob = e / total
    log_prob = shifted - jt.log(total)
    ce = -(t.onehot * log_prob).sum(dim=1).mean()
    inter = (prob * t.onehot).sum(dims=(0, 2, 3))
    z_sum = (prob * prob).sum(dims=(0, 2, 3))
    per_class = 1 - (2 * inter + DICE_SMOOTH) / (z_sum + t.class_sum + DICE_SMOOTH)
    if t.class_weights is not None:
        per_class = per_class * t.class_weights
    return ce, per_class.sum() / t.num_classes


def cross_entropy_and_dice(logits: "jt.Var", labels: "jt.Var",
                           class_weights: Optional[Sequence[float]] = None) -> Tuple["jt.Var", "jt.Var"]:
    """``(CE, Dice)`` of one logit map [B, C, H, W] against integer labels [B, H, W]."""
    return _ce_and_dice(logits, _Targets(labels, logits.shape[1], str(logits.dtype), class_weights))


def _check(outputs: Sequence["jt.Var"], n: int, what: str) -> None:
    if len(outputs) != n:
        raise ValueError(f"{what} expects {n} outputs, got {len(outputs)}")


def multiclass_dsra_loss(outputs: Sequence["jt.Var"], labels: "jt.Var", supervision: str = "mutation",
                         weights: Tuple[float, float, float] = (0.5, 0.7, 0.3),
                         class_weights: Optional[Sequence[float]] = None) -> "jt.Var":
    """The official dual-supervision (DSRA) loss of 8 outputs ``(fg x4, bg x4)`` against labels [B, H, W].

    ``weights`` = (CE, Dice, background BCE); the default is the official 0.5 / 0.7 / 0.3.
    """
    _check(outputs, 8, "the DSRA loss")
    w_ce, w_dice, w_bce = weights
    fg, bg = list(outputs[:4]), list(outputs[4:])
    t = _Targets(labels, fg[0].shape[1], str(fg[0].dtype), class_weights)
    subsets = output_subsets(4, supervision)
    fg_sums, bg_sums = subset_sums(fg, subsets), subset_sums(bg, subsets)
    loss = None
    for s in subsets:
        ce, dice = _ce_and_dice(fg_sums[s], t)
        term = w_ce * ce + w_dice * dice + w_bce * bce_with_logits(bg_sums[s], t.bg_mask).mean()
        loss = term if loss is None else loss + term
    return loss


def multiclass_loss(outputs: Sequence["jt.Var"], labels: "jt.Var", supervision: str = "mutation",
                    weights: Tuple[float, float] = (0.3, 0.7),
                    class_weights: Optional[Sequence[float]] = None) -> "jt.Var":
    """The official single-supervision loss (no DSRA): ``0.3 CE + 0.7 Dice`` per supervised subset."""
    w_ce, w_dice = weights
    outputs = list(outputs)
    t = _Targets(labels, outputs[0].shape[1], str(outputs[0].dtype), class_weights)
    subsets = output_subsets(len(outputs), supervision)
    sums = subset_sums(outputs, subsets)
    loss = None
    for s in subsets:
        ce, dice = _ce_and_dice(sums[s], t)
        term = w_ce * ce + w_dice * dice
        loss = term if loss is None else loss + term
    return loss


def multiclass_seg_loss(outputs: Sequence["jt.Var"], labels: "jt.Var", dual: Optional[bool] = None,
                        **kw) -> "jt.Var":
    """:func:`multiclass_dsra_loss` for dual (fg/bg) models, :func:`multiclass_loss` otherwise;
    ``dual=None`` (callers without the model's catalog row) reads the dual output layout of
    EMCAD+DSRA and multi-class PraNet-V2 (four fg then four bg maps)."""
    dual = len(outputs) == len(EMCAD_DUAL_OUTPUTS) if dual is None else dual
    return multiclass_dsra_loss(outputs, labels, **kw) if dual else multiclass_loss(outputs, labels, **kw)
