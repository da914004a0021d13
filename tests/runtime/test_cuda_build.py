"""The CUDA path of jittor_pranet.runtime, proven without a GPU.

* The CUDA view: Jittor gets ``<view>/bin/nvcc`` (a script, so Jittor keeps the view as the toolkit
  folder), merged ``include``/``lib64`` folders and the unversioned library names it loads.
* The CUDA-13 fix of Jittor's ``helper_cuda.h``: CUDA 13 removed two ``cudaDeviceProp`` fields; the
  unpatched header must fail to compile with nvcc >= 13 (control) and the patched one must compile.
* The whole build (``tools/cuda_build_check.py``): Jittor's CUDA core, cuBLAS, cub and cuDNN externs
  compiled through the runtime in a Python venv holding the CUDA toolkit wheels
  (``tools/cuda_build_check.sh`` makes it); skipped with the reason where that venv is absent.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from jittor_pranet import runtime

ROOT = Path(__file__).resolve().parents[2]


def _fake_toolkit(tmp_path: Path) -> runtime.CudaToolkit:
    """A pip-style layout: a toolkit folder with only versioned libraries and a separate cuDNN package."""
    tk = tmp_path / "cu13"
    (tk / "bin").mkdir(parents=True)
    (tk / "include").mkdir()
    (tk / "lib").mkdir()
    nvcc = tk / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\necho \"real nvcc $@\"\n")
    nvcc.chmod(0o755)
    (tk / "include" / "cuda_runtime.h").write_text("// toolkit\n")
    (tk / "include" / "cudnn.h").write_text("// toolkit copy wins\n")
    for name in ("libcudart.so.13", "libcublas.so.13", "libcublas.so.12"):
        (tk / "lib" / name).write_text("")
    cudnn = tmp_path / "cudnn"
    (cudnn / "include").mkdir(parents=True)
    (cudnn / "lib").mkdir()
    (cudnn / "include" / "cudnn.h").write_text("// package copy\n")
    (cudnn / "include" / "cudnn_version.h").write_text("#define CUDNN_MAJOR 9\n")
    (cudnn / "lib" / "libcudnn.so.9").write_text("")
    (cudnn / "lib" / "README").write_text("not a library\n")
    return runtime.CudaToolkit(nvcc=str(nvcc), root=str(tk), version=(13, 0),
                               include_dirs=[str(tk / "include"), str(cudnn / "include")],
                               lib_dirs=[str(tk / "lib"), str(cudnn / "lib")])


def test_cuda_view_gives_jittor_the_names_it_expects(tmp_path):
    tk = _fake_toolkit(tmp_path)
    view = runtime.prepare_cuda_view(tmp_path / "home", tk)
    lib = view / "lib64"
    assert os.path.realpath(lib / "libcudart.so") == os.path.realpath(Path(tk.lib_dirs[0]) / "libcudart.so.13")
    assert os.path.realpath(lib / "libcublas.so") == os.path.realpath(Path(tk.lib_dirs[0]) / "libcublas.so.13")
    assert os.path.realpath(lib / "libcudnn.so") == os.path.realpath(Path(tk.lib_dirs[1]) / "libcudnn.so.9")
    assert not (lib / "README").exists()
    assert (view / "include" / "cudnn.h").read_text() == "// toolkit copy wins\n"
    assert (view / "include" / "cudnn_version.h").is_file()
    nvcc = view / "bin" / "nvcc"
    assert not nvcc.is_symlink()  # Jittor resolves links: a link would send it back to the toolkit folder
    out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True).stdout
    assert out.strip() == "real nvcc --version"
    assert runtime.prepare_cuda_view(tmp_path / "home", tk) == view  # built once, reused
    tk.lib_dirs = tk.lib_dirs[:1]
    assert runtime.prepare_cuda_view(tmp_path / "home", tk) != view  # another installation, another view


def _jittor_helper_cuda() -> Path:
    jdir = runtime.jittor_package_dir()
    if jdir is None:
        pytest.skip("jittor is not installed")
    return jdir / "extern" / "cuda" / "inc" / "helper_cuda.h"


def test_helper_cuda_patch_replaces_every_removed_field_once(tmp_path):
    header = tmp_path / "helper_cuda.h"
    original = _jittor_helper_cuda().read_text()
    if "jittor-pranet" in original:
        original = _jittor_helper_cuda().with_name("helper_cuda.h.orig").read_text()
    header.write_text(original)
    assert runtime.patch_helper_cuda(header, check_only=True).startswith("NOT patched")
    assert header.read_text() == original
    status = runtime.patch_helper_cuda(header)
    assert status.startswith("patched now (4 uses"), status
    text = header.read_text()
    assert "deviceProp.computeMode" not in text and "deviceProp.clockRate" not in text
    assert text.count("jtp_device_attribute(cudaDevAttrComputeMode, ") == 3
    assert text.count("jtp_device_attribute(cudaDevAttrClockRate, current_device)") == 1
    assert (tmp_path / "helper_cuda.h.orig").read_text() == original
    assert runtime.patch_helper_cuda(header).startswith("patched (")
    assert header.read_text() == text  # idempotent


def _nvcc13():
    tk = runtime.find_cuda_toolkit()
    if tk is None or tk.version < (13, 0):
        pytest.skip("no nvcc >= 13 on this machine (CUDA 13 toolkit, e.g. pip nvidia-cuda-nvcc)")
    return tk


def _compile_header(tk, inc_dir: Path, tmp_path: Path):
    jdir = runtime.jittor_package_dir()
    src = tmp_path / "use_helper.cu"
    src.write_text('#include <cuda_runtime.h>\n#include "helper_cuda.h"\n'
                   "int main() { return gpuGetMaxGflopsDeviceId() + gpuDeviceInit(0); }\n")
    cmd = [tk.nvcc, "-c", "-std=c++17", "-DHAS_CUDA", "-DIS_CUDA", str(src), "-o", str(tmp_path / "use_helper.o"),
           f"-I{inc_dir}", f"-I{jdir / 'src'}", f"-I{jdir / 'extern' / 'cuda' / 'inc'}"]
    cmd += [f"-I{d}" for d in tk.include_dirs]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_patched_helper_cuda_compiles_with_cuda13_and_the_original_does_not(tmp_path):
    tk = _nvcc13()
    original = _jittor_helper_cuda()
    if "jittor-pranet" in original.read_text():
        original = original.with_name("helper_cuda.h.orig")
    plain, fixed = tmp_path / "plain", tmp_path / "fixed"
    plain.mkdir()
    fixed.mkdir()
    shutil.copy(original, plain / "helper_cuda.h")
    shutil.copy(original, fixed / "helper_cuda.h")
    assert runtime.patch_helper_cuda(fixed / "helper_cuda.h").startswith("patched now")
    failed = _compile_header(tk, plain, tmp_path)
    assert failed.returncode != 0 and "clockRate" in failed.stderr + failed.stdout
    built = _compile_header(tk, fixed, tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]


def _cuda_venv_python():
    venv = Path(os.environ.get("JITTOR_PRANET_CUDA_VENV", ROOT / ".cuda-venv"))
    py = venv / "bin" / "python"
    if not py.is_file():
        pytest.skip(f"no CUDA toolkit venv at {venv} (make it with tools/cuda_build_check.sh)")
    probe = subprocess.run([str(py), "-c", "import jittor_utils, nvidia.cudnn, nvidia.cu13"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{venv} lacks jittor or the CUDA 13 / cuDNN wheels: {probe.stderr.strip().splitlines()[-1:]}")
    return py


def test_jittor_cuda_core_and_externs_compile_through_the_runtime(tmp_path):
    py = _cuda_venv_python()
    out = tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    env["nvcc_path"] = os.path.join(site, "nvidia", "cu13", "bin", "nvcc")  # the wheels, as cuda_build_check.sh
    done = subprocess.run([str(py), str(ROOT / "tools" / "cuda_build_check.py"), "--json", str(out)],
                          capture_output=True, text=True, timeout=1800, env=env)
    assert out.is_file(), done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["import_error"] is None, report["import_error"]
    assert report["toolkit"]["version"].startswith("13."), report["toolkit"]
    assert report["helper_cuda_patch"].startswith("patched")
    assert report["nvcc_used_by_jittor"].startswith(report["cuda_view"])
    assert report["cublas"] and report["cub"], report
    assert report["cudnn"].startswith("cuDNN 9"), report["cudnn"]
    assert {"cudnn_conv", "cudnn_conv_backward_w", "cudnn_conv_backward_x"} <= set(report["cudnn_ops"])
    assert report["ok"] is True


def test_without_cudnn_one_message_and_jittors_own_convolutions(tmp_path, capsys):
    from jittor_pranet.ops import jt

    from jittor import compile_extern

    if compile_extern.cudnn is not None:
        pytest.skip("this Jittor already loaded cuDNN")
    tk = _fake_toolkit(tmp_path)
    tk.include_dirs, tk.lib_dirs = tk.include_dirs[:1], tk.lib_dirs[:1]  # no cuDNN package
    (Path(tk.include_dirs[0]) / "cudnn.h").unlink()
    info = runtime.RuntimeInfo(cuda_view=str(runtime.prepare_cuda_view(tmp_path / "home", tk)))
    runtime.load_cudnn(jt, info)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cuDNN could not be loaded" in err[0] and "Jittor's own CUDA" in err[0], err
    assert info.cudnn.startswith("not loaded: no cudnn.h"), info.cudnn
    assert compile_extern.cudnn is None
