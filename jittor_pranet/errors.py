"""One exception type for problems the user can fix: the CLI prints its message on one line."""


class UserError(Exception):
    """Bad input, bad config or a missing file: shown as ``error: <message>`` with exit code 2."""
