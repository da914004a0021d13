#!/usr/bin/env python
"""Where a Jittor step spends its time: oneDNN primitives (from ONEDNN_VERBOSE) and Jittor's own ops.

Runs one model for a few warm-up steps, then one measured step, and prints

* the oneDNN primitives of that step grouped by kind (convolution forward/backward, reorder, ...)
  with call counts and summed execution time (oneDNN's own timer), and
* Jittor's profiler table (``jt.profiler``) grouped by op type, for forward and backward separately.

This is the measurement behind the analysis in docs/benchmarks.md.  Run it with one thread for
numbers that a shared machine does not distort, e.g.::

    OMP_NUM_THREADS=1 python tools/onednn_breakdown.py --model pranet_v2_res2net --train --batch 2
    OMP_NUM_THREADS=1 python tools/onednn_breakdown.py --model pranet_v2_res2net --train --batch 2 --plain

``--plain`` runs Jittor's own kernels (the straightforward port), the default the fast path.
The script re-executes itself with ONEDNN_VERBOSE=1 to capture the primitive log.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MARK = "=====MEASURED-STEP====="


def child(args) -> None:
    import numpy as np

    import jittor_pranet  # noqa: F401
    from jittor_pranet.engine.optim import TorchAdam, trainable_parameters
    from jittor_pranet.fuse import fuse_for_inference
    from jittor_pranet.kernels import flags
    from jittor_pranet.losses import pranet_loss
    from jittor_pranet.models import build_model
    from jittor_pranet.ops import jt

    m = build_model(args.model)
    if args.plain:
        flags.set_enabled(False)
    rng = np.random.default_rng(0)
    x = jt.array(rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32))
    y = jt.array((rng.random((args.batch, 1, args.size, args.size)) > 0.5).astype(np.float32))
    if args.train:
        m.train()
        opt = TorchAdam(trainable_parameters(m), lr=1e-4, clip_value=0.5)
    else:
        m.eval()
        if not args.plain and not args.no_fuse:
            m = fuse_for_inference(m)  # what `bench` times

    def step(profile: bool = False):
        prof = {}
        t0 = time.perf_counter()
        if profile:
            jt.profiler.start(0, 0)
        if args.train:
            loss = pranet_loss(m(x), y)
            loss.sync()
            jt.sync_all(True)
        else:
            with jt.no_grad():
                outs = m(x)
                jt.sync(list(outs))
                jt.sync_all(True)
        if profile:
            jt.profiler.stop()
            prof["forward"] = jt.profiler.report()
        t1 = time.perf_counter()
        if args.train:
            if profile:
                jt.profiler.start(0, 0)
            grads = opt.compute_grads(loss)
            jt.sync(grads)
            jt.sync_all(True)
            if profile:
                jt.profiler.stop()
                prof["backward"] = jt.profiler.report()
            opt.apply(grads)
            jt.sync_all(True)
        return t1 - t0, time.perf_counter() - t1, prof

    for _ in range(args.warmup):
        step()
    print(MARK, flush=True)
    fwd, rest, _ = step()
    print(json.dumps({"forward_s": fwd, "backward_and_update_s": rest}), flush=True)
    print(MARK, flush=True)
    _, _, prof = step(profile=True)
    print("PROFILE " + json.dumps(prof), flush=True)


def _op_kind(name: str) -> str:
    keys = re.findall(r"opkey\d+:(\w+)", name)
    if not keys:
        return name.split("«")[0] or "?"
    kinds = [k for k in keys if k not in ("array", "broadcast_to")] or keys
    return "fused(" + ",".join(dict.fromkeys(kinds)) + ")"


def summarise(text: str) -> None:
    parts = text.split(MARK)
    if len(parts) < 3:
        print(text[-4000:])
        raise SystemExit("child run failed")
    step_log, prof_log = parts[1], parts[2]
    agg = collections.defaultdict(lambda: [0.0, 0])
    timing = None
    for line in step_log.splitlines():
        if line.startswith("{"):
            timing = json.loads(line)
        if not line.startswith("onednn_verbose") or ",exec," not in line:
            continue
        f = line.split(",")
        try:
            ms = float(f[-1])
        except ValueError:
            continue
        kind = f[3]
        key = (kind, f[5] if kind != "reorder" else "", f[4].split(":")[0])
        agg[key][0] += ms
        agg[key][1] += 1
    print(f"measured step: {json.dumps(timing)}")
    total = sum(v[0] for v in agg.values())
    print(f"\noneDNN primitives in the step (oneDNN's timer): {total / 1e3:.3f} s")
    print(f"{'kind':14s} {'propagation':18s} {'impl':14s} {'calls':>6s} {'seconds':>8s}")
    for (kind, prop, impl), (ms, n) in sorted(agg.items(), key=lambda kv: -kv[1][0]):
        print(f"{kind:14s} {prop:18s} {impl:14s} {n:6d} {ms / 1e3:8.3f}")
    for line in prof_log.splitlines():
        if line.startswith("PROFILE "):
            prof = json.loads(line[8:])
            for phase, rep in prof.items():
                rows = rep[1:]
                by = collections.defaultdict(lambda: [0.0, 0])
                for r in rows:
                    k = _op_kind(r[0])
                    by[k][0] += float(r[3]) / 1e9
                    by[k][1] += int(r[2])
                tot = sum(v[0] for v in by.values())
                print(f"\nJittor profiler, {phase} (profiled run, {tot:.3f} s in ops):")
                for k, (s, n) in sorted(by.items(), key=lambda kv: -kv[1][0])[:15]:
                    print(f"  {s:7.3f} s {n:6d}x  {k[:100]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="pranet_v2_res2net")
    ap.add_argument("--size", type=int, default=352)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--train", action="store_true", help="a training step (default: inference)")
    ap.add_argument("--plain", action="store_true", help="Jittor's own kernels (jittor_pranet.kernels off)")
    ap.add_argument("--no-fuse", action="store_true", help="inference without BatchNorm folding")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    cmd = [sys.executable, __file__, "--child"] + [a for a in (argv if argv is not None else sys.argv[1:])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return proc.returncode
    summarise(proc.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
