"""The model registry (timm style): named constructors that also carry each model's facts.

``list_models``, ``model_info`` and the facts below need neither Jittor nor the model code, so that
validating a config, building the CLI's choices or reading a checkpoint's metadata stays cheap;
``build_model`` imports the constructors on first use. Trainer, inference, parity, CLI and benchmark
ask :func:`model_info` instead of parsing model names.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

V1_OUTPUTS = ("lateral_map_5", "lateral_map_4", "lateral_map_3", "lateral_map_2")
V2_OUTPUTS = ("fg2", "fg3", "fg4", "fg5", "bg2", "bg3", "bg4", "bg5")
EMCAD_OUTPUTS = ("p4", "p3", "p2", "p1")
EMCAD_DUAL_OUTPUTS = EMCAD_OUTPUTS + ("p4_bg", "p3_bg", "p2_bg", "p1_bg")


@dataclass(frozen=True)
class ModelInfo:
    """What the rest of the package needs to know about a registered model."""

    name: str
    family: str                        # pranet_v1 | pranet_v2 | emcad | custom
    encoder: str                       # default encoder (``encoder=`` selects another size)
    outputs: Tuple[str, ...]           # names of the outputs, in the official order
    default_size: int                  # the official training/test input side
    default_num_classes: int
    task: str                          # binary (polyps) | multiclass (organs, cardiac structures)
    dual: bool                         # foreground + background outputs (DSRA): takes ``gain=``
    official_class: str = ""
    # keys only this model's state_dict holds (all of them), to recognise official files without metadata
    signature: Tuple[str, ...] = ()
    head: str = ""                     # a tensor whose first dimension is the number of classes
    config_defaults: Mapping[str, object] = field(default_factory=dict)

    @property
    def encoder_family(self) -> str:
        return "pvt" if self.encoder.startswith("pvt") else "res2net"

    @property
    def prediction(self) -> str:
        """How the official test turns outputs into the predicted map: the sum of the foreground
        outputs (dual models), else the last output."""
        return "sum_fg" if self.dual else "last"


_PRANET = "jittor_pranet.models.zoo"
_BUILTIN = [
    ModelInfo("pranet_v1_res2net", "pranet_v1", "res2net50_v1b_26w_4s", V1_OUTPUTS, 352, 1, "binary", False,
              "PraNet", ("resnet.conv1.0.weight", "ra2_conv4.conv.weight"), "ra2_conv4.conv.weight"),
    ModelInfo("pranet_v1_pvt", "pranet_v1", "pvt_v2_b2", V1_OUTPUTS, 352, 1, "binary", False,
              "PVT_PraNet", ("backbone.patch_embed1.proj.weight", "ra2_conv4.conv.weight"), "ra2_conv4.conv.weight"),
    ModelInfo("pranet_v2_res2net", "pranet_v2", "res2net50_v1b_26w_4s", V2_OUTPUTS, 352, 1, "binary", True,
              "PraNet_V2", ("backbone.conv1.0.weight", "agg1.conv5_fg.weight"), "agg1.conv5_fg.weight"),
    ModelInfo("pranet_v2_pvt", "pranet_v2", "pvt_v2_b2", V2_OUTPUTS, 352, 1, "binary", True,
              "PVT_PraNet_V2", ("backbone.patch_embed1.proj.weight", "agg1.conv5_fg.weight"), "agg1.conv5_fg.weight"),
    ModelInfo("emcad_b2", "emcad", "pvt_v2_b2", EMCAD_OUTPUTS, 224, 9, "multiclass", False,
              "EMCADNet", ("out_head4.weight",), "out_head1.weight"),
    ModelInfo("emcad_b2_dsra", "emcad", "pvt_v2_b2", EMCAD_DUAL_OUTPUTS, 224, 9, "multiclass", True,
              "EMCADNet (dual)", ("out_head4.weight", "decoder.ConvBlock4_fg.conv.weight"),
              "decoder.ConvBlock1_fg.conv.weight"),
]
_INFO: Dict[str, ModelInfo] = {info.name: info for info in _BUILTIN}
_CONSTRUCTORS: Dict[str, Callable] = {}
_CONSTRUCTOR_MODULE = {info.name: _PRANET for info in _BUILTIN}


def register_model(fn: Optional[Callable] = None, *, info: Optional[ModelInfo] = None):
    """Register a constructor under its function name (decorator, with or without ``info=``).

    The built-in models' facts are declared above; a model added by a user brings its own
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
    return _CONSTRUCTORS[name](num_classes=n, **kwargs)


def recognise_model(state_dict: Mapping[str, object]) -> Optional[str]:
    """The registered model whose signature keys a state_dict holds (the most specific match), or None."""
    matches = [i for i in _INFO.values() if i.signature and all(k in state_dict for k in i.signature)]
    if not matches:
        return None
    best = max(len(i.signature) for i in matches)
    top = [i.name for i in matches if len(i.signature) == best]
    return top[0] if len(top) == 1 else None


def head_classes(name: str, state_dict: Mapping[str, object]) -> Optional[int]:
    """The number of classes a state_dict of model ``name`` was trained for, from its head's shape."""
    value = state_dict.get(model_info(name).head) if name in _INFO else None
    return int(value.shape[0]) if value is not None and getattr(value, "ndim", 0) >= 1 else None


__all__ = ["ModelInfo", "build_model", "head_classes", "list_models", "model_info", "recognise_model",
           "register_model"]
