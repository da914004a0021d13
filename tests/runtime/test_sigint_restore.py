"""An in-process command (``cli.main()``, as a notebook or a test calls it) leaves the process as it
found it: after an interrupted command the caller's Ctrl-C still raises ``KeyboardInterrupt`` and
its children start with SIGINT at default; handlers, environment and alarm are put back also when
the command returns or raises."""
import os
import signal
import subprocess
import sys
import time

import pytest

from jittor_pranet import cli
from jittor_pranet.cli import eval_cmd

CHILD_SIGINT = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"


@pytest.fixture
def handlers_kept():
    """Whatever a failing test leaves, the next test starts with the handlers this one found."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not a background job)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _command(monkeypatch, action):
    def run(args):
        signal.signal(signal.SIGTERM, lambda *a: None)  # a command may install its own handlers
        os.environ["JITTOR_PRANET_TEST_CHANGED"] = "1"
        return action()

    monkeypatch.setattr(eval_cmd, "run", run)


def _interrupt():
    raise KeyboardInterrupt


def _ctrl_c_raises():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)
    except KeyboardInterrupt:
        return True
    return False


def test_ctrl_c_works_in_the_caller_and_its_children_after_an_interrupted_command(monkeypatch, capsys, handlers_kept):
    before = signal.getsignal(signal.SIGINT)
    _command(monkeypatch, _interrupt)
    assert cli.main(["eval", "--pred", "x", "--gt", "y"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before
    assert _ctrl_c_raises(), "Ctrl-C is dead in the caller after an interrupted command"
    child = subprocess.run([sys.executable, "-c", CHILD_SIGINT], capture_output=True, text=True, timeout=120)
    assert child.stdout.strip() == "True", "a child started with SIGINT not at default"
    assert "JITTOR_PRANET_TEST_CHANGED" not in os.environ
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("action", [lambda: 0, lambda: 1 / 0], ids=["returns", "raises"])
def test_state_is_restored_when_the_command_returns_or_raises(monkeypatch, handlers_kept, action):
    def notebook_handler(signum, frame):  # a caller's own handler stays in place
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, notebook_handler)
    _command(monkeypatch, action)
    try:
        cli.main(["eval", "--pred", "x", "--gt", "y"])
    except ZeroDivisionError:
        pass
    assert signal.getsignal(signal.SIGINT) is notebook_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert "JITTOR_PRANET_TEST_CHANGED" not in os.environ


def test_an_alarm_armed_inside_is_cancelled(monkeypatch, handlers_kept):
    _command(monkeypatch, lambda: signal.alarm(30) and 0)
    cli.main(["eval", "--pred", "x", "--gt", "y"])
    assert signal.alarm(0) == 0
