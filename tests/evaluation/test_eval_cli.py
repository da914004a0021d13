"""Folder evaluation and the ``eval`` command: pairing, resizing, layouts, outputs, exit codes."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from jittor_pranet.cli import main
from jittor_pranet.errors import UserError
from jittor_pranet.evaluation import evaluate_folders, evaluate_folders_detailed, pair_folders
from jittor_pranet.metrics import METRIC_KEYS, PolypMetrics

REPO = Path(__file__).resolve().parents[2]


def _pair(rng, h=36, w=48):
    gt = np.zeros((h, w), np.uint8)
    cv2.circle(gt, (int(rng.integers(12, w - 12)), int(rng.integers(12, h - 12))), int(rng.integers(4, 10)), 255, -1)
    pred = cv2.GaussianBlur(gt, (0, 0), 2.0)
    pred = np.clip(pred.astype(int) + rng.integers(-20, 21, pred.shape), 0, 255).astype(np.uint8)
    return pred, gt


def _write_set(pred_dir: Path, gt_dir: Path, n: int, seed: int = 0, gt_ext: str = ".png"):
    rng = np.random.default_rng(seed)
    pred_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    arrays = []
    for i in range(n):
        pred, gt = _pair(rng)
        cv2.imwrite(str(pred_dir / f"{i}.png"), pred)
        cv2.imwrite(str(gt_dir / f"{i}{gt_ext}"), gt)
        arrays.append((pred, gt))
    return arrays


@pytest.fixture
def tree(tmp_path):
    """PraNet layout: gt/<set>/masks, pred/<set>; one set on each side only."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    a = _write_set(pred / "CVC-300", gt / "CVC-300" / "masks", 3, seed=1)
    b = _write_set(pred / "Kvasir", gt / "Kvasir" / "masks", 4, seed=2)
    (gt / "Kvasir" / "images").mkdir()
    _write_set(pred / "PredOnly", tmp_path / "unused", 1, seed=3)
    _write_set(tmp_path / "unused2", gt / "GTOnly" / "masks", 1, seed=4)
    return pred, gt, {"CVC-300": a, "Kvasir": b}


def _expected(arrays):
    m = PolypMetrics()
    for p, g in arrays:
        m.step(p, g)
    return m.results()


# ------------------------------------------------------------------------------------ API
def test_tree_sets_and_values(tree):
    pred, gt, arrays = tree
    report = evaluate_folders_detailed(pred, gt, workers=1, progress=False)
    assert list(report.sets) == ["CVC-300", "Kvasir"]
    assert report.sets_only_in_pred == ["PredOnly"] and report.sets_only_in_gt == ["GTOnly"]
    for name, r in report.sets.items():
        assert r.n_images == len(arrays[name])
        assert r.metrics == pytest.approx(_expected(arrays[name]), abs=1e-12)
    assert any("GTOnly" in w for w in report.warnings())


def test_parallel_equals_serial(tree):
    pred, gt, _ = tree
    assert evaluate_folders(pred, gt, workers=2) == evaluate_folders(pred, gt, workers=1)


def test_single_folder_uses_folder_name_and_masks_subfolder(tree):
    pred, gt, arrays = tree
    res = evaluate_folders(pred / "Kvasir", gt / "Kvasir", workers=1)  # finds gt/Kvasir/masks
    assert list(res) == ["Kvasir"]
    assert res["Kvasir"] == pytest.approx(_expected(arrays["Kvasir"]), abs=1e-12)
    assert list(evaluate_folders(pred / "Kvasir", gt / "Kvasir" / "masks", workers=1)) == ["Kvasir"]


def test_pairing_report(tmp_path):
    _write_set(tmp_path / "p", tmp_path / "g", 3, gt_ext=".jpg")  # pairs by stem across extensions
    cv2.imwrite(str(tmp_path / "p" / "extra_pred.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "g" / "extra_gt.png"), np.zeros((8, 8), np.uint8))
    (tmp_path / "p" / "README.txt").write_text("not an image")
    (tmp_path / "g" / ".DS_Store").write_bytes(b"\0")
    pairing = pair_folders(tmp_path / "p", tmp_path / "g")
    assert [s for s, _, _ in pairing.pairs] == ["0", "1", "2"]
    assert pairing.pred_only == ["extra_pred"] and pairing.gt_only == ["extra_gt"]
    assert pairing.skipped_files == 2
    report = evaluate_folders_detailed(tmp_path / "p", tmp_path / "g", workers=1, progress=False)
    r = report.sets["p"]
    assert r.n_images == 3 and r.skipped_files == 2
    text = "\n".join(report.warnings())
    assert "extra_pred" in text and "extra_gt" in text and "non-image" in text


def test_size_mismatch_is_resized_and_counted(tmp_path):
    arrays = _write_set(tmp_path / "p", tmp_path / "g", 3)
    small = cv2.resize(arrays[1][0], (24, 18), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "p" / "1.png"), small)
    report = evaluate_folders_detailed(tmp_path / "p", tmp_path / "g", workers=1, progress=False)
    r = report.sets["p"]
    assert r.n_resized == 1
    assert any("resized 1 prediction" in w for w in report.warnings())
    back = cv2.resize(small, (48, 36), interpolation=cv2.INTER_LINEAR)
    expected = _expected([arrays[0], (back, arrays[1][1]), arrays[2]])
    assert r.metrics == pytest.approx(expected, abs=1e-12)


def test_empty_and_non_image_folders_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    _write_set(tmp_path / "p", tmp_path / "g", 2)
    with pytest.raises(UserError, match="no image files"):
        evaluate_folders(tmp_path / "empty", tmp_path / "g")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("x")
    with pytest.raises(UserError, match="no image files"):
        evaluate_folders(tmp_path / "p", tmp_path / "txt")
    with pytest.raises(UserError, match="no such folder"):
        evaluate_folders(tmp_path / "missing", tmp_path / "g")


def test_no_common_names_is_a_user_error(tmp_path):
    _write_set(tmp_path / "p", tmp_path / "g", 2)
    for f in (tmp_path / "g").iterdir():
        f.rename(f.with_name("gt_" + f.name))
    with pytest.raises(UserError, match="same file name"):
        evaluate_folders(tmp_path / "p", tmp_path / "g", workers=1)


def test_unreadable_image_names_the_file(tmp_path):
    _write_set(tmp_path / "p", tmp_path / "g", 3)
    (tmp_path / "p" / "2.png").write_bytes(b"this is not a png")
    for workers in (1, 2):
        with pytest.raises(UserError, match=r"2\.png"):
            evaluate_folders(tmp_path / "p", tmp_path / "g", workers=workers)


def test_colour_and_gif_files(tmp_path):
    from PIL import Image

    arrays = _write_set(tmp_path / "p", tmp_path / "g", 2)
    pred0, gt0 = arrays[0]
    cv2.imwrite(str(tmp_path / "p" / "0.png"), cv2.merge([pred0, pred0, pred0]))  # RGB prediction
    (tmp_path / "g" / "0.png").unlink()
    Image.fromarray(gt0).save(tmp_path / "g" / "0.gif")  # OpenCV cannot decode GIF
    res = evaluate_folders(tmp_path / "p", tmp_path / "g", workers=1)
    assert res["p"] == pytest.approx(_expected(arrays), abs=1e-12)


# ------------------------------------------------------------------------------------ CLI
def _cli(capsys, *argv):
    code = main(["eval", *map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_outputs(tree, tmp_path, capsys):
    pred, gt, arrays = tree
    j, c, curves = tmp_path / "out" / "r.json", tmp_path / "out" / "r.csv", tmp_path / "curves"
    code, out, err = _cli(capsys, "--pred", pred, "--gt", gt, "--json", j, "--csv", c, "--curves", curves, "--workers", 1)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "| Set | " + " | ".join(METRIC_KEYS) + " |"
    assert lines[2].startswith("| CVC-300 | ") and lines[3].startswith("| Kvasir | ")
    assert all(len(cell.strip().split(".")[1]) == 4 for cell in lines[3].strip("|").split("|")[1:])
    assert "GTOnly" in err and "PredOnly" in err

    data = json.loads(j.read_text())
    assert set(data) == {"CVC-300", "Kvasir"}
    for name, values in data.items():
        assert list(values) == list(METRIC_KEYS)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values.values())
        assert values == pytest.approx(_expected(arrays[name]), abs=1e-12)

    rows = list(csv.DictReader(c.open()))
    assert [r["set"] for r in rows] == ["CVC-300", "Kvasir"]
    assert float(rows[1]["mDice"]) == pytest.approx(data["Kvasir"]["mDice"], abs=1e-6)

    for name in ("CVC-300", "Kvasir"):
        img = cv2.imread(str(curves / f"{name}_curves.png"))
        assert img is not None and img.ndim == 3
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic writes leave no temp files


def test_cli_gt_threshold(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    cv2.imwrite(str(tmp_path / "p" / "a.png"), np.array([[0, 255], [255, 255]], np.uint8))
    cv2.imwrite(str(tmp_path / "g" / "a.png"), np.array([[0, 100], [200, 255]], np.uint8))
    j0, j128 = tmp_path / "0.json", tmp_path / "128.json"
    assert _cli(capsys, "--pred", tmp_path / "p", "--gt", tmp_path / "g", "--json", j0)[0] == 0
    assert _cli(capsys, "--pred", tmp_path / "p", "--gt", tmp_path / "g", "--json", j128, "--gt-threshold", 128)[0] == 0
    assert json.loads(j0.read_text())["p"]["maxDice"] == 1.0
    assert json.loads(j128.read_text())["p"]["maxDice"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--pred", "{tmp}/missing", "--gt", "{tmp}/g"], "no such folder"),
        (["--pred", "{tmp}/p", "--gt", "{tmp}/empty"], "no image files"),
        (["--pred", "{tmp}/p", "--gt", "{tmp}/g", "--workers", "0"], "--workers"),
        (["--pred", "{tmp}/p", "--gt", "{tmp}/g", "--json", "{tmp}"], "is a folder"),
        (["--pred", "{tmp}/bad", "--gt", "{tmp}/g"], "0.png"),
    ],
)
def test_cli_bad_input_exit_2_one_line(tmp_path, capsys, argv, needle):
    _write_set(tmp_path / "p", tmp_path / "g", 2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "0.png").write_bytes(b"garbage")
    code, _out, err = _cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in err


def test_cli_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--pred", "x", "--gt", "y", "--gt-threshold", "5"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--gt", "y"])
    assert exc.value.code == 2


def test_module_entry_point_subprocess(tree, tmp_path):
    pred, gt, _ = tree
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ok = subprocess.run(
        [sys.executable, "-m", "jittor_pranet", "eval", "--pred", str(pred), "--gt", str(gt), "--json", str(tmp_path / "r.json")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "| Kvasir |" in ok.stdout and (tmp_path / "r.json").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "jittor_pranet", "eval", "--pred", str(tmp_path / "nope"), "--gt", str(gt)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: ") and "Traceback" not in bad.stderr


def test_workers_do_not_deadlock_after_opencv_threads(tmp_path):
    """Workers started right after OpenCV used its thread pool, from a guarded script.

    With a plain fork this deadlocked (intermittently) in the child's first OpenCV call; the pool now
    starts workers from a fork server / spawn."""
    _write_set(tmp_path / "p", tmp_path / "g", 4)
    script = tmp_path / "run.py"
    script.write_text(
        "import cv2, numpy as np\n"
        "from jittor_pranet.evaluation import evaluate_folders\n"
        "if __name__ == '__main__':\n"
        "    cv2.setNumThreads(2)\n"
        "    cv2.GaussianBlur(np.zeros((2000, 2000), np.float32), (0, 0), 5)  # starts OpenCV's threads\n"
        f"    print(evaluate_folders({str(tmp_path / 'p')!r}, {str(tmp_path / 'g')!r}, workers=2)['p']['mDice'])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 0 < float(done.stdout.strip()) <= 1
