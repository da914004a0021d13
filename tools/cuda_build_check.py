"""Compile Jittor's CUDA core and its cuDNN/cuBLAS/cub externs through jittor_pranet.runtime, no GPU needed.

Run by ``tools/cuda_build_check.sh`` in a Python venv that holds the CUDA toolkit wheels.  With
``JITTOR_PRANET_CUDA_BUILD_ONLY=1`` the runtime takes the CUDA path without a device (Jittor is told
the architecture instead of asking the driver), so everything up to the first kernel launch is
built.  The import runs in a child process whose log (Jittor's C++ logger writes to fd 2) gives the
number of files compiled per target; the JSON report says what compiled, what was patched and what
needs a driver.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

NEEDS_A_DRIVER = [
    "jt.flags.use_cuda=1: Jittor asks the driver for a device and stops without one",
    "the CUDA kernels of real ops (first convolution, matmul, reduction): Jittor compiles each op's "
    "kernel when it first runs it on a device",
    "cudnnCreate/cublasCreate handles and cuDNN's algorithm search (made only when a device exists)",
]


def child() -> int:
    """Import Jittor through the runtime and print what was built, as JSON on stdout."""
    from jittor_pranet import runtime

    info = runtime.configure("auto")
    report = {
        "python": sys.version.split()[0],
        "toolkit": None if info.cuda_toolkit is None else {
            "nvcc": info.cuda_toolkit.nvcc, "version": info.cuda_toolkit.version_text,
            "include_dirs": info.cuda_toolkit.include_dirs, "lib_dirs": info.cuda_toolkit.lib_dirs},
        "cuda_view": info.cuda_view, "helper_cuda_patch": info.helper_cuda_patch, "notes": info.notes,
        "import_error": None,
    }
    if info.cuda_view is None:
        report["import_error"] = "the runtime did not take the CUDA path: " + "; ".join(info.notes)
        print(json.dumps(report))
        return 1
    try:
        jt = runtime.import_jittor("auto")
    except BaseException as exc:  # Jittor ends with SystemExit/RuntimeError on a fatal build error
        report["import_error"] = f"{type(exc).__name__}: {exc}"[-2000:]
        print(json.dumps(report))
        return 1
    from jittor import compile_extern, compiler

    info = runtime.info()  # import_jittor configured again: the record with the cuDNN outcome
    cudnn = compile_extern.cudnn
    report.update({
        "jittor": jt.__version__, "nvcc_used_by_jittor": compiler.nvcc_path,
        "cuda_archs": list(jt.flags.cuda_archs), "device_count": jt.core.get_device_count(),
        "cublas": compile_extern.cublas is not None, "curand": compile_extern.curand is not None,
        "cub": getattr(compile_extern, "cub", None) is not None,
        "cudnn": info.cudnn,
        "cudnn_ops": sorted(n for n in dir(cudnn.ops) if n.startswith("cudnn")) if cudnn is not None else [],
    })
    print(json.dumps(report))
    return 0


def build_no_device_shim(cudart: str, major: int) -> dict:
    """Compile tools/cuda_no_device_shim.c as a stand-in ``libcudart.so.<major>``; the env that preloads it."""
    import tempfile

    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_no_device_shim.c")
    tmp = tempfile.mkdtemp(prefix="jtp-shim-")
    soname = f"libcudart.so.{major}"
    with open(os.path.join(tmp, "version.map"), "w") as f:
        f.write(f"{soname} {{ global: cudaGetDeviceCount; local: *; }};\n")
    out = os.path.join(tmp, "libcuda_no_device_shim.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", f"-Wl,-soname,{soname}",
                    f"-Wl,--version-script={os.path.join(tmp, 'version.map')}", src, "-o", out, "-ldl"], check=True)
    return {"LD_PRELOAD": (out + " " + os.environ.get("LD_PRELOAD", "")).strip(),
            "JTP_REAL_CUDART": os.path.realpath(cudart)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the report to this file")
    ap.add_argument("--log", help="keep Jittor's build log here (default: next to --json, or discarded)")
    ap.add_argument("--arch", default="90", help="CUDA architecture to compile for (default 90: H100/H200)")
    ap.add_argument("--no-shim", action="store_true",
                    help="do not preload tools/cuda_no_device_shim.c (the import then stops at Jittor's first "
                         "CUDA call on a machine without a driver)")
    args = ap.parse_args()
    if args.child:
        return child()
    env = dict(os.environ, JITTOR_PRANET_CUDA_BUILD_ONLY="1", JITTOR_PRANET_CUDA_ARCH=args.arch, log_silent="0")
    shim = None
    if not (args.no_shim or os.path.exists("/dev/nvidiactl")):
        os.environ.update(JITTOR_PRANET_CUDA_BUILD_ONLY="1")
        from jittor_pranet import runtime  # finds the toolkit and builds the view; imports no Jittor

        info = runtime.configure("auto")
        if info.cuda_view:
            shim = build_no_device_shim(info.cuda_runtime, info.cuda_toolkit.version[0])
            env.update(shim)
    t0 = time.time()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], env=env,
                          capture_output=True, text=True)
    seconds = round(time.time() - t0, 1)
    log = done.stdout + done.stderr  # Jittor logs to both
    log_path = args.log or (os.path.splitext(args.json)[0] + ".log" if args.json else None)
    if log_path:
        with open(log_path, "w") as f:
            f.write(log)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"import_error": f"child exited {done.returncode}: " + log[-2000:]}
    compiled = {}  # Jittor prints "Compiling <target>(i/n)" while it builds a target of n files
    for m in re.finditer(r"Compiling (\w+)\((\d+)/(\d+)\)", log):
        compiled[m.group(1)] = max(compiled.get(m.group(1), 0), int(m.group(3)))
    report.update({
        "seconds": seconds, "no_device_shim": bool(shim), "compiled_files": compiled, "compiled_files_total": sum(compiled.values()),
        "warnings": sorted(set(re.findall(r"\[w [^\]]*\] ([^\n]{0,300})", log)))[:20],
        "not_reachable_without_driver": NEEDS_A_DRIVER,
    })
    report["ok"] = bool(report.get("import_error") is None and report.get("cublas") and report.get("cub")
                        and str(report.get("cudnn", "")).startswith("cuDNN"))
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
