"""Metrics: agreement with PySODMetrics / medpy, hand-computed cases, documented differences."""
from __future__ import annotations

import itertools
import warnings

import cv2
import numpy as np
import pytest

from jittor_pranet.metrics import (
    MAE,
    Dice,
    EMeasure,
    IoU,
    MultiClassMetrics,
    PolypMetrics,
    SMeasure,
    WeightedFMeasure,
    case_metrics,
    evaluate_arrays,
    hd95,
    thresholds,
)
from jittor_pranet.metrics.binary import ImagePair

psm = pytest.importorskip("py_sod_metrics")

TIGHT = 1e-6  # where the definitions coincide
DOCUMENTED = 1e-3  # where an implementation detail differs (see jittor_pranet/metrics/binary.py)


# ----------------------------------------------------------------------------------- data
def _blob_pair(rng, h, w):
    """GT of 1-3 ellipses; prediction = shifted, blurred, noisy copy."""
    gt = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(2, max(3, w // 3))), int(rng.integers(2, max(3, h // 3))))
        cv2.ellipse(gt, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    shift = np.float32([[1, 0, rng.integers(-6, 7)], [0, 1, rng.integers(-6, 7)]])
    pred = cv2.warpAffine(gt, shift, (w, h)).astype(np.float64)
    pred = cv2.GaussianBlur(pred, (0, 0), float(rng.uniform(0.6, 4)))
    pred = np.clip(pred + rng.normal(0, 15, pred.shape), 0, 255).astype(np.uint8)
    return pred, gt > 0


def _random_pair(rng, h, w):
    return rng.integers(0, 256, (h, w), dtype=np.uint8), rng.random((h, w)) > rng.uniform(0.2, 0.9)


def _cases(seed=0):
    rng = np.random.default_rng(seed)
    cases = [_blob_pair(rng, int(rng.integers(33, 97)), int(rng.integers(33, 97))) for _ in range(12)]
    cases += [_random_pair(rng, int(rng.integers(33, 80)), int(rng.integers(33, 80))) for _ in range(6)]
    # binary-valued and few-level predictions exercise ties and constant quadrants
    g = np.zeros((40, 50), bool)
    g[10:25, 5:30] = True
    cases.append(((np.roll(g, 3, axis=1) * 255).astype(np.uint8), g))
    cases.append(((rng.integers(0, 3, (40, 50)) * 100).astype(np.uint8), g))
    return cases


def _pysod(cases):
    """Reference scores from PySODMetrics with normalize=False (pred = uint8 / 255, gt bool)."""
    fm = psm.FmeasureV2(
        metric_handlers={
            "dice": psm.DICEHandler(with_dynamic=True, with_adaptive=False),
            "iou": psm.IOUHandler(with_dynamic=True, with_adaptive=False),
        }
    )
    sm, em, wfm, mae = psm.Smeasure(), psm.Emeasure(), psm.WeightedFmeasure(), psm.MAE()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for pred, gt in cases:
            p = pred / 255.0
            for m in (fm, sm, em, wfm, mae):
                m.step(p, gt, normalize=False)
    r = fm.get_results()
    return {
        "Dice": r["dice"]["dynamic"],
        "IoU": r["iou"]["dynamic"],
        "Em": em.get_results()["em"]["curve"],
        "Sm": sm.get_results()["sm"],
        "wFm": wfm.get_results()["wfm"],
        "MAE": mae.get_results()["mae"],
    }


# ----------------------------------------------------------------------------------- vs PySODMetrics
@pytest.mark.parametrize("index", range(len(_cases())))
def test_single_image_matches_pysodmetrics(index):
    pred, gt = _cases()[index]
    ref = _pysod([(pred, gt)])
    ours = PolypMetrics()
    ours.step(pred, gt)
    curves, res = ours.curves(), ours.results()
    np.testing.assert_allclose(curves["Dice"], ref["Dice"], rtol=0, atol=TIGHT)
    np.testing.assert_allclose(curves["IoU"], ref["IoU"], rtol=0, atol=TIGHT)
    assert abs(res["MAE"] - ref["MAE"]) <= TIGHT
    # E-measure differs only by the clip at 1 (documented): equal wherever the toolbox score is <= 1
    below = ref["Em"] <= 1
    np.testing.assert_allclose(curves["Em"][below], ref["Em"][below], rtol=0, atol=TIGHT)
    np.testing.assert_allclose(curves["Em"], ref["Em"], rtol=0, atol=DOCUMENTED)
    # S-measure / wFm: same algorithm, exact-integer moments and separable filter (documented)
    assert abs(res["Sm"] - ref["Sm"]) <= DOCUMENTED
    assert abs(res["wFm"] - ref["wFm"]) <= DOCUMENTED
    # ... and in practice they agree to float precision on these maps
    assert abs(res["Sm"] - ref["Sm"]) <= TIGHT
    assert abs(res["wFm"] - ref["wFm"]) <= TIGHT


def test_dataset_means_and_maxima_match_pysodmetrics():
    cases = _cases(seed=7)
    ref = _pysod(cases)
    res = evaluate_arrays([p for p, _ in cases], [g for _, g in cases])
    expected = {
        "mDice": ref["Dice"].mean(),
        "maxDice": ref["Dice"].max(),
        "mIoU": ref["IoU"].mean(),
        "maxIoU": ref["IoU"].max(),
        "meanEm": ref["Em"].mean(),
        "maxEm": ref["Em"].max(),
        "Sm": ref["Sm"],
        "wFm": ref["wFm"],
        "MAE": ref["MAE"],
    }
    for key, value in expected.items():
        tol = DOCUMENTED if key in ("meanEm", "maxEm", "Sm", "wFm") else TIGHT
        assert abs(res[key] - value) <= tol, key
    assert all(0.0 <= v <= 1.0 for v in res.values())


def test_standalone_classes_equal_the_combined_evaluator():
    cases = _cases(seed=3)[:5]
    combined = PolypMetrics()
    singles = [Dice(), IoU(), EMeasure(), SMeasure(), WeightedFMeasure(), MAE()]
    for pred, gt in cases:
        combined.step(pred, gt)
        for m in singles:
            m.step(pred, gt)
    merged = {}
    for m in singles:
        merged.update(m.results())
    assert merged == pytest.approx(combined.results(), abs=0)


def test_curve_order_is_descending_integer_thresholds():
    pred, gt = _cases()[0]
    dice = Dice().compute(ImagePair(pred, gt))
    ks = thresholds()
    assert ks[0] == 255 and ks[-1] == 0 and len(ks) == 256
    for i in (0, 17, 128, 200, 254, 255):
        b = pred >= ks[i]
        tp = np.count_nonzero(b & gt)
        expect = 0.0 if tp == 0 else 2 * tp / (b.sum() + gt.sum())
        assert dice[i] == pytest.approx(expect, abs=1e-12)


def test_float_prediction_is_quantised_like_the_png():
    pred, gt = _cases()[1]
    a, b = PolypMetrics(), PolypMetrics()
    a.step(pred, gt)
    b.step(pred / 255.0, gt)
    assert a.results() == b.results()


# ----------------------------------------------------------------------------------- documented differences
def test_emeasure_clip_is_within_one_over_n_minus_one():
    """A perfect map scores N/(N-1) in the toolbox; we clip at 1."""
    gt = np.zeros((48, 64), bool)
    gt[10:30, 20:50] = True
    pred = gt.astype(np.uint8) * 255
    ref = _pysod([(pred, gt)])["Em"]
    ours = EMeasure().compute(ImagePair(pred, gt))
    n = gt.size
    assert ref.max() == pytest.approx(n / (n - 1))
    assert ours.max() == 1.0
    assert np.abs(ours - ref).max() <= 1 / (n - 1) + 1e-12 <= DOCUMENTED


def test_smeasure_empty_quadrant_is_finite():
    """GT centroid on the last row: PySODMetrics yields NaN (an empty quadrant), we skip the quadrant."""
    gt = np.zeros((30, 40), bool)
    gt[-1, 5:35] = True
    pred = np.zeros((30, 40), np.uint8)
    pred[-2:, 5:35] = 200
    ours = SMeasure().compute(ImagePair(pred, gt))
    assert np.isfinite(ours) and 0 <= ours <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = psm.Smeasure().cal_sm(pred / 255.0, gt)
    assert np.isnan(ref)


def _ssim_exact(x, y):
    """Quadrant SSIM in exact rational arithmetic (x: levels / 255, y: 0/1), EPS as the toolbox adds it."""
    from fractions import Fraction as F

    eps = F(np.spacing(1))
    n = len(x)
    mx, my = F(sum(x), 255 * n), F(sum(y), n)
    vx = sum((F(v, 255) - mx) ** 2 for v in x) / (n - 1 + eps)
    vy = sum((F(v) - my) ** 2 for v in y) / (n - 1 + eps)
    cov = sum((F(a, 255) - mx) * (F(b) - my) for a, b in zip(x, y)) / (n - 1 + eps)
    alpha, beta = 4 * mx * my * cov, (mx * mx + my * my) * (vx + vy)
    return float(alpha / (beta + eps)) if alpha != 0 else (1.0 if beta == 0 else 0.0)


def test_smeasure_constant_quadrant_is_exact():
    """A quadrant where both maps are constant has SSIM 1 (alpha = beta = 0).  PySODMetrics (and the
    upstream eval) compute the mean of a constant 186/255 map with rounding noise, take the other branch
    and score the quadrant 0: a documented difference of up to the quadrant's weight / 2."""
    gt = np.zeros((21, 30), bool)
    gt[:11, :16] = True
    pred = np.full(gt.shape, 186, np.uint8)
    ours = SMeasure().compute(ImagePair(pred, gt))
    cy, cx = ImagePair(pred, gt).split
    region = 0.0
    for rs, cs in ((slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, None)),
                   (slice(cy, None), slice(0, cx)), (slice(cy, None), slice(cx, None))):
        q_pred, q_gt = pred[rs, cs].ravel().tolist(), gt[rs, cs].ravel().astype(int).tolist()
        if q_pred:
            region += _ssim_exact(q_pred, q_gt) * len(q_pred) / gt.size
    u, m = gt.mean(), 186 / 255
    obj = u * 2 * m / (m * m + 1 + np.spacing(1)) + (1 - u) * 2 * (1 - m) / ((1 - m) ** 2 + 1 + np.spacing(1))
    assert ours == pytest.approx(0.5 * obj + 0.5 * region, abs=1e-12)
    ref = psm.Smeasure().cal_sm(pred / 255.0, gt)
    assert 0.04 < ours - ref <= 0.05 + 1e-9


# ----------------------------------------------------------------------------------- hand-computed cases
def _score(pred, gt):
    m = PolypMetrics()
    m.step(np.asarray(pred, np.uint8), np.asarray(gt, bool))
    return m.results(), m.curves()


def test_hand_small_map():
    gt = [[1, 1], [0, 0]]
    pred = [[255, 100], [100, 0]]
    res, curves = _score(pred, gt)
    # k in 101..255: TP=1 FP=0; k in 1..100: TP=2 FP=1; k=0: TP=2 FP=2; |GT| = 2
    dice = np.array([2 / 3] * 155 + [4 / 5] * 100 + [4 / 6])
    iou = np.array([1 / 2] * 155 + [2 / 3] * 100 + [2 / 4])
    np.testing.assert_allclose(curves["Dice"], dice, atol=1e-12)
    np.testing.assert_allclose(curves["IoU"], iou, atol=1e-12)
    assert res["mDice"] == pytest.approx(dice.mean()) and res["maxDice"] == pytest.approx(0.8)
    assert res["mIoU"] == pytest.approx(iou.mean()) and res["maxIoU"] == pytest.approx(2 / 3)
    assert res["MAE"] == pytest.approx((155 + 100) / 255 / 4)


def test_hand_empty_gt_empty_prediction():
    res, curves = _score(np.zeros((8, 8)), np.zeros((8, 8)))
    # Dice/IoU are 0 whenever TP = 0 (upstream and PySODMetrics convention), even for empty vs empty
    assert res["mDice"] == res["maxDice"] == res["mIoU"] == res["maxIoU"] == 0.0
    assert res["MAE"] == 0.0
    assert res["Sm"] == 1.0  # 1 - mean(pred)
    assert res["wFm"] == 0.0  # empty GT scores 0 (upstream: NaN)
    # E-measure: fraction of predicted background, clipped; k = 0 binarises to all ones -> 0
    assert curves["Em"][-1] == 0.0 and np.all(curves["Em"][:-1] == 1.0)
    assert res["meanEm"] == pytest.approx(255 / 256) and res["maxEm"] == 1.0


def test_hand_empty_gt_full_prediction():
    res, _ = _score(np.full((8, 8), 255), np.zeros((8, 8)))
    assert res["mDice"] == res["mIoU"] == 0.0
    assert res["MAE"] == 1.0 and res["Sm"] == 0.0 and res["wFm"] == 0.0
    assert res["meanEm"] == 0.0 and res["maxEm"] == 0.0


def test_hand_all_ones_gt():
    full, _ = _score(np.full((8, 8), 255), np.ones((8, 8)))
    assert full["mDice"] == full["mIoU"] == full["maxDice"] == 1.0
    assert full["MAE"] == 0.0 and full["Sm"] == 1.0 and full["meanEm"] == 1.0
    assert full["wFm"] == pytest.approx(1.0, abs=1e-12)
    empty, _ = _score(np.zeros((8, 8)), np.ones((8, 8)))
    # only k = 0 (pred >= 0 is all ones) finds the object
    assert empty["mDice"] == pytest.approx(1 / 256) and empty["maxDice"] == 1.0
    assert empty["MAE"] == 1.0 and empty["Sm"] == 0.0
    # wFm is not 0: the zero-padded Gaussian (MATLAB imfilter) lowers the error near the image border
    assert empty["wFm"] == pytest.approx(_pysod([(np.zeros((8, 8), np.uint8), np.ones((8, 8), bool))])["wFm"], abs=TIGHT)
    assert 0 < empty["wFm"] < 1
    assert empty["meanEm"] == pytest.approx(1 / 256)


def test_hand_perfect_prediction():
    gt = np.zeros((20, 20), bool)
    gt[5:12, 3:15] = True
    res, curves = _score(gt * 255, gt)
    n_fg, n = gt.sum(), gt.size
    assert np.all(curves["Dice"][:-1] == 1.0)
    assert curves["Dice"][-1] == pytest.approx(2 * n_fg / (n_fg + n))  # k = 0: everything predicted
    assert res["maxDice"] == res["maxIoU"] == res["maxEm"] == 1.0
    assert res["MAE"] == 0.0
    assert res["Sm"] == pytest.approx(1.0, abs=1e-9)
    assert res["wFm"] == pytest.approx(1.0, abs=1e-9)


def test_gt_threshold_128():
    gt = np.array([[0, 100], [200, 255]], np.uint8)
    pred = np.array([[0, 255], [255, 255]], np.uint8)
    low, high = PolypMetrics(gt_threshold=0), PolypMetrics(gt_threshold=128)
    low.step(pred, gt)
    high.step(pred, gt)
    assert low.results()["maxDice"] == 1.0  # 100 counts as foreground with > 0
    assert high.results()["maxDice"] == pytest.approx(2 * 2 / (2 + 3))


def test_input_validation():
    with pytest.raises(ValueError, match="shape"):
        PolypMetrics().step(np.zeros((4, 4), np.uint8), np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PolypMetrics().step(np.full((4, 4), 1.5), np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="2-D"):
        PolypMetrics().step(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), bool))
    with pytest.raises(ValueError):
        PolypMetrics(gt_threshold=5)
    with pytest.raises(RuntimeError):
        PolypMetrics().results()


# ----------------------------------------------------------------------------------- multi-class
def _surface_brute(mask):
    """Foreground voxels with a face neighbour outside the mask (or outside the array)."""
    padded = np.pad(mask, 1)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    surface = np.zeros_like(mask)
    for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
        surface |= mask & ~np.roll(padded, step, axis=axis)[core]
    return np.argwhere(surface)


def _hd95_brute(a, b, spacing):
    pa, pb = _surface_brute(a) * spacing, _surface_brute(b) * spacing
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return np.percentile(np.hstack((d.min(axis=1), d.min(axis=0))), 95)


def _random_masks(rng, ndim):
    shape = tuple(int(s) for s in rng.integers(4, 14 if ndim == 3 else 30, ndim))
    a = rng.random(shape) > rng.uniform(0.4, 0.97)
    b = rng.random(shape) > rng.uniform(0.4, 0.97)
    a.flat[0] = b.flat[-1] = True  # non-empty, and touching the array border
    return a, b, tuple(rng.uniform(0.3, 3.0, ndim))


@pytest.mark.parametrize("seed", range(12))
def test_hd95_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    a, b, spacing = _random_masks(rng, 2 + seed % 2)
    assert hd95(a, b, spacing) == pytest.approx(_hd95_brute(a, b, np.asarray(spacing)), abs=1e-9)


@pytest.mark.parametrize("seed", range(12))
def test_hd95_matches_medpy(seed):
    medpy_binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(100 + seed)
    a, b, spacing = _random_masks(rng, 2 + seed % 2)
    assert hd95(a, b, spacing) == pytest.approx(medpy_binary.hd95(a, b, voxelspacing=spacing), abs=1e-9)
    assert case_metrics(a, b)["Dice"] == pytest.approx(medpy_binary.dc(a, b), abs=1e-12)
    assert case_metrics(a, b)["IoU"] == pytest.approx(medpy_binary.jc(a, b), abs=1e-12)


def test_hd95_small_objects_in_large_volume_and_units():
    vol = np.zeros((30, 64, 64), bool)
    vol[10:14, 20:30, 20:30] = True
    moved = np.roll(vol, 3, axis=2)
    assert hd95(vol, moved) == pytest.approx(3.0)
    assert hd95(vol, moved, spacing=(2.5, 0.5, 0.5)) == pytest.approx(1.5)


def test_case_metrics_empty_conventions():
    a = np.zeros((6, 6), bool)
    b = a.copy()
    b[2:4, 2:4] = True
    assert case_metrics(b, a) == {"Dice": 1.0, "IoU": 1.0, "HD95": 0.0}  # FP on an absent organ: upstream's (1, 0)
    assert case_metrics(a, b) == {"Dice": 0.0, "IoU": 0.0, "HD95": 0.0}
    assert case_metrics(a, a) == {"Dice": 0.0, "IoU": 0.0, "HD95": 0.0}
    assert case_metrics(b, b) == {"Dice": 1.0, "IoU": 1.0, "HD95": 0.0}


def test_multiclass_aggregation():
    gt = np.zeros((10, 10), np.int64)
    gt[1:4, 1:4] = 1
    gt[6:9, 6:9] = 2
    pred = gt.copy()
    pred[6:9, 6:9] = 0  # class 2 missed in case 1
    m = MultiClassMetrics(3, class_names=["a", "b"], spacing=(1.0, 1.0))
    per = m.step(pred, gt)
    assert per["a"]["Dice"] == 1.0 and per["b"]["Dice"] == 0.0
    m.step(gt, gt)
    r = m.results()
    assert r["per_class"]["a"] == {"Dice": 1.0, "IoU": 1.0, "HD95": 0.0}
    assert r["per_class"]["b"]["Dice"] == 0.5
    assert r["mDice"] == pytest.approx(0.75) and r["mIoU"] == pytest.approx(0.75)
    vol = np.stack([gt, gt, pred])
    m3 = MultiClassMetrics(3)
    m3.step(vol, np.stack([gt, gt, gt]), spacing=(3.0, 1.0, 1.0))
    assert m3.results()["per_class"]["class2"]["Dice"] == pytest.approx(2 * 18 / (18 + 27))
    with pytest.raises(ValueError):
        MultiClassMetrics(3).step(np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2)))
