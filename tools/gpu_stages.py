"""Stages of ``tools/gpu_check.sh`` that no CLI command covers; each writes one JSON file.

    python tools/gpu_stages.py env          --json F
    python tools/gpu_stages.py train-parity --device cuda --size 256 --json F
    python tools/gpu_stages.py fp16         --device cuda --size 352 --batch 2 --json F
    python tools/gpu_stages.py train-loss   --run-dir DIR --json F
    python tools/gpu_stages.py summary      --work DIR --out DIR

The training-step parity reuses the helpers of tests/reference/test_train_parity.py (same models, same batch,
same bounds: loss <= 1e-5, every gradient <= 1e-3 of its tensor's max) with Jittor on ``--device``
and the PyTorch reference on the same device.  Each stage exits 0 when it ran and its check holds,
1 when the check fails; a crash is reported by the shell script from the stage's exit code.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _write(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(tmp, path)


def _setup(device: str):
    from jittor_pranet.cli.common import setup_device

    return setup_device(device)


def _torch_device(device: str):
    import torch

    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = False  # parity is about float32; TF32 rounds to 10 bits
        torch.backends.cuda.matmul.allow_tf32 = False
        return torch.device("cuda")
    return torch.device("cpu")


def stage_env(args) -> int:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
           "env": {k: os.environ.get(k) for k in ("JITTOR_PRANET_DEVICE", "NVIDIA_TF32_OVERRIDE",
                                                  "CUDA_VISIBLE_DEVICES", "JITTOR_HOME")}}
    for mod in ("numpy", "torch", "jittor", "cv2", "scipy"):
        try:
            if mod == "jittor":  # through our runtime, never a bare import (it would pick Jittor's defaults)
                from jittor_pranet import runtime

                runtime.configure()
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception as exc:  # report, never stop
            out[mod] = f"NOT IMPORTABLE: {type(exc).__name__}: {exc}"[:300]
    try:
        import torch

        out["torch_cuda"] = torch.cuda.is_available() and {
            "device": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}
    except Exception:
        pass
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        out["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        out["nvidia_smi"] = f"not available: {exc}"
    print(json.dumps(out, indent=1, default=str))
    _write(args.json, out)
    return 0


def stage_train_parity(args) -> int:
    """One train-mode forward + PraNet loss + backward of PraNet-V2/PVT in float32, Jittor vs PyTorch."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    t0 = time.time()
    jt = _setup(args.device)
    import torch

    from jittor_pranet.engine.optim import trainable_named_parameters
    from jittor_pranet.losses import pranet_loss
    from jittor_pranet.reference import torch_train as tt
    from tests.reference.test_train_parity import _batch, _pair, _rel

    tdev = _torch_device(args.device)
    jmodel, tmodel = _pair(args.model, seed=11)
    tmodel.to(tdev)
    x, m = _batch(args.size, seed=1, n=args.batch)
    t_loss = tt.pranet_loss(tmodel(torch.from_numpy(x).to(tdev)), torch.from_numpy(m).to(tdev))
    t_loss.backward()
    named = trainable_named_parameters(jmodel)
    j_loss = pranet_loss(jmodel(jt.array(x)), jt.array(m))
    grads = jt.grad(j_loss, [p for _, p in named])
    jt.sync_all(True)
    t_params = dict(tmodel.named_parameters())
    pairs = []
    for (n, _), g in zip(named, grads):
        tg = t_params[n].grad
        pairs.append((n, g.numpy(), np.zeros(t_params[n].shape, np.float32) if tg is None else tg.cpu().numpy()))
    scale = max(np.abs(t).max() for _, _, t in pairs)
    compared = [(n, j, t) for n, j, t in pairs if np.abs(t).max() >= 1e-6 * scale]
    zero = [(n, j) for n, j, t in pairs if np.abs(t).max() < 1e-6 * scale]
    worst_grad, worst_name = max((_rel(j, t), n) for n, j, t in compared)
    loss_rel = _rel(j_loss.numpy(), t_loss.detach().cpu().numpy())
    zero_worst = max((float(np.abs(j).max()) / scale for _, j in zero), default=0.0)
    ok = bool(loss_rel <= 1e-5 and worst_grad <= 1e-3 and zero_worst < 1e-5)
    out = {"model": args.model, "device": "cuda" if jt.flags.use_cuda else "cpu", "torch_device": str(tdev),
           "size": args.size, "batch": args.batch, "dtype": "float32", "loss_rel": loss_rel, "loss_tol": 1e-5,
           "worst_grad_rel": worst_grad, "worst_grad": worst_name, "grad_tol": 1e-3,
           "gradients_compared": len(compared), "analytically_zero": len(zero), "zero_worst_rel": zero_worst,
           "seconds": round(time.time() - t0, 1), "ok": ok}
    print(json.dumps(out, indent=1, default=str))
    _write(args.json, out)
    return 0 if ok else 1


def stage_fp16(args) -> int:
    """Half-precision inference (``--precision fp16``) against float32 on the same weights and batch."""
    import numpy as np

    t0 = time.time()
    jt = _setup(args.device)
    from jittor_pranet.engine.precision import cast_model
    from jittor_pranet.engine.predictor import Predictor
    from jittor_pranet.models import build_model

    rng = np.random.default_rng(0)
    batch = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    model = build_model(args.model)
    model.eval()
    times = {}
    probs = {}
    for precision in ("fp32", "fp16"):
        if precision == "fp16":
            cast_model(model, "fp16")
        pred = Predictor(model, size=args.size, batch_size=args.batch)
        logits = pred.logits(batch)
        logits.sync()
        jt.sync_all(True)
        t1 = time.time()
        for _ in range(args.repeats):
            logits = pred.logits(batch)
            logits.sync()
        jt.sync_all(True)
        times[precision] = (time.time() - t1) / args.repeats
        probs[precision] = 1.0 / (1.0 + np.exp(-logits.numpy().astype(np.float64)))
    diff = float(np.abs(probs["fp16"] - probs["fp32"]).max())
    ok = bool(np.isfinite(probs["fp16"]).all() and diff <= 1e-2)
    out = {"model": args.model, "device": "cuda" if jt.flags.use_cuda else "cpu", "size": args.size,
           "batch": args.batch, "max_prob_diff_vs_fp32": diff, "tol": 1e-2,
           "seconds_per_batch": times, "fp16_speedup": times["fp32"] / max(times["fp16"], 1e-12),
           "seconds": round(time.time() - t0, 1), "ok": ok}
    print(json.dumps(out, indent=1, default=str))
    _write(args.json, out)
    return 0 if ok else 1


def stage_train_loss(args) -> int:
    """Did the synthetic training's loss fall?  Mean of the first vs the last fifth of ``steps.csv``."""
    path = Path(args.run_dir) / "steps.csv"
    try:
        rows = list(csv.DictReader(open(path)))
    except OSError as exc:
        out = {"ok": False, "error": f"no steps.csv: {exc}"}
        _write(args.json, out)
        print(json.dumps(out))
        return 1
    losses = [float(r["loss"]) for r in rows]
    k = max(1, len(losses) // 5)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    out = {"steps": len(losses), "epochs": int(rows[-1]["epoch"]) if rows else 0,
           "first_fifth_mean_loss": first, "last_fifth_mean_loss": last,
           "train_seconds": sum(float(r["seconds"]) for r in rows), "ok": len(losses) >= 10 and last < 0.9 * first}
    metrics = Path(args.run_dir) / "test_metrics.json"
    if metrics.is_file():
        out["test_metrics"] = json.loads(metrics.read_text())
    print(json.dumps(out, indent=1, default=str))
    _write(args.json, out)
    return 0 if out["ok"] else 1


def _md_table(stages: list) -> str:
    lines = ["| stage | status | seconds | limit | result |", "|---|---|---:|---:|---|"]
    for s in stages:
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds']} | {s['limit']} | {s.get('headline', '')} |")
    return "\n".join(lines)


def _headline(name: str, data: dict) -> str:
    if not data:
        return ""
    if name == "parity":
        parts = []  # {"model/HxW": [row, ...]} as written by `jittor-pranet parity --json`
        for key, rows in data.items():
            worst = max(rows, key=lambda r: r["rel"])
            parts.append(f"{key}: worst {worst['rel']:.1e} ({worst['tensor']}, {len(rows)} tensors)")
        return "; ".join(parts) + " (tol 5e-5)"
    if name == "train_parity":
        return (f"loss {data.get('loss_rel', float('nan')):.1e}, worst grad {data.get('worst_grad_rel', float('nan')):.1e} "
                f"({data.get('worst_grad')})")
    if name == "fp16":
        return (f"max |p16-p32| {data.get('max_prob_diff_vs_fp32', float('nan')):.1e}, "
                f"speed-up {data.get('fp16_speedup', float('nan')):.2f}x")
    if name == "train":
        return (f"loss {data.get('first_fifth_mean_loss', float('nan')):.3f} -> "
                f"{data.get('last_fifth_mean_loss', float('nan')):.3f} in {data.get('steps')} steps")
    if name == "env":
        return f"torch {data.get('torch')}, jittor {data.get('jittor')}, GPU {data.get('nvidia_smi', '')[:60]}"
    return ""


def stage_summary(args) -> int:
    """Merge the stage records (``stages.tsv``: name, rc, seconds, limit) and JSONs into gpu_check.{json,md}."""
    work, out = Path(args.work), Path(args.out)
    stages = []
    for line in (work / "stages.tsv").read_text().splitlines():
        name, rc, secs, limit = line.split("\t")
        rc = int(rc)
        data = None
        for cand in (work / f"{name}.json", out / f"{name}.json"):
            if cand.is_file():
                try:
                    data = json.loads(cand.read_text())
                except ValueError:
                    data = None
                break
        status = "ok" if rc == 0 else ("TIMEOUT" if rc in (124, 137) else f"FAILED (rc {rc})")
        stages.append({"name": name, "rc": rc, "status": status, "seconds": int(secs), "limit": int(limit),
                       "headline": _headline(name, data), "result": data})
    total = sum(s["seconds"] for s in stages)
    summary = {"device": args.device, "total_seconds": total, "all_ok": all(s["rc"] == 0 for s in stages),
               "stages": stages}
    _write(str(out / "gpu_check.json"), summary)
    md = [f"# gpu_check ({args.device}): {'all stages ok' if summary['all_ok'] else 'some stages failed'}, "
          f"{total} s", "", _md_table(stages), ""]
    bench_md = out / "bench.md"
    if bench_md.is_file():
        md += ["## bench", "", bench_md.read_text()]
    (out / "gpu_check.md").write_text("\n".join(md) + "\n")
    print("\n".join(md[:len(stages) + 4]))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    p = sub.add_parser("env")
    p.add_argument("--json", required=True)
    p = sub.add_parser("train-parity")
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="pranet_v2_pvt")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--json", required=True)
    p = sub.add_parser("fp16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="pranet_v2_res2net")
    p.add_argument("--size", type=int, default=352)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", required=True)
    p = sub.add_parser("train-loss")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--json", required=True)
    p = sub.add_parser("summary")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    args = ap.parse_args()
    return {"env": stage_env, "train-parity": stage_train_parity, "fp16": stage_fp16,
            "train-loss": stage_train_loss, "summary": stage_summary}[args.stage](args)


if __name__ == "__main__":
    sys.exit(main())
