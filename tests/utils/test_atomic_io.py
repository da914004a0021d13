"""Atomic writes leave no temporary file behind even when Ctrl-C lands the moment the temporary file
is created (Python raises a pending KeyboardInterrupt right after the call that created it)."""
import os

import numpy as np
import pytest

from jittor_pranet.utils import io


@pytest.fixture
def ctrl_c_as_the_file_is_created(monkeypatch):
    real_open = os.open

    def open_then_interrupted(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_CREAT:
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", open_then_interrupted)


@pytest.mark.parametrize("write", [
    lambda p: io.atomic_write_bytes(p, b"data"),
    lambda p: io.atomic_write_text(p, "text"),
    lambda p: io.atomic_imwrite(p.with_suffix(".png"), np.zeros((4, 4), np.uint8)),
    lambda p: io.atomic_write_many({p: b"a", p.with_name("second.bin"): b"b"}),
], ids=["bytes", "text", "image", "many"])
def test_ctrl_c_at_creation_leaves_no_temporary_file(tmp_path, ctrl_c_as_the_file_is_created, write):
    (tmp_path / "kept.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "out.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_the_written_file_has_the_mode_of_a_plain_open(tmp_path):
    previous = os.umask(0o027)
    try:
        path = io.atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"x"
    assert (path.stat().st_mode & 0o777) == 0o640


_KILLED_WHILE_WRITING = """
import os
import signal
import sys
import time
from pathlib import Path

from jittor_pranet.interrupt import install_watchdog
from jittor_pranet.utils.io import atomic_write_to

signal.signal(signal.SIGINT, lambda *_: None)  # Python never acts on it: only the watchdog's alarm ends us
assert install_watchdog(1)


def write(tmp):
    Path(tmp).write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)  # the grace (1 s) expires here


atomic_write_to(Path(sys.argv[1]) / "out.bin", write)
"""


def test_the_watchdog_removes_a_temporary_file_before_it_ends_the_process(tmp_path):
    """When the grace after Ctrl-C expires inside a write, the C watchdog ends the process with
    ``_exit``: the file being written must not stay behind under its temporary name."""
    import subprocess
    import sys

    (tmp_path / "kept.txt").write_text("old")
    done = subprocess.run([sys.executable, "-c", _KILLED_WHILE_WRITING, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr.strip().endswith("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


_KILLED_IN_A_NEW_RUN = """
import os
import signal
import sys
import time
from pathlib import Path

from jittor_pranet.interrupt import install_watchdog
from jittor_pranet.utils.io import Unfinished

signal.signal(signal.SIGINT, lambda *_: None)  # Python never acts on it: only the watchdog's alarm ends us
assert install_watchdog(1)
run = Path(sys.argv[1]) / "runs" / "new"
with Unfinished(run, keep=("last.pkl",)):
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: x")
    if sys.argv[2] == "resumable":
        (run / "last.pkl").write_bytes(b"checkpoint")
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)  # the grace (1 s) expires here
"""


@pytest.mark.parametrize("state", ["fresh", "resumable"])
def test_the_watchdog_removes_a_run_folder_stopped_before_its_first_checkpoint(tmp_path, state):
    """A Ctrl-C whose grace expires (Jittor holding the interpreter in a long step) must leave what
    Python's clean-up leaves: no run folder without last.pkl; a resumable one kept."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _KILLED_IN_A_NEW_RUN, str(tmp_path), state], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 130, done.stderr[-2000:]
    if state == "fresh":
        assert not (tmp_path / "runs").exists()
    else:
        assert sorted(p.name for p in (tmp_path / "runs" / "new").iterdir()) == ["config.yaml", "last.pkl"]
