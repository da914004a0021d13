"""Checkpoints cannot run code, and Jittor's own files are read without Jittor's unpickler.

Every malicious file below carries a ``__reduce__`` payload that would create a marker file: the tests
check that the marker never appears (not only that an error is printed), for every format and record
position the readers accept and for every command that reads a checkpoint.
"""
import hashlib
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
from conftest import run_cli

from jittor_pranet import checkpoint as ck
from jittor_pranet.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Payload:
    """Pickles as ``os.system("touch <marker>")``: what an attacker puts in a .pth."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _jittor_trailer(data: bytes) -> bytes:
    return data + hashlib.sha1(data).digest() + b"HCAJSLHD"


def _legacy_stream(records) -> bytes:
    """PyTorch's pre-1.6 layout: magic, protocol, sys info, main pickle, storage keys, raw storages."""
    buf = io.BytesIO()
    for rec in records:
        buf.write(rec if isinstance(rec, bytes) else pickle.dumps(rec, protocol=2))
    return buf.getvalue()


def _legacy_records(evil, position):
    """A legacy stream whose record ``position`` is the payload (main record: a dict holding it)."""
    recs = [LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}, {"w": evil},
            []]
    recs[position] = evil if position != 3 else {"w": evil}
    return _legacy_stream(recs)


def _torch_zip(data_pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def malicious_files(tmp_path, marker):
    evil = _Payload(marker)
    files = {}
    for proto in (0, 2, 4, 5):
        files[f"pickle_p{proto}.pkl"] = pickle.dumps({"state_dict": {"w": evil}}, protocol=proto)
        files[f"pickle_p{proto}_top.pth"] = pickle.dumps(evil, protocol=proto)
    files["jittor_trailer.pkl"] = _jittor_trailer(pickle.dumps({"w": evil}, protocol=4))
    files["torch_zip.pth"] = _torch_zip(pickle.dumps({"w": evil}, protocol=2))
    for pos, name in enumerate(["magic", "protocol", "sysinfo", "main", "keys"]):
        files[f"legacy_{name}.pth"] = _legacy_records(evil, pos)
    paths = []
    for name, data in files.items():
        p = tmp_path / name
        p.write_bytes(data)
        paths.append(p)
    return paths


def test_payload_is_real(tmp_path):
    """Control: an unrestricted unpickler does run the payload, so the marker check below means something."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker), protocol=4))
    assert marker.exists()


def test_no_reader_runs_code_in_any_format_or_record(tmp_path):
    marker = tmp_path / "pwned"
    paths = malicious_files(tmp_path, marker)
    assert len(paths) == 15
    for path in paths:
        with pytest.raises(UserError) as info:
            ck.read_state_dict(path)
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg
        assert not marker.exists(), f"{path.name} ran its payload"


def test_commands_refuse_malicious_checkpoints_without_running_them(tmp_path, capsys):
    marker = tmp_path / "pwned"
    paths = [p for p in malicious_files(tmp_path, marker) if p.name in (
        "pickle_p2.pkl", "legacy_magic.pth", "legacy_sysinfo.pth", "torch_zip.pth", "jittor_trailer.pkl")]
    images = tmp_path / "imgs"
    images.mkdir()
    import cv2

    cv2.imwrite(str(images / "a.png"), np.full((40, 48, 3), 120, np.uint8))
    for path in paths:
        commands = [
            ["convert", "--model", "pranet_v2_pvt", path, tmp_path / "out.pkl"],
            ["predict", "--checkpoint", path, "--model", "pranet_v2_pvt", images, "--out", tmp_path / "p"],
            ["test", "--checkpoint", path, "--model", "pranet_v2_pvt", "--data", images, "--out", tmp_path / "t"],
            ["train", "model.name=pranet_v2_pvt", f"model.init_checkpoint={path}", f"data.train={images}",
             f"output.dir={tmp_path / 'runs'}"],
            ["train", "model.name=pranet_v2_pvt", f"model.backbone_weights={path}", f"data.train={images}",
             f"output.dir={tmp_path / 'runs'}"],
        ]
        for cmd in commands:
            code, out, err = run_cli(cmd, capsys)
            assert code == 2, (cmd, out, err)
            assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err
            assert not marker.exists(), f"{cmd[0]} ran the payload of {path.name}"
    assert not (tmp_path / "out.pkl").exists()


def test_corrupt_tensor_layout_is_refused_not_read_out_of_bounds(tmp_path):
    """A zip checkpoint whose tensor claims more elements than its storage holds (as_strided would
    read past the buffer): an error, never a crash or foreign memory."""
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pth"
    torch.save({"w": torch.arange(6, dtype=torch.float32)}, good)
    with zipfile.ZipFile(good) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    pkl = next(n for n in items if n.endswith("data.pkl"))
    # the size tuple (6,) is pickled as BININT1 6 followed by TUPLE1: make it 6_000_000
    raw = items[pkl]
    assert raw.count(b"K\x06\x85") == 1
    items[pkl] = raw.replace(b"K\x06\x85", b"J" + struct.pack("<i", 6_000_000) + b"\x85")
    bad = tmp_path / "bad.pth"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in items.items():
            zf.writestr(n, data)
    assert np.array_equal(ck.read_state_dict(good).state_dict["w"], np.arange(6, dtype=np.float32))
    with pytest.raises(UserError, match="does not fit its storage"):
        ck.read_state_dict(bad)


# ------------------------------------------------------------------ Jittor's own checkpoint format

@pytest.fixture(scope="module")
def small_model():
    from jittor_pranet import build_model

    return build_model("pranet_v2_pvt", encoder="pvt_v2_b0")


def test_jittor_save_and_module_save_are_read(tmp_path, small_model):
    import jittor as jt

    sd = small_model.state_dict()
    jt.save(sd, str(tmp_path / "jt_save.pkl"))
    small_model.save(str(tmp_path / "module_save.pkl"))
    raw = (tmp_path / "module_save.pkl").read_bytes()
    assert b"Var" in raw  # the file really holds pickled jt.Var objects
    for name in ("jt_save.pkl", "module_save.pkl"):
        loaded = ck.read_state_dict(tmp_path / name)
        assert list(loaded.state_dict) == list(sd)
        for k, v in sd.items():
            np.testing.assert_array_equal(loaded.state_dict[k], v.numpy(), err_msg=k)


def test_jittor_files_load_convert_predict_and_initialise_training(tmp_path, capsys, small_model):
    from jittor_pranet import build_model, load_checkpoint

    import jittor as jt

    path = tmp_path / "net.pkl"
    small_model.save(str(path))
    fresh = build_model("pranet_v2_pvt", encoder="pvt_v2_b0")
    assert load_checkpoint(fresh, path).ok
    for k, v in small_model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[k].numpy(), v.numpy())
    # convert to a PyTorch file and back through the CLI
    code, out, err = run_cli(["convert", "--model", "pranet_v2_pvt", "--encoder", "pvt_v2_b0", path,
                              tmp_path / "net.pth"], capsys)
    assert code == 0, err
    # the encoder alone, saved the Jittor way, as model.backbone_weights
    enc = tmp_path / "enc.pkl"
    jt.save(small_model.backbone.state_dict(), str(enc))
    loaded = ck.read_state_dict(enc)
    mapped, ignored = ck.map_backbone_state_dict(small_model, loaded.state_dict)
    assert mapped and not ignored
