"""``jittor-pranet parity``: prove Jittor and PyTorch compute the same thing on your weights."""
from __future__ import annotations

import json
from pathlib import Path

from ..models.registry import model_info
from .common import model_choices


def _size(text: str):
    parts = text.lower().split("x")
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    return int(parts[0]), int(parts[1])


def register(sub) -> None:
    p = sub.add_parser(
        "parity", help="compare every intermediate and output tensor with the PyTorch reference",
        description="Load the same weights (your PyTorch checkpoint, or random weights with randomised "
                    "BatchNorm statistics) into the Jittor model and our PyTorch reference, run both in "
                    "eval mode, and print max|jittor - torch| / max|torch| per tensor. Needs torch.")
    p.add_argument("--model", action="append", choices=model_choices("binary") + ["all"],
                   help="model to check (repeatable; 'all' = the four models; default all)")
    p.add_argument("--checkpoint", help="PyTorch checkpoint with official key names (default: random weights)")
    p.add_argument("--num-classes", type=int, default=1)
    p.add_argument("--size", action="append", type=_size, help="input HxW, e.g. 352 or 320x416 (repeatable)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=None, help="relative tolerance (default 5e-5)")
    p.add_argument("--json", help="also write the rows as JSON to this file")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UserError
    from .common import setup_device

    setup_device(args.device)
    from ..parity import DEFAULT_TOLERANCE, format_table, rows_as_dicts, run_parity

    tol = args.tol if args.tol is not None else DEFAULT_TOLERANCE
    models = args.model or ["all"]
    if "all" in models:
        models = model_choices("binary")
    if args.checkpoint and len(models) != 1:
        raise UserError("--checkpoint needs exactly one --model")
    sizes = args.size or [(352, 352)]
    report, failed = {}, 0
    for name in models:
        nc = args.num_classes if model_info(name).dual else 1
        results = run_parity(name, nc, sizes, args.batch, args.seed, args.checkpoint)
        for key, rows in results.items():
            worst = max(rows, key=lambda r: r.rel)
            bad = [r for r in rows if not r.passed(tol)]
            failed += len(bad)
            status = "PASS" if not bad else f"FAIL ({len(bad)} tensors)"
            print(f"\n{name} (num_classes={nc}) input {key}: {len(rows)} tensors, worst {worst.tensor} "
                  f"{worst.rel:.2e} -> {status} at tol {tol:g}")
            print(format_table(rows, tol))
            report[f"{name}/{key}"] = rows_as_dicts(rows)
    if args.json:
        from ..utils.io import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(report, indent=1))
    return 1 if failed else 0
