"""Small helpers shared by subcommands."""
from __future__ import annotations

import argparse

from ..errors import UserError


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="compute device (default: cuda when a usable GPU is found, else cpu)")


def setup_device(device: str = "auto"):
    """Configure and import Jittor for ``device``; returns the jittor module."""
    from .. import runtime

    try:
        runtime.configure(device)
        jt = runtime.import_jittor(device)
        runtime.set_device(device)
    except (RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    return jt


def model_choices():
    return ["pranet_v1_res2net", "pranet_v1_pvt", "pranet_v2_res2net", "pranet_v2_pvt"]
