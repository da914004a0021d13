"""Shared fixtures. Importing jittor_pranet first configures Jittor for this machine (offline, CPU)."""
import numpy as np
import pytest

import jittor_pranet  # noqa: F401  (configures jittor before any test imports it)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def run_cli(args, capsys):
    """Run ``jittor-pranet`` in-process; returns (exit_code, stdout, stderr)."""
    from jittor_pranet.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err
