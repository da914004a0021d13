"""``jittor-pranet report RUN [RUN ...]``: mean +- std of the test metrics per class over several runs."""
from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="mean +- std of the test metrics per class over run folders (seeds)",
                              description="Reads each run's test/metrics.json (or a test --out folder's "
                                          "metrics.json) and prints mean +- std (sample std) per metric and class.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or folders holding metrics.json)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which test scores of each run: best (best.pkl, chosen on validation: test/, default) or "
                        "last (last.pkl, the final epoch: test_last/); train writes both")
    p.add_argument("--out", metavar="DIR", help="also write report.md, report.json and report.png (Dice per run) into DIR")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine.run_report import collect_runs, markdown, plot_runs, summarise
    from ..utils.io import atomic_write_text

    classes, records = collect_runs([Path(r) for r in args.runs], args.checkpoint)
    summary = summarise(classes, records)
    text = markdown(summary, records)
    print(text)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / "report.md", text + "\n")
        atomic_write_text(out / "report.json", json.dumps({"runs": records, "summary": summary}, indent=2) + "\n")
        plot_runs(classes, records, out / "report.png")
        print(f"wrote {out / 'report.md'}, {out / 'report.json'}, {out / 'report.png'}")
    return 0
