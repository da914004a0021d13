"""Volume evaluation: the official slice-wise protocol, per-class metrics in voxels and mm, outputs."""
import csv
import io
import json

import numpy as np
import pytest
from scipy import ndimage

from jittor_pranet.data.multiclass import VolumeCase
from jittor_pranet.errors import UserError
from jittor_pranet.evaluation.volumes import evaluate_volumes, overlay_slice_indices, predict_volume, score_volume

NAMES = ["a", "b", "c"]


def _intensity_model(num_classes=4):
    """A fake model: class = nearest of the levels c / num_classes (logits = -distance)."""
    levels = np.arange(num_classes, dtype=np.float32) / num_classes

    def predict(batch):
        assert batch.ndim == 4 and batch.shape[1] == 1 and batch.dtype == np.float32
        return -np.abs(batch[:, 0][:, None] - levels[None, :, None, None])

    return predict


def _volume(rng, depth=5, h=30, w=26):
    label = np.zeros((depth, h, w), np.int64)
    label[1:4, 4:14, 3:11] = 1
    label[0:3, 18:26, 12:22] = 2
    label[2:5, 5:9, 16:24] = 3
    image = label.astype(np.float32) / 4 + rng.normal(0, 0.01, label.shape).astype(np.float32)
    return image, label


def test_predict_volume_follows_the_official_slice_protocol():
    rng = np.random.default_rng(0)
    image, label = _volume(rng)
    model = _intensity_model()
    pred = predict_volume(image, model, input_size=32, batch_size=2)
    expected = []
    for s in image:  # the official test_single_volume, written out
        z = ndimage.zoom(s, (32 / s.shape[0], 32 / s.shape[1]), order=3)
        out = model(z[None, None].astype(np.float32)).argmax(1)[0]
        expected.append(ndimage.zoom(out, (s.shape[0] / 32, s.shape[1] / 32), order=0))
    assert pred.shape == label.shape and np.array_equal(pred, np.stack(expected))
    assert (pred == label).mean() > 0.95
    square_image, square_label = _volume(rng, h=32, w=32)
    assert np.array_equal(predict_volume(square_image, model, input_size=32, batch_size=3), square_label)  # no zoom


def test_scores_match_medpy_and_the_empty_case_rules():
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(1)
    _, label = _volume(rng)
    pred = label.copy()
    pred[1:4, 4:14, 3:9] = 1  # shrink class 1, shift class 2 by one slice, drop class 3
    pred[pred == 2] = 0
    pred[1:4, 18:26, 12:22] = 2
    pred[pred == 3] = 0
    scores = score_volume(pred, label, NAMES, spacing=(3.0, 1.0, 0.5))
    for c, name in enumerate(NAMES[:2], start=1):
        p, g = pred == c, label == c
        assert scores[name]["Dice"] == pytest.approx(binary.dc(p, g), abs=1e-12)
        assert scores[name]["IoU"] == pytest.approx(binary.jc(p, g), abs=1e-12)
        assert scores[name]["HD95_vox"] == pytest.approx(binary.hd95(p, g), abs=1e-9)
        assert scores[name]["HD95_mm"] == pytest.approx(binary.hd95(p, g, voxelspacing=(3.0, 1.0, 0.5)), abs=1e-9)
    assert scores["b"]["HD95_mm"] == pytest.approx(3.0 * scores["b"]["HD95_vox"])  # the shift is along d
    assert scores["c"] == {"Dice": 0.0, "IoU": 0.0, "HD95_vox": 0.0, "HD95_mm": 0.0}  # predicted nothing
    fast = score_volume(pred, label, NAMES, spacing=(3.0, 1.0, 0.5), compute_hd95=False)
    for name in NAMES:
        assert fast[name] == {"Dice": scores[name]["Dice"], "IoU": scores[name]["IoU"], "HD95_vox": None, "HD95_mm": None}
    only_pred = score_volume(label, np.where(label == 3, 0, label), NAMES)
    assert only_pred["c"] == {"Dice": 1.0, "IoU": 1.0, "HD95_vox": 0.0, "HD95_mm": None}  # upstream rewards it


def test_evaluate_volumes_tables_json_and_overlays(tmp_path):
    rng = np.random.default_rng(2)
    cases = []
    for i, spacing in enumerate(((2.0, 1.0, 1.0), (2.0, 1.0, 1.0))):
        image, label = _volume(rng)
        cases.append(VolumeCase(name=f"case{i}", image=image, label=label, spacing=spacing))
    result = evaluate_volumes(iter(cases), _intensity_model(), NAMES, input_size=32, out_dir=tmp_path,
                              overlays_per_volume=2, progress=False)
    per_class = result.per_class()
    direct = [score_volume(predict_volume(c.image, _intensity_model(), 32), c.label, NAMES, c.spacing) for c in cases]
    for name in NAMES:
        for metric in ("Dice", "IoU", "HD95_vox", "HD95_mm"):
            assert per_class[name][metric] == pytest.approx(np.mean([d[name][metric] for d in direct]))
    assert per_class["a"]["Dice"] > 0.9
    means = result.means()
    assert means["mDice"] == pytest.approx(np.mean([per_class[n]["Dice"] for n in NAMES]))
    assert means["mHD95_mm"] is not None
    rows = list(csv.DictReader(io.StringIO((tmp_path / "per_class.csv").read_text())))
    assert [r["class"] for r in rows] == NAMES + ["mean"]
    assert float(rows[0]["Dice"]) == pytest.approx(per_class["a"]["Dice"], abs=1e-6)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [v["name"] for v in saved["volumes"]] == ["case0", "case1"] and "HD95_vox" in saved["units"]
    md = (tmp_path / "per_class.md").read_text()
    assert "HD95 (voxels)" in md and "HD95 (mm)" in md and "| b |" in md
    overlays = sorted(p.name for p in (tmp_path / "overlays").glob("*.png"))
    assert overlays == ["case0_slice000.png", "case0_slice004.png", "case1_slice000.png", "case1_slice004.png"]
    no_spacing = evaluate_volumes([VolumeCase("x", cases[0].image, cases[0].label)], _intensity_model(), NAMES,
                                  input_size=32, progress=False)
    assert no_spacing.means()["mHD95_mm"] is None and "n/a" in no_spacing.markdown_table()


def test_overlay_slices_prefer_foreground():
    label = np.zeros((10, 4, 4), np.int64)
    label[3:7, 1, 1] = 1
    assert overlay_slice_indices(label, 3) == [3, 5, 6]
    assert overlay_slice_indices(label, 9) == [3, 4, 5, 6]
    assert overlay_slice_indices(np.zeros((4, 2, 2)), 2) == [0, 3]
    assert overlay_slice_indices(label, 0) == []


def test_bad_model_output_and_empty_volume():
    image = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(UserError, match=r"predict_logits returned shape \(2, 4, 16, 16\)"):
        predict_volume(image, lambda b: np.zeros((b.shape[0], 4, 16, 16)), input_size=8)
    with pytest.raises(UserError, match="at least one slice"):
        predict_volume(np.zeros((0, 8, 8), np.float32), _intensity_model(), input_size=8)
    with pytest.raises(UserError, match="no volume"):
        evaluate_volumes([], _intensity_model(), NAMES, input_size=8, progress=False)
