"""SIGTERM (``kill``, schedulers, containers) ends a command like Ctrl-C: one ``terminated`` line,
exit code 143, no traceback, nothing of an unfinished run or table left behind, and a run whose
last.pkl exists kept intact and resumable. In-process, ``cli.main()`` puts the caller's SIGTERM
handler back."""
import os
import signal
import subprocess
import sys
import time

import pytest

from jittor_pranet import checkpoint as ck

TINY = ["task=multiclass", "model.name=emcad_b2_dsra", "model.encoder=pvt_v2_b0", "data.train_size=64",
        "train.batch_size=2", "train.optimizer=adamw", "train.clip=null", "train.multi_scale=[1.0]",
        "data.num_workers=1", "data.augment=false", "output.predict_test=false"]
EXIT_WITHIN_S = 15


def _signal_when(cmd, ready, sig=signal.SIGTERM, timeout=900):
    """Run ``cmd`` in its own session, send ``sig`` to its process group once ``ready()``; return
    (returncode, stderr, seconds from the signal to the exit)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the command ended before the signal (rc {proc.returncode}): {proc.stderr.read()[-1500:]}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the command never reached the point to signal")
        time.sleep(0.05)
    os.killpg(proc.pid, sig)
    sent = time.time()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"still running 60 s after SIGTERM: {err[-1500:]}")
    return proc.returncode, err, time.time() - sent


def _assert_terminated(code, err, seconds):
    assert code == 143, (code, err[-2000:])
    assert seconds < EXIT_WITHIN_S, seconds
    assert "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == "terminated", err[-1000:]


@pytest.fixture(scope="module")
def organs(tmp_path_factory):
    from jittor_pranet.data.synthetic_organs import make_synthetic_organs

    root = tmp_path_factory.mktemp("organs_term")
    make_synthetic_organs(root, seed=3, train_cases=3, test_cases=3, size=64, depth=6)
    return root


def _train_cmd(run_dir, organs, *extra):
    return [sys.executable, "-m", "jittor_pranet", "train", "--no-progress", "--run-dir", str(run_dir),
            f"data.train={organs}", *TINY, *extra]


def test_sigterm_before_the_first_checkpoint_leaves_no_run_folder(tmp_path, organs):
    run_dir = tmp_path / "runs" / "early"
    started = run_dir / "config.yaml"  # written once the model and data are built, before epoch 1 ends
    code, err, seconds = _signal_when(_train_cmd(run_dir, organs, "train.epochs=20"), started.is_file)
    _assert_terminated(code, err, seconds)
    assert not run_dir.exists(), sorted(p.name for p in run_dir.rglob("*"))
    assert not (tmp_path / "runs").exists()  # the parent it created goes too


def test_sigterm_keeps_a_resumable_run_and_test_leaves_no_partial_tables(tmp_path, organs):
    run_dir = tmp_path / "run"
    last = run_dir / "last.pkl"
    code, err, seconds = _signal_when(_train_cmd(run_dir, organs, "train.epochs=50"), last.is_file)
    _assert_terminated(code, err, seconds)
    meta = ck.read_state_dict(last).meta  # complete and resumable
    assert meta["step"] >= 1 and "train_state" in meta
    assert (run_dir / "config.yaml").is_file()
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]

    out = tmp_path / "scores"
    cmd = [sys.executable, "-m", "jittor_pranet", "test", "--no-progress", "--checkpoint", str(last),
           "--data", str(organs), "--out", str(out)]
    code, err, seconds = _signal_when(cmd, lambda: out.is_dir() and any(out.rglob("*")))
    _assert_terminated(code, err, seconds)
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))


@pytest.fixture
def sigterm_kept():
    before = signal.getsignal(signal.SIGTERM)
    yield before
    signal.signal(signal.SIGTERM, before)


def test_in_process_command_ends_143_and_puts_the_handler_back(monkeypatch, capsys, sigterm_kept, tmp_path):
    """A SIGTERM inside ``cli.main()`` is reported like Ctrl-C and the caller gets its handler back
    (afterwards SIGTERM again ends this test's own child processes by default)."""
    from jittor_pranet.cli import doctor, main

    written = tmp_path / "out"

    def busy(args):
        written.mkdir()
        (written / "partial.txt").write_text("x")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        return 0

    monkeypatch.setattr(doctor, "run", busy)
    start = time.time()
    code = main(["doctor"])
    err = capsys.readouterr().err
    assert code == 143 and err.strip().splitlines()[-1] == "terminated", (code, err)
    assert time.time() - start < 5
    assert signal.getsignal(signal.SIGTERM) is sigterm_kept
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    time.sleep(0.3)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=10) == -signal.SIGTERM


def test_unfinished_removes_only_what_the_block_created(tmp_path):
    from jittor_pranet.utils.io import Unfinished

    run = tmp_path / "a" / "b" / "run"
    with pytest.raises(KeyboardInterrupt):
        with Unfinished(run, keep=("last.pkl",)):
            (run / "sub").mkdir(parents=True)
            (run / "sub" / "x.csv").write_text("1")
            (run / "config.yaml").write_text("y")
            raise KeyboardInterrupt
    assert not (tmp_path / "a").exists()

    run.mkdir(parents=True)
    (run / "old.txt").write_text("keep me")
    with pytest.raises(ValueError):
        with Unfinished(run):
            (run / "new.txt").write_text("n")
            (run / "old.txt").write_text("rewritten")
            raise ValueError
    assert sorted(p.name for p in run.iterdir()) == ["old.txt"]

    with pytest.raises(KeyboardInterrupt):
        with Unfinished(run, keep=("last.pkl",)):
            (run / "last.pkl").write_bytes(b"ok")
            (run / "steps.csv").write_text("1")
            raise KeyboardInterrupt
    assert sorted(p.name for p in run.iterdir()) == ["last.pkl", "old.txt", "steps.csv"]

    with Unfinished(run):  # success: nothing removed
        (run / "done.txt").write_text("d")
    assert (run / "done.txt").is_file()
