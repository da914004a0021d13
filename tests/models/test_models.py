"""Model API: registry, DSRA module (paper Eqs. 1-4), output order/sizes, encoder variants."""
import numpy as np
import pytest

from jittor_pranet.errors import UserError
from jittor_pranet.models import DSRA, build_model, list_models, reverse_gain
from jittor_pranet.ops import jt, resize_bilinear

from jittor import nn


def test_registry_names_and_errors():
    assert list_models() == ["emcad_b2", "emcad_b2_dsra", "merit_cascaded", "merit_cascaded_dsra", "mist",
                             "mist_dsra", "pranet_v1_pvt", "pranet_v1_res2net", "pranet_v2_pvt", "pranet_v2_res2net"]
    assert list_models("binary") == ["pranet_v1_pvt", "pranet_v1_res2net", "pranet_v2_pvt", "pranet_v2_res2net"]
    with pytest.raises(UserError, match="unknown model"):
        build_model("pranet_v3")
    with pytest.raises(ValueError, match="binary only"):
        build_model("pranet_v1_pvt", num_classes=3)
    with pytest.raises(ValueError, match="gain"):
        build_model("pranet_v2_pvt", gain="cosine")


def _softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("gain", ["softmax", "sigmoid", "difference"])
def test_dsra_module_implements_equations_1_to_4(gain):
    rng = np.random.default_rng(0)
    c = 3
    dsra = DSRA(nn.Conv2d(8, 4, 3, padding=1), nn.Conv2d(4, c, 1), nn.Conv2d(4, c, 1), gain=gain)
    feat = jt.array(rng.standard_normal((2, 8, 12, 12)).astype(np.float32))
    deep_fg = jt.array(rng.standard_normal((2, c, 6, 6)).astype(np.float32))
    deep_bg = jt.array(rng.standard_normal((2, c, 6, 6)).astype(np.float32))
    r_fg, r_bg = dsra(feat, deep_fg, deep_bg)
    h = dsra.decoder(feat)
    p_fg, p_bg = dsra.head_fg(h).numpy(), dsra.head_bg(h).numpy()
    diff = (resize_bilinear(deep_fg, (12, 12)) - resize_bilinear(deep_bg, (12, 12))).numpy()
    gamma = {"softmax": _softmax(diff, 1), "sigmoid": 1 / (1 + np.exp(-diff)), "difference": diff}[gain]
    np.testing.assert_allclose(r_fg.numpy(), p_fg + p_fg * gamma, rtol=1e-5, atol=1e-6)  # Eq. (1)
    np.testing.assert_allclose(r_bg.numpy(), p_bg, rtol=1e-6)                            # Eq. (2)
    if gain == "softmax":
        np.testing.assert_allclose(gamma.sum(axis=1), 1.0, rtol=1e-6)                  # softmax over classes


def test_reverse_gain_single_class_softmax_is_one():
    g = reverse_gain(jt.randn(2, 1, 5, 5), jt.randn(2, 1, 5, 5), (10, 10), "softmax")
    np.testing.assert_array_equal(g.numpy(), np.ones((2, 1, 10, 10), np.float32))


def test_v2_gain_option_changes_single_class_outputs():
    x = jt.array(np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32))
    a = build_model("pranet_v2_pvt", encoder="pvt_v2_b0")
    b = build_model("pranet_v2_pvt", encoder="pvt_v2_b0", gain="sigmoid")
    b.load_state_dict(a.state_dict())
    a.eval()
    b.eval()
    oa, ob = a(x), b(x)
    np.testing.assert_allclose(ob[3].numpy(), oa[3].numpy(), rtol=1e-6)  # fg5 comes before any gain
    assert not np.allclose(ob[0].numpy(), oa[0].numpy())


def test_v2_outputs_order_sizes_and_grayscale_input():
    m = build_model("pranet_v2_pvt", num_classes=2, encoder="pvt_v2_b0")
    m.eval()
    outs, inter = m(jt.randn(1, 1, 64, 96), return_intermediates=True)  # 1 channel -> stem conv
    assert len(outs) == 8 and all(tuple(o.shape) == (1, 2, 64, 96) for o in outs)
    np.testing.assert_array_equal(outs[4].numpy(), resize_bilinear(inter["ra2_feat_bg"], (64, 96)).numpy())
    np.testing.assert_array_equal(outs[3].numpy(), resize_bilinear(inter["ra5_feat_fg"], (64, 96)).numpy())


def test_encoder_variants_build():
    from jittor_pranet.models import build_encoder

    r101 = build_encoder("res2net101_v1b_26w_4s")
    assert len(r101.layer3) == 23
    b0 = build_encoder("pvt_v2_b0")
    feats = b0.forward_features(jt.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 32, 16, 16), (1, 64, 8, 8), (1, 160, 4, 4), (1, 256, 2, 2)]
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("vgg16")
