"""``jittor-pranet quickstart``: the README's main job, with nothing to download.

Generates the embedded synthetic polyp dataset (deterministic), trains the quickstart model on it
with the official recipe (configs/quickstart.yaml, shipped inside the package), then predicts the
held-out synthetic test images and prints their metrics table.
"""
from __future__ import annotations

import time
from pathlib import Path

from .common import add_device_arg

PACKAGED_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"


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


def predict_and_evaluate(run_dir: Path, cfg) -> dict:
    """Predict every test set with best.pkl (else last.pkl), write PNGs and the metrics table."""
    import json

    from ..engine.inference import predict_test_sets
    from ..utils.io import atomic_write_text

    ckpt = run_dir / "best.pkl" if (run_dir / "best.pkl").is_file() else run_dir / "last.pkl"
    report = predict_test_sets(ckpt, cfg["data"]["test"], run_dir / "predictions",
                               size=int(cfg["data"]["test_size"] or cfg["data"]["train_size"]))
    table = report.markdown_table()
    print(f"\ntest-set metrics ({ckpt.name}):\n{table}")
    atomic_write_text(run_dir / "test_metrics.json", report.to_json())
    atomic_write_text(run_dir / "test_metrics.md", table + "\n")
    return json.loads(report.to_json())


def run(args) -> int:
    from ..config import load_config, save_config
    from ..engine.trainer import Trainer
    from .common import setup_device
    from .train import make_run_dir

    if args.task == "multiclass":
        from .multiclass import run_quickstart

        return run_quickstart(args)
    setup_device(args.device)
    t0 = time.time()
    cfg = load_config(str(PACKAGED_CONFIG), args.overrides)
    run_dir = make_run_dir(cfg, args.run_dir or "runs/quickstart")
    trainer = Trainer(cfg, run_dir, progress=not args.no_progress)
    save_config(cfg, run_dir / "config.yaml")
    result = trainer.fit()
    train_s = time.time() - t0
    predict_and_evaluate(run_dir, cfg)
    total_s = time.time() - t0
    print(f"\nquickstart: best validation mDice {result['best_val_mDice']:.4f}; "
          f"training {train_s / 60:.1f} min, total {total_s / 60:.1f} min; outputs in {run_dir}")
    return 0
