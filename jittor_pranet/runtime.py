"""Configure Jittor *before* its first import so that ``import jittor_pranet`` works offline.

Jittor makes three decisions at import time that break on machines like ours:

* it finds ``nvcc`` on ``PATH`` and then crashes when no ``libcudart`` is loadable;
* it downloads a oneDNN tarball the first time it imports, even with no network;
* on GPU machines it downloads cutt/cutlass.

This module looks at the machine (without importing Jittor) and sets the environment variables
Jittor reads, so that the import takes the CPU path when no CUDA runtime exists, links Debian's
``libdnnl`` instead of downloading oneDNN, and never reaches the network.  Nothing here imports
jittor; :func:`import_jittor` does, once, after configuring.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# oneDNN folder name that jittor's install_mkl() checks for (compile_extern.py in jittor 1.3.11).
_JITTOR_DNNL_DIRNAME = "dnnl_lnx_2.2.0_cpu_gomp"
_DNNL_LIB_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libdnnl.so",
    "/usr/lib/aarch64-linux-gnu/libdnnl.so",
    "/usr/lib64/libdnnl.so",
    "/usr/local/lib/libdnnl.so",
)
SLOW_CONV_WARNING = (
    "jittor-pranet: oneDNN (Debian package libdnnl-dev) was not found; Jittor falls back to generic "
    "convolution kernels that are ~100x slower. Install it with: apt-get install libdnnl-dev"
)


@dataclass
class RuntimeInfo:
    """What :func:`configure` decided; shown by ``jittor-pranet doctor``."""

    requested_device: str = "auto"
    cuda_runtime: Optional[str] = None
    use_cuda: bool = False
    onednn: Optional[str] = None
    jittor_home: str = ""
    notes: list = field(default_factory=list)


_INFO: Optional[RuntimeInfo] = None


def _jittor_home() -> Path:
    """Mirror jittor_utils.home(): JITTOR_HOME, else the value persisted in config.json, else ~."""
    env = os.environ.get("JITTOR_HOME")
    if env:
        return Path(env).absolute()
    cfg = Path.home() / ".cache" / "jittor" / "config.json"
    if cfg.is_file():
        try:
            import json

            saved = json.loads(cfg.read_text()).get("JITTOR_HOME")
            if saved:
                return Path(saved)
        except (OSError, ValueError):
            pass
    return Path.home()


def find_cuda_runtime() -> Optional[str]:
    """Path of a loadable libcudart next to nvcc (where jittor looks), or None.

    A GPU is also required (``/dev/nvidia*``): an nvcc with a runtime but no device still cannot run.
    """
    nvcc = os.environ.get("nvcc_path") or shutil.which("nvcc")
    if not nvcc or not glob.glob("/dev/nvidia[0-9]*"):
        return None
    cuda_dir = Path(os.path.realpath(nvcc)).parent
    lib = Path("/usr/lib/x86_64-linux-gnu") if str(nvcc) == "/usr/bin/nvcc" else cuda_dir.parent / "lib64"
    cand = lib / "libcudart.so"
    try:
        ctypes.CDLL(str(cand))
    except OSError:
        return None
    return str(cand)


def find_system_onednn() -> Optional[str]:
    """Path to a system oneDNN shared library (Debian libdnnl-dev), or None."""
    has_headers = os.path.isfile("/usr/include/dnnl.h") or os.path.isdir("/usr/include/oneapi/dnnl")
    if not has_headers:
        return None
    for cand in _DNNL_LIB_CANDIDATES:
        if os.path.isfile(cand):
            return cand
    found = ctypes.util.find_library("dnnl")
    return found if found and os.path.isabs(found) else None


def _link_onednn_for_jittor(home: Path, libdnnl: str) -> Optional[str]:
    """Make jittor's expected oneDNN folder point at the system library so it never downloads one."""
    target = home / ".cache" / "jittor" / "mkl" / _JITTOR_DNNL_DIRNAME
    lib = target / "lib" / "libmkldnn.so"
    if lib.is_file():
        return str(target)
    try:
        (target / "lib").mkdir(parents=True, exist_ok=True)
        inc = target / "include"
        if not inc.exists():
            inc.symlink_to("/usr/include")
        if lib.is_symlink():
            lib.unlink()
        lib.symlink_to(libdnnl)
    except OSError:
        return None
    return str(target) if lib.is_file() else None


def configure(device: Optional[str] = None) -> RuntimeInfo:
    """Set Jittor's import-time environment. Safe to call repeatedly; effective before first import.

    ``device`` is ``"cpu"``, ``"cuda"`` or ``"auto"`` (default: env ``JITTOR_PRANET_DEVICE`` or auto).
    """
    global _INFO
    device = (device or os.environ.get("JITTOR_PRANET_DEVICE") or "auto").lower()
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: choose cpu, cuda or auto")
    if "jittor" in sys.modules:
        if _INFO is None:
            _INFO = RuntimeInfo(requested_device=device, notes=["jittor was imported before jittor_pranet"])
        return _INFO

    info = RuntimeInfo(requested_device=device)
    env = os.environ
    env.setdefault("FIX_TORCH_ERROR", "0")  # do not import torch inside jittor
    env.setdefault("use_cutt", "0")  # no cutt download on GPU machines
    env.setdefault("use_cutlass", "0")  # no cutlass download on GPU machines
    env.setdefault("log_silent", "1")
    if "OMPI_COMM_WORLD_SIZE" not in env:
        # Outside mpirun, keep Jittor from compiling and dlopen-ing its MPI ops just because mpicc
        # is installed: a single process behaves the same with or without OpenMPI on the machine.
        if "use_mpi" not in env:
            env["use_mpi"] = "0"
            env["_JITTOR_PRANET_USE_MPI_OFF"] = "1"  # ours, not the user's: children under mpirun drop it
    elif env.pop("_JITTOR_PRANET_USE_MPI_OFF", None):
        env.pop("use_mpi", None)
    home = _jittor_home()
    info.jittor_home = str(home / ".cache" / "jittor")

    cudart = None if device == "cpu" else find_cuda_runtime()
    info.cuda_runtime = cudart
    if cudart is None:
        if device == "cuda":
            raise RuntimeError("--device cuda was requested but no usable CUDA runtime/GPU was found")
        env["nvcc_path"] = ""  # CPU build; avoids the libcudart crash when nvcc exists
    info.use_cuda = cudart is not None

    if env.get("use_mkl", "1") == "1":
        libdnnl = find_system_onednn()
        linked = _link_onednn_for_jittor(home, libdnnl) if libdnnl else None
        if linked is None and not (home / ".cache/jittor/mkl" / _JITTOR_DNNL_DIRNAME / "lib/libmkldnn.so").is_file():
            env["use_mkl"] = "0"
            warnings.warn(SLOW_CONV_WARNING, RuntimeWarning, stacklevel=2)
            print(SLOW_CONV_WARNING, file=sys.stderr)
        else:
            info.onednn = libdnnl or linked
    _INFO = info
    return info


_SIGNALS_RESTORED = False
_JITTOR_SIGINT_AVOIDED = False  # Jittor was imported by us, without its SIGINT handler


def restore_python_signal_handlers() -> None:
    """Give SIGCHLD and SIGINT back to Python after Jittor's import replaced them.

    Jittor's C++ handlers end the whole process at once (``quick_exit(1)``, silently with
    ``log_silent``) when *any* child process dies by a signal (a killed ``subprocess``, a crashed
    ``mpirun``, a pool worker taken by the OOM killer) and on Ctrl-C. A library must not do that:
    with Python's handlers the caller sees the child's return code or ``BrokenProcessPool``, and
    Ctrl-C raises ``KeyboardInterrupt`` (the CLI reports it; atomic writes leave nothing half-written).
    Only the main thread may set handlers; elsewhere this does nothing.
    """
    global _SIGNALS_RESTORED
    import signal
    import threading

    if _SIGNALS_RESTORED or threading.current_thread() is not threading.main_thread():
        return
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # Jittor leaves Jupyter's SIGINT alone, and so do we; when we imported Jittor its handler was never
    # installed, and the handler in place (Python's, or one chained in front of it) is kept
    if "JPY_PARENT_PID" not in os.environ and not _JITTOR_SIGINT_AVOIDED:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _SIGNALS_RESTORED = True


def _import_jittor_keeping_sigint():
    """Import Jittor without its C++ SIGINT handler ever being installed.

    Jittor installs it while its core loads, unless ``JPY_PARENT_PID`` is set (it leaves Jupyter's
    Ctrl-C alone); a Ctrl-C during the import (which compiles for minutes on a cold cache) would
    otherwise end the process with "Caught SIGINT, quick exit" and exit code 1. The variable is
    set for the import only (Jittor reads it nowhere else) and removed again.
    """
    global _JITTOR_SIGINT_AVOIDED
    if "jittor" in sys.modules:
        import jittor

        return jittor
    _compile_workers_quit_on_sigint()  # before the import: it may already compile
    ours = "JPY_PARENT_PID" not in os.environ
    if ours:
        os.environ["JPY_PARENT_PID"] = str(os.getpid())
    try:
        import jittor  # noqa: E402  (configured by configure())
    finally:
        if ours:
            os.environ.pop("JPY_PARENT_PID", None)
    _JITTOR_SIGINT_AVOIDED = True
    return jittor


def _quit_quietly(signum, frame) -> None:  # pragma: no cover - runs in Jittor's compile workers
    os._exit(1)


def _compile_workers_quit_on_sigint() -> None:
    """Jittor compiles kernels in a ``multiprocessing.Pool`` whose workers share the terminal's
    process group: a Ctrl-C made each print a ``KeyboardInterrupt`` traceback and could leave the
    pool's lock held, so the exit hook that shuts the pool down waited forever. Workers created from
    now on leave quietly on SIGINT; the main process reports the interrupt and drops the pool without
    its lock-taking shutdown (:func:`abandon_compile_pool`)."""
    try:
        import jittor_utils
    except ImportError:  # pragma: no cover - part of every Jittor install
        return
    original = jittor_utils.pool_initializer
    if getattr(original, "_quits_on_sigint", False):
        return

    def initializer():
        import signal

        signal.signal(signal.SIGINT, _quit_quietly)
        original()

    initializer._quits_on_sigint = True
    jittor_utils.pool_initializer = initializer


def abandon_compile_pool() -> None:
    """After Ctrl-C: kill Jittor's compile workers and drop the pool without its shutdown hooks.

    ``Pool.terminate()`` (run by Jittor's exit hook and by multiprocessing's finaliser) first takes
    the task queue's lock, which a worker killed or interrupted mid-task never released: the process
    would hang at exit. The workers only compile kernels into the cache (each file is written whole
    or not at all), so killing them loses nothing but the interrupted compilation."""
    import atexit

    jittor_utils = sys.modules.get("jittor_utils")
    pool = getattr(jittor_utils, "p", None) if jittor_utils else None
    if pool is None:
        return
    for worker in list(getattr(pool, "_pool", [])):
        try:
            worker.kill()
            worker.join(timeout=5)
        except (OSError, ValueError, AssertionError):
            pass
    finaliser = getattr(pool, "_terminate", None)
    if finaliser is not None and hasattr(finaliser, "cancel"):
        finaliser.cancel()
    atexit.unregister(jittor_utils.pool_cleanup)
    try:
        del jittor_utils.p
    except AttributeError:
        pass


def import_jittor(device: Optional[str] = None):
    """Configure (first time only) and import jittor, setting ``use_cuda`` as decided."""
    info = configure(device)
    jt = _import_jittor_keeping_sigint()

    restore_python_signal_handlers()

    want = info.use_cuda and (device or info.requested_device) != "cpu"
    jt.flags.use_cuda = 1 if (want and jt.has_cuda) else 0
    return jt


def set_device(device: str) -> None:
    """Switch the compute device after import (``cpu`` or ``cuda``); clear error if CUDA is absent."""
    jt = import_jittor()
    if device == "cuda":
        if not jt.has_cuda:
            raise RuntimeError("CUDA requested but this Jittor build has no CUDA (no GPU/runtime found at import)")
        jt.flags.use_cuda = 1
    elif device in ("cpu", "auto"):
        jt.flags.use_cuda = 1 if (device == "auto" and jt.has_cuda) else 0
    else:
        raise ValueError(f"unknown device {device!r}: choose cpu, cuda or auto")


def info() -> RuntimeInfo:
    return _INFO or configure()
