"""``jittor-pranet eval``: score saved prediction maps against GT masks (no Jittor needed)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from .common import write_or_fail

DESCRIPTION = """\
Score 8-bit prediction maps against GT masks with the PraNet protocol: Dice/IoU/E-measure over the 256
thresholds pred >= k, S-measure, weighted F-measure and MAE, averaged over images.

--pred and --gt are either one set (folders of images; GT masks may sit in a masks/ subfolder) or test
trees with one folder per set (GT in TestDataset/<set>/masks/, predictions in <pred>/<set>/); every set
present in both is evaluated.  Files are paired by name without extension.  Prints a Markdown table.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate prediction maps against GT masks (mDice, mIoU, wFm, Sm, Em, MAE)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", required=True, metavar="DIR", help="prediction maps: one set, or one folder per set")
    p.add_argument("--gt", required=True, metavar="DIR", help="GT masks: one set, or one folder per set")
    p.add_argument("--json", metavar="FILE", help="write {set: {metric: value}} as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per set as CSV")
    p.add_argument("--curves", metavar="DIR", help="write a Dice/IoU-vs-threshold chart per set (PNG)")
    p.add_argument(
        "--gt-threshold",
        type=int,
        choices=(0, 128),
        default=0,
        help="GT pixel is foreground when > this value: 0 (upstream Python eval, default) or 128 (MATLAB toolbox)",
    )
    p.add_argument("--workers", type=int, default=2, metavar="N", help="worker processes (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import evaluate_folders_detailed
    from ..utils.io import atomic_write_many
    from .common import check_output_file, check_output_folder

    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, not {args.workers}")
    for option in ("json", "csv"):
        if getattr(args, option):
            check_output_file(getattr(args, option), f"--{option}")
    if args.json and args.csv and Path(args.json).absolute() == Path(args.csv).absolute():
        raise UserError("--json and --csv name the same file")
    if args.curves:
        check_output_folder(args.curves, "--curves")

    report = evaluate_folders_detailed(
        args.pred, args.gt, gt_threshold=args.gt_threshold, workers=args.workers, progress=not args.no_progress,
        labels=("--pred", "--gt"))
    for line in report.warnings():
        print(f"warning: {line}", file=sys.stderr)
    counts = ", ".join(f"{name}: {r.n_images}" for name, r in report.sets.items())
    print(f"images evaluated: {counts}", file=sys.stderr)
    print(report.markdown_table())
    sys.stdout.flush()

    tables = {}
    if args.json:
        tables[args.json] = report.to_json().encode()
    if args.csv:
        tables[args.csv] = report.to_csv().encode()
    if tables:  # all or nothing: a failing --csv never leaves a --json of this run beside an older CSV
        write_or_fail("results", " and ".join(map(str, tables)), lambda: atomic_write_many(tables))
    if args.curves:
        write_or_fail("curves to", args.curves, lambda: report.write_curves(args.curves))
    return 0
