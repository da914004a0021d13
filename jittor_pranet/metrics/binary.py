"""Binary (polyp) segmentation metrics over 8-bit prediction maps.

Protocol (PraNet / PraNet-V2 test protocol, PySODMetrics ``normalize=False`` conventions):

* a prediction is the saved uint8 map; its value is ``pred_u8 / 255``;
* the GT is binarised with ``gt > gt_threshold`` (0 by default as the upstream Python eval; 128 as the
  MATLAB toolbox);
* threshold curves use the 256 integer thresholds ``pred_u8 >= k``.  Curves are stored in **descending**
  threshold order, index ``i`` <-> ``k = 255 - i`` (the order of PySODMetrics and of the upstream
  ``np.linspace(1, 0, 256)``), see :func:`thresholds`;
* every score is computed per image and averaged over images; ``mDice`` is the mean over thresholds of
  the image-averaged Dice curve and ``maxDice`` its maximum (same for IoU and E-measure).

Everything except the weighted F-measure is derived from one joint histogram per image (prediction level
x GT label x S-measure quadrant), so no metric ever makes 256 passes over the pixels, and all counts and
moments are exact integers.

Differences from PySODMetrics 1.6.2 (``normalize=False``), each measured by ``tests/metrics/test_metrics.py``:

* E-measure: the toolbox divides by ``N - 1`` pixels, so a perfect (or perfectly empty) binarisation
  scores ``N / (N - 1) > 1``; we clip each per-threshold score at 1.  Deviation <= ``1 / (N - 1)``
  and only at thresholds that would exceed 1.
* S-measure: quadrant statistics come from exact integer moments, so a variance or covariance that is
  mathematically zero is exactly zero.  The float formula can leave ~1e-17 noise there and take another
  branch: a quadrant where the GT is constant and the prediction is constant at an intermediate level
  (e.g. 186) has SSIM 1 here (alpha = beta = 0) but 0 in PySODMetrics and the upstream eval, so the
  S-measure can differ by up to half that quadrant's area fraction.  This needs a prediction that is flat
  over a whole quadrant at a level other than 0/255; on real maps the two agree to ~1e-15.  An empty
  quadrant (GT centroid on the last row/column) contributes 0 where PySODMetrics returns NaN.
* Float predictions are quantised to the nearest 8-bit level before anything else (as saving the PNG
  would); PySODMetrics keeps the float for MAE/S/wFm and truncates for the curves.

Differences from the upstream Python eval (``binary_seg/utils/eval_functions.py``), kept on purpose:
integer thresholds instead of the float ``linspace`` (66 of 256 misplaced there); S-measure uses the
sample standard deviation and splits at ``round(centroid) + 1`` (MATLAB toolbox) where upstream uses the
population deviation and ``round(centroid)``; the weighted F-measure pads the Gaussian filter with zeros
(MATLAB ``imfilter``) where upstream replicates the edge, and returns 0 for an empty GT where upstream
returns NaN.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

EPS = float(np.spacing(1))  # MATLAB's eps, as the toolbox uses it
LEVELS = 256
GT_THRESHOLDS = (0, 128)


def thresholds() -> np.ndarray:
    """Integer threshold of each curve index: ``[255, 254, ..., 0]`` (binary map is ``pred_u8 >= k``)."""
    return np.arange(LEVELS - 1, -1, -1)


def to_uint8_prediction(pred: np.ndarray) -> np.ndarray:
    """Validate a 2-D prediction and return it as uint8 levels 0..255.

    Float maps must lie in [0, 1] and are rounded to the nearest level; bool maps become 0/255.
    """
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"prediction must be a 2-D map, got shape {pred.shape}")
    if pred.dtype == np.uint8:
        return pred
    if pred.dtype == bool:
        return pred.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(pred.dtype, np.floating):
        if pred.size and (np.nanmin(pred) < 0 or np.nanmax(pred) > 1 or np.isnan(pred).any()):
            raise ValueError("float prediction values must lie in [0, 1]")
        return np.rint(pred * 255.0).astype(np.uint8)
    if np.issubdtype(pred.dtype, np.integer):
        if pred.size and (pred.min() < 0 or pred.max() > 255):
            raise ValueError("integer prediction values must lie in 0..255")
        return pred.astype(np.uint8)
    raise ValueError(f"unsupported prediction dtype {pred.dtype}")


def binarize_gt(gt: np.ndarray, gt_threshold: int = 0) -> np.ndarray:
    """GT mask as bool: bool input is kept, anything else is ``gt > gt_threshold``."""
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"ground truth must be a 2-D mask, got shape {gt.shape}")
    return gt if gt.dtype == bool else gt > gt_threshold


class ImagePair:
    """One prediction/GT pair, prepared once and shared by all metrics of an image.

    ``hist[r, c, g, k]`` counts pixels with prediction level ``k``, GT label ``g``, in the S-measure
    quadrant (``r``: row >= centroid row, ``c``: column >= centroid column).
    """

    def __init__(self, pred: np.ndarray, gt: np.ndarray, gt_threshold: int = 0):
        self.pred = to_uint8_prediction(pred)
        self.gt = binarize_gt(gt, gt_threshold)
        if self.pred.shape != self.gt.shape:
            raise ValueError(f"prediction shape {self.pred.shape} != ground-truth shape {self.gt.shape}")
        self.size = int(self.gt.size)
        if self.size == 0:
            raise ValueError("empty image")
        self.n_fg = int(np.count_nonzero(self.gt))
        self.split = self._centroid_split()
        self.hist = self._joint_histogram()
        self.level_hist = self.hist.sum(axis=(0, 1))  # (2, 256): [bg, fg] x level
        fg_desc = self.level_hist[1, ::-1]
        bg_desc = self.level_hist[0, ::-1]
        self.tp = np.cumsum(fg_desc)  # GT-fg pixels with pred >= k, descending k
        self.fp = np.cumsum(bg_desc)  # GT-bg pixels with pred >= k

    def _centroid_split(self) -> tuple:
        """Quadrant split of the S-measure: ``round(centroid) + 1`` (1-based MATLAB slicing, numpy round)."""
        h, w = self.gt.shape
        if self.n_fg == 0:
            return int(np.round(h / 2)) + 1, int(np.round(w / 2)) + 1
        rows = np.count_nonzero(self.gt, axis=1)
        cols = np.count_nonzero(self.gt, axis=0)
        cy = int(np.dot(np.arange(h, dtype=np.int64), rows)) / self.n_fg
        cx = int(np.dot(np.arange(w, dtype=np.int64), cols)) / self.n_fg
        return int(np.round(cy)) + 1, int(np.round(cx)) + 1

    def _joint_histogram(self) -> np.ndarray:
        cy, cx = self.split
        code = self.gt.astype(np.uint16)
        code <<= 8
        code += self.pred
        code[cy:, :] += 1024
        code[:, cx:] += 512
        counts = np.bincount(code.ravel(), minlength=2048)
        return counts.reshape(2, 2, 2, LEVELS).astype(np.int64)


_LEVEL = np.arange(LEVELS, dtype=np.int64)
_LEVEL_SQ = _LEVEL * _LEVEL


def _moments(hist: np.ndarray) -> tuple:
    """(count, sum of levels, sum of squared levels) of a level histogram, as exact Python ints."""
    return int(hist.sum()), int(np.dot(hist, _LEVEL)), int(np.dot(hist, _LEVEL_SQ))


# --------------------------------------------------------------------------------------------- metrics
class _Metric:
    """Accumulates one value per image; ``step`` for standalone use, ``compute``/``add`` for sharing."""

    def __init__(self, gt_threshold: int = 0):
        self.gt_threshold = gt_threshold
        self._values: List = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Score one image (uint8 map, or float in [0, 1]) against its GT mask."""
        self.add(self.compute(ImagePair(pred, gt, self.gt_threshold)))

    def compute(self, pair: ImagePair):  # pragma: no cover - abstract
        raise NotImplementedError

    def add(self, value) -> None:
        self._values.append(value)

    def __len__(self) -> int:
        return len(self._values)

    def _stack(self) -> np.ndarray:
        if not self._values:
            raise RuntimeError(f"{type(self).__name__}: no image was scored")
        return np.asarray(self._values, dtype=np.float64)


class _CurveMetric(_Metric):
    """A score per threshold: results are the mean and max of the image-averaged curve."""

    mean_key = max_key = ""

    def curve(self) -> np.ndarray:
        """Image-averaged curve, descending thresholds (see :func:`thresholds`)."""
        return self._stack().mean(axis=0)

    def results(self) -> Dict[str, float]:
        c = self.curve()
        return {self.mean_key: float(c.mean()), self.max_key: float(c.max())}


class _ScalarMetric(_Metric):
    key = ""

    def results(self) -> Dict[str, float]:
        return {self.key: float(self._stack().mean())}


class Dice(_CurveMetric):
    """Dice per threshold, ``2TP / (|GT| + |P|)``; 0 whenever TP = 0.

    TP = 0 includes an empty GT with an empty binarised prediction: both the upstream eval and
    PySODMetrics score that 0 (medpy would say 1).  At k = 0 the binary map is all ones.
    """

    mean_key, max_key = "mDice", "maxDice"

    def compute(self, pair: ImagePair) -> np.ndarray:
        tp = pair.tp.astype(np.float64)
        denom = pair.n_fg + tp + pair.fp  # = 2TP + FP + FN
        return np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=tp > 0)


class IoU(_CurveMetric):
    """IoU per threshold, ``TP / (TP + FP + FN)``; 0 whenever TP = 0 (same convention as :class:`Dice`)."""

    mean_key, max_key = "mIoU", "maxIoU"

    def compute(self, pair: ImagePair) -> np.ndarray:
        tp = pair.tp.astype(np.float64)
        denom = pair.n_fg + pair.fp  # = TP + FP + FN
        return np.divide(tp, denom, out=np.zeros_like(tp), where=tp > 0)


def _enhanced(a, b):
    """Enhanced alignment value of a pixel whose de-meaned prediction/GT values are ``a``, ``b``."""
    align = 2.0 * a * b / (a * a + b * b + EPS)
    return (align + 1.0) ** 2 / 4.0


class EMeasure(_CurveMetric):
    """Enhanced-alignment measure (Fan et al., IJCAI 2018) per threshold.

    A binarised map has only four kinds of pixels (TP, FP, FN, TN), so the alignment matrix takes four
    values and the score is a weighted sum of counts.  Empty GT: fraction of predicted background;
    all-foreground GT: fraction of predicted foreground.  Normalised by ``N - 1`` like the toolbox and
    then clipped at 1 (the toolbox lets a perfect map reach ``N / (N - 1)``).
    """

    mean_key, max_key = "meanEm", "maxEm"

    def compute(self, pair: ImagePair) -> np.ndarray:
        n = pair.size
        tp = pair.tp.astype(np.float64)
        fp = pair.fp.astype(np.float64)
        pos = tp + fp
        if pair.n_fg == 0:
            total = n - pos
        elif pair.n_fg == n:
            total = pos
        else:
            fn = pair.n_fg - tp
            tn = (n - pos) - fn
            mp = pos / n
            mg = pair.n_fg / n
            total = (
                tp * _enhanced(1 - mp, 1 - mg)
                + fp * _enhanced(1 - mp, -mg)
                + fn * _enhanced(-mp, 1 - mg)
                + tn * _enhanced(-mp, -mg)
            )
        return np.minimum(total / (n - 1 + EPS), 1.0)


class MAE(_ScalarMetric):
    """Mean absolute error between ``pred_u8 / 255`` and the binary GT (exact integer sums)."""

    key = "MAE"

    def compute(self, pair: ImagePair) -> float:
        bg, fg = pair.level_hist
        err = int(np.dot(bg, _LEVEL)) + int(np.dot(fg, 255 - _LEVEL))
        return err / (255.0 * pair.size)


class SMeasure(_ScalarMetric):
    """Structure measure (Fan et al., ICCV 2017): ``alpha * object + (1 - alpha) * region``, floored at 0.

    Follows the MATLAB toolbox / PySODMetrics (sample std in the object term, quadrant split at
    ``round(centroid) + 1``).  Empty GT: ``1 - mean(pred)``; all-foreground GT: ``mean(pred)``.
    """

    key = "Sm"

    def __init__(self, alpha: float = 0.5, gt_threshold: int = 0):
        super().__init__(gt_threshold)
        self.alpha = alpha

    def compute(self, pair: ImagePair) -> float:
        bg_hist, fg_hist = pair.level_hist
        if pair.n_fg == 0:
            return 1.0 - _moments(bg_hist)[1] / (255.0 * pair.size)
        if pair.n_fg == pair.size:
            return _moments(fg_hist)[1] / (255.0 * pair.size)
        score = self.alpha * self._object(pair) + (1 - self.alpha) * self._region(pair)
        return max(0.0, score)

    @staticmethod
    def _object_score(mean: float, std: float) -> float:
        return 2.0 * mean / (mean * mean + 1.0 + std + EPS)

    @staticmethod
    def _std(n: int, s1: int, s2: int) -> float:
        """Sample (ddof=1) std of levels / 255 from exact moments; 0 for a single pixel."""
        if n <= 1:
            return 0.0
        return float(np.sqrt((n * s2 - s1 * s1) / (n * (n - 1)))) / 255.0

    def _object(self, pair: ImagePair) -> float:
        bg_hist, fg_hist = pair.level_hist
        nf, sf1, sf2 = _moments(fg_hist)
        nb, sb1, sb2 = _moments(bg_hist)
        fg = self._object_score(sf1 / (255.0 * nf), self._std(nf, sf1, sf2))
        # background term scores 1 - pred: same spread, mirrored mean
        bg = self._object_score(1.0 - sb1 / (255.0 * nb), self._std(nb, sb1, sb2))
        u = nf / pair.size
        return u * fg + (1 - u) * bg

    def _region(self, pair: ImagePair) -> float:
        score = 0.0
        for r in (0, 1):
            for c in (0, 1):
                quad = pair.hist[r, c]
                n = int(quad.sum())
                if n:  # an empty quadrant has zero weight
                    score += self._ssim(quad) * n / pair.size
        return score

    @staticmethod
    def _ssim(quad: np.ndarray) -> float:
        """SSIM of one quadrant from exact integer moments (x = pred level / 255, y = GT in {0, 1})."""
        n, sx, sxx = _moments(quad[0] + quad[1])
        ny = int(quad[1].sum())  # sum(y) = sum(y^2)
        sxy = int(np.dot(quad[1], _LEVEL))
        dof = n - 1 + EPS
        x = sx / (255.0 * n)
        y = ny / n
        var_x = (n * sxx - sx * sx) / (n * 65025.0) / dof
        var_y = (n * ny - ny * ny) / n / dof
        cov = (n * sxy - sx * ny) / (n * 255.0) / dof
        alpha = 4.0 * x * y * cov
        beta = (x * x + y * y) * (var_x + var_y)
        if alpha != 0:
            return alpha / (beta + EPS)
        return 1.0 if beta == 0 else 0.0


def _gaussian_1d(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)`` (the 2-D kernel is its outer product)."""
    r = (size - 1) / 2.0
    x = np.arange(-r, r + 1)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


_GAUSS = _gaussian_1d()


class WeightedFMeasure(_ScalarMetric):
    """Weighted F-measure (Margolin et al., CVPR 2014), ``beta2 = 1``.

    MATLAB-toolbox algorithm: errors of background pixels are taken from their nearest GT pixel, smoothed
    with a 7x7, sigma-5 Gaussian (zero padding, as ``imfilter``; separable here), and weighted by the
    distance to the GT.  An empty GT scores 0 (as PySODMetrics; the upstream Python eval gives NaN).
    """

    key = "wFm"

    def __init__(self, beta2: float = 1.0, gt_threshold: int = 0):
        super().__init__(gt_threshold)
        self.beta2 = beta2

    def compute(self, pair: ImagePair) -> float:
        gt = pair.gt
        if pair.n_fg == 0:
            return 0.0
        err = np.abs(pair.pred / 255.0 - gt)
        dist, (iy, ix) = distance_transform_edt(~gt, return_indices=True)
        err_t = err[iy, ix]  # GT pixels index themselves; background pixels take their nearest GT pixel
        err_a = cv2.sepFilter2D(err_t, cv2.CV_64F, _GAUSS, _GAUSS, borderType=cv2.BORDER_CONSTANT)
        err_min = np.where(gt & (err_a < err), err_a, err)
        weight = np.where(gt, 1.0, 2.0 - np.exp(np.log(0.5) / 5.0 * dist))
        err_w = err_min * weight
        fg_err = float(err_w[gt].sum())
        tp_w = pair.n_fg - fg_err
        fp_w = float(err_w.sum()) - fg_err
        recall = 1.0 - fg_err / pair.n_fg
        precision = tp_w / (tp_w + fp_w + EPS)
        b2 = self.beta2
        return (1 + b2) * recall * precision / (recall + b2 * precision + EPS)


# --------------------------------------------------------------------------------------- all at once
METRIC_KEYS = ("mDice", "mIoU", "wFm", "Sm", "meanEm", "maxEm", "MAE", "maxDice", "maxIoU")


class PolypMetrics:
    """All binary metrics of the PraNet protocol, sharing one :class:`ImagePair` per image.

    ``compute`` is a pure function of one image (run it in worker processes) and ``add`` accumulates its
    output, so ``step(pred, gt) == add(compute(ImagePair(pred, gt)))``.
    """

    def __init__(self, gt_threshold: int = 0, alpha: float = 0.5, beta2: float = 1.0):
        if gt_threshold not in GT_THRESHOLDS:
            raise ValueError(f"gt_threshold must be one of {GT_THRESHOLDS}")
        self.gt_threshold = gt_threshold
        self.metrics = {
            "Dice": Dice(gt_threshold),
            "IoU": IoU(gt_threshold),
            "wFm": WeightedFMeasure(beta2, gt_threshold),
            "Sm": SMeasure(alpha, gt_threshold),
            "Em": EMeasure(gt_threshold),
            "MAE": MAE(gt_threshold),
        }

    def compute(self, pair: ImagePair) -> Dict[str, object]:
        return {name: m.compute(pair) for name, m in self.metrics.items()}

    def add(self, values: Dict[str, object]) -> None:
        for name, m in self.metrics.items():
            m.add(values[name])

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        self.add(self.compute(ImagePair(pred, gt, self.gt_threshold)))

    def __len__(self) -> int:
        return len(self.metrics["MAE"])

    def results(self) -> Dict[str, float]:
        """The nine scores in table order (:data:`METRIC_KEYS`), all in [0, 1]."""
        merged: Dict[str, float] = {}
        for m in self.metrics.values():
            merged.update(m.results())
        return {k: merged[k] for k in METRIC_KEYS}

    def curves(self) -> Dict[str, np.ndarray]:
        """Image-averaged Dice / IoU / E-measure curves, descending thresholds (see :func:`thresholds`)."""
        return {name: self.metrics[name].curve() for name in ("Dice", "IoU", "Em")}


def evaluate_arrays(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], gt_threshold: int = 0
) -> Dict[str, float]:
    """Score in-memory pairs (convenience for notebooks/tests): same numbers as the folder evaluation."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground truths")
    metrics = PolypMetrics(gt_threshold)
    for p, g in zip(preds, gts):
        metrics.step(p, g)
    return metrics.results()


__all__ = [
    "EPS",
    "GT_THRESHOLDS",
    "METRIC_KEYS",
    "Dice",
    "EMeasure",
    "IoU",
    "ImagePair",
    "MAE",
    "PolypMetrics",
    "SMeasure",
    "WeightedFMeasure",
    "binarize_gt",
    "evaluate_arrays",
    "thresholds",
    "to_uint8_prediction",
]
