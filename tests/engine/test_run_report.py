"""Run provenance in config.yaml (version, commit, seed; still loadable) and `report` over several runs."""
import json

import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet.config import load_config
from jittor_pranet.engine.run_report import package_commit, save_run_config


def _run(root, seed, scores, classes=("liver", "kidney")):
    cfg = load_config(None, ["task=multiclass", f"train.seed={seed}"])
    root.mkdir(parents=True)
    save_run_config(cfg, root / "config.yaml")
    per_class = {c: {"Dice": d, "IoU": d / 2, "HD95_vox": 10 * d, "HD95_mm": None} for c, d in zip(classes, scores)}
    (root / "test").mkdir()
    (root / "test" / "metrics.json").write_text(json.dumps({"classes": list(classes), "per_class": per_class}))
    return root


def test_config_records_commit_and_seed_and_loads_back(tmp_path):
    path = _run(tmp_path / "r", 7, [0.5, 0.6]) / "config.yaml"
    head = path.read_text().splitlines()[:2]
    assert head[0].startswith("# jittor_pranet ") and f"commit {package_commit()}" in head[0]
    assert head[1] == "# seed 7 (train.seed)"
    assert load_config(str(path), [])["train"]["seed"] == 7


def test_report_mean_std_per_class(tmp_path, capsys):
    dice = {"liver": [0.8, 0.9, 0.7], "kidney": [0.5, 0.4, 0.9]}
    runs = [_run(tmp_path / f"seed{s}", s, [dice["liver"][s], dice["kidney"][s]]) for s in range(3)]
    code, out, err = run_cli(["report", *runs, "--out", tmp_path / "rep"], capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())["summary"]
    for name, values in dice.items():
        assert saved[name]["Dice"]["mean"] == pytest.approx(np.mean(values))
        assert saved[name]["Dice"]["std"] == pytest.approx(np.std(values, ddof=1))
        assert saved[name]["HD95_vox"]["mean"] == pytest.approx(10 * np.mean(values))
        assert f"| {name} | {np.mean(values):.4f} +- {np.std(values, ddof=1):.4f} |" in out
    run_means = [np.mean([a, b]) for a, b in zip(dice["liver"], dice["kidney"])]
    assert saved["mean"]["Dice"]["mean"] == pytest.approx(np.mean(run_means))
    assert saved["mean"]["HD95_mm"]["mean"] is None and "n/a" in out
    assert "3 runs (seeds 0, 1, 2" in out
    from PIL import Image

    assert Image.open(tmp_path / "rep" / "report.png").size == (800, 500)


@pytest.mark.parametrize("case", ["missing", "no_metrics", "classes", "no_last", "bad_index"])
def test_report_bad_input_one_line(case, tmp_path, capsys):
    good = _run(tmp_path / "a", 0, [0.5, 0.5])
    expect = {"missing": "run folder not found", "no_metrics": "no test/metrics.json", "classes": "differ from",
              "no_last": "no test_last/metrics.json", "bad_index": "test_checkpoints.json: not valid JSON"}[case]
    extra = ["--checkpoint", "last"] if case == "no_last" else []
    if case == "missing":
        other = tmp_path / "nope"
    elif case == "no_metrics":
        other = tmp_path / "empty"
        other.mkdir()
    elif case == "classes":
        other = _run(tmp_path / "b", 1, [0.5, 0.5], classes=("liver", "spleen"))
    elif case == "no_last":
        other = good
    else:
        other = _run(tmp_path / "b", 1, [0.5, 0.5])
        (other / "test_checkpoints.json").write_text("{not json")
    code, out, err = run_cli(["report", good, other, "--out", tmp_path / "rep", *extra], capsys)
    assert code == 2 and err.strip().startswith("error: ") and expect in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rep").exists()


def test_report_reads_the_last_checkpoint_where_training_wrote_it(tmp_path, capsys):
    runs = []
    for seed, (best, last) in enumerate([(0.8, 0.7), (0.9, 0.6)]):
        run = _run(tmp_path / f"s{seed}", seed, [best, best])
        (run / "test_last").mkdir()
        per_class = {c: {"Dice": last, "IoU": last / 2, "HD95_vox": 1.0, "HD95_mm": 2.0} for c in ("liver", "kidney")}
        (run / "test_last" / "metrics.json").write_text(json.dumps({"per_class": per_class}))
        (run / "test_checkpoints.json").write_text(json.dumps({"best": {"folder": "test", "epoch": 3},
                                                               "last": {"folder": "test_last", "epoch": 5}}))
        runs.append(run)
    code, out, err = run_cli(["report", *runs, "--checkpoint", "last"], capsys)
    assert code == 0, err
    assert "checkpoint last" in out and f"| liver | {np.mean([0.7, 0.6]):.4f} +- {np.std([0.7, 0.6], ddof=1):.4f} |" in out
    code, out, err = run_cli(["report", *runs], capsys)
    assert code == 0 and "checkpoint best" in out and f"| liver | {np.mean([0.8, 0.9]):.4f} +-" in out
    # a run trained without validation has only last.pkl, scored into test/: best is refused, last read
    only = _run(tmp_path / "noval", 5, [0.4, 0.4])
    (only / "test_checkpoints.json").write_text(json.dumps({"last": {"folder": "test", "epoch": 2}}))
    code, out, err = run_cli(["report", only], capsys)
    assert code == 2 and "has no best.pkl scores" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["report", only, "--checkpoint", "last"], capsys)
    assert code == 0 and "| liver | 0.4000 +- 0.0000 |" in out


def test_selected_epochs_follow_the_trainer_rule(tmp_path):
    from jittor_pranet.engine.multiclass import selected_epochs

    history = [{"epoch": 1, "step": 4, "val_mDice": 0.5}, {"epoch": 2, "step": 8, "val_mDice": 0.7},
               {"epoch": 3, "step": 12, "val_mDice": 0.7}, {"epoch": 4, "step": 16, "val_mDice": 0.6}]
    (tmp_path / "metrics.json").write_text(json.dumps(history))
    picked = selected_epochs(tmp_path)
    assert picked["best"] == {"epoch": 2, "step": 8, "val_mDice": 0.7}  # the first epoch reaching the maximum
    assert picked["last"] == {"epoch": 4, "step": 16, "val_mDice": 0.6}
    assert selected_epochs(tmp_path / "none") == {"best": None, "last": None}
