"""The model registry (timm style): named constructors, each with its catalog row of facts.

``list_models``, ``model_info`` and the facts below need neither Jittor nor the model code, so that
validating a config, building the CLI's choices or reading a checkpoint's metadata stays cheap;
``build_model`` imports the constructors on first use. Trainer, inference, parity, CLI and benchmark
ask :func:`model_info` instead of parsing model names.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Mapping, Optional

from . import catalog
from .catalog import EMCAD_DUAL_OUTPUTS, EMCAD_OUTPUTS, V1_OUTPUTS, V2_OUTPUTS, ModelInfo  # noqa: F401

_PRANET = catalog.CONSTRUCTOR_MODULE
_BUILTIN = list(catalog.MODELS)
_INFO: Dict[str, ModelInfo] = {info.name: info for info in _BUILTIN}
_CONSTRUCTORS: Dict[str, Callable] = {}
_CONSTRUCTOR_MODULE = {info.name: _PRANET for info in _BUILTIN}


def register_model(fn: Optional[Callable] = None, *, info: Optional[ModelInfo] = None):
    """Register a constructor under its function name (decorator, with or without ``info=``).

    The built-in models' facts are the rows of :mod:`.catalog`; a model added by a user brings its own
    :class:`ModelInfo` (without one it is registered as a one-class ``custom`` model)."""

    def add(f: Callable) -> Callable:
        name = f.__name__
        if info is not None:
            _INFO[name] = info
        elif name not in _INFO:
            _INFO[name] = ModelInfo(name, "custom", "", (), 352, 1, "binary", False)
        _CONSTRUCTORS[name] = f
        return f

    return add(fn) if fn is not None else add


def list_models(task: Optional[str] = None) -> List[str]:
    """Names of the registered models (optionally those of one task), without importing Jittor."""
    return sorted(n for n, i in _INFO.items() if task is None or i.task == task)


def model_info(name: str) -> ModelInfo:
    if name not in _INFO:
        from ..errors import UserError

        raise UserError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _INFO[name]


def build_model(name: str, num_classes: Optional[int] = None, **kwargs):
    """Build a registered model with random weights (load weights with ``load_checkpoint``).
    ``num_classes`` defaults to the model's own (1 for the polyp models, 9 for EMCAD: Synapse)."""
    info = model_info(name)
    if name not in _CONSTRUCTORS:
        importlib.import_module(_CONSTRUCTOR_MODULE.get(name, _PRANET))
    n = info.default_num_classes if num_classes is None else num_classes
    model = _CONSTRUCTORS[name](num_classes=n, **kwargs)
    model.model_name = name  # its catalog row, for prediction_logits and the input contract
    return model


def facts_of(model) -> Optional[ModelInfo]:
    """The catalog row of a model made by :func:`build_model` (None for one built from its class)."""
    return _INFO.get(getattr(model, "model_name", None))


def input_contract(model) -> catalog.InputContract:
    """The input sizes a model accepts (multiples of 32 for a model built from its class)."""
    info = facts_of(model)
    return info.input if info is not None else catalog.MULTIPLE_OF_32


def prediction_logits(model, outputs, rule: Optional[str] = None):
    """The logits the official test turns into a prediction (``rule``: a key of
    :data:`catalog.PREDICTION_RULES`; default: the model's own, see :func:`facts_of`; a model built from
    its class: the foreground sum when it has fg/bg outputs, else the last output)."""
    if rule is None:
        info = facts_of(model)
        rule = info.prediction_rule if info is not None else ("sum_fg" if getattr(model, "dual", False) else "last")
    return catalog.combine_outputs(rule, outputs)


def recognise_model(state_dict: Mapping[str, object]) -> Optional[str]:
    """The registered model whose signature keys a state_dict holds (the most specific match), or None."""
    return catalog.recognise(state_dict, list(_INFO.values()))


def head_classes(name: str, state_dict: Mapping[str, object]) -> Optional[int]:
    """The number of classes a state_dict of model ``name`` was trained for, from its head's shape."""
    return catalog.head_classes(_INFO[name], state_dict) if name in _INFO else None


def identify(state_dict: Mapping[str, object]):
    """``(model, encoder, classes)`` a state_dict holds, over every registered model (see :func:`catalog.identify`)."""
    return catalog.identify(state_dict, list(_INFO.values()))


__all__ = ["ModelInfo", "build_model", "facts_of", "head_classes", "identify", "input_contract", "list_models",
           "prediction_logits", "model_info", "recognise_model",
           "register_model"]
