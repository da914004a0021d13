"""``jittor-pranet <command>``: one entry point, one module per subcommand.

Each module in :data:`COMMANDS` exposes ``register(subparsers)`` that adds its parser and sets
``func`` (called with the parsed args, returns an exit code).  Modules are imported lazily so that
``--help`` and light commands such as ``eval`` do not pay for Jittor's start-up.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from ..errors import UserError

# command name -> module (relative to this package)
COMMANDS = {
    "doctor": ".doctor",
    "convert": ".convert",
    "parity": ".parity",
    "train": ".train",
    "test": ".test",
    "eval": ".eval_cmd",
    "predict": ".predict",
    "bench": ".bench",
    "quickstart": ".quickstart",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jittor-pranet",
        description="PraNet-V1/V2 in Jittor: convert PyTorch checkpoints, check parity, train, predict, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname, __name__)
        except ModuleNotFoundError as exc:  # a command still being built: skip, never break the CLI
            if exc.name and exc.name.startswith(__name__):
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
