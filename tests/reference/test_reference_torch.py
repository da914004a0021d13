"""Tests of the PyTorch reference models themselves (key names, sizes, shapes, helpers).

The numbers asserted here were measured on the official classes (ai4colonoscopy/PraNet-V2,
binary_seg/lib) with the same constructor arguments; key lists and shapes matched ours exactly and,
with shared random weights, eval outputs were bitwise equal.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jittor_pranet.reference import torch_models as tm  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
torch.set_num_threads(min(2, torch.get_num_threads()))

V1_NAMES = ("pranet_v1_res2net", "pranet_v1_pvt")
V2_NAMES = ("pranet_v2_res2net", "pranet_v2_pvt")
V1_INTER = ("x1", "x2", "x3", "x4", "x2_rfb", "x3_rfb", "x4_rfb", "ra5_feat", "ra4_out", "ra3_out", "ra2_out")
V2_INTER = ("x1", "x2", "x3", "x4", "x2_rfb", "x3_rfb", "x4_rfb", "ra5_feat_fg", "ra5_feat_bg",
            "ra4_feat_fg", "ra4_feat_bg", "ra3_feat_fg", "ra3_feat_bg", "ra2_feat_fg", "ra2_feat_bg")

_CACHE = {}


def model(name, num_classes=1, seed=0):
    """Randomised eval-mode model, built once per (name, num_classes, seed)."""
    key = (name, num_classes, seed)
    if key not in _CACHE:
        m = tm.build_torch_model(name, num_classes=num_classes)
        tm.randomize_(m, seed)
        _CACHE[key] = m.eval()
    return _CACHE[key]


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def _x(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------
# package import does not need torch
# --------------------------------------------------------------------------------------------------
def test_package_import_does_not_import_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import jittor_pranet.reference as r\n"
            "assert 'build_torch_model' in r.__all__\n"
            "print('ok')")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_lazy_attribute_access():
    import jittor_pranet.reference as r
    assert r.build_torch_model is tm.build_torch_model
    assert set(r.TORCH_MODELS) == {"pranet_v1_res2net", "pranet_v1_pvt", "pranet_v2_res2net", "pranet_v2_pvt"}


# --------------------------------------------------------------------------------------------------
# state_dict keys, shapes and parameter counts (as measured on the official classes)
# --------------------------------------------------------------------------------------------------
KEY_FACTS = {
    "pranet_v1_res2net": {
        "resnet.conv1.0.weight": (32, 3, 3, 3),
        "resnet.conv1.6.weight": (64, 32, 3, 3),
        "resnet.bn1.running_var": (64,),
        "resnet.layer1.0.downsample.1.weight": (256, 64, 1, 1),
        "resnet.layer1.0.convs.2.weight": (26, 26, 3, 3),
        "resnet.layer4.2.bns.2.running_mean": (208,),
        "resnet.layer3.5.conv3.weight": (1024, 416, 1, 1),
        "resnet.fc.weight": (1000, 2048),
        "rfb2_1.branch3.3.conv.weight": (32, 32, 3, 3),
        "rfb4_1.conv_res.conv.weight": (32, 2048, 1, 1),
        "agg1.conv5.weight": (1, 96, 1, 1),
        "agg1.conv5.bias": (1,),
        "ra4_conv5.bn.running_var": (1,),
        "ra2_conv1.conv.weight": (64, 512, 1, 1),
    },
    "pranet_v1_pvt": {
        "backbone.patch_embed1.proj.weight": (64, 3, 7, 7),
        "backbone.block1.0.attn.sr.weight": (64, 64, 8, 8),
        "backbone.block1.0.attn.norm.bias": (64,),
        "backbone.block3.5.mlp.dwconv.dwconv.weight": (1280, 1, 3, 3),
        "backbone.block4.2.attn.kv.weight": (1024, 512),
        "backbone.norm4.weight": (512,),
        "rfb2_1.conv_res.conv.weight": (32, 128, 1, 1),
        "ra4_conv1.conv.weight": (256, 512, 1, 1),
        "agg1.conv5.bias": (1,),
    },
    "pranet_v2_res2net": {
        "conv.0.weight": (3, 1, 1, 1),
        "conv.0.bias": (3,),
        "conv.1.running_mean": (3,),
        "backbone.conv1.6.weight": (64, 32, 3, 3),
        "backbone.layer1.0.downsample.1.weight": (256, 64, 1, 1),
        "backbone.layer2.0.downsample.2.running_var": (512,),
        "backbone.fc.bias": (1000,),
        "agg1.conv5_fg.bias": (1,),
        "agg1.conv5_bg.weight": (1, 96, 1, 1),
        "ra4_conv5_fg.bn.running_var": (1,),
        "ra3_conv4_bg.conv.weight": (1, 64, 3, 3),
        "ra2_conv4_fg.bn.weight": (1,),
    },
    "pranet_v2_pvt": {
        "conv.1.running_mean": (3,),
        "backbone.block1.0.attn.sr.weight": (64, 64, 8, 8),
        "backbone.block2.3.attn.q.bias": (128,),
        "backbone.block4.0.mlp.fc1.weight": (2048, 512),
        "agg1.conv5_fg.bias": (1,),
        "ra4_conv5_fg.bn.running_var": (1,),
    },
}


@pytest.mark.parametrize("name", sorted(KEY_FACTS))
def test_key_facts(name):
    sd = model(name).state_dict()
    for key, shape in KEY_FACTS[name].items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, (key, tuple(sd[key].shape))


def test_absent_keys():
    v1 = model("pranet_v1_res2net").state_dict()
    assert not any(k.startswith("conv.") for k in v1)          # V1 has no 1->3 stem
    assert "agg1.conv5_fg.weight" not in v1
    pvt = model("pranet_v2_pvt").state_dict()
    assert not any(k.startswith("backbone.head") for k in pvt)  # PVT backbone has no classifier
    assert "backbone.block4.0.attn.sr.weight" not in pvt        # sr_ratio 1 in stage 4
    assert "backbone.layer1.1.pool" not in str(list(v1))        # only 'stage' blocks pool


def test_v2_num_classes_3_heads():
    sd = model("pranet_v2_res2net", num_classes=3).state_dict()
    assert tuple(sd["agg1.conv5_fg.weight"].shape) == (3, 96, 1, 1)
    assert tuple(sd["ra4_conv5_bg.conv.weight"].shape) == (3, 256, 1, 1)
    assert tuple(sd["ra2_conv4_fg.conv.weight"].shape) == (3, 64, 3, 3)


# (number of state_dict entries, number of parameters), both measured on the official classes.
OFFICIAL_SIZES = {
    ("pranet_v1_res2net", 1): (922, 32_547_319),
    ("pranet_v1_pvt", 1): (730, 30_796_135),
    ("pranet_v2_res2net", 1): (949, 32_548_842),
    ("pranet_v2_res2net", 3): (949, 32_554_886),
    ("pranet_v2_pvt", 1): (757, 30_797_658),
    ("pranet_v2_pvt", 3): (757, 30_803_702),
}


@pytest.mark.parametrize("name,nc", sorted(OFFICIAL_SIZES))
def test_parameter_counts(name, nc):
    m = model(name, num_classes=nc)
    n_keys, n_par = OFFICIAL_SIZES[(name, nc)]
    assert len(m.state_dict()) == n_keys
    assert n_params(m) == n_par


def test_encoder_parameter_counts():
    assert n_params(tm.res2net50_v1b_26w_4s()) == 25_718_352
    assert n_params(tm.res2net101_v1b_26w_4s()) == 45_225_920
    assert n_params(tm.pvt_v2("b2")) == 24_849_856
    assert n_params(tm.pvt_v2("b0")) == 3_409_760


def test_encoder_state_dict_is_a_prefix_of_model():
    enc = tm.res2net50_v1b_26w_4s().state_dict()
    full = model("pranet_v1_res2net").state_dict()
    assert [k for k in full if k.startswith("resnet.")] == ["resnet." + k for k in enc]
    # An ImageNet-style file (encoder incl. fc) loads strictly into the encoder alone.
    tm.res2net50_v1b_26w_4s().load_state_dict(enc, strict=True)
    pvt = tm.pvt_v2("b2").state_dict()
    full = model("pranet_v2_pvt").state_dict()
    assert [k for k in full if k.startswith("backbone.")] == ["backbone." + k for k in pvt]


# --------------------------------------------------------------------------------------------------
# forward: output order/shapes and intermediates
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", V1_NAMES)
def test_v1_outputs_and_intermediates(name):
    m = model(name)
    x = _x((2, 3, 64, 96))
    with torch.no_grad():
        outs = m(x)
        outs2, inter = m(x, return_intermediates=True)
    assert isinstance(outs, tuple) and len(outs) == 4
    for o, o2 in zip(outs, outs2):
        assert tuple(o.shape) == (2, 1, 64, 96)
        assert torch.equal(o, o2)
    assert tuple(inter) == V1_INTER
    c = (256, 512, 1024, 2048) if "res2net" in name else (64, 128, 320, 512)
    for i, (k, s) in enumerate(zip(("x1", "x2", "x3", "x4"), (4, 8, 16, 32))):
        assert tuple(inter[k].shape) == (2, c[i], 64 // s, 96 // s)
    for k, s in (("x2_rfb", 8), ("x3_rfb", 16), ("x4_rfb", 32)):
        assert tuple(inter[k].shape) == (2, 32, 64 // s, 96 // s)
    for k, s in (("ra5_feat", 8), ("ra4_out", 32), ("ra3_out", 16), ("ra2_out", 8)):
        assert tuple(inter[k].shape) == (2, 1, 64 // s, 96 // s)
    # output order (lateral_map_5, _4, _3, _2): each is its map upsampled with scale_factor.
    ref = torch.nn.functional.interpolate(inter["ra2_out"], scale_factor=8, mode="bilinear")
    assert torch.equal(outs[3], ref)
    ref = torch.nn.functional.interpolate(inter["ra5_feat"], scale_factor=8, mode="bilinear")
    assert torch.equal(outs[0], ref)


@pytest.mark.parametrize("nc", (1, 3))
@pytest.mark.parametrize("name", V2_NAMES)
def test_v2_outputs_and_intermediates(name, nc):
    m = model(name, num_classes=nc)
    x = _x((2, 3, 96, 64))
    with torch.no_grad():
        outs, inter = m(x, return_intermediates=True)
    assert len(outs) == 8
    for o in outs:
        assert tuple(o.shape) == (2, nc, 96, 64)
    assert tuple(inter) == V2_INTER
    for k, s in (("ra5_feat", 8), ("ra4_feat", 32), ("ra3_feat", 16), ("ra2_feat", 8)):
        for side in ("fg", "bg"):
            assert tuple(inter[f"{k}_{side}"].shape) == (2, nc, 96 // s, 64 // s)
    # order: fg2, fg3, fg4, fg5, bg2, bg3, bg4, bg5
    up = torch.nn.functional.interpolate
    expect = [up(inter["ra2_feat_fg"], scale_factor=8, mode="bilinear"),
              up(inter["ra3_feat_fg"], scale_factor=16, mode="bilinear"),
              up(inter["ra4_feat_fg"], scale_factor=32, mode="bilinear"),
              up(inter["ra5_feat_fg"], scale_factor=8, mode="bilinear"),
              up(inter["ra2_feat_bg"], scale_factor=8, mode="bilinear"),
              up(inter["ra3_feat_bg"], scale_factor=16, mode="bilinear"),
              up(inter["ra4_feat_bg"], scale_factor=32, mode="bilinear"),
              up(inter["ra5_feat_bg"], scale_factor=8, mode="bilinear")]
    for o, e in zip(outs, expect):
        assert torch.equal(o, e)


def test_v2_single_class_softmax_is_identity():
    """Upstream semantics: with one class softmax(...)==1, so fg = 2 * head and the aggregation's fg
    head does not influence the fg2/fg3/fg4 outputs."""
    m = tm.build_torch_model("pranet_v2_res2net", num_classes=1)
    tm.randomize_(m, 5).eval()
    x = _x((1, 3, 64, 64), seed=3)
    with torch.no_grad():
        a, ia = m(x, return_intermediates=True)
        m.agg1.conv5_fg.bias.add_(3.0)
        b, ib = m(x, return_intermediates=True)
    assert not torch.equal(a[3], b[3])      # fg5 does change
    for i in (0, 1, 2, 4, 5, 6, 7):
        assert torch.equal(a[i], b[i])
    # With several classes the fusion does propagate.
    m3 = tm.build_torch_model("pranet_v2_res2net", num_classes=3)
    tm.randomize_(m3, 5).eval()
    with torch.no_grad():
        a = m3(x)
        m3.agg1.conv5_fg.bias[0] += 3.0
        b = m3(x)
    assert not torch.equal(a[2], b[2])


def test_v2_use_softmax_false_differs():
    kw = dict(num_classes=3, pvt_variant="b0")
    m1 = tm.build_torch_model("pranet_v2_pvt", use_softmax=True, **kw)
    m2 = tm.build_torch_model("pranet_v2_pvt", use_softmax=False, **kw)
    tm.randomize_(m1, 1)
    m2.load_state_dict(m1.state_dict())
    x = _x((1, 3, 64, 64))
    with torch.no_grad():
        a, b = m1.eval()(x), m2.eval()(x)
    assert torch.equal(a[3], b[3])          # fg5 precedes any fusion
    assert not torch.allclose(a[0], b[0])


def test_v2_pvt_single_channel_input_uses_stem():
    m = model("pranet_v2_pvt", num_classes=3)
    x = _x((1, 1, 64, 64))
    with torch.no_grad():
        outs = m(x)
        stemmed = m.conv(x)
        ref = m(stemmed)
    assert all(torch.equal(o, r) for o, r in zip(outs, ref))


def test_encoders_standalone():
    enc = tm.res2net50_v1b_26w_4s().eval()
    x = _x((1, 3, 64, 64))
    with torch.no_grad():
        assert tuple(enc(x).shape) == (1, 1000)
        stages = enc.forward_stages(x)
    assert [tuple(s.shape) for s in stages] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]
    pvt = tm.pvt_v2("b0").eval()
    with torch.no_grad():
        stages = pvt(x)
    assert [tuple(s.shape) for s in stages] == [(1, 32, 16, 16), (1, 64, 8, 8), (1, 160, 4, 4), (1, 256, 2, 2)]


def test_pvt_layernorm_eps_as_upstream():
    pvt = tm.pvt_v2("b2")
    assert pvt.norm1.eps == 1e-6 and pvt.block1[0].norm1.eps == 1e-6
    assert pvt.patch_embed1.norm.eps == 1e-5 and pvt.block1[0].attn.norm.eps == 1e-5
    assert isinstance(pvt.block1[0].drop_path, torch.nn.Identity)          # dpr[0] == 0
    assert pvt.block4[2].drop_path.drop_prob == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------------
# registry and helpers
# --------------------------------------------------------------------------------------------------
def test_build_torch_model_errors():
    with pytest.raises(ValueError):
        tm.build_torch_model("pranet_v1_res2net", num_classes=3)
    with pytest.raises(ValueError):
        tm.build_torch_model("pranet_v1_pvt", num_classes=2)
    with pytest.raises(ValueError):
        tm.build_torch_model("no_such_model")
    assert isinstance(tm.build_torch_model("pranet_v2_res2net", num_classes=3), tm.PraNetV2Res2Net)


def test_randomize_changes_bn_stats_and_is_deterministic():
    small = dict(pvt_variant="b0")  # same code path, smaller encoder
    a = tm.build_torch_model("pranet_v1_pvt", **small)
    fresh = {k: v.clone() for k, v in a.state_dict().items()}
    tm.randomize_(a, 7)
    sa = a.state_dict()
    assert not torch.equal(sa["ra4_conv2.bn.running_mean"], fresh["ra4_conv2.bn.running_mean"])
    assert not torch.equal(sa["ra4_conv2.bn.running_var"], fresh["ra4_conv2.bn.running_var"])
    rv = sa["rfb2_1.conv_cat.bn.running_var"]
    assert float(rv.min()) >= 0.5 and float(rv.max()) <= 2.0
    w = sa["backbone.norm2.weight"]
    assert float(w.min()) >= 0.5 and float(w.max()) <= 1.5

    b = tm.randomize_(tm.build_torch_model("pranet_v1_pvt", **small), 7)
    c = tm.randomize_(tm.build_torch_model("pranet_v1_pvt", **small), 8)
    sb, sc = b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["ra4_conv2.bn.running_mean"], sc["ra4_conv2.bn.running_mean"])
    assert not torch.equal(sa["agg1.conv5.weight"], sc["agg1.conv5.weight"])


def test_randomize_weight_scale():
    m = tm.randomize_(tm.res2net50_v1b_26w_4s(), 0)
    w = m.layer3[0].conv1.weight  # (416, 512, 1, 1): fan_in 512
    assert abs(float(w.detach().std()) - (1 / 512) ** 0.5) < 0.1 * (1 / 512) ** 0.5


@pytest.mark.parametrize("name", ("pranet_v1_res2net", "pranet_v2_pvt"))
def test_randomized_activations_stay_order_one(name):
    m = model(name, num_classes=1)
    with torch.no_grad():
        outs, inter = m(_x((1, 3, 64, 64), seed=1), return_intermediates=True)
    for k in ("x4", "x4_rfb"):
        s = float(inter[k].std())
        assert 1e-2 < s < 1e2, (k, s)
    for o in outs:
        s = float(o.abs().max())
        assert torch.isfinite(o).all() and 1e-2 < s < 1e2


def test_state_dict_numpy_roundtrip():
    m = model("pranet_v2_res2net", num_classes=3)
    arrays = tm.state_dict_numpy(m)
    sd = m.state_dict()
    assert not any(k.endswith("num_batches_tracked") for k in arrays)
    assert set(arrays) == {k for k in sd if not k.endswith("num_batches_tracked")}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in arrays.values())
    assert arrays["backbone.conv1.6.weight"].shape == (64, 32, 3, 3)
    # copies, not views
    arrays["conv.0.bias"][:] = 123.0
    assert float(sd["conv.0.bias"][0]) != 123.0
    arrays = tm.state_dict_numpy(m)
    m2 = tm.build_torch_model("pranet_v2_res2net", num_classes=3)
    tm.load_state_dict_numpy(m2, arrays)
    assert all(torch.equal(v, m2.state_dict()[k]) for k, v in m.state_dict().items()
               if not k.endswith("num_batches_tracked"))
    with pytest.raises(KeyError):
        tm.load_state_dict_numpy(m2, {k: v for k, v in arrays.items() if k != "conv.0.bias"})
