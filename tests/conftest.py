"""Shared fixtures. Importing jittor_pranet first configures Jittor for this machine (offline, CPU)."""
import signal

import numpy as np
import pytest

import jittor_pranet  # noqa: F401  (configures jittor before any test imports it)

# A suite started in the background of a script (`cmd &`, nohup) inherits SIGINT ignored, and so would
# every child it starts: the Ctrl-C tests would then test nothing. Give Ctrl-C back to Python.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def run_cli(args, capsys):
    """Run ``jittor-pranet`` in-process; returns (exit_code, stdout, stderr)."""
    from jittor_pranet.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err):
    """The single ``error:`` line of a command's stderr (asserts there is exactly one and no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def pytest_addoption(parser):
    parser.addoption("--module-order", choices=("file", "reverse", "shuffle"), default="file",
                     help="run the test modules in file order (default), reversed, or shuffled "
                          "(--module-order-seed): a check that no test depends on another module's state")
    parser.addoption("--module-order-seed", type=int, default=0, help="seed of --module-order shuffle")


def pytest_collection_modifyitems(config, items):
    """Reorder whole modules (tests inside a module keep their order, so module fixtures still set
    up once)."""
    order = config.getoption("--module-order")
    if order == "file":
        return
    modules = []
    for item in items:
        if item.nodeid.split("::")[0] not in modules:
            modules.append(item.nodeid.split("::")[0])
    if order == "reverse":
        modules.reverse()
    else:
        import random

        random.Random(config.getoption("--module-order-seed")).shuffle(modules)
    rank = {name: i for i, name in enumerate(modules)}
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])  # stable: order within a module kept
