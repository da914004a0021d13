"""Atomic writes leave no temporary file behind even when Ctrl-C lands the moment the temporary file
is created (Python raises a pending KeyboardInterrupt right after the call that created it)."""
import os

import numpy as np
import pytest

from jittor_pranet.utils import io


@pytest.fixture
def ctrl_c_as_the_file_is_created(monkeypatch):
    real_open = os.open

    def open_then_interrupted(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_CREAT:
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", open_then_interrupted)


@pytest.mark.parametrize("write", [
    lambda p: io.atomic_write_bytes(p, b"data"),
    lambda p: io.atomic_write_text(p, "text"),
    lambda p: io.atomic_imwrite(p.with_suffix(".png"), np.zeros((4, 4), np.uint8)),
    lambda p: io.atomic_write_many({p: b"a", p.with_name("second.bin"): b"b"}),
], ids=["bytes", "text", "image", "many"])
def test_ctrl_c_at_creation_leaves_no_temporary_file(tmp_path, ctrl_c_as_the_file_is_created, write):
    (tmp_path / "kept.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "out.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_the_written_file_has_the_mode_of_a_plain_open(tmp_path):
    previous = os.umask(0o027)
    try:
        path = io.atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"x"
    assert (path.stat().st_mode & 0o777) == 0o640
