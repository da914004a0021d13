"""PyTorch reference implementations used by the parity suite.

:mod:`jittor_pranet.reference.torch_models` re-implements the official PraNet-V1/V2 networks in plain
PyTorch with state_dict keys identical to the official code, so that the same weights can be loaded
into both frameworks and the outputs compared.  That submodule imports :mod:`torch`; this package does
not, so importing ``jittor_pranet.reference`` works on machines without PyTorch.  Attribute access such
as ``jittor_pranet.reference.build_torch_model`` imports the submodule on first use.
"""
from __future__ import annotations

import importlib

_LAZY = (
    "TORCH_MODELS",
    "build_torch_model",
    "randomize_",
    "state_dict_numpy",
    "load_state_dict_numpy",
    "Res2NetV1b",
    "PyramidVisionTransformerV2",
    "PraNetV1Res2Net",
    "PraNetV1PVT",
    "PraNetV2Res2Net",
    "PraNetV2PVT",
)

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(".torch_models", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
