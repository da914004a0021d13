"""``jittor-pranet bench``: options (parsed by ``cli/bench.py``) -> :class:`~.benchmark.BenchConfig` -> tables."""
from __future__ import annotations

import json
import os
import sys

from ..errors import UserError
from ..models.registry import model_info
from .benchmark import BenchConfig, run_benchmark
from .model_set import parse_variant
from .report import format_markdown, write_json


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def run_command(args, model_names) -> int:
    """Run the benchmark the parsed ``args`` describe (``model_names``: the valid ``--models``)."""
    if args.from_json:
        try:
            result = json.loads(open(args.from_json).read())
        except (OSError, ValueError) as exc:
            raise UserError(f"{args.from_json}: {exc}") from None
        text = format_markdown(result)
        print(text)
        if args.markdown:
            _write_text(args.markdown, text)
        return 0

    for v in args.variants:
        try:
            parse_variant(v)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if args.models:
        unknown = [m for m in args.models if m not in model_names]
        if unknown:
            raise UserError(f"unknown model(s) {unknown}; choose from {', '.join(model_names)}")
    try:
        w, h = (int(v) for v in args.eval_size.lower().split("x"))
    except ValueError:
        raise UserError("--eval-size must look like 1225x966") from None
    over = dict(models=args.models, batches=args.batches, train_batch=args.train_batch, repeats=args.repeats,
                eval_images=args.eval_images)
    common = dict(size=args.size, train_size=args.train_size or args.size, multiscale=tuple(args.multiscale or ()),
                  warmup=args.warmup, device=args.device, threads=args.threads,
                  keep_freed_memory=not args.glibc_defaults, variants=args.variants, inference=not args.no_inference,
                  training=not args.no_training, multiscale_training=bool(args.multiscale), eval_size=(w, h),
                  command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]))
    if args.quick:
        cfg = BenchConfig.quick_defaults(**over, **common)
    else:
        cfg = BenchConfig(**{k: v for k, v in over.items() if v is not None}, **common)
    if cfg.repeats < 1:
        raise UserError("--repeats must be >= 1")
    for name in cfg.models:
        info = model_info(name)
        for option, side in (("--size", cfg.size), ("--train-size", cfg.train_size)):
            problem = info.input.problem(side)
            if problem:
                raise UserError(f"{option} for {name}: {problem}")
        if info.twin is None and "torch" in cfg.variants:
            raise UserError(f"{name} has no PyTorch twin (its catalog row); leave torch out of --variants")
    result = run_benchmark(cfg)
    text = format_markdown(result)
    print(text)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.markdown:
        _write_text(args.markdown, text)
    return 0
