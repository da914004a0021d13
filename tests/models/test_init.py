"""Initial weights are distributed as the official PyTorch code draws them (models/weight_init.py).

For every registered model, every tensor right after construction is compared with the official
rule of the layer that owns it, written here from the official sources independently of the
implementation (by layer type and position):

* constants (norm weights / biases, running statistics, zero biases): exact;
* random tensors: mean within 5 standard errors of 0 (SE = std / sqrt(n)), sample std within 5 SE of
  the expected std (SE of a sample std: std * sqrt((kurtosis - 1) / (4 n)); kurtosis 3 for a normal,
  1.8 for a uniform), plus the support (|x| <= bound for a uniform, <= 2 for timm's truncated normal);
  tensors under 16 elements are checked on their support only (a std of 3 values says nothing).

Where a PyTorch twin exists (jittor_pranet.reference, initialised like the official classes), the
std of every tensor of >= 1000 elements is also compared Jittor vs twin: ratio within 10%, or
within 5 standard errors of the ratio where that is wider (tensors of 1000-2500 elements).
"""
import math

import numpy as np
import pytest

from jittor_pranet.models import build_model, list_models, model_info
from jittor_pranet.ops import jt

#: encoders small enough for the suite where size does not matter (the rule is per layer)
SMALL_ENCODER = {"pvt": "pvt_v2_b0", "maxvit": "maxxvit_rmlp_tiny_rw_256"}
#: model families whose initialisation comes from elsewhere (timm's, for the MaxViT models)
NOT_COVERED = {}

KURTOSIS = {"normal": 3.0, "uniform": 1.8}
MIN_STATS = 16


def _build(name, seed=0):
    info = model_info(name)
    kw = {}
    if info.encoder_family in SMALL_ENCODER:
        kw["encoder"] = SMALL_ENCODER[info.encoder_family]
    jt.set_global_seed(seed)
    return build_model(name, num_classes=info.default_num_classes if info.task != "binary" else 1, **kw), kw


def _is_norm(m):
    return "Norm" in type(m).__name__


def _conv_or_linear(m):
    return type(m).__name__ in ("Conv2d", "Linear", "Conv")


def _pytorch_default(m):
    bound = 1.0 / math.sqrt(int(np.prod(m.weight.shape[1:])))
    return ("uniform", bound)


def expected_rules(model, name):
    """``{state_dict key: rule}`` with rule ("const", value) | ("normal", std) | ("trunc", std) |
    ("uniform", bound): the official initialisation of every tensor of ``model``."""
    info = model_info(name)
    enc_attrs = tuple(a for a in (info.encoder_attr, info.encoder2_attr) if a)
    enc_family = info.encoder_family
    rules = {}
    for mname, m in model.named_modules():
        own = {k: v for k, v in m.__dict__.items() if isinstance(v, jt.Var)}
        if not own:
            continue
        p = f"{mname}." if mname else ""
        in_encoder = any(mname == a or mname.startswith(a + ".") for a in enc_attrs)
        if in_encoder and enc_family == "maxvit":
            rules.update(_maxvit_rules(m, mname, p, own))
            continue
        if "in_proj_weight" in own:  # nn.MultiheadAttention (MIST's decoder) resets its own parameters
            fan_out, fan = m.in_proj_weight.shape
            rules[p + "in_proj_weight"] = ("uniform", math.sqrt(6.0 / (fan + fan_out)))
            rules[p + "in_proj_bias"] = ("const", 0.0)
            rules[p + "out_proj.weight"] = _pytorch_default(m.out_proj)
            rules[p + "out_proj.bias"] = ("const", 0.0)
            continue
        if mname.endswith(".out_proj") and f"{mname[:-len('out_proj')]}in_proj_weight" in rules:
            continue
        in_emcad_block = info.family == "emcad" and mname.startswith("decoder.") and \
            not mname.startswith("decoder.ConvBlock")
        if _is_norm(m):
            rules[p + "weight"] = ("const", 1.0)
            rules[p + "bias"] = ("const", 0.0)
            if "running_mean" in own:
                rules[p + "running_mean"] = ("const", 0.0)
                rules[p + "running_var"] = ("const", 1.0)
            continue
        assert _conv_or_linear(m), (mname, type(m))
        is_linear = m.weight.ndim == 2
        has_bias = getattr(m, "bias", None) is not None
        if in_encoder and enc_family == "pvt":
            if is_linear:
                w = ("trunc", 0.02)
            else:
                out, _, kh, kw = m.weight.shape
                w = ("normal", math.sqrt(2.0 / (kh * kw * out // m.groups)))
            b = ("const", 0.0)
        elif in_encoder and not is_linear:  # Res2Net convs: kaiming_normal(fan_out, relu)
            out, _, kh, kw = m.weight.shape
            w, b = ("normal", math.sqrt(2.0 / (out * kh * kw))), None
        elif in_emcad_block:
            w, b = ("normal", 0.02), ("const", 0.0)
        else:  # PyTorch's defaults (Res2Net fc, PraNet decoders, DSRA heads, stems, EMCAD heads)
            w = b = _pytorch_default(m)
        rules[p + "weight"] = w
        if has_bias:
            rules[p + "bias"] = b
    return rules


def _maxvit_rules(m, mname, p, own):
    """timm's MaxViT scheme (vit_eff: attention Linear xavier_uniform, MLP biases normal 1e-6, other
    biases 0; convolutions normal sqrt(2 / fan_out); 'normal': everything 0.02), LayerScale 1e-6."""
    from jittor_pranet.models.encoders.maxvit_specs import MAXVIT_SPECS

    if _is_norm(m):
        out = {p + "weight": ("const", 1.0), p + "bias": ("const", 0.0)}
        if "running_mean" in own:
            out.update({p + "running_mean": ("const", 0.0), p + "running_var": ("const", 1.0)})
        return out
    if "gamma" in own:
        return {p + "gamma": ("const", np.float32(1e-6))}
    assert _conv_or_linear(m), (mname, type(m))
    encoder = mname.split(".")[0]
    scheme = MAXVIT_SPECS[SMALL_ENCODER["maxvit"] if encoder == "backbone1"
                          else "maxvit_rmlp_tiny_rw_256"].init
    has_bias = getattr(m, "bias", None) is not None
    if scheme == "normal":
        w, b = ("normal", 0.02), ("const", 0.0)
    elif ".attn_block." in mname or ".attn_grid." in mname:
        fan_out, fan = m.weight.shape[0], int(np.prod(m.weight.shape[1:]))
        w = ("uniform", math.sqrt(6.0 / (fan + fan_out)))
        inner = mname.split(".attn_block.")[-1].split(".attn_grid.")[-1]
        b = ("normal", 1e-6) if "mlp" in inner else ("const", 0.0)
    else:
        out_ch, _, kh, kw = m.weight.shape
        w, b = ("normal", math.sqrt(2.0 / (kh * kw * out_ch // m.groups))), ("const", 0.0)
    rules = {p + "weight": w}
    if has_bias:
        rules[p + "bias"] = b
    return rules


def check_tensor(values, rule):
    """None if ``values`` fit ``rule`` within sampling error, else a reason."""
    v = np.asarray(values, np.float64).ravel()
    kind, param = rule
    if kind == "const":
        return None if np.all(v == param) else f"expected all {param}, got mean {v.mean():.4g}"
    n = v.size
    if kind == "uniform":
        if np.abs(v).max() > param * (1 + 1e-6):
            return f"outside +-{param:.4g}: max |x| {np.abs(v).max():.4g}"
        std, kurt = param / math.sqrt(3.0), KURTOSIS["uniform"]
    else:
        std, kurt = param, KURTOSIS["normal"]
        if kind == "trunc" and np.abs(v).max() > 2.0:
            return "outside the truncation bounds +-2"
        if np.abs(v).max() > 7 * std:
            return f"value {np.abs(v).max():.4g} beyond 7 std ({std:.4g})"
    if n < MIN_STATS:
        return None
    se_mean = std / math.sqrt(n)
    se_std = std * math.sqrt((kurt - 1) / (4 * n))
    if abs(v.mean()) > 5 * se_mean:
        return f"mean {v.mean():.4g} (expected 0 +- {5 * se_mean:.3g})"
    if abs(v.std() - std) > 5 * se_std:
        return f"std {v.std():.4g} (expected {std:.4g} +- {5 * se_std:.3g})"
    return None


def mismatches(model, name):
    rules = expected_rules(model, name)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    assert set(rules) == set(state), (sorted(set(state) - set(rules))[:5], sorted(set(rules) - set(state))[:5])
    return {k: why for k in state if (why := check_tensor(state[k], rules[k])) is not None}


@pytest.mark.parametrize("name", list_models())
def test_every_tensor_is_distributed_as_the_official_initialisation(name):
    family = model_info(name).family
    if family in NOT_COVERED:
        pytest.skip(NOT_COVERED[family])
    model, _ = _build(name)
    bad = mismatches(model, name)
    assert not bad, dict(list(bad.items())[:8])


def test_the_check_fails_on_jittor_default_initialisation():
    """The checker can fail: a PVTv2 encoder with PyTorch's defaults everywhere is rejected
    (its Linear layers are then uniform on +-1/sqrt(fan_in), 4-6x wider than std 0.02)."""
    from jittor_pranet.models.weight_init import init_pytorch_defaults_

    model, _ = _build("pranet_v2_pvt")
    init_pytorch_defaults_(model.backbone)
    bad = mismatches(model, "pranet_v2_pvt")
    assert any(k.startswith("backbone.block1.0.attn.q.") for k in bad)
    assert len(bad) > 50


def test_initialisation_is_seeded():
    a, _ = _build("emcad_b2_dsra", seed=3)
    b, _ = _build("emcad_b2_dsra", seed=3)
    c, _ = _build("emcad_b2_dsra", seed=4)
    key = "decoder.mscb4.0.msdc.dwconvs.1.0.weight"
    sa, sb, sc = (m.state_dict()[key].numpy() for m in (a, b, c))
    np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(sa, sc)
    from jittor_pranet.engine.optim import trainable_named_parameters

    assert all(not p.is_stop_grad() for _, p in trainable_named_parameters(a))


def ratio_tolerance(n: int) -> float:
    """10%, or 5 standard errors of the ratio of two sample stds of n normal values when that is
    wider (sqrt(2) * sqrt(2 / (4 n)) relative; 15.6% at n = 1024, 10% from n = 2500)."""
    return max(0.10, 5 * math.sqrt(2) * math.sqrt((KURTOSIS["normal"] - 1) / (4 * n)))


def _twin(name, kw):
    torch = pytest.importorskip("torch", reason="the twin comparison needs torch")
    torch.manual_seed(0)
    info = model_info(name)
    if info.family == "emcad":
        from jittor_pranet.reference.torch_emcad import build_torch_emcad

        return build_torch_emcad(name, num_classes=info.default_num_classes, **kw)
    from jittor_pranet.reference.torch_models import TORCH_MODELS, build_torch_model

    if name not in TORCH_MODELS:
        pytest.skip(f"no PyTorch twin of {name}")
    tkw = {"pvt_variant": kw["encoder"].rsplit("_", 1)[-1]} if "encoder" in kw else {}
    return build_torch_model(name, **tkw)


@pytest.mark.parametrize("name", list_models())
def test_tensor_stds_match_the_pytorch_twin(name):
    if model_info(name).family in NOT_COVERED:
        pytest.skip(NOT_COVERED[model_info(name).family])
    model, kw = _build(name)
    twin = _twin(name, kw)
    ours = {k: v.numpy() for k, v in model.state_dict().items()}
    theirs = {k: v.detach().numpy() for k, v in twin.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(ours) == set(theirs)
    ratios = {k: float(ours[k].std() / theirs[k].std()) for k in ours if ours[k].size >= 1000 and theirs[k].std() > 0}
    assert len(ratios) > 20
    off = {k: r for k, r in ratios.items() if abs(r - 1) > ratio_tolerance(ours[k].size)}
    assert not off, off
    constant = [k for k in ours if theirs[k].size > 1 and theirs[k].std() == 0]
    for k in constant:
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
