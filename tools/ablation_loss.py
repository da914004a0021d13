#!/usr/bin/env python
"""The loss-component ablation (paper Table 4) on the embedded synthetic organs, several seeds.

Trains ``emcad_b2_dsra`` with the DSRA loss and one term switched off through ``train.loss_weights``
(BCE+CE: no Dice; BCE+Dice: no CE; CE+Dice: no background BCE; all three: the official 0.5 / 0.7 / 0.3)
with the multi-class quickstart recipe, the same epochs for every run, the best epoch chosen on the
validation case, the held-out test volumes scored once per checkpoint (best.pkl for the table, last.pkl
beside it). Prints the table (mean +- std over seeds) and writes ``<out>/ablation_loss.json`` and
``<out>/ablation_loss.md``, with the package commit and seed each run recorded in its ``config.yaml``
(checked against the seed asked for), the date and the machine's load average.

    python tools/ablation_loss.py --epochs 15 --seeds 0 1 2 --out runs/ablation_loss
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
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
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)  # this tree's package, not an installed one
        if proc.returncode != 0:
            sys.exit(f"error: {variant} seed {seed} failed: {proc.stderr.strip().splitlines()[-1:]}")
        print(f"  {variant}, seed {seed}: {time.time() - t0:.0f} s", file=sys.stderr)
    metrics = json.loads(done.read_text())
    from jittor_pranet.config import load_config
    from jittor_pranet.engine.run_report import read_provenance

    saved = load_config(str(run_dir / "config.yaml"))["train"]
    if int(saved["epochs"]) != epochs or saved["loss_weights"] != load_config(
            None, ["task=multiclass", f"train.loss_weights={VARIANTS[variant]}"])["train"]["loss_weights"]:
        sys.exit(f"error: {run_dir} was trained with {saved['epochs']} epochs and loss weights {saved['loss_weights']}, "
                 f"not {epochs} and {VARIANTS[variant]}; use another --out")

    recorded = read_provenance(run_dir / "config.yaml")
    if recorded["seed"] != str(seed) or not recorded["commit"]:
        sys.exit(f"error: {run_dir}/config.yaml records seed {recorded['seed']} and commit {recorded['commit']}; "
                 f"expected seed {seed} and a commit")
    last = run_dir / "test_last" / "metrics.json"
    return {"mDice": metrics["mean"]["mDice"], "mIoU": metrics["mean"]["mIoU"],
            "mHD95_vox": metrics["mean"]["mHD95_vox"],
            "last_mDice": json.loads(last.read_text())["mean"]["mDice"] if last.is_file() else None,
            "commit": recorded["commit"], "seed": seed}


def table(results: dict, seeds, epochs: int) -> str:
    commits = sorted({by_seed[s]["commit"] for by_seed in results.values() for s in seeds})
    lines = [f"Loss-component ablation (Table 4) on the synthetic organs: emcad_b2_dsra, {epochs} epochs, "
             f"seeds {list(seeds)}, commit {', '.join(commits)}; test means over classes of best.pkl (chosen on "
             "validation), mean +- std over seeds; last.pkl's mDice beside it", "",
             "| loss terms | mDice | mIoU | mHD95 (voxels) | mDice per seed | last.pkl mDice |",
             "|---|---:|---:|---:|---|---:|"]
    for variant, by_seed in results.items():
        cells = []
        for key in ("mDice", "mIoU", "mHD95_vox", "last_mDice"):
            if any(by_seed[s][key] is None for s in seeds):
                cells.append("n/a")
                continue
            values = np.array([by_seed[s][key] for s in seeds], dtype=np.float64)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.4f} +- {std:.4f}" if key != "mHD95_vox" else f"{values.mean():.2f} +- {std:.2f}")
        per_seed = " / ".join(f"{by_seed[s]['mDice']:.4f}" for s in seeds)
        lines.append(f"| {variant} | " + " | ".join(cells[:3]) + f" | {per_seed} | {cells[3]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/ablation_loss")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides for every run")
    args = p.parse_args(argv)
    out = Path(args.out)
    started, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    t0 = time.time()
    results = {v: {s: run_one(out, v, s, args.epochs, args.overrides) for s in args.seeds} for v in VARIANTS}
    machine = (f"{platform.node() or 'machine'}, {os.cpu_count()} CPUs, load average {load_start[0]:.1f} at the start "
               f"and {os.getloadavg()[0]:.1f} at the end")
    text = table(results, args.seeds, args.epochs) + (
        f"\n\nRun {started}, {(time.time() - t0) / 60:.1f} min (runs finished earlier are reused); {machine}; "
        f"command: python tools/ablation_loss.py --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}"
        + (" " + " ".join(args.overrides) if args.overrides else ""))
    print(text)
    from jittor_pranet.utils.io import atomic_write_text

    atomic_write_text(out / "ablation_loss.md", text + "\n")
    atomic_write_text(out / "ablation_loss.json", json.dumps({"epochs": args.epochs, "seeds": args.seeds,
                                                             "weights": VARIANTS, "runs": results,
                                                             "started": started, "machine": machine,
                                                             "overrides": args.overrides}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
