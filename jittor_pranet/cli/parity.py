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
    p.add_argument("--model", action="append", choices=model_choices() + ["all"],
                   help="model to check (repeatable; 'all' = every registered model with a PyTorch twin; "
                        "default all)")
    p.add_argument("--checkpoint", help="PyTorch checkpoint with official key names (default: random weights)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of the multi-class and fg/bg models (default: the model's own; "
                        "single-output binary models always 1)")
    p.add_argument("--size", action="append", type=_size,
                   help="input HxW, e.g. 352 or 320x416 (repeatable; default the model's official size)")
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
        models = [n for n in model_choices() if model_info(n).twin is not None]
    if args.checkpoint and len(models) != 1:
        raise UserError("--checkpoint needs exactly one --model")
    report, failed = {}, 0
    for name in models:
        info = model_info(name)
        if info.dual or info.task == "multiclass":
            nc = info.default_num_classes if args.num_classes is None else args.num_classes
        else:
            nc = 1
        sizes = args.size or [(info.default_size, info.default_size)]
        for h, w in sizes:
            problem = info.input.problem(h, w)
            if problem:
                raise UserError(f"--size for {name}: {problem}")
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
