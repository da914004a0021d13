"""Training engine: crash-safe resume, NaN stop, records, bad input."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from jittor_pranet import checkpoint as ck

TINY = ["model.name=pranet_v2_pvt", "model.encoder=pvt_v2_b0", "data.train_size=64", "train.batch_size=2",
        "train.multi_scale=[1.0]", "data.val_fraction=0.2", "data.num_workers=1", "output.predict_test=false"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from jittor_pranet.data import make_synthetic_polyps

    root = tmp_path_factory.mktemp("syn")
    make_synthetic_polyps(root, n_train=12, n_test=4, size=((64, 64), (64, 64)), seed=3)
    return root / "TrainDataset"


def _train_cmd(run_dir, data, extra=()):
    return [sys.executable, "-m", "jittor_pranet", "train", "--no-progress", "--run-dir", str(run_dir),
            f"data.train={data}", *TINY, *extra]


def _weights(path):
    return ck.read_state_dict(path).state_dict


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path, tiny_data):
    extra = ["train.epochs=2", "train.checkpoint_every=1"]
    ref_dir, crash_dir = tmp_path / "ref", tmp_path / "crash"
    done = subprocess.run(_train_cmd(ref_dir, tiny_data, extra), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]

    # the child is killed on purpose: this pytest process survives it because importing jittor_pranet
    # gives SIGCHLD back to Python (Jittor's handler would quick-exit us; tests/runtime/test_signals.py)
    proc = subprocess.Popen(_train_cmd(crash_dir, tiny_data, extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    killed_at = None
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        last = crash_dir / "last.pkl"
        if last.is_file():
            meta = ck.read_state_dict(last).meta
            if meta["step"] >= 2 and meta["train_state"]["loader"]["position"] != 0:  # mid-epoch
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = meta["step"]
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed mid-epoch"
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run([sys.executable, "-m", "jittor_pranet", "train", "--no-progress", "--resume",
                              str(crash_dir)], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout
    a, b = _weights(ref_dir / "last.pkl"), _weights(crash_dir / "last.pkl")
    assert list(a) == list(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    meta_a, meta_b = ck.read_state_dict(ref_dir / "last.pkl").meta, ck.read_state_dict(crash_dir / "last.pkl").meta
    assert meta_a["step"] == meta_b["step"] and meta_a["epoch"] == meta_b["epoch"] == 2
    for x, y in zip(meta_a["train_state"]["optimizer"]["exp_avg"], meta_b["train_state"]["optimizer"]["exp_avg"]):
        assert np.array_equal(x, y)
    # records of a run
    for name in ("config.yaml", "metrics.csv", "metrics.json", "curves.png", "best.pkl", "steps.csv"):
        assert (ref_dir / name).is_file(), name
    rows = (ref_dir / "steps.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,lr,size,loss,seconds"
    steps = [r.split(",") for r in rows[1:]]
    assert [int(r[0]) for r in steps] == list(range(1, meta_a["step"] + 1))
    assert all(np.isfinite(float(r[4])) and r[3] == "64" for r in steps)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_data):
    from jittor_pranet.config import load_config
    from jittor_pranet.engine.trainer import Trainer, TrainingDiverged

    cfg = load_config(None, [f"data.train={tiny_data}", *TINY, "train.epochs=1"])
    trainer = Trainer(cfg, tmp_path, progress=False, log=lambda *a: None)
    trainer.fit()
    good = (tmp_path / "last.pkl").read_bytes()
    cfg["train"]["epochs"] = 2
    bias = trainer.model.agg1.conv5_fg.bias
    bias.assign(bias * float("nan"))
    with pytest.raises(TrainingDiverged, match="last good checkpoint kept"):
        trainer.fit()
    assert (tmp_path / "last.pkl").read_bytes() == good


def _write_pair(folder, stem, size=(64, 64), mask_size=None):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(stem))
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / "images" / f"{stem}.png")
    m = np.zeros(mask_size or size, np.uint8)
    m[10:30, 10:30] = 255
    Image.fromarray(m).save(folder / "masks" / f"{stem}.png")


def _one_line_error(code, err):
    lines = [l for l in err.strip().splitlines() if l.strip() and not l.startswith("Compiling")]
    assert code == 2 and len(lines) >= 1 and lines[-1].startswith("error: "), err
    assert "Traceback" not in err
    return lines[-1]


def test_bad_training_inputs_fail_with_one_clear_line(tmp_path, capsys):
    base = ["train", "--no-progress", "--run-dir", tmp_path / "run", *TINY]
    # missing folder
    line = _one_line_error(*run_cli(base + [f"data.train={tmp_path / 'nope'}"], capsys)[::2])
    assert "nope" in line
    # empty folders
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    _one_line_error(*run_cli(base + [f"data.train={empty}"], capsys)[::2])
    # size mismatch names the file
    mism = tmp_path / "mism"
    for i in range(4):
        _write_pair(mism, f"ok{i}")
    _write_pair(mism, "odd", mask_size=(32, 48))
    line = _one_line_error(*run_cli(base + [f"data.train={mism}"], capsys)[::2])
    assert "odd" in line
    # corrupt image
    bad = tmp_path / "bad"
    for i in range(4):
        _write_pair(bad, f"ok{i}")
    _write_pair(bad, "broken")
    (bad / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    line = _one_line_error(*run_cli(base + [f"data.train={bad}"], capsys)[::2])
    assert "broken" in line
    # unknown config key with a suggestion
    line = _one_line_error(*run_cli(base + [f"data.train={mism}", "train.epoch=3"], capsys)[::2])
    assert "train.epochs" in line
    # unwritable output folder (/proc refuses new folders even for root, unlike a chmod-ed folder)
    code, _, err = run_cli(["train", "--no-progress", "--run-dir", "/proc/jittor_pranet_run", *TINY,
                            f"data.train={mism}"], capsys)
    assert "/proc/jittor_pranet_run" in _one_line_error(code, err)


def test_config_override_and_saved_config(tmp_path):
    from jittor_pranet.config import load_config, scale_sizes
    from jittor_pranet.errors import UserError

    cfg = load_config(None, ["train.epochs=3", "model.name=pranet_v1_pvt", "train.multi_scale=[0.75, 1, 1.25]"])
    assert cfg["train"]["epochs"] == 3 and cfg["model"]["name"] == "pranet_v1_pvt"
    assert scale_sizes(352, cfg["train"]["multi_scale"]) == [256, 352, 448]
    with pytest.raises(UserError, match="did you mean 'model.name'"):
        load_config(None, ["model.nmae=x"])
    with pytest.raises(UserError, match="multiple of 32"):
        load_config(None, ["data.train_size=100"])
