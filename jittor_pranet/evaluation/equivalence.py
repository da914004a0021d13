"""Are two training implementations equivalent up to seed noise?  Statistics and a framework-free scorer.

The question is asked of final test metrics from N independent seeds per side (each side starting
from its own framework's random initial weights, so the two never share a trajectory): is the
difference of the two means explained by seed-to-seed variation?

* :func:`welch_interval`: difference of means with a Welch (unequal variances) t confidence interval,
  the same numbers as ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval()``;
* :func:`compare`: that interval plus a verdict, ``"within seed noise"`` when the interval contains 0
  or the difference is smaller than a stated equivalence margin, else ``"different"``;
* :func:`score_binary_pairs`: mDice / mIoU of a model given as a numpy ``predict_logits`` callable, by
  the official polyp protocol, so a Jittor model and a PyTorch model are scored by the same code
  (multi-class volumes: :func:`jittor_pranet.evaluation.volumes.evaluate_volumes`, already model-agnostic).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError

WITHIN, DIFFERENT = "within seed noise", "different"
PredictLogits = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class WelchInterval:
    """``mean(a) - mean(b)`` with its standard error, Welch-Satterthwaite degrees of freedom and interval."""

    diff: float
    se: float
    df: float
    low: float
    high: float
    confidence: float


def _sample(values: Sequence[float], name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        raise UserError(f"{name}: a confidence interval needs at least 2 seeds per side, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise UserError(f"{name}: non-finite values {x.tolist()}")
    return x


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> WelchInterval:
    """Two-sided Welch t interval for ``mean(a) - mean(b)``.

    When both samples are constant the standard error is 0: the interval is the single point ``diff``
    (df is then reported as ``n_a + n_b - 2``, the pooled value; it does not enter the interval).
    """
    from scipy import stats

    if not 0.0 < confidence < 1.0:
        raise UserError(f"confidence must be in (0, 1), got {confidence}")
    x, y = _sample(a, "side a"), _sample(b, "side b")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff = float(x.mean() - y.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:
        return WelchInterval(diff, 0.0, float(x.size + y.size - 2), diff, diff, confidence)
    df = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df)) * se
    return WelchInterval(diff, se, float(df), diff - half, diff + half, confidence)


@dataclass(frozen=True)
class Comparison:
    """One metric compared between side a and side b (see :func:`compare`)."""

    n_a: int
    n_b: int
    mean_a: float
    std_a: float
    mean_b: float
    std_b: float
    interval: WelchInterval
    margin: float
    verdict: str
    reason: str

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def compare(a: Sequence[float], b: Sequence[float], margin: float = 0.0, confidence: float = 0.95) -> Comparison:
    """Means +- sample std (ddof 1) of both sides, the Welch interval of the difference, and a verdict:
    ``within seed noise`` when the interval contains 0 or ``|diff| < margin``, else ``different``."""
    if margin < 0:
        raise UserError(f"the equivalence margin must be >= 0, got {margin}")
    iv = welch_interval(a, b, confidence)
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if iv.low <= 0.0 <= iv.high:
        verdict, reason = WITHIN, f"the {confidence:.0%} CI contains 0"
    elif abs(iv.diff) < margin:
        verdict, reason = WITHIN, f"|diff| {abs(iv.diff):.4g} < margin {margin:g}"
    else:
        verdict, reason = DIFFERENT, f"the {confidence:.0%} CI excludes 0 and |diff| {abs(iv.diff):.4g} >= margin {margin:g}"
    return Comparison(int(x.size), int(y.size), float(x.mean()), float(x.std(ddof=1)), float(y.mean()),
                      float(y.std(ddof=1)), iv, float(margin), verdict, reason)


def compare_runs(runs_a: Sequence[Dict[str, float]], runs_b: Sequence[Dict[str, float]], metrics: Sequence[str],
                 margin: float = 0.0, confidence: float = 0.95) -> Dict[str, Comparison]:
    """:func:`compare` for each metric of per-seed result dicts (one dict per seed and side)."""
    out = {}
    for key in metrics:
        try:
            a, b = [r[key] for r in runs_a], [r[key] for r in runs_b]
        except KeyError:
            raise UserError(f"metric {key!r} is missing from some runs") from None
        out[key] = compare(a, b, margin, confidence)
    return out


def overall_verdict(comparisons: Dict[str, Comparison], primary: Sequence[str]) -> Tuple[str, List[str]]:
    """``within seed noise`` when every primary metric is, else ``different`` with the metrics that differ."""
    differ = [k for k in primary if comparisons[k].verdict != WITHIN]
    return (DIFFERENT if differ else WITHIN), differ


# ----------------------------------------------------------------------------------- binary scoring
def score_binary_pairs(pairs: Sequence[Tuple[object, object]], predict_logits: PredictLogits, size: int,
                       mask_threshold: int = 128, batch_size: int = 8) -> Dict[str, float]:
    """mDice and mIoU of ``predict_logits`` on image/mask file pairs, by the official test protocol.

    Each image is preprocessed as in training (PIL bilinear to ``size``, ImageNet normalisation);
    ``predict_logits`` maps an N x 3 x size x size float32 batch to N x 1 x size x size logits (the
    model's prediction rule already applied); the logits are resized to the mask's size, passed
    through the sigmoid, min-max normalised to uint8 and scored at 256 thresholds (metrics.binary).
    """
    from ..data import SegmentationDataset, read_mask
    from ..engine.predictor import to_uint8_map
    from ..interp import probabilities
    from ..metrics.binary import Dice, IoU

    if not pairs:
        raise UserError("no test images to score")
    dataset = SegmentationDataset(pairs, size=size, mask_threshold=mask_threshold)
    dice, iou = Dice(), IoU()
    for start in range(0, len(dataset), max(1, batch_size)):
        idx = range(start, min(start + batch_size, len(dataset)))
        x = np.ascontiguousarray(np.stack([dataset[i]["image"] for i in idx]), dtype=np.float32)
        logits = np.asarray(predict_logits(x))
        if logits.ndim != 4 or logits.shape[0] != x.shape[0] or logits.shape[1] != 1:
            raise UserError(f"predict_logits returned shape {tuple(logits.shape)} for input {tuple(x.shape)}; "
                            "expected N x 1 x H x W")
        for j, i in enumerate(idx):
            gt = read_mask(dataset.pairs[i][1], mask_threshold)
            pred = to_uint8_map(probabilities(logits[j].astype(np.float32), gt.shape)[0])
            dice.step(pred, gt)
            iou.step(pred, gt)
    return {"mDice": dice.results()["mDice"], "mIoU": iou.results()["mIoU"]}


def describe(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """(mean, sample std or None for a single value)."""
    x = np.asarray(values, np.float64)
    return float(x.mean()), (float(x.std(ddof=1)) if x.size > 1 else None)


__all__ = ["Comparison", "DIFFERENT", "WITHIN", "WelchInterval", "compare", "compare_runs", "describe",
           "overall_verdict", "score_binary_pairs", "welch_interval"]
