"""CPU speed of EMCAD-B2(+DSRA) in Jittor vs the PyTorch reference, side by side in one process.

Usage: ``python tools/bench_emcad.py [--model emcad_b2_dsra] [--threads 2] [--size 224]
[--infer-batch 1] [--train-batch 2] [--classes 9] [--repeats 5] [--json OUT]``

Both frameworks hold the same random weights and get the same grayscale batch.  Inference: eval mode,
no gradient.  Training step: train mode, forward, the official multi-class loss (DSRA: 15 subsets of
fg/bg sums, 0.5 CE + 0.7 Dice + 0.3 BCE; else 0.3 CE + 0.7 Dice), backward, AdamW (lr 1e-4, weight
decay 1e-4, the official optimiser).  Variants: ``torch``, ``jittor`` (the default fast path of
``build_model``) and ``jittor_plain`` (Jittor's own kernels).  Every variant is warmed up on its
shapes first and the timed rounds are interleaved (``jittor_pranet.benchmark``'s rules); reported:
median seconds and ``torch / variant`` (> 1: faster than PyTorch).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="emcad_b2_dsra", choices=("emcad_b2", "emcad_b2_dsra"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=9)
    ap.add_argument("--infer-batch", type=int, default=1)
    ap.add_argument("--train-batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", default="torch,jittor,jittor_plain")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-infer", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jittor_pranet.bench.benchmark import _Env, _interleave

    env = _Env("cpu", args.threads)
    jt, torch = env.jt, env.torch
    from jittor_pranet import checkpoint as ck
    from jittor_pranet.kernels import flags
    from jittor_pranet.losses_multiclass import multiclass_seg_loss
    from jittor_pranet.models import build_model
    from jittor_pranet.models.registry import model_info
    from jittor_pranet.reference import torch_emcad as te
    from jittor_pranet.reference import torch_models as tm

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    nc, size = args.classes, args.size
    tmodel = tm.randomize_(te.build_torch_emcad(args.model, nc, drop_path_rate=0.0), 0)
    state = tm.state_dict_numpy(tmodel)
    dual = model_info(args.model).dual
    t_loss_fn = te.multiclass_dsra_loss if dual else te.multiclass_loss

    def jittor_model(variant):
        m = build_model(args.model, num_classes=nc, drop_path_rate=0.0)  # layers read the kernel flags per call
        ck.load_state_dict(m, state)
        return m

    def scoped(variant):
        return flags.disabled() if variant == "jittor_plain" else _Null()

    rng = np.random.default_rng(0)
    result = {"model": args.model, "threads": args.threads, "size": size, "classes": nc, "env": env.info()}

    if not args.skip_infer:
        x = rng.standard_normal((args.infer_batch, 1, size, size)).astype(np.float32)
        calls = {}
        for v in variants:
            if v == "torch":
                tmodel.eval()
                tx = torch.from_numpy(x)

                def call(tx=tx):
                    with torch.no_grad():
                        tmodel(tx)
            else:
                m = jittor_model(v)
                m.eval()
                jx = jt.array(x)

                def call(m=m, jx=jx, v=v):
                    with scoped(v), jt.no_grad():
                        jt.sync(list(m(jx)))
                    env.jsync()
            calls[v] = call
        for c in calls.values():
            c()
            c()
        result["inference"] = _interleave(calls, env, args.repeats, sample_mem=False)
        _report(f"inference, batch {args.infer_batch}, {size}px", result["inference"])

    if not args.skip_train:
        xb = rng.standard_normal((args.train_batch, 1, size, size)).astype(np.float32)
        lab = rng.integers(0, nc, (args.train_batch, size, size)).astype(np.int32)
        calls = {}
        for v in variants:
            if v == "torch":
                tmodel.train()
                opt = torch.optim.AdamW(tmodel.parameters(), lr=1e-4, weight_decay=1e-4)
                tx, tl = torch.from_numpy(xb), torch.from_numpy(lab).long()

                def call(opt=opt, tx=tx, tl=tl):
                    opt.zero_grad()
                    t_loss_fn(tmodel(tx), tl, nc).backward()
                    opt.step()
            else:
                from jittor_pranet.engine.optim import trainable_parameters

                m = jittor_model(v)
                m.train()
                opt = jt.optim.AdamW(trainable_parameters(m), lr=1e-4, weight_decay=1e-4)
                jx, jl = jt.array(xb), jt.array(lab)

                def call(m=m, opt=opt, jx=jx, jl=jl, v=v):
                    with scoped(v):
                        opt.step(multiclass_seg_loss(m(jx), jl, dual=dual))
                    env.jsync()
            calls[v] = call
        for c in calls.values():
            c()
            c()
        result["training"] = _interleave(calls, env, args.repeats, sample_mem=False)
        _report(f"training step, batch {args.train_batch}, {size}px", result["training"])
    env.close()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _report(title, times) -> None:
    base = times.get("torch", {}).get("median")
    print(f"{title}:")
    for v, t in times.items():
        ratio = f"  torch/{v} = {base / t['median']:.2f}x" if base and v != "torch" else ""
        print(f"  {v:13s} median {t['median']:.3f} s (min {t['min']:.3f}, max {t['max']:.3f}){ratio}")


if __name__ == "__main__":
    sys.exit(main())
