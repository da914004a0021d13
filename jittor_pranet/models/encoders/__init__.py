"""Encoders (backbones): Res2Net-v1b and PVTv2, each variant under its official name.

Which variants exist and which take ``drop_path_rate`` is in the catalog (:data:`~jittor_pranet.models.
catalog.ENCODERS`); :func:`build_encoder` builds any of them.
"""
from __future__ import annotations

import importlib

from ..catalog import ENCODERS, encoder_family, encoder_names


def build_encoder(name: str, **kwargs):
    """An encoder variant by name (``drop_path_rate`` only for families that take it)."""
    family = encoder_family(name)
    if family is None:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(encoder_names())}")
    module_name, _, attr = family.builders.partition(":")
    return getattr(importlib.import_module(module_name), attr)[name](**kwargs)


__all__ = ["ENCODERS", "build_encoder"]
