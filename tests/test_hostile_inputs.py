"""Hostile or broken inputs: YAML alias bombs and non-UTF-8 configs, absurd TTA scales, NIfTI volumes
that are empty, truncated, mislabelled or whose header lies about their size. Each case: exit code 2,
exactly one ``error:`` line, no traceback, nothing left behind (and nothing of the user's removed)."""
import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

nib = pytest.importorskip("nibabel")


def _tree(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _one_error(args, capsys):
    try:
        code, out, err = run_cli(args, capsys)
    except SystemExit as exc:  # argparse
        code, err = exc.code, capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, err[-1500:])
    assert "Traceback" not in err, err[-1500:]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], err[-1500:]
    return lines[-1]


# ------------------------------------------------------------------ configs

def _laughs(levels: int) -> str:
    """A "billion laughs" document: 9**levels strings from a few hundred bytes, under a list-typed key."""
    rows = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        rows.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "x:\n" + "".join(f"  {r}\n" for r in rows) + f"train:\n  multi_scale: *l{levels - 1}\n"


CONFIGS = [
    ("billion laughs", _laughs(6).encode(), "anchors and aliases"),
    ("recursive mapping", b"data: &d {train: x, more: *d}\n", "anchors and aliases"),
    ("recursive list", b"train:\n  multi_scale: &a [1.0, *a]\n", "anchors and aliases"),
    ("latin-1 bytes", "model:\n  name: pranet_v2_pvt  # caf\u00e9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    ("deep nesting", b"train: " + b"[" * 20000 + b"]" * 20000 + b"\n", "nested more than 32 levels deep"),
    ("oversized", b"# " + b"x" * (1 << 20) + b"\n", "too large for a config"),
]


@pytest.mark.parametrize("case", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_hostile_config_is_one_line(case, tmp_path, capsys):
    name, data, expected = case
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        line = _one_error(["train", "--config", path, "--run-dir", tmp_path / "run"], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected in line and str(path) in line, line
    assert len(line) < 500, line[:500]
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB traced"
    assert _tree(tmp_path) == ["c.yaml"]


def test_alias_in_an_override_is_refused_and_a_star_string_is_still_a_string():
    from jittor_pranet.config import parse_override
    from jittor_pranet.errors import UserError

    with pytest.raises(UserError, match="anchors and aliases"):
        parse_override("train.multi_scale=[&a [1, 1], *a, *a]")
    assert parse_override("output.name=*run") == ("output.name", "*run")  # no anchor: nothing to expand
    assert parse_override("train.multi_scale=[0.75, 1, 1.25]") == ("train.multi_scale", [0.75, 1, 1.25])


def test_a_bom_and_plain_utf8_still_load(tmp_path):
    from jittor_pranet.config import load_config

    path = tmp_path / "c.yaml"
    path.write_bytes("\ufeffmodel:\n  name: pranet_v2_pvt  # caf\u00e9\n".encode("utf-8"))
    assert load_config(str(path))["model"]["name"] == "pranet_v2_pvt"


# ------------------------------------------------------------------ predict --tta-scales

@pytest.fixture(scope="module")
def ckpt_and_images(tmp_path_factory):
    import cv2

    from jittor_pranet import build_model, save_checkpoint

    root = tmp_path_factory.mktemp("tta")
    save_checkpoint(build_model("pranet_v2_pvt", encoder="pvt_v2_b0"), root / "m.pkl",
                    meta={"model": "pranet_v2_pvt", "num_classes": 1, "encoder": "pvt_v2_b0"})
    (root / "imgs").mkdir()
    cv2.imwrite(str(root / "imgs" / "a.png"), np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    return root


@pytest.mark.parametrize("scales", ["1e308", "inf", "nan", "0", "-1", "1,-0.5", "5", "1e308,1"])
@pytest.mark.parametrize("tta", [[], ["--tta", "scales"]], ids=["no-tta", "tta-scales"])
def test_absurd_tta_scales_fail_at_argument_checking(scales, tta, ckpt_and_images, tmp_path, capsys):
    before = _tree(ckpt_and_images)
    line = _one_error(["predict", "--checkpoint", ckpt_and_images / "m.pkl", ckpt_and_images / "imgs",
                       "--out", tmp_path / "out", "--size", "64", *tta, f"--tta-scales={scales}"], capsys)
    assert "--tta-scales" in line and "<= 4" in line, line
    assert not (tmp_path / "out").exists() and _tree(ckpt_and_images) == before


def test_scale_sizes_refuses_overflowing_scales_directly():
    from jittor_pranet.engine.tta import scale_sizes
    from jittor_pranet.errors import UserError

    for bad in (1e308, float("inf"), float("nan"), 0.0, -2.0):
        with pytest.raises(UserError, match="--tta-scales"):
            scale_sizes(352, (bad,))
    assert scale_sizes(352, (0.75, 1.0, 1.25)) == (256, 352, 448)
