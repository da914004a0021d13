"""The PyTorch twin of every registered model: one table, used by parity, export and bench.

A model's twin is named by its catalog row (:class:`jittor_pranet.models.catalog.Twin`): a factory (the
torch class) and a function spec -> keyword arguments, where ``spec`` has ``name``, ``num_classes``,
``encoder`` and ``gain`` (an :class:`jittor_pranet.engine.inference.ModelSpec`, or the namespace
:func:`build_twin` makes).  The keyword functions of the built-in models are below; they raise
``UserError`` for what the official class cannot express.  This module imports no torch; the factory
is imported when a twin is built.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import UserError
from ..models.catalog import encoder_family


@dataclass(frozen=True)
class ReferenceModel:
    """How to build the PyTorch twin of a registered model.

    ``factory`` is ``"module:attribute"`` of a callable returning the ``torch.nn.Module`` (a class or a
    function), called with ``kwargs(spec)``; ``outputs`` names the forward outputs in order (the ONNX
    output names); ``dynamic_spatial``: height and width may change at run time (any multiple of
    ``multiple``); otherwise only the batch dimension is dynamic."""

    factory: str
    kwargs: Callable[[Any], Dict[str, Any]]
    outputs: Tuple[str, ...]
    dynamic_spatial: bool = True
    multiple: int = 32
    in_channels: int = 3  # EMCAD: 1 (grayscale CT/MRI slices through the official 1 -> 3 stem)


def _attribute(path: str):
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def reference_entry(name: str) -> ReferenceModel:
    """The twin of a registered model, from its catalog row (UserError when it has none)."""
    from ..models.registry import list_models, model_info

    info = model_info(name) if name in list_models() else None
    if info is None or info.twin is None:
        have = [n for n in list_models() if model_info(n).twin is not None]
        raise UserError(f"no PyTorch reference is registered for {name!r} (a catalog row's twin; "
                        f"models with one: {', '.join(have)})")
    return ReferenceModel(info.twin.factory, _attribute(info.twin.kwargs), info.outputs,
                          info.input.dynamic_spatial, info.input.multiple, info.in_channels)


def reference_models() -> Dict[str, ReferenceModel]:
    """Every registered model that has a twin -> its :class:`ReferenceModel`."""
    from ..models.registry import list_models, model_info

    return {n: reference_entry(n) for n in list_models() if model_info(n).twin is not None}


def build_twin(name: str, num_classes: Optional[int] = None, encoder: Optional[str] = None,
               gain: Optional[str] = None, **overrides):
    """The torch twin of model ``name`` (random weights); ``overrides`` replace its keyword arguments."""
    from ..models.registry import model_info

    info = model_info(name)
    spec = SimpleNamespace(name=name, num_classes=info.default_num_classes if num_classes is None else num_classes,
                           encoder=encoder, gain=gain)
    entry = reference_entry(name)
    return _attribute(entry.factory)(**{**entry.kwargs(spec), **overrides})


# ------------------------------------------------------------------ keyword arguments of the built-in twins
def _res2net_depth(spec) -> int:
    encoder = spec.encoder or "res2net50_v1b_26w_4s"
    depths = {"res2net50_v1b_26w_4s": 50, "res2net101_v1b_26w_4s": 101}
    if encoder not in depths:
        raise UserError(f"the PyTorch reference of {spec.name} has no encoder {encoder!r} ({', '.join(depths)})")
    return depths[encoder]


def _pvt_variant(spec) -> str:
    encoder = spec.encoder or "pvt_v2_b2"
    family = encoder_family(encoder)
    if family is None or family.name != "pvt_v2":
        raise UserError(f"the PyTorch reference of {spec.name} has no encoder {encoder!r} (pvt_v2_b0 ... pvt_v2_b5)")
    return encoder[len("pvt_v2_"):]


def _single_class(spec) -> None:
    if spec.num_classes != 1:
        raise UserError(f"{spec.name} is a single-output model; this checkpoint says {spec.num_classes} classes")


def _v2_gain(spec) -> Dict[str, Any]:
    gain = spec.gain or "softmax"
    if gain not in ("softmax", "difference"):
        raise UserError(f"the PyTorch reference (the official class) has no DSRA gain {gain!r}: "
                        "only softmax (use_softmax=True) and difference (use_softmax=False)")
    return {"num_classes": spec.num_classes, "use_softmax": gain == "softmax"}


def pranet_v1_res2net(spec) -> Dict[str, Any]:
    _single_class(spec)
    return {"res2net_depth": _res2net_depth(spec)}


def pranet_v1_pvt(spec) -> Dict[str, Any]:
    _single_class(spec)
    return {"pvt_variant": _pvt_variant(spec), "drop_path_rate": 0.0}


def pranet_v2_res2net(spec) -> Dict[str, Any]:
    return {**_v2_gain(spec), "res2net_depth": _res2net_depth(spec)}


def pranet_v2_pvt(spec) -> Dict[str, Any]:
    return {**_v2_gain(spec), "pvt_variant": _pvt_variant(spec), "drop_path_rate": 0.0}


def _emcad(spec, dual: bool) -> Dict[str, Any]:
    gain = spec.gain or "softmax"
    if gain != "softmax":
        raise UserError(f"the PyTorch reference (the official class) has no DSRA gain {gain!r}, only softmax")
    return {"num_classes": spec.num_classes, "encoder": spec.encoder or "pvt_v2_b2", "dual": dual,
            "drop_path_rate": 0.0}


def emcad_b2(spec) -> Dict[str, Any]:
    return _emcad(spec, False)


def emcad_b2_dsra(spec) -> Dict[str, Any]:
    return _emcad(spec, True)


def _maxvit_encoder(spec, default: str) -> str:
    encoder = spec.encoder or default
    family = encoder_family(encoder)
    if family is None or family.name != "maxvit":
        raise UserError(f"the PyTorch reference of {spec.name} has no encoder {encoder!r} (a MaxViT variant)")
    return encoder


def _official_softmax_gain(spec) -> bool:
    """``use_softmax`` of the official DSRA decoders: softmax (True) or difference (False)."""
    gain = spec.gain or "softmax"
    if gain not in ("softmax", "difference"):
        raise UserError(f"the PyTorch reference (the official class) has no DSRA gain {gain!r}: "
                        "only softmax and difference")
    return gain == "softmax"


def _mist(spec, dual: bool) -> Dict[str, Any]:
    gain = spec.gain or "softmax"
    if gain != "softmax":
        raise UserError(f"the PyTorch reference (the official MIST_CAM) has no DSRA gain {gain!r}, only softmax")
    return {"num_classes": spec.num_classes, "encoder": _maxvit_encoder(spec, "maxxvit_rmlp_small_rw_256"),
            "dual": dual}


def mist(spec) -> Dict[str, Any]:
    return _mist(spec, False)


def mist_dsra(spec) -> Dict[str, Any]:
    return _mist(spec, True)


def _merit(spec, dual: bool) -> Dict[str, Any]:
    from ..models.catalog import MERIT_SECOND_ENCODER

    encoder = _maxvit_encoder(spec, "maxxvit_rmlp_small_rw_256")
    if encoder not in MERIT_SECOND_ENCODER:
        raise UserError(f"{spec.name}: no second encoder is paired with {encoder!r} ({', '.join(MERIT_SECOND_ENCODER)})")
    return {"num_classes": spec.num_classes, "encoder": encoder, "encoder2": MERIT_SECOND_ENCODER[encoder],
            "dual": dual, "use_softmax": _official_softmax_gain(spec)}


def merit_cascaded(spec) -> Dict[str, Any]:
    return _merit(spec, False)


def merit_cascaded_dsra(spec) -> Dict[str, Any]:
    return _merit(spec, True)


__all__ = ["ReferenceModel", "build_twin", "reference_entry", "reference_models"]
