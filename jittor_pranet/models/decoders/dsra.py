"""Dual-supervised reverse attention (DSRA), PraNet-V2 paper Eqs. (1)-(4).

A DSRA stage decodes an encoder feature F into two segmentation heads, a foreground map P^F and
a background map P^B (Eq. 3), and refines the foreground with a *reverse gain* computed from the
deeper stage's outputs R^F_{i+1}, R^B_{i+1} resized to this stage (Eq. 4):

    gamma = Softmax_c( I(R^F_{i+1}) - I(R^B_{i+1}) )     (softmax over the class channel)
    R^F = P^F + P^F * gamma                               (Eq. 1)
    R^B = P^B                                             (Eq. 2)

Single-class caveat (kept as default for checkpoint compatibility): with one class the softmax runs
over a single channel and is identically 1, so ``R^F = 2 P^F``: the deeper stages' maps never
reach the output and Eq. (4) carries no information.  This is what the official code computes and
what its checkpoints were trained with.  ``gain="sigmoid"`` is the documented non-default
alternative for one class: ``sigmoid(fg - bg)`` is exactly the two-way softmax between the
foreground and background logits, so the deeper stage gates the refinement as the paper intends.
``gain="difference"`` is the official ``use_softmax=False`` variant (raw fg - bg).
"""
from __future__ import annotations

from typing import Optional, Tuple

from ...ops import jt, resize_bilinear

from jittor import nn

GAIN_MODES = ("softmax", "sigmoid", "difference")


def softmax_channels(x):
    """Softmax over dim 1, max-subtracted as in PyTorch.

    Over a single channel PyTorch returns exactly 1 (exp(0)/exp(0)); Jittor's compiled exp is not
    bit-exact at 0 (off by 6e-8), so that case returns ones: the official single-class behaviour.
    """
    if x.shape[1] == 1:
        return jt.ones_like(x).stop_grad()
    e = jt.exp(x - x.max(dim=1, keepdims=True))
    return e / e.sum(dim=1, keepdims=True)


def reverse_gain(deeper_fg, deeper_bg, size, mode: str = "softmax"):
    """Eq. (4): the gain gamma from the deeper stage's fg/bg maps, resized (bilinear) to ``size``."""
    diff = resize_bilinear(deeper_fg, size) - resize_bilinear(deeper_bg, size)
    if mode == "softmax":
        return softmax_channels(diff)
    if mode == "sigmoid":
        return jt.sigmoid(diff)
    if mode == "difference":
        return diff
    raise ValueError(f"unknown DSRA gain {mode!r}; choose one of {GAIN_MODES}")


def dsra_fuse(p_fg, p_bg, deeper_fg, deeper_bg, mode: str = "softmax") -> Tuple["jt.Var", "jt.Var"]:
    """Eqs. (1), (2) and (4): refine this stage's heads with the deeper stage's maps."""
    gamma = reverse_gain(deeper_fg, deeper_bg, p_fg.shape[2:], mode)
    return p_fg + p_fg * gamma, p_bg


def dsra_stage(decoder: nn.Module, k: int, feature, fgs: list, bgs: list, gain: str) -> None:
    """One stage of a decoder with the official dual heads ``ConvBlock{k}_fg`` / ``ConvBlock{k}_bg``
    (EMCAD's and CASCADE's): both heads on ``feature``, the fg refined by the deeper stage's maps
    (the last of ``fgs`` / ``bgs``), the pair appended to ``fgs`` / ``bgs``."""
    p_fg = getattr(decoder, f"ConvBlock{k}_fg")(feature)
    p_bg = getattr(decoder, f"ConvBlock{k}_bg")(feature)
    fg, bg = dsra_fuse(p_fg, p_bg, fgs[-1], bgs[-1], gain)
    fgs.append(fg)
    bgs.append(bg)


class DSRA(nn.Module):
    """A reusable DSRA stage for any decoder: ``decoder`` (phi of Eq. 3) then fg/bg heads, then fusion.

    ``decoder`` maps the encoder feature to head features; ``head_fg``/``head_bg`` map those to
    ``num_classes`` logits each.  ``execute(feature, deeper_fg, deeper_bg)`` returns (R^F, R^B).
    PraNet-V2 uses the same :func:`dsra_fuse` with its layers held flat on the model so that its
    parameter names stay those of the official checkpoints.
    """

    def __init__(self, decoder: nn.Module, head_fg: nn.Module, head_bg: nn.Module, gain: str = "softmax"):
        if gain not in GAIN_MODES:
            raise ValueError(f"unknown DSRA gain {gain!r}; choose one of {GAIN_MODES}")
        self.decoder = decoder
        self.head_fg = head_fg
        self.head_bg = head_bg
        self.gain = gain

    def execute(self, feature, deeper_fg: Optional["jt.Var"] = None, deeper_bg: Optional["jt.Var"] = None):
        h = self.decoder(feature)
        p_fg, p_bg = self.head_fg(h), self.head_bg(h)
        if deeper_fg is None:
            return p_fg, p_bg
        return dsra_fuse(p_fg, p_bg, deeper_fg, deeper_bg, self.gain)
