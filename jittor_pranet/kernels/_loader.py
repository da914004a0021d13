"""Compiles one op family's C++ sources (``csrc/``) with ``jt.compile_custom_ops`` on first use.

Each family is compiled on its own and at most once per process; a family that fails to compile
(no oneDNN in this Jittor, no compiler) is remembered with the reason, and every layer then runs
Jittor's own kernels.  Nothing is compiled on CUDA (Jittor's CUDA/cuDNN kernels are used there).
"""
from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence

from ..runtime import import_jittor

jt = import_jittor()

CSRC = Path(__file__).parent / "csrc"
_LOCK = threading.Lock()
_LOADED: Dict[str, object] = {}
_ERRORS: Dict[str, str] = {}


def _onednn_flags() -> Optional[str]:
    """Compile/link flags for the oneDNN Jittor itself uses (its ``mkl`` folder), or None."""
    ce = getattr(jt, "compile_extern", None)
    if ce is None or not getattr(ce, "use_mkl", False) or getattr(ce, "mkl_ops", None) is None:
        return None
    from jittor_utils import home

    mkl_root = Path(home()) / ".cache" / "jittor" / "mkl"
    for d in sorted(mkl_root.glob("dnnl*")):
        if (d / "lib" / "libmkldnn.so").is_file():
            return f' -I"{d / "include"}" -L"{d / "lib"}" -lmkldnn '
    return None


def load(family: str, op_names: Sequence[str]):
    """The compiled ops of ``family`` (``op_names``: the ``csrc/<name>.{h,cc}`` pairs), or None."""
    ops = _LOADED.get(family)
    if ops is not None or family in _ERRORS:
        return ops
    if jt.flags.use_cuda:
        return None  # not remembered: the CPU may be selected later
    with _LOCK:
        if family in _LOADED or family in _ERRORS:
            return _LOADED.get(family)
        flags = _onednn_flags()
        if flags is None:
            _ERRORS[family] = "Jittor was imported without oneDNN (use_mkl=0)"
            return None
        files = [str(CSRC / f"{n}.{ext}") for n in op_names for ext in ("h", "cc")]
        try:
            try:
                _LOADED[family] = jt.compile_custom_ops(files, extra_flags=flags)
            except Exception as exc:
                broken = broken_library(str(exc))
                if broken is None:
                    raise
                remove_broken_library(broken)  # then compiled again, once
                _LOADED[family] = jt.compile_custom_ops(files, extra_flags=flags)
        except Exception as exc:  # pragma: no cover - depends on the machine's compiler
            _ERRORS[family] = f"could not compile jittor_pranet/kernels/csrc ({family}): {exc}"
            warnings.warn(f"jittor-pranet: {_ERRORS[family]}; using Jittor's own (slower) kernels", RuntimeWarning)
            return None
        return _LOADED[family]


_BROKEN = re.compile(r"(/\S+\.so): (?:file too short|invalid ELF header|file truncated)")


def broken_library(message: str) -> Optional[Path]:
    """The cached op library a failed load names as damaged, or None. Jittor writes these libraries
    in place, so a process killed while it compiled (Ctrl-C, the OOM killer) can leave one truncated,
    and every later process would fail to load it and fall back to the slower kernels for good."""
    found = _BROKEN.search(message)
    if found is None:
        return None
    path = Path(found.group(1))
    return path if path.parent.name == "custom_ops" and path.is_file() else None


def remove_broken_library(path: Path) -> None:
    for stale in (path, path.with_name(path.name + ".key")):
        try:
            stale.unlink()
        except OSError:
            pass


def error(family: str) -> Optional[str]:
    """Why ``family`` is not available (None when it loaded or was not tried)."""
    if jt.flags.use_cuda:
        return "CUDA: Jittor's own CUDA/cuDNN kernels are used"
    return _ERRORS.get(family)
