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
"""
from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..models.registry import list_models, model_info

ALL_MODELS = tuple(list_models("binary"))
INFER_VARIANTS = ("torch", "jittor_plain", "jittor", "jittor_fused")
TRAIN_VARIANTS = ("torch", "jittor_plain", "jittor")
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


# ------------------------------------------------------------------------------------------ utils
def _stats(samples: Sequence[float]) -> Dict[str, object]:
    return {"median": float(statistics.median(samples)), "min": float(min(samples)), "max": float(max(samples)),
            "samples": [float(s) for s in samples]}


def _ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    if num is None or den is None or den <= 0 or not math.isfinite(num) or not math.isfinite(den):
        return None
    return float(num / den)


def _read_status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_pressure() -> Optional[float]:
    """``some avg10`` of /proc/pressure/cpu: % of time runnable tasks waited for a CPU (shared machines)."""
    try:
        with open("/proc/pressure/cpu") as f:
            first = f.readline().split()
        return float(first[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class _Progress:
    def __init__(self, stream=None):
        self.stream = stream

    def __call__(self, msg: str) -> None:
        if self.stream is not None:
            print(msg, file=self.stream, flush=True)


# ------------------------------------------------------------------------------------- frameworks
class _Env:
    """Imports and device handling for both frameworks."""

    def __init__(self, device: str, threads: Optional[int]):
        from ..cli.common import setup_device

        if threads and "jittor" not in sys.modules:
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # only effective before the first import
        self.jt = setup_device(device)
        self.device = "cuda" if self.jt.flags.use_cuda else "cpu"
        from .. import kernels

        self.kernels = kernels
        self._restore = []
        if threads and self.device == "cpu":
            prev = kernels.get_num_threads()
            kernels.set_num_threads(threads)
            self._restore.append(lambda: kernels.set_num_threads(prev))
        try:
            import torch

            self.torch = torch
        except ImportError:
            self.torch = None
        if self.torch is not None:
            if threads:
                prev_t = self.torch.get_num_threads()
                self.torch.set_num_threads(threads)
                self._restore.append(lambda: self.torch.set_num_threads(prev_t))
            if self.device == "cuda" and not self.torch.cuda.is_available():
                self.torch = None  # no fair comparison possible
        self.tdev = "cuda" if self.device == "cuda" else "cpu"

    # synchronisation
    def jsync(self):
        self.jt.sync_all(True)

    def tsync(self):
        if self.tdev == "cuda":
            self.torch.cuda.synchronize()

    # memory
    def mem_begin(self, fw: str):
        if self.device == "cuda":
            if fw == "torch":
                self.torch.cuda.reset_peak_memory_stats()
            self._jt_peak = 0
        else:
            self._rss0 = _read_status_kb("VmRSS")
            self._hwm_ok = _reset_peak_rss()

    def mem_sample(self, fw: str):
        if self.device == "cuda" and fw != "torch":
            used = int(self.jt.get_mem_info().total_cuda_used)
            self._jt_peak = max(self._jt_peak, used)

    def mem_end(self, fw: str) -> Dict[str, Optional[float]]:
        if self.device == "cuda":
            if fw == "torch":
                return {"device_peak_mb": self.torch.cuda.max_memory_allocated() / 2 ** 20}
            return {"device_peak_mb": self._jt_peak / 2 ** 20}
        hwm = _read_status_kb("VmHWM") if self._hwm_ok else None
        return {"rss_peak_mb": hwm / 1024 if hwm else None,
                "rss_peak_over_start_mb": (hwm - self._rss0) / 1024 if hwm and self._rss0 else None}

    def close(self) -> None:
        """Restore the thread settings changed by ``--threads`` (in-process callers, tests)."""
        for f in self._restore:
            f()
        self._restore = []

    def info(self) -> Dict[str, object]:
        import jittor_pranet

        from .. import runtime

        jt = self.jt
        d: Dict[str, object] = {
            "jittor_pranet": jittor_pranet.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "device": self.device,
            "jittor": jt.__version__,
            "onednn": runtime.info().onednn,
            "torch": self.torch.__version__ if self.torch is not None else None,
            "torch_threads": self.torch.get_num_threads() if self.torch is not None else None,
            "jittor_onednn_threads": self.kernels.get_num_threads(),
            "fast_ops": self.kernels.available() if self.device == "cpu" else False,
            "fast_ops_note": self.kernels.unavailable_reason(),
            "omp_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},
            "mem_total_gb": (_read_meminfo_kb("MemTotal") or 0) / 2 ** 20,
        }
        if self.device == "cuda" and self.torch is not None:
            d["gpu"] = self.torch.cuda.get_device_name(0)
        return d


def _read_meminfo_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------------- measurements
def measure_matmul_peak(env: _Env, n: int = 2048, repeats: int = 5) -> Dict[str, Optional[float]]:
    """GFLOP/s of an n x n fp32 matmul in each framework (best of ``repeats``)."""
    flop = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    out: Dict[str, Optional[float]] = {"n": n}
    jt = env.jt
    ja, jb = jt.array(a), jt.array(b)
    best = float("inf")
    for _ in range(repeats + 1):
        env.jsync()
        t = time.perf_counter()
        c = jt.matmul(ja, jb)
        c.sync()
        env.jsync()
        best = min(best, time.perf_counter() - t)
    out["jittor_gflops"] = flop / best / 1e9
    if env.torch is not None:
        torch = env.torch
        ta, tb = torch.from_numpy(a).to(env.tdev), torch.from_numpy(b).to(env.tdev)
        best = float("inf")
        for _ in range(repeats + 1):
            env.tsync()
            t = time.perf_counter()
            torch.matmul(ta, tb)
            env.tsync()
            best = min(best, time.perf_counter() - t)
        out["torch_gflops"] = flop / best / 1e9
    vals = [v for k, v in out.items() if k.endswith("gflops") and v]
    out["peak_gflops"] = max(vals) if vals else None
    return out


def _torch_loss(info):
    """(outputs, target) -> the official training loss of the model's twin: PraNet's structure loss on
    binary masks, EMCAD's CE + Dice (+ DSRA terms) on label maps."""
    if info.task == "multiclass":
        from ..reference import torch_emcad as te

        loss = te.multiclass_dsra_loss if info.loss == "dsra" else te.multiclass_loss
        return lambda outs, labels: loss(outs, labels, info.default_num_classes)
    from ..reference.torch_train import pranet_loss

    return lambda outs, mask: pranet_loss(outs, mask, dual=info.loss == "dsra")


def count_flops(env: _Env, torch_model, shape, train: bool, info=None) -> Optional[float]:
    """FLOPs of one forward (``train=False``) or forward+backward of the loss on the torch reference
    (``info``: the model's catalog row, for its loss; default a PraNet model's)."""
    if env.torch is None:
        return None
    torch = env.torch
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover - torch < 2.1
        return None
    info = info if info is not None else model_info("pranet_v2_res2net")
    t_loss = _torch_loss(info)

    x = torch.zeros(shape, device=env.tdev)
    was_training = torch_model.training
    torch_model.train(train)
    with FlopCounterMode(display=False) as fc:
        if train:
            if info.task == "multiclass":
                target = torch.zeros((shape[0],) + tuple(shape[2:]), dtype=torch.long, device=env.tdev)
            else:
                target = torch.zeros((shape[0], 1) + tuple(shape[2:]), device=env.tdev)
            t_loss(torch_model(x), target).backward()
        else:
            with torch.no_grad():
                torch_model(x)
    torch_model.train(was_training)
    torch_model.zero_grad(set_to_none=True)
    counts = {str(k): float(v) for k, v in fc.get_flop_counts().get("Global", {}).items()}
    if not train:
        return sum(counts.values())
    # FlopCounterMode counts a grouped (depth-wise) convolution's backward as if it were dense (PVTv2's
    # MLP: 65x too much), so convolution backward is taken as 2x the forward (data + weight grads).
    total = sum(v for k, v in counts.items() if "convolution_backward" not in k)
    return total + 2.0 * counts.get("aten.convolution", 0.0)


def _interleave(calls: Dict[str, Callable[[], None]], env: _Env, repeats: int, sample_mem: bool = True
                ) -> Dict[str, Dict[str, object]]:
    """Time each callable ``repeats`` times, round-robin with a rotating start; memory per variant."""
    names = list(calls)
    times: Dict[str, List[float]] = {n: [] for n in names}
    mem: Dict[str, Dict[str, Optional[float]]] = {}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            fw = "torch" if n == "torch" else "jittor"
            if r == 0 and sample_mem:
                gc.collect()
                env.mem_begin(fw)
            t = time.perf_counter()
            calls[n]()
            times[n].append(time.perf_counter() - t)
            if r == 0 and sample_mem:
                env.mem_sample(fw)
                mem[n] = env.mem_end(fw)
    return {n: dict(_stats(times[n]), **mem.get(n, {})) for n in names}


# ------------------------------------------------------------------------------------- the models
class _ModelSet:
    """The PyTorch reference and the Jittor variants of one model, all holding the same weights."""

    def __init__(self, env: _Env, name: str, seed: int):
        from .. import checkpoint as ck
        from ..models import build_model

        self.env, self.name = env, name
        self.info = model_info(name)
        self.tm = None
        kw = {"drop_path_rate": 0.0} if model_info(name).takes_drop_path() else {}  # deterministic steps
        self.kw = kw
        if env.torch is not None:
            from ..reference import torch_models as tmods
            from ..reference.twins import build_twin

            self.tmods = tmods
            self.tm = tmods.randomize_(build_twin(name), seed).to(env.tdev)  # twins are built without drop path
            self.state = tmods.state_dict_numpy(self.tm)
        else:
            self.state = None
        from ..engine.optim import trainable_parameters

        self._build, self._ck = build_model, ck
        self._cache: Dict[tuple, object] = {}
        probe = build_model(name, **kw)
        if self.state is not None:
            ck.load_state_dict(probe, self.state)
        else:
            self.state = {k: v.numpy() for k, v in probe.state_dict().items()}
        self.params = sum(int(np.prod(p.shape)) for p in trainable_parameters(probe))
        del probe

    def jittor_model(self, variant: str, train: bool):
        key = (variant, train)
        if key not in self._cache:
            self._cache[key] = self._new_jittor_model(variant, train)
        return self._cache[key]

    def _new_jittor_model(self, variant: str, train: bool):
        m = self._build(self.name, **self.kw)
        self._ck.load_state_dict(m, self.state)
        flags = self.env.kernels.flags
        kind, feats, mode = parse_variant(variant)
        if train:
            m.train()
        else:
            m.eval()
            if variant == "jittor_fused":
                from ..fuse import fuse_for_inference

                m = fuse_for_inference(m)
        if kind == "jittor_plain":
            m = _Scoped(m, flags.disabled)
        elif kind == "jittor_features":
            m = _Scoped(m, lambda: flags.features(feats, mode))
        return m

    def torch_model(self, train: bool):
        self.tm.train(train)
        return self.tm


class _Scoped:
    """Runs a model inside a context (graphs are built during the call, so the context decides
    which implementation every op of the step uses)."""

    def __init__(self, model, context):
        self.model, self.context = model, context

    def __call__(self, *a, **k):
        with self.context():
            return self.model(*a, **k)

    def __getattr__(self, item):
        return getattr(self.model, item)


def parse_variant(v: str):
    """``torch``, ``jittor_plain``, ``jittor``, ``jittor_fused`` or ``jittor[feat,...]`` with features
    from :data:`jittor_pranet.kernels.flags.FEATURES` and optionally ``conv=auto|nchw|onednn`` (e.g.
    ``jittor[conv,bn]``, ``jittor[conv=nchw]``): returns (kind, features, conv_mode); ValueError if bad."""
    if v in INFER_VARIANTS:
        return v, None, None
    if v.startswith("jittor[") and v.endswith("]"):
        from ..kernels.flags import CONV_MODES, FEATURES

        feats, mode = [], None
        for part in filter(None, (p.strip() for p in v[7:-1].split(","))):
            if part.startswith("conv="):
                mode = part[5:]
                if mode not in CONV_MODES:
                    raise ValueError(f"{v}: conv mode must be one of {sorted(CONV_MODES)}")
                part = "conv"
            if part not in FEATURES:
                raise ValueError(f"{v}: unknown feature {part!r}; choose from {', '.join(FEATURES)}")
            feats.append(part)
        return "jittor_features", tuple(feats), mode
    raise ValueError(f"unknown variant {v!r}: use torch, jittor_plain, jittor, jittor_fused or jittor[feature,...]")


def _inference_calls(ms: _ModelSet, variants: Sequence[str], x_np: np.ndarray) -> Dict[str, Callable[[], None]]:
    env = ms.env
    jt = env.jt
    calls: Dict[str, Callable[[], None]] = {}
    for v in variants:
        if v == "torch":
            if env.torch is None:
                continue
            torch = env.torch
            tm = ms.torch_model(False)
            tx = torch.from_numpy(x_np).to(env.tdev)

            def t_call(tm=tm, tx=tx):
                with torch.no_grad():
                    tm(tx)
                env.tsync()

            calls[v] = t_call
        else:
            m = ms.jittor_model(v, False)
            jx = jt.array(x_np)

            def j_call(m=m, jx=jx):
                with jt.no_grad():
                    outs = m(jx)
                    jt.sync(list(outs))
                env.jsync()

            calls[v] = j_call
    return calls


def _multiclass_train_calls(ms: _ModelSet, variants: Sequence[str], x_np: np.ndarray, labels_np: np.ndarray,
                            lr: float = 1e-4, weight_decay: float = 1e-4) -> Dict[str, Callable[[], None]]:
    """One call = one step of the official multi-class recipe: forward, CE + Dice (DSRA: the fg/bg subset
    loss), backward, AdamW (lr 1e-4, weight decay 1e-4)."""
    env = ms.env
    jt = env.jt
    calls: Dict[str, Callable[[], None]] = {}
    dual = ms.info.loss == "dsra"
    for v in variants:
        if v == "jittor_fused":
            continue
        if v == "torch":
            if env.torch is None:
                continue
            torch = env.torch
            tm = ms.torch_model(True)
            opt = torch.optim.AdamW(tm.parameters(), lr=lr, weight_decay=weight_decay)
            tx, tl = torch.from_numpy(x_np).to(env.tdev), torch.from_numpy(labels_np).long().to(env.tdev)
            t_loss = _torch_loss(ms.info)

            def t_call(tm=tm, opt=opt, tx=tx, tl=tl):
                opt.zero_grad()
                t_loss(tm(tx), tl).backward()
                opt.step()
                env.tsync()

            calls[v] = t_call
        else:
            from ..engine.optim import TorchAdamW, trainable_parameters
            from ..losses.multiclass import multiclass_seg_loss

            m = ms.jittor_model(v, True)
            opt = TorchAdamW(trainable_parameters(m), lr=lr, weight_decay=weight_decay)
            jx, jl = jt.array(x_np), jt.array(labels_np)

            def j_call(m=m, opt=opt, jx=jx, jl=jl):
                opt.step(multiclass_seg_loss(m(jx), jl, dual=dual))
                env.jsync()

            calls[v] = j_call
    return calls


def _train_calls(ms: _ModelSet, variants: Sequence[str], x_np: np.ndarray, m_np: np.ndarray,
                 sizes: Sequence[int], lr: float = 1e-4, clip: float = 0.5) -> Dict[str, Callable[[], None]]:
    """One call = one step per size in ``sizes`` (the multi-scale recipe when several)."""
    env = ms.env
    jt = env.jt
    calls: Dict[str, Callable[[], None]] = {}
    base = x_np.shape[-1]
    for v in variants:
        if v == "jittor_fused":
            continue
        if v == "torch":
            if env.torch is None:
                continue
            torch = env.torch
            from ..reference import torch_train as tt

            tm = ms.torch_model(True)
            opt = torch.optim.Adam(tm.parameters(), lr=lr)
            tx, tmk = torch.from_numpy(x_np).to(env.tdev), torch.from_numpy(m_np).to(env.tdev)

            def t_call(tm=tm, opt=opt, tx=tx, tmk=tmk):
                for s in sizes:
                    xi, mi = (tx, tmk) if s == base else tt.resize_batch(tx, tmk, s)
                    tt.train_step(tm, opt, xi, mi, clip=clip)
                env.tsync()

            calls[v] = t_call
        else:
            from ..engine.optim import TorchAdam, trainable_parameters
            from ..losses import pranet_loss
            from ..ops import resize_bilinear

            dual = ms.info.loss == "dsra"
            m = ms.jittor_model(v, True)
            opt = TorchAdam(trainable_parameters(m), lr=lr, clip_value=clip)
            jx, jm = jt.array(x_np), jt.array(m_np)

            def j_call(m=m, opt=opt, jx=jx, jm=jm):
                for s in sizes:
                    if s == base:
                        xi, mi = jx, jm
                    else:
                        xi = resize_bilinear(jx, (s, s), align_corners=True)
                        mi = resize_bilinear(jm, (s, s), align_corners=True)
                    loss = pranet_loss(m(xi), mi, dual=dual)
                    opt.step(loss)
                env.jsync()

            calls[v] = j_call
    return calls


def _summarise(rec: Dict[str, object], images: int, flop: Optional[float], peak: Optional[float]) -> None:
    times = rec["times"]
    rec["images_per_s"] = {v: images / t["median"] for v, t in times.items()}
    if flop:
        rec["gflops"] = {v: flop / t["median"] / 1e9 for v, t in times.items()}
        if peak:
            rec["fraction_of_peak"] = {v: g / peak for v, g in rec["gflops"].items()}
    if "torch" in times:
        tt = times["torch"]["median"]
        rec["ratio_vs_torch"] = {v: _ratio(tt, t["median"]) for v, t in times.items() if v != "torch"}
        # best-of-repeats ratio: on a shared machine the minimum is the least disturbed estimate
        tmin = times["torch"]["min"]
        rec["ratio_vs_torch_min"] = {v: _ratio(tmin, t["min"]) for v, t in times.items() if v != "torch"}
    if "jittor_plain" in times:
        tp = times["jittor_plain"]["median"]
        rec["speedup_vs_jittor_plain"] = {v: _ratio(tp, t["median"]) for v, t in times.items()
                                          if v.startswith("jittor") and v != "jittor_plain"}


def bench_model(env: _Env, name: str, cfg: BenchConfig, peak: Optional[float], log: _Progress) -> Dict[str, object]:
    rng = np.random.default_rng(cfg.seed)
    ms = _ModelSet(env, name, cfg.seed)
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
            calls = _inference_calls(ms, variants, x)
            rec: Dict[str, object] = {"batch": b, "size": cfg.size}
            rec["first_call_s"] = _warm_up(calls, cfg.warmup, log, f"{name} inference b{b}")
            rec["times"] = _interleave(calls, env, cfg.repeats)
            flop = per_image * b if per_image else None
            rec["gflop_per_call"] = flop / 1e9 if flop else None
            _summarise(rec, b, flop, peak)
            log("  " + _line(f"{name} infer b{b}", rec))
            out["inference"].append(rec)
            del calls
            _release(env)

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
                calls = _multiclass_train_calls(ms, variants, x, mk)
            else:
                calls = _train_calls(ms, variants, x, mk, sizes)
            rec = {"mode": mode, "batch": b, "sizes": list(sizes)}
            rec["first_call_s"] = _warm_up(calls, cfg.warmup, log, f"{name} train {mode}")
            rec["times"] = _interleave(calls, env, cfg.repeats)
            flop = None
            if ms.tm is not None:
                flop = sum(count_flops(env, ms.tm, (1, c, s, s), train=True, info=info) or 0 for s in sizes) * b or None
            rec["gflop_per_call"] = flop / 1e9 if flop else None
            _summarise(rec, b * len(sizes), flop, peak)
            log("  " + _line(f"{name} train {mode} b{b}", rec))
            out["training"].append(rec)
            del calls
            _release(env)
    return out


def _warm_up(calls: Dict[str, Callable[[], None]], warmup: int, log: _Progress, label: str) -> Dict[str, float]:
    """Call every variant ``warmup`` times untimed; return each first call's seconds (Jittor compiles there)."""
    cold = {}
    for v, f in calls.items():
        t = time.perf_counter()
        f()
        cold[v] = time.perf_counter() - t
        for _ in range(max(0, warmup - 1)):
            f()
    log(f"  {label}: warm-up done ({', '.join(f'{k} {v:.1f}s' for k, v in cold.items())})")
    return cold


def _release(env: _Env) -> None:
    """Free what the last measurement left in both frameworks' caches (keeps the RSS peaks apart)."""
    gc.collect()
    if hasattr(env.jt, "gc"):
        env.jt.gc()
    if env.torch is not None and env.tdev == "cuda":
        env.torch.cuda.empty_cache()


def _line(label: str, rec: Dict[str, object]) -> str:
    parts = [f"{v} {t['median']:.3f}s" for v, t in rec["times"].items()]
    ratios = rec.get("ratio_vs_torch") or {}
    rs = [f"{v} {r:.2f}x" for v, r in ratios.items() if r]
    return f"{label}: " + ", ".join(parts) + (f" | vs torch: {', '.join(rs)}" if rs else "")


# -------------------------------------------------------------------------------------- eval bench
def _load_eval_baseline():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "tools" / "official_eval_baseline.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("_pranet_official_eval_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_eval(cfg: BenchConfig, log: _Progress) -> Dict[str, object]:
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
    rec = {"images": len(pairs), "size": [w, h], "ms_per_image": {k: _stats(v) for k, v in times.items()},
           "reference": "tools/official_eval_baseline.py (upstream eval cost structure)"}
    rec["speedup"] = _ratio(rec["ms_per_image"]["baseline"]["median"], rec["ms_per_image"]["ours"]["median"])
    log(f"  eval: ours {rec['ms_per_image']['ours']['median']:.1f} ms/img, baseline "
        f"{rec['ms_per_image']['baseline']['median']:.1f} ms/img, speed-up {rec['speedup']:.1f}x")
    return rec


# ------------------------------------------------------------------------------------------ driver
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process (no trimming, no per-allocation mmap).

    Measured (PyTorch alone, PraNet-V1/Res2Net, batch-8 inference at 352 on this CPU): 2.5-2.8 s per
    call with glibc's defaults -- every large activation is mmap'ed and page-faulted afresh -- vs
    1.6-1.8 s with this, which is also what a long-lived process reaches once its heap is
    fragmented. Without it the first model of a run measured PyTorch ~35% slow. Jittor has its own
    caching allocator and hardly changes. Returns False where glibc's mallopt is unavailable.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def run_benchmark(cfg: BenchConfig, progress=None) -> Dict[str, object]:
    """Progress lines go to ``progress`` (default: the ``sys.stderr`` of the moment of the call)."""
    log = _Progress(progress if progress is not None else sys.stderr)
    malloc_kept = keep_freed_memory() if cfg.keep_freed_memory and cfg.device == "cpu" else False
    env = _Env(cfg.device, cfg.threads)
    try:
        return _run(env, cfg, log, malloc_kept)
    finally:
        env.close()


def _run(env: "_Env", cfg: BenchConfig, log: _Progress, malloc_kept: bool) -> Dict[str, object]:
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


def summarise(result: Dict[str, object]) -> Dict[str, object]:
    """Geometric means of the jittor/torch ratios over all inference and all training rows."""
    acc: Dict[str, Dict[str, List[float]]] = {"inference": {}, "training": {}, "inference_min": {},
                                              "training_min": {}}
    for m in result.get("models", {}).values():
        for kind in ("inference", "training"):
            for rec in m.get(kind, []):
                for v, r in (rec.get("ratio_vs_torch") or {}).items():
                    if r:
                        acc[kind].setdefault(v, []).append(r)
                for v in rec["times"]:
                    r = _min_ratio(rec, v)
                    if r:
                        acc[kind + "_min"].setdefault(v, []).append(r)
    return {kind: {v: float(math.exp(sum(math.log(x) for x in rs) / len(rs))) for v, rs in d.items()}
            for kind, d in acc.items()}


# ------------------------------------------------------------------------------------------ output
def _fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def _min_ratio(rec: Dict[str, object], v: str) -> Optional[float]:
    t = rec["times"]
    if v == "torch" or "torch" not in t:
        return None
    return _ratio(t["torch"]["min"], t[v]["min"])


def format_markdown(result: Dict[str, object]) -> str:
    env = result["env"]
    lines = [f"Device: {env.get('device')} ({env.get('gpu') or env.get('cpu')}, {env.get('cpu_count')} CPUs); "
             f"jittor {env.get('jittor')}, torch {env.get('torch')}; threads torch={env.get('torch_threads')}, "
             f"jittor oneDNN={env.get('jittor_onednn_threads')}; fast ops: {env.get('fast_ops')}; "
             f"glibc keeps freed memory: {env.get('malloc_keeps_freed_memory', False)}",
             ""]
    pk = result.get("matmul_peak", {})
    lines.append(f"Matmul 2048x2048 fp32: jittor {_fmt(pk.get('jittor_gflops'), '.1f')} GFLOP/s, torch "
                 f"{_fmt(pk.get('torch_gflops'), '.1f')} GFLOP/s (peak used: {_fmt(pk.get('peak_gflops'), '.1f')})")
    pr = env.get("cpu_pressure_some_avg10") or {}
    if pr.get("start") is not None:
        lines.append(f"CPU pressure (some avg10, % of time a runnable task waited): start {pr['start']}, "
                     f"end {pr.get('end')}")
    lines.append("")
    mem_key = "device_peak_mb" if env.get("device") == "cuda" else "rss_peak_mb"
    for name, m in result.get("models", {}).items():
        lines.append(f"### {name} ({_fmt(m.get('params_m'), '.1f')} M parameters, "
                     f"{_fmt(m.get('gflop_per_image'), '.1f')} GFLOP/image at {result['config']['size']})")
        lines.append("")
        lines.append("| task | variant | median s | min s | max s | img/s | GFLOP/s | % peak | "
                     f"{'peak MB' if mem_key == 'device_peak_mb' else 'peak RSS MB'} | first call s | "
                     "torch/variant (median) | torch/variant (min) |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows = [(f"infer b{r['batch']} {r['size']}", r) for r in m.get("inference", [])] + \
               [(f"train {r['mode']} b{r['batch']} {'/'.join(map(str, r['sizes']))}", r) for r in m.get("training", [])]
        for label, r in rows:
            for v, t in r["times"].items():
                frac = (r.get("fraction_of_peak") or {}).get(v)
                lines.append(
                    f"| {label} | {v} | {t['median']:.3f} | {t['min']:.3f} | {t['max']:.3f} | "
                    f"{r['images_per_s'][v]:.2f} | {_fmt((r.get('gflops') or {}).get(v), '.1f')} | "
                    f"{_fmt(frac * 100 if frac is not None else None, '.0f')} | {_fmt(t.get(mem_key), '.0f')} | "
                    f"{_fmt(r.get('first_call_s', {}).get(v), '.2f')} | "
                    f"{_fmt((r.get('ratio_vs_torch') or {}).get(v), '.2f')} | "
                    f"{_fmt(_min_ratio(r, v), '.2f')} |")
        lines.append("")
    ev = result.get("eval")
    if ev and "ms_per_image" in ev:
        o, b = ev["ms_per_image"]["ours"], ev["ms_per_image"]["baseline"]
        lines.append(f"Evaluation ({ev['images']} synthetic {ev['size'][0]}x{ev['size'][1]} maps): ours "
                     f"{o['median']:.1f} ms/image (min {o['min']:.1f}, max {o['max']:.1f}), upstream-style baseline "
                     f"{b['median']:.1f} ms/image (min {b['min']:.1f}, max {b['max']:.1f}): {ev['speedup']:.1f}x")
        lines.append("")
    elif ev:
        lines.append(f"Evaluation: {ev.get('skipped')}")
        lines.append("")
    summ = summarise(result)
    for kind in ("inference", "training"):
        if summ.get(kind):
            lines.append(f"Geometric mean torch/variant time ratio, {kind}: medians " +
                         ", ".join(f"{v} {r:.2f}x" for v, r in summ[kind].items()) + "; minima " +
                         ", ".join(f"{v} {r:.2f}x" for v, r in summ.get(kind + "_min", {}).items()))
    return "\n".join(lines).rstrip() + "\n"


def write_json(result: Dict[str, object], path) -> None:
    Path(path).write_text(json.dumps(result, indent=2, default=float) + "\n")
