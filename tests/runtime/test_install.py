"""Installing without root / in any venv: tools/install.sh's options (dry run), the oneDNN lookup
(Debian's or PyPI's wheels, 2.x only) and the python3.X-config choice for venvs."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jittor_pranet import runtime

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "install.sh"


def _install(*args, env=None, timeout=120):
    """install.sh, always as a dry run (first, so that it holds whatever follows)."""
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _commands(out: str) -> list:
    return [line[2:] for line in out.splitlines() if line.startswith("+ ")]


def test_install_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_dry_run_no_apt_runs_nothing_but_pip_and_doctor():
    res = _install("--no-apt", "--extras", "", "--python", sys.executable)
    assert res.returncode == 0, res.stderr
    cmds = _commands(res.stdout)
    assert not any("apt-get" in c or c.startswith("sudo") for c in cmds), cmds
    pip = [c for c in cmds if " pip install " in f" {c} "]
    assert len(pip) == 1 and pip[0].split()[-1] in (".", "onednn-devel-cpu-gomp==2022.2.1"), cmds
    assert " -e . " in pip[0] + " "
    if runtime.find_onednn() is None:  # no oneDNN 2.x here: the wheels come with the package
        assert all(p in pip[0] for p in runtime.ONEDNN_PIP_PACKAGES)
    assert cmds[-1] == f"{sys.executable} -m jittor_pranet doctor --strict"


def test_dry_run_pip_onednn_installs_the_2x_wheels():
    res = _install("--pip-onednn", "--no-apt", "--extras", "", "--python", sys.executable)
    assert res.returncode == 0, res.stderr
    pip = [c for c in _commands(res.stdout) if " pip install " in f" {c} "]
    assert len(pip) == 1 and pip[0].endswith(" -e . " + " ".join(runtime.ONEDNN_PIP_PACKAGES)), pip
    assert all(p.endswith("==2022.2.1") for p in runtime.ONEDNN_PIP_PACKAGES)


def test_dry_run_passes_the_extras():
    res = _install("--no-apt", "--extras=torch,test", "--python", sys.executable)
    assert res.returncode == 0, res.stderr
    assert any(" -e .[torch,test]" in c for c in _commands(res.stdout)), res.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--extras"], "--extras needs a value"),
    (["--extras", "--no-apt"], "--extras needs a value"),
    (["--extras", "torch,"], "--extras takes names"),
    (["--extras", "torch test"], "--extras takes names"),
    (["--python", "/nonexistent/python3"], "'/nonexistent/python3' not found"),
])
def test_bad_arguments_one_error_line(args, message):
    res = _install(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert _commands(res.stdout) == []


def test_venv_without_pip_and_without_uv_gets_ensurepip(tmp_path):
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # a PATH with bash and the basic tools but no uv
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "id", "dirname", "cat"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bindir)}
    res = _install("--no-apt", "--extras", "", "--python", str(venv / "bin" / "python"), env=env)
    assert res.returncode == 0, res.stderr
    cmds = _commands(res.stdout)
    assert cmds[0] == f"{venv / 'bin' / 'python'} -m ensurepip --upgrade", cmds
    assert not any("--user" in c for c in cmds), cmds  # a venv never gets --user


@pytest.mark.skipif(not os.path.isfile("/usr/bin/python3") or not list(
    Path("/usr/lib").glob("python3.*/EXTERNALLY-MANAGED")), reason="no externally managed system Python")
def test_externally_managed_system_python_is_refused():
    env = {k: v for k, v in os.environ.items() if k != "PIP_BREAK_SYSTEM_PACKAGES"}
    res = _install("--python", "/usr/bin/python3", env=env)
    assert res.returncode == 2
    assert "EXTERNALLY-MANAGED" in res.stderr and "-m venv" in res.stderr
    assert _commands(res.stdout) == []


# ---- the oneDNN lookup -----------------------------------------------------------------------------

def _fake_onednn(prefix: Path, version=(2, 6, 0)) -> Path:
    """The layout PyPI's onednn-cpu-gomp + onednn-devel-cpu-gomp wheels leave under a prefix."""
    (prefix / "lib").mkdir(parents=True)
    real = prefix / "lib" / f"libdnnl.so.{version[0]}.{version[1]}"
    real.write_bytes(b"\x7fELF fake")
    (prefix / "lib" / "libdnnl.so").symlink_to(real.name)
    inc = prefix / "include" / "oneapi" / "dnnl"
    inc.mkdir(parents=True)
    (inc / "dnnl_version.h").write_text("".join(
        f"#define DNNL_VERSION_{k} {v}\n" for k, v in zip(("MAJOR", "MINOR", "PATCH"), version)))
    (inc / "dnnl.hpp").write_text("// fake\n")
    return prefix / "lib" / "libdnnl.so"


@pytest.fixture
def no_system_onednn(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "_DNNL_LIB_CANDIDATES", ())
    monkeypatch.setattr(runtime.ctypes.util, "find_library", lambda name: None)
    import site

    monkeypatch.setattr(site, "getuserbase", lambda: str(tmp_path / "no-user-base"))
    for attr in ("prefix", "exec_prefix", "base_prefix", "base_exec_prefix"):
        monkeypatch.setattr(sys, attr, str(tmp_path / "venv"))


def test_pip_onednn_in_the_venv_is_found(tmp_path, no_system_onednn):
    assert runtime.find_onednn() is None
    lib = _fake_onednn(tmp_path / "venv")
    found = runtime.find_onednn()
    assert found is not None and found.lib == str(lib) and found.version == (2, 6, 0)
    assert found.include == str(tmp_path / "venv" / "include") and found.source.startswith("pip (")


def test_pip_onednn_in_the_user_base_is_found(tmp_path, monkeypatch, no_system_onednn):
    import site

    lib = _fake_onednn(tmp_path / "local")
    monkeypatch.setattr(site, "getuserbase", lambda: str(tmp_path / "local"))
    found = runtime.find_onednn()
    assert found is not None and found.lib == str(lib)


def test_onednn_3_is_skipped_with_a_note(tmp_path, no_system_onednn):
    _fake_onednn(tmp_path / "venv", version=(3, 4, 1))
    notes = []
    assert runtime.find_onednn(notes) is None
    assert len(notes) == 1 and "3.4.1" in notes[0] and "needs oneDNN 2.x" in notes[0]


def test_jittor_folder_links_library_soname_and_headers(tmp_path):
    home = tmp_path / "home"
    first = runtime.OneDNN(lib=str(_fake_onednn(tmp_path / "a")), include=str(tmp_path / "a" / "include"),
                           version=(2, 6, 0), source="pip")
    folder = Path(runtime._link_onednn_for_jittor(home, first))
    assert folder == home / ".cache" / "jittor" / "mkl" / runtime._JITTOR_DNNL_DIRNAME
    assert os.path.realpath(folder / "lib" / "libmkldnn.so") == os.path.realpath(first.lib)
    # the soname the mkl ops record, found through their rpath to this folder
    assert os.path.realpath(folder / "lib" / "libdnnl.so.2") == os.path.realpath(first.lib)
    assert (folder / "include" / "oneapi" / "dnnl" / "dnnl.hpp").is_file()
    # that installation removed, another one found: every link follows (no stale or broken link kept)
    shutil.rmtree(tmp_path / "a")
    second = runtime.OneDNN(lib=str(_fake_onednn(tmp_path / "b")), include=str(tmp_path / "b" / "include"),
                            version=(2, 6, 0), source="pip")
    assert runtime._link_onednn_for_jittor(home, second) == str(folder)
    for name in ("libmkldnn.so", "libdnnl.so.2"):
        assert os.path.realpath(folder / "lib" / name) == os.path.realpath(second.lib)
    assert (folder / "include" / "oneapi" / "dnnl" / "dnnl_version.h").is_file()
    assert not [p for p in (folder / "lib").iterdir() if p.name.endswith(".tmp")]


def test_jittors_own_download_is_left_alone(tmp_path):
    folder = tmp_path / "home" / ".cache" / "jittor" / "mkl" / runtime._JITTOR_DNNL_DIRNAME
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "libmkldnn.so").write_bytes(b"jittor's own")
    other = runtime.OneDNN(lib=str(_fake_onednn(tmp_path / "p")), include=str(tmp_path / "p" / "include"),
                           version=(2, 6, 0), source="pip")
    assert runtime._link_onednn_for_jittor(tmp_path / "home", other) == str(folder)
    assert (folder / "lib" / "libmkldnn.so").read_bytes() == b"jittor's own"


# ---- python3.X-config for venvs --------------------------------------------------------------------

def _config_name() -> str:
    return f"python3.{sys.version_info.minor}-config"


def test_venv_from_another_python_gets_its_base_config(tmp_path, monkeypatch):
    base, venv = tmp_path / "base", tmp_path / "venv"
    (base / "bin").mkdir(parents=True)
    (venv / "bin").mkdir(parents=True)
    (base / "bin" / _config_name()).write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python"))
    monkeypatch.setattr(sys, "base_prefix", str(base))
    monkeypatch.setattr(sys, "base_exec_prefix", str(base))
    env = {}
    runtime._point_at_python_config(env)
    # the running Python's own script, even when /usr/bin has one of the same minor version
    assert env == {"python_config_path": str(base / "bin" / _config_name())}

    given = {"python_config_path": "/opt/mine/python-config"}
    runtime._point_at_python_config(given)
    assert given == {"python_config_path": "/opt/mine/python-config"}

    (venv / "bin" / _config_name()).write_text("#!/bin/sh\n")  # Jittor finds this one itself
    env = {}
    runtime._point_at_python_config(env)
    assert env == {}
