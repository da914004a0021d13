"""Activations by name, and the channel shuffle of EMCAD's blocks."""
from __future__ import annotations

from ...ops import GELU, jt

from jittor import nn

ACTIVATIONS = ("relu", "relu6", "leakyrelu", "gelu")


def activation(name: str) -> nn.Module:
    name = name.lower()
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "leakyrelu":
        return nn.LeakyReLU(0.2)
    if name == "gelu":
        return GELU()
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def channel_shuffle(x: "jt.Var", groups: int) -> "jt.Var":
    """ShuffleNet's channel interleave: [g][c/g] -> [c/g][g]. Identity (skipped) when either is 1."""
    b, c, h, w = x.shape
    per_group = c // groups
    if groups == 1 or per_group == 1:
        return x
    return x.reshape(b, groups, per_group, h, w).transpose(0, 2, 1, 3, 4).reshape(b, c, h, w)
