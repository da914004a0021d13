"""Cascaded MERIT: CASCADE decoder parity, official key names, and the two-pass wiring with stand-in encoders.

* Keys: our Jittor ``CascadeDecoder`` has exactly the official ``CASCADE_Add`` / ``CASCADE_Add_dual``
  state_dict keys, in order, with their shapes and parameter counts (18,479,291 / 18,602,123 at
  768/384/192/96; ``tests/fixtures/merit_official_decoder_keys.json``, written from the official classes by
  ``tools/extract_merit_official_keys.py``); our PyTorch twin has the same keys at every width.
* Official vs twin (PyTorch, not runnable here: the official code is not part of the project): with
  shared random weights (randomised BatchNorm statistics), eval mode, the tool's ``--check`` measured
  relative difference 0.0 on every decoder output (single and dual, 4 and 9 classes, both DSRA gains,
  deepest map 8x8 and 7x7); the whole official ``MERIT_Cascaded`` / ``MERIT_Cascaded_dual`` against
  our twin ``MERITNet``, both given the same stand-in pyramid encoders, also 0.0 on all outputs
  (256x256 input, RGB 4 classes and grayscale 9 classes).
* Decoder parity, Jittor vs twin, eval mode, randomised BN statistics, weights copied: every stage
  (gates, stage features, fused fg/bg maps) and every output, full widths at the feature sizes of
  both MERIT passes (deepest 8x8 and 7x7) and a small width set: relative error <= 5e-5.
* Model: with the small MaxViTs, keys in order == the twin's (measured == the official model's) and
  the official parameter counts.  Wiring (resizes, feedback mask, second pass, output sums, grayscale
  stem), Jittor vs twin, with a small stand-in encoder in place of the MaxViTs on both sides, and the
  input-size check.  Measured outside the suite with the real MaxViTs (random weights incl. LayerScale,
  batch 1, 256x256): official vs twin 0.0 on every output; Jittor vs twin worst 7.5e-6 over all 35 / 47
  compared tensors (encoder stages of both passes, decoder stages, feedback, outputs).
* One train-mode loss step (stand-in encoders, float64, official multi-class loss): loss, every
  gradient (both passes, the feedback head) and every BatchNorm statistic (the shared decoder's run
  twice per step) within 1e-5.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs torch (pip install 'jittor-pranet[torch]')")

from jittor_pranet import checkpoint as ck  # noqa: E402
from jittor_pranet import parity  # noqa: E402
from jittor_pranet.errors import UserError  # noqa: E402
from jittor_pranet.models import merit as jmerit  # noqa: E402
from jittor_pranet.models.decoders.cascade import CascadeDecoder  # noqa: E402
from jittor_pranet.ops import Conv2d, jt  # noqa: E402
from jittor_pranet.reference import torch_merit as tmerit  # noqa: E402
from jittor_pranet.reference import torch_models as tm  # noqa: E402

from jittor import nn  # noqa: E402

TOL = 5e-5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OFFICIAL = json.loads((FIXTURES / "merit_official_decoder_keys.json").read_text())
FULL = tuple(OFFICIAL["channels"])  # 768, 384, 192, 96 (small MaxViTs)
GAINS = {"softmax": True, "difference": False}


def _decoder_pair(channels, dual, num_classes, gain="softmax", seed=3):
    tdec = tm.randomize_(tmerit.CascadeDecoder(channels, dual=dual, num_classes=num_classes,
                                               use_softmax=GAINS[gain]), seed).eval()
    jdec = CascadeDecoder(channels, dual=dual, num_classes=num_classes, gain=gain)
    ck.load_state_dict(jdec, tm.state_dict_numpy(tdec), strict=True, source="reference weights")
    jdec.eval()
    return jdec, tdec


def _inputs(channels, deepest, seed, batch=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, channels[0], deepest, deepest)).astype(np.float32)
    skips = [rng.standard_normal((batch, c, deepest * s, deepest * s)).astype(np.float32)
             for c, s in zip(channels[1:], (2, 4, 8))]
    return x, skips


def _compare_decoders(jdec, tdec, x, skips):
    """Rows (name, shape, rel) for every intermediate and every output of the two decoders."""
    t_inter, j_inter = {}, {}
    with torch.no_grad():
        t_out = tdec(torch.from_numpy(x), [torch.from_numpy(s) for s in skips], t_inter)
    with jt.no_grad():
        j_out = jdec(jt.array(x), [jt.array(s) for s in skips], j_inter)
        jt.sync_all(True)
    assert set(t_inter) == set(j_inter)
    assert len(t_out) == len(j_out)
    pairs = [(k, j_inter[k], t_inter[k]) for k in t_inter] + [(f"out{i}", j, t) for i, (j, t) in
                                                               enumerate(zip(j_out, t_out))]
    rows = []
    for name, j, t in pairs:
        tn = t.numpy()
        _, scale, rel = parity.relative_error(j.numpy(), tn)
        assert scale > 1e-4, f"{name} is ~0: the comparison would prove nothing"
        rows.append((name, tn.shape, rel))
    return rows, t_out


# ------------------------------------------------------------------------------------------- keys
@pytest.mark.parametrize("dual", [False, True], ids=["single", "dual"])
def test_decoder_keys_order_and_counts_are_the_official_ones(dual):
    rec = OFFICIAL["decoders"]["dual" if dual else "single"]
    official = [(k, tuple(v)) for k, v in rec["keys"].items() if not k.endswith("num_batches_tracked")]
    jdec = CascadeDecoder(FULL, dual=dual, num_classes=OFFICIAL["num_classes"])
    assert list(ck.model_shapes(jdec).items()) == official
    tdec = tmerit.CascadeDecoder(FULL, dual=dual, num_classes=OFFICIAL["num_classes"])
    assert [(k, tuple(v.shape)) for k, v in tdec.state_dict().items()
            if not k.endswith("num_batches_tracked")] == official
    count = sum(int(p.numel()) for n, p in jdec.named_parameters() if not n.endswith(("running_mean", "running_var")))
    assert count == rec["parameters"]
    assert ("SA.conv1.weight", (1, 2, 7, 7)) in official
    assert ("AG1.W_g.0.weight", (48, 96, 1, 1)) in official  # F_int = channels[3] // 2 at stage 1


@pytest.mark.parametrize("channels", [(512, 256, 128, 64), (256, 128, 64, 32)])
def test_other_widths_keys_match_the_twin(channels):
    for dual in (False, True):
        jdec = CascadeDecoder(channels, dual=dual, num_classes=4)
        tdec = tmerit.CascadeDecoder(channels, dual=dual, num_classes=4)
        assert list(ck.model_shapes(jdec).items()) == [
            (k, tuple(v.shape)) for k, v in tdec.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert ck.model_shapes(jdec)["AG3.W_g.0.weight"] == (channels[2], channels[1], 1, 1)
    assert ck.model_shapes(jdec)["ConvBlock4_fg.conv.weight"] == (4, channels[0], 1, 1)
    assert ck.model_shapes(jdec)["ConvBlock1_bg.conv.weight"] == (4, channels[3], 3, 3)
    with pytest.raises(ValueError, match="widths >= 16"):
        CascadeDecoder((64, 32, 16, 8))


# ------------------------------------------------------------------------------- decoder parity
@pytest.mark.parametrize("dual,num_classes", [(False, 9), (True, 4), (True, 9)],
                         ids=["single", "dual-4", "dual-9"])
def test_decoder_parity_full_widths_both_passes(dual, num_classes):
    """The single decoder has no class dimension (MERIT's heads are outside it)."""
    jdec, tdec = _decoder_pair(FULL, dual, num_classes)
    for deepest in (8, 7):  # pass 1 (256 input) and pass 2 (224) feature sizes
        x, skips = _inputs(FULL, deepest, seed=deepest)
        rows, t_out = _compare_decoders(jdec, tdec, x, skips)
        assert len(t_out) == (9 if dual else 4)
        assert tuple(t_out[3 if not dual else 7].shape) == (1, num_classes if dual else FULL[3], deepest * 8,
                                                             deepest * 8)
        bad = [(n, r) for n, _, r in rows if not r <= TOL]
        assert not bad, f"dual={dual} {num_classes} classes, deepest {deepest}: over {TOL}: {bad}"
        worst = max(rows, key=lambda r: r[2])
        print(f"full widths dual={dual} classes={num_classes} deepest {deepest}: worst {worst[0]} {worst[2]:.2e} "
              f"({len(rows)} tensors)")


@pytest.mark.parametrize("dual,gain", [(False, "softmax"), (True, "softmax"), (True, "difference")],
                         ids=["single", "dual-softmax", "dual-difference"])
def test_decoder_parity_small_widths(dual, gain):
    channels = (64, 32, 32, 16)
    jdec, tdec = _decoder_pair(channels, dual, 4, gain=gain, seed=8)
    for deepest in (8, 7):
        x, skips = _inputs(channels, deepest, seed=20 + deepest, batch=2)
        rows, _ = _compare_decoders(jdec, tdec, x, skips)
        bad = [(n, r) for n, _, r in rows if not r <= TOL]
        assert not bad, f"dual={dual} gain={gain} deepest {deepest}: over {TOL}: {bad}"


def test_decoder_parity_detects_a_wrong_weight_and_the_gain_is_live():
    """A changed stage-3 background head leaves stage 3's fg and the deepest maps alone but reaches
    the finer fused fg maps through the reverse gain (4 classes: the softmax is not identically 1)."""
    channels = (64, 32, 32, 16)
    jdec, tdec = _decoder_pair(channels, True, 4, seed=5)
    var = jdec.state_dict()["ConvBlock3_bg.bn.running_var"]
    var.assign(var * 1.05)
    x, skips = _inputs(channels, 8, seed=1)
    by = {n: r for n, _, r in _compare_decoders(jdec, tdec, x, skips)[0]}
    assert by["d3"] <= TOL and by["d4_fg"] <= TOL and by["d3_fg"] <= TOL and by["d1"] <= TOL
    assert by["d3_bg"] > 1e-3
    assert by["d2_fg"] > 1e-4 and by["d1_fg"] > 1e-5


# ------------------------------------------------------------------------------ the model, real MaxViTs
#: parameters of the official MERIT_Cascaded / MERIT_Cascaded_dual, 9 classes, small MaxViTs (counted
#: from the official classes built without their pretrained files)
OFFICIAL_PARAMETERS = {False: 147_859_956, True: 147_982_788}


@pytest.mark.parametrize("dual", [False, True], ids=["single", "dual"])
def test_model_with_maxvit_encoders_keys_and_parameter_counts(dual):
    """The official model's keys (measured equal to our twin's, in order and shape) and size."""
    jmodel = jmerit.MERITNet(9, dual=dual)
    shapes = list(ck.model_shapes(jmodel).items())
    assert shapes == [(k, tuple(v.shape)) for k, v in tmerit.MERITNet(9, dual=dual).state_dict().items()
                      if not k.endswith("num_batches_tracked")]
    count = sum(int(p.numel()) for n, p in jmodel.named_parameters() if not n.endswith(("running_mean", "running_var")))
    assert count == OFFICIAL_PARAMETERS[dual]
    by = dict(shapes)
    assert by["out_head1.weight"] == (9, 768, 1, 1) and by["out_head4_in.weight"] == (1, 96, 1, 1)
    assert by["decoder.Conv_1x1.weight"] == (768, 768, 1, 1)
    assert ("decoder.ConvBlock4_fg.conv.weight" in by) == dual
    assert jmodel.backbone1.img_size == 256 and jmodel.backbone2.img_size == 224


# ------------------------------------------------------------------------ the model, stand-in encoders
WIDTHS = (32, 64, 64, 128)  # small stand-in encoder widths, shallow -> deep


class JStandIn(nn.Module):
    """A 4-level conv pyramid with the encoders' interface (``out_channels``, ``forward_features``)."""

    def __init__(self, img_size: int):
        self.out_channels = WIDTHS
        self.stem = Conv2d(3, WIDTHS[0], 4, 4)
        self.down = nn.ModuleList([Conv2d(a, b, 2, 2) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])])

    def forward_features(self, x):
        feats = [jt.tanh(self.stem(x))]
        for layer in self.down:
            feats.append(jt.tanh(layer(feats[-1])))
        return feats


class TStandIn(torch.nn.Module):
    def __init__(self, img_size: int):
        super().__init__()
        self.out_channels = WIDTHS
        self.stem = torch.nn.Conv2d(3, WIDTHS[0], 4, 4)
        self.down = torch.nn.ModuleList([torch.nn.Conv2d(a, b, 2, 2) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])])

    def forward(self, x):
        feats = [torch.tanh(self.stem(x))]
        for layer in self.down:
            feats.append(torch.tanh(layer(feats[-1])))
        return feats


@pytest.fixture
def stand_in_encoders(monkeypatch):
    sizes = []

    def jbuild(name, img_size, **kw):
        sizes.append((name, img_size))
        return JStandIn(img_size)

    monkeypatch.setattr(jmerit, "build_encoder", jbuild)
    monkeypatch.setattr(tmerit, "_build_encoder", lambda name, img_size: TStandIn(img_size))
    return sizes


def _model_pair(dual, num_classes, seed=4):
    tmodel = tm.randomize_(tmerit.MERITNet(num_classes, dual=dual), seed).eval()
    jmodel = jmerit.MERITNet(num_classes, dual=dual)
    ck.load_state_dict(jmodel, tm.state_dict_numpy(tmodel), strict=True, source="reference weights")
    jmodel.eval()
    return jmodel, tmodel


def test_model_keys_order_and_encoders(stand_in_encoders):
    for dual in (False, True):
        jmodel = jmerit.MERITNet(4, dual=dual)
        keys = list(ck.model_shapes(jmodel))
        tkeys = [k for k in tmerit.MERITNet(4, dual=dual).state_dict() if not k.endswith("num_batches_tracked")]
        assert keys == tkeys
        tops = list(dict.fromkeys(k.split(".")[0] for k in keys))
        assert tops == ["conv", "backbone1", "backbone2", "decoder", "out_head1", "out_head2", "out_head3",
                        "out_head4", "out_head4_in"]
        assert ck.model_shapes(jmodel)["out_head1.weight"] == (4, WIDTHS[3], 1, 1)  # deepest
        assert ck.model_shapes(jmodel)["out_head4_in.weight"] == (1, WIDTHS[0], 1, 1)
        assert jmodel.output_names == (jmerit.DUAL_OUTPUTS if dual else jmerit.OUTPUTS)
    assert stand_in_encoders[:2] == [("maxxvit_rmlp_small_rw_256", 256), ("maxvit_rmlp_small_rw_224", 224)]


@pytest.mark.parametrize("dual", [False, True], ids=["single", "dual"])
@pytest.mark.parametrize("num_classes,in_channels", [(4, 3), (9, 1)])
def test_model_parity_with_stand_in_encoders(stand_in_encoders, dual, num_classes, in_channels):
    jmodel, tmodel = _model_pair(dual, num_classes)
    names = jmodel.output_names
    x = np.random.default_rng(num_classes).standard_normal((1, in_channels, 256, 256)).astype(np.float32)
    rows = parity.compare_forward(jmodel, tmodel, x, names)
    by = {r.tensor: r for r in rows}
    expect = {"feedback", "pass1.x4", "pass2.x1", "pass1.d1", "pass2.d4", "pass2.ag1"}
    expect |= {"pass1.d2_fg", "pass2.d1_bg"} if dual else {"pass1.head1", "pass2.head4"}
    assert expect <= set(by), sorted(by)
    assert by["pass2.x1"].shape == (1, WIDTHS[0], 56, 56) and by["pass1.x1"].shape == (1, WIDTHS[0], 64, 64)
    assert sum(r.tensor.startswith("out.") for r in rows) == len(names)
    for r in rows:
        if r.tensor.startswith("out."):
            assert r.shape == (1, num_classes, 256, 256), r
        assert r.ref_max > 1e-4, f"{r.tensor} is ~0: the comparison would prove nothing"
    bad = [(r.tensor, r.rel) for r in rows if not r.passed(TOL)]
    assert not bad, f"dual={dual} {num_classes} classes: over {TOL}: {bad}"
    logits = jmerit.merit_prediction_logits(jmodel, jmodel(jt.array(x)))
    assert logits.shape == (1, num_classes, 256, 256)


def test_input_size_is_checked_and_init_is_pytorch_default(stand_in_encoders):
    jmodel = jmerit.MERITNet(4)
    for shape in ((1, 3, 224, 224), (1, 3, 256, 224), (1, 1, 512, 512)):
        with pytest.raises(UserError, match="256x256"):
            jmodel(jt.zeros(shape))
    # PyTorch's defaults (the official classes re-initialise nothing): uniform on +-1/sqrt(fan_in)
    sd = jmodel.state_dict()
    w = sd["decoder.ConvBlock3.conv.0.weight"].numpy()
    bound = 1 / np.sqrt(w[0].size)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(float(w.std()) - bound / np.sqrt(3)) < 0.05 * bound
    assert np.all(sd["decoder.AG2.psi.1.weight"].numpy() == 1) and np.all(sd["conv.1.running_var"].numpy() == 1)


def _labels(size, num_classes, seed, n=2):
    """Label maps with blob-shaped classes (every class present)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    lab = np.zeros((n, size, size), np.int32)
    for i in range(n):
        for c in range(1, num_classes):
            cy, cx, r = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.08, 0.2)]
            lab[i][(yy / size - cy) ** 2 + (xx / size - cx) ** 2 < r * r] = c
    return lab


def _rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("dual", [False, True], ids=["single", "dual"])
def test_one_train_mode_loss_step_with_stand_in_encoders(stand_in_encoders, monkeypatch, dual):
    """Train mode (batch statistics; the shared decoder's BatchNorms run twice per step, as official),
    the official multi-class loss, backward through both passes and the feedback mask; float64 on both
    sides (random-weight train-mode gradients are ill-conditioned in float32, see test_emcad_parity)."""
    from jittor_pranet.engine.optim import trainable_named_parameters
    from jittor_pranet.losses.multiclass import multiclass_seg_loss
    from jittor_pranet.reference import torch_emcad as te

    monkeypatch.setattr(sys.modules[__name__], "WIDTHS", (16, 16, 16, 16))  # float64 convolutions are slow
    num_classes = 4
    jmodel, tmodel = _model_pair(dual, num_classes, seed=9)
    tmodel.double().train()
    for v in jmodel.state_dict().values():
        v.assign(v.float64())
    jmodel.train()
    x = np.random.default_rng(3).standard_normal((2, 3, 256, 256)).astype(np.float32).astype(np.float64)
    lab = _labels(256, num_classes, seed=4)
    loss_fn = te.multiclass_dsra_loss if dual else te.multiclass_loss
    t_loss = loss_fn(tmodel(torch.from_numpy(x)), torch.from_numpy(lab).long(), num_classes)
    t_loss.backward()
    named = trainable_named_parameters(jmodel)
    j_loss = multiclass_seg_loss(jmodel(jt.array(x.astype(np.float32)).float64()), jt.array(lab), dual=dual)
    grads = jt.grad(j_loss, [p for _, p in named])
    assert _rel(j_loss.numpy(), t_loss.detach().numpy()) <= 1e-6
    t_params = dict(tmodel.named_parameters())
    assert {n for n, _ in named} == set(t_params)

    def torch_grad(n):  # unused: the stem on RGB input, the dual model's out_head1..4
        g = t_params[n].grad
        return np.zeros(t_params[n].shape) if g is None else g.numpy()

    pairs = [(n, g.numpy(), torch_grad(n)) for (n, _), g in zip(named, grads)]
    scale = max(np.abs(t).max() for _, _, t in pairs)
    compared = [(n, j, t) for n, j, t in pairs if np.abs(t).max() >= 1e-6 * scale]
    assert any(n.startswith("backbone1.") for n, _, _ in compared)  # reached through both passes
    assert any(n.startswith("out_head4_in.") for n, _, _ in compared)  # the feedback mask is differentiated
    worst = max((_rel(j, t), n) for n, j, t in compared)
    assert worst[0] <= 1e-5, worst
    for n, j, t in pairs:
        if np.abs(t).max() < 1e-6 * scale:
            assert np.abs(j).max() < 1e-5 * scale, n
    t_state, j_state = tmodel.state_dict(), jmodel.state_dict()
    stats = [k for k in t_state if k.endswith(("running_mean", "running_var"))]
    worst_bn = max((_rel(j_state[k].numpy(), t_state[k].numpy()), k) for k in stats)
    assert worst_bn[0] <= 1e-6, worst_bn
    print(f"dual={dual} loss step: loss {_rel(j_loss.numpy(), t_loss.detach().numpy()):.2e}, worst gradient "
          f"{worst[0]:.2e} ({worst[1]}), worst BN statistic {worst_bn[0]:.2e}")
