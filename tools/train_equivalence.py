#!/usr/bin/env python
"""Does the Jittor trainer train as well as the official PyTorch training loop?  Seeds, not steps.

For one recipe, trains N seeds with each side on the same data, split and batch sequence, for the
same number of optimiser steps, then scores both with one evaluator and asks whether the difference
of the mean test metrics is within seed-to-seed noise:

* **Jittor**: the project's trainer (``engine.trainer.Trainer`` / ``engine.multiclass.MultiClassTrainer``,
  built from a resolved config exactly as ``jittor-pranet train`` builds it), initial weights drawn by
  the model's official initialisation (``models/weight_init.py``) from ``train.seed``;
* **PyTorch**: the project's PyTorch twin of the model (``reference.twins.build_twin``, initialised by
  its constructors as the official classes are) trained by ``reference.torch_official_train``, which
  follows the official training script step for step, initial weights from ``torch.manual_seed(seed)``.

The PyTorch side iterates a copy of the Jittor trainer's batch loader (same dataset object, seed and
batch size), and every batch's fingerprint is compared between the sides: the data check in the
report says whether the two saw identical batches.  There is no validation split and no model
selection: the final weights after exactly ``--steps`` batches are scored on the test split (binary:
mDice / mIoU by the official polyp protocol; multi-class: per-class and mean Dice / IoU per volume).

The statistics (``jittor_pranet.evaluation.equivalence``): per metric, mean +- std over seeds for
each side, the difference of means (Jittor - PyTorch) with a 95% Welch t interval, and a verdict,
"within seed noise" when the interval contains 0 or |diff| < ``--margin``, else "different".  The
overall verdict uses the mean metrics (mDice, mIoU); per-class rows are informative (with several
classes at 95% each, one of them excluding 0 by chance is likely).

    python tools/train_equivalence.py --recipe pranet_v2 --steps 100 --seeds 3 --out runs/eq/pranet_v2.md
    python tools/train_equivalence.py --recipe emcad_dsra --steps 100 --seeds 3 --out runs/eq/emcad_dsra.md
    python tools/train_equivalence.py --recipe pranet_v2 --data data/Polyp --steps 500   # a real dataset

Budgets: ``--steps`` counts optimiser batches as ``train.max_steps`` does; PraNet's multi-scale recipe
makes one update per scale and batch (3 per step).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from jittor_pranet.errors import UserError  # noqa: E402
from jittor_pranet.evaluation.equivalence import WITHIN, compare_runs, overall_verdict  # noqa: E402

SIDES = ("jittor", "pytorch")
SIDE_NAMES = {"jittor": "Jittor (project trainer)", "pytorch": "PyTorch (official loop, twin)"}


@dataclass(frozen=True)
class Recipe:
    """A training recipe both sides run; sizes are CPU-sized defaults, the rest is the official recipe."""

    model: str
    task: str                      # binary | multiclass
    optimizer: str                 # adam (PraNet) | adamw (EMCAD)
    lr: float
    weight_decay: float
    clip: Optional[float]          # per-element gradient clamp (PraNet: 0.5), None: none
    multi_scale: Tuple[float, ...]
    size: int
    batch_size: int
    lr_decay_rate: float
    lr_decay_every: int
    synthetic_root: str
    synthetic: Dict[str, Any] = field(default_factory=dict)
    note: str = ""


RECIPES: Dict[str, Recipe] = {
    "pranet_v2": Recipe(
        "pranet_v2_pvt", "binary", "adam", 3e-4, 0.0, 0.5, (0.75, 1.0, 1.25), 128, 8, 0.1, 50,
        "data/synthetic", {"n_train": 400, "n_test": 100, "seed": 0},
        "PraNet-V2 (DSRA), structure + background loss, Adam, clamp 0.5, one update per scale "
        "{0.75, 1, 1.25}; lr 3e-4 (the quickstart's from-scratch value; official 1e-4 with ImageNet weights)"),
    "emcad": Recipe(
        "emcad_b2", "multiclass", "adamw", 1e-3, 1e-4, None, (1.0,), 128, 8, 1.0, 50,
        "data/synthetic_organs", {"seed": 0, "train_cases": 8, "test_cases": 4, "size": 128, "depth": 16},
        "EMCAD-B2, mutation supervision (all 15 output subsets, 0.3 CE + 0.7 Dice), AdamW wd 1e-4, constant lr; "
        "lr 1e-3 (the multi-class quickstart's from-scratch value; official 1e-4)"),
    "emcad_dsra": Recipe(
        "emcad_b2_dsra", "multiclass", "adamw", 1e-3, 1e-4, None, (1.0,), 128, 8, 1.0, 50,
        "data/synthetic_organs", {"seed": 0, "train_cases": 8, "test_cases": 4, "size": 128, "depth": 16},
        "EMCAD-B2 + DSRA, mutation supervision (0.5 CE + 0.7 Dice + 0.3 background BCE), AdamW wd 1e-4, "
        "constant lr; lr 1e-3 (the multi-class quickstart's from-scratch value; official 1e-4)"),
}
PRIMARY = ("mDice", "mIoU")
LOSS_KEY = "final_loss"


# ------------------------------------------------------------------------------------------ settings
@dataclass
class Settings:
    recipe: str
    model: str
    task: str
    encoder: str
    size: int
    batch_size: int
    steps: int
    updates_per_step: int
    seeds: List[int]
    lr: float
    optimizer: str
    weight_decay: float
    clip: Optional[float]
    multi_scale: List[float]
    drop_path_rate: float
    margin: float
    confidence: float
    workers: int
    torch_threads: Optional[int]
    data: str
    test: Optional[str]
    synthetic: Optional[Dict[str, Any]]


def _parse_synthetic(items: Sequence[str]) -> Dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--synthetic takes KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def build_settings(args: argparse.Namespace) -> Tuple[Settings, Recipe]:
    recipe = RECIPES[args.recipe]
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.seeds < 2:
        raise UserError(f"--seeds must be >= 2 (a confidence interval needs two seeds per side), got {args.seeds}")
    size = args.size or recipe.size
    if size % 32 or size < 32:
        raise UserError(f"--size must be a multiple of 32 (>= 32), got {size}")
    if args.data and args.synthetic:
        raise UserError("--synthetic describes the generated dataset; it cannot be combined with --data")
    if args.test and recipe.task != "binary":
        raise UserError("--test is for binary recipes; a multi-class --data root holds its own test volumes")
    synthetic = None if args.data else {**recipe.synthetic, **_parse_synthetic(args.synthetic or [])}
    multi_scale = [1.0] if args.single_scale else list(recipe.multi_scale)
    settings = Settings(
        recipe=args.recipe, model=recipe.model, task=recipe.task, encoder=args.encoder, size=size,
        batch_size=args.batch_size or recipe.batch_size, steps=args.steps, updates_per_step=len(multi_scale),
        seeds=list(range(args.first_seed, args.first_seed + args.seeds)), lr=args.lr or recipe.lr,
        optimizer=recipe.optimizer, weight_decay=recipe.weight_decay, clip=recipe.clip, multi_scale=multi_scale,
        drop_path_rate=args.drop_path, margin=args.margin, confidence=args.confidence, workers=args.workers,
        torch_threads=args.torch_threads,
        data=str(args.data or args.synthetic_root or recipe.synthetic_root), test=args.test, synthetic=synthetic)
    return settings, recipe


# ------------------------------------------------------------------------------------------ data
@dataclass
class Data:
    """Where each side reads: the training root for the Jittor config, and the test split."""

    train: str
    test_sets: Dict[str, List[Tuple[Path, Path]]]  # binary: set name -> (image, mask) pairs
    description: str


def prepare_data(s: Settings) -> Data:
    if s.task == "binary":
        return _binary_data(s)
    root = Path(s.data)
    if s.synthetic is not None:
        from jittor_pranet.data.synthetic_organs import make_synthetic_organs

        try:
            make_synthetic_organs(root, **s.synthetic)
        except TypeError as exc:
            raise UserError(f"--synthetic: {exc}") from None
        return Data(str(root), {}, f"synthetic organs in {root} ({_kv(s.synthetic)})")
    if not root.is_dir():
        raise UserError(f"--data {root}: folder not found")
    return Data(str(root), {}, f"{root} (its test volumes)")


def _binary_data(s: Settings) -> Data:
    from jittor_pranet.data import find_test_sets, make_synthetic_polyps
    from jittor_pranet.data.datasets import check_pairs, pair_by_stem

    root = Path(s.data)
    if s.synthetic is None and not root.is_dir():
        raise UserError(f"--data {root}: folder not found")
    if s.synthetic is not None:
        try:
            root = make_synthetic_polyps(root, **s.synthetic)
        except TypeError as exc:
            raise UserError(f"--synthetic: {exc}") from None
        desc = f"synthetic polyps in {root} ({_kv(s.synthetic)})"
    else:
        desc = str(root)
    if (root / "TrainDataset").is_dir():
        train, test = root / "TrainDataset", Path(s.test) if s.test else root / "TestDataset"
    else:
        if not s.test:
            raise UserError(f"--data {root} has no TrainDataset/: pass the test split with --test DIR")
        train, test = root, Path(s.test)
    sets = {}
    for name, (img_dir, mask_dir) in find_test_sets(test).items():
        pairs = check_pairs(pair_by_stem(img_dir, mask_dir).pairs, on_mismatch="drop")
        if pairs:
            sets[name] = pairs
    if not sets:
        raise UserError(f"{test}: no image/mask pairs to test on")
    return Data(str(train), sets, f"{desc}; train {train}, test {test} ({', '.join(sets)})")


def _kv(d: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def metric_names(s: Settings, data: Data, class_names: Sequence[str] = ()) -> Tuple[List[str], List[str]]:
    """(primary metrics, informative metrics) of the report."""
    if s.task == "binary":
        if len(data.test_sets) == 1:
            return list(PRIMARY), [LOSS_KEY]
        return [f"{n} {m}" for n in data.test_sets for m in PRIMARY], [LOSS_KEY]
    return list(PRIMARY), [f"Dice[{c}]" for c in class_names] + [LOSS_KEY]


# ------------------------------------------------------------------------------------------ runs
def batch_fingerprint(images: np.ndarray, masks: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=8)
    for a in (images, masks):
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def final_loss(batch_losses: Sequence[float]) -> float:
    """Mean training loss over the last 10% of the steps (at least one)."""
    k = max(1, int(math.ceil(0.1 * len(batch_losses))))
    return float(np.mean(batch_losses[-k:]))


def jittor_config(s: Settings, recipe: Recipe, data: Data, seed: int) -> Dict[str, Any]:
    from jittor_pranet.config import load_config, validate

    cfg = load_config(None)
    cfg["task"] = s.task
    cfg["model"].update(name=s.model, encoder=s.encoder, num_classes=1, drop_path_rate=s.drop_path_rate)
    cfg["data"].update(train=data.train, test=None, synthetic=None, train_size=s.size, val_fraction=0.0,
                       num_workers=s.workers, augment=False)
    cfg["train"].update(optimizer=s.optimizer, lr=s.lr, weight_decay=s.weight_decay, clip=s.clip,
                        multi_scale=list(s.multi_scale), lr_decay_rate=recipe.lr_decay_rate,
                        lr_decay_every=recipe.lr_decay_every, batch_size=s.batch_size, seed=seed,
                        max_steps=s.steps, epochs=1, time_limit_min=None, checkpoint_every=0)
    validate(cfg)
    return cfg


def _recording(base):
    """The trainer class with each batch fingerprinted and a progress bar; training itself unchanged."""

    class Recording(base):
        def train_batch(self, images, masks):
            self.fingerprints.append(batch_fingerprint(images, masks))
            losses = super().train_batch(images, masks)
            self.recorded_losses.append(float(np.mean(list(losses.values()))))
            if self.bar is not None:
                self.bar.update(1)
            return losses

    Recording.__name__ = f"Recording{base.__name__}"
    return Recording


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr, dynamic_ncols=True)


def run_jittor(s: Settings, recipe: Recipe, data: Data, seed: int, run_dir: Path,
               progress: bool) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Train with the project's trainer; returns the run record and what the PyTorch side reuses (a copy
    of the batch loader, the multi-class data and class count)."""
    from jittor_pranet.engine.multiclass import MultiClassTrainer
    from jittor_pranet.engine.trainer import Trainer
    from jittor_pranet.ops import jt

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    log_file = open(run_dir / "trainer.log", "w")

    def log(*parts, **_kw):
        print(*parts, file=log_file, flush=True)

    base = Trainer if s.task == "binary" else MultiClassTrainer
    cfg = jittor_config(s, recipe, data, seed)
    try:
        trainer = _recording(base)(cfg, run_dir, progress=False, log=log)
        trainer.fingerprints, trainer.recorded_losses = [], []
        trainer.cfg["train"]["epochs"] = int(math.ceil(s.steps / len(trainer.loader)))
        loader = _clone_loader(trainer.loader)
        trainer.bar = _bar(s.steps, f"jittor  seed {seed}", progress)
        t0 = time.time()
        try:
            trainer.fit()
        finally:
            if trainer.bar is not None:
                trainer.bar.close()
        train_s = time.time() - t0
        t0 = time.time()
        metrics, class_names = _score_jittor(s, data, trainer)
    finally:
        log_file.close()
    record = {"side": "jittor", "seed": seed, "metrics": metrics, "steps": trainer.step,
              "batch_losses": trainer.recorded_losses, "fingerprints": trainer.fingerprints,
              "train_s": train_s, "eval_s": time.time() - t0}
    record["metrics"][LOSS_KEY] = final_loss(trainer.recorded_losses)
    context = {"loader": loader, "class_names": class_names,
               "data": getattr(trainer, "data", None), "num_classes": int(trainer.cfg["model"]["num_classes"])}
    del trainer
    jt.gc()
    return record, context


def _score_jittor(s: Settings, data: Data, trainer) -> Tuple[Dict[str, float], List[str]]:
    from jittor_pranet.engine.multiclass import logits_function
    from jittor_pranet.models import prediction_logits
    from jittor_pranet.models.registry import model_info
    from jittor_pranet.ops import jt

    model, rule = trainer.model, model_info(s.model).prediction_rule
    model.eval()
    if s.task != "binary":
        return score_volumes(s, trainer.data, logits_function(model, s.model, rule))

    def predict(x: np.ndarray) -> np.ndarray:
        with jt.no_grad():
            return prediction_logits(model, model(jt.array(x)), rule).numpy()

    return score_binary(s, data, predict), []


def _clone_loader(loader):
    """A fresh loader over the same dataset object with the same order (seed, batch size, workers)."""
    from jittor_pranet.data import BatchLoader

    return BatchLoader(loader.dataset, loader.batch_size, shuffle=loader.shuffle, seed=loader.seed,
                       num_workers=loader.num_workers, drop_last=loader.drop_last)


def run_torch(s: Settings, recipe: Recipe, data: Data, seed: int, context: Dict[str, Any],
              progress: bool) -> Dict[str, Any]:
    """Train the twin with the official loop on the Jittor run's batch sequence."""
    try:
        import torch
    except ImportError:
        raise UserError("the PyTorch side needs torch (pip install torch, or the package's torch extra)") from None
    from jittor_pranet.engine.multiclass import as_model_input
    from jittor_pranet.models.catalog import combine_outputs
    from jittor_pranet.models.registry import model_info
    from jittor_pranet.reference.torch_official_train import OfficialEMCADTrainer, OfficialPraNetTrainer
    from jittor_pranet.reference.twins import build_twin

    info = model_info(s.model)
    if s.torch_threads:
        torch.set_num_threads(s.torch_threads)
    torch.manual_seed(seed)
    num_classes = 1 if s.task == "binary" else context["num_classes"]
    twin = build_twin(s.model, num_classes=num_classes, encoder=s.encoder, drop_path_rate=s.drop_path_rate)
    if s.task == "binary":
        trainer = OfficialPraNetTrainer(twin, lr=s.lr, clip=s.clip, trainsize=s.size, size_rates=s.multi_scale,
                                        decay_rate=recipe.lr_decay_rate, decay_epoch=recipe.lr_decay_every)
    else:
        trainer = OfficialEMCADTrainer(twin, num_classes=num_classes, dual=info.dual, lr=s.lr,
                                       weight_decay=s.weight_decay)
    loader = context["loader"]
    fingerprints, batch_losses = [], []
    bar = _bar(s.steps, f"pytorch seed {seed}", progress)
    t0 = time.time()
    epoch = 0
    try:
        while len(batch_losses) < s.steps:
            loader.set_epoch(epoch)
            if s.task == "binary":
                trainer.adjust_lr(epoch + 1)  # the official loop counts epochs from 1
            for batch in loader:
                images, masks = batch["image"], batch["mask"]
                fingerprints.append(batch_fingerprint(images, masks))
                losses = trainer.train_batch(as_model_input(images, s.model), masks)
                value = float(np.mean(list(losses.values())))
                if not math.isfinite(value):
                    raise UserError(f"pytorch seed {seed}: the loss became {value} at step {len(batch_losses) + 1}")
                batch_losses.append(value)
                if bar is not None:
                    bar.update(1)
                if len(batch_losses) >= s.steps:
                    break
            epoch += 1
    finally:
        if bar is not None:
            bar.close()
    train_s = time.time() - t0
    t0 = time.time()
    twin.eval()
    rule = info.prediction_rule

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return combine_outputs(rule, twin(torch.from_numpy(as_model_input(x, s.model)))).numpy()

    if s.task == "binary":
        metrics = score_binary(s, data, predict)
    else:
        metrics, _ = score_volumes(s, context["data"], predict)
    metrics[LOSS_KEY] = final_loss(batch_losses)
    return {"side": "pytorch", "seed": seed, "metrics": metrics, "steps": len(batch_losses),
            "batch_losses": batch_losses, "fingerprints": fingerprints, "train_s": train_s,
            "eval_s": time.time() - t0}


# ------------------------------------------------------------------------------------------ the evaluator
def score_binary(s: Settings, data: Data, predict: Callable[[np.ndarray], np.ndarray]) -> Dict[str, float]:
    from jittor_pranet.evaluation.equivalence import score_binary_pairs

    out = {}
    for name, pairs in data.test_sets.items():
        scores = score_binary_pairs(pairs, predict, s.size)
        for k, v in scores.items():
            out[k if len(data.test_sets) == 1 else f"{name} {k}"] = v
    return out


def score_volumes(s: Settings, mc_data, predict) -> Tuple[Dict[str, float], List[str]]:
    from jittor_pranet.evaluation.volumes import evaluate_volumes

    if not mc_data.test_volumes:
        raise UserError(f"{mc_data.root}: no test volumes to score")
    result = evaluate_volumes(mc_data.iter_volumes("test"), predict, mc_data.class_names, s.size, progress=False,
                              total=len(mc_data.test_volumes), compute_hd95=False)
    means = result.means()
    metrics = {"mDice": means["mDice"], "mIoU": means["mIoU"]}
    for name, row in result.per_class().items():
        metrics[f"Dice[{name}]"] = row["Dice"]
    return metrics, list(mc_data.class_names)


# ------------------------------------------------------------------------------------------ report
def summarise(s: Settings, runs: List[Dict[str, Any]], primary: List[str], informative: List[str]) -> Dict[str, Any]:
    by_side = {side: sorted((r for r in runs if r["side"] == side), key=lambda r: r["seed"]) for side in SIDES}
    metrics_a = [r["metrics"] for r in by_side["jittor"]]
    metrics_b = [r["metrics"] for r in by_side["pytorch"]]
    comps = compare_runs(metrics_a, metrics_b, primary + informative, s.margin, s.confidence)
    verdict, differ = overall_verdict(comps, primary)
    same_batches = all(a["fingerprints"] == b["fingerprints"] for a, b in zip(by_side["jittor"], by_side["pytorch"]))
    return {"comparison": {k: c.to_dict() for k, c in comps.items()}, "verdict": verdict, "differ": differ,
            "primary": primary, "informative": informative, "identical_batches": same_batches}


def _fmt(x: Optional[float], digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def render_markdown(report: Dict[str, Any]) -> str:
    s, summary = report["settings"], report["summary"]
    metrics = summary["primary"] + summary["informative"]
    lines = [f"# Training equivalence: {s['recipe']} ({s['model']}, {s['encoder']})", "",
             f"- date: {report['date']}; commit: {report['commit']}; {report['host']}",
             f"- command: `{report['command']}`",
             f"- recipe: {report['recipe_note']}",
             f"- budget: {s['steps']} steps x batch {s['batch_size']} ({s['steps'] * s['updates_per_step']} optimiser "
             f"updates; sizes {report['sizes']}), seeds {s['seeds']} on each side; drop path {s['drop_path_rate']}",
             f"- data: {report['data']}",
             f"- Jittor: {SIDE_NAMES['jittor']}; PyTorch: {SIDE_NAMES['pytorch']}; each side starts from its own "
             "framework's initial weights (official initialisation) drawn from the seed",
             f"- identical batch sequence on both sides: {'yes' if summary['identical_batches'] else 'NO'}",
             "", "## Per seed", "",
             "| side | seed | " + " | ".join(metrics) + " | train s |",
             "|---|---:|" + "---:|" * (len(metrics) + 1)]
    for r in sorted(report["runs"], key=lambda r: (SIDES.index(r["side"]), r["seed"])):
        lines.append(f"| {r['side']} | {r['seed']} | " + " | ".join(_fmt(r["metrics"][m]) for m in metrics)
                     + f" | {r['train_s']:.0f} |")
    conf = f"{s['confidence']:.0%}"
    lines += ["", "## Summary", "",
              f"Mean +- std (sample std over seeds); diff = Jittor - PyTorch with its {conf} Welch interval; "
              f"equivalence margin {s['margin']:g}. Rows in italics are informative (not in the verdict).", "",
              f"| metric | Jittor | PyTorch | diff | {conf} CI | verdict |", "|---|---:|---:|---:|---|---|"]
    for m in metrics:
        c = summary["comparison"][m]
        iv = c["interval"]
        name = m if m in summary["primary"] else f"*{m}*"
        lines.append(f"| {name} | {c['mean_a']:.4f} +- {c['std_a']:.4f} | {c['mean_b']:.4f} +- {c['std_b']:.4f} | "
                     f"{iv['diff']:+.4f} | [{iv['low']:+.4f}, {iv['high']:+.4f}] | {c['verdict']} |")
    differ = f" ({', '.join(summary['differ'])} differ)" if summary["differ"] else ""
    lines += ["", f"**Verdict: {summary['verdict']}**{differ} (on {', '.join(summary['primary'])}).", ""]
    return "\n".join(lines)


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head + ("+changes" if dirty else "")) if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_report(report: Dict[str, Any], out: Path, json_path: Path) -> None:
    from jittor_pranet.utils.io import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path, json.dumps(report, indent=1) + "\n")
    if "summary" in report:
        atomic_write_text(out, render_markdown(report))


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    p.add_argument("--steps", type=int, default=50, help="optimiser batches per run (default 50)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per side (default 3; at least 2)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1")
    p.add_argument("--encoder", default="pvt_v2_b0", help="encoder of both models (default pvt_v2_b0)")
    p.add_argument("--size", type=int, help="training and test size (default: the recipe's, 128)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the recipe's, 8)")
    p.add_argument("--lr", type=float, help="learning rate (default: the recipe's)")
    p.add_argument("--single-scale", action="store_true", help="PraNet: one update per batch at --size")
    p.add_argument("--drop-path", type=float, default=0.1, help="encoder drop-path rate, both sides (default 0.1)")
    p.add_argument("--data", help="a real dataset instead of the synthetic one: binary: a folder with TrainDataset/ "
                                  "and TestDataset/ (or a training split with --test); multi-class: a dataset root")
    p.add_argument("--test", help="binary: the test split (a TestDataset tree or one set)")
    p.add_argument("--synthetic-root", help="where the synthetic dataset is generated or reused "
                                            "(default: the quickstart's data/synthetic or data/synthetic_organs)")
    p.add_argument("--synthetic", nargs="*", metavar="KEY=VALUE",
                   help="generator arguments, e.g. n_train=40 n_test=10 (polyps) or train_cases=2 size=64 (organs)")
    p.add_argument("--margin", type=float, default=0.01,
                   help="equivalence margin: |diff| below it is within noise even if the CI excludes 0 (default 0.01)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--workers", type=int, default=0, help="batch-loader threads (default 0)")
    p.add_argument("--torch-threads", type=int,
                   help="PyTorch intra-op threads (default: PyTorch's). On a machine whose cores are busy with "
                        "other work use 1: measured on a loaded 2-core machine, one PraNet-V2/b0 step took 5 s "
                        "with 1 thread and 30-55 s with 2")
    p.add_argument("--out", help="markdown report (default runs/train_equivalence/<recipe>.md)")
    p.add_argument("--json", help="JSON report (default: --out with .json)")
    p.add_argument("--work", help="run folders (default: next to --out, <stem>_runs/)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def run(args: argparse.Namespace, argv: Sequence[str]) -> Dict[str, Any]:
    from jittor_pranet.config import scale_sizes

    s, recipe = build_settings(args)
    out = Path(args.out or f"runs/train_equivalence/{s.recipe}.md")
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    work = Path(args.work) if args.work else out.with_name(out.stem + "_runs")
    progress = not args.no_progress
    data = prepare_data(s)
    report: Dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(),
        "host": f"{os.cpu_count()} CPUs", "command": "python tools/train_equivalence.py " + shlex.join(argv),
        "recipe_note": recipe.note, "settings": asdict(s), "data": data.description,
        "sizes": scale_sizes(s.size, s.multi_scale), "runs": []}
    from tqdm import tqdm

    outer = tqdm(total=2 * len(s.seeds), desc=f"{s.recipe} runs", unit="run", file=sys.stderr,
                 disable=not progress, dynamic_ncols=True)
    class_names: List[str] = []
    try:
        for seed in s.seeds:
            record, context = run_jittor(s, recipe, data, seed, work / f"jittor-seed{seed}", progress)
            report["runs"].append(record)
            outer.update(1)
            class_names = context["class_names"]
            report["runs"].append(run_torch(s, recipe, data, seed, context, progress))
            outer.update(1)
            write_report(report, out, json_path)  # partial results survive a stop
    finally:
        outer.close()
    primary, informative = metric_names(s, data, class_names)
    report["summary"] = summarise(s, report["runs"], primary, informative)
    write_report(report, out, json_path)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        report = run(args, argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (the partial JSON report holds the finished runs)", file=sys.stderr)
        return 130
    summary = report["summary"]
    print(render_markdown(report).split("## Summary", 1)[1].strip())
    if not summary["identical_batches"]:
        print("warning: the two sides did not see identical batches", file=sys.stderr)
    out = Path(args.out or f"runs/train_equivalence/{args.recipe}.md")
    print(f"wrote {out} and {Path(args.json) if args.json else out.with_suffix('.json')}", file=sys.stderr)
    return 0 if summary["verdict"] == WITHIN else 1


if __name__ == "__main__":
    sys.exit(main())
