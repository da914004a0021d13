"""``jittor-pranet quickstart``: the README's main job, with nothing to download.

Generates the embedded synthetic polyp dataset (deterministic), trains the quickstart model on it
with the official recipe (configs/quickstart.yaml, shipped inside the package), then predicts the
held-out synthetic test images and prints their metrics table.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict

from .common import add_device_arg

PACKAGED_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"
PACKAGED_MULTICLASS_CONFIG = PACKAGED_CONFIG.with_name("quickstart_multiclass.yaml")


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="generate synthetic polyps, train, predict and evaluate (no downloads)",
                       description=__doc__)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=2")
    p.add_argument("--run-dir", default=None,
                   help="run folder (default runs/quickstart, or runs/quickstart_multiclass with --task multiclass)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--task", choices=["binary", "multiclass"], default="binary",
                   help="binary: synthetic polyps, PraNet-V2 (default); multiclass: synthetic abdominal organs "
                        "in the Synapse layout, EMCAD + DSRA, per-class table of held-out volumes")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..engine.run_folder import make_run_dir, plan_run_dir, predict_and_evaluate
    from ..engine.run_report import save_run_config
    from ..engine.trainer import Trainer
    from .common import setup_device

    if args.task == "multiclass":
        return _quickstart_multiclass(args)
    setup_device(args.device)
    t0 = time.time()
    cfg = load_config(str(PACKAGED_CONFIG), args.overrides)
    # the demo replaces its own previous run (a folder that is not a run is still refused)
    run_dir = plan_run_dir(cfg, args.run_dir or "runs/quickstart", overwrite=True)
    if (run_dir / "config.yaml").is_file():
        print(f"quickstart: replacing the previous run in {run_dir}")
    trainer = Trainer(cfg, run_dir, progress=not args.no_progress,
                      prepare_run_dir=lambda: make_run_dir(run_dir, overwrite=True))
    save_run_config(cfg, run_dir / "config.yaml")  # with version, commit and seed
    setup_s = time.time() - t0
    result = trainer.fit()
    t_test = time.time()
    predict_and_evaluate(run_dir, cfg)
    test_s = time.time() - t_test
    best = result["best_val_mDice"]
    print(f"\nquickstart: best validation mDice {best if best is None else round(best, 4)} after "
          f"{result['epochs']} epochs ({result['steps']} steps); outputs in {run_dir}")
    print_summary(result, setup_s, test_s, time.time() - t0)
    return 0


def print_summary(result: Dict[str, Any], setup_s: float, test_s: float, total_s: float) -> None:
    """How long each phase took, and any warning of the training repeated last, where it is seen."""
    print(f"quickstart: time by phase: data + model {_fmt(setup_s)}, compiling kernels (warm-up) "
          f"{_fmt(result['warmup_s'])}, training {_fmt(result['train_s'])}, test {_fmt(test_s)}; "
          f"total {_fmt(total_s)}")
    for line in result.get("warnings", ()):
        print(line)
    sys.stdout.flush()


def _fmt(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _quickstart_multiclass(args) -> int:
    """Synthetic organs -> EMCAD + DSRA (PVTv2-b0) on CPU -> per-class table of the held-out volumes."""
    from ..config import load_config
    from ..engine.multiclass import MultiClassTrainer, test_after_training
    from ..engine.run_folder import make_run_dir, plan_run_dir
    from ..engine.run_report import save_run_config
    from .common import setup_device

    setup_device(args.device)
    t0 = time.time()
    cfg = load_config(str(PACKAGED_MULTICLASS_CONFIG), args.overrides)
    # the demo replaces its own previous run (a folder that is not a run is still refused)
    run_dir = plan_run_dir(cfg, args.run_dir or "runs/quickstart_multiclass", overwrite=True)
    trainer = MultiClassTrainer(cfg, run_dir, progress=not args.no_progress,
                                prepare_run_dir=lambda: make_run_dir(run_dir, overwrite=True))
    save_run_config(cfg, run_dir / "config.yaml")  # with version, commit and seed
    setup_s = time.time() - t0
    result = trainer.fit()
    t_test = time.time()
    test_after_training(run_dir, cfg, progress=not args.no_progress)
    test_s = time.time() - t_test
    print(f"\nquickstart (multiclass): best validation mean Dice {result['best_val_mDice'] or 0:.4f} after "
          f"{result['epochs']} epochs ({result['steps']} steps); outputs in {run_dir}")
    print_summary(result, setup_s, test_s, time.time() - t0)
    return 0
