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


def check_output_file(path, option: str) -> None:
    """Fail before the work rather than after it: ``path`` must be creatable as a file."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {p}: is a folder, expected a file name")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{option} {p}: {parent} is not a folder")
    from ..utils.io import can_create_in

    if not can_create_in(parent):
        raise UserError(f"{option} {p}: {parent} is not writable")


def check_output_folder(path, option: str) -> None:
    """``path`` must be a folder that exists and is writable, or one that can be created."""
    from pathlib import Path

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {p}: exists and is not a folder")
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{option} {p}: {probe} is not a folder")
    from ..utils.io import can_create_in

    if not can_create_in(probe):
        raise UserError(f"{option} {p}: {probe} is not writable")


class RemovedIfLeftEmpty:
    """Folders a command may create: when it fails, those it created and left empty are removed again,
    so that a bad input leaves nothing behind (a folder that existed before is never touched)."""

    def __init__(self, *folders):
        from pathlib import Path

        self.created = []
        for folder in folders:
            if folder is None:
                continue
            p = Path(folder).absolute()
            chain = []
            while not p.exists() and p != p.parent:
                chain.append(p)
                p = p.parent
            self.created.extend(chain)  # deepest first

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            for folder in self.created:
                try:
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
                except OSError:
                    pass
        return False
