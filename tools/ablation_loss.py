#!/usr/bin/env python
"""The loss-component ablation (paper Table 4) on the embedded synthetic organs, several seeds.

Trains ``emcad_b2_dsra`` with the DSRA loss and one term switched off through ``train.loss_weights``
(BCE+CE: no Dice; BCE+Dice: no CE; CE+Dice: no background BCE; all three: the official 0.5 / 0.7 / 0.3)
with the multi-class quickstart recipe, the same epochs for every run, the best epoch chosen on the
validation case, the held-out test volumes scored once. Prints the table (mean +- std over seeds) and
writes ``<out>/ablation_loss.json`` and ``<out>/ablation_loss.md``.

    python tools/ablation_loss.py --epochs 15 --seeds 0 1 2 --out runs/ablation_loss
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
    "BCE+CE": "{ce: 0.5, dice: 0, bg_bce: 0.3}",
    "BCE+Dice": "{ce: 0, dice: 0.7, bg_bce: 0.3}",
    "CE+Dice": "{ce: 0.5, dice: 0.7, bg_bce: 0}",
    "BCE+CE+Dice": "{ce: 0.5, dice: 0.7, bg_bce: 0.3}",
}


def run_one(out: Path, variant: str, seed: int, epochs: int, extra) -> dict:
    run_dir = out / f"{variant.replace('+', '_').lower()}-seed{seed}"
    done = run_dir / "test" / "metrics.json"
    if not done.is_file():  # finished runs are reused, so the script can be re-run after a stop
        cmd = [sys.executable, "-m", "jittor_pranet", "train", "--no-progress", "--config", str(CONFIG),
               "--run-dir", str(run_dir), "model.name=emcad_b2_dsra", "train.loss=dsra",
               f"train.loss_weights={VARIANTS[variant]}", f"train.seed={seed}", f"train.epochs={epochs}",
               "train.time_limit_min=null", f"data.synthetic.root={out / 'data'}", *extra]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"error: {variant} seed {seed} failed: {proc.stderr.strip().splitlines()[-1:]}")
        print(f"  {variant}, seed {seed}: {time.time() - t0:.0f} s", file=sys.stderr)
    metrics = json.loads(done.read_text())
    return {"mDice": metrics["mean"]["mDice"], "mIoU": metrics["mean"]["mIoU"],
            "mHD95_vox": metrics["mean"]["mHD95_vox"]}


def table(results: dict, seeds, epochs: int) -> str:
    lines = [f"Loss-component ablation (Table 4) on the synthetic organs: emcad_b2_dsra, {epochs} epochs, "
             f"seeds {list(seeds)}; test means over classes, mean +- std over seeds", "",
             "| loss terms | mDice | mIoU | mHD95 (voxels) |", "|---|---:|---:|---:|"]
    for variant, by_seed in results.items():
        cells = []
        for key in ("mDice", "mIoU", "mHD95_vox"):
            values = np.array([by_seed[s][key] for s in seeds], dtype=np.float64)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.4f} +- {std:.4f}" if key != "mHD95_vox" else f"{values.mean():.2f} +- {std:.2f}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/ablation_loss")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides for every run")
    args = p.parse_args(argv)
    out = Path(args.out)
    results = {v: {s: run_one(out, v, s, args.epochs, args.overrides) for s in args.seeds} for v in VARIANTS}
    text = table(results, args.seeds, args.epochs)
    print(text)
    from jittor_pranet.utils.io import atomic_write_text

    atomic_write_text(out / "ablation_loss.md", text + "\n")
    atomic_write_text(out / "ablation_loss.json", json.dumps({"epochs": args.epochs, "seeds": args.seeds,
                                                             "weights": VARIANTS, "runs": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
