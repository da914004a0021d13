"""HD95 in both conventions against the libraries that define them (medpy: pooled; MONAI: directed max)."""
import math

import numpy as np
import pytest

from jittor_pranet.metrics.hausdorff import HD95_CONVENTIONS, hd95_by_convention, hd95_directed_max, hd95_pooled
from jittor_pranet.metrics.multiclass import MultiClassMetrics, case_metrics

medpy_binary = pytest.importorskip("medpy.metric.binary")


def _blob(rng, shape, n_seeds=3, radius=None):
    """A few random ellipsoids: a realistic organ-like mask with curved surfaces."""
    grid = np.indices(shape).astype(np.float64)
    mask = np.zeros(shape, bool)
    for _ in range(n_seeds):
        centre = [rng.uniform(0.2, 0.8) * s for s in shape]
        radii = radius or [rng.uniform(0.08, 0.3) * s for s in shape]
        mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0
    return mask


def _cases():
    """(name, pred, gt, spacing): 24 non-empty cases, 2-D and 3-D, isotropic and anisotropic."""
    rng = np.random.default_rng(20)
    out = []
    for i in range(8):
        shape = (48, 56) if i % 2 else (40, 40)
        out.append((f"2d_blob{i}", _blob(rng, shape), _blob(rng, shape), None if i < 4 else (0.7, 1.3)))
    for i in range(8):
        shape = (12, 32, 28)
        spacing = [(1.0, 1.0, 1.0), (5.0, 0.8, 0.8), (2.5, 0.6, 1.1), (3.0, 0.5, 0.5)][i % 4]
        out.append((f"3d_blob{i}", _blob(rng, shape), _blob(rng, shape), spacing))
    single = np.zeros((20, 20), bool)
    single[7, 9] = True
    other = np.zeros((20, 20), bool)
    other[15, 2] = True
    out.append(("single_vs_single", single, other, None))
    out.append(("single_vs_blob", single, _blob(rng, (20, 20)), (2.0, 0.5)))
    vox = np.zeros((6, 10, 10), bool)
    vox[2, 3, 3] = True
    out.append(("3d_single_anisotropic", vox, _blob(rng, (6, 10, 10)), (4.0, 0.7, 0.7)))
    same = _blob(rng, (30, 30))
    out.append(("identical", same, same.copy(), None))
    edge = np.zeros((16, 16), bool)
    edge[:, :5] = True  # touches the array border: the outside counts as background
    out.append(("border", edge, np.roll(edge, 3, axis=1), (1.5, 1.0)))
    far = np.zeros((10, 64, 64), bool)
    far[1:3, 2:6, 2:6] = True
    far2 = np.zeros_like(far)
    far2[7:9, 50:60, 40:62] = True
    out.append(("far_apart", far, far2, (3.0, 0.9, 0.9)))
    out.append(("outlier", _blob(rng, (32, 32)) | (np.indices((32, 32)).sum(0) == 0), _blob(rng, (32, 32)), None))
    out.append(("thin_line", np.eye(24, dtype=bool), np.eye(24, k=2, dtype=bool), (0.5, 2.0)))
    return [c for c in out if c[1].any() and c[2].any()]


CASES = _cases()


def _monai_hd95(pred, gt, spacing):
    monai_metrics = pytest.importorskip("monai.metrics")
    import torch

    y_pred = torch.from_numpy(pred[None, None].astype(np.float32))
    y = torch.from_numpy(gt[None, None].astype(np.float32))
    value = monai_metrics.compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95,
                                                     spacing=None if spacing is None else list(spacing))
    return float(value.reshape(-1)[0])


def test_enough_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name,pred,gt,spacing", CASES, ids=[c[0] for c in CASES])
def test_pooled_matches_medpy(name, pred, gt, spacing):
    expected = medpy_binary.hd95(pred, gt, voxelspacing=spacing)
    assert hd95_pooled(pred, gt, spacing) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert case_metrics(pred, gt, spacing)["HD95"] == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name,pred,gt,spacing", CASES, ids=[c[0] for c in CASES])
def test_directed_max_matches_monai(name, pred, gt, spacing):
    expected = _monai_hd95(pred, gt, spacing)
    assert hd95_directed_max(pred, gt, spacing) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert case_metrics(pred, gt, spacing, "monai")["HD95"] == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_directed_max_is_never_below_pooled_and_differs_somewhere():
    gaps = [hd95_directed_max(p, g, s) - hd95_pooled(p, g, s) for _, p, g, s in CASES]
    assert min(gaps) >= -1e-9
    assert max(gaps) > 0.1  # the conventions really differ on some real-shaped case


def test_empty_cases_follow_the_official_rules_in_both_conventions_and_map_monai():
    gt = np.zeros((12, 12), bool)
    gt[3:7, 3:7] = True
    empty = np.zeros_like(gt)
    for convention in HD95_CONVENTIONS:
        assert case_metrics(gt, empty, hd95_convention=convention) == {"Dice": 1.0, "IoU": 1.0, "HD95": 0.0}
        assert case_metrics(empty, gt, hd95_convention=convention) == {"Dice": 0.0, "IoU": 0.0, "HD95": 0.0}
        assert case_metrics(empty, empty, hd95_convention=convention) == {"Dice": 0.0, "IoU": 0.0, "HD95": 0.0}
    # what MONAI (1.6.1) itself returns there: NaN in all three (documented in jittor_pranet.metrics.hausdorff)
    assert math.isnan(_monai_hd95(gt, empty, None))
    assert math.isnan(_monai_hd95(empty, gt, None))
    assert math.isnan(_monai_hd95(empty, empty, None))


def test_convention_reaches_the_accumulator_and_rejects_unknown_names():
    _, p, g, s = CASES[3]
    pred, gt = p.astype(np.int64), g.astype(np.int64)
    for convention, fn in (("medpy", hd95_pooled), ("monai", hd95_directed_max)):
        m = MultiClassMetrics(2, ["organ"], spacing=s, hd95_convention=convention)
        m.step(pred, gt)
        assert m.results()["mHD95"] == pytest.approx(fn(p, g, s), abs=1e-12)
    with pytest.raises(ValueError, match="HD95 convention"):
        hd95_by_convention(p, g, s, "nnunet")
    with pytest.raises(ValueError, match="HD95 convention"):
        MultiClassMetrics(2, ["organ"], hd95_convention="max")


def test_config_key_is_validated():
    from jittor_pranet.config import load_config, validate
    from jittor_pranet.errors import UserError

    cfg = load_config(None, ["output.hd95_convention=monai"])
    validate(cfg)
    assert cfg["output"]["hd95_convention"] == "monai"
    assert load_config(None, [])["output"]["hd95_convention"] == "medpy"
    with pytest.raises(UserError, match="output.hd95_convention must be one of medpy, monai, not 'pooled'"):
        load_config(None, ["output.hd95_convention=pooled"])
