"""The multi-class side of ``train``, ``test`` and ``quickstart`` (volumes scored per class).

Not a subcommand of its own: ``train`` dispatches here for ``task: multiclass`` configs (EMCAD
models, ``num_classes > 1``), ``test`` for multi-class checkpoints and ``quickstart --task
multiclass`` for the embedded synthetic organs.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import UserError

PACKAGED_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "quickstart_multiclass.yaml"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def test_data(root, cfg: Optional[Dict[str, Any]], log=_stderr):
    """The dataset under ``root`` read with the class names / label remap a run was trained with."""
    from ..data.multiclass_layouts import load_multiclass_data

    d = (cfg or {}).get("data") or {}
    data = load_multiclass_data(root, class_names=d.get("class_names"), label_remap=d.get("label_remap") or "auto",
                                val_fraction=0.0, palette=d.get("palette"), channels=int(d.get("channels") or 1))
    log(f"data: {data.summary()}")
    return data


def print_table(result, title: str) -> None:
    print(f"\n{title}\n{result.markdown_table()}")
    print("HD95 (voxels): no voxel spacing, as the official tables; HD95 (mm): with each volume's spacing "
          "(n/a when a volume has none)")
    sys.stdout.flush()


def test_after_training(run_dir: Path, cfg: Dict[str, Any], progress: bool = True):
    """Score the test volumes (``data.test``, else the training root's test split) with best.pkl."""
    from ..engine.multiclass import checkpoint_path, evaluate_checkpoint

    root = cfg["data"].get("test") or cfg["data"]["train"]
    data = test_data(root, cfg)
    if not data.test_volumes:
        _stderr(f"no test volumes in {root}: nothing to evaluate")
        return None
    ckpt = checkpoint_path(run_dir)
    result, _, _ = evaluate_checkpoint(ckpt, data, run_dir / "test", size=int(cfg["data"]["test_size"]
                                                                              or cfg["data"]["train_size"]),
                                       progress=progress)
    print_table(result, f"test volumes ({ckpt.name}, {len(data.test_volumes)} volumes from {root}):")
    _stderr(f"wrote {run_dir / 'test'}/per_class.md, per_class.csv, metrics.json, overlays/")
    return result


def run_test(args, loaded, spec, size: int) -> int:
    """``test --checkpoint X --data ROOT --out DIR`` for a multi-class checkpoint."""
    from ..engine.inference import prepare_output_folder
    from ..engine.multiclass import evaluate_checkpoint
    from .common import setup_device

    meta_cfg = loaded.meta.get("config") if isinstance(loaded.meta, dict) else None
    data = test_data(args.data, meta_cfg)
    if spec.num_classes != data.num_classes:
        raise UserError(f"{args.checkpoint}: the model has {spec.num_classes} classes, {args.data} has "
                        f"{data.num_classes} (background + {', '.join(data.class_names)})")
    if not data.test_volumes:
        raise UserError(f"{args.data}: no test volumes found ({data.summary()})")
    if args.size is None and spec.test_size is None:  # no recorded training size (an official .pth)
        from ..models import EMCAD_FACTS

        size = EMCAD_FACTS.get(spec.name, {}).get("default_size", 224)  # the official multi-class size
        _stderr(f"input size {size} (the official multi-class training size; --size to change)")
    out = Path(args.out) if args.out else Path("results") / Path(args.checkpoint).name.split(".")[0]
    prepare_output_folder(out)
    setup_device(args.device)
    result, spec, size = evaluate_checkpoint(args.checkpoint, data, out, size=size, batch_size=args.batch_size,
                                             progress=not args.no_progress)
    print_table(result, f"{spec.describe()} at {size}x{size} on {len(data.test_volumes)} test volumes of {args.data}:")
    _stderr(f"wrote {out}/per_class.md, per_class.csv, metrics.json, overlays/")
    return 0


def run_quickstart(args) -> int:
    """Synthetic organs -> EMCAD + DSRA (PVTv2-b0) on CPU -> per-class table of the held-out volumes."""
    from ..config import load_config, save_config
    from ..engine.multiclass import MultiClassTrainer
    from .common import setup_device
    from .train import make_run_dir

    setup_device(args.device)
    t0 = time.time()
    cfg = load_config(str(PACKAGED_CONFIG), args.overrides)
    run_dir = make_run_dir(cfg, args.run_dir or "runs/quickstart_multiclass")
    trainer = MultiClassTrainer(cfg, run_dir, progress=not args.no_progress)
    save_config(cfg, run_dir / "config.yaml")
    result = trainer.fit()
    train_s = time.time() - t0
    test_after_training(run_dir, cfg, progress=not args.no_progress)
    total_s = time.time() - t0
    print(f"\nquickstart (multiclass): best validation mean Dice {result['best_val_mDice']:.4f}; "
          f"training {train_s / 60:.1f} min, total {total_s / 60:.1f} min; outputs in {run_dir}")
    return 0
