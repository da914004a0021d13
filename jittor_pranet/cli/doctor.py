"""``jittor-pranet doctor``: what this installation will run on, and why."""
from __future__ import annotations

import importlib.util
import os
import sys


def register(sub) -> None:
    p = sub.add_parser("doctor", help="show Jittor version, device, CUDA/cuDNN, oneDNN, cache folder, torch",
                       description="Print how jittor-pranet configured Jittor on this machine.")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a CPU build runs without oneDNN (convolutions ~100x slower); "
                        "tools/install.sh ends with it")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import runtime
    from .common import setup_device

    jt = setup_device(args.device)
    info = runtime.info()
    from jittor import compile_extern

    cudnn = getattr(compile_extern, "cudnn", None)
    onednn_on = bool(getattr(compile_extern, "use_mkl", 0)) and getattr(compile_extern, "mkl_ops", None) is not None
    rows = [
        ("jittor-pranet", __import__("jittor_pranet").__version__),
        ("python", sys.version.split()[0]),
        ("jittor", jt.__version__),
        ("device", "cuda" if jt.flags.use_cuda else "cpu"),
        ("CUDA runtime", info.cuda_runtime or "not found (CPU build)"),
        *_cuda_rows(info, cudnn),
        ("oneDNN (CPU conv)", f"on ({info.onednn})" if onednn_on else
         "OFF - convolutions ~100x slower; apt-get install libdnnl-dev, or without root: "
         "python -m pip install " + " ".join(runtime.ONEDNN_PIP_PACKAGES)),
        *[("oneDNN skipped", note) for note in info.onednn_skipped],
        ("Jittor cache", info.jittor_home),
        *([("Jittor config.json", info.jittor_config_note)] if info.jittor_config_note else []),
        ("torch (parity/bench)", _torch_version()),
        ("threads", str(os.cpu_count())),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.strict and not onednn_on and not jt.flags.use_cuda:
        print("error: Jittor runs without oneDNN (see 'oneDNN (CPU conv)' above)", file=sys.stderr)
        return 1
    return 0


def _cuda_rows(info, cudnn) -> list:
    """Toolkit, the CUDA view Jittor was pointed at, the CUDA-13 source fix, cuDNN and cuBLAS."""
    tk = info.cuda_toolkit
    if tk is None:
        why = f" ({info.notes[-1]})" if info.notes else ""
        return [("CUDA toolkit", f"not used{why}"), ("cuDNN", "loaded" if cudnn is not None else "not loaded")]
    rows = [("CUDA toolkit", f"nvcc {tk.version_text} ({tk.nvcc})"),
            ("CUDA view", info.cuda_view or "not built")]
    if info.helper_cuda_patch:
        rows.append(("helper_cuda.h (CUDA 13)", info.helper_cuda_patch))
    rows.append(("cuDNN", info.cudnn or ("loaded" if cudnn is not None else "not loaded")))
    rows.append(("cuBLAS", info.cublas or "not loaded"))
    if info.build_only:
        rows.append(("CUDA mode", "build only (JITTOR_PRANET_CUDA_BUILD_ONLY=1: compiled, not run)"))
    return rows


def _torch_version() -> str:
    if importlib.util.find_spec("torch") is None:
        return "not installed (pip install 'jittor-pranet[torch]')"
    try:
        import torch

        return torch.__version__
    except Exception as exc:  # pragma: no cover
        return f"installed but not importable: {exc}"
