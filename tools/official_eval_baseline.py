#!/usr/bin/env python
"""Timing baseline: our metrics vs the cost structure of the upstream PraNet-V2 Python eval.

The upstream ``binary_seg/eval.py`` scores each image with 256 float thresholds
(``np.linspace(1, 0, 256)``) and, for every threshold, binarises the whole map twice and runs full-image
array passes for precision/recall/specificity/Dice/F/IoU and for the E-measure, on top of one S-measure,
one weighted F-measure (EDT + 7x7 convolution) and the MAE.  :func:`baseline_image` below is an
independent re-implementation of that *cost structure* (same number and kind of full-image passes), used
only to time it; it is not part of the package and its numbers are not used anywhere.

``--official-eval PATH`` times a local copy of the real ``binary_seg/eval.py`` instead (its
``eval_for_testAllInOne``; modules it imports but the metrics never call, such as torch, thop and
tabulate, are stubbed when they are not installed).

Usage::

    python tools/official_eval_baseline.py --images 3 --size 1225x966
    python tools/official_eval_baseline.py --official-eval ~/PraNet-V2/binary_seg/eval.py
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import types
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np
from scipy.ndimage import convolve, distance_transform_edt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jittor_pranet.metrics.binary import ImagePair, PolypMetrics  # noqa: E402

EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------ synthetic data
def synthetic_pair(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """A polyp-like GT (a few ellipses) and a shifted, blurred, noisy uint8 prediction of it."""
    gt = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        center = (int(rng.integers(width // 5, 4 * width // 5)), int(rng.integers(height // 5, 4 * height // 5)))
        axes = (int(rng.integers(width // 12, width // 4)), int(rng.integers(height // 12, height // 4)))
        cv2.ellipse(gt, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    shift = np.float32([[1, 0, rng.integers(-15, 16)], [0, 1, rng.integers(-15, 16)]])
    pred = cv2.warpAffine(gt, shift, (width, height)).astype(np.float64)
    pred = cv2.GaussianBlur(pred, (0, 0), float(rng.uniform(3, 12)))
    pred = np.clip(pred + rng.normal(0, 12, pred.shape), 0, 255).astype(np.uint8)
    return pred, gt


# ------------------------------------------------------------------ baseline cost structure
def _ssim_like(a: np.ndarray, b: np.ndarray) -> float:
    n = a.size
    if n == 0:
        return 0.0
    ma, mb = a.mean(), b.mean()
    va = np.sum((a - ma) ** 2) / (n - 1 + EPS)
    vb = np.sum((b - mb) ** 2) / (n - 1 + EPS)
    cov = np.sum((a - ma) * (b - mb)) / (n - 1 + EPS)
    num = 4 * ma * mb * cov
    den = (ma * ma + mb * mb) * (va + vb)
    return num / (den + EPS) if num != 0 else float(den == 0)


def _s_measure(pred: np.ndarray, gt: np.ndarray) -> float:
    mean_gt = gt.mean()
    if mean_gt in (0.0, 1.0):
        return 1 - pred.mean() if mean_gt == 0 else pred.mean()
    fg = pred.copy()
    fg[gt != 1] = 0
    bg = 1 - pred
    bg[gt == 1] = 0
    vals = []
    for region, mask in ((fg, gt == 1), (bg, gt != 1)):
        x = region[mask]
        vals.append(2 * x.mean() / (x.mean() ** 2 + 1 + x.std() + EPS))
    obj = mean_gt * vals[0] + (1 - mean_gt) * vals[1]
    rows, cols = np.where(gt == 1)
    cy, cx = int(rows.mean().round()), int(cols.mean().round())
    reg = 0.0
    for rs in (slice(0, cy), slice(cy, None)):
        for cs in (slice(0, cx), slice(cx, None)):
            reg += _ssim_like(pred[rs, cs], gt[rs, cs]) * gt[rs, cs].size / gt.size
    return max(0.0, 0.5 * obj + 0.5 * reg)


def _weighted_f(pred: np.ndarray, gt: np.ndarray) -> float:
    err = np.abs(pred - gt)
    dist, idx = distance_transform_edt(1 - gt, return_indices=True)
    err_t = err.copy()
    bg = gt != 1
    err_t[bg] = err_t[idx[0][bg], idx[1][bg]]
    y, x = np.mgrid[-3:4, -3:4]
    kernel = np.exp(-(x * x + y * y) / 50.0)
    kernel /= kernel.sum()
    err_a = convolve(err_t, kernel, mode="nearest")
    err_min = err.copy()
    sel = (gt == 1) & (err_a < err)
    err_min[sel] = err_a[sel]
    weight = np.ones_like(gt)
    weight[bg] = 2.0 - np.exp(np.log(0.5) / 5 * dist[bg])
    err_w = err_min * weight
    tp = gt.sum() - err_w[gt == 1].sum()
    fp = err_w[bg].sum()
    recall = 1 - err_w[gt == 1].mean()
    precision = tp / (tp + fp + EPS)
    return 2 * recall * precision / (recall + precision + EPS)


def _threshold_scores(pred: np.ndarray, gt: np.ndarray, t: float) -> Tuple[float, float]:
    """One threshold as upstream does it: several full-image passes for counts, then the E-measure."""
    label = np.zeros_like(gt)
    label[pred >= t] = 1
    n_rec = np.sum(label == 1)
    n_norec = np.sum(label == 0)
    n_and = np.sum(((label == 1) & (gt == 1)) == 1)
    n_obj = np.sum(gt)
    n_pred = np.sum(label)
    fn = n_obj - n_and
    fp = n_rec - n_and
    tn = n_norec - fn
    dice = 0.0 if n_and == 0 else 2 * n_and / (n_obj + n_pred)
    _ = 0.0 if n_and == 0 else (tn / (tn + fp), n_and / (fn + n_rec))  # specificity, IoU
    binary = np.zeros_like(pred)
    binary[pred >= t] = 1
    if n_obj == 0:
        enhanced = 1 - binary
    elif np.sum(1 - gt) == 0:
        enhanced = binary.copy()
    else:
        a = binary - binary.mean()
        b = gt - gt.mean()
        align = 2 * (a * b) / (a * a + b * b + EPS)
        enhanced = (align + 1) ** 2 / 4
    return dice, np.sum(enhanced) / (gt.size - 1 + EPS)


def baseline_image(pred_u8: np.ndarray, gt_u8: np.ndarray) -> Dict[str, float]:
    pred = pred_u8.astype(np.float64) / 255
    gt = (gt_u8.astype(np.float64) > 0.5).astype(np.float64)
    sm, wfm, mae = _s_measure(pred, gt), _weighted_f(pred, gt), float(np.mean(np.abs(gt - pred)))
    scores = np.array([_threshold_scores(pred, gt, t) for t in np.linspace(1, 0, 256)])
    return {"meanDic": scores[:, 0].mean(), "meanEm": scores[:, 1].mean(), "Sm": sm, "wFm": wfm, "mae": mae}


# ------------------------------------------------------------------ the real upstream eval, optional
def load_official(path: Path) -> Callable[[np.ndarray, np.ndarray], Dict[str, float]]:
    path = path.expanduser().resolve()
    if not (path.is_file() and (path.parent / "utils" / "eval_functions.py").is_file()):
        raise SystemExit(f"error: {path} is not binary_seg/eval.py of a PraNet-V2 checkout (utils/eval_functions.py beside it)")
    stubbed = []
    for name in ("torch", "thop", "tabulate"):  # imported by eval.py / utils.utils, unused by the metrics
        if importlib.util.find_spec(name) is None:
            stub = types.ModuleType(name)
            stub.profile = stub.clever_format = stub.tabulate = lambda *a, **k: None
            sys.modules[name] = stub
            stubbed.append(name)
    if stubbed:
        print(f"note: stubbed modules not installed here: {', '.join(stubbed)}", file=sys.stderr)
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("pranet_official_eval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metrics = ["meanDic", "meanIoU", "wFm", "Sm", "meanEm", "mae"]

    def run(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
        return dict(zip(metrics, module.eval_for_testAllInOne({"metrics": metrics}, pred, gt)))

    return run


# ------------------------------------------------------------------ timing
def ours_image(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    values = PolypMetrics().compute(ImagePair(pred, gt))
    return {
        "meanDic": float(values["Dice"].mean()),
        "meanEm": float(values["Em"].mean()),
        "Sm": values["Sm"],
        "wFm": values["wFm"],
        "mae": values["MAE"],
    }


def time_per_image(fn, pairs, repeats: int = 1) -> Tuple[float, List[Dict[str, float]]]:
    out = [fn(p, g) for p, g in pairs[:1]]  # warm-up (imports, caches)
    start = time.perf_counter()
    for _ in range(repeats):
        out = [fn(p, g) for p, g in pairs]
    return (time.perf_counter() - start) / (repeats * len(pairs)) * 1000.0, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=3, help="synthetic images to time (default 3)")
    ap.add_argument("--size", default="1225x966", help="WIDTHxHEIGHT of the synthetic maps (default 1225x966)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--official-eval", type=Path, metavar="PATH", help="time this copy of binary_seg/eval.py instead")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the timings as JSON")
    args = ap.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error("--size must look like 1225x966")
    rng = np.random.default_rng(args.seed)
    pairs = [synthetic_pair(rng, width, height) for _ in range(max(1, args.images))]

    name, reference = "baseline (upstream cost structure)", baseline_image
    if args.official_eval:
        name, reference = f"official eval.py ({args.official_eval})", load_official(args.official_eval)

    ours_ms, ours_vals = time_per_image(ours_image, pairs, repeats=3)
    ref_ms, ref_vals = time_per_image(reference, pairs)
    print(f"images: {len(pairs)} synthetic {width}x{height} maps, single process")
    print(f"ours:       {ours_ms:9.1f} ms/image")
    print(f"{name}: {ref_ms:9.1f} ms/image")
    print(f"speed-up:   {ref_ms / ours_ms:9.1f}x")
    for key in ("meanDic", "meanEm", "Sm", "wFm", "mae"):
        if key in ref_vals[0]:
            diff = max(abs(float(a[key]) - float(b[key])) for a, b in zip(ours_vals, ref_vals))
            print(f"  max |ours - reference| {key:8s} {diff:.2e}")
    if args.json:
        args.json.write_text(json.dumps({"ours_ms": ours_ms, "reference_ms": ref_ms, "reference": name,
                                         "speedup": ref_ms / ours_ms, "size": [width, height],
                                         "images": len(pairs)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
