#!/usr/bin/env python
"""Training memory, Jittor vs PyTorch: peak RSS of a training-step loop, each side in a fresh process.

The Jittor side is the project's trainer (``Trainer.train_batch``, one update per multi-scale size) with
the recipe of the model's configs; the PyTorch side is the model's twin trained by the reference steps
(``jittor_pranet/bench/memory.py`` says exactly what runs).  Both see the same generated batches.
Reported per side: peak RSS (VmHWM of the child), ``ru_maxrss`` of the child (``os.wait4``), RSS before
the first step and after each step (growth), seconds per step; and the peak ratio Jittor/PyTorch.

    python tools/bench_memory.py pranet_v2_res2net --batch 8 --size 352 --steps 3
    python tools/bench_memory.py pranet_v2_res2net --batch 8 --size 352 --multi-scale 0.75 1 1.25
    python tools/bench_memory.py emcad_b2_dsra --batch 6 --size 224 --json runs/mem/emcad.json
    python tools/bench_memory.py emcad_b2_dsra --encoder pvt_v2_b0 --batch 6 --size 128 --steps 2
    python tools/bench_memory.py emcad_b2_dsra --encoder pvt_v2_b0 --size 128 --side jittor --jittor-gc update
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from jittor_pranet.errors import UserError  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench_memory.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("model", help="registered model name (e.g. pranet_v2_res2net, emcad_b2_dsra, emcad_b2)")
    p.add_argument("--encoder", default=None, help="encoder variant (e.g. pvt_v2_b0); default: the model's own")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--size", type=int, default=None, help="base input side, a multiple of 32 (default: the model's)")
    p.add_argument("--multi-scale", type=float, nargs="+", default=[1.0], metavar="RATE",
                   help="multi-scale rates as train.multi_scale (sizes round(size*rate/32)*32; one update per "
                        "size and step; binary models only). Default 1.0")
    p.add_argument("--steps", type=int, default=3, help="training steps (batches) per side (default 3)")
    p.add_argument("--num-classes", type=int, default=None, help="default: 1 for binary models, 9 for multi-class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--side", choices=["both", "jittor", "pytorch"], default="both", help="which side(s) to run")
    p.add_argument("--warmup", action="store_true", help="Jittor: run Trainer.warm_up() before the steps, as fit does")
    p.add_argument("--jittor-gc", choices=["none", "step", "update"], default="none",
                   help="Jittor: call jt.gc() after every step (batch) or every update (each multi-scale size); "
                        "default none (the trainer as it is)")
    p.add_argument("--jittor-flag", action="append", default=[], metavar="NAME=VALUE",
                   help="set jt.flags.NAME in the Jittor child (repeatable)")
    p.add_argument("--memory-info", action="store_true",
                   help="Jittor: jt.display_memory_info() after the last step (into the Jittor log: needs --log-dir)")
    p.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads in the PyTorch child")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="kill a side after S seconds")
    p.add_argument("--log-dir", type=Path, default=None, help="keep each child's stderr as DIR/SIDE.log")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON (atomic)")
    return p


def build_spec(args):
    from jittor_pranet.bench.memory import MemorySpec, task_of
    from jittor_pranet.models.registry import list_models, model_info

    if args.model not in list_models():
        raise UserError(f"unknown model {args.model!r} (known: {', '.join(sorted(list_models()))})")
    info = model_info(args.model)
    if info.twin is None and args.side != "jittor":
        raise UserError(f"{args.model} has no PyTorch twin; use --side jittor")
    size = args.size if args.size is not None else info.default_size
    if size < 32 or size % 32:
        raise UserError(f"--size must be a multiple of 32 (>= 32), got {size}")
    if args.batch < 1:
        raise UserError(f"--batch must be >= 1, got {args.batch}")
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if any(r <= 0 for r in args.multi_scale):
        raise UserError(f"--multi-scale rates must be > 0, got {args.multi_scale}")
    if args.num_classes is not None and args.num_classes < 1:
        raise UserError(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.timeout is not None and args.timeout <= 0:
        raise UserError(f"--timeout must be > 0, got {args.timeout}")
    if args.torch_threads is not None and args.torch_threads < 1:
        raise UserError(f"--torch-threads must be >= 1, got {args.torch_threads}")
    if args.encoder is not None and info.encoders and args.encoder not in info.encoders:
        raise UserError(f"{args.model} takes no encoder {args.encoder!r} ({', '.join(info.encoders)})")
    flags = {}
    for item in args.jittor_flag:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--jittor-flag takes NAME=VALUE, got {item!r}")
        flags[name] = value
    spec = MemorySpec(model=args.model, batch_size=args.batch, size=size, rates=[float(r) for r in args.multi_scale],
                      steps=args.steps, encoder=args.encoder, num_classes=args.num_classes, seed=args.seed,
                      warmup=args.warmup, jittor_gc=args.jittor_gc, jittor_flags=flags,
                      memory_info=args.memory_info, torch_threads=args.torch_threads)
    if task_of(spec) == "multiclass" and [float(r) for r in args.multi_scale] != [1.0]:
        raise UserError(f"{args.model} trains multi-class at one scale (the multi-class trainer); drop --multi-scale")
    if task_of(spec) == "binary" and (args.num_classes or 1) != 1:
        raise UserError(f"{args.model} is a binary model here: --num-classes must be 1")
    return spec


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        from jittor_pranet.bench import memory

        spec = build_spec(args)
        if args.log_dir:
            args.log_dir.mkdir(parents=True, exist_ok=True)
        sides = memory.SIDES if args.side == "both" else (args.side,)
        results = memory.compare(spec, sides, args.log_dir, args.timeout,
                                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    except (UserError, memory.SideFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(memory.table(spec, results))
    if args.json:
        from jittor_pranet.utils.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(memory.report(spec, results), indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
