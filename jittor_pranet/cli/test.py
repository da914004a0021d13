"""``jittor-pranet test``: predict every test set of a TestDataset tree and evaluate it in one go."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from .common import add_model_args, build_predictor, open_checkpoint, warn, write_or_fail

DESCRIPTION = """\
Predict every test set under --data (TestDataset/<set>/images + masks: CVC-300, CVC-ClinicDB, Kvasir,
ETIS-LaribPolypDB, CVC-ColonDB, or any folder with images/ and masks/; --data may also be one such
set) with the official protocol (see `jittor-pranet predict --help`; each map is resized to the size
of its GT mask, as upstream), write the maps to <out>/<set>/<stem>.png and evaluate them against
the masks: a Markdown table on stdout, <out>/metrics.json ({set: {metric: value}}),
<out>/metrics.csv and Dice/IoU-vs-threshold charts in <out>/curves/.  Images and masks are paired by
file stem; images without a mask are reported and not predicted.
"""

_CHECKPOINT_SUFFIXES = (".pkl", ".pth", ".pt", ".tar", ".bin")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "test", help="predict the test sets and evaluate them (mDice, mIoU, wFm, Sm, Em, MAE)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--data", required=True, metavar="DIR", help="TestDataset folder (one folder per set), or one set")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: results/<checkpoint file name without extension>)")
    p.add_argument("--sets", default=None, metavar="A,B",
                   help="comma-separated set names to run (default: every set found)")
    p.add_argument("--gt-threshold", type=int, choices=(0, 128), default=0,
                   help="GT pixel is foreground when > this value: 0 (upstream Python eval, default) or 128 (MATLAB)")
    p.add_argument("--hd95", choices=("medpy", "monai"), default=None,
                   help="multi-class HD95: medpy (pooled 95th percentile, the official tables) or monai (max of "
                        "the two directed 95th percentiles); default: the run's output.hd95_convention, else medpy")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="evaluation worker processes (default 2)")
    p.set_defaults(func=run)


def _checkpoint_stem(path: str) -> str:
    """``runs/best.pth.tar`` -> ``best``."""
    name = Path(path).name
    while Path(name).suffix.lower() in _CHECKPOINT_SUFFIXES:
        name = Path(name).stem
    return name or "predictions"


def run(args) -> int:
    from ..utils.io import Unfinished
    from .common import check_output_folder

    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, not {args.workers}")
    loaded, spec, size = open_checkpoint(args)
    if spec.num_classes > 1:  # organs / cardiac structures: per-volume, per-class scores
        return _test_volumes(args, loaded, spec, size)
    out = Path(args.out) if args.out else Path("results") / _checkpoint_stem(args.checkpoint)
    check_output_folder(out, "--out")
    with Unfinished(out):  # a failed or interrupted test leaves only what was there before
        return _test(args, loaded, spec, size, out)


def _test(args, loaded, spec, size, out: Path) -> int:
    from ..engine.outputs import prepare_output_folder
    from ..engine.testsets import plan_test_sets, run_test_sets
    from ..utils.io import atomic_write_many

    # pair, check every file header and the output folder before loading the model
    plans = plan_test_sets(args.data, out, args.sets, log=lambda line: print(line, file=sys.stderr))
    prepare_output_folder(out, "--out")
    predictor = build_predictor(args, loaded, spec, size)
    report = run_test_sets(predictor, plans, gt_threshold=args.gt_threshold, workers=args.workers,
                           progress=not args.no_progress, log=lambda line: print(line, file=sys.stderr))
    for line in report.warnings():
        warn(line)
    print(report.markdown_table())
    sys.stdout.flush()
    tables = {out / "metrics.json": report.to_json().encode(), out / "metrics.csv": report.to_csv().encode()}
    write_or_fail("metrics", f"{out}/metrics.{{json,csv}}", lambda: atomic_write_many(tables))
    write_or_fail("curves to", out / "curves", lambda: report.write_curves(out / "curves"))
    return 0


def _test_volumes(args, loaded, spec, size: int) -> int:
    """``test --checkpoint X --data ROOT --out DIR`` for a multi-class checkpoint."""
    from ..engine.multiclass import test_data
    from ..utils.io import Unfinished

    meta_cfg = loaded.meta.get("config") if isinstance(loaded.meta, dict) else None
    data = test_data(args.data, meta_cfg)
    if spec.num_classes != data.num_classes:
        raise UserError(f"{args.checkpoint}: the model has {spec.num_classes} classes, {args.data} has "
                        f"{data.num_classes} (background + {', '.join(data.class_names)})")
    if not data.test_volumes:
        raise UserError(f"{args.data}: no test volumes found ({data.summary()})")
    if args.size is None and spec.test_size is None:  # no recorded training size (an official .pth)
        from ..models.registry import model_info

        size = model_info(spec.name).default_size  # the official multi-class size
        _info(f"input size {size} (the official multi-class training size; --size to change)")
    out = Path(args.out) if args.out else Path("results") / Path(args.checkpoint).name.split(".")[0]
    with Unfinished(out):  # a failed or interrupted evaluation leaves no partial tables or overlays
        return _evaluate_volumes(args, loaded, spec, size, data, meta_cfg, out)


def _evaluate_volumes(args, loaded, spec, size: int, data, meta_cfg, out: Path) -> int:
    from ..engine.multiclass import evaluate_checkpoint, print_volume_table
    from ..engine.outputs import prepare_output_folder
    from .common import setup_device

    prepare_output_folder(out, "--out")
    setup_device(args.device)
    convention = args.hd95 or ((meta_cfg or {}).get("output") or {}).get("hd95_convention") or "medpy"
    result, spec, size = evaluate_checkpoint(args.checkpoint, data, out, size=size, batch_size=args.batch_size,
                                             progress=not args.no_progress, hd95_convention=convention)
    print_volume_table(result, f"{spec.describe()} at {size}x{size} on {len(data.test_volumes)} test volumes of {args.data}:")
    _info(f"wrote {out}/per_class.md, per_class.csv, metrics.json, overlays/")
    return 0


def _info(line: str) -> None:
    print(line, file=sys.stderr)
