"""Ctrl-C ends every command within seconds with exit code 130, no traceback, only complete files.

The signal goes to the whole process group, as a terminal sends it: Jittor's kernel-compiling pool
workers receive it too (they used to die mid-task with tracebacks and leave the pool's lock held, so
the process hung at exit in ``pool_cleanup``). Each test interrupts after the command's first outputs
exist; a new input size per test makes Jittor compile (and start its pool) on a cold cache.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jittor_pranet import checkpoint as ck

EXIT_WITHIN_S = 15


def _interrupt_when(cmd, ready, timeout=900):
    """Start ``cmd`` in its own process group, send SIGINT to the group once ``ready()``; return
    (returncode, stderr, seconds from the signal to the exit)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended before it could be interrupted (rc {proc.returncode}): {err[-1500:]}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the command produced no output in time")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.time()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"still running 60 s after Ctrl-C (hang): {err[-1500:]}")
    return proc.returncode, err, time.time() - sent


def _assert_clean_interrupt(code, err, seconds):
    assert code == 130, err[-2000:]
    assert seconds < EXIT_WITHIN_S, seconds
    assert "Traceback" not in err and "quick exit" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == "interrupted"


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    from jittor_pranet import build_model, save_checkpoint

    root = tmp_path_factory.mktemp("ctrlc")
    path = root / "m.pkl"
    save_checkpoint(build_model("pranet_v2_pvt", encoder="pvt_v2_b0"), path,
                    meta={"model": "pranet_v2_pvt", "num_classes": 1, "encoder": "pvt_v2_b0"})
    images = root / "imgs"
    images.mkdir()
    import cv2

    rng = np.random.default_rng(0)
    for i in range(60):
        cv2.imwrite(str(images / f"{i:03d}.png"), rng.integers(0, 255, (90, 110, 3), dtype=np.uint8))
    return path, images


def test_ctrl_c_during_predict(tmp_path, small_checkpoint):
    ckpt, images = small_checkpoint
    out = tmp_path / "preds"
    cmd = [sys.executable, "-m", "jittor_pranet", "predict", "--checkpoint", str(ckpt), str(images), "--out",
           str(out), "--size", "96", "--batch-size", "1", "--no-progress"]
    code, err, seconds = _interrupt_when(cmd, lambda: out.is_dir() and any(out.glob("*.png")))
    _assert_clean_interrupt(code, err, seconds)
    import cv2

    written = sorted(out.iterdir())
    assert written and all(p.suffix == ".png" for p in written), [p.name for p in written]  # no temp files
    for p in written:
        assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape == (90, 110), p  # every file complete


def test_ctrl_c_during_train_keeps_the_last_good_checkpoint(tmp_path):
    from jittor_pranet.data import make_synthetic_polyps

    make_synthetic_polyps(tmp_path / "syn", n_train=16, n_test=2, size=((64, 64), (64, 64)), seed=5)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "jittor_pranet", "train", "--no-progress", "--run-dir", str(run_dir),
           f"data.train={tmp_path / 'syn' / 'TrainDataset'}", "model.name=pranet_v2_pvt", "model.encoder=pvt_v2_b0",
           "data.train_size=96", "train.batch_size=2", "train.multi_scale=[1.0]", "data.num_workers=1",
           "train.epochs=50", "train.checkpoint_every=1", "output.predict_test=false"]
    last = run_dir / "last.pkl"
    code, err, seconds = _interrupt_when(cmd, lambda: last.is_file())
    _assert_clean_interrupt(code, err, seconds)
    meta = ck.read_state_dict(last).meta  # complete and resumable
    assert meta["step"] >= 1 and "train_state" in meta
    assert not [p.name for p in Path(run_dir).iterdir() if p.name.endswith(".tmp")]


def test_ctrl_c_while_jittor_is_imported(tmp_path):
    """A very early Ctrl-C (during Jittor's import) used to end with Jittor's "Caught SIGINT, quick
    exit" (exit 1): Jittor's handler is now never installed."""
    script = ("import os, signal, sys\n"
              "os.kill(os.getpid(), signal.SIGINT) if False else None\n"
              "from jittor_pranet.cli import entry\n"
              "sys.argv = ['jittor-pranet', 'doctor']\n"
              "entry()\n")
    marker = tmp_path / "started"
    # a SIGINT delivered while `import jittor` runs: sitecustomize-free way to time it is a thread in the child
    script = ("import os, signal, threading, time\n"
              "def fire():\n"
              "    while 'jittor' not in __import__('sys').modules: time.sleep(0.001)\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "threading.Thread(target=fire, daemon=True).start()\n"
              f"open({str(marker)!r}, 'w').close()\n"
              "import sys\n"
              "sys.argv = ['jittor-pranet', 'doctor']\n"
              "from jittor_pranet.cli import entry\n"
              "entry()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert marker.exists()
    assert done.returncode == 130, (done.returncode, done.stderr[-2000:])
    assert "quick exit" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


_STARTED_IGNORING_CTRL_C = """
import os
import signal
import time

from jittor_pranet.interrupt import install_watchdog

assert install_watchdog(1)
os.kill(os.getpid(), signal.SIGINT)
time.sleep(2.5)  # the watchdog's grace (1 s) would have ended the process by now
print("alive")
"""


def test_a_process_started_ignoring_ctrl_c_keeps_ignoring_it():
    """A background job of a shell script starts with SIGINT ignored (POSIX); the watchdog must not
    turn a Ctrl-C meant for the script into an exit of the job."""
    import signal
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _STARTED_IGNORING_CTRL_C], capture_output=True, text=True,
                          timeout=60, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert done.returncode == 0 and done.stdout.strip() == "alive", (done.returncode, done.stderr[-1000:])
