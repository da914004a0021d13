"""``jittor-pranet train``: the official recipe from a YAML config, crash-safe and resumable."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .common import add_device_arg


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model from a YAML config (key=value overrides)",
        description="Train PraNet-V1/V2 with the official recipe (Adam 1e-4, multi-scale 0.75/1/1.25, "
                    "gradient clamp 0.5, structure loss). Outputs go to one run folder: the resolved config, "
                    "last.pkl (resumable), best.pkl (best validation mDice), metrics.csv/json, curves.png. "
                    "Multi-class configs (task: multiclass; EMCAD models) train on slices with AdamW and pick "
                    "best.pkl by the validation volumes' mean Dice, e.g. configs/emcad_b2_dsra_synapse.yaml.",
        epilog="example: jittor-pranet train --config configs/pranet_v2_res2net.yaml train.epochs=5 "
               "data.train=data/TrainDataset model.backbone_weights=weights/res2net50_v1b_26w_4s-3cf99910.pth")
    p.add_argument("--config", help="YAML config (defaults: the official recipe for pranet_v2_res2net)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=5")
    p.add_argument("--run-dir", help="run folder (default: <output.dir>/<output.name or model-timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pkl")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an existing run folder, deleting its checkpoints and records "
                        "(without it an existing run folder is refused: use --resume to continue it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..engine.run_folder import make_run_dir, plan_run_dir, predict_and_evaluate
    from .common import setup_device

    setup_device(args.device)
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise UserError(f"{run_dir}: not a run folder (no config.yaml)")
        cfg = load_config(str(saved), args.overrides)
        if args.overwrite:
            raise UserError("--overwrite starts a new run; it cannot be combined with --resume")
    else:
        cfg = load_config(args.config, args.overrides)
        run_dir = plan_run_dir(cfg, args.run_dir, overwrite=args.overwrite)
    from ..config import resolved_task
    from ..engine.trainer import Trainer, is_main_process

    multiclass = resolved_task(cfg) == "multiclass"
    if multiclass:
        from ..engine.multiclass import MultiClassTrainer as Trainer  # noqa: F811
    import contextlib

    from ..utils.io import Unfinished

    # A run stopped before its first last.pkl (a bad slice met in epoch 1, Ctrl-C, SIGTERM) leaves
    # nothing behind; once last.pkl exists the folder is a resumable run and is kept as it is.
    # Only the main process writes, so only it cleans up.
    guard = Unfinished(run_dir, keep=("last.pkl",)) if is_main_process() else contextlib.nullcontext()
    with guard:
        return _train(args, cfg, run_dir, Trainer, multiclass, make_run_dir, predict_and_evaluate)


def _train(args, cfg, run_dir: Path, Trainer, multiclass: bool, make_run_dir, predict_and_evaluate) -> int:
    from ..engine.trainer import is_main_process

    trainer = Trainer(cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress,
                      prepare_run_dir=None if args.resume else (lambda: make_run_dir(run_dir, args.overwrite)))
    if is_main_process():
        from ..engine.run_report import save_run_config

        save_run_config(cfg, run_dir / "config.yaml")  # with version, commit and seed
        print(f"run folder: {run_dir}")
    result = trainer.fit()
    if is_main_process():
        best = result["best_val_mDice"]
        selected = (f"best validation mDice {best:.4f}" if best is not None else
                    "no validation images (data.val_fraction leaves none): best.pkl not written, use last.pkl")
        print(f"done: {result['epochs']} epochs, {result['steps']} steps, {selected}; checkpoints in {run_dir}")
        if multiclass and cfg["output"]["predict_test"]:
            from ..engine.multiclass import test_after_training

            test_after_training(run_dir, cfg, progress=not args.no_progress)
        elif cfg["output"]["predict_test"] and cfg["data"].get("test"):
            predict_and_evaluate(run_dir, cfg)
        for line in result.get("warnings", ()):
            print(line)  # repeated last, where it is seen
    return 0
