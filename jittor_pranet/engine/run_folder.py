"""The run folder of a training run: where it goes, refusing to reuse one, and the test-set evaluation
written into it after training. Shared by ``train`` and ``quickstart``."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import UserError
from ..utils.io import can_create_in

RUN_RECORDS = ("config.yaml", "last.pkl", "best.pkl", "metrics.csv", "metrics.json", "steps.csv", "curves.png",
               "test_metrics.json", "test_metrics.md", "test_metrics_last.json", "test_metrics_last.md",
               "test_checkpoints.json")
#: folders of test-set outputs written after training (binary maps; multi-class tables of best / last)
RUN_FOLDERS = ("predictions", "predictions_last", "test", "test_last")


def _is_main_rank() -> bool:
    return os.environ.get("OMPI_COMM_WORLD_RANK", "0") == "0"


def plan_run_dir(cfg, run_dir=None, overwrite: bool = False) -> Path:
    """Decide the run folder and refuse to reuse one, before anything is created.

    An existing non-empty folder is refused unless ``overwrite`` (then it must look like a run folder,
    so that a mistyped ``--run-dir`` never deletes a user's files); ``output.name`` stays inside
    ``output.dir`` (checked by the config)."""
    if run_dir:
        path = Path(run_dir)
    else:
        name = cfg["output"]["name"] or f"{cfg['model']['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = Path(cfg["output"]["dir"]) / name
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder")
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not can_create_in(ancestor):
        raise UserError(f"{path}: the run folder cannot be created ({ancestor} is not a writable folder)")
    if path.is_dir() and any(path.iterdir()) and _is_main_rank():
        if not overwrite:
            raise UserError(f"{path}: a run folder that is not empty; continue it with --resume {path}, "
                            "start afresh with --overwrite, or choose another output.name / --run-dir")
        if not (path / "config.yaml").is_file():
            raise UserError(f"{path}: --overwrite only replaces a run folder (one with a config.yaml); "
                            "this folder holds other files")
    return path


def make_run_dir(path: Path, overwrite: bool = False) -> Path:
    """Create the run folder (after the config, data and model were checked); with ``overwrite``,
    delete the previous run's records so that nothing of it is mixed into the new one."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot create the run folder ({exc.strerror})") from None
    probe = path / f".write_test-{os.getpid()}"  # one per process: mpirun ranks probe the same folder
    try:
        probe.write_text("")
        probe.unlink()
    except OSError:
        raise UserError(f"{path}: the run folder is not writable") from None
    if overwrite and _is_main_rank():
        import shutil

        for name in RUN_RECORDS:
            (path / name).unlink(missing_ok=True)
        for sub in RUN_FOLDERS:
            shutil.rmtree(path / sub, ignore_errors=True)
    return path


def predict_and_evaluate(run_dir: Path, cfg) -> dict:
    """Predict every test set with both checkpoints of the run and write the metrics tables: best.pkl
    (chosen on validation images only) into ``predictions/`` + ``test_metrics.{json,md}``, last.pkl (the
    final epoch) into ``predictions_last/`` + ``test_metrics_last.{json,md}``; without validation images
    there is only last.pkl, written as the first. Returns the metrics of the first (best.pkl)."""
    import json

    from ..utils.io import Unfinished, atomic_write_many
    from .testsets import predict_test_sets

    plan = [("best.pkl", "predictions", "test_metrics"), ("last.pkl", "predictions_last", "test_metrics_last")]
    if not (run_dir / "best.pkl").is_file():
        print("no best.pkl (no validation images): scoring last.pkl only")
        plan = [("last.pkl", "predictions", "test_metrics")]
    first = None
    for name, folder, stem in plan:
        with Unfinished(run_dir / folder):  # an interrupted prediction leaves no partial maps
            report = predict_test_sets(run_dir / name, cfg["data"]["test"], run_dir / folder,
                                       size=int(cfg["data"]["test_size"] or cfg["data"]["train_size"]))
            table = report.markdown_table()
            role = "best on validation" if name == "best.pkl" else "final epoch"
            print(f"\ntest-set metrics ({name}, {role}):\n{table}")
            atomic_write_many({run_dir / f"{stem}.json": report.to_json().encode(),
                               run_dir / f"{stem}.md": (table + "\n").encode()})
        first = first if first is not None else json.loads(report.to_json())
    return first
