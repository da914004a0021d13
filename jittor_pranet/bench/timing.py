"""How the benchmark measures, whatever it measures: the timing rules and the machine's numbers.

Every measurement of ``jittor-pranet bench`` goes through the primitives here: :class:`Env` (both
frameworks imported for the chosen device and thread count, their synchronisation, and the peak
host RSS or device memory of one variant), :func:`warm_up` (untimed first calls, Jittor's compile
time), :func:`interleave` (``repeats`` rounds, every variant once per round in rotating order),
:func:`release` between measurements, the 2048x2048 matmul peak, ``/proc`` readers (RSS, CPU
pressure, CPU model) and glibc's malloc setting.  They are kept apart from the models
(:mod:`.model_set`) and the tables (:mod:`.report`) so that the rules that make the numbers
comparable live in one place and can be checked without the model plumbing.
"""
from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import sys
import time
from typing import IO, Callable, Dict, List, Optional, Sequence

import numpy as np


def stats(samples: Sequence[float]) -> Dict[str, object]:
    return {"median": float(statistics.median(samples)), "min": float(min(samples)), "max": float(max(samples)),
            "samples": [float(s) for s in samples]}


def ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
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


class Progress:
    """Prints one progress line per call to ``stream``; silent when ``stream`` is None."""

    def __init__(self, stream: Optional[IO[str]] = None):
        self.stream = stream

    def __call__(self, msg: str) -> None:
        if self.stream is not None:
            print(msg, file=self.stream, flush=True)


class Env:
    """Imports and device handling for both frameworks."""

    def __init__(self, device: str, threads: Optional[int]) -> None:
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
    def jsync(self) -> None:
        self.jt.sync_all(True)

    def tsync(self) -> None:
        if self.tdev == "cuda":
            self.torch.cuda.synchronize()

    # memory
    def mem_begin(self, fw: str) -> None:
        if self.device == "cuda":
            if fw == "torch":
                self.torch.cuda.reset_peak_memory_stats()
            self._jt_peak = 0
        else:
            self._rss0 = _read_status_kb("VmRSS")
            self._hwm_ok = _reset_peak_rss()

    def mem_sample(self, fw: str) -> None:
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


def measure_matmul_peak(env: Env, n: int = 2048, repeats: int = 5) -> Dict[str, Optional[float]]:
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


def interleave(calls: Dict[str, Callable[[], None]], env: Env, repeats: int, sample_mem: bool = True
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
    return {n: dict(stats(times[n]), **mem.get(n, {})) for n in names}


def warm_up(calls: Dict[str, Callable[[], None]], warmup: int, log: Progress, label: str) -> Dict[str, float]:
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


def release(env: Env) -> None:
    """Free what the last measurement left in both frameworks' caches (keeps the RSS peaks apart)."""
    gc.collect()
    if hasattr(env.jt, "gc"):
        env.jt.gc()
    if env.torch is not None and env.tdev == "cuda":
        env.torch.cuda.empty_cache()


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
