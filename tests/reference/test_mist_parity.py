"""MIST's ``CAM`` decoder (single and DSRA dual) and ``MISTNet``: Jittor vs our PyTorch twin.

* Against the official code (not available here): ``tools/check_mist_official.py`` loaded our twin's
  random weights into the official ``CAM`` (single 9 classes, dual 9 and 4 classes, 'small' widths,
  256-input feature sizes, batch 2, float64, official eval-mode dropout disabled): identical keys in
  identical order, every output equal (worst relative difference 0.0, measured 2026-12-03); decoder
  parameters 221,246,400 (single) and 221,272,392 (dual, 9 classes), as the official class counts.
* Keys: the Jittor decoder's state_dict keys, order and shapes are the twin's and the official ones
  (``tests/fixtures/mist_official_keys.json``, written by that tool from the official ``MIST_CAM``), and so
  are the whole model's (700 keys single, 716 dual; 286,500,924 / 286,526,916 parameters at 9 classes).
* Forward parity, eval mode, random weights / LayerNorm parameters copied from the twin (float64):
  every block output (``d5`` .. ``d1``), every DSRA head and every output within 5e-5 of max |torch|,
  for the full 'small' decoder at 256-input sizes and for smaller widths (heads by the divisor rule).
* ``MISTNet`` wiring (stem, heads, output order and size, state_dict order, input contract) with a
  small stand-in encoder, and once on the real MaxxViT encoder at 256 x 256 (dual, 4 classes).
"""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs torch (pip install 'jittor-pranet[torch]')")

from jittor_pranet import checkpoint as ck  # noqa: E402
from jittor_pranet.errors import UserError  # noqa: E402
from jittor_pranet.models import mist as jmist  # noqa: E402
from jittor_pranet.models.decoders.mist import (  # noqa: E402
    OFFICIAL_HEADS,
    MISTDecoder,
    MultiheadAttention,
    decoder_heads,
    decoder_widths,
)
from jittor_pranet.models.weight_init import init_mist_decoder_  # noqa: E402
from jittor_pranet.ops import Conv2d, jt  # noqa: E402
from jittor_pranet.reference import torch_mist as tmist  # noqa: E402
from jittor_pranet.reference import torch_models as tm  # noqa: E402

from jittor import nn  # noqa: E402

TOL = 5e-5
SMALL = (96, 192, 384, 768)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OFFICIAL = json.loads((FIXTURES / "mist_official_keys.json").read_text())
ENCODER = "maxxvit_rmlp_small_rw_256"


def _official(name, prefix="", num_classes=9):
    """Official (key, shape) list, num_batches_tracked dropped, class dims set to ``num_classes``."""
    out = []
    for k, shape in OFFICIAL["models"][name]["keys"]:
        if k.endswith("num_batches_tracked") or not k.startswith(prefix):
            continue
        if "out_head" in k and shape[0] == OFFICIAL["num_classes"]:
            shape = [num_classes] + shape[1:]
        out.append((k[len(prefix):], tuple(shape)))
    return out


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _decoder_pair(channels, dual, num_classes, seed):
    tdec = tm.randomize_(tmist.MISTDecoder(channels, dual=dual, num_classes=num_classes), seed).double().eval()
    jdec = MISTDecoder(channels, dual=dual, num_classes=num_classes)
    assert [(k, tuple(v.shape)) for k, v in jdec.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in tdec.state_dict().items()]
    ck.load_state_dict(jdec, tm.state_dict_numpy(tdec), strict=True, source="twin weights")
    jdec.eval()
    return jdec, tdec


def test_widths_and_heads():
    assert decoder_widths(SMALL) == (1536, 768, 384, 192, 96)
    assert decoder_heads(decoder_widths(SMALL)) == OFFICIAL_HEADS == (16, 12, 8, 4, 2)
    assert decoder_heads(decoder_widths((64, 128, 256, 512))) == (16, 8, 8, 4, 2)
    assert decoder_heads(decoder_widths((32, 64, 128, 256))) == (16, 8, 8, 4, 2)
    assert tmist.decoder_heads(tmist.decoder_widths((64, 128, 256, 512))) == (16, 8, 8, 4, 2)
    with pytest.raises(ValueError, match="divisors"):
        MISTDecoder((32, 64, 128, 256), heads=(16, 12, 8, 4, 2))


# one full-size case (221 M parameters): keys, order, the official parameter count, parity at 256 sizes
def test_full_small_decoder_dual_9_classes():
    jdec, tdec = _decoder_pair(SMALL, dual=True, num_classes=9, seed=7)
    assert sum(p.numel() for p in tdec.parameters()) == 221_272_392
    assert jmist.decoder_parameter_count(jdec) == 221_272_392
    assert "block_9.conv3.weight" in jdec.state_dict()
    assert [(k, tuple(v.shape)) for k, v in jdec.state_dict().items()] == _official("mist_dsra", "decoder.")
    assert OFFICIAL["models"]["mist_dsra"]["decoder_parameters"] == 221_272_392
    _check_parity(jdec, tdec, SMALL, (64, 32, 16, 8), batch=1, seed=1)


def test_single_decoder_keys_are_official():
    """Twin and Jittor build the same keys for any widths; at the 'small' widths the twin's (built on the
    meta device: shapes only) are the official single decoder's."""
    with torch.device("meta"):
        tdec = tmist.MISTDecoder(SMALL, dual=False)
    assert [(k, tuple(v.shape)) for k, v in tdec.state_dict().items()] == _official("mist", "decoder.")
    assert sum(p.numel() for p in tdec.parameters()) == OFFICIAL["models"]["mist"]["decoder_parameters"] \
        == 221_246_400


@pytest.mark.parametrize("channels,dual,num_classes,batch", [
    ((32, 64, 128, 256), False, 4, 2),
    ((32, 64, 128, 256), True, 4, 2),
    ((64, 128, 256, 512), False, 9, 1),
])
def test_decoder_parity_smaller_widths(channels, dual, num_classes, batch):
    jdec, tdec = _decoder_pair(channels, dual, num_classes, seed=3)
    _check_parity(jdec, tdec, channels, (32, 16, 8, 4), batch=batch, seed=2)


def _check_parity(jdec, tdec, channels, sizes, batch, seed):
    rng = np.random.default_rng(seed)
    skips = [rng.standard_normal((batch, c, s, s)).astype(np.float32) for c, s in zip(channels, sizes)]
    t_inter, j_inter = {}, {}
    with torch.no_grad():
        t_out = tdec(*[torch.from_numpy(s).double() for s in skips], inter=t_inter)
    with jt.no_grad():
        j_out = jdec(*[jt.array(s) for s in skips], inter=j_inter)
    assert set(t_inter) == set(j_inter)
    names = ["d5", "d4", "d3", "d2", "d1"] + ([f"d{k}_{s}" for k in (4, 3, 2, 1) for s in ("fg", "bg")]
                                              if jdec.dual else [])
    assert sorted(names) == sorted(t_inter)
    pairs = [(k, j_inter[k], t_inter[k]) for k in names] + \
        [(f"out{i}", j, t) for i, (j, t) in enumerate(zip(j_out, t_out))]
    assert len(j_out) == len(t_out) == (8 if jdec.dual else 4)
    rows = []
    for k, j, t in pairs:
        jn, tn = j.numpy(), t.numpy()
        assert jn.shape == tn.shape, k
        assert np.abs(tn).max() > 1e-3, f"{k} is ~0: the comparison would prove nothing"
        rows.append((_rel(jn, tn), k))
    worst = max(rows)
    print(f"MIST decoder {channels} dual={jdec.dual}: worst {worst[1]} {worst[0]:.2e} ({len(rows)} tensors)")
    assert worst[0] <= TOL, sorted(rows)[-5:]


def test_parity_detects_a_wrong_weight():
    """A changed value projection of block 9 shows in ``d1`` and the outputs, not in ``d2``; a changed key
    bias is invisible (it adds the same score to every key: softmax cancels it)."""
    channels, sizes = (32, 64, 128, 256), (16, 8, 4, 2)
    jdec, tdec = _decoder_pair(channels, False, 4, seed=3)
    rng = np.random.default_rng(0)
    skips = [rng.standard_normal((1, c, s, s)).astype(np.float32) for c, s in zip(channels, sizes)]
    with torch.no_grad():
        t_inter = {}
        tdec(*[torch.from_numpy(x).double() for x in skips], inter=t_inter)

    def rel_after(edit):
        j_inter = {}
        sd = {k: v.numpy().copy() for k, v in jdec.state_dict().items()}
        edit(sd)
        ck.load_state_dict(jdec, sd, strict=True, source="edited")
        jdec(*[jt.array(x) for x in skips], inter=j_inter)
        return {k: _rel(j_inter[k].numpy(), t_inter[k].numpy()) for k in ("d2", "d1")}

    w = "block_9.trans.attention_output.attention.in_proj_weight"
    b = "block_9.trans.attention_output.attention.in_proj_bias"
    c = channels[0]
    sd0 = {k: v.numpy().copy() for k, v in jdec.state_dict().items()}

    def key_bias(sd):
        sd[b][c:2 * c] += 0.5

    def value_weight(sd):
        sd[w][2 * c:] *= 1.1

    rel = rel_after(key_bias)
    assert rel["d2"] <= TOL and rel["d1"] <= TOL, rel
    ck.load_state_dict(jdec, sd0, strict=True, source="restored")
    rel = rel_after(value_weight)
    assert rel["d2"] <= TOL and rel["d1"] > 10 * TOL, rel


def test_dropout_only_in_training_and_init():
    dec = MISTDecoder((32, 64, 128, 256), dual=True, num_classes=4)
    init_mist_decoder_(dec)
    mha = [m for _, m in dec.named_modules() if isinstance(m, MultiheadAttention)]
    assert len(mha) == 5
    for m in mha:
        w = m.in_proj_weight.numpy()
        bound = np.sqrt(6.0 / (4 * m.embed_dim))
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
        assert not m.in_proj_bias.numpy().any() and not m.out_proj.bias.numpy().any()
    conv = dec.block_6.conv2.weight.numpy()  # 3x3 over 2 * 256 inputs: PyTorch's uniform +-1/sqrt(fan_in)
    assert np.abs(conv).max() <= 1 / np.sqrt(9 * 512) and np.abs(conv).max() > 0.9 / np.sqrt(9 * 512)
    rng = np.random.default_rng(0)
    skips = [jt.array(rng.standard_normal((1, c, s, s)).astype(np.float32))
             for c, s in zip((32, 64, 128, 256), (16, 8, 4, 2))]
    dec.eval()
    a, b = dec(*skips)[3].numpy(), dec(*skips)[3].numpy()
    assert np.array_equal(a, b)
    dec.train()
    c, d = dec(*skips)[3].numpy(), dec(*skips)[3].numpy()
    assert _rel(c, d) > 1e-3 and _rel(c, a) > 1e-3


def test_decoder_gradients_match(monkeypatch):
    """Training mode with the dropout rates set to 0 (the decoder has no BatchNorm: training and eval then
    compute the same), float64 on both sides: every parameter gradient of a random linear loss on the 8
    dual outputs agrees with PyTorch's within 1e-6 of its tensor's max |g| (measured 6.2e-8: Jittor's
    GELU in float64 differs from the exact one by 8e-10, forward block outputs by ~6e-9)."""
    import jittor_pranet.models.decoders.mist as jdm

    for module in (jdm, tmist):
        monkeypatch.setattr(module, "BLOCK_DROPOUT", 0.0)
        monkeypatch.setattr(module, "WIDE_FOCUS_DROPOUT", 0.0)
    channels, sizes = (32, 64, 128, 256), (32, 16, 8, 4)  # block 5 then attends over 2 x 2 tokens, not 1
    jdec, tdec = _decoder_pair(channels, True, 4, seed=9)
    for v in jdec.state_dict().values():
        v.assign(v.float64())
    jdec.train()
    tdec.train()
    rng = np.random.default_rng(5)
    # float32-representable values: jt.array stores float64 arrays as float32
    skips = [rng.standard_normal((1, c, s, s)).astype(np.float32).astype(np.float64) for c, s in zip(channels, sizes)]
    t_out = tdec(*[torch.from_numpy(x) for x in skips])
    weights = [rng.standard_normal(tuple(o.shape)).astype(np.float32).astype(np.float64) for o in t_out]
    sum(float(0) + (o * torch.from_numpy(w)).sum() for o, w in zip(t_out, weights)).backward()
    j_out = jdec(*[jt.array(x).float64() for x in skips])
    assert str(j_out[0].dtype) == "float64"
    j_loss = sum((o * jt.array(w).float64()).sum() for o, w in zip(j_out, weights))
    named = list(jdec.state_dict().items())
    grads = jt.grad(j_loss, [p for _, p in named])
    t_params = dict(tdec.named_parameters())
    unused = {n for n in t_params if ".conv3." in n and n.startswith("block_") and "wide_focus" not in n}
    assert len(unused) == 8  # block_{6-9}.conv3.{weight,bias}: no gradient in the official either
    pairs = []
    for (n, _), g in zip(named, grads):
        t = t_params[n].grad
        if n in unused:
            assert t is None and not np.abs(g.numpy()).any(), n
            continue
        pairs.append((n, g.numpy(), t.numpy()))
    scale = max(np.abs(t).max() for _, _, t in pairs)
    # analytically zero: the key LayerNorms' biases (a shift shared by all keys adds the same score to
    # each: softmax cancels it); both sides hold rounding noise there
    zero = [(n, j) for n, j, t in pairs if np.abs(t).max() < 1e-9 * scale]
    assert {n for n, _ in zero} == {f"{b}.trans.attention_output.layernorm_k.bias"
                                    for b in ("block_5", "block_6", "block_7", "block_8", "block_9")}
    assert all(np.abs(j).max() < 1e-9 * scale for _, j in zero)
    worst = max((_rel(j, t), n) for n, j, t in pairs if np.abs(t).max() >= 1e-9 * scale)
    print(f"MIST decoder gradients: worst {worst[1]} {worst[0]:.2e} ({len(pairs)} tensors)")
    assert worst[0] <= 1e-6, worst


# ------------------------------------------------------------------ the full model, stand-in encoder
STUB_CHANNELS = (32, 64, 128, 256)


class _JStubEncoder(nn.Module):
    out_channels = STUB_CHANNELS

    def __init__(self):
        for i, c in enumerate(STUB_CHANNELS):
            setattr(self, f"proj{i}", Conv2d(3, c, 1))

    def forward_features(self, x):
        n, _, h, w = x.shape
        outs = []
        for i in range(4):
            f = 4 * 2 ** i
            pooled = x.reshape(n, 3, h // f, f, w // f, f).mean(dims=(3, 5))
            outs.append(getattr(self, f"proj{i}")(pooled))
        return outs


class _TStubEncoder(torch.nn.Module):
    out_channels = STUB_CHANNELS

    def __init__(self):
        super().__init__()
        for i, c in enumerate(STUB_CHANNELS):
            setattr(self, f"proj{i}", torch.nn.Conv2d(3, c, 1))

    def forward(self, x):
        return [getattr(self, f"proj{i}")(torch.nn.functional.avg_pool2d(x, 4 * 2 ** i)) for i in range(4)]


@pytest.mark.parametrize("dual", [False, True])
def test_mistnet_with_stand_in_encoder(monkeypatch, dual):
    monkeypatch.setattr(jmist, "build_encoder", lambda name, img_size, **kw: _JStubEncoder())
    monkeypatch.setattr(tmist, "_build_encoder", lambda name, img_size: _TStubEncoder())
    size, nc = 64, 4
    tmodel = tm.randomize_(tmist.MISTNet(nc, dual=dual, img_size=size), seed=5).double().eval()
    jm = jmist.MISTNet(nc, dual=dual, img_size=size)
    keys = list(jm.state_dict())
    assert keys == [k for k in tmodel.state_dict() if not k.endswith("num_batches_tracked")]
    tops = list(dict.fromkeys(k.split(".")[0] for k in keys))
    assert tops == ["conv", "backbone1", "decoder", "out_head1", "out_head2", "out_head3", "out_head4"]
    assert tuple(jm.state_dict()["out_head1.weight"].shape) == (nc, 256, 1, 1)
    ck.load_state_dict(jm, tm.state_dict_numpy(tmodel), strict=True, source="twin weights")
    jm.eval()
    x = np.random.default_rng(4).standard_normal((2, 1, size, size)).astype(np.float32)  # grayscale: stem
    with torch.no_grad():
        t_out, t_inter = tmodel(torch.from_numpy(x).double(), return_intermediates=True)
    with jt.no_grad():
        j_out, j_inter = jm(jt.array(x), return_intermediates=True)
    assert set(j_inter) == set(t_inter)
    names = jm.output_names
    assert names == (jmist.DUAL_OUTPUTS if dual else jmist.OUTPUTS) and len(j_out) == len(t_out) == len(names)
    for k in list(t_inter) + list(range(len(names))):
        j, t = (j_inter[k], t_inter[k]) if isinstance(k, str) else (j_out[k], t_out[k])
        if not isinstance(k, str):
            assert tuple(j.shape) == (2, nc, size, size)
        assert _rel(j.numpy(), t.numpy()) <= TOL, k
    for bad in ((1, 1, 64, 32), (1, 1, 32, 32), (1, 3, 128, 128)):
        with pytest.raises(UserError, match="64x64"):
            jm(jt.zeros(bad))


def test_full_model_keys_are_official():
    """The twin ``MISTNet`` (stem, MaxxViT ``backbone1``, decoder, heads; built on the meta device: shapes
    only) has the official keys and shapes in the official order, single and dual; the Jittor model's
    are checked against the same list by the parity test below."""
    pytest.importorskip("jittor_pranet.reference.torch_maxvit", reason="the PyTorch MaxxViT is not there yet")
    for name, dual in (("mist", False), ("mist_dsra", True)):
        with torch.device("meta"):
            tmodel = tmist.MISTNet(num_classes=9, dual=dual)
        assert [(k, tuple(v.shape)) for k, v in tmodel.state_dict().items()
                if not k.endswith("num_batches_tracked")] == _official(name)
        assert sum(p.numel() for p in tmodel.parameters()) == OFFICIAL["models"][name]["parameters"]


def test_full_model_parity_with_the_maxxvit_encoder():
    """Jittor ``MISTNet`` vs the twin on the real encoders (skipped until both are there): the Jittor
    model's own initial weights copied to the twin (float64), grayscale 256 x 256 input, eval mode,
    every encoder map, decoder block, head and output within 5e-5 (measured 3.0e-6 at seed 0; 3.3e-6 to 4.1e-6 unseeded); its keys and shapes
    are the official ones, in order."""
    from jittor_pranet.models.catalog import encoder_family

    if encoder_family(ENCODER) is None:
        pytest.skip(f"encoder {ENCODER} is not registered yet")
    pytest.importorskip("jittor_pranet.reference.torch_maxvit", reason="the PyTorch MaxxViT is not there yet")
    jt.set_global_seed(0)  # the Jittor model's initial weights (numpy's generator) are the ones compared
    jm = jmist.MISTNet(num_classes=4, dual=True)
    assert [(k, tuple(v.shape)) for k, v in jm.state_dict().items()] == _official("mist_dsra", num_classes=4)
    with pytest.raises(UserError, match="256x256"):
        jm(jt.zeros((1, 1, 224, 224)))
    tmodel = tmist.MISTNet(num_classes=4, dual=True)
    tm.load_state_dict_numpy(tmodel, {k: v.numpy() for k, v in jm.state_dict().items()}, strict=True)
    tmodel.double().eval()
    jm.eval()
    x = np.random.default_rng(6).standard_normal((1, 1, 256, 256)).astype(np.float32)
    with torch.no_grad():
        t_out, t_inter = tmodel(torch.from_numpy(x).double(), return_intermediates=True)
    with jt.no_grad():
        j_out, j_inter = jm(jt.array(x), return_intermediates=True)
    assert set(j_inter) == set(t_inter) and len(j_out) == len(t_out) == 8
    rows = [(_rel(j_inter[k].numpy(), t_inter[k].numpy()), k) for k in t_inter]
    rows += [(_rel(j.numpy(), t.numpy()), n) for n, j, t in zip(jm.output_names, j_out, t_out)]
    print(f"MISTNet dual on {ENCODER}: worst {max(rows)[1]} {max(rows)[0]:.2e} ({len(rows)} tensors)")
    assert max(rows)[0] <= TOL, sorted(rows)[-5:]
