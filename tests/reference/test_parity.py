"""Forward parity with our PyTorch reference: every stage and output, eval mode, batch 2, full sizes.

Tolerance: max|jittor - torch| / max|torch| <= 5e-5 for every tensor.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs torch (pip install 'jittor-pranet[torch]')")

from jittor_pranet import parity  # noqa: E402
from jittor_pranet.models.registry import list_models, model_info  # noqa: E402

TOL = 5e-5
SIZES = [(352, 352), (320, 416)]
CASES = [("pranet_v1_res2net", 1), ("pranet_v1_pvt", 1), ("pranet_v2_res2net", 1), ("pranet_v2_res2net", 3),
         ("pranet_v2_pvt", 1), ("pranet_v2_pvt", 3)]


@pytest.mark.parametrize("name,num_classes", CASES)
def test_forward_parity_all_tensors(name, num_classes):
    results = parity.run_parity(name, num_classes, sizes=SIZES, batch=2, seed=7)
    assert set(results) == {f"2x3x{h}x{w}" for h, w in SIZES}
    n_out = len(model_info(name).outputs)
    for key, rows in results.items():
        names = [r.tensor for r in rows]
        # encoder stages, RFB outputs, decoder, each (DS)RA stage and all outputs are compared
        for required in ("x1", "x2", "x3", "x4", "x2_rfb", "x3_rfb", "x4_rfb"):
            assert required in names
        assert sum(n.startswith("out.") for n in names) == n_out
        h, w = map(int, key.split("x")[2:])
        for r in rows:
            if r.tensor.startswith("out."):
                assert r.shape == (2, num_classes, h, w), r
            assert r.ref_max > 1e-3, f"{r.tensor} is ~0: the comparison would prove nothing"
        bad = [(r.tensor, r.rel) for r in rows if not r.passed(TOL)]
        assert not bad, f"{name} {key}: tensors over {TOL}: {bad}"


@pytest.mark.parametrize("name", [n for n in list_models() if model_info(n).twin is not None])
def test_every_registered_model_matches_its_twin(name):
    """One harness for every model whose catalog row names a PyTorch twin: its official input channels,
    a small size its input contract accepts, every intermediate and output within the tolerance."""
    info = model_info(name)
    side = info.input.sizes[0] if info.input.sizes else 2 * info.input.multiple
    results = parity.run_parity(name, info.default_num_classes, sizes=[(side, side)], batch=1, seed=5)
    ((key, rows),) = results.items()
    assert key == f"1x{info.in_channels}x{side}x{side}"
    assert [r.tensor for r in rows if r.tensor.startswith("out.")] == [f"out.{o}" for o in info.outputs]
    assert all(r.ref_max > 0 for r in rows)
    bad = [(r.tensor, r.rel) for r in rows if not r.passed(TOL)]
    assert not bad, f"{name}: tensors over {TOL}: {bad}"


def test_parity_cli_runs_the_multiclass_models(tmp_path, capsys):
    import json

    from conftest import run_cli

    out = tmp_path / "parity.json"
    code, stdout, _ = run_cli(["parity", "--model", "emcad_b2_dsra", "--size", "64", "--batch", "1", "--json", out],
                              capsys)
    assert code == 0 and "emcad_b2_dsra (num_classes=9) input 1x1x64x64" in stdout and "PASS" in stdout
    assert list(json.loads(out.read_text())) == ["emcad_b2_dsra/1x1x64x64"]
    code, _, err = run_cli(["parity", "--model", "emcad_b2", "--size", "100"], capsys)
    assert code == 2 and "multiple of 32" in err


def test_parity_detects_a_wrong_weight():
    """The harness must fail when the two models differ (here: one BN statistic perturbed)."""
    jm, tm = parity.make_pair("pranet_v2_res2net", 1, seed=3)
    var = jm.state_dict()["ra3_conv2.bn.running_var"]
    var.assign(var * 1.01)
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    rows = parity.compare_forward(jm, tm, x, parity.V2_OUTPUTS)
    by = {r.tensor: r for r in rows}
    assert by["x4"].passed(TOL)  # encoder untouched
    assert not by["ra3_feat_fg"].passed(TOL)
    assert not by["out.fg3"].passed(TOL)
    # with one class the softmax gain is 1: ra3 cannot reach fg2 (documented upstream behaviour)
    assert by["out.fg2"].passed(TOL)


def test_official_single_class_softmax_is_identity_gain():
    """num_classes=1 with the default softmax gain: each fg map is exactly doubled (documented)."""
    from jittor_pranet.models import dsra_fuse

    import jittor as jt

    p_fg = jt.randn(2, 1, 6, 6)
    deep = jt.randn(2, 1, 3, 3)
    fused, _ = dsra_fuse(p_fg, p_fg, deep, deep * 0.5, "softmax")
    np.testing.assert_array_equal(fused.numpy(), 2 * p_fg.numpy())
    fused_sig, _ = dsra_fuse(p_fg, p_fg, deep, deep * 0.5, "sigmoid")
    assert not np.allclose(fused_sig.numpy(), 2 * p_fg.numpy())
