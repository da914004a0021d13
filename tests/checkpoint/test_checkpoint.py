"""Checkpoint reading/writing/validation and ``jittor-pranet convert``."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet import checkpoint as ck
from jittor_pranet.errors import UserError

torch = pytest.importorskip("torch", reason="building official-format checkpoints needs torch")
from jittor_pranet.reference import torch_models as tm  # noqa: E402

MODELS = ["pranet_v1_res2net", "pranet_v1_pvt", "pranet_v2_res2net", "pranet_v2_pvt"]


def official_checkpoint(tmp_path, name, num_classes=1, seed=0, fmt="zip", wrap=None):
    """An official-format file: torch.save of a state_dict with official keys (+ num_batches_tracked)."""
    model = tm.randomize_(tm.build_torch_model(name, num_classes=num_classes), seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.num_batches_tracked.fill_(1234)
    sd = model.state_dict()
    obj = sd if wrap is None else wrap(sd)
    path = tmp_path / f"{name}_{num_classes}_{fmt}.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"))
    return path, model


@pytest.mark.parametrize("name", MODELS)
def test_convert_official_checkpoint_reproduces_pytorch(tmp_path, capsys, name):
    from jittor_pranet import build_model, load_checkpoint
    from jittor_pranet.parity import relative_error

    import jittor as jt

    src, tmodel = official_checkpoint(tmp_path, name)
    dst = tmp_path / "converted.pkl"
    code, out, err = run_cli(["convert", "--model", name, src, dst], capsys)
    assert code == 0, err
    assert "dropped" in out and dst.is_file()
    model = build_model(name)
    report = load_checkpoint(model, dst)
    assert report.ok and not report.missing
    model.eval()
    tmodel.eval()
    x = np.random.default_rng(1).standard_normal((1, 3, 128, 160)).astype(np.float32)
    with torch.no_grad():
        t_out = tmodel(torch.from_numpy(x))
    j_out = model(jt.array(x))
    for j, t in zip(j_out, t_out):
        assert relative_error(j.numpy(), t.numpy())[2] <= 5e-5


def test_round_trip_torch_jittor_torch_is_bit_exact(tmp_path, capsys):
    src, _ = official_checkpoint(tmp_path, "pranet_v2_pvt", num_classes=3)
    mid, back = tmp_path / "mid.pkl", tmp_path / "back.pth"
    assert run_cli(["convert", "--model", "pranet_v2_pvt", "--num-classes", 3, src, mid], capsys)[0] == 0
    assert run_cli(["convert", "--model", "pranet_v2_pvt", "--num-classes", 3, mid, back], capsys)[0] == 0
    original = torch.load(src, weights_only=True)
    restored = torch.load(back, weights_only=True)
    assert list(original) == list(restored)
    for k in original:
        assert original[k].dtype == restored[k].dtype, k
        assert torch.equal(original[k], restored[k]), k
    # and the official-style strict load works on the exported file
    fresh = tm.build_torch_model("pranet_v2_pvt", num_classes=3)
    fresh.load_state_dict(restored, strict=True)


@pytest.mark.parametrize("variant", ["legacy", "nested_state_dict", "nested_model_module", "pth_tar"])
def test_reader_handles_formats_and_wrapping(tmp_path, variant):
    name = "pranet_v1_res2net"
    if variant == "legacy":
        path, model = official_checkpoint(tmp_path, name, fmt="legacy")
    elif variant == "nested_state_dict":
        path, model = official_checkpoint(tmp_path, name, wrap=lambda sd: {"state_dict": sd, "epoch": 3})
    elif variant == "nested_model_module":
        path, model = official_checkpoint(
            tmp_path, name, wrap=lambda sd: {"model": {"module." + k: v for k, v in sd.items()}})
    else:
        path, model = official_checkpoint(tmp_path, name)
        path = path.rename(tmp_path / "weights.pth.tar")
    loaded = ck.read_state_dict(path)
    ref = model.state_dict()
    assert set(loaded.state_dict) == {k for k in ref if not k.endswith("num_batches_tracked")}
    assert loaded.dropped and all(k.endswith("num_batches_tracked") for k in loaded.dropped)
    for k, v in loaded.state_dict.items():
        np.testing.assert_array_equal(v, ref[k].numpy())


def test_reader_refuses_code_in_pickles(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"a": Evil()}))
    with pytest.raises(UserError, match="not a readable checkpoint"):
        ck.read_state_dict(path)


def test_strict_load_reports_missing_keys():
    from jittor_pranet import build_model

    model = build_model("pranet_v1_res2net")
    sd = ck.model_numpy_state_dict(model)
    del sd["ra2_conv4.bn.running_var"]
    with pytest.raises(UserError, match="1 missing"):
        ck.load_state_dict(model, sd)
    rep = ck.load_state_dict(model, sd, strict=False)
    assert rep.missing == ["ra2_conv4.bn.running_var"]


def _assert_clean_failure(code, out, err, dst):
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert not dst.exists()
    assert not any(p.name.startswith(f".{dst.name}.") for p in dst.parent.iterdir()), "temp file left behind"


def test_convert_bad_inputs_fail_cleanly(tmp_path, capsys):
    dst = tmp_path / "out.pkl"
    not_ckpt = tmp_path / "notes.pth"
    not_ckpt.write_text("this is not a checkpoint\n")
    _assert_clean_failure(*run_cli(["convert", "--model", "pranet_v2_res2net", not_ckpt, dst], capsys), dst)

    good, _ = official_checkpoint(tmp_path, "pranet_v2_res2net", num_classes=3)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    code, out, err = run_cli(["convert", "--model", "pranet_v2_res2net", truncated, dst], capsys)
    _assert_clean_failure(code, out, err, dst)

    legacy, _ = official_checkpoint(tmp_path, "pranet_v1_pvt", fmt="legacy")
    data = legacy.read_bytes()
    truncated_legacy = tmp_path / "truncated_legacy.pt"
    truncated_legacy.write_bytes(data[:-100])
    _assert_clean_failure(*run_cli(["convert", "--model", "pranet_v1_pvt", truncated_legacy, dst], capsys), dst)

    # checkpoint of another model
    code, out, err = run_cli(["convert", "--model", "pranet_v2_pvt", legacy, dst], capsys)
    _assert_clean_failure(code, out, err, dst)
    assert "does not match" in err

    # wrong num_classes: says what the checkpoint has
    code, out, err = run_cli(["convert", "--model", "pranet_v2_res2net", good, dst], capsys)
    _assert_clean_failure(code, out, err, dst)
    assert "num_classes=3" in err

    # missing file, unwritable destination
    _assert_clean_failure(*run_cli(["convert", "--model", "pranet_v2_res2net", tmp_path / "nope.pth", dst],
                                   capsys), dst)
    bad_dst = tmp_path / "no_such_dir" / "out.pkl"
    code, out, err = run_cli(["convert", "--model", "pranet_v2_res2net", "--num-classes", 3, good, bad_dst], capsys)
    assert code == 2 and "does not exist" in err and not bad_dst.parent.exists()


def test_existing_output_survives_failed_convert(tmp_path, capsys):
    src, _ = official_checkpoint(tmp_path, "pranet_v1_res2net")
    dst = tmp_path / "model.pkl"
    assert run_cli(["convert", "--model", "pranet_v1_res2net", src, dst], capsys)[0] == 0
    before = dst.read_bytes()
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"PK\x03\x04garbage")
    code, _, err = run_cli(["convert", "--model", "pranet_v1_res2net", junk, dst], capsys)
    assert code == 2 and dst.read_bytes() == before


def test_backbone_only_res2net_and_pvt(tmp_path, capsys):
    enc = tm.randomize_(tm.res2net50_v1b_26w_4s(), 5)
    res_file = tmp_path / "res2net50_v1b_26w_4s-3cf99910.pth"
    torch.save(enc.state_dict(), res_file)
    dst = tmp_path / "v1.pkl"
    code, out, err = run_cli(["convert", "--backbone-only", "--model", "pranet_v1_res2net", res_file, dst], capsys)
    assert code == 0, err
    assert "randomly initialised" in out
    loaded = ck.read_state_dict(dst).state_dict
    for k, v in enc.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(loaded["resnet." + k], v.numpy())

    pvt = tm.randomize_(tm.pvt_v2("b2"), 6)
    sd = dict(pvt.state_dict())
    sd["head.weight"] = torch.zeros(1000, 512)
    sd["head.bias"] = torch.zeros(1000)
    pvt_file = tmp_path / "pvt_v2_b2.pth"
    torch.save(sd, pvt_file)
    dst2 = tmp_path / "v2.pkl"
    code, out, err = run_cli(["convert", "--backbone-only", "--model", "pranet_v2_pvt", pvt_file, dst2], capsys)
    assert code == 0, err
    assert "ignored 2" in out and "head.weight" in out
    loaded = ck.read_state_dict(dst2).state_dict
    np.testing.assert_array_equal(loaded["backbone.block3.5.mlp.fc2.weight"],
                                  pvt.state_dict()["block3.5.mlp.fc2.weight"].numpy())
    # a Res2Net file is not a PVT backbone
    code, out, err = run_cli(["convert", "--backbone-only", "--model", "pranet_v2_pvt", res_file,
                              tmp_path / "x.pkl"], capsys)
    assert code == 2 and "no key matches" in err


def test_cli_error_has_no_traceback_in_a_real_process(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 64)
    proc = subprocess.run([sys.executable, "-m", "jittor_pranet", "convert", "--model", "pranet_v1_pvt", str(junk),
                           str(tmp_path / "o.pkl")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("name,num_classes", [(m, 1) for m in MODELS] + [("pranet_v2_pvt", 3)])
def test_parameter_names_and_order_equal_official(name, num_classes):
    from jittor_pranet import build_model

    ours = {k: tuple(v.shape) for k, v in build_model(name, num_classes=num_classes).state_dict().items()}
    ref = [(k, tuple(v.shape)) for k, v in tm.build_torch_model(name, num_classes=num_classes).state_dict().items()
           if not k.endswith("num_batches_tracked")]
    assert list(ours.items()) == ref
