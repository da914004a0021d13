"""Smoke test of ``jittor-pranet bench`` on a tiny size: the JSON structure, not the timings."""
import json
import math

import pytest
from conftest import run_cli

pytest.importorskip("torch", reason="the benchmark compares against the PyTorch reference")


def _finite_positive(v):
    return isinstance(v, float) and math.isfinite(v) and v > 0


def test_bench_cli_json_structure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    code, stdout, _ = run_cli(["bench", "--models", "pranet_v2_res2net", "--batches", "1", "--size", "64",
                               "--train-batch", "1", "--multiscale", "64,96", "--repeats", "2",
                               "--eval-images", "1", "--eval-size", "96x80", "--threads", "1",
                               "--json", out, "--markdown", md], capsys)
    assert code == 0
    assert "| task | variant |" in stdout and md.read_text().strip() == stdout.strip()
    res = json.loads(out.read_text())
    assert res["schema"] == 1
    assert res["env"]["device"] == "cpu" and res["env"]["torch"]
    assert res["env"]["malloc_keeps_freed_memory"] is True  # glibc here: both frameworks keep freed memory
    assert _finite_positive(res["matmul_peak"]["peak_gflops"])
    m = res["models"]["pranet_v2_res2net"]
    assert _finite_positive(m["gflop_per_image"]) and _finite_positive(m["params_m"])
    (inf,) = m["inference"]
    assert inf["batch"] == 1 and inf["size"] == 64
    assert set(inf["times"]) == {"torch", "jittor_plain", "jittor", "jittor_fused"}
    for v, t in inf["times"].items():
        assert len(t["samples"]) == 2 and t["min"] <= t["median"] <= t["max"]
        assert _finite_positive(t["rss_peak_mb"])
        assert _finite_positive(inf["first_call_s"][v])
        assert _finite_positive(inf["gflops"][v]) and _finite_positive(inf["fraction_of_peak"][v])
    assert set(inf["ratio_vs_torch"]) == {"jittor_plain", "jittor", "jittor_fused"}
    assert all(_finite_positive(r) for r in inf["ratio_vs_torch"].values())
    modes = {r["mode"]: r for r in m["training"]}
    assert set(modes) == {"single", "multiscale"}
    assert modes["multiscale"]["sizes"] == [64, 96] and modes["single"]["sizes"] == [64]
    for rec in modes.values():
        assert set(rec["times"]) == {"torch", "jittor_plain", "jittor"}
        assert all(_finite_positive(r) for r in rec["ratio_vs_torch"].values())
        assert _finite_positive(rec["gflop_per_call"])
    # the multi-scale iteration does more work than the single step at the smallest size
    assert modes["multiscale"]["gflop_per_call"] > modes["single"]["gflop_per_call"]
    ev = res["eval"]
    assert _finite_positive(ev["speedup"]) and ev["images"] == 1
    assert set(res["summary"]["inference"]) == {"jittor_plain", "jittor", "jittor_fused"}
    assert all(_finite_positive(v) for v in res["summary"]["training"].values())


def test_bench_rejects_unknown_variant(capsys):
    code, _, err = run_cli(["bench", "--variants", "torch,bogus", "--quick"], capsys)
    assert code == 2 and "bogus" in err


def test_bench_runs_the_multiclass_models(tmp_path, capsys):
    """EMCAD+DSRA against its PyTorch twin: grayscale input, label maps, the multi-class loss, one scale."""
    out = tmp_path / "bench.json"
    code, stdout, _ = run_cli(["bench", "--models", "emcad_b2_dsra", "--batches", "1", "--size", "64",
                               "--train-batch", "1", "--repeats", "1", "--variants", "torch,jittor",
                               "--eval-images", "0", "--threads", "1", "--json", out], capsys)
    assert code == 0 and "emcad_b2_dsra" in stdout
    m = json.loads(out.read_text())["models"]["emcad_b2_dsra"]
    assert _finite_positive(m["gflop_per_image"]) and 26 < m["params_m"] < 28
    (inf,) = m["inference"]
    assert set(inf["times"]) == {"torch", "jittor"} and _finite_positive(inf["ratio_vs_torch"]["jittor"])
    (train,) = m["training"]  # the multi-class recipe is single-scale
    assert train["mode"] == "single" and _finite_positive(train["gflop_per_call"])
    assert set(train["times"]) == {"torch", "jittor"}


def test_bench_checks_the_input_contract(capsys):
    code, _, err = run_cli(["bench", "--models", "emcad_b2", "--size", "100", "--quick"], capsys)
    assert code == 2 and "multiple of 32" in err
