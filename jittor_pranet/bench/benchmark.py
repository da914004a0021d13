"""Jittor vs PyTorch throughput benchmark: ``jittor-pranet bench`` and ``tools/benchmark.py``.

What is measured, per model, on one machine in one process, with identical weights:

* inference (eval mode, no grad) at batch 1/8/16 and 352x352 (``--batches``, ``--size``);
* training: one step (forward, PraNet loss, backward, element-wise gradient clipping, Adam) at a
  single scale, and one iteration of the official multi-scale recipe (the batch resized to
  256/352/448 with ``align_corners=True``, one step each);
* the evaluation metrics (:mod:`jittor_pranet.metrics`, used by ``jittor-pranet eval``) against the
  upstream-style evaluation of ``tools/official_eval_baseline.py`` on synthetic maps.

Timing rules (JITTOR_NOTES.md "Timing"): every variant is warmed up on every shape first (Jittor
compiles per shape; its first call is reported separately as *cold start*), each timed call ends
with ``jt.sync_all(True)`` / ``torch.cuda.synchronize()``, and the variants are interleaved --
round after round, in rotating order -- so that the load of a shared machine hits all of them
alike.  Reported: median, min and max of ``--repeats`` rounds, images/s, GFLOP/s (FLOPs counted
with ``torch.utils.flop_counter.FlopCounterMode`` on the PyTorch reference) and its fraction of
the measured 2048x2048 fp32 matmul peak, peak host RSS (``/proc/self/status`` VmHWM, reset per
variant through ``/proc/self/clear_refs``) or device memory, and ``torch / variant`` time ratios
(> 1: faster than PyTorch).

Variants: ``torch`` (the PyTorch reference models), ``jittor_plain`` (the straightforward port:
Jittor's own kernels everywhere), ``jittor`` (the default path, all :mod:`jittor_pranet.kernels`
on), for inference ``jittor_fused`` (:func:`jittor_pranet.fuse.fuse_for_inference`), and
``jittor[feature,...]`` with only some optimisations on (e.g. ``jittor[conv]``, ``jittor[conv,bn]``,
``jittor[conv=nchw]``) to measure what each one buys, side by side in one run.

This module holds the run's configuration (:class:`BenchConfig`) and its order: the environment and
the matmul peak, then per model the inference and training rows (:func:`bench_model`), then the
metrics (:func:`bench_eval`).  How a row is timed is in :mod:`.timing`, what is called in it (the
model variants and their steps) in :mod:`.model_set`, and the derived figures and tables in
:mod:`.report`.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Dict, Optional, Sequence

import numpy as np

from ..models.registry import list_models
from .model_set import INFER_VARIANTS, ModelSet, count_flops, inference_calls, multiclass_train_calls, train_calls
from .report import progress_line, summarise, summarise_record
from .timing import (
    Env,
    Progress,
    cpu_pressure,
    interleave,
    keep_freed_memory,
    measure_matmul_peak,
    ratio,
    release,
    stats,
    warm_up,
)

ALL_MODELS = tuple(list_models("binary"))
SCHEMA = 1


@dataclass
class BenchConfig:
    models: Sequence[str] = ALL_MODELS
    batches: Sequence[int] = (1, 8, 16)
    size: int = 352
    train_batch: int = 8
    train_size: int = 352
    multiscale: Sequence[int] = (256, 352, 448)
    repeats: int = 5
    warmup: int = 1
    device: str = "cpu"
    threads: Optional[int] = None
    keep_freed_memory: bool = True
    variants: Sequence[str] = INFER_VARIANTS
    inference: bool = True
    training: bool = True
    multiscale_training: bool = True
    eval_images: int = 3
    eval_size: Sequence[int] = (1225, 966)
    eval_repeats: int = 3
    seed: int = 0
    quick: bool = False
    command: str = ""

    @classmethod
    def quick_defaults(cls, **over) -> "BenchConfig":
        """A few minutes on a 2-core CPU: one model, batch 1 inference, batch-2 training, 3 rounds."""
        base = dict(models=("pranet_v2_res2net",), batches=(1,), train_batch=2, repeats=3, eval_images=2,
                    eval_repeats=2, quick=True)
        base.update({k: v for k, v in over.items() if v is not None})
        return cls(**base)


def bench_model(env: Env, name: str, cfg: BenchConfig, peak: Optional[float], log: Progress) -> Dict[str, object]:
    """The inference and training rows of one model (``peak``: the matmul peak in GFLOP/s, or None)."""
    rng = np.random.default_rng(cfg.seed)
    ms = ModelSet(env, name, cfg.seed)
    out: Dict[str, object] = {"params_m": ms.params / 1e6, "inference": [], "training": []}
    info, c = ms.info, ms.info.in_channels
    per_image = None
    if ms.tm is not None:
        per_image = count_flops(env, ms.tm, (1, c, cfg.size, cfg.size), train=False, info=info)
    out["gflop_per_image"] = per_image / 1e9 if per_image else None

    if cfg.inference:
        variants = list(cfg.variants)
        for bi, b in enumerate(cfg.batches):
            x = rng.standard_normal((b, c, cfg.size, cfg.size)).astype(np.float32)
            calls = inference_calls(ms, variants, x)
            rec: Dict[str, object] = {"batch": b, "size": cfg.size}
            rec["first_call_s"] = warm_up(calls, cfg.warmup, log, f"{name} inference b{b}")
            rec["times"] = interleave(calls, env, cfg.repeats)
            flop = per_image * b if per_image else None
            rec["gflop_per_call"] = flop / 1e9 if flop else None
            summarise_record(rec, b, flop, peak)
            log("  " + progress_line(f"{name} infer b{b}", rec))
            out["inference"].append(rec)
            del calls
            release(env)

    if cfg.training:
        variants = [v for v in cfg.variants if v != "jittor_fused"]
        modes = [("single", (cfg.train_size,))]
        multiclass = info.task == "multiclass"
        if cfg.multiscale_training and cfg.multiscale and not multiclass:  # the multi-class recipe is single-scale
            modes.append(("multiscale", tuple(cfg.multiscale)))
        b = cfg.train_batch
        x = rng.standard_normal((b, c, cfg.train_size, cfg.train_size)).astype(np.float32)
        if multiclass:
            mk = rng.integers(0, info.default_num_classes, (b, cfg.train_size, cfg.train_size)).astype(np.int32)
        else:
            yy, xx = np.mgrid[:cfg.train_size, :cfg.train_size] / cfg.train_size
            mk = np.stack([((yy - rng.uniform(.3, .7)) ** 2 + (xx - rng.uniform(.3, .7)) ** 2 < rng.uniform(.02, .08))
                           for _ in range(b)])[:, None].astype(np.float32)
        for mode, sizes in modes:
            if multiclass:
                calls = multiclass_train_calls(ms, variants, x, mk)
            else:
                calls = train_calls(ms, variants, x, mk, sizes)
            rec = {"mode": mode, "batch": b, "sizes": list(sizes)}
            rec["first_call_s"] = warm_up(calls, cfg.warmup, log, f"{name} train {mode}")
            rec["times"] = interleave(calls, env, cfg.repeats)
            flop = None
            if ms.tm is not None:
                flop = sum(count_flops(env, ms.tm, (1, c, s, s), train=True, info=info) or 0 for s in sizes) * b or None
            rec["gflop_per_call"] = flop / 1e9 if flop else None
            summarise_record(rec, b * len(sizes), flop, peak)
            log("  " + progress_line(f"{name} train {mode} b{b}", rec))
            out["training"].append(rec)
            del calls
            release(env)
    return out


def _load_eval_baseline():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "tools" / "official_eval_baseline.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_pranet_official_eval_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_eval(cfg: BenchConfig, log: Progress) -> Dict[str, object]:
    """Per-image time of our metrics vs the upstream-style evaluation, interleaved."""
    base = _load_eval_baseline()
    if base is None:
        return {"skipped": "tools/official_eval_baseline.py not found (source checkout needed)"}
    from ..metrics.binary import ImagePair, PolypMetrics

    w, h = int(cfg.eval_size[0]), int(cfg.eval_size[1])
    rng = np.random.default_rng(cfg.seed)
    pairs = [base.synthetic_pair(rng, w, h) for _ in range(max(1, cfg.eval_images))]
    metrics = PolypMetrics()

    def ours():
        for p, g in pairs:
            metrics.compute(ImagePair(p, g))

    def reference():
        for p, g in pairs:
            base.baseline_image(p, g)

    ours()  # warm-up
    reference()
    times = {"ours": [], "baseline": []}
    for r in range(max(1, cfg.eval_repeats)):
        for name, f in ((("ours", ours), ("baseline", reference)) if r % 2 == 0 else
                        (("baseline", reference), ("ours", ours))):
            t = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - t) / len(pairs) * 1000.0)
    rec = {"images": len(pairs), "size": [w, h], "ms_per_image": {k: stats(v) for k, v in times.items()},
           "reference": "tools/official_eval_baseline.py (upstream eval cost structure)"}
    rec["speedup"] = ratio(rec["ms_per_image"]["baseline"]["median"], rec["ms_per_image"]["ours"]["median"])
    log(f"  eval: ours {rec['ms_per_image']['ours']['median']:.1f} ms/img, baseline "
        f"{rec['ms_per_image']['baseline']['median']:.1f} ms/img, speed-up {rec['speedup']:.1f}x")
    return rec


def run_benchmark(cfg: BenchConfig, progress: Optional[IO[str]] = None) -> Dict[str, object]:
    """Progress lines go to ``progress`` (default: the ``sys.stderr`` of the moment of the call)."""
    log = Progress(progress if progress is not None else sys.stderr)
    malloc_kept = keep_freed_memory() if cfg.keep_freed_memory and cfg.device == "cpu" else False
    env = Env(cfg.device, cfg.threads)
    try:
        return _run(env, cfg, log, malloc_kept)
    finally:
        env.close()


def _run(env: Env, cfg: BenchConfig, log: Progress, malloc_kept: bool) -> Dict[str, object]:
    started = time.time()
    pressure0 = cpu_pressure()
    result: Dict[str, object] = {"schema": SCHEMA, "config": asdict(cfg),
                                 "env": dict(env.info(), malloc_keeps_freed_memory=malloc_kept),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))}
    if env.torch is None:
        result["env"]["note"] = "PyTorch not available on this device: Jittor only, no ratios"
    log(f"bench: device {env.device}, jittor {env.jt.__version__}, torch {result['env']['torch']}, "
        f"threads torch={result['env']['torch_threads']} jittor-oneDNN={result['env']['jittor_onednn_threads']}")
    peak = measure_matmul_peak(env)
    result["matmul_peak"] = peak
    log(f"  matmul 2048^2 fp32: jittor {peak.get('jittor_gflops') or 0:.1f} GFLOP/s, "
        f"torch {peak.get('torch_gflops') or 0:.1f} GFLOP/s")
    result["models"] = {}
    for name in cfg.models:
        log(f"model {name}")
        result["models"][name] = bench_model(env, name, cfg, peak.get("peak_gflops"), log)
    if cfg.eval_images > 0:
        result["eval"] = bench_eval(cfg, log)
    result["summary"] = summarise(result)
    result["elapsed_s"] = time.time() - started
    result["env"]["cpu_pressure_some_avg10"] = {"start": pressure0, "end": cpu_pressure()}
    return result
