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

from ..errors import Terminated, UserError, raise_terminated

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
    "prepare": ".prepare",
    "export": ".export",
    "weights": ".weights",
    "report": ".report",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage mistakes end like every other bad input: one ``error:`` line, exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
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


# After Ctrl-C / SIGTERM, seconds Python gets to clean up before the process leaves anyway. During
# `predict` the interrupt is often not turned into KeyboardInterrupt at all (cause not found; see
# docs/benchmarks.md, interrupt stress), so this alarm is what ends the command: 2 s keeps the exit
# within the promised 3 s.
INTERRUPT_GRACE_S = 2


def _stop_after_interrupt() -> None:
    """A second Ctrl-C must not interrupt the clean-up; Jittor's compile workers are dropped so that
    nothing at exit waits for them (``runtime.abandon_compile_pool``)."""
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass
    if "jittor" in sys.modules:
        from .. import runtime

        runtime.abandon_compile_pool()


def entry() -> None:
    """Console-script entry. Ctrl-C ends the command within ``INTERRUPT_GRACE_S`` seconds with exit
    code 130 even while Jittor holds the GIL (:mod:`jittor_pranet.interrupt`); after the
    ``KeyboardInterrupt`` is handled the process leaves at once rather than through the exit hooks,
    which in some Jittor states wait on workers the same Ctrl-C ended. Every file we write is complete
    (atomic writes) before this point, so nothing is lost."""
    from ..interrupt import install_watchdog

    _raise_on_signals()  # Python's handler first: the watchdog chains in front of it
    install_watchdog(INTERRUPT_GRACE_S)
    try:
        try:
            code = _run(None)  # not main(): the console process may leave with its handlers changed
        except KeyboardInterrupt as exc:  # arrived after the command had handled its own
            print("terminated" if isinstance(exc, Terminated) else "interrupted", file=sys.stderr)
            code = 143 if isinstance(exc, Terminated) else 130
    finally:  # also when argparse leaves by SystemExit (--help, a usage error)
        _ignore_signals_while_leaving()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _ignore_signals_while_leaving() -> None:
    """The command's outcome is decided and its files are complete: a Ctrl-C or SIGTERM from now on
    must not change the exit code. Left alone, one arriving during the exit hooks printed a
    ``KeyboardInterrupt`` traceback, and one arriving after Python had reset its handlers for
    shutdown ended the process by the signal."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):  # not the main thread
            pass


def _raise_on_signals() -> None:
    """SIGTERM raises :class:`~jittor_pranet.errors.Terminated` while a command runs, so that it
    cleans up as after Ctrl-C instead of vanishing with half its outputs written. A SIGTERM that is
    ignored (``SIG_IGN``) or handled outside Python (the console's watchdog) is left as it is."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not None and current != signal.SIG_IGN:
        signal.signal(signal.SIGTERM, raise_terminated)


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command in-process and return its exit code. The process is left as it was found:
    signal handlers (SIGTERM raises ``Terminated`` while the command runs; Ctrl-C and SIGTERM are
    ignored while an interrupted command cleans up), environment
    variables and a pending alarm are restored when the command returns or raises."""
    from ..process_state import preserved

    with preserved():
        return _run(argv)


def _run(argv: Optional[List[str]]) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may stand anywhere, also after options (train --config x.yaml a=1 --no-progress b=2)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides or []) + extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    in_mpi_job = _mpi_world_size() > 1
    _raise_on_signals()
    try:
        code = int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except OSError as exc:  # a write that failed underneath us: a full disk, a folder removed mid-run
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        _stop_after_interrupt()
        terminated = isinstance(exc, Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        code = 143 if terminated else 130
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
