"""Named model constructors (timm style): ``build_model("pranet_v2_res2net", num_classes=1)``."""
from __future__ import annotations

from typing import Callable, Dict, List

_REGISTRY: Dict[str, Callable] = {}


def register_model(fn: Callable) -> Callable:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> List[str]:
    return sorted(_REGISTRY)


def build_model(name: str, num_classes: int = 1, **kwargs):
    """Build a registered model with random weights (load weights with ``load_checkpoint``)."""
    if name not in _REGISTRY:
        from ..errors import UserError

        raise UserError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes=num_classes, **kwargs)


def model_family(name: str) -> str:
    return "v2" if name.startswith("pranet_v2") else "v1"
