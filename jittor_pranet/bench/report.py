"""What the benchmark keeps: the figures derived from the timings, the summaries and the tables.

:func:`summarise_record` adds to one measured row its images/s, GFLOP/s, fraction of the matmul peak
and torch/variant ratios; :func:`summarise` takes the geometric means over all rows;
:func:`format_markdown` prints a whole result as the tables of ``docs/benchmarks.md`` and
:func:`write_json` stores it.  These work on the plain result dictionary alone, with no framework
and no model involved, which is what lets ``bench --from-json`` re-print an old run and keeps the
presentation of the numbers apart from how they were measured.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Union

from .timing import ratio


def summarise_record(rec: Dict[str, object], images: int, flop: Optional[float], peak: Optional[float]) -> None:
    """Add to ``rec`` (one row: its ``times``) the throughput, GFLOP/s and ratio figures; ``images``
    per call, ``flop`` per call and the matmul ``peak`` in GFLOP/s (None: not known)."""
    times = rec["times"]
    rec["images_per_s"] = {v: images / t["median"] for v, t in times.items()}
    if flop:
        rec["gflops"] = {v: flop / t["median"] / 1e9 for v, t in times.items()}
        if peak:
            rec["fraction_of_peak"] = {v: g / peak for v, g in rec["gflops"].items()}
    if "torch" in times:
        tt = times["torch"]["median"]
        rec["ratio_vs_torch"] = {v: ratio(tt, t["median"]) for v, t in times.items() if v != "torch"}
        # best-of-repeats ratio: on a shared machine the minimum is the least disturbed estimate
        tmin = times["torch"]["min"]
        rec["ratio_vs_torch_min"] = {v: ratio(tmin, t["min"]) for v, t in times.items() if v != "torch"}
    if "jittor_plain" in times:
        tp = times["jittor_plain"]["median"]
        rec["speedup_vs_jittor_plain"] = {v: ratio(tp, t["median"]) for v, t in times.items()
                                          if v.startswith("jittor") and v != "jittor_plain"}


def progress_line(label: str, rec: Dict[str, object]) -> str:
    """One progress line for a measured row: each variant's median and its ratio to PyTorch."""
    parts = [f"{v} {t['median']:.3f}s" for v, t in rec["times"].items()]
    ratios = rec.get("ratio_vs_torch") or {}
    rs = [f"{v} {r:.2f}x" for v, r in ratios.items() if r]
    return f"{label}: " + ", ".join(parts) + (f" | vs torch: {', '.join(rs)}" if rs else "")


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


def _fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def _min_ratio(rec: Dict[str, object], v: str) -> Optional[float]:
    t = rec["times"]
    if v == "torch" or "torch" not in t:
        return None
    return ratio(t["torch"]["min"], t[v]["min"])


def format_markdown(result: Dict[str, object]) -> str:
    """The Markdown tables of a result (:func:`~.benchmark.run_benchmark` or its JSON file)."""
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


def write_json(result: Dict[str, object], path: Union[str, os.PathLike]) -> None:
    """Store ``result`` as indented JSON at ``path``."""
    Path(path).write_text(json.dumps(result, indent=2, default=float) + "\n")
