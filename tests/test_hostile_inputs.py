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
