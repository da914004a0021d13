"""Importing jittor_pranet leaves SIGCHLD and SIGINT to Python (runtime.restore_python_signal_handlers).

Jittor's own handlers end the process at once with exit code 1 and no message when any child process
dies by a signal, or on Ctrl-C: a test suite, a training run or a user's script would vanish
mid-way. Each test runs a small script in a fresh interpreter and checks that it carries on; the
control runs the same script with Jittor's handlers left in place and must see it vanish.
"""
import subprocess
import sys

KILL_A_CHILD = """
import signal, subprocess
child = subprocess.Popen(["sleep", "30"])
child.send_signal(signal.SIGKILL)
child.wait()
print("still here, child returned", child.returncode, flush=True)
"""

CTRL_C = """
import os, signal, time
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
    print("no interrupt", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt raised", flush=True)
"""

WITH_PACKAGE = "from jittor_pranet.ops import jt\n"
JITTOR_HANDLERS_KEPT = "import jittor_pranet.runtime as r\nr.configure()\nimport jittor\n"


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_a_child_killed_by_a_signal_does_not_end_the_process():
    done = _run(WITH_PACKAGE + KILL_A_CHILD)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "still here, child returned -9" in done.stdout


def test_ctrl_c_raises_keyboard_interrupt():
    done = _run(WITH_PACKAGE + CTRL_C)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "KeyboardInterrupt raised" in done.stdout


def test_control_jittors_own_handlers_end_the_process_silently():
    """Why the module exists: the same scripts under Jittor's handlers vanish with exit code 1."""
    for script in (KILL_A_CHILD, CTRL_C):
        done = _run(JITTOR_HANDLERS_KEPT + script)
        assert done.returncode == 1 and done.stdout == "", (done.returncode, done.stdout)
