"""Training memory of a Jittor model and of its PyTorch twin, each side in a fresh process.

:func:`run_side` starts ``python -m jittor_pranet.bench.memory SIDE SPEC_JSON`` and reads one JSON
line per training step from it (``RSS_STEP {...}``) and a summary (``RSS_DONE {...}``); the parent
also takes the child's ``ru_maxrss`` from ``os.wait4``.  In the child:

* **jittor**: the project's trainer (:class:`~jittor_pranet.engine.trainer.Trainer` for binary models,
  :class:`~jittor_pranet.engine.multiclass.MultiClassTrainer` for multi-class ones) built from a
  resolved config with the recipe of the model's configs (PraNet: Adam lr 1e-4, clamp 0.5, one update
  per multi-scale size; EMCAD: AdamW lr 1e-4 weight decay 1e-4, the model's own loss over all output
  subsets, no clamp); only its data is replaced by generated batches. A step is
  ``Trainer.train_batch`` (one update per size), optionally after ``Trainer.warm_up``, as ``fit`` runs;
* **pytorch**: the twin (:func:`~jittor_pranet.reference.twins.build_twin`) trained by the reference
  steps: ``reference.torch_train.train_step`` per size (zero_grad, structure loss, backward, clamp,
  ``torch.optim.Adam``) for binary models, ``OfficialEMCADTrainer.train_batch`` (``torch.optim.AdamW``)
  for multi-class ones.

Both sides see the same generated batches (images N x C x S x S from a seeded normal, binary masks
one disc per image, multi-class labels uniform integers), so only the frameworks differ.  Peak RSS is
``VmHWM`` from ``/proc/self/status`` at the end of the child (``ru_maxrss`` where there is no /proc);
the RSS after every step shows growth.  Nothing here is imported by the library core.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

SIDES = ("jittor", "pytorch")
STEP_TAG, DONE_TAG = "RSS_STEP ", "RSS_DONE "
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class MemorySpec:
    """What both sides train: model, batch, base size and multi-scale rates, steps."""

    model: str
    batch_size: int
    size: int
    rates: List[float] = field(default_factory=lambda: [1.0])
    steps: int = 3
    encoder: Optional[str] = None
    num_classes: Optional[int] = None   # None: 1 for binary models, 9 (Synapse) for multi-class ones
    seed: int = 0
    warmup: bool = False                # Jittor: Trainer.warm_up() before the steps (as fit() does)
    jittor_gc: str = "none"             # Jittor: jt.gc() after every "step" (batch) or "update" (each size)
    jittor_flags: Dict[str, str] = field(default_factory=dict)  # jt.flags.NAME = VALUE in the child
    memory_info: bool = False           # Jittor: jt.display_memory_info() after the last step (to the log)
    torch_threads: Optional[int] = None


# ----------------------------------------------------------------------------------------- helpers
def status_kb(key: str) -> Optional[int]:
    """A ``kB`` line of ``/proc/self/status`` (VmRSS, VmHWM), None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    kb = status_kb("VmRSS")
    return kb / 1024 if kb is not None else float("nan")


def peak_rss_mb() -> float:
    kb = status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    return kb / 1024


def task_of(spec: MemorySpec) -> str:
    from ..models.registry import model_info

    info = model_info(spec.model)
    if info.task == "multiclass" or (spec.num_classes or 1) > 1:
        return "multiclass"
    return "binary"


def num_classes_of(spec: MemorySpec) -> int:
    if spec.num_classes is not None:
        return int(spec.num_classes)
    return 9 if task_of(spec) == "multiclass" else 1


def train_sizes(spec: MemorySpec) -> List[int]:
    from ..config import scale_sizes

    if task_of(spec) == "multiclass":
        return [spec.size]  # the multi-class trainer runs one scale
    return list(scale_sizes(spec.size, spec.rates))


def make_batch(spec: MemorySpec, step: int, in_channels: int):
    """The step's batch: (images float32 N x C x S x S, masks float32 N x 1 x S x S or labels int64 N x S x S)."""
    import numpy as np

    rng = np.random.default_rng([spec.seed, step])
    n, s = spec.batch_size, spec.size
    images = rng.standard_normal((n, in_channels, s, s)).astype(np.float32)
    if task_of(spec) == "multiclass":
        return images, rng.integers(0, num_classes_of(spec), (n, s, s)).astype(np.int64)
    yy, xx = np.mgrid[0:s, 0:s]
    masks = np.zeros((n, 1, s, s), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(0.25 * s, 0.75 * s, 2)
        r = rng.uniform(0.1 * s, 0.3 * s)
        masks[i, 0] = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)
    return images, masks


def _emit(tag: str, record: Dict[str, Any]) -> None:
    sys.stdout.write(tag + json.dumps(record) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------- children
def _jittor_child(spec: MemorySpec) -> None:
    from ..config import load_config
    from ..engine.multiclass import MultiClassTrainer
    from ..engine.trainer import Trainer
    from ..models.registry import model_info
    from ..ops import jt

    for name, value in spec.jittor_flags.items():
        current = getattr(jt.flags, name)
        setattr(jt.flags, name, type(current)(float(value)) if isinstance(current, (int, float)) else value)
    info = model_info(spec.model)
    task = task_of(spec)
    cfg = load_config(None)
    cfg["task"] = task
    cfg["model"].update(name=spec.model, encoder=spec.encoder, num_classes=num_classes_of(spec),
                        drop_path_rate=0.0, backbone_weights=None)  # the twins are built with drop_path_rate 0
    cfg["data"].update(train_size=spec.size, val_fraction=0.0, augment=False, synthetic=None, test=None)
    if task == "binary":  # configs/pranet_*.yaml
        cfg["train"].update(optimizer="adam", lr=1e-4, weight_decay=0.0, clip=0.5, multi_scale=list(spec.rates))
    else:  # configs/_base_/multiclass_emcad.yaml
        cfg["train"].update(optimizer="adamw", lr=1e-4, weight_decay=1e-4, clip=None, multi_scale=[1.0],
                            loss="auto", supervision="mutation")
    cfg["train"].update(batch_size=spec.batch_size, seed=spec.seed, warmup=spec.warmup)
    first = make_batch(spec, 0, info.in_channels)

    class _Samples:
        def __len__(self):
            return spec.batch_size

        def get(self, index, rng=None):
            return {"image": first[0][index], "mask": first[1][index]}

    class _StandInLoader:
        """What warm_up reads of the loader: one full batch, one process."""
        batch_size, world_size, drop_last, dataset = spec.batch_size, 1, True, _Samples()

    base = Trainer if task == "binary" else MultiClassTrainer

    class MemoryTrainer(base):
        def _setup_data(self) -> None:  # generated batches instead of a dataset on disk
            self.train_size = self.val_size = spec.size
            self.val_pairs = []
            self.loader = _StandInLoader()

    with tempfile.TemporaryDirectory(prefix="bench_memory_") as run_dir:
        trainer = MemoryTrainer(cfg, Path(run_dir), progress=False, log=lambda *a, **k: print(*a, file=sys.stderr))
        trainer.model.train()
        if spec.jittor_gc == "update":  # after every optimizer update (each multi-scale size)
            apply = trainer.optimizer.apply

            def apply_then_gc(grads):
                apply(grads)
                jt.gc()

            trainer.optimizer.apply = apply_then_gc
        start_rss = rss_mb()
        warmup_s = trainer.warm_up() if spec.warmup else None
        after_warmup = rss_mb() if spec.warmup else None
        for step in range(spec.steps):
            images, masks = first if step == 0 else make_batch(spec, step, info.in_channels)
            jt.set_global_seed(spec.seed * 1000003 + step)  # as fit() reseeds every step
            t0 = time.time()
            losses = trainer.train_batch(images, masks)
            trainer.step += 1
            if spec.jittor_gc == "step":
                jt.gc()
            _emit(STEP_TAG, {"step": step + 1, "seconds": time.time() - t0, "rss_mb": rss_mb(),
                             "peak_mb": peak_rss_mb(), "losses": {str(k): v for k, v in losses.items()}})
        if spec.memory_info:  # Jittor's allocator report (to the log), before and after jt.gc()
            jt.sync_all(True)
            silent, jt.flags.log_silent = jt.flags.log_silent, 0
            try:
                jt.display_memory_info()
                jt.gc()
                print(f"after jt.gc(): RSS {rss_mb():.0f} MB", flush=True)
                jt.display_memory_info()
            finally:
                jt.flags.log_silent = silent
        _emit(DONE_TAG, {"peak_mb": peak_rss_mb(), "rss_mb": rss_mb(), "start_rss_mb": start_rss,
                         "after_warmup_rss_mb": after_warmup, "warmup_s": warmup_s,
                         "framework": f"jittor {jt.__version__}", "sizes": trainer.train_sizes(),
                         "flags": {k: str(getattr(jt.flags, k)) for k in spec.jittor_flags}})


def _pytorch_child(spec: MemorySpec) -> None:
    import torch

    from ..models.registry import model_info
    from ..reference.twins import build_twin, reference_entry

    if spec.torch_threads:
        torch.set_num_threads(int(spec.torch_threads))
    torch.manual_seed(spec.seed)
    info = model_info(spec.model)
    task = task_of(spec)
    model = build_twin(spec.model, num_classes=num_classes_of(spec), encoder=spec.encoder)
    model.train()
    in_channels = reference_entry(spec.model).in_channels
    sizes = train_sizes(spec)
    if task == "binary":
        from ..reference.torch_train import resize_batch, train_step

        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step_fn(images, masks):
            out = {}
            x, y = torch.from_numpy(images), torch.from_numpy(masks)
            for size in sizes:
                xs, ys = (x, y) if size == spec.size else resize_batch(x, y, size)
                out[size] = train_step(model, optimizer, xs, ys, clip=0.5)
            return out
    else:
        from ..reference.torch_official_train import OfficialEMCADTrainer

        trainer = OfficialEMCADTrainer(model, num_classes_of(spec), dual=info.dual, lr=1e-4, weight_decay=1e-4)
        step_fn = trainer.train_batch
    start_rss = rss_mb()
    for step in range(spec.steps):
        images, masks = make_batch(spec, step, in_channels)
        t0 = time.time()
        losses = step_fn(images, masks)
        _emit(STEP_TAG, {"step": step + 1, "seconds": time.time() - t0, "rss_mb": rss_mb(),
                         "peak_mb": peak_rss_mb(), "losses": {str(k): v for k, v in losses.items()}})
    _emit(DONE_TAG, {"peak_mb": peak_rss_mb(), "rss_mb": rss_mb(), "start_rss_mb": start_rss,
                     "after_warmup_rss_mb": None, "warmup_s": None, "framework": f"torch {torch.__version__}",
                     "sizes": sizes, "jittor_imported": "jittor" in sys.modules, "threads": torch.get_num_threads()})


# ----------------------------------------------------------------------------------------- parent
@dataclass
class SideResult:
    side: str
    peak_mb: float                 # VmHWM of the child at its end
    maxrss_mb: Optional[float]     # ru_maxrss from wait4 (the child and the processes it waited for)
    start_rss_mb: float            # after the model and optimizer were built, before the first step
    steps: List[Dict[str, Any]]
    wall_s: float
    info: Dict[str, Any]

    @property
    def growth_mb(self) -> float:
        """RSS after the last step minus RSS after the first (0 with one step)."""
        return self.steps[-1]["rss_mb"] - self.steps[0]["rss_mb"] if self.steps else 0.0


class SideFailed(RuntimeError):
    pass


def run_side(side: str, spec: MemorySpec, log_path: Optional[Path] = None, timeout: Optional[float] = None) -> SideResult:
    """One side in a fresh ``python`` process; stderr (compile logs, trainer lines) to ``log_path``."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, not {side!r}")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "jittor_pranet.bench.memory", side, json.dumps(asdict(spec))]
    own_log = log_path is None
    log = tempfile.NamedTemporaryFile("w+", suffix=f".{side}.log", delete=False) if own_log else open(log_path, "w+")
    t0 = time.time()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=str(ROOT), env=env)
        steps, done = [], None
        deadline = t0 + timeout if timeout else None
        for line in proc.stdout:
            if line.startswith(STEP_TAG):
                steps.append(json.loads(line[len(STEP_TAG):]))
            elif line.startswith(DONE_TAG):
                done = json.loads(line[len(DONE_TAG):])
            else:  # Jittor prints its logs (memory info, compile progress) on stdout
                log.write(line)
            if deadline and time.time() > deadline:
                proc.kill()
                break
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - t0
        if proc.returncode != 0 or done is None:
            log.flush()
            log.seek(0)
            tail = [ln.rstrip() for ln in log.read().splitlines() if ln.strip()][-1:] or ["(no output)"]
            why = "timed out" if deadline and time.time() > deadline else f"exit {proc.returncode}"
            raise SideFailed(f"{side} side failed ({why}): {tail[0]}"
                             + ("" if own_log else f" (log: {log_path})"))
        return SideResult(side, done["peak_mb"], usage.ru_maxrss / 1024, done["start_rss_mb"], steps, wall,
                          {k: v for k, v in done.items() if k not in ("peak_mb", "start_rss_mb")})
    finally:
        log.close()
        if own_log:
            os.unlink(log.name)


def compare(spec: MemorySpec, sides: Sequence[str] = SIDES, log_dir: Optional[Path] = None,
            timeout: Optional[float] = None, progress=None) -> Dict[str, SideResult]:
    """Each side in turn (never both at once: peaks stay apart and the machine is not oversubscribed)."""
    results = {}
    for side in sides:
        if progress:
            progress(f"{side}: {spec.model} batch {spec.batch_size}, sizes {train_sizes(spec)}, {spec.steps} steps ...")
        log_path = Path(log_dir) / f"{side}.log" if log_dir else None
        results[side] = run_side(side, spec, log_path, timeout)
    return results


def ratio(results: Dict[str, SideResult]) -> Optional[float]:
    if "jittor" in results and "pytorch" in results and results["pytorch"].peak_mb > 0:
        return results["jittor"].peak_mb / results["pytorch"].peak_mb
    return None


def table(spec: MemorySpec, results: Dict[str, SideResult]) -> str:
    n = max(len(r.steps) for r in results.values())
    head = (["side", "peak RSS MB", "ru_maxrss MB", "RSS before step 1 MB"] + [f"RSS after step {i + 1} MB" for i in range(n)]
            + ["growth step 1 -> last MB", "step 1 s", "median s of later steps"])
    rows = []
    for side, r in results.items():
        later = sorted(s["seconds"] for s in r.steps[1:])
        k = len(later)
        med = (later[(k - 1) // 2] + later[k // 2]) / 2 if k else None
        rows.append([side, f"{r.peak_mb:.0f}", f"{r.maxrss_mb:.0f}" if r.maxrss_mb else "n/a", f"{r.start_rss_mb:.0f}"]
                    + [f"{s['rss_mb']:.0f}" for s in r.steps] + [""] * (n - len(r.steps))
                    + [f"{r.growth_mb:+.0f}", f"{r.steps[0]['seconds']:.1f}", f"{med:.1f}" if med is not None else "n/a"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    q = ratio(results)
    enc = f", encoder {spec.encoder}" if spec.encoder else ""
    lines.append("")
    lines.append(f"{spec.model}{enc}, batch {spec.batch_size}, sizes {train_sizes(spec)}, {spec.steps} steps"
                 + (", Jittor warm-up first" if spec.warmup else "")
                 + (f"; peak ratio Jittor/PyTorch {q:.2f}x" if q is not None else ""))
    return "\n".join(lines)


def report(spec: MemorySpec, results: Dict[str, SideResult]) -> Dict[str, Any]:
    return {"spec": asdict(spec), "sizes": train_sizes(spec), "ratio_jittor_over_pytorch": ratio(results),
            "sides": {k: {**asdict(v), "growth_mb": v.growth_mb} for k, v in results.items()}}


def child_main(argv: Sequence[str]) -> int:
    side, spec_json = argv
    spec = MemorySpec(**json.loads(spec_json))
    (_jittor_child if side == "jittor" else _pytorch_child)(spec)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
