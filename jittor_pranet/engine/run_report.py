"""Run provenance and reports over several runs (seeds): mean +- std of every test metric per class.

``config.yaml`` of a run starts with comment lines naming the package version, its git commit and the
seed, so the run can be traced without changing the config that ``--resume`` reads back. The report
reads each run's ``test/metrics.json`` (written by ``train`` after training, or by ``test``).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from jittor_pranet.errors import UserError

METRICS = ("Dice", "IoU", "HD95_vox", "HD95_mm")
#: the checkpoints of a run that ``train`` scores on the test volumes (test/ and test_last/)
CHECKPOINTS = ("best", "last")


def package_commit() -> str:
    """The git commit of the installed package source (``+dirty`` with local changes), or ``unknown``."""
    source = Path(__file__).resolve().parent.parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def provenance_header(cfg: Dict[str, Any]) -> str:
    from jittor_pranet import __version__

    seed = (cfg.get("train") or {}).get("seed")
    return (f"# jittor_pranet {__version__}, commit {package_commit()}\n"
            f"# seed {seed} (train.seed)\n")


def save_run_config(cfg: Dict[str, Any], path: Path) -> None:
    """The resolved config, atomically, below the provenance comment lines."""
    from jittor_pranet.config import dump_yaml
    from jittor_pranet.utils.io import atomic_write_text

    atomic_write_text(path, provenance_header(cfg) + dump_yaml(cfg))


def read_provenance(config_path: Path) -> Dict[str, Optional[str]]:
    commit = seed = None
    if config_path.is_file():
        for line in config_path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            if ", commit " in line:
                commit = line.split(", commit ", 1)[1].strip()
            elif line.startswith("# seed "):
                seed = line[len("# seed "):].split()[0]
    return {"commit": commit, "seed": seed}


def _metrics_file(run: Path, checkpoint: str = "best") -> Path:
    """The metrics.json of ``checkpoint`` (best / last) in a run folder: where ``test_checkpoints.json``
    says (after training), else ``test/`` (best) or ``test_last/`` (last); a ``test --out`` folder's own
    metrics.json for ``best``."""
    folders = {"best": ["test"], "last": ["test_last"]}[checkpoint]
    index = run / "test_checkpoints.json"
    if index.is_file():
        try:
            written = json.loads(index.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UserError(f"{index}: not valid JSON ({exc})") from None
        entry = written.get(checkpoint) if isinstance(written, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("folder"), str):
            folders = [entry["folder"]]
        elif checkpoint == "best" and isinstance(written, dict) and "last" in written:
            raise UserError(f"{run}: has no best.pkl scores (trained without validation volumes: only last.pkl "
                            "was scored); use --checkpoint last")
    candidates = [run / f / "metrics.json" for f in folders] + ([run / "metrics.json"] if checkpoint == "best" else [])
    for candidate in candidates:
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise UserError(f"{candidate}: not valid JSON ({exc})") from None
            if isinstance(data, dict) and "per_class" in data:
                return candidate
    where = "test/metrics.json" if checkpoint == "best" else "test_last/metrics.json"
    raise UserError(f"{run}: no {where} with per-class scores (train with output.predict_test=true, "
                    f"or run test --out <run>/{where.split('/')[0]})")


def collect_runs(runs: Sequence[Path], checkpoint: str = "best") -> Tuple[List[str], List[Dict[str, Any]]]:
    """Class names and one record per run (the per-class test metrics of its ``checkpoint``, best or
    last, and its provenance); runs must agree on classes."""
    if checkpoint not in CHECKPOINTS:
        raise UserError(f"checkpoint must be {' or '.join(CHECKPOINTS)}, got {checkpoint!r}")
    if not runs:
        raise UserError("give at least one run folder")
    classes: Optional[List[str]] = None
    records = []
    for run in runs:
        run = Path(run)
        if not run.is_dir():
            raise UserError(f"run folder not found: {run}")
        path = _metrics_file(run, checkpoint)
        data = json.loads(path.read_text(encoding="utf-8"))
        names = list(data["per_class"])
        if classes is None:
            classes = names
        elif names != classes:
            raise UserError(f"{path}: classes {names} differ from the first run's {classes}")
        records.append({"run": str(run), "checkpoint": checkpoint, "per_class": data["per_class"],
                        **read_provenance(run / "config.yaml")})
    return classes, records


def _stats(values: List[Optional[float]]) -> Tuple[Optional[float], Optional[float], int]:
    kept = np.array([v for v in values if v is not None], dtype=np.float64)
    if kept.size == 0:
        return None, None, 0
    return float(kept.mean()), float(kept.std(ddof=1)) if kept.size > 1 else 0.0, int(kept.size)


def summarise(classes: List[str], records: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """{class or 'mean': {metric: {mean, std, n}}}; the 'mean' row averages each run's class mean first."""
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for name in classes:
        out[name] = {}
        for m in METRICS:
            mean, std, n = _stats([r["per_class"][name].get(m) for r in records])
            out[name][m] = {"mean": mean, "std": std, "n": n}
    out["mean"] = {}
    for m in METRICS:
        per_run = []
        for r in records:
            vals = [r["per_class"][c].get(m) for c in classes]
            per_run.append(None if any(v is None for v in vals) else float(np.mean(vals)))
        mean, std, n = _stats(per_run)
        out["mean"][m] = {"mean": mean, "std": std, "n": n}
    return out


def markdown(summary: Dict[str, Dict[str, Dict[str, Any]]], records: List[Dict[str, Any]]) -> str:
    def cell(s, digits):
        return "n/a" if s["mean"] is None else f"{s['mean']:.{digits}f} +- {s['std']:.{digits}f}"

    seeds = ", ".join(str(r["seed"]) for r in records)
    commits = sorted({str(r["commit"]) for r in records})
    which = sorted({str(r.get("checkpoint", "best")) for r in records})
    lines = [f"{len(records)} runs (seeds {seeds}; commit {', '.join(commits)}; checkpoint {', '.join(which)}); "
             "mean +- std over runs", "",
             "| class | Dice | IoU | HD95 (voxels) | HD95 (mm) |", "|---|---:|---:|---:|---:|"]
    for name, row in summary.items():
        label = "**mean**" if name == "mean" else name
        lines.append(f"| {label} | {cell(row['Dice'], 4)} | {cell(row['IoU'], 4)} | "
                     f"{cell(row['HD95_vox'], 2)} | {cell(row['HD95_mm'], 2)} |")
    return "\n".join(lines)


def plot_runs(classes: List[str], records: List[Dict[str, Any]], path: Path) -> Path:
    """Test Dice of each class (and the class mean) against the run number, written atomically."""
    from jittor_pranet.utils.plot import line_chart

    xs = list(range(1, len(records) + 1))
    series = {name: (xs, [r["per_class"][name].get("Dice") or 0.0 for r in records]) for name in classes}
    series["mean"] = (xs, [float(np.mean([r["per_class"][c].get("Dice") or 0.0 for c in classes])) for r in records])
    return line_chart(path, series, title="test Dice per run", xlabel="run (in the order given)", ylabel="Dice",
                      ylim=(0.0, 1.0))


__all__ = ["collect_runs", "markdown", "package_commit", "plot_runs", "provenance_header", "save_run_config",
           "summarise"]
