"""Polyp test sets: a TestDataset tree planned (pairs, headers) before any model loads, predicted at the
GT size into ``<out>/<set>/`` and scored; :func:`predict_test_sets` does it from a checkpoint."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import UserError
from .model_spec import load_model, resolve_model_spec
from .outputs import ImageJob, OutputOptions, predict_files, prepare_output_folder
from .predictor import DEFAULT_SIZE, Predictor


@dataclass
class TestSetPlan:
    """One test set: what to predict (maps at the GT size, into ``<out>/<set>/``) and its GT masks."""

    name: str
    jobs: List[ImageJob]
    masks: List[Path]
    gt_only: List[str] = field(default_factory=list)  # GT stems without an image


def _default_log(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


def select_test_sets(data: Union[str, os.PathLike], sets: Union[None, str, Sequence[str]] = None
                     ) -> Dict[str, Tuple[Path, Path]]:
    """``{set: (image folder, mask folder)}`` under a TestDataset tree, optionally only ``sets`` (a list or
    ``"A,B"``); an unknown name is a UserError listing the sets found."""
    from ..data import find_test_sets

    found = find_test_sets(data)
    if sets is None:
        return found
    names = [n.strip() for n in (sets.split(",") if isinstance(sets, str) else sets) if n and n.strip()]
    if not names:
        raise UserError("--sets is empty")
    unknown = [n for n in names if n not in found]
    if unknown:
        raise UserError(f"--sets: no set {', '.join(unknown)} in {data} (found: {', '.join(found)})")
    return {n: found[n] for n in names}


def plan_test_sets(data: Union[str, os.PathLike], out: Union[str, os.PathLike],
                   sets: Union[None, str, Sequence[str]] = None, log=_default_log) -> List[TestSetPlan]:
    """Pair images with masks by stem and read every header (cheap) so that bad data fails before any
    model is loaded.  Images without a mask are reported through ``log`` and left out."""
    from ..data import image_size, pair_by_stem

    out = Path(out)
    plans = []
    for name, (img_dir, mask_dir) in select_test_sets(data, sets).items():
        report = pair_by_stem(img_dir, mask_dir)
        if report.unpaired_images or report.unpaired_masks or report.skipped_files:
            log(f"warning: {name}: {report.summary()}")
        jobs, masks = [], []
        for img, mask in report.pairs:
            image_size(img)  # raises UserError naming a broken file
            jobs.append(ImageJob(img, out / name, img.stem, out_size=image_size(mask)))
            masks.append(mask)
        plans.append(TestSetPlan(name, jobs, masks, [m.stem for m in report.unpaired_masks]))
    return plans


def run_test_sets(predictor: Predictor, plans: Sequence[TestSetPlan], *, gt_threshold: int = 0, workers: int = 2,
                  progress: bool = True, log=_default_log):
    """Predict every planned set into ``<out>/<set>/<stem>.png`` and evaluate it: an EvaluationReport."""
    import time

    from ..evaluation import EvaluationReport, SetResult, evaluate_pairs

    if predictor.num_classes != 1:
        raise UserError(f"test sets are scored as binary segmentation; this model has {predictor.num_classes} classes")
    for plan in plans:
        if plan.jobs:
            prepare_output_folder(plan.jobs[0].folder, option="output folder")
    start = time.perf_counter()
    total = 0
    for plan in plans:
        predict_files(predictor, plan.jobs, OutputOptions(), progress=progress, desc=plan.name)
        total += len(plan.jobs)
    seconds = time.perf_counter() - start
    log(f"predicted {total} images in {len(plans)} set(s) ({seconds:.1f} s, {total / max(seconds, 1e-9):.2f} img/s)")
    results = {}
    for plan in plans:
        pairs = [(job.stem, job.folder / f"{job.stem}.png", mask) for job, mask in zip(plan.jobs, plan.masks)]
        metrics, n_resized = evaluate_pairs(pairs, gt_threshold=gt_threshold, workers=workers, progress=progress,
                                            desc=f"eval {plan.name}")
        results[plan.name] = SetResult(name=plan.name, metrics=metrics.results(), curves=metrics.curves(),
                                       n_images=len(metrics), n_resized=n_resized)
    return EvaluationReport(results)


def predict_test_sets(checkpoint: Union[str, os.PathLike], data: Union[str, os.PathLike],
                      out: Union[str, os.PathLike], *, size: Optional[int] = None,
                      sets: Union[None, str, Sequence[str]] = None, batch_size: int = 4, gt_threshold: int = 0,
                      workers: int = 2, progress: bool = True, model: Optional[str] = None,
                      num_classes: Optional[int] = None, config: Optional[Mapping[str, Any]] = None,
                      precision: str = "fp32", log=_default_log):
    """Checkpoint + TestDataset tree -> ``<out>/<set>/<stem>.png`` maps and an EvaluationReport.

    For scripts and the trainer (Jittor must be configured, e.g. by ``cli.common.setup_device``); the
    ``test`` command does the same with messages and output files.  ``size`` defaults to the test size
    recorded in the checkpoint's config, else 352.
    """
    from ..checkpoint import read_state_dict

    loaded = read_state_dict(checkpoint)
    spec = resolve_model_spec(loaded.meta, loaded.state_dict, model=model, num_classes=num_classes,
                              config=config, source=str(checkpoint))
    if spec.num_classes != 1:
        raise UserError(f"test sets are scored as binary segmentation; {checkpoint} has {spec.num_classes} classes")
    plans = plan_test_sets(data, out, sets, log=log)
    net, spec = load_model(checkpoint, spec, loaded=loaded, precision=precision)
    predictor = Predictor(net, size=size or spec.test_size or DEFAULT_SIZE, batch_size=batch_size)
    return run_test_sets(predictor, plans, gt_threshold=gt_threshold, workers=workers, progress=progress, log=log)


__all__ = ["TestSetPlan", "plan_test_sets", "predict_test_sets", "run_test_sets", "select_test_sets"]
