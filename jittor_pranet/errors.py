"""One exception type for problems the user can fix: the CLI prints its message on one line."""


class UserError(Exception):
    """Bad input, bad config or a missing file: shown as ``error: <message>`` with exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch scheduler, ``docker stop``) seen as an exception, so that a command
    cleans up exactly as after Ctrl-C (every ``except KeyboardInterrupt`` path applies) and ends with
    exit code 143 (128 + 15), the code a process killed by SIGTERM reports."""


def raise_terminated(signum, frame) -> None:
    """SIGTERM handler: raise :class:`Terminated` in the main thread."""
    raise Terminated()
