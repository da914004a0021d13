"""A kernel library left truncated in Jittor's cache (a process killed while it compiled) is removed
and compiled again, instead of sending every later process to the slower kernels for good."""
import pytest

from jittor_pranet.kernels import _loader


@pytest.fixture
def fresh_family(monkeypatch):
    monkeypatch.setattr(_loader, "_LOADED", {})
    monkeypatch.setattr(_loader, "_ERRORS", {})
    monkeypatch.setattr(_loader, "_onednn_flags", lambda: "")
    monkeypatch.setattr(_loader.jt.flags, "use_cuda", 0)


def test_a_truncated_library_is_removed_and_compiled_again(tmp_path, monkeypatch, fresh_family):
    cache = tmp_path / "custom_ops"
    cache.mkdir()
    lib = cache / "gen_ops_pranet_x.cpython-311-x86_64-linux-gnu.so"
    lib.write_bytes(b"")  # what a killed compile left
    (cache / (lib.name + ".key")).write_text("key")
    calls = []

    def compile_custom_ops(files, extra_flags=""):
        calls.append(lib.exists())
        if lib.exists() and lib.stat().st_size == 0:
            raise RuntimeError(f"Wrong inputs arguments, Please refer to examples...\n{lib}: file too short")
        return "ops"

    monkeypatch.setattr(_loader.jt, "compile_custom_ops", compile_custom_ops)
    assert _loader.load("x", ["pranet_x"]) == "ops"
    assert calls == [True, False], "the damaged file must be gone before the second compile"
    assert _loader.error("x") is None


def test_other_compile_errors_are_not_retried(monkeypatch, fresh_family):
    calls = []

    def compile_custom_ops(files, extra_flags=""):
        calls.append(1)
        raise RuntimeError("g++: error: unrecognized option")

    monkeypatch.setattr(_loader.jt, "compile_custom_ops", compile_custom_ops)
    with pytest.warns(RuntimeWarning, match="unrecognized option"):
        assert _loader.load("y", ["pranet_y"]) is None
    assert calls == [1]
    assert "unrecognized option" in _loader.error("y")


def test_only_cached_op_libraries_are_named_broken(tmp_path):
    elsewhere = tmp_path / "lib.so"
    elsewhere.write_bytes(b"")
    assert _loader.broken_library(f"{elsewhere}: file too short") is None
    assert _loader.broken_library("no library here") is None
