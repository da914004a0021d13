"""tools/train_equivalence.py and jittor_pranet.evaluation.equivalence: the statistics against scipy, the
verdict on identical and shifted samples, the framework-free binary scorer, and the tool end to end at a
tiny budget (2 seeds x 2 steps, 64 px) for a binary and a multi-class recipe."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from jittor_pranet.errors import UserError
from jittor_pranet.evaluation.equivalence import (
    DIFFERENT,
    WITHIN,
    compare,
    compare_runs,
    overall_verdict,
    score_binary_pairs,
    welch_interval,
)

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    name = "tools_train_equivalence"
    if name not in sys.modules:  # registered before running: its dataclasses look their module up
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "train_equivalence.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ------------------------------------------------------------------------------------------ statistics
@pytest.mark.parametrize("a,b", [
    ([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]),
    ([0.81, 0.84, 0.79], [0.80, 0.83, 0.85]),
    ([0.5, 0.52], [0.1, 0.4, 0.2, 0.3, 0.35]),
])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_welch_interval_equals_scipy(a, b, confidence):
    iv = welch_interval(a, b, confidence)
    ref = stats.ttest_ind(a, b, equal_var=False)
    low, high = ref.confidence_interval(confidence)
    assert iv.diff == pytest.approx(np.mean(a) - np.mean(b), abs=1e-15)
    assert iv.df == pytest.approx(ref.df, rel=1e-12)
    assert (iv.low, iv.high) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
    # the Welch-Satterthwaite formula by hand for the first pair: df 3.2347, se sqrt(1.75)
    if a == [1.0, 2.0, 3.0, 4.0]:
        assert iv.se == pytest.approx(np.sqrt(1.75), rel=1e-12)
        assert iv.df == pytest.approx(1.75 ** 2 / ((5 / 12) ** 2 / 3 + (4 / 3) ** 2 / 2), rel=1e-12)


def test_identical_samples_are_within_noise_and_a_shifted_side_is_different():
    a = np.random.default_rng(0).normal(0.8, 0.02, 3)
    same = compare(a, a)
    assert same.verdict == WITHIN and same.interval.diff == 0.0 and same.interval.low < 0 < same.interval.high
    shifted = compare(a + 0.2, a)
    assert shifted.verdict == DIFFERENT and shifted.interval.low > 0
    assert shifted.interval.diff == pytest.approx(0.2)
    assert compare(a - 0.2, a).verdict == DIFFERENT
    # a shift of one std is not detectable with 3 seeds
    assert compare(a + a.std(ddof=1), a).verdict == WITHIN


def test_margin_and_zero_variance():
    a = [0.5, 0.5, 0.5]
    b = [0.505, 0.505, 0.505]
    exact = compare(a, b)
    assert exact.interval.se == 0.0 and exact.interval.low == exact.interval.high == pytest.approx(-0.005)
    assert exact.verdict == DIFFERENT  # a point interval away from 0
    assert compare(a, b, margin=0.01).verdict == WITHIN  # but inside the stated margin
    assert compare(a, a).verdict == WITHIN
    with pytest.raises(UserError, match="2 seeds"):
        welch_interval([0.5], [0.4, 0.6])
    with pytest.raises(UserError, match="margin"):
        compare(a, b, margin=-1)


def test_overall_verdict_uses_the_primary_metrics():
    runs_a = [{"mDice": 0.8 + 0.01 * i, "x": 0.0 + 0.01 * i} for i in range(3)]
    runs_b = [{"mDice": 0.8 + 0.01 * i, "x": 5.0 + 0.01 * i} for i in range(3)]
    comps = compare_runs(runs_a, runs_b, ["mDice", "x"])
    assert comps["x"].verdict == DIFFERENT
    assert overall_verdict(comps, ["mDice"]) == (WITHIN, [])
    assert overall_verdict(comps, ["mDice", "x"]) == (DIFFERENT, ["x"])
    with pytest.raises(UserError, match="missing"):
        compare_runs(runs_a, [{"mDice": 1.0}] * 3, ["x"])


# ------------------------------------------------------------------------------------------ binary scorer
@pytest.fixture(scope="module")
def polyps(tmp_path_factory):
    from jittor_pranet.data import make_synthetic_polyps

    return make_synthetic_polyps(tmp_path_factory.mktemp("eq") / "polyps", n_train=6, n_test=3,
                                 size=((64, 80), (64, 80)), seed=0, workers=1)


def test_binary_scorer_rewards_the_mask_and_punishes_its_inverse(polyps):
    from jittor_pranet.data import SegmentationDataset, discover_pairs

    pairs, _ = discover_pairs(polyps / "TestDataset" / "Synthetic")
    masks = np.stack([s["mask"] for s in SegmentationDataset(pairs, size=64)])  # N x 1 x 64 x 64
    calls = []

    def oracle(sign):
        def predict(x):
            calls.append(x.shape)
            return sign * (masks - 0.5) * 20.0

        return predict

    good = score_binary_pairs(pairs, oracle(1.0), 64, batch_size=len(pairs))
    bad = score_binary_pairs(pairs, oracle(-1.0), 64, batch_size=len(pairs))
    assert calls[0] == (len(pairs), 3, 64, 64)
    assert good["mDice"] > 0.9 and good["mIoU"] > 0.8
    assert bad["mDice"] < 0.2
    with pytest.raises(UserError, match="N x 1"):
        score_binary_pairs(pairs, lambda x: np.zeros((len(x), 2, 64, 64), np.float32), 64)


# ------------------------------------------------------------------------------------------ end to end
def _check_report(report, md, seeds, steps, primary):
    runs = report["runs"]
    assert sorted((r["side"], r["seed"]) for r in runs) == sorted((s, k) for s in ("jittor", "pytorch") for k in seeds)
    assert all(r["steps"] == steps and len(r["batch_losses"]) == steps for r in runs)
    summary = report["summary"]
    assert summary["identical_batches"] is True
    by_seed = {(r["side"], r["seed"]): r for r in runs}
    for k in seeds:  # the same batches, seed by seed, and different batches for different seeds
        assert by_seed["jittor", k]["fingerprints"] == by_seed["pytorch", k]["fingerprints"]
    assert by_seed["jittor", seeds[0]]["fingerprints"] != by_seed["jittor", seeds[1]]["fingerprints"]
    assert summary["primary"] == primary
    for key in primary:
        assert all(0.0 <= r["metrics"][key] <= 1.0 for r in runs)
    # every summary row recomputed from the per-seed table with scipy
    for key, c in summary["comparison"].items():
        a = [by_seed["jittor", k]["metrics"][key] for k in seeds]
        b = [by_seed["pytorch", k]["metrics"][key] for k in seeds]
        assert c["mean_a"] == pytest.approx(np.mean(a)) and c["std_b"] == pytest.approx(np.std(b, ddof=1))
        low, high = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        assert (c["interval"]["low"], c["interval"]["high"]) == (pytest.approx(low), pytest.approx(high))
        assert c["verdict"] == (WITHIN if (low <= 0 <= high or abs(np.mean(a) - np.mean(b)) < c["margin"]) else DIFFERENT)
    assert summary["verdict"] == (DIFFERENT if summary["differ"] else WITHIN)
    # the same numbers on both sides are within noise; one side shifted by 0.5 is different
    jit = [by_seed["jittor", k]["metrics"] for k in seeds]
    shifted = [{m: v + 0.5 for m, v in r.items()} for r in jit]
    assert overall_verdict(compare_runs(jit, jit, primary), primary)[0] == WITHIN
    assert overall_verdict(compare_runs(shifted, jit, primary), primary)[0] == DIFFERENT
    for heading in ("# Training equivalence", "## Per seed", "## Summary", "**Verdict:", "identical batch sequence"):
        assert heading in md
    assert md.count("\n| jittor |") == len(seeds) and md.count("\n| pytorch |") == len(seeds)


def test_tool_end_to_end_binary(tmp_path, polyps, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "eq.md"
    code = _tool().main(["--recipe", "pranet_v2", "--steps", "2", "--seeds", "2", "--size", "64", "--batch-size", "2",
                         "--data", str(polyps), "--out", str(out), "--no-progress"])
    assert code in (0, 1)
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["settings"]["updates_per_step"] == 3 and report["sizes"] == [64, 64, 64]
    _check_report(report, out.read_text(), [0, 1], 2, ["mDice", "mIoU"])
    assert "Verdict:" in capsys.readouterr().out


def test_tool_end_to_end_multiclass(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "eq.md"
    code = _tool().main(["--recipe", "emcad_dsra", "--steps", "2", "--seeds", "2", "--size", "64", "--batch-size", "2",
                         "--synthetic-root", str(tmp_path / "organs"), "--synthetic", "train_cases=2",
                         "test_cases=1", "size=64", "depth=4", "--out", str(out), "--no-progress"])
    assert code in (0, 1)
    report = json.loads(out.with_suffix(".json").read_text())
    _check_report(report, out.read_text(), [0, 1], 2, ["mDice", "mIoU"])
    from jittor_pranet.data.synthetic_organs import SYNTHETIC_ORGANS

    classes = [k[len("Dice["):-1] for k in report["summary"]["informative"] if k.startswith("Dice[")]
    assert classes == list(SYNTHETIC_ORGANS)
    for r in report["runs"]:  # the mean is the mean of the per-class Dice
        assert r["metrics"]["mDice"] == pytest.approx(np.mean([r["metrics"][f"Dice[{c}]"] for c in classes]))


@pytest.mark.parametrize("args,message", [
    (["--seeds", "1"], "--seeds must be >= 2"),
    (["--size", "70"], "multiple of 32"),
    (["--data", "/nonexistent/folder"], "not found"),
    (["--synthetic", "bogus=1"], "--synthetic"),
])
def test_tool_errors_are_one_line(tmp_path, capsys, args, message):
    code = _tool().main(["--recipe", "pranet_v2", "--steps", "1", "--out", str(tmp_path / "r.md"),
                         "--synthetic-root", str(tmp_path / "s"), "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and message in err and "\n" not in err
