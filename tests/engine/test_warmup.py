"""Kernel warm-up before training and the time limit as a warning safety net (train, quickstart)."""
import json
import random

import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet import checkpoint as ck

# batch 3 over 10 training images: a smaller last batch, so two batch shapes are warmed up;
# two scales and drop-path, so the multi-scale loop and the random stream are exercised
TINY = ["model.name=pranet_v2_pvt", "model.encoder=pvt_v2_b0", "model.drop_path_rate=0.1", "data.train_size=64",
        "train.batch_size=3", "train.multi_scale=[1.0,1.5]", "data.val_fraction=0.2", "data.num_workers=1",
        "output.predict_test=false"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from jittor_pranet.data import make_synthetic_polyps

    root = tmp_path_factory.mktemp("syn")
    make_synthetic_polyps(root, n_train=12, n_test=2, size=((64, 64), (64, 64)), seed=5)
    return root


def _fit(tmp_path, name, data, *extra):
    from jittor_pranet.config import load_config
    from jittor_pranet.engine.trainer import Trainer

    lines = []
    cfg = load_config(None, [f"data.train={data / 'TrainDataset'}", *TINY, "train.epochs=2", *extra])
    (tmp_path / name).mkdir()
    trainer = Trainer(cfg, tmp_path / name, progress=False, log=lines.append)
    result = trainer.fit()
    return trainer, result, lines


def test_warmup_leaves_the_training_result_bit_identical(tmp_path, tiny_data):
    _, plain, plain_log = _fit(tmp_path, "plain", tiny_data, "train.warmup=false")
    trainer, warm, warm_log = _fit(tmp_path, "warm", tiny_data, "train.warmup=true")
    assert not any("compiling kernels" in line for line in plain_log)
    assert any(line.startswith("compiling kernels (first run only)") for line in warm_log), warm_log
    assert trainer.warmup_batch_sizes() == [3, 1]  # the short last batch is warmed up too
    assert trainer.train_sizes() == [64, 96]
    assert warm["warmup_s"] > 0 and plain["warmup_s"] == 0
    assert plain["steps"] == warm["steps"] > 0
    a = ck.read_state_dict(tmp_path / "plain" / "last.pkl")
    b = ck.read_state_dict(tmp_path / "warm" / "last.pkl")
    assert list(a.state_dict) == list(b.state_dict)
    for k in a.state_dict:  # weights and BatchNorm running statistics
        assert np.array_equal(a.state_dict[k], b.state_dict[k]), k
    oa, ob = a.meta["train_state"]["optimizer"], b.meta["train_state"]["optimizer"]
    assert oa["step"] == ob["step"]
    for x, y in zip(oa["exp_avg"] + oa["exp_avg_sq"], ob["exp_avg"] + ob["exp_avg_sq"]):
        assert np.array_equal(x, y)
    assert [r["train_loss"] for r in plain["history"]] == [r["train_loss"] for r in warm["history"]]


def test_warmup_restores_statistics_and_random_streams(tmp_path, tiny_data):
    from jittor_pranet.config import load_config
    from jittor_pranet.engine.trainer import Trainer

    cfg = load_config(None, [f"data.train={tiny_data / 'TrainDataset'}", *TINY])
    trainer = Trainer(cfg, tmp_path, progress=False, log=lambda *a: None)
    before = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}
    moments = [m.numpy().copy() for m in trainer.optimizer.exp_avg]
    np.random.seed(7)
    random.seed(7)
    np_next, py_next = np.random.random(), random.random()
    np.random.seed(7)
    random.seed(7)
    trainer.warm_up()
    assert (np.random.random(), random.random()) == (np_next, py_next)
    after = trainer.model.state_dict()
    for k, v in before.items():
        assert np.array_equal(v, after[k].numpy()), k
    assert trainer.optimizer.step_count == 0
    assert all(np.array_equal(m, n.numpy()) for m, n in zip(moments, trainer.optimizer.exp_avg))


def test_time_limit_warns_in_the_result_and_at_the_end(tmp_path, tiny_data):
    _, result, lines = _fit(tmp_path, "short", tiny_data, "train.time_limit_min=1e-6", "train.warmup=false")
    assert result["time_limit_reached"] is True
    assert result["steps"] == 1 and result["epochs"] == 0
    assert len(result["warnings"]) == 1 and result["warnings"][0].startswith("WARNING: train.time_limit_min")
    assert "CUT SHORT" in result["warnings"][0] and result["warnings"][0] in lines
    # a run that finishes inside the limit has no warning
    _, full, _ = _fit(tmp_path, "full", tiny_data, "train.time_limit_min=600", "train.epochs=1", "train.warmup=false")
    assert full["time_limit_reached"] is False and full["warnings"] == [] and full["epochs"] == 1


QUICK = ["data.synthetic.n_train=10", "data.synthetic.n_test=2", "data.synthetic.size=[[64,64],[64,64]]",
         "data.train_size=64", "train.batch_size=4", "train.epochs=1", "data.num_workers=1"]


def test_quickstart_compiles_first_and_reports_each_phase(tmp_path, capsys):
    code, out, err = run_cli(["quickstart", "--no-progress", "--run-dir", tmp_path / "run",
                              f"data.synthetic.root={tmp_path / 'data'}", *QUICK, "train.time_limit_min=1e-6"], capsys)
    assert code == 0, err
    assert "compiling kernels (first run only)" in out
    assert out.index("compiling kernels (first run only)") < out.index("epoch=")
    summary = [line for line in out.splitlines() if line.startswith("quickstart: time by phase")]
    assert len(summary) == 1, out[-3000:]
    for phase in ("compiling kernels (warm-up)", "training", "test", "total"):
        assert phase in summary[0]
    # the safety net was hit: warned when it happened and again as the very last line
    assert out.strip().splitlines()[-1].startswith("WARNING: train.time_limit_min=1e-06")
    assert out.count("CUT SHORT") == 2
    _assert_provenance(tmp_path / "run", seed=0)
    # both checkpoints scored: best.pkl (validation) as test_metrics, last.pkl beside it
    assert (tmp_path / "run" / "best.pkl").is_file() and (tmp_path / "run" / "test_metrics.json").is_file()
    assert "test-set metrics (best.pkl, best on validation)" in out
    assert "test-set metrics (last.pkl, final epoch)" in out and (tmp_path / "run" / "test_metrics_last.json").is_file()
    assert (tmp_path / "run" / "predictions_last").is_dir()


def _assert_provenance(run, seed):
    """The run's config.yaml names the package commit and the seed (and still loads back)."""
    from jittor_pranet.config import load_config
    from jittor_pranet.engine.run_report import package_commit

    head = (run / "config.yaml").read_text().splitlines()[:2]
    assert head[0].startswith("# jittor_pranet ") and f"commit {package_commit()}" in head[0], head
    assert head[1] == f"# seed {seed} (train.seed)", head
    assert load_config(str(run / "config.yaml"))["train"]["seed"] == seed


def test_quickstart_multiclass_compiles_first_and_reports_each_phase(tmp_path, capsys):
    code, out, err = run_cli(["quickstart", "--task", "multiclass", "--no-progress", "--run-dir", tmp_path / "run",
                              f"data.synthetic.root={tmp_path / 'organs'}", "data.synthetic.train_cases=3",
                              "data.synthetic.test_cases=1", "data.synthetic.size=64", "data.synthetic.depth=4",
                              "data.train_size=64", "train.batch_size=4", "train.epochs=1", "data.num_workers=1"],
                             capsys)
    assert code == 0, err
    assert "compiling kernels (first run only)" in out
    summary = [line for line in out.splitlines() if line.startswith("quickstart: time by phase")]
    assert len(summary) == 1, out[-3000:]
    assert "training" in summary[0] and "test" in summary[0]
    assert "WARNING" not in out and "CUT SHORT" not in out
    _assert_provenance(tmp_path / "run", seed=0)
    index = json.loads((tmp_path / "run" / "test_checkpoints.json").read_text())
    assert set(index) == {"best", "last"}
    for folder in ("test", "test_last"):
        assert (tmp_path / "run" / folder / "metrics.json").is_file()


def test_packaged_quickstart_budgets_are_epochs_with_a_far_safety_net():
    from jittor_pranet.cli.quickstart import PACKAGED_CONFIG, PACKAGED_MULTICLASS_CONFIG
    from jittor_pranet.config import load_config

    for path in (PACKAGED_CONFIG, PACKAGED_MULTICLASS_CONFIG):
        cfg = load_config(str(path))
        assert cfg["train"]["warmup"] is True
        assert cfg["train"]["time_limit_min"] >= 30, path  # idle machine: ~4-5 min
