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


@pytest.mark.parametrize("case", ["missing", "no_metrics", "classes"])
def test_report_bad_input_one_line(case, tmp_path, capsys):
    good = _run(tmp_path / "a", 0, [0.5, 0.5])
    expect = {"missing": "run folder not found", "no_metrics": "no test/metrics.json", "classes": "differ from"}[case]
    if case == "missing":
        other = tmp_path / "nope"
    elif case == "no_metrics":
        other = tmp_path / "empty"
        other.mkdir()
    else:
        other = _run(tmp_path / "b", 1, [0.5, 0.5], classes=("liver", "spleen"))
    code, out, err = run_cli(["report", good, other, "--out", tmp_path / "rep"], capsys)
    assert code == 2 and err.strip().startswith("error: ") and expect in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rep").exists()
