"""tools/bench_memory.py: a tiny model trained a couple of steps on each side, in fresh processes."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the memory benchmark compares against the PyTorch twin")

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench_memory.py"


def _tool(*args, timeout=900):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))


def test_both_sides_report_peaks_steps_and_ratio(tmp_path):
    out = tmp_path / "mem.json"
    r = _tool("emcad_b2_dsra", "--encoder", "pvt_v2_b0", "--batch", "2", "--size", "64", "--steps", "2",
              "--json", out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| jittor |" in r.stdout and "| pytorch |" in r.stdout and "peak ratio Jittor/PyTorch" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["sizes"] == [64]
    for side in ("jittor", "pytorch"):
        s = rep["sides"][side]
        assert len(s["steps"]) == 2 and [x["step"] for x in s["steps"]] == [1, 2]
        assert s["peak_mb"] > 0 and s["start_rss_mb"] > 0
        # the peak is the high-water mark: at least every RSS seen after a step, and above the start
        assert all(s["peak_mb"] >= x["rss_mb"] - 1 for x in s["steps"])
        assert s["peak_mb"] > s["start_rss_mb"]
        assert s["maxrss_mb"] >= s["peak_mb"] - 1  # wait4's ru_maxrss covers the child's own peak
        assert all(math.isfinite(v) for x in s["steps"] for v in x["losses"].values())
    assert rep["sides"]["pytorch"]["info"]["jittor_imported"] is False  # the torch child holds no Jittor
    q = rep["ratio_jittor_over_pytorch"]
    assert q == pytest.approx(rep["sides"]["jittor"]["peak_mb"] / rep["sides"]["pytorch"]["peak_mb"])
    # same generated batches and initial losses of the same order on both sides (same recipe)
    lj = rep["sides"]["jittor"]["steps"][0]["losses"]["64"]
    lt = rep["sides"]["pytorch"]["steps"][0]["losses"]["64"]
    assert 0.5 < lj / lt < 2.0


@pytest.mark.parametrize("args, message", [
    (["no_such_model"], "unknown model"),
    (["emcad_b2_dsra", "--size", "100"], "multiple of 32"),
    (["emcad_b2_dsra", "--steps", "0"], "--steps must be >= 1"),
    (["emcad_b2_dsra", "--multi-scale", "0.75", "1"], "one scale"),
    (["pranet_v2_res2net", "--jittor-flag", "novalue"], "NAME=VALUE"),
])
def test_bad_arguments_are_one_line_errors(args, message):
    r = _tool(*args, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
