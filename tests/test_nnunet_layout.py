"""nnU-Net raw datasets (2-D PNG): detected as a layout, class names from dataset.json, train + test via the CLI."""
import json

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from jittor_pranet.data.multiclass_layouts import load_multiclass_data
from jittor_pranet.data.nnunet import nnunet_class_names
from jittor_pranet.errors import UserError

TINY = ["task=multiclass", "model.name=emcad_b2_dsra", "model.encoder=pvt_v2_b0", "data.train_size=64",
        "train.batch_size=2", "train.optimizer=adamw", "train.clip=null", "train.multi_scale=[1.0]",
        "data.num_workers=1", "output.predict_test=false", "data.augment=false"]


def _case(rng, size=64):
    yy, xx = np.mgrid[:size, :size]
    label = np.zeros((size, size), np.uint8)
    cy, cx = rng.integers(16, size - 16, 2)
    label[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 1
    y0, x0 = rng.integers(0, size - 12, 2)
    label[y0:y0 + 10, x0:x0 + 10] = 2
    image = (label * 90 + rng.integers(0, 40, (size, size))).astype(np.uint8)
    return image, label


def write_nnunet_png(root, n_train=5, n_test=1, labels=None, seed=0):
    rng = np.random.default_rng(seed)
    for folder, n, offset in (("Tr", n_train, 0), ("Ts", n_test, 100)):
        (root / f"images{folder}").mkdir(parents=True)
        (root / f"labels{folder}").mkdir()
        for i in range(n):
            image, label = _case(rng)
            Image.fromarray(image).save(root / f"images{folder}" / f"toy_{i + offset:03d}_0000.png")
            Image.fromarray(label).save(root / f"labels{folder}" / f"toy_{i + offset:03d}.png")
    meta = {"channel_names": {"0": "MRI"}, "labels": labels or {"background": 0, "disc": 1, "box": 2},
            "numTraining": n_train, "file_ending": ".png"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_class_names_v1_and_v2(tmp_path):
    assert nnunet_class_names({"background": 0, "kidney": 1, "tumor": 2}, tmp_path) == ("kidney", "tumor")
    assert nnunet_class_names({"2": "tumor", "0": "background", "1": "kidney"}, tmp_path) == ("kidney", "tumor")
    for bad, words in (({"background": 0, "kidney": 2}, "0..1"), ({"background": 0, "k": [1, 2]}, "region"),
                       ({"background": 0}, "no foreground"), ([], "mapping")):
        with pytest.raises(UserError, match=words):
            nnunet_class_names(bad, tmp_path)


def test_layout_detected_split_by_case(tmp_path):
    root = write_nnunet_png(tmp_path / "Dataset001_Toy")
    data = load_multiclass_data(root, val_fraction=0.2, seed=0)
    assert data.kind == "nnunet" and data.class_names == ("disc", "box") and data.num_classes == 3
    assert len(data.train_slices) == 4 and len(data.val_volumes) == 1
    assert [v.name for v in data.test_volumes] == ["toy_100"]
    assert not {s.case for s in data.train_slices} & {v.case for v in data.val_volumes}
    case = next(data.iter_volumes("test"))
    assert case.label.shape == (1, 64, 64) and set(np.unique(case.label)) == {0, 1, 2}


def test_train_and_test_through_cli(tmp_path, capsys):
    root = write_nnunet_png(tmp_path / "Dataset001_Toy")
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--no-progress", "--run-dir", run, f"data.train={root}", *TINY,
                              "train.epochs=1", "train.max_steps=2"], capsys)
    assert code == 0, err
    assert "nnunet data" in out + err
    code, out, err = run_cli(["test", "--no-progress", "--checkpoint", run / "last.pkl", "--data", root,
                              "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    for name in ("disc", "box", "**mean**"):
        assert name in out, name
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= scores["mean"]["mDice"] <= 1.0


@pytest.mark.parametrize("case", ["no_json", "no_label", "regions", "nifti", "channel"])
def test_bad_layout_one_line(case, tmp_path, capsys):
    root = write_nnunet_png(tmp_path / "Dataset001_Toy", n_train=3)
    expect = {"no_json": "has no dataset.json (found: imagesTr/, imagesTs/", "no_label": "no label",
              "regions": "region-based", "nifti": "volumes are not read yet", "channel": "single-channel"}[case]
    if case == "no_json":
        (root / "dataset.json").unlink()
    elif case == "no_label":
        (root / "labelsTr" / "toy_001.png").unlink()
    elif case == "regions":
        (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2]},
                                                       "file_ending": ".png"}))
    elif case == "nifti":
        (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1}, "file_ending": ".nii.gz"}))
    else:
        (root / "imagesTr" / "toy_000_0001.png").write_bytes((root / "imagesTr" / "toy_000_0000.png").read_bytes())
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--no-progress", "--run-dir", run, f"data.train={root}", *TINY,
                              "train.max_steps=1"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and expect in lines[-1], err
    assert "Traceback" not in err
    assert not run.exists() or not any(run.iterdir())
