"""MaxViT encoders: timm's key names, forward parity with the PyTorch twin, identification, input checks.

* Keys: every variant has exactly the state_dict keys, shapes and order of the official
  ``maxxvit_4out`` classes (``tests/fixtures/maxvit_official_keys.json``, extracted by
  ``tools/extract_maxvit_official_keys.py``, which also found the twin's four stage maps identical to
  the official encoder's with shared weights: relative difference 0.0 in float64 for all 8 variants).
* Forward parity: all four stage maps, eval mode, weights, BatchNorm statistics, LayerNorms and
  LayerScale randomised (of order 1, so every attention branch counts): max|jittor - torch| /
  max|torch| <= 5e-5.  Small variants of both block types at 256; the two full-size encoders of MIST /
  MERIT (at 256 and 224) in one case each.
"""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs torch (pip install 'jittor-pranet[torch]')")

from jittor_pranet import checkpoint as ck  # noqa: E402
from jittor_pranet.errors import UserError  # noqa: E402
from jittor_pranet.models.catalog import encoder_family, identify_encoder  # noqa: E402
from jittor_pranet.models.encoders import build_encoder  # noqa: E402
from jittor_pranet.models.encoders.maxvit_specs import MAXVIT_SPECS, relative_position_index  # noqa: E402
from jittor_pranet.ops import jt  # noqa: E402
from jittor_pranet.reference import torch_models as tm  # noqa: E402
from jittor_pranet.reference.torch_maxvit import build_torch_maxvit  # noqa: E402

TOL = 5e-5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OFFICIAL = json.loads((FIXTURES / "maxvit_official_keys.json").read_text())


def _pair(name, size, seed=0):
    tmodel = tm.randomize_(build_torch_maxvit(name, img_size=size), seed).eval()
    jmodel = build_encoder(name, img_size=size)
    ck.load_state_dict(jmodel, tm.state_dict_numpy(tmodel), strict=True, source="twin weights")
    jmodel.eval()
    return jmodel, tmodel


def _worst(jmodel, tmodel, size, batch=1, seed=0):
    x = np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)
    with jt.no_grad():
        got = [f.numpy() for f in jmodel(jt.array(x))]
    with torch.no_grad():
        want = [f.numpy() for f in tmodel(torch.from_numpy(x))]
    assert [g.shape for g in got] == [w.shape for w in want]
    return [float(np.abs(g - w).max() / np.abs(w).max()) for g, w in zip(got, want)]


def test_every_variant_is_in_the_catalog_family():
    assert set(encoder_family("maxxvit_rmlp_small_rw_256").variants) == set(MAXVIT_SPECS) == set(OFFICIAL["encoders"])


@pytest.mark.parametrize("name", sorted(MAXVIT_SPECS))
def test_keys_shapes_and_order_are_the_official_ones(name):
    want = [(k, tuple(s)) for k, s in OFFICIAL["encoders"][name] if not k.endswith("num_batches_tracked")]
    model = build_encoder(name)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == want
    twin = build_torch_maxvit(name)
    assert [(k, tuple(v.shape)) for k, v in twin.state_dict().items()] == [
        (k, tuple(s)) for k, s in OFFICIAL["encoders"][name]]
    # the variant is recognised from the keys alone (the 224/256 "small" MBConv pair share weights)
    found = identify_encoder({f"backbone1.{k}": np.zeros(s) for k, s in want})
    assert found == name.replace("maxvit_rmlp_small_rw_256", "maxvit_rmlp_small_rw_224")


def test_relative_position_index_matches_sorted_unique_offsets():
    """timm builds the index with ``torch.unique(offsets, dim=0, return_inverse=True)``: sorted (dy, dx)."""
    w = 5
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    offsets = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).reshape(-1, 2)
    _, inverse = torch.unique(offsets, dim=0, return_inverse=True)
    assert np.array_equal(relative_position_index(w).reshape(-1), inverse.numpy())


@pytest.mark.parametrize("name", ["maxvit_rmlp_pico_rw_256", "maxxvit_rmlp_nano_rw_256"])
def test_small_variants_forward_parity(name):
    jmodel, tmodel = _pair(name, 256)
    worst = _worst(jmodel, tmodel, 256, batch=2)
    assert max(worst) <= TOL, worst


@pytest.mark.parametrize("name,size", [("maxxvit_rmlp_small_rw_256", 256), ("maxvit_rmlp_small_rw_224", 224)])
def test_full_size_encoders_forward_parity(name, size):
    jmodel, tmodel = _pair(name, size, seed=1)
    worst = _worst(jmodel, tmodel, size)
    assert max(worst) <= TOL, worst


def test_other_input_sizes_are_refused_in_one_line():
    model = build_encoder("maxvit_rmlp_pico_rw_256")
    with pytest.raises(UserError, match="256x256"):
        model(jt.zeros((1, 3, 224, 224)))
    with pytest.raises(ValueError, match="multiple of 32"):
        build_encoder("maxvit_rmlp_pico_rw_256", img_size=100)


def test_initial_weights_follow_timm():
    """vit_eff: attention Linear xavier_uniform (std sqrt(2 / (in + out))), conv normal sqrt(2 / fan_out);
    'normal' (maxxvit nano): everything 0.02; LayerScale 1e-6."""
    jt.set_global_seed(0)
    sd = {k: v.numpy() for k, v in build_encoder("maxxvit_rmlp_tiny_rw_256").state_dict().items()}
    qkv = sd["stages.1.blocks.0.attn_block.attn.qkv.weight"]            # 384 x 128
    assert abs(qkv.std() / np.sqrt(2.0 / (128 + 384)) - 1) < 0.05
    assert np.all(sd["stages.1.blocks.0.attn_block.attn.qkv.bias"] == 0)
    mlp_bias = sd["stages.1.blocks.0.attn_block.mlp.fc1.bias"]
    assert 0 < mlp_bias.std() < 1e-5
    dw = sd["stages.2.blocks.1.conv.conv_dw.weight"]                    # 256 x 1 x 7 x 7, groups 256
    assert abs(dw.std() / np.sqrt(2.0 / 49) - 1) < 0.05
    assert np.allclose(sd["stages.0.blocks.0.attn_grid.ls1.gamma"], 1e-6)
    nano = {k: v.numpy() for k, v in build_encoder("maxxvit_rmlp_nano_rw_256").state_dict().items()}
    assert abs(nano["stages.1.blocks.0.attn_block.attn.qkv.weight"].std() / 0.02 - 1) < 0.05
    assert abs(nano["stages.2.blocks.0.conv.conv_dw.weight"].std() / 0.02 - 1) < 0.1
