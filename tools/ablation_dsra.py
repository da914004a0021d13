#!/usr/bin/env python
"""DSRA vs no DSRA on the embedded synthetic organs: same data, same budget, several seeds.

Trains ``emcad_b2_dsra`` (DSRA loss: fg/bg heads, 0.5 CE + 0.7 Dice + 0.3 background BCE) and
``emcad_b2`` (0.3 CE + 0.7 Dice) with the multi-class quickstart recipe (PVTv2-b0, 128 px, AdamW)
for the same number of epochs (no time limit, so both get exactly the same number of updates),
picks each run's best epoch on its validation case and scores the held-out test volumes once.
Prints per-seed test mean Dice and mean +- std per variant, and writes ``<out>/ablation.json``.

    python tools/ablation_dsra.py --epochs 15 --seeds 0 1 2 --out runs/ablation_dsra
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "jittor_pranet" / "configs" / "quickstart_multiclass.yaml"
VARIANTS = {
    "DSRA (emcad_b2_dsra)": ["model.name=emcad_b2_dsra", "train.loss=dsra"],
    "no DSRA (emcad_b2)": ["model.name=emcad_b2", "train.loss=baseline"],
}


def run_one(out: Path, variant: str, seed: int, epochs: int, extra) -> dict:
    run_dir = out / f"{variant.split()[0].lower()}-seed{seed}"
    done = run_dir / "test" / "metrics.json"
    if not done.is_file():  # finished runs are reused, so the script can be re-run after a stop
        cmd = [sys.executable, "-m", "jittor_pranet", "train", "--no-progress", "--config", str(CONFIG),
               "--run-dir", str(run_dir), *VARIANTS[variant], f"train.seed={seed}", f"train.epochs={epochs}",
               "train.time_limit_min=null", f"data.synthetic.root={out / 'data'}", *extra]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"error: {variant} seed {seed} failed:\n{proc.stderr[-2000:]}")
        print(f"  {variant}, seed {seed}: {time.time() - t0:.0f} s", file=sys.stderr)
    metrics = json.loads(done.read_text())
    history = json.loads((run_dir / "metrics.json").read_text())
    return {"test_mDice": metrics["mean"]["mDice"], "test_mHD95_vox": metrics["mean"]["mHD95_vox"],
            "per_class_dice": {k: v["Dice"] for k, v in metrics["per_class"].items()},
            "best_val_mDice": max(r.get("val_mDice", -1.0) for r in history), "epochs": history[-1]["epoch"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/ablation_dsra")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides for every run")
    args = p.parse_args(argv)
    out = Path(args.out)
    results = {v: {} for v in VARIANTS}
    for seed in args.seeds:
        for variant in VARIANTS:
            results[variant][seed] = run_one(out, variant, seed, args.epochs, args.overrides)
    lines = [f"DSRA ablation on the synthetic organs: {args.epochs} epochs, seeds {args.seeds}, test mean Dice "
             "(5 organs, 4 held-out volumes; best epoch chosen on the validation case)", "",
             "| variant | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean +- std | mean HD95 (voxels) |",
             "|---|" + "---:|" * (len(args.seeds) + 2)]
    summary = {}
    for variant, by_seed in results.items():
        dice = np.array([by_seed[s]["test_mDice"] for s in args.seeds])
        hd = np.array([by_seed[s]["test_mHD95_vox"] for s in args.seeds])
        std = dice.std(ddof=1) if len(dice) > 1 else 0.0
        summary[variant] = {"mean": float(dice.mean()), "std": float(std), "hd95_vox_mean": float(hd.mean())}
        lines.append(f"| {variant} | " + " | ".join(f"{d:.4f}" for d in dice)
                     + f" | {dice.mean():.4f} +- {std:.4f} | {hd.mean():.2f} |")
    print("\n".join(lines))
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps({"epochs": args.epochs, "seeds": args.seeds, "runs": results,
                                                   "summary": summary}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
