"""The CPU kernels of :mod:`jittor_pranet.kernels` against Jittor's own ops and PyTorch, the layers
that choose them at call time, and the inference folding of :mod:`jittor_pranet.fuse`.

The model-level guarantee is the parity suite (it runs with the kernels on, their default); these
tests pin each op down on small shapes, including the layouts and code paths the models do not
hit at 352x352, and check that a layer really takes its kernel when the flags say so.
"""
import numpy as np
import pytest

from jittor_pranet import kernels
from jittor_pranet.fuse import FoldedBottle2neck, fuse_for_inference, unfuse
from jittor_pranet.kernels import flags
from jittor_pranet.ops import BatchNorm2d, jt

from jittor import nn

pytestmark = pytest.mark.skipif(not kernels.available(),
                                reason=f"CPU kernels unavailable: {kernels.unavailable_reason()}")


def _spy(monkeypatch, module, name):
    """Count the calls of ``module.name`` that returned a result (a kernel that applied)."""
    calls = []
    real = getattr(module, name)

    def wrapper(*a, **k):
        out = real(*a, **k)
        if out is not None:
            calls.append(name)
        return out

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


CONV_CASES = [  # n, cin, cout, kernel, stride, padding, dilation, groups, h, w
    (2, 16, 32, (1, 1), 1, (0, 0), 1, 1, 10, 11),   # sgemm path
    (2, 16, 24, (3, 3), 1, (1, 1), 1, 1, 12, 9),
    (1, 8, 8, (3, 3), 2, (1, 1), 1, 1, 13, 13),
    (2, 12, 12, (3, 3), 1, (1, 1), 1, 12, 9, 8),    # depthwise
    (2, 16, 8, (1, 5), 1, (0, 2), 1, 1, 11, 11),
    (2, 16, 8, (3, 3), 1, (3, 3), 3, 1, 14, 14),    # dilated
    (1, 6, 10, (2, 2), 2, (0, 0), 1, 1, 8, 8),      # patchify (PVT spatial reduction)
    (2, 10, 20, (1, 1), 2, (0, 0), 1, 1, 9, 9),     # strided 1x1 -> oneDNN
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("mode", ["auto", "nchw", "onednn"])
def test_conv_forward_backward_matches_jittor(case, mode):
    n, ci, co, k, s, p, d, g, h, w = case
    rng = np.random.default_rng(0)
    x = jt.array(rng.standard_normal((n, ci, h, w)).astype(np.float32))
    wt = jt.array(rng.standard_normal((co, ci // g) + k).astype(np.float32))
    b = jt.array(rng.standard_normal((co,)).astype(np.float32))
    gy = None
    with flags.disabled():
        ref = nn.conv2d(x, wt, b, s, p, d, g)
        gy = jt.array(rng.standard_normal(ref.shape).astype(np.float32))
        ref_grads = jt.grad((ref * gy).sum(), [x, wt, b])
    assert kernels.conv.usable(x, wt)
    with flags.features(flags.FEATURES, conv_mode=mode):
        y = kernels.conv.conv2d(x, wt, b, s, p, d, g)
        grads = jt.grad((y * gy).sum(), [x, wt, b])
        with jt.no_grad():
            y_relu = kernels.conv.conv2d(x, wt, b, s, p, d, g, relu=True)
        # token-major (NHWC) input and output, as PVTv2 uses them
        y_nhwc = kernels.conv.conv2d(x.transpose(0, 2, 3, 1), wt, b, s, p, d, g, layout=3)
        g_nhwc = jt.grad((y_nhwc * gy.transpose(0, 2, 3, 1)).sum(), [x, wt, b])
    assert _rel(y.numpy(), ref.numpy()) < 2e-6
    assert _rel(y_relu.numpy(), np.maximum(ref.numpy(), 0)) < 2e-6
    assert _rel(y_nhwc.numpy().transpose(0, 3, 1, 2), ref.numpy()) < 2e-6
    for a, r in zip(list(grads) + list(g_nhwc), list(ref_grads) * 2):
        assert _rel(a.numpy(), r.numpy()) < 2e-6


def test_conv_falls_back_for_float64_and_when_disabled():
    x = jt.array(np.ones((1, 4, 5, 5)))  # float32 after jt.array; make a real float64 var
    x64 = x.float64()
    w64 = jt.array(np.ones((2, 4, 3, 3))).float64()
    assert not kernels.conv.usable(x64, w64)
    y = kernels.conv.conv2d(x64, w64, None, 1, 1)
    assert str(y.dtype) == "float64" and y.shape == [1, 2, 5, 5]
    with flags.disabled():
        assert not kernels.enabled() and not kernels.conv.usable(x, x)
    assert kernels.enabled()


def test_batchnorm_train_matches_torch_in_float64(monkeypatch):
    torch = pytest.importorskip("torch")
    used = _spy(monkeypatch, kernels.batchnorm, "batch_norm_train")
    rng = np.random.default_rng(1)
    for shape in [(2, 32, 20, 21), (1, 8, 5, 5), (4, 16, 1, 1)]:
        c = shape[1]
        xn = (rng.standard_normal(shape) * 3 + 5).astype(np.float32)
        gn = rng.standard_normal(shape).astype(np.float32)
        wn, bn = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
        m = _bn_module(c, wn, bn)
        m.train()
        n_used = len(used)
        tb = torch.nn.BatchNorm2d(c).double().train()
        tb.weight.data, tb.bias.data = torch.from_numpy(wn).double(), torch.from_numpy(bn).double()
        tx = torch.from_numpy(xn).double().requires_grad_()
        ty = tb(tx)
        (ty * torch.from_numpy(gn).double()).sum().backward()
        x = jt.array(xn)
        y = m(x)
        gx, gw, gb = jt.grad((y * jt.array(gn)).sum(), [x, m.bn.weight, m.bn.bias])
        assert _rel(y.numpy(), ty.detach().numpy()) < 1e-6
        assert _rel(gx.numpy(), tx.grad.numpy()) < 1e-6
        assert _rel(gw.numpy(), tb.weight.grad.numpy()) < 1e-6
        assert _rel(gb.numpy(), tb.bias.grad.numpy()) < 1e-6
        assert _rel(m.bn.running_mean.numpy(), tb.running_mean.numpy()) < 1e-6
        assert _rel(m.bn.running_var.numpy(), tb.running_var.numpy()) < 1e-6
        assert len(used) == n_used + 1  # the module's training forward took the kernel


class _BNHolder(nn.Module):
    def __init__(self, c):
        self.bn = BatchNorm2d(c)

    def execute(self, x):
        return self.bn(x)


def _bn_module(c, w, b):
    m = _BNHolder(c)
    m.bn.weight.assign(jt.array(w))
    m.bn.bias.assign(jt.array(b))
    return m


@pytest.mark.parametrize("dim,heads,sr", [(64, 1, 8), (128, 2, 4), (320, 5, 2), (512, 8, 1)])
def test_pvt_attention_matches_plain(dim, heads, sr, monkeypatch):
    from jittor_pranet.models.encoders.pvtv2 import Attention

    h, w, b = (16, 16, 2) if sr == 8 else (8, 6, 2)
    m = Attention(dim, heads, True, sr)
    used = _spy(monkeypatch, kernels.attention, "attention")
    rng = np.random.default_rng(2)
    xn = rng.standard_normal((b, h * w, dim)).astype(np.float32)
    gn = rng.standard_normal((b, h * w, dim)).astype(np.float32)
    outs = []
    for context in (flags.disabled, lambda: flags.features(flags.FEATURES)):  # Jittor's ops, then the kernels
        with context():
            x = jt.array(xn)
            y = m(x, h, w)
            grads = jt.grad((y * jt.array(gn)).sum(), [x] + list(m.parameters()))
            outs.append([y.numpy()] + [g.numpy() for g in grads])
    assert len(used) == 1
    for a, r in zip(outs[1], outs[0]):
        assert _rel(a, r) < 5e-6
    with jt.no_grad():
        assert _rel(m(jt.array(xn), h, w).numpy(), outs[0][0]) < 5e-6
    assert len(used) == 2


@pytest.mark.parametrize("dim,window,n", [(64, 8, 3), (96, 7, 2), (128, 4, 5)])
def test_maxvit_window_attention_matches_plain(dim, window, n, monkeypatch):
    """MaxViT's biased attention (per-head q|k|v, relative-position MLP bias) as one op: output and
    the gradients of the input, the qkv/proj weights and the bias MLP (summed over partitions)."""
    from jittor_pranet.models.encoders.maxvit import AttentionCl

    m = AttentionCl(dim, window)
    m.eval()  # the bias MLP's dropout off: both paths see the same bias
    used = _spy(monkeypatch, kernels.window_attention, "window_attention")
    rng = np.random.default_rng(3)
    t = window * window
    xn = rng.standard_normal((n, t, dim)).astype(np.float32)
    gn = rng.standard_normal((n, t, dim)).astype(np.float32)
    outs = []
    for context in (flags.disabled, lambda: flags.features(flags.FEATURES)):  # Jittor's ops, then the kernel
        with context():
            x = jt.array(xn)
            y = m(x)
            grads = jt.grad((y * jt.array(gn)).sum(), [x] + list(m.parameters()))
            outs.append([y.numpy()] + [g.numpy() for g in grads])
    assert len(used) == 1
    assert len(outs[0]) > 6  # x, qkv, proj and the bias MLP's weights
    for a, r in zip(outs[1], outs[0]):
        assert _rel(a, r) < 5e-6
    with jt.no_grad():
        assert _rel(m(jt.array(xn)).numpy(), outs[0][0]) < 5e-6
    assert len(used) == 2


@pytest.mark.parametrize("dim,heads,n_tokens", [(64, 2, 49), (96, 4, 16)])
def test_mist_multihead_attention_matches_plain(dim, heads, n_tokens, monkeypatch):
    """MIST's ``nn.MultiheadAttention`` (separate query, key and value inputs) through the attention op:
    output and the gradients of the three inputs and of in_proj / out_proj."""
    from jittor_pranet.models.decoders.mist import MultiheadAttention

    m = MultiheadAttention(dim, heads)
    rng = np.random.default_rng(4)
    m.in_proj_weight.assign(jt.array((rng.standard_normal((3 * dim, dim)) / dim ** 0.5).astype(np.float32)))
    m.in_proj_bias.assign(jt.array(rng.standard_normal(3 * dim).astype(np.float32) * 0.1))
    used = _spy(monkeypatch, kernels.attention, "attention")
    ins = [rng.standard_normal((2, n_tokens, dim)).astype(np.float32) for _ in range(3)]
    gn = rng.standard_normal((2, n_tokens, dim)).astype(np.float32)
    outs = []
    for context in (flags.disabled, lambda: flags.features(flags.FEATURES)):  # Jittor's ops, then the kernel
        with context():
            q, k, v = (jt.array(a) for a in ins)
            y = m(q, k, v)
            grads = jt.grad((y * jt.array(gn)).sum(), [q, k, v] + list(m.parameters()))
            outs.append([y.numpy()] + [g.numpy() for g in grads])
    assert len(used) == 1
    for a, r in zip(outs[1], outs[0]):
        assert _rel(a, r) < 5e-6
    with jt.no_grad():
        assert _rel(m(*(jt.array(a) for a in ins)).numpy(), outs[0][0]) < 5e-6
    assert len(used) == 2


@pytest.mark.parametrize("shape,eps", [((2, 37, 64), 1e-6), ((3, 5, 320), 1e-5), ((7, 512), 1e-6)])
def test_layernorm_matches_plain_module(shape, eps, monkeypatch):
    from jittor_pranet.ops import LayerNorm

    c = shape[-1]
    rng = np.random.default_rng(6)
    m = LayerNorm(c, eps=eps)
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    m.weight.assign(jt.array(w))
    m.bias.assign(jt.array(b))
    used = _spy(monkeypatch, kernels.layernorm, "layer_norm")
    xn = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gn = rng.standard_normal(shape).astype(np.float32)
    outs = []
    for context in (flags.disabled, lambda: flags.features(["norm"])):  # Jittor's ops, then the kernel
        with context():
            x = jt.array(xn)
            y = m(x)
            grads = jt.grad((y * jt.array(gn)).sum(), [x, m.weight, m.bias])
            outs.append([y.numpy()] + [g.numpy() for g in grads])
    assert len(used) == 1
    for a, r in zip(outs[1], outs[0]):
        assert _rel(a, r) < 5e-6
    with jt.no_grad():
        assert _rel(m(jt.array(xn)).numpy(), outs[0][0]) < 5e-6
    assert len(used) == 2


def test_gelu_matches_plain_module(monkeypatch):
    from jittor_pranet.ops import GELU

    rng = np.random.default_rng(7)
    xn = (rng.standard_normal((3, 50, 40)) * 3).astype(np.float32)
    gn = rng.standard_normal(xn.shape).astype(np.float32)
    quick = GELU()
    used = _spy(monkeypatch, kernels.gelu, "gelu")
    outs = []
    for m in (nn.GELU(), quick):
        x = jt.array(xn)
        y = m(x)
        (gx,) = jt.grad((y * jt.array(gn)).sum(), [x])
        outs.append((y.numpy(), gx.numpy()))
    assert _rel(outs[1][0], outs[0][0]) < 2e-6 and _rel(outs[1][1], outs[0][1]) < 2e-6
    assert len(used) == 1
    with flags.features(["conv"]):  # switched off: Jittor's own kernel
        assert _rel(quick(jt.array(xn)).numpy(), outs[0][0]) < 2e-6
    assert len(used) == 1


def test_models_choose_kernels_at_call_time(monkeypatch):
    """A model built with the kernels off takes them once they are on (and not while they are off):
    the layers read the flags at every call; building changes nothing."""
    from jittor_pranet.models import build_model
    from jittor_pranet.ops import Conv2d

    with flags.disabled():
        m = build_model("pranet_v2_res2net")
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert convs and all(isinstance(x, Conv2d) for x in convs)
    used = _spy(monkeypatch, kernels.batchnorm, "batch_norm_train")
    conv_calls = []
    real_usable = kernels.conv.usable
    monkeypatch.setattr(kernels.conv, "usable", lambda *a, **k: conv_calls.append(1) or real_usable(*a, **k))
    enc = m.resnet if hasattr(m, "resnet") else m.backbone
    enc.train()
    x = jt.array(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    with flags.disabled():
        enc.forward_features(x)[-1].sync()
    assert not used and conv_calls  # asked, refused
    enc.forward_features(x)[-1].sync()
    assert len(used) > 20  # every BatchNorm of the encoder


@pytest.mark.parametrize("residual,relu", [(False, True), (True, True), (True, False)])
def test_batchnorm_act_matches_plain_graph(residual, relu):
    """Training-mode BN (+ residual) (+ ReLU) as one op each way == BN module, add, ReLU."""
    rng = np.random.default_rng(8)
    xn, rn, gn = (rng.standard_normal((3, 5, 6, 7)).astype(np.float32) for _ in range(3))
    wn, bn_ = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    results = []
    from jittor_pranet.ops import batch_norm_act

    for fast_bn in (False, True):
        bn = BatchNorm2d(5)
        bn.weight.assign(wn)
        bn.bias.assign(bn_)
        bn.train()
        x, r = jt.array(xn), jt.array(rn)
        if fast_bn:
            assert kernels.batchnorm.batch_norm_train(x, bn.weight, bn.bias, bn.eps) is not None  # the kernel applies
            y = batch_norm_act(bn, x, r if residual else None, relu=relu)
        else:
            with flags.disabled():
                y = bn(x)
                y = y + r if residual else y
                y = nn.relu(y) if relu else y
        grads = jt.grad((y * jt.array(gn)).sum(), [x, r, bn.weight, bn.bias])
        results.append([y.numpy()] + [g.numpy() for g in grads] + [bn.running_var.numpy()])
    plain, fused = results
    assert (plain[0] == 0).any() == relu  # the ReLU really clips something
    for a, b in zip(fused, plain):
        assert _rel(a, b) < 2e-6


POOL_CASES = [  # kind, kernel, stride, padding, ceil_mode, (n, c, h, w), channel window
    ("max", 3, 2, 1, False, (2, 5, 13, 11), None),        # Res2Net's stem
    ("max", 3, 2, 1, False, (1, 3, 8, 8), (1, 2)),
    ("avg", 3, 1, 1, False, (2, 7, 9, 10), (4, 3)),       # stage pool, stride 1, last window
    ("avg", 3, 2, 1, False, (2, 6, 11, 13), (2, 2)),      # stage pool, stride 2
    ("avg_valid", 2, 2, 0, True, (2, 4, 13, 11), None),   # downsample AvgPoolCeil on odd sizes
    ("avg_valid", 2, 2, 0, True, (1, 3, 6, 8), None),
    ("avg", 3, 2, 1, True, (2, 3, 10, 11), None),         # ceil mode with padding: clipped divisor
    ("avg_valid", 3, 2, 1, True, (1, 3, 10, 11), (1, 2)),
    ("max", 3, 2, 1, True, (1, 2, 10, 11), None),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_pool2d_matches_torch_and_plain_ops(case):
    from jittor_pranet.ops import avg_pool3x3, avg_pool_ceil, max_pool3x3_s2

    kind, k, s, p, ceil, shape, window = case
    xn = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    first, count = window if window else (0, shape[1])
    sub = xn[:, first:first + count]
    y = kernels.pooling.pool2d(jt.array(xn), kind, k, s, p, ceil_mode=ceil, channels=window).numpy()
    plain_op = {("max", 3, 2, 1, False): lambda v: max_pool3x3_s2(v),  # the model's own pooling ops
                ("avg", 3, s, 1, False): lambda v: avg_pool3x3(v, s),
                ("avg_valid", k, k, 0, True): lambda v: avg_pool_ceil(v, k)}.get((kind, k, s, p, ceil))
    if plain_op is not None:
        plain = plain_op(jt.array(sub)).numpy()
        assert y.shape == plain.shape and _rel(y, plain) < 1e-6
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(sub)
    if kind == "max":
        ref = torch.nn.functional.max_pool2d(t, k, s, p, ceil_mode=ceil)
    else:
        ref = torch.nn.functional.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=kind == "avg")
    assert y.shape == tuple(ref.shape) and _rel(y, ref.numpy()) < 1e-6


@pytest.mark.parametrize("mode", ["auto", "nchw", "onednn"])
@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (1, 1)])
def test_conv2d_window_with_addend_matches_plain_conv(mode, k, stride):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 12, 9, 10)).astype(np.float32)
    a = rng.standard_normal((2, 8, 9, 10)).astype(np.float32)
    w = rng.standard_normal((5, 4, k, k)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    window = kernels.conv.conv2d_window
    with flags.features(flags.FEATURES, conv_mode=mode):
        got = window(jt.array(x), jt.array(w), jt.array(b), stride, k // 2, first=4, addend=jt.array(a),
                     addend_first=2, relu=True).numpy()
        plain_window = window(jt.array(x), jt.array(w), jt.array(b), stride, k // 2, first=8).numpy()
    with flags.disabled():
        ref = nn.conv2d(jt.array(x[:, 4:8] + a[:, 2:6]), jt.array(w), jt.array(b), stride, k // 2).numpy()
        ref2 = nn.conv2d(jt.array(x[:, 8:12]), jt.array(w), jt.array(b), stride, k // 2).numpy()
    assert _rel(got, np.maximum(ref, 0)) < 2e-6
    assert _rel(plain_window, ref2) < 2e-6 and plain_window.min() < 0  # relu off: negatives kept


def test_cat_conv1x1_matches_concat_then_conv():
    rng = np.random.default_rng(3)
    t1 = rng.standard_normal((2, 2, 5, 7)).astype(np.float32)
    t2 = rng.standard_normal((2, 6, 5, 7)).astype(np.float32)
    t3 = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    w = rng.standard_normal((9, 6, 1, 1)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    res = rng.standard_normal((2, 9, 5, 7)).astype(np.float32)
    cat = np.concatenate([t1, t2[:, 3:5], t3[:, 1:3]], axis=1)
    with flags.disabled():
        ref = nn.conv2d(jt.array(cat), jt.array(w), jt.array(b)).numpy()
    pieces = [(jt.array(t1), 0), (jt.array(t2), 3), (jt.array(t3), 1)]
    cat_conv1x1 = kernels.conv.cat_conv1x1
    got = cat_conv1x1(pieces, jt.array(w), jt.array(b), jt.array(res), relu=True).numpy()
    assert _rel(got, np.maximum(ref + res, 0)) < 2e-6
    got = cat_conv1x1(pieces, jt.array(w), jt.array(b)).numpy()
    assert _rel(got, ref) < 2e-6
    with pytest.raises(RuntimeError, match="channel window"):  # a window past a piece's channels
        cat_conv1x1([(jt.array(t1), 1)] + pieces[1:], jt.array(w), jt.array(b)).sync()


@pytest.mark.parametrize("bias,residual", [(True, True), (True, False), (False, True), (False, False)])
def test_linear_matches_plain_and_keeps_gradients(bias, residual):
    rng = np.random.default_rng(6)
    xn = rng.standard_normal((2, 5, 7)).astype(np.float32)
    wn = rng.standard_normal((9, 7)).astype(np.float32)
    bn = rng.standard_normal(9).astype(np.float32) if bias else None
    rn = rng.standard_normal((2, 5, 9)).astype(np.float32) if residual else None
    ref = xn.astype(np.float64) @ wn.T.astype(np.float64)
    ref = ref + (bn if bias else 0) + (rn if residual else 0)
    arr = lambda v: None if v is None else jt.array(v)  # noqa: E731
    with jt.no_grad():
        assert kernels.linear.fused(arr(xn), arr(wn), arr(bn), arr(rn))
        got = kernels.linear.linear(arr(xn), arr(wn), arr(bn), arr(rn)).numpy()
    assert got.shape == ref.shape and _rel(got, ref) < 2e-6
    # with gradients needed the layer is nn.Linear exactly (Jittor's own ops)
    from jittor_pranet.ops import Linear

    plain, lin = nn.Linear(7, 9, bias=bias), Linear(7, 9, bias=bias)
    for m in (plain, lin):
        m.weight.assign(wn)
        if bias:
            m.bias.assign(bn)
    x = jt.array(xn)
    (g_plain,) = jt.grad(plain(x).sqr().sum(), [x])
    (g_fast,) = jt.grad(lin(x).sqr().sum(), [x])
    assert _rel(g_fast.numpy(), g_plain.numpy()) < 1e-6
    with jt.no_grad():  # inference: the fused kernel, same values
        assert _rel(lin(x).numpy(), plain(x).numpy()) < 2e-6
    # the functional form with gradients needed: Jittor's ops, same value, gradient 1 to the residual
    r = jt.array(rng.standard_normal((2, 5, 9)).astype(np.float32))
    assert not kernels.linear.fused(x, arr(wn), arr(bn), r)
    y = kernels.linear.linear(x, arr(wn), arr(bn), r)
    expect = xn.astype(np.float64) @ wn.T + (bn if bias else 0) + r.numpy()
    assert _rel(y.numpy(), expect) < 2e-6
    assert np.array_equal(jt.grad(y.sum(), [r])[0].numpy(), np.ones((2, 5, 9), np.float32))


@pytest.mark.parametrize("name", ["pranet_v2_res2net", "pranet_v1_res2net"])
def test_fused_inference_parity_with_torch(name):
    """BatchNorm folding plus Res2Net's fused blocks (odd sizes: see the pool tests; the models need 32 | H, W)."""
    pytest.importorskip("torch")
    from jittor_pranet import parity
    from jittor_pranet.models.encoders.res2net import Bottle2neck
    from jittor_pranet.models.layers import BasicConv2d

    jm, tm = parity.make_pair(name, 1, seed=4)
    state = {k: v.numpy() for k, v in jm.state_dict().items()}
    n_blocks = sum(isinstance(m, Bottle2neck) for m in jm.modules())
    n_basic = sum(isinstance(m, BasicConv2d) for m in jm.modules())
    jm = fuse_for_inference(jm)
    after = jm.state_dict()  # the folding keeps the checkpoint: same keys, same (unfolded) values
    assert list(after) == list(state) and all(np.array_equal(after[k].numpy(), v) for k, v in state.items())
    kinds = [type(m).__name__ for m in jm.modules()]
    assert kinds.count("FoldedBottle2neck") == n_blocks and kinds.count("FoldedConvBN") == n_basic
    assert kinds.count("FoldedRes2NetV1b") == 1 and "Bottle2neck" not in kinds and "BasicConv2d" not in kinds
    x = np.random.default_rng(5).standard_normal((2, 3, 96, 160)).astype(np.float32)
    outputs = parity.model_info(name).outputs
    rows = parity.compare_forward(jm, tm, x, outputs)
    bad = [(r.tensor, r.rel) for r in rows if not r.passed(parity.DEFAULT_TOLERANCE)]
    assert not bad
    # training mode runs the unfolded graph again: same outputs as an identical model never fused
    twin, _ = parity.make_pair(name, 1, seed=4)
    jm.train()
    twin.train()
    xs = jt.array(x[:1, :, :64, :64])
    for a, b in zip(jm(xs), twin(xs)):
        assert _rel(a.numpy(), b.numpy()) < 1e-6
    jm = unfuse(jm)
    kinds = [type(m).__name__ for m in jm.modules()]
    assert not any(k.startswith("Folded") for k in kinds) and kinds.count("Bottle2neck") == n_blocks


def test_res2net_training_path_matches_plain_modules(monkeypatch):
    """Res2Net's training forward with BatchNorm+ReLU(+residual) kernels == the same convolution and
    BatchNorm kernels followed by separate (Jittor) add and ReLU: outputs, every parameter gradient
    and the running statistics, float32."""
    from jittor_pranet.models.encoders import res2net
    from jittor_pranet.models.encoders.res2net import Res2NetV1b

    def bn_then_add_relu(bn, x, residual=None, relu=False):  # the plain composition of batch_norm_act
        y = bn(x)
        y = y if residual is None else y + residual
        return nn.relu(y) if relu else y

    fused_calls = _spy(monkeypatch, kernels.batchnorm, "batch_norm_train")

    # Seeded: with other weights a ReLU input can sit within float32 rounding of 0 and flip sides
    # between the two paths (seen: one input 3.9e-7 of 13.9 changed one BN bias gradient by 0.65%),
    # which is float32 arithmetic, not a defect of either path.
    rng = np.random.default_rng(0)
    jt.set_global_seed(0)
    xn = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    init = None
    results = []
    for fused_act in (False, True):
        enc = Res2NetV1b((2, 1, 1, 1))
        if init is None:  # BN affine away from (1, 0) so the ops' handling of it matters
            init = [rng.standard_normal(p.shape).astype(np.float32) if p.ndim == 1 else p.numpy()
                    for p in enc.parameters()]
        for p, v in zip(enc.parameters(), init):
            p.assign(v)
        bns = [m for m in enc.modules() if isinstance(m, BatchNorm2d)]
        assert len(bns) > 20
        if fused_act:
            monkeypatch.undo()
            fused_calls = _spy(monkeypatch, kernels.batchnorm, "batch_norm_train")
        else:  # the plain composition: BN kernel alone, then Jittor's add and ReLU
            monkeypatch.setattr(res2net, "batch_norm_act", bn_then_add_relu)
        enc.train()
        feats = enc.forward_features(jt.array(xn))
        loss = sum((f * jt.array(np.random.default_rng(i).standard_normal(f.shape).astype(np.float32))).sum()
                   for i, f in enumerate(feats))
        grads = jt.grad(loss, enc.parameters())
        stats = [v.numpy() for k, v in enc.state_dict().items() if k.endswith(("running_mean", "running_var"))]
        results.append(([f.numpy() for f in feats], [g.numpy() for g in grads], stats))
        assert len(fused_calls) == len(bns)  # both ways every BatchNorm ran as the kernel
    (f0, g0, s0), (f1, g1, s1) = results
    # not bit-identical: Jittor compiles with -Ofast, so the fused expressions may be re-associated
    assert max(_rel(a, b) for a, b in zip(f1, f0)) < 1e-5
    assert max(_rel(a, b) for a, b in zip(g1, g0) if np.abs(b).max() > 0) < 1e-4
    assert max(_rel(a, b) for a, b in zip(s1, s0)) < 1e-5


@pytest.mark.parametrize("name", ["pranet_v2_pvt", "pranet_v1_res2net"])
def test_fused_models_fall_back_to_jittor_kernels(name):
    """The same fused model with the kernels switched off at call time (as on CUDA) runs Jittor's
    own kernels through every fallback branch and gives the same outputs."""
    from jittor_pranet.models import build_model

    jt.set_global_seed(3)
    m = fuse_for_inference(build_model(name))
    x = jt.array(np.random.default_rng(4).standard_normal((1, 3, 64, 64)).astype(np.float32))
    with jt.no_grad():
        ref = [o.numpy() for o in m(x)]
        for names in ([], ["conv"], ["conv", "bn", "tokens"]):  # everything off, then partial sets
            with flags.features(names):
                got = [o.numpy() for o in m(x)]
            assert max(_rel(a, b) for a, b in zip(got, ref)) < 1e-5, names


def test_fused_res2net_keeps_input_gradients_in_eval_mode():
    """Gradients w.r.t. the input of a fused model (saliency-style use of a loaded model) take the
    folded stem convolutions but not the block ops, which have no backward: same as unfused."""
    from jittor_pranet.models.encoders.res2net import Res2NetV1b
    from jittor_pranet.models.weight_init import init_pytorch_defaults_

    jt.set_global_seed(5)
    enc = Res2NetV1b((1, 1, 1, 1))
    # PyTorch-default weights, as before the official scheme: with untrained BN statistics the
    # kaiming(fan_out) weights grow activations layer by layer and the two float32 orders of summation
    # then differ by 6e-3 of the gradient's max (the forward outputs still agree, tested above)
    init_pytorch_defaults_(enc)
    enc.eval()
    xn = np.random.default_rng(6).standard_normal((1, 3, 64, 64)).astype(np.float32)

    def input_grad():
        x = jt.array(xn)
        return jt.grad(enc.forward_features(x)[-1].sum(), [x])[0].numpy()

    plain = input_grad()
    enc = fuse_for_inference(enc)
    assert type(enc).__name__ == "FoldedRes2NetV1b" and isinstance(enc.layer1[0], FoldedBottle2neck)
    fused = input_grad()
    assert np.abs(plain).max() > 0 and _rel(fused, plain) < 1e-5
