"""Library calls leave the process as they found it.

A command run in-process (``cli.main()`` from a notebook, a test, a script) may change process-wide
state on its way: the Ctrl-C handler (ignored while an interrupted command cleans up), SIGTERM's
handler, SIGCHLD (Jittor's import sets its own), environment variables, a pending ``alarm``. Left
changed, the caller's own Ctrl-C would be dead and every child it starts would inherit SIGINT
ignored. :func:`preserved` snapshots that state and puts it back when the block returns or raises;
only the console entry point (``jittor-pranet``, ``python -m jittor_pranet``) leaves for good.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Dict, Iterator

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGCHLD", "SIGALRM")
                 if hasattr(signal, name))


def _handlers() -> Dict[int, object]:
    return {sig: signal.getsignal(sig) for sig in _SIGNALS}


@contextlib.contextmanager
def preserved() -> Iterator[None]:
    """Restore signal handlers, the environment and the real-time alarm on exit of the block."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    handlers = _handlers() if in_main_thread else {}
    environ = dict(os.environ)
    timer = signal.getitimer(signal.ITIMER_REAL) if hasattr(signal, "getitimer") else None
    try:
        yield
    finally:
        if timer is not None and timer == (0.0, 0.0):
            signal.setitimer(signal.ITIMER_REAL, 0)  # an alarm armed inside the block must not fire later
        for sig, handler in handlers.items():
            # None: installed outside Python before the block (cannot be re-installed from here)
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        if dict(os.environ) != environ:
            for key in set(os.environ) - set(environ):
                del os.environ[key]
            for key, value in environ.items():
                if os.environ.get(key) != value:
                    os.environ[key] = value


__all__ = ["preserved"]
