"""Training losses, chosen from a model's catalog row and the config (never from its output count).

``binary``: PraNet's structure loss and PraNet-V2's background term (polyps); ``multiclass``: the
official EMCAD / MIST / MERIT losses over output subsets (organs, cardiac structures).
:func:`select_loss` is the one place that maps (catalog row, ``train.loss``, supervision) to a
function of ``(outputs, target)``.
"""
from __future__ import annotations

from typing import Callable

from ..errors import UserError
from .binary import bce_with_logits, boundary_weight, pranet_loss, structure_loss
from .multiclass import (
    cross_entropy_and_dice,
    multiclass_dsra_loss,
    multiclass_loss,
    multiclass_seg_loss,
    one_hot,
    output_subsets,
    subset_sums,
)

LOSS_KINDS = ("auto", "dsra", "baseline")


def select_loss(info, kind: str = "auto", supervision: str = "mutation", model_name: str = "") -> Callable:
    """The loss of the model whose catalog row is ``info``: its own supervision for ``kind="auto"``
    (``info.loss``), else ``dsra`` (fg + bg outputs, needs a dual model) or ``baseline``. Binary models
    take PraNet's structure loss (with the background term for ``dsra``); multi-class models the
    official subset losses; a dual model trained as ``baseline`` is scored on its fg outputs only."""
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss must be one of {', '.join(LOSS_KINDS)}, not {kind!r}")
    kind = info.loss if kind == "auto" else kind
    name = model_name or info.name
    if kind == "dsra" and not info.dual:
        raise UserError(f"train.loss=dsra needs a model with fg/bg outputs (emcad_b2_dsra, pranet_v2_*); "
                        f"{name} has {len(info.outputs)} outputs")
    if info.task == "binary":
        dual = kind == "dsra"
        return lambda outs, mask: pranet_loss(outs, mask, dual=dual)
    if kind == "dsra":
        return lambda outs, labels: multiclass_dsra_loss(outs, labels, supervision=supervision)
    if info.dual:
        n_fg = len(info.fg_outputs)
        return lambda outs, labels: multiclass_loss(list(outs)[:n_fg], labels, supervision=supervision)
    return lambda outs, labels: multiclass_loss(outs, labels, supervision=supervision)


__all__ = ["LOSS_KINDS", "bce_with_logits", "boundary_weight", "cross_entropy_and_dice", "multiclass_dsra_loss",
           "multiclass_loss", "multiclass_seg_loss", "one_hot", "output_subsets", "pranet_loss", "select_loss",
           "structure_loss", "subset_sums"]
