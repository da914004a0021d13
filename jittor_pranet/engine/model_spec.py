"""Checkpoint -> model: which model a checkpoint holds (:func:`resolve_model_spec`, no Jittor) and the
built, strictly loaded model in eval mode (:func:`load_model`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from ..errors import UserError
from .precision import cast_model, precision_dtype


@dataclass
class ModelSpec:
    """What to build for a checkpoint, and where each value came from (for messages)."""

    name: str
    num_classes: int = 1
    encoder: Optional[str] = None
    gain: Optional[str] = None  # V2 DSRA gain when not the default (softmax)
    test_size: Optional[int] = None
    sources: Dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in (("encoder", self.encoder), ("gain", self.gain)) if v)
        return f"{self.name} (num_classes {self.num_classes}{extra})"


def _get(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` or ``obj.a.b`` for ``"a.b"``; None when any part is missing."""
    for part in dotted.split("."):
        if obj is None:
            return None
        if isinstance(obj, Mapping):
            obj = obj.get(part)
        else:
            obj = getattr(obj, part, None)
    return obj


def _size_of(cfg: Any) -> Optional[int]:
    """A config's test size: ``data.test_size``, else the size it trained at (``data.train_size``)."""
    value = _get(cfg, "data.test_size")
    return value if value is not None else _get(cfg, "data.train_size")


def resolve_model_spec(
    meta: Mapping[str, Any],
    state_dict: Optional[Mapping[str, np.ndarray]] = None,
    *,
    model: Optional[str] = None,
    num_classes: Optional[int] = None,
    encoder: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    source: str = "checkpoint",
) -> ModelSpec:
    """Model name / classes / encoder / DSRA gain / test size, from the first of: explicit arguments,
    ``config`` (only the keys it sets), the checkpoint's metadata (ours: ``model``, ``num_classes``,
    ``encoder``; training checkpoints also the run's ``config``), and the weights (``num_classes``).

    The test size is ``data.test_size`` or else ``data.train_size`` of a config: a model is tested at the
    size it was trained at (352 in the official recipe)."""
    from ..models.registry import head_classes, identify, list_models, model_info

    meta = meta if isinstance(meta, Mapping) else {}
    weights_model, weights_encoder, weights_classes = identify(state_dict or {})
    meta_cfg = meta.get("config")
    candidates = {
        "name": [("--model", model), ("config", _get(config, "model.name")),
                 ("checkpoint", meta.get("model") if isinstance(meta.get("model"), str) else None),
                 ("checkpoint config", _get(meta_cfg, "model.name")),
                 ("weights", weights_model)],
        "num_classes": [("--num-classes", num_classes), ("config", _get(config, "model.num_classes")),
                        ("checkpoint", meta.get("num_classes")),
                        ("checkpoint config", _get(meta_cfg, "model.num_classes")),
                        ("weights", weights_classes)],
        "encoder": [("--encoder", encoder), ("config", _get(config, "model.encoder")), ("checkpoint", meta.get("encoder")),
                    ("checkpoint config", _get(meta_cfg, "model.encoder")),
                    ("weights", weights_encoder)],
        "gain": [("config", _get(config, "model.gain")), ("checkpoint", meta.get("gain")),
                 ("checkpoint config", _get(meta_cfg, "model.gain"))],
        "test_size": [("config", _size_of(config)), ("checkpoint config", _size_of(meta_cfg))],
    }
    chosen: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for key, options in candidates.items():
        for where, value in options:
            if value is not None:
                chosen[key], sources[key] = value, where
                break
    name = chosen.get("name")
    if not name:
        raise UserError(f"{source}: neither its metadata nor its keys say which model it holds; pass --model "
                        f"({', '.join(list_models())})")
    if name not in list_models():
        raise UserError(f"unknown model {name!r} (from {sources['name']}); available: {', '.join(list_models())}")
    if sources.get("num_classes") in (None, "weights"):  # the model's own head says it best
        from_head = head_classes(name, state_dict or {})
        if from_head is not None:
            chosen["num_classes"], sources["num_classes"] = from_head, "weights"
        elif "num_classes" not in chosen:
            chosen["num_classes"], sources["num_classes"] = model_info(name).default_num_classes, "model default"
    # what the checkpoint records about *its* model does not apply when another model was asked for
    recorded = {"checkpoint": meta.get("model"), "checkpoint config": _get(meta_cfg, "model.name")}
    for key in ("encoder", "gain"):
        where = sources.get(key)
        if where in recorded and recorded[where] and recorded[where] != name:
            chosen.pop(key)
    try:
        n_cls = int(chosen.get("num_classes", 1))
        size = int(chosen["test_size"]) if chosen.get("test_size") is not None else None
    except (TypeError, ValueError):
        raise UserError(f"{source}: num_classes / test size must be integers") from None
    if n_cls < 1:
        raise UserError(f"num_classes must be >= 1, not {n_cls} (from {sources.get('num_classes')})")
    gain = chosen.get("gain") if model_info(name).dual else None
    return ModelSpec(name, n_cls, chosen.get("encoder") or None, gain if gain != "softmax" else None, size, sources)


def load_model(checkpoint: Union[str, os.PathLike], spec: Optional[ModelSpec] = None, *,
               model: Optional[str] = None, num_classes: Optional[int] = None,
               config: Optional[Mapping[str, Any]] = None, loaded=None, fuse: bool = True,
               precision: str = "fp32"):
    """Build the model a checkpoint belongs to and load it strictly; returns ``(model, spec)`` in
    eval mode.

    ``loaded`` is the checkpoint already read with :func:`jittor_pranet.checkpoint.read_state_dict`
    (to avoid reading it twice).  ``fuse``: fold the BatchNorms into the convolutions and use the
    fused inference ops (:func:`jittor_pranet.fuse.fuse_for_inference`; CPU kernels only, a no-op
    otherwise; equal to the unfused model within the parity tolerance; the folded weights are a
    snapshot, so to train the returned model pass ``fuse=False`` or call ``fuse.unfuse``).
    ``precision``: ``fp32`` (default), or ``fp16`` for half-precision inference (see
    :func:`cast_model`; no folding then: the fused ops are float32 only).  Jittor must already be
    configured (``cli.common.setup_device``).
    """
    from ..checkpoint import load_state_dict, read_state_dict
    from ..models import build_model

    ck = loaded if loaded is not None else read_state_dict(checkpoint)
    if spec is None:
        spec = resolve_model_spec(ck.meta, ck.state_dict, model=model, num_classes=num_classes,
                                  config=config, source=str(checkpoint))
    kw = {"encoder": spec.encoder} if spec.encoder else {}
    if spec.gain:
        kw["gain"] = spec.gain
    try:
        net = build_model(spec.name, num_classes=spec.num_classes, **kw)
    except (TypeError, ValueError, KeyError) as exc:
        raise UserError(f"cannot build {spec.describe()}: {exc}") from None
    load_state_dict(net, ck.state_dict, strict=True, source=str(checkpoint))
    net.eval()
    if precision_dtype(precision) != "float32":
        cast_model(net, precision)
    elif fuse:
        from ..fuse import fuse_for_inference

        net = fuse_for_inference(net)
    return net, spec


__all__ = ["ModelSpec", "load_model", "resolve_model_spec"]
