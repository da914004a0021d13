"""tools/stress_interrupt.py judges the files a signalled command left: it must see a truncated or
wrongly sized map, a stray temporary file, and a run folder left without last.pkl."""
import importlib.util
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("stress_interrupt", ROOT / "tools" / "stress_interrupt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verdict(tool, capsys, kind, target):
    tool._worker_check(kind, target)
    return json.loads(capsys.readouterr().out)


def test_check_sees_bad_predictions(tmp_path, capsys):
    tool = _tool()
    out = tmp_path / "out"
    out.mkdir()
    Image.fromarray(np.zeros(tool.IMAGE_HW, np.uint8)).save(out / "000.png")
    assert _verdict(tool, capsys, "predict", out) == {"files": 1, "problems": [], "complete": False}
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(out / "001.png")
    good = (out / "000.png").read_bytes()
    (out / "002.png").write_bytes(good[: len(good) // 2])
    (out / ".003.png.tmp").write_bytes(b"x")
    problems = _verdict(tool, capsys, "predict", out)["problems"]
    assert any(p.startswith("001.png: size") for p in problems), problems
    assert any(p.startswith("002.png:") for p in problems), problems
    assert "stray file .003.png.tmp" in problems


def test_complete_means_every_prediction_written_and_sound(tmp_path, capsys):
    """Exit 0 after a late signal passes only when every output is there: 'complete' must see one missing."""
    tool = _tool()
    tool.N_IMAGES = 3
    out = tmp_path / "out"
    out.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros(tool.IMAGE_HW, np.uint8)).save(out / f"{i:03d}.png")
    assert _verdict(tool, capsys, "predict", out)["complete"] is False
    Image.fromarray(np.zeros(tool.IMAGE_HW, np.uint8)).save(out / "002.png")
    assert _verdict(tool, capsys, "predict", out)["complete"] is True
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(out / "003.png")
    assert _verdict(tool, capsys, "predict", out)["complete"] is False


def test_check_sees_a_run_left_without_last_pkl(tmp_path, capsys):
    tool = _tool()
    run = tmp_path / "run"
    assert _verdict(tool, capsys, "train", run)["problems"] == []  # no folder at all: clean
    run.mkdir()
    (run / "config.yaml").write_text("x: 1\n")
    problems = _verdict(tool, capsys, "train", run)["problems"]
    assert problems and "without last.pkl" in problems[0]
    (run / "last.pkl").write_bytes(b"not a checkpoint")
    problems = _verdict(tool, capsys, "train", run)["problems"]
    assert problems and problems[0].startswith("last.pkl unreadable"), problems
