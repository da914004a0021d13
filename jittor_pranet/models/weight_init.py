"""Initial weights drawn as the official PyTorch code draws them, one function per model family.

Jittor's layers come with their own initial distributions (``nn.Conv2d`` and ``nn.Linear`` draw
``invariant_uniform``), which are neither PyTorch's defaults nor the schemes the official classes
apply on top of them.  Forward and gradient parity copy weights and cannot see the difference, but a
model trained from scratch starts elsewhere: every decoder is trained from scratch in every run, and
so is any encoder trained without ImageNet weights.  Each model class therefore ends its constructor
with the function of its family below, which overwrites the parameters it owns:

==========================  ===================================================================
encoder / decoder           official rule (source)
==========================  ===================================================================
PVTv2 (:func:`init_pvtv2_`)  ``_init_weights`` of ``pvtv2.py``: Linear trunc_normal(std 0.02) +
                            zero bias; LayerNorm 1 / 0; Conv2d normal(0, sqrt(2 / fan_out)) with
                            fan_out = kh * kw * out / groups, zero bias
Res2Net-v1b                 ``Res2Net.__init__``: Conv2d kaiming_normal(fan_out, relu), BatchNorm
(:func:`init_res2net_`)     1 / 0; the ``fc`` Linear keeps PyTorch's default
PraNet-V1/V2 decoders       nothing of their own: PyTorch's defaults (:func:`init_pytorch_defaults_`)
(:func:`init_pranet_decoder_`)  for every layer outside the encoder, DSRA heads included
MaxViT (:func:`init_maxvit_`)  timm's ``weight_init``: 'vit_eff' (default) draws the stem's and the conv
                            blocks' Conv2d normal(0, sqrt(2 / fan_out)), zero bias, and the attention
                            layers' Linear xavier_uniform, bias zero (normal(0, 1e-6) for the MLPs,
                            the relative-position MLP included); 'normal' (maxxvit nano) draws every
                            Conv2d / Linear normal(0, 0.02), zero bias; norms 1 / 0, LayerScale as built
EMCAD decoder               ``init_weights('normal')`` of MSDC / MSCB / EUCB / LGAG / CAB / SAB:
(:func:`init_emcad_`)       Conv2d normal(0, 0.02) + zero bias, BatchNorm 1 / 0; the DSRA heads
                            ``ConvBlock*_fg/_bg``, the 1->3 stem and ``out_head*`` keep PyTorch's
                            defaults
Cascaded MERIT              nothing of their own: PyTorch's defaults for the 1->3 stem, the
(:func:`init_merit_`)       CASCADE decoder (DSRA heads included) and every head; the MaxViT
                            encoders keep their own initialisation
MIST decoder ``CAM``        nothing of its own: PyTorch's defaults, including
(:func:`init_mist_`)        ``nn.MultiheadAttention``'s (``in_proj_weight`` xavier_uniform,
                            ``in_proj_bias`` and ``out_proj.bias`` 0, ``out_proj.weight`` Linear
                            default); the stem and ``out_head*`` too
==========================  ===================================================================

PyTorch's defaults: Conv2d and Linear weights ``kaiming_uniform_(a=sqrt(5))``, i.e. uniform on
``+-1/sqrt(fan_in)`` (fan_in = in / groups * kh * kw), biases uniform on the same interval;
BatchNorm and LayerNorm weight 1, bias 0.  The draws come from numpy's global generator, which
``jt.set_global_seed`` seeds (the trainer seeds it before building the model), so a seed gives the
same initial model every time.
"""
from __future__ import annotations

import math
from typing import Iterable, Tuple

import numpy as np

from ..ops import BatchNorm2d, LayerNorm, jt

from jittor import nn

#: timm's ``trunc_normal_`` default bounds (absolute values, not multiples of the std)
TRUNC_BOUNDS = (-2.0, 2.0)


def _set(var: "jt.Var", value: np.ndarray) -> None:
    var.assign(jt.array(np.asarray(value, dtype=np.float32).reshape(var.shape)))


def _normal(shape, std: float) -> np.ndarray:
    return np.random.standard_normal(shape) * std


def _trunc_normal(shape, std: float, bounds: Tuple[float, float] = TRUNC_BOUNDS) -> np.ndarray:
    """Normal(0, std) resampled until inside ``bounds`` (what timm's inverse-CDF sampler gives)."""
    x = _normal(shape, std)
    lo, hi = bounds
    bad = (x < lo) | (x > hi)
    while bad.any():
        x[bad] = _normal(int(bad.sum()), std)
        bad = (x < lo) | (x > hi)
    return x


def fan_in(weight: "jt.Var") -> int:
    """PyTorch's fan_in of a Conv2d ([out, in/groups, kh, kw]) or Linear ([out, in]) weight."""
    return int(np.prod(weight.shape[1:]))


def _layers(module: nn.Module, skip: Iterable[str] = ()) -> Iterable[Tuple[str, nn.Module]]:
    """``(name, module)`` of every sub-module (``module`` itself as ""), minus those under ``skip``."""
    prefixes = tuple(f"{s}." for s in skip)
    for name, m in module.named_modules():
        if name in skip or (prefixes and name.startswith(prefixes)):
            continue
        yield name, m


def _norm_defaults(m: nn.Module) -> bool:
    """BatchNorm / LayerNorm: weight 1, bias 0 (and BatchNorm's running statistics 0 / 1)."""
    if isinstance(m, (BatchNorm2d, LayerNorm, nn.BatchNorm, nn.LayerNorm)):
        _set(m.weight, np.ones(m.weight.shape))
        _set(m.bias, np.zeros(m.bias.shape))
        if isinstance(m, (BatchNorm2d, nn.BatchNorm)):
            _set(m.running_mean, np.zeros(m.running_mean.shape))
            _set(m.running_var, np.ones(m.running_var.shape))
        return True
    return False


def pytorch_default_(m: nn.Module) -> None:
    """One Conv2d / Linear as PyTorch constructs it: ``kaiming_uniform_(a=sqrt(5))`` weight
    (uniform on +-1/sqrt(fan_in)) and a bias uniform on +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in(m.weight))
    _set(m.weight, np.random.uniform(-bound, bound, m.weight.shape))
    if m.bias is not None:
        _set(m.bias, np.random.uniform(-bound, bound, m.bias.shape))


def init_pytorch_defaults_(module: nn.Module, skip: Iterable[str] = ()) -> None:
    """Every Conv2d / Linear / norm of ``module`` (but those under the names in ``skip``) as PyTorch
    constructs it: what the official classes get wherever they apply no scheme of their own."""
    for _, m in _layers(module, skip):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            pytorch_default_(m)
        else:
            _norm_defaults(m)


def init_pvtv2_(module: nn.Module) -> None:
    """PVTv2's ``_init_weights`` (applied by the official encoder to all its modules): Linear
    trunc_normal(std 0.02, bounds +-2) + zero bias; LayerNorm 1 / 0; Conv2d normal(0, sqrt(2 / fan_out))
    with fan_out = kh * kw * out_channels / groups (the depth-wise MLP conv: fan_out = 9), zero bias."""
    for _, m in _layers(module):
        if isinstance(m, nn.Linear):
            _set(m.weight, _trunc_normal(m.weight.shape, 0.02))
            if m.bias is not None:
                _set(m.bias, np.zeros(m.bias.shape))
        elif isinstance(m, nn.Conv2d):
            out, _, kh, kw = m.weight.shape
            fan_out = kh * kw * out // m.groups
            _set(m.weight, _normal(m.weight.shape, math.sqrt(2.0 / fan_out)))
            if m.bias is not None:
                _set(m.bias, np.zeros(m.bias.shape))
        else:
            _norm_defaults(m)


def _conv_fan_out_normal_(m: nn.Module) -> None:
    out, _, kh, kw = m.weight.shape
    _set(m.weight, _normal(m.weight.shape, math.sqrt(2.0 / (kh * kw * out // m.groups))))
    if m.bias is not None:
        _set(m.bias, np.zeros(m.bias.shape))


def init_maxvit_(encoder: nn.Module, scheme: str = "vit_eff") -> None:
    """timm's MaxViT initialisation (``weight_init`` of its config, see the table above): convolution
    parts (stem, MBConv / ConvNeXt blocks) as EfficientNet, attention parts (``attn_block`` /
    ``attn_grid``) as ViT, or everything normal(0.02) for the 'normal' scheme."""
    if scheme not in ("vit_eff", "normal"):
        raise ValueError(f"unknown MaxViT init scheme {scheme!r}")
    for name, m in _layers(encoder):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "normal":
                _set(m.weight, _normal(m.weight.shape, 0.02))
                if m.bias is not None:
                    _set(m.bias, np.zeros(m.bias.shape))
            elif ".attn_block." in f".{name}" or ".attn_grid." in f".{name}":
                fan_out, fan_in_ = m.weight.shape[0], int(np.prod(m.weight.shape[1:]))
                bound = math.sqrt(6.0 / (fan_in_ + fan_out))
                _set(m.weight, np.random.uniform(-bound, bound, m.weight.shape))
                if m.bias is not None:
                    part = name.split(".attn_block.")[-1].split(".attn_grid.")[-1]
                    bias = _normal(m.bias.shape, 1e-6) if "mlp" in part else np.zeros(m.bias.shape)
                    _set(m.bias, bias)
            else:
                _conv_fan_out_normal_(m)
        else:
            _norm_defaults(m)


def init_res2net_(module: nn.Module) -> None:
    """Res2Net-v1b's constructor loop: every Conv2d ``kaiming_normal_(mode="fan_out",
    nonlinearity="relu")`` (std sqrt(2 / (out * kh * kw)), no division by groups), BatchNorm 1 / 0;
    the ImageNet ``fc`` Linear keeps PyTorch's default."""
    for _, m in _layers(module):
        if isinstance(m, nn.Conv2d):
            out, _, kh, kw = m.weight.shape
            _set(m.weight, _normal(m.weight.shape, math.sqrt(2.0 / (out * kh * kw))))
        elif isinstance(m, nn.Linear):
            pytorch_default_(m)
        else:
            _norm_defaults(m)


def init_pranet_decoder_(model: nn.Module) -> None:
    """PraNet-V1 / V2: the official classes apply no scheme of their own, so everything outside the
    encoder (RFBs, partial decoder, reverse-attention / DSRA stages and heads, V2's 1->3 stem) has
    PyTorch's defaults; the encoder keeps its own family's initialisation."""
    init_pytorch_defaults_(model, skip=(model.encoder_attr,))


def init_emcad_decoder_(decoder: nn.Module) -> None:
    """The EMCAD decoder: MSDC, MSCB, EUCB, LGAG, CAB and SAB each end their constructor with
    ``init_weights('normal')``: Conv2d normal(0, 0.02) + zero bias, BatchNorm 1 / 0.  Those blocks hold
    every convolution of the decoder but the DSRA heads ``ConvBlock{k}_fg/_bg`` (``EMCAD_dual``),
    plain ``BasicConv2d``s with PyTorch's defaults."""
    heads = [name for name, _ in decoder.named_modules() if name.startswith("ConvBlock") and "." not in name]
    for _, m in _layers(decoder, skip=heads):
        if isinstance(m, nn.Conv2d):
            _set(m.weight, _normal(m.weight.shape, 0.02))
            if m.bias is not None:
                _set(m.bias, np.zeros(m.bias.shape))
        else:
            _norm_defaults(m)
    for name in heads:
        init_pytorch_defaults_(getattr(decoder, name))


def init_emcad_(model: nn.Module) -> None:
    """``EMCADNet``: the 1->3 stem and ``out_head1..4`` keep PyTorch's defaults, the decoder has its
    own scheme (:func:`init_emcad_decoder_`), the PVTv2 encoder its own (applied by its constructor)."""
    init_pytorch_defaults_(model, skip=("backbone", "decoder"))
    init_emcad_decoder_(model.decoder)


def init_mist_decoder_(decoder: nn.Module) -> None:
    """MIST's ``CAM`` decoder: PyTorch's defaults everywhere; ``nn.MultiheadAttention`` resets its own
    parameters: ``in_proj_weight`` [3C, C] xavier_uniform (bound sqrt(6 / (C + 3C))), ``in_proj_bias``
    and ``out_proj.bias`` zero, ``out_proj.weight`` the Linear default."""
    init_pytorch_defaults_(decoder)
    for _, m in _layers(decoder):
        if getattr(m, "in_proj_weight", None) is not None and hasattr(m, "out_proj"):  # MultiheadAttention
            out, fan = m.in_proj_weight.shape
            bound = math.sqrt(6.0 / (fan + out))
            _set(m.in_proj_weight, np.random.uniform(-bound, bound, m.in_proj_weight.shape))
            _set(m.in_proj_bias, np.zeros(m.in_proj_bias.shape))
            _set(m.out_proj.bias, np.zeros(m.out_proj.bias.shape))


def init_mist_(model: nn.Module) -> None:
    """``MISTNet``: the 1->3 stem, ``out_head1..4`` and the decoder (:func:`init_mist_decoder_`) as
    PyTorch constructs them; the MaxxViT encoder keeps its own initialisation."""
    init_pytorch_defaults_(model, skip=("backbone1", "decoder"))
    init_mist_decoder_(model.decoder)


def init_merit_(model: nn.Module) -> None:
    """Cascaded MERIT: the official classes apply no scheme of their own, so everything outside
    ``backbone1`` / ``backbone2`` (stem, CASCADE decoder, ``out_head*``) has PyTorch's defaults."""
    init_pytorch_defaults_(model, skip=("backbone1", "backbone2"))


__all__ = ["TRUNC_BOUNDS", "fan_in", "init_emcad_", "init_emcad_decoder_", "init_maxvit_", "init_merit_",
           "init_mist_", "init_mist_decoder_",
           "init_pranet_decoder_", "init_pvtv2_", "init_pytorch_defaults_", "init_res2net_", "pytorch_default_"]
