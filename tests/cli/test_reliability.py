"""Bad and unusual input across the commands: one ``error:`` line, exit code 2, no traceback, nothing
left behind; runs are never silently overwritten; every config key is type- and range-checked.

``BATTERY`` is the list a new user's mistakes were drawn from; the test prints how many cases it ran.
"""
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet import checkpoint as ck


def _tree(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs shared by the cases: a small checkpoint, images, a tiny training set, a run folder."""
    import cv2

    from jittor_pranet import build_model, save_checkpoint
    from jittor_pranet.data import make_synthetic_polyps

    root = tmp_path_factory.mktemp("world")
    save_checkpoint(build_model("pranet_v2_pvt", encoder="pvt_v2_b0"), root / "m.pkl",
                    meta={"model": "pranet_v2_pvt", "num_classes": 1, "encoder": "pvt_v2_b0"})
    (root / "imgs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(root / "imgs" / f"{i}.png"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a checkpoint")
    (root / "truncated").mkdir()
    ok, buf = cv2.imencode(".png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (root / "truncated" / "t.png").write_bytes(buf.tobytes()[: len(buf) // 2])
    make_synthetic_polyps(root / "syn", n_train=6, n_test=2, size=((64, 64), (64, 64)), seed=1)
    (root / "run").mkdir()
    (root / "run" / "config.yaml").write_text("model: {name: pranet_v2_pvt}\n")
    (root / "bad.yaml").write_text("train: [unclosed\n")
    return root


TRAIN = ["train", "--no-progress", "model.name=pranet_v2_pvt", "model.encoder=pvt_v2_b0", "data.train_size=64",
         "train.batch_size=2", "train.multi_scale=[1.0]", "data.num_workers=1", "output.predict_test=false"]

# (case id, command with {w} for the world folder and {o} for a fresh output path, expected message part)
BATTERY = [
    # config values: each declared type and range, checked before anything is created
    *[(f"config {kv}", TRAIN + ["data.train={w}/syn/TrainDataset", "output.dir={o}", kv], msg) for kv, msg in [
        ("train.val_every=0", "train.val_every must be an integer >= 1"),
        ("train.lr_decay_every=0", "train.lr_decay_every must be an integer >= 1"),
        ("train.max_steps=abc", "train.max_steps must be an integer"),
        ("train.betas=abc", "train.betas must be a list of 2 numbers"),
        ("train.betas=[0.9]", "train.betas must be a list of 2 numbers"),
        ("train.lr=abc", "train.lr must be a number > 0"),
        ("train.lr=null", "train.lr must be a number > 0"),
        ("train.lr=-1", "train.lr must be a number > 0"),
        ("data.val_fraction=abc", "data.val_fraction must be a number"),
        ("data.val_fraction=1.5", "data.val_fraction must be a number"),
        ("train.multi_scale=[a]", "train.multi_scale must be a non-empty list"),
        ("train.multi_scale=[]", "train.multi_scale must be a non-empty list"),
        ("train.multi_scale=[0.01]", "every size must be >= 32"),
        ("train.weight_decay=-1", "train.weight_decay must be a number >= 0"),
        ("data.num_workers=-1", "data.num_workers must be an integer >= 0"),
        ("train.checkpoint_every=-5", "train.checkpoint_every must be an integer >= 0"),
        ("data.augment=maybe", "data.augment must be true, false or a mapping"),
        ("data.augment={hflp: 1}", "unknown option data.augment.hflp"),
        ("train.epochs=2.5", "train.epochs must be an integer >= 1"),
        ("train.epochs=true", "train.epochs must be an integer >= 1"),
        ("train.sync_bn=yes please", "train.sync_bn must be true or false"),
        ("train.clip=0", "train.clip must be a number > 0"),
        ("data.train_size=100", "data.train_size must be an integer >= 32, a multiple of 32"),
        ("data.mask_threshold=300", "data.mask_threshold must be an integer >= 0 and <= 255"),
        ("model.gain=maybe", "model.gain must be one of softmax"),
        ("model.num_classes=0", "model.num_classes must be an integer >= 1"),
        ("model.name=pranet_v2_pv", "did you mean 'pranet_v2_pvt'"),
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("output.name=../../x", "output.name must be a plain folder name"),
        ("train.time_limit_min=0", "train.time_limit_min must be a number > 0"),
    ]],
    ("train bad yaml", ["train", "--config", "{w}/bad.yaml"], "not valid YAML"),
    ("train missing config", ["train", "--config", "{w}/nope.yaml"], "config file not found"),
    ("train missing data", TRAIN + ["data.train={w}/nope", "output.dir={o}"], "nope"),
    ("train unknown encoder", TRAIN + ["data.train={w}/syn/TrainDataset", "output.dir={o}", "model.encoder=pvt_v9"],
     "pvt_v9"),
    ("train existing run", TRAIN + ["data.train={w}/syn/TrainDataset", "--run-dir", "{w}/run"], "--resume"),
    ("train overwrite non-run", TRAIN + ["data.train={w}/syn/TrainDataset", "--run-dir", "{w}/imgs", "--overwrite"],
     "only replaces a run folder"),
    ("train resume non-run", ["train", "--resume", "{w}/imgs"], "not a run folder"),
    ("train resume+overwrite", ["train", "--resume", "{w}/run", "--overwrite"], "cannot be combined"),
    ("train unknown option", ["train", "--bogus"], "unrecognized arguments: --bogus"),
    ("train malicious init", TRAIN + ["data.train={w}/syn/TrainDataset", "output.dir={o}",
                                      "model.init_checkpoint={w}/notes.txt"], "not a readable checkpoint"),
    # convert
    ("convert missing src", ["convert", "--model", "pranet_v2_pvt", "{w}/nope.pth", "{o}.pkl"], "no such file"),
    ("convert no extension", ["convert", "--model", "pranet_v2_pvt", "{w}/m.pkl", "{o}"], "unknown output format"),
    ("convert text file", ["convert", "--model", "pranet_v2_pvt", "--encoder", "pvt_v2_b0", "{w}/notes.txt",
                           "{o}.pkl"], "not a readable checkpoint"),
    ("convert other encoder", ["convert", "--model", "pranet_v2_pvt", "{w}/m.pkl", "{o}.pkl"],
     "pass --encoder pvt_v2_b0"),
    ("convert other model", ["convert", "--model", "pranet_v2_res2net", "{w}/m.pkl", "{o}.pkl"], "does not match"),
    ("convert unknown model", ["convert", "--model", "unet", "{w}/m.pkl", "{o}.pkl"], "invalid choice"),
    ("convert dst is src", ["convert", "--model", "pranet_v2_pvt", "{w}/m.pkl", "{w}/m.pkl"], "same file"),
    ("convert dst under a file", ["convert", "--model", "pranet_v2_pvt", "{w}/m.pkl", "{w}/notes.txt/x.pkl"],
     "is not a folder"),
    # predict
    ("predict missing input", ["predict", "--checkpoint", "{w}/m.pkl", "{w}/nope", "--out", "{o}"], "input not found"),
    ("predict empty folder", ["predict", "--checkpoint", "{w}/m.pkl", "{w}/empty", "--out", "{o}"], "no image files"),
    ("predict out is a file", ["predict", "--checkpoint", "{w}/m.pkl", "{w}/imgs", "--out", "{w}/notes.txt"],
     "not a folder"),
    ("predict threshold", ["predict", "--checkpoint", "{w}/m.pkl", "{w}/imgs", "--out", "{o}", "--threshold", "2"],
     "--threshold must be in [0, 1]"),
    ("predict size", ["predict", "--checkpoint", "{w}/m.pkl", "{w}/imgs", "--out", "{o}", "--size", "100"],
     "multiple of 32"),
    ("predict batch", ["predict", "--checkpoint", "{w}/m.pkl", "{w}/imgs", "--out", "{o}", "--batch-size", "0"],
     "--batch-size must be >= 1"),
    ("predict missing ckpt", ["predict", "--checkpoint", "{w}/nope.pkl", "{w}/imgs", "--out", "{o}"], "no such file"),
    ("predict wrong model", ["predict", "--checkpoint", "{w}/m.pkl", "--model", "pranet_v1_pvt", "{w}/imgs",
                             "--out", "{o}"], "does not match"),
    ("predict wrong encoder", ["predict", "--checkpoint", "{w}/m.pkl", "--encoder", "pvt_v2_b1", "{w}/imgs",
                               "--out", "{o}"], "pass --encoder pvt_v2_b0"),
    ("predict unknown encoder", ["predict", "--checkpoint", "{w}/m.pkl", "--encoder", "pvt_v9", "{w}/imgs",
                                 "--out", "{o}"], "pvt_v9"),
    ("predict truncated image", ["predict", "--checkpoint", "{w}/m.pkl", "{w}/truncated", "--out", "{o}"],
     "t.png"),
    # test
    ("test missing data", ["test", "--checkpoint", "{w}/m.pkl", "--data", "{w}/nope", "--out", "{o}"], "nope"),
    ("test workers", ["test", "--checkpoint", "{w}/m.pkl", "--data", "{w}/syn/TestDataset", "--out", "{o}",
                      "--workers", "0"], "--workers must be >= 1"),
    ("test wrong model", ["test", "--checkpoint", "{w}/m.pkl", "--model", "pranet_v1_pvt", "--data",
                          "{w}/syn/TestDataset", "--out", "{o}"], "does not match"),
    # eval
    ("eval missing pred", ["eval", "--pred", "{w}/nope", "--gt", "{w}/syn/TestDataset"], "nope"),
    ("eval json is a folder", ["eval", "--pred", "{w}/imgs", "--gt", "{w}/imgs", "--json", "{w}/empty"],
     "is a folder"),
    ("eval json under a file", ["eval", "--pred", "{w}/imgs", "--gt", "{w}/imgs", "--json", "{w}/notes.txt/r.json"],
     "is not a folder"),
    ("eval json equals csv", ["eval", "--pred", "{w}/imgs", "--gt", "{w}/imgs", "--json", "{o}.x", "--csv", "{o}.x"],
     "same file"),
    ("eval curves is a file", ["eval", "--pred", "{w}/imgs", "--gt", "{w}/imgs", "--curves", "{w}/notes.txt"],
     "not a folder"),
    ("unknown command", ["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("case", BATTERY, ids=[c[0] for c in BATTERY])
def test_bad_input_battery(case, world, tmp_path, capsys):
    name, cmd, expected = case
    out = tmp_path / "out"
    args = [str(a).replace("{w}", str(world)).replace("{o}", str(out)) for a in cmd]
    before = _tree(world)
    try:
        code, _, err = run_cli(args, capsys)
    except SystemExit as exc:  # argparse
        code, err = exc.code, capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, err[-1500:])
    assert lines and lines[-1].startswith("error:"), err[-1500:]
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]], err[-1500:]
    assert "Traceback" not in err and "[ WARN" not in err
    assert expected in lines[-1], lines[-1]
    assert _tree(world) == before, "the case changed or left files in the inputs"
    leftovers = [p for p in tmp_path.rglob("*")]
    assert not leftovers, f"left behind: {leftovers}"


def test_battery_size():
    print(f"\nbad-input battery: {len(BATTERY)} cases")
    assert len(BATTERY) >= 60


# ------------------------------------------------------------------ runs are never silently overwritten

def test_train_refuses_an_existing_run_and_overwrite_starts_afresh(world, tmp_path, capsys):
    run_dir = tmp_path / "r"
    args = TRAIN + [f"data.train={world}/syn/TrainDataset", "train.max_steps=1", "train.epochs=1",
                    "--run-dir", str(run_dir)]
    assert run_cli(args, capsys)[0] == 0
    steps_before = (run_dir / "steps.csv").read_text()
    code, out, err = run_cli(args, capsys)
    assert code == 2 and "--resume" in err
    assert (run_dir / "steps.csv").read_text() == steps_before  # untouched
    for stale in ("test_last/metrics.json", "test/metrics.json", "predictions_last/x.png", "test_checkpoints.json"):
        (run_dir / stale).parent.mkdir(exist_ok=True)
        (run_dir / stale).write_text("{}")  # test outputs of the previous run
    code, out, err = run_cli(args + ["--overwrite"], capsys)
    assert code == 0, err
    for stale in ("test_last", "test", "predictions_last", "test_checkpoints.json"):
        assert not (run_dir / stale).exists(), stale  # nothing of the old run's scores survives
    rows = (run_dir / "steps.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == len(steps_before.splitlines())  # not appended
    # resuming a run that reached train.max_steps trains nothing more
    meta = ck.read_state_dict(run_dir / "last.pkl").meta
    code, out, err = run_cli(["train", "--no-progress", "--resume", str(run_dir)], capsys)
    assert code == 0 and "nothing to do" in out
    assert ck.read_state_dict(run_dir / "last.pkl").meta["step"] == meta["step"] == 1


def test_overrides_may_follow_options(world, tmp_path, capsys):
    run_dir = tmp_path / "r"
    code, out, err = run_cli(["train", "--no-progress", "model.name=pranet_v2_pvt", "--run-dir", str(run_dir),
                              "model.encoder=pvt_v2_b0", f"data.train={world}/syn/TrainDataset",
                              "data.train_size=64", "train.multi_scale=[1.0]", "train.max_steps=1",
                              "train.batch_size=2", "train.epochs=1", "output.predict_test=false"], capsys)
    assert code == 0, err
    saved = (run_dir / "config.yaml").read_text()
    assert "pvt_v2_b0" in saved and "max_steps: 1" in saved


def test_no_validation_split_and_divergence_say_what_happened(world, tmp_path, capsys):
    args = TRAIN + [f"data.train={world}/syn/TrainDataset", "data.val_fraction=0", "train.max_steps=1",
                    "train.epochs=1", "--run-dir", str(tmp_path / "a")]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "-1.0" not in out and "no validation images" in out
    args = TRAIN + [f"data.train={world}/syn/TrainDataset", "train.lr=1e12", "train.clip=null",
                    "train.epochs=3", "--run-dir", str(tmp_path / "b")]
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    assert "no checkpoint had been written yet" in err or "last good checkpoint kept" in err
    if "last good checkpoint kept" in err:
        assert (tmp_path / "b" / "last.pkl").is_file()


# ------------------------------------------------------------------ files: umask, all-or-nothing, warnings

def test_outputs_honour_the_umask(tmp_path):
    from jittor_pranet.utils.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        ck.save_checkpoint({"w": np.zeros(2, np.float32)}, tmp_path / "c.pkl")
    finally:
        os.umask(old)
    for name in ("a.txt", "c.pkl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_write_many_is_all_or_nothing(tmp_path):
    from jittor_pranet.utils.io import atomic_write_many

    (tmp_path / "old.csv").write_text("old")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        atomic_write_many({tmp_path / "r.json": b"{}", blocker / "r.csv": b"a,b"})
    assert not (tmp_path / "r.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "old.csv"]  # no temp files


def test_partial_conversion_warns_at_prediction(world, tmp_path, capsys):
    from jittor_pranet import build_model, save_checkpoint

    src = tmp_path / "half.pkl"
    sd = ck.model_numpy_state_dict(build_model("pranet_v2_pvt", encoder="pvt_v2_b0"))
    save_checkpoint({k: v for i, (k, v) in enumerate(sd.items()) if i % 2 == 0}, src)
    dst = tmp_path / "conv.pkl"
    code, out, err = run_cli(["convert", "--partial", "--model", "pranet_v2_pvt", "--encoder", "pvt_v2_b0",
                              src, dst], capsys)
    assert code == 0, err
    code, out, err = run_cli(["predict", "--checkpoint", dst, f"{world}/imgs", "--out", tmp_path / "p",
                              "--size", "64", "--no-progress"], capsys)
    assert code == 0, err
    assert "hold random values" in err


def test_disk_full_during_checkpoint_write_is_one_line(tmp_path, monkeypatch):
    import errno

    from jittor_pranet.errors import UserError
    from jittor_pranet.utils import io as uio

    (tmp_path / "c.pkl").write_bytes(b"previous")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uio.os, "fsync", full)
    with pytest.raises(UserError, match="No space left on device.*unchanged"):
        ck.save_checkpoint({"w": np.zeros(2, np.float32)}, tmp_path / "c.pkl")
    assert (tmp_path / "c.pkl").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pkl"]


def test_every_shipped_config_loads():
    """The recipes in configs/ and the packaged quickstart configs pass the declared checks."""
    from jittor_pranet.config import load_config

    root = Path(__file__).resolve().parents[2]
    paths = sorted((root / "configs").glob("*.yaml")) + sorted((root / "jittor_pranet" / "configs").glob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        load_config(str(path))
