"""``jittor-pranet <command>``: one entry point, one module per subcommand.

Each module in :data:`COMMANDS` exposes ``register(subparsers)`` that adds its parser and sets
``func`` (called with the parsed args, returns an exit code).  Modules are imported lazily so that
``--help`` and light commands such as ``eval`` do not pay for Jittor's start-up.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
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
    "export": ".export",
    "weights": ".weights",
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


def _mpi_world_size() -> int:
    try:
        return int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _end_mpi_rank(code: int) -> None:
    """Leave at once, skipping MPI_Finalize: one failing rank of ``mpirun -np N`` (a bad option, a
    full disk, an exception) must end the job. A normal exit would wait in MPI_Finalize while the
    other ranks wait in their next collective for this one: the job would hang forever."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    in_mpi_job = _mpi_world_size() > 1
    try:
        code = int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except Exception:
        if not in_mpi_job:
            raise
        traceback.print_exc()
        code = 1
    if in_mpi_job and code != 0:
        _end_mpi_rank(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
