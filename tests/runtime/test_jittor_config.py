"""~/.cache/jittor/config.json: written by rename before Jittor runs, so Jittor never rewrites it in place.

Jittor's ``jittor_utils.home()`` rewrites the file non-atomically in every process (and every
``asm_tuner.py`` helper) whose JITTOR_HOME differs from the recorded one; concurrent readers then
fail with a JSONDecodeError. Each test points HOME at a temporary folder (restored by monkeypatch).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jittor_pranet import runtime


@pytest.fixture
def fake_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("JITTOR_HOME", raising=False)
    return home


def _cfg(home: Path) -> Path:
    return home / ".cache" / "jittor" / "config.json"


def test_env_home_recorded_by_rename_keeping_other_keys(fake_home, tmp_path, monkeypatch):
    cfg = _cfg(fake_home)
    cfg.parent.mkdir(parents=True)
    cfg.write_text(json.dumps({"JITTOR_HOME": str(fake_home), "other": 7}))
    inode = cfg.stat().st_ino
    wanted = tmp_path / "jh"
    monkeypatch.setenv("JITTOR_HOME", str(wanted))
    info = runtime.RuntimeInfo()
    note = runtime.settle_jittor_config(Path(str(wanted)), info)
    assert json.loads(cfg.read_text()) == {"JITTOR_HOME": str(wanted), "other": 7}
    assert cfg.stat().st_ino != inode, "written in place, not by rename"
    assert note and str(wanted) in note and info.jittor_config_note == note
    assert sorted(p.name for p in cfg.parent.iterdir()) == ["config.json"], "temporary file left"


def test_agreeing_file_is_not_touched(fake_home, tmp_path, monkeypatch):
    cfg = _cfg(fake_home)
    cfg.parent.mkdir(parents=True)
    wanted = str(tmp_path / "jh")
    cfg.write_text(json.dumps({"JITTOR_HOME": wanted}))
    before = (cfg.stat().st_ino, cfg.stat().st_mtime_ns)
    monkeypatch.setenv("JITTOR_HOME", wanted)
    assert runtime.settle_jittor_config(Path(wanted)) is None
    assert (cfg.stat().st_ino, cfg.stat().st_mtime_ns) == before
    monkeypatch.delenv("JITTOR_HOME")
    assert runtime.settle_jittor_config(Path(wanted)) is None  # no env: the recorded default stays
    assert json.loads(cfg.read_text()) == {"JITTOR_HOME": wanted}


def test_no_file_and_no_env_writes_nothing(fake_home):
    assert runtime.settle_jittor_config(fake_home) is None
    assert not _cfg(fake_home).exists()


def test_unreadable_file_is_replaced(fake_home):
    cfg = _cfg(fake_home)
    cfg.parent.mkdir(parents=True)
    cfg.write_text("")  # what a reader sees in the middle of Jittor's own rewrite
    note = runtime.settle_jittor_config(fake_home)
    assert note and "unreadable" in note
    assert json.loads(cfg.read_text()) == {}


def _jittor_home_in_child(env: dict) -> str:
    """Run jittor_utils.home() in a fresh interpreter, as each asm_tuner.py helper does."""
    code = "import jittor_utils; print(jittor_utils.home())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_jittor_helpers_find_nothing_to_rewrite(fake_home, tmp_path, monkeypatch):
    """Without the settle step Jittor rewrites the file in place; after it, a child leaves it alone."""
    cfg = _cfg(fake_home)
    cfg.parent.mkdir(parents=True)
    cfg.write_text(json.dumps({"JITTOR_HOME": str(fake_home)}))
    wanted = str(tmp_path / "jh")
    env = {**os.environ, "HOME": str(fake_home), "JITTOR_HOME": wanted}

    ino = cfg.stat().st_ino
    os.utime(cfg, ns=(0, 0))
    assert _jittor_home_in_child(env) == wanted
    assert cfg.stat().st_mtime_ns != 0 and cfg.stat().st_ino == ino, "Jittor no longer rewrites in place?"

    cfg.write_text(json.dumps({"JITTOR_HOME": str(fake_home)}))
    monkeypatch.setenv("JITTOR_HOME", wanted)
    runtime.settle_jittor_config(Path(wanted))
    os.utime(cfg, ns=(0, 0))
    assert _jittor_home_in_child(env) == wanted
    assert cfg.stat().st_mtime_ns == 0, "Jittor rewrote config.json after it was settled"
