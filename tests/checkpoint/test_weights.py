"""The weights manifest and ``jittor-pranet weights``: the shipped manifest is well-formed (a source for
every file, hashes only where published), ``verify`` catches a corrupted file, ``convert`` converts every
official checkpoint present in one go; nothing is downloaded."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import one_error_line, run_cli

from jittor_pranet.errors import UserError


def test_shipped_manifest_is_well_formed():
    from jittor_pranet.models import list_models
    from jittor_pranet.weights import REPO_MANIFEST, load_manifest

    manifest = load_manifest(REPO_MANIFEST)
    checkpoints = {n: e for n, e in manifest.items() if e.kind == "checkpoint"}
    encoders = {n: e for n, e in manifest.items() if e.kind == "imagenet-encoder"}
    assert {"RES-V1.pth", "PVT-V1.pth", "RES-V2.pth", "PVT-V2.pth"} <= set(checkpoints)
    assert {"res2net50_v1b_26w_4s-3cf99910.pth", "pvt_v2_b2.pth"} <= set(encoders)
    for name in ("RES-V1.pth", "PVT-V1.pth", "RES-V2.pth", "PVT-V2.pth"):
        assert checkpoints[name].model in list_models()
    for entry in encoders.values():
        assert entry.models and set(entry.models) <= set(list_models())
    # the hash tag of a hub-style file name is its recorded prefix
    assert manifest["res2net50_v1b_26w_4s-3cf99910.pth"].sha256_prefix == "3cf99910"


def test_manifest_validation(tmp_path):
    from jittor_pranet.weights import load_manifest

    cases = {
        "no source": {"a.pth": {"kind": "checkpoint"}},
        "bad kind": {"a.pth": {"kind": "weights", "source": "x"}},
        "bad sha": {"a.pth": {"kind": "checkpoint", "source": "x", "sha256": "abc"}},
    }
    for what, raw in cases.items():
        path = tmp_path / f"{what}.json"
        path.write_text(json.dumps(raw))
        with pytest.raises(UserError):
            load_manifest(path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UserError, match="JSON"):
        load_manifest(tmp_path / "broken.json")


@pytest.fixture
def folder(tmp_path):
    """An 'official' PVT-PraNet-V2 checkpoint (.pth, random weights, PVTv2-b0 for speed), an encoder-like file
    named with a hash tag, and a manifest holding their hashes (as a user records them after download)."""
    from jittor_pranet.checkpoint import save_checkpoint
    from jittor_pranet.models import build_model
    from jittor_pranet.weights import sha256_of

    d = tmp_path / "weights"
    d.mkdir()
    save_checkpoint(build_model("pranet_v2_pvt", encoder="pvt_v2_b0"), d / "PVT-V2.pth")
    blob = np.random.default_rng(0).bytes(4096)
    (d / "enc.pth").write_bytes(blob)
    (d / "mine.pkl").write_bytes(b"x")  # a weight file the manifest does not know
    tag = sha256_of(d / "enc.pth")[:8]
    (d / f"enc-{tag}.pth").write_bytes(blob)
    (d / "enc.pth").unlink()
    manifest = {
        "PVT-V2.pth": {"kind": "checkpoint", "model": "pranet_v2_pvt", "encoder": "pvt_v2_b0", "source": "test",
                       "sha256": sha256_of(d / "PVT-V2.pth")},
        f"enc-{tag}.pth": {"kind": "imagenet-encoder", "models": ["pranet_v2_pvt"], "source": "test",
                           "sha256": None, "sha256_prefix": tag},
        "RES-V2.pth": {"kind": "checkpoint", "model": "pranet_v2_res2net", "source": "the official README",
                       "url": "https://example.org/RES-V2", "sha256": None},
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d, tag


def test_list_says_what_is_present_and_where_the_rest_comes_from(folder, capsys):
    d, tag = folder
    code, out, err = run_cli(["weights", "list", d], capsys)
    assert code == 0, err
    assert "| PVT-V2.pth | checkpoint | pranet_v2_pvt | present |" in out
    assert "| RES-V2.pth | checkpoint | pranet_v2_res2net | missing |" in out
    assert "RES-V2.pth: the official README -> https://example.org/RES-V2" in out
    assert "| mine.pkl | ? | ? | not in the manifest |" in out


def test_verify_passes_then_catches_a_corrupted_file(folder, capsys):
    d, tag = folder
    code, out, err = run_cli(["weights", "verify", d], capsys)
    assert code == 0, err
    assert "| PVT-V2.pth | checkpoint | pranet_v2_pvt | ok (SHA-256) |" in out
    assert f"ok (SHA-256 starts with the name's tag {tag})" in out
    for name in ("PVT-V2.pth", f"enc-{tag}.pth"):
        data = bytearray((d / name).read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte
        (d / name).write_bytes(bytes(data))
    code, out, err = run_cli(["weights", "verify", d], capsys)
    assert code == 2
    line = one_error_line(err)
    assert "2 file(s) do not match" in line and "PVT-V2.pth" in line and f"enc-{tag}.pth" in line
    assert out.count("MISMATCH") == 2


def test_convert_every_official_checkpoint(folder, capsys, tmp_path):
    from jittor_pranet.engine.inference import load_model

    d, _ = folder
    out = tmp_path / "converted"
    code, stdout, err = run_cli(["weights", "convert", d, "--out", out], capsys)
    assert code == 0, err
    assert (out / "pranet_v2_pvt.pkl").is_file() and "PVT-V2.pth: converted" in stdout
    net, spec = load_model(out / "pranet_v2_pvt.pkl", fuse=False)
    assert spec.name == "pranet_v2_pvt" and spec.encoder == "pvt_v2_b0"
    code, stdout, _ = run_cli(["weights", "convert", d, "--out", out], capsys)
    assert code == 0 and "exists (kept" in stdout
    # a corrupted checkpoint is not converted, and the run fails
    (d / "PVT-V2.pth").write_bytes((d / "PVT-V2.pth").read_bytes()[:-100])
    code, stdout, err = run_cli(["weights", "convert", d, "--out", tmp_path / "again"], capsys)
    assert code == 2 and "skipped: MISMATCH" in stdout
    assert not (tmp_path / "again" / "pranet_v2_pvt.pkl").exists()


def test_bad_folder_and_manifest(tmp_path, capsys):
    code, _, err = run_cli(["weights", "list", tmp_path / "nope"], capsys)
    assert code == 2 and "does not exist" in one_error_line(err)
    code, _, err = run_cli(["weights", "list", tmp_path, "--manifest", tmp_path / "m.json"], capsys)
    assert code == 2 and "not found" in one_error_line(err)
