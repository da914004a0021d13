"""Configure Jittor *before* its first import so that ``import jittor_pranet`` works offline.

Jittor makes three decisions at import time that break on machines like ours:

* it finds ``nvcc`` on ``PATH`` and then crashes when no ``libcudart`` is loadable;
* it downloads a oneDNN tarball the first time it imports, even with no network;
* on GPU machines it downloads cutt/cutlass;
* its CUDA path expects a classic toolkit folder (``<nvcc>/../lib64/libcudart.so``), cuDNN 8 file
  names, and ``cudaDeviceProp`` fields that CUDA 13 removed.

This module looks at the machine (without importing Jittor) and sets the environment variables
Jittor reads, so that the import takes the CPU path when no CUDA runtime exists, links a local
oneDNN 2.x (Debian's ``libdnnl-dev``, else PyPI's ``onednn-cpu-gomp`` + ``onednn-devel-cpu-gomp``
wheels in this environment) instead of downloading one, and never reaches the network.  On a CUDA 12/13 machine
it gives Jittor a private *CUDA view* in its cache (see :func:`prepare_cuda_view`): a folder whose
``bin/nvcc`` runs the real compiler and whose ``include``/``lib64`` link the toolkit's and the pip
packages' (``nvidia-*``) headers and libraries under the names Jittor looks for.  cuDNN is compiled
and loaded by :func:`import_jittor` (Jittor 1.3.11's own loader only knows cuDNN 8); when that
fails, one message says so and Jittor's own convolution kernels run.  Nothing here downloads.
Nothing here imports jittor; :func:`import_jittor` does, once, after configuring.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import importlib.abc
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
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
# Jittor 1.3.11's mkl ops are written against the oneDNN 2.x C++ API (operation descriptors such as
# convolution_forward::desc), which oneDNN 3.0 removed: only a 2.x library and its headers will do.
ONEDNN_MAJOR = 2
# oneDNN 2.6 from PyPI (the same version as Debian 12's libdnnl-dev): the library wheel puts
# lib/libdnnl.so* and the devel wheel include/oneapi/dnnl/*.hpp under the environment's prefix
# (the venv, or ~/.local with --user). The newer `onednn`/`onednn-devel` wheels (2024.0 on) are 3.x.
ONEDNN_PIP_PACKAGES = ("onednn-cpu-gomp==2022.2.1", "onednn-devel-cpu-gomp==2022.2.1")
SLOW_CONV_WARNING = (
    "jittor-pranet: oneDNN 2.x was not found; Jittor falls back to generic convolution kernels that are "
    "~100x slower. Install it with: apt-get install libdnnl-dev, or without root (into this Python "
    "environment): python -m pip install " + " ".join(ONEDNN_PIP_PACKAGES)
)


CUDA_BUILD_ONLY_ENV = "JITTOR_PRANET_CUDA_BUILD_ONLY"
# Bumped when the layout of the CUDA view changes, so that old views are not reused.
_CUDA_VIEW_FORMAT = 1
_HELPER_CUDA_MARK = "jittor-pranet: CUDA 13 removed cudaDeviceProp::clockRate and ::computeMode"
_CUDNN_FALLBACK = ("jittor-pranet: cuDNN could not be loaded ({reason}); convolutions run on Jittor's own CUDA "
                   "kernels (slower). `jittor-pranet doctor --device cuda` shows what was found.")


@dataclass
class CudaToolkit:
    """A CUDA toolkit found on this machine (system install or pip ``nvidia-*`` packages)."""

    nvcc: str  # the real compiler, not a wrapper script
    root: str
    version: tuple
    include_dirs: list
    lib_dirs: list

    @property
    def version_text(self) -> str:
        return ".".join(str(v) for v in self.version)


@dataclass
class RuntimeInfo:
    """What :func:`configure` decided; shown by ``jittor-pranet doctor``."""

    requested_device: str = "auto"
    cuda_runtime: Optional[str] = None
    use_cuda: bool = False
    onednn: Optional[str] = None
    jittor_home: str = ""
    cuda_toolkit: Optional["CudaToolkit"] = None
    cuda_view: Optional[str] = None
    helper_cuda_patch: Optional[str] = None
    cudnn: Optional[str] = None
    cublas: Optional[str] = None
    build_only: bool = False
    jittor_config_note: Optional[str] = None
    notes: list = field(default_factory=list)
    onednn_skipped: list = field(default_factory=list)  # oneDNN installations Jittor cannot use


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


def _read_jittor_config(cfg: Path, tries: int = 3) -> Optional[dict]:
    """config.json as a dict ({} when absent); None when it stays unreadable over a few tries.

    A read can land inside another process's non-atomic rewrite (an empty or cut file), so an
    unreadable file is read again before it is called broken.
    """
    import json
    import time

    for attempt in range(tries):
        if not cfg.exists():
            return {}
        try:
            data = json.loads(cfg.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            if attempt + 1 < tries:
                time.sleep(0.05)
    return None


def settle_jittor_config(home: Path, info: Optional["RuntimeInfo"] = None) -> Optional[str]:
    """Make ``~/.cache/jittor/config.json`` agree with this run's Jittor home, written atomically.

    ``jittor_utils.home()`` rewrites that file in place (open "w", then dump) in every process
    whose ``JITTOR_HOME`` differs from the recorded one, including each ``asm_tuner.py`` helper
    Jittor starts per CPU kernel compile; a concurrent reader then sees an empty file and fails
    with a JSONDecodeError. Writing the value first, by rename, leaves Jittor nothing to rewrite.
    A file that stays unreadable is replaced, since Jittor cannot start with it. Returns a note.
    """
    import json
    import tempfile

    cfg = Path.home() / ".cache" / "jittor" / "config.json"
    data = _read_jittor_config(cfg)
    note = None
    if data is None:
        data, note = {}, f"{cfg} was unreadable (not JSON); replaced"
    env = os.environ.get("JITTOR_HOME")
    if env:
        wanted = os.path.abspath(env)
        if data.get("JITTOR_HOME", str(Path.home())) != wanted:
            data["JITTOR_HOME"] = wanted
            note = (f"JITTOR_HOME={wanted} recorded in {cfg}: Jittor uses it as the default cache "
                    "of later runs without JITTOR_HOME")
    if note is None:
        return None
    try:
        cfg.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".json", dir=cfg.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, cfg)
    except OSError as e:  # read-only home: Jittor will try (and report) itself
        return f"could not write {cfg}: {e}"
    if info is not None:
        info.jittor_config_note = note
    return note


def _site_package_dirs() -> list:
    """Folders where pip puts packages for this interpreter (venv first), existing ones only."""
    import site
    import sysconfig

    dirs = [sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib")]
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # old virtualenv's site module
        pass
    dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    seen, out = set(), []
    for d in dirs:
        if d and os.path.isdir(d) and os.path.realpath(d) not in seen:
            seen.add(os.path.realpath(d))
            out.append(d)
    return out


def _pip_nvidia_dirs(kind: str, cuda_major: Optional[int]) -> list:
    """``nvidia/<pkg>/<kind>`` folders of pip's CUDA packages; ``cuNN`` folders of another major skipped."""
    out = []
    for site_dir in _site_package_dirs():
        for d in sorted(glob.glob(os.path.join(site_dir, "nvidia", "*", kind))):
            pkg = os.path.basename(os.path.dirname(d))
            if cuda_major is not None and re.fullmatch(r"cu\d+", pkg) and pkg != f"cu{cuda_major}":
                continue
            out.append(d)
    return out


def _nvcc_candidates() -> list:
    cands = [os.environ.get("nvcc_path") or None, shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"]
    for site_dir in _site_package_dirs():
        cands += sorted(glob.glob(os.path.join(site_dir, "nvidia", "cu*", "bin", "nvcc")), reverse=True)
        cands.append(os.path.join(site_dir, "nvidia", "cuda_nvcc", "bin", "nvcc"))
    out = []
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK) and c not in out:
            out.append(c)
    return out


def _real_nvcc(nvcc: str) -> Optional[str]:
    """The toolkit's own nvcc behind ``nvcc`` (which may be a symlink or a wrapper script)."""
    real = os.path.realpath(nvcc)
    if os.path.isfile(os.path.join(os.path.dirname(real), "nvcc.profile")):
        return real
    try:  # a wrapper script: nvcc names its own folder in a dry run
        out = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^#\$ _HERE_=(.+)$", out.stdout + out.stderr, re.MULTILINE)
    if m and os.path.isfile(os.path.join(m.group(1).strip(), "nvcc")):
        return os.path.realpath(os.path.join(m.group(1).strip(), "nvcc"))
    return None


def _nvcc_version(nvcc: str) -> Optional[tuple]:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def find_cuda_toolkit() -> Optional[CudaToolkit]:
    """The first working nvcc (``$nvcc_path``, ``PATH``, /usr/local/cuda, pip's ``nvidia-cuda-nvcc``)
    with the header and library folders of its toolkit and of pip's ``nvidia-*`` packages."""
    arch = "aarch64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    for cand in _nvcc_candidates():
        nvcc = _real_nvcc(cand)
        version = _nvcc_version(nvcc) if nvcc else None
        if version is None:
            continue
        root = os.path.dirname(os.path.dirname(nvcc))
        incs = [os.path.join(root, "include"), os.path.join(root, "targets", f"{arch}-linux", "include")]
        libs = [os.path.join(root, "lib64"), os.path.join(root, "lib"), os.path.join(root, "targets", f"{arch}-linux", "lib")]
        incs += _pip_nvidia_dirs("include", version[0])
        libs += _pip_nvidia_dirs("lib", version[0])
        dedup = lambda ds: [d for i, d in enumerate(ds) if os.path.isdir(d)
                            and os.path.realpath(d) not in {os.path.realpath(e) for e in ds[:i]}]
        return CudaToolkit(nvcc=nvcc, root=root, version=version, include_dirs=dedup(incs), lib_dirs=dedup(libs))
    return None


def _so_version_key(name: str) -> tuple:
    tail = name.split(".so", 1)[1].lstrip(".")
    return tuple(int(v) if v.isdigit() else 0 for v in tail.split(".")) if tail else ()


def prepare_cuda_view(home: Path, toolkit: CudaToolkit) -> Path:
    """Build (once) the folder Jittor is pointed at: ``bin/nvcc``, ``include/``, ``lib64/``.

    Jittor takes ``<nvcc>/..`` as the toolkit and looks for ``include/<lib>.h`` and
    ``lib64/lib<lib>.so`` there; pip installs keep headers and libraries in several ``nvidia/*``
    folders and only versioned library names (``libcudart.so.13``).  The view links every entry of
    those folders (the toolkit first), adds the unversioned ``libX.so`` names, and has a ``bin/nvcc``
    *script* that runs the real compiler (Jittor resolves symlinks, so a link would lead it back to
    the toolkit).  Nothing of the toolkit is modified.  The folder name hashes its sources, so a
    changed installation gets a new view; building it is atomic (rename of a finished folder).
    """
    key = json.dumps([_CUDA_VIEW_FORMAT, toolkit.nvcc, toolkit.include_dirs, toolkit.lib_dirs])
    base = home / ".cache" / "jittor" / "jittor_pranet_cuda"
    view = base / f"cuda{toolkit.version_text}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    if (view / "lib64" / "libcudart.so").exists():
        return view
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=base))
    try:
        (tmp / "bin").mkdir()
        nvcc = tmp / "bin" / "nvcc"
        nvcc.write_text(f'#!/bin/sh\nexec "{toolkit.nvcc}" "$@"\n')
        nvcc.chmod(0o755)
        for sub, sources in (("include", toolkit.include_dirs), ("lib64", toolkit.lib_dirs)):
            (tmp / sub).mkdir()
            for src in sources:
                for name in sorted(os.listdir(src)):
                    if sub == "lib64" and not (name.startswith("lib") and ".so" in name):
                        continue
                    link = tmp / sub / name
                    if not os.path.lexists(link):
                        link.symlink_to(os.path.realpath(os.path.join(src, name)))
        libdir = tmp / "lib64"
        versioned = {}
        for name in os.listdir(libdir):
            stem = name.split(".so", 1)[0] + ".so"
            if name != stem and _so_version_key(name) >= _so_version_key(versioned.get(stem, stem + ".0")):
                versioned[stem] = name
        for stem, name in versioned.items():
            if not os.path.lexists(libdir / stem):
                (libdir / stem).symlink_to(name)
        (tmp / "SOURCES.json").write_text(key + "\n")
        try:
            os.rename(tmp, view)
        except OSError:  # another process finished first, or a stale incomplete view is in the way
            if not (view / "lib64" / "libcudart.so").exists():
                shutil.rmtree(view, ignore_errors=True)
                os.rename(tmp, view)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return view


def jittor_package_dir() -> Optional[Path]:
    """Where the jittor package is installed, found without importing it."""
    spec = importlib.util.find_spec("jittor")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def patch_helper_cuda(header: Path, check_only: bool = False) -> str:
    """Make Jittor's ``extern/cuda/inc/helper_cuda.h`` compile with CUDA >= 13 (idempotent).

    CUDA 13 removed ``cudaDeviceProp::clockRate`` and ``::computeMode``; Jittor's header reads them
    in four places (device selection helpers that Jittor compiles into its core and its CUDA
    externs).  Each use becomes ``cudaDeviceGetAttribute`` on the device whose properties were just
    read (available since CUDA 5, so the patched file still builds with older toolkits).  Jittor
    puts its own ``extern/cuda/inc`` first on the include path of its externs, so a shadowing copy
    would not be seen: the installed file is patched in place, the original kept as
    ``helper_cuda.h.orig``, and the file carries a marker line.  Returns a one-line status.
    """
    try:
        text = header.read_text()
    except OSError as exc:
        return f"unreadable: {exc}"
    if _HELPER_CUDA_MARK in text:
        return f"patched ({header})"
    device, uses, inserted, out = None, 0, False, []
    fields = (("computeMode", "cudaDevAttrComputeMode"), ("clockRate", "cudaDevAttrClockRate"))
    for line in text.splitlines(keepends=True):
        m = re.search(r"cudaGetDeviceProperties\(\s*&deviceProp\s*,\s*(\w+)\s*\)", line)
        if m:
            device = m.group(1)
        for name, attr in fields:
            if f"deviceProp.{name}" in line:
                if device is None:
                    return f"not patched: deviceProp.{name} used before any cudaGetDeviceProperties in {header}"
                uses += line.count(f"deviceProp.{name}")
                line = line.replace(f"deviceProp.{name}", f"jtp_device_attribute({attr}, {device})")
        out.append(line)
        if not inserted and line.strip() == "#ifdef __CUDA_RUNTIME_H__":
            out.append("// Reads one device attribute; replaces cudaDeviceProp fields removed in CUDA 13.\n"
                       "static inline int jtp_device_attribute(cudaDeviceAttr attr, int device) {\n"
                       "  int value = 0;\n  cudaDeviceGetAttribute(&value, attr, device);\n  return value;\n}\n")
            inserted = True
    if uses == 0:
        return "not needed (no removed cudaDeviceProp fields used)"
    if not inserted:
        return f"not patched: no '#ifdef __CUDA_RUNTIME_H__' block in {header}"
    if check_only:
        return f"NOT patched: {uses} uses of removed cudaDeviceProp fields in {header}"
    patched = f"// {_HELPER_CUDA_MARK}: {uses} uses read through cudaDeviceGetAttribute (original: {header.name}.orig)\n" + "".join(out)
    try:
        backup = header.with_name(header.name + ".orig")
        if not backup.exists():
            backup.write_text(text)
        tmp = header.with_name(header.name + ".tmp")
        tmp.write_text(patched)
        os.replace(tmp, header)
    except OSError as exc:
        return f"NOT patched (cannot write {header}: {exc})"
    return f"patched now ({uses} uses; {header})"


def _gpu_present() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*"))


@dataclass
class OneDNN:
    """A oneDNN installation: the shared library, the folder holding ``oneapi/dnnl``, its version."""

    lib: str
    include: str
    version: Optional[tuple]
    source: str  # "system" or "pip (<prefix>)"

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "unknown version"


def onednn_version(include_dir: str) -> Optional[tuple]:
    """(major, minor, patch) from ``dnnl_version.h`` under ``include_dir``, or None."""
    for rel in ("oneapi/dnnl/dnnl_version.h", "dnnl_version.h"):
        try:
            text = Path(include_dir, rel).read_text(errors="replace")
        except OSError:
            continue
        parts = [re.search(rf"#define DNNL_VERSION_{k}\s+(\d+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
        if all(parts):
            return tuple(int(m.group(1)) for m in parts)
    return None


def _pip_prefixes() -> tuple:
    """Where pip puts a wheel's data files for this interpreter: (this environment and its user base,
    the base Python of a venv), existing folders only, each once."""
    import site

    own = [sys.prefix, sys.exec_prefix]
    try:
        own.append(site.getuserbase())
    except AttributeError:  # old virtualenv's site module
        pass
    seen = set()

    def keep(dirs):
        out = []
        for d in dirs:
            if d and os.path.isdir(d) and os.path.realpath(d) not in seen:
                seen.add(os.path.realpath(d))
                out.append(d)
        return out

    return keep(own), keep([sys.base_prefix, sys.base_exec_prefix])


def _onednn_candidates() -> list:
    """(lib, include, source) of every oneDNN that may be on this machine, in the order they are tried:
    pip's wheels in this Python environment or its user base first (pip's packages shadow the
    system's), then the system's (Debian's libdnnl-dev), then wheels in the base Python of a venv."""
    def wheels(prefixes):
        out = []
        for prefix in prefixes:
            lib = os.path.join(prefix, "lib", "libdnnl.so")
            if os.path.isfile(lib) and os.path.isdir(os.path.join(prefix, "include", "oneapi", "dnnl")):
                out.append((lib, os.path.join(prefix, "include"), f"pip ({prefix})"))
        return out

    own, base = _pip_prefixes()
    system = []
    sys_lib = next((c for c in _DNNL_LIB_CANDIDATES if os.path.isfile(c)), None)
    if sys_lib is None:
        found = ctypes.util.find_library("dnnl")
        sys_lib = found if found and os.path.isabs(found) else None
    if sys_lib and (os.path.isfile("/usr/include/dnnl.hpp") or os.path.isdir("/usr/include/oneapi/dnnl")):
        system.append((sys_lib, "/usr/include", "system"))
    return wheels(own) + system + wheels(base)


def find_onednn(notes: Optional[list] = None) -> Optional[OneDNN]:
    """The first oneDNN 2.x with headers and library (see :func:`_onednn_candidates`), or None.

    Installations Jittor cannot use (another major version, no version header) are skipped with a note.
    """
    for lib, include, source in _onednn_candidates():
        version = onednn_version(include)
        if version is None or version[0] != ONEDNN_MAJOR:
            if notes is not None:
                what = f"oneDNN {'.'.join(map(str, version))}" if version else "oneDNN without dnnl_version.h"
                notes.append(f"{what} at {lib} skipped: Jittor 1.3.11 needs oneDNN {ONEDNN_MAJOR}.x")
            continue
        return OneDNN(lib=lib, include=include, version=version, source=source)
    return None


def find_system_onednn() -> Optional[str]:
    """Path to a usable oneDNN shared library (Debian libdnnl-dev or pip's wheels), or None."""
    found = find_onednn()
    return found.lib if found else None


def _point_link(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target``, replacing an older symlink atomically."""
    if link.is_symlink() and os.readlink(link) == target:
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _link_onednn_for_jittor(home: Path, dnnl) -> Optional[str]:
    """Make jittor's expected oneDNN folder point at ``dnnl`` (a :class:`OneDNN`, or a library path
    with headers in /usr/include) so that it never downloads one.

    Jittor links its mkl ops with ``-lmkldnn`` and an rpath to the folder's ``lib``; the folder also
    gets the library's soname (``libdnnl.so.2``), so a library outside the loader's default paths
    (pip's, in a venv or ~/.local) is found at run time without LD_LIBRARY_PATH. A real oneDNN that
    Jittor downloaded itself (a file, not our symlink) is left as it is.
    """
    if isinstance(dnnl, str):
        dnnl = OneDNN(lib=dnnl, include="/usr/include", version=onednn_version("/usr/include"), source="system")
    target = home / ".cache" / "jittor" / "mkl" / _JITTOR_DNNL_DIRNAME
    lib = target / "lib" / "libmkldnn.so"
    if lib.is_file() and not lib.is_symlink():
        return str(target)
    major = dnnl.version[0] if dnnl.version else ONEDNN_MAJOR
    try:
        (target / "lib").mkdir(parents=True, exist_ok=True)
        inc = target / "include"
        if inc.is_symlink() or not inc.exists():
            _point_link(inc, dnnl.include)
        _point_link(lib, dnnl.lib)
        _point_link(target / "lib" / f"libdnnl.so.{major}", os.path.realpath(dnnl.lib))
    except OSError:
        return None
    return str(target) if lib.is_file() else None


def _configure_cuda(env, home: Path, info: RuntimeInfo) -> Optional[str]:
    """Point Jittor at a CUDA view of this machine's toolkit; the libcudart path, or None (reason noted)."""
    info.build_only = env.get(CUDA_BUILD_ONLY_ENV) == "1"
    if not (_gpu_present() or info.build_only):
        info.notes.append("no NVIDIA device (/dev/nvidia*)")
        return None
    toolkit = find_cuda_toolkit()
    if toolkit is None:
        info.notes.append("no working nvcc (PATH, /usr/local/cuda, pip nvidia-cuda-nvcc)")
        return None
    info.cuda_toolkit = toolkit
    try:
        view = prepare_cuda_view(home, toolkit)
        cudart = view / "lib64" / "libcudart.so"
        ctypes.CDLL(str(cudart), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        info.notes.append(f"CUDA runtime not loadable: {exc}")
        return None
    if toolkit.version[0] >= 13:
        jdir = jittor_package_dir()
        status = patch_helper_cuda(jdir / "extern" / "cuda" / "inc" / "helper_cuda.h") if jdir else "jittor not installed"
        info.helper_cuda_patch = status
        if not status.startswith(("patched", "not needed")):
            info.notes.append(f"Jittor's helper_cuda.h does not build with CUDA {toolkit.version_text}: {status}")
            return None
    env["nvcc_path"] = str(view / "bin" / "nvcc")
    if "conv_opt" not in env:
        # Jittor's own cuDNN loader knows only cuDNN 8 file names and ends the process when they are
        # missing; conv_opt=1 keeps it away and import_jittor() loads cuDNN instead.
        env["conv_opt"] = "1"
        env["_JITTOR_PRANET_CONV_OPT"] = "1"
    if info.build_only:  # no device to ask for its architecture: compile for the one given
        env.setdefault("cuda_archs", env.get("JITTOR_PRANET_CUDA_ARCH", "90"))
    info.cuda_view = str(view)
    return str(cudart)


def _cudnn_version(include_dir: Path) -> Optional[tuple]:
    for name in ("cudnn_version.h", "cudnn.h"):
        try:
            text = (include_dir / name).read_text()
        except OSError:
            continue
        parts = [re.search(rf"#define CUDNN_{k}\s+(\d+)", text) for k in ("MAJOR", "MINOR", "PATCHLEVEL")]
        if all(parts):
            return tuple(int(m.group(1)) for m in parts)
    return None


def load_cudnn(jt, info: RuntimeInfo) -> None:
    """Compile and load Jittor's cuDNN convolution ops against the view's cuDNN (8 or 9).

    cuDNN 9 removed the legacy RNN API that Jittor's ``cudnn_rnn*`` sources call, so those files are
    left out (this package has no RNNs); convolutions, which Jittor's conv tuner relays to
    ``cudnn_conv*`` whenever those ops exist, are what matters.  On any failure one message is
    printed and Jittor's own CUDA convolution kernels stay in use.
    """
    from jittor import compile_extern, compiler

    if getattr(compile_extern, "cudnn", None) is not None:
        info.cudnn = "loaded by Jittor"
        return
    if env_flag_conv_opt_by_user():
        info.cudnn = "not loaded (conv_opt=1 set by the user: Jittor's own convolution kernels)"
        return
    view = Path(info.cuda_view)
    try:
        version = _cudnn_version(view / "include")
        libs = sorted(glob.glob(str(view / "lib64" / "libcudnn.so.*")), key=_so_version_key)
        if version is None or not libs:
            raise RuntimeError("no cudnn.h/libcudnn.so in the CUDA toolkit or pip's nvidia-cudnn")
        ctypes.CDLL(libs[-1], mode=ctypes.RTLD_GLOBAL)
        src = Path(compiler.jittor_path) / "extern" / "cuda" / "cudnn"
        files = sorted(str(f) for f in src.rglob("*") if f.is_file())
        skipped = [f for f in files if version[0] >= 9 and "rnn" in os.path.basename(f)]
        files = [f for f in files if f not in skipped]
        jt_inc = Path(compiler.jittor_path) / "extern" / "cuda" / "inc"
        cuda_cache = Path(compiler.cache_path) / "cuda"
        flags = (f' -I"{jt_inc}" -I"{src / "inc"}" -lcudnn -L"{view / "lib64"}" '
                 f' -L"{cuda_cache}" -llibcuda_extern ')
        module = compiler.compile_custom_ops(files, return_module=True, extra_flags=flags)
    except Exception as exc:  # compile errors, missing files, a cuDNN that does not load
        reason = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
        info.cudnn = f"not loaded: {reason}"
        print(_CUDNN_FALLBACK.format(reason=reason), file=sys.stderr)
        return
    compile_extern.cudnn, compile_extern.cudnn_ops = module, module.ops
    jt.cudnn = module
    units = lambda names: sum(1 for f in names if f.endswith((".cc", ".cu")))
    note = f"; {units(skipped)} RNN files left out (API removed in cuDNN 9)" if skipped else ""
    info.cudnn = f"cuDNN {'.'.join(map(str, version))} ({units(files)} files compiled{note})"


def env_flag_conv_opt_by_user() -> bool:
    """True when ``conv_opt=1`` came from the user (Jittor: no cuDNN) rather than from :func:`configure`."""
    return os.environ.get("conv_opt", "0") not in ("", "0") and "_JITTOR_PRANET_CONV_OPT" not in os.environ


def _point_at_python_config(env) -> None:
    """Give Jittor the ``python3.X-config`` of the interpreter that runs.

    Jittor looks next to ``sys.executable``, then in /usr/bin and /usr/local/bin. A venv made from a
    pyenv/conda/uv Python has no such script in its ``bin`` (it is in ``sys.base_prefix/bin``), so
    Jittor either fails ("python3.X-config not found") or takes the system Python's script of the same
    minor version, whose include folder belongs to another installation.
    """
    if "python_config_path" in env:
        return
    name = f"python3.{sys.version_info.minor}-config"
    exe_dir = os.path.dirname(sys.executable)
    if os.path.isfile(os.path.join(exe_dir, name)) or os.path.isfile(sys.executable + "-config"):
        return
    for prefix in (sys.base_prefix, sys.base_exec_prefix):
        cand = os.path.join(prefix, "bin", name)
        if os.path.isfile(cand):
            env["python_config_path"] = cand
            return


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
    _point_at_python_config(env)
    if "OMPI_COMM_WORLD_SIZE" not in env:
        # Outside mpirun, keep Jittor from compiling and dlopen-ing its MPI ops just because mpicc
        # is installed: a single process behaves the same with or without OpenMPI on the machine.
        if "use_mpi" not in env:
            env["use_mpi"] = "0"
            env["_JITTOR_PRANET_USE_MPI_OFF"] = "1"  # ours, not the user's: children under mpirun drop it
    elif env.pop("_JITTOR_PRANET_USE_MPI_OFF", None):
        env.pop("use_mpi", None)
    settle_jittor_config(_jittor_home(), info)
    home = _jittor_home()
    info.jittor_home = str(home / ".cache" / "jittor")

    if env.pop("_JITTOR_PRANET_CONV_OPT", None):  # set by us in a parent process, not by the user
        env.pop("conv_opt", None)
    cudart = None if device == "cpu" else _configure_cuda(env, home, info)
    info.cuda_runtime = cudart
    if cudart is None:
        if device == "cuda":
            why = f" ({info.notes[-1]})" if info.notes else ""
            raise RuntimeError(f"--device cuda was requested but no usable CUDA runtime/GPU was found{why}")
        env["nvcc_path"] = ""  # CPU build; avoids the libcudart crash when nvcc exists
    info.use_cuda = cudart is not None

    if env.get("use_mkl", "1") == "1":
        dnnl = find_onednn(info.onednn_skipped)
        linked = _link_onednn_for_jittor(home, dnnl) if dnnl else None
        if linked is None and not (home / ".cache/jittor/mkl" / _JITTOR_DNNL_DIRNAME / "lib/libmkldnn.so").is_file():
            env["use_mkl"] = "0"
            message = SLOW_CONV_WARNING + "".join(f" ({n})" for n in info.onednn_skipped)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            print(message, file=sys.stderr)
        elif dnnl is not None:
            info.onednn = f"{dnnl.lib}, oneDNN {dnnl.version_text}, {dnnl.source}"
        else:
            info.onednn = linked
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
    hook = _SigchldBackAfterJittorExtensions()
    sys.meta_path.insert(0, hook)
    ours = "JPY_PARENT_PID" not in os.environ
    if ours:
        os.environ["JPY_PARENT_PID"] = str(os.getpid())
    try:
        _compile_workers_quit_on_sigint()  # before the import: it may already compile
        import jittor  # noqa: E402  (configured by configure())
    finally:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        if ours:
            os.environ.pop("JPY_PARENT_PID", None)
    _JITTOR_SIGINT_AVOIDED = True
    return jittor


def _give_sigchld_back_to_python() -> None:
    import signal
    import threading

    if hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


class _SigchldBackAfterJittorExtensions(importlib.abc.MetaPathFinder):
    """Loading Jittor's C extensions installs its C SIGCHLD handler, which ends the process with exit
    code 1 when any child dies by a signal; the rest of Jittor's import still runs shell commands and
    compiles, and a Ctrl-C there kills those children. The handler is replaced by the default as soon
    as each extension is loaded, so that Ctrl-C at any moment of the import becomes ``KeyboardInterrupt``."""

    #: the two C extensions whose static constructors register Jittor's handlers: ``jit_utils_core``
    #: (loaded first, by ``jittor.compiler``) and ``jittor_core``
    MODULES = ("jit_utils_core", "jittor_core")

    def find_spec(self, name, path=None, target=None):
        if name not in self.MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _ThenDefaultSigchld(spec.loader)
                return spec
        return None


class _ThenDefaultSigchld(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):  # an extension module's static constructors run here
        module = self._loader.create_module(spec)
        _give_sigchld_back_to_python()
        return module

    def exec_module(self, module):
        self._loader.exec_module(module)
        _give_sigchld_back_to_python()

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _quit_quietly(signum, frame) -> None:  # pragma: no cover - runs in Jittor's compile workers
    os._exit(1)


def _compile_workers_quit_on_sigint() -> None:
    """Jittor compiles kernels in a ``multiprocessing.Pool`` whose workers share the terminal's
    process group: a Ctrl-C made each print a ``KeyboardInterrupt`` traceback and could leave the
    pool's lock held, so the exit hook that shuts the pool down waited forever. Workers created from
    now on leave quietly on SIGINT and SIGTERM; the main process reports the interrupt and drops the pool without
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
        signal.signal(signal.SIGTERM, _quit_quietly)  # the CLI's SIGTERM handler would print a traceback here
        original()

    initializer._quits_on_sigint = True
    jittor_utils.pool_initializer = initializer
    # Jittor's exit hook shuts its pool down with Pool.terminate(), which under mpirun was seen to
    # wait forever on a worker it never signalled (the rank, and so the job, never ended); idle
    # workers are killed instead (the run_cmds that makes a pool registers this module attribute)
    jittor_utils._original_pool_cleanup = jittor_utils.pool_cleanup
    jittor_utils.pool_cleanup = _kill_compile_pool_at_exit


def _kill_compile_pool_at_exit() -> None:
    if _SIGNALS_RESTORED:
        abandon_compile_pool(at_exit=True)
    else:  # Jittor's SIGCHLD handler would turn a killed worker into exit code 1
        jittor_utils = sys.modules["jittor_utils"]
        jittor_utils._original_pool_cleanup()


def abandon_compile_pool(at_exit: bool = False) -> None:
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
    import signal

    if hasattr(signal, "SIGCHLD") and signal.getsignal(signal.SIGCHLD) is None:
        # a handler installed outside Python (Jittor's, left by an import that did not finish)
        # would end the process with exit code 1 when the first worker is killed below
        _give_sigchld_back_to_python()
    # Stop the pool's maintenance thread first: left running it forks a replacement for every killed
    # worker, forever, and a worker forked while a subprocess is being started inherits that
    # subprocess's exec-status pipe, so the starting process waits on it for good (an in-process
    # caller's next ``subprocess.run`` hung).
    import multiprocessing.pool as mp_pool

    handler = getattr(pool, "_worker_handler", None)
    if handler is not None:
        handler._state = mp_pool.TERMINATE
        notifier = getattr(pool, "_change_notifier", None)
        if notifier is not None:
            notifier.put(None)
        handler.join(timeout=5)
    for worker in list(getattr(pool, "_pool", [])):
        try:
            worker.kill()
            worker.join(timeout=5)
        except (OSError, ValueError, AssertionError):
            pass
    finaliser = getattr(pool, "_terminate", None)
    if finaliser is not None and hasattr(finaliser, "cancel"):
        finaliser.cancel()
    if not at_exit:  # Jittor's exit hook, ours or the original when Jittor was imported before us
        atexit.unregister(jittor_utils.pool_cleanup)
        atexit.unregister(getattr(jittor_utils, "_original_pool_cleanup", jittor_utils.pool_cleanup))
    try:
        del jittor_utils.p
    except AttributeError:
        pass


_COMPILE_THREADS_STARTED = False

#: signals Python (or the CLI's watchdog) handles with a handler; delivered to one of Jittor's compile
#: threads they would wake it (see :func:`start_compile_threads_without_signals`)
_ASYNC_SIGNALS = tuple(getattr(__import__("signal"), name) for name in
                       ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGCHLD",
                        "SIGWINCH") if hasattr(__import__("signal"), name))


def start_compile_threads_without_signals(jt) -> bool:
    """Have Jittor create its kernel-compiling threads with asynchronous signals blocked in them.

    Jittor's parallel op compiler starts its threads (``use_parallel_op_compiler``) at the first
    execution of a process and parks them on a condition variable *without a predicate*, keeping the
    last task, a closure over the stack of a call that has returned. A signal handled on one of those
    threads (the kernel may deliver a Ctrl-C or SIGTERM to any thread that does not block it) can end
    that wait, and the thread runs the stale task: the process died with ``double free or
    corruption``, ``corrupted size vs. prev_size`` or a segfault at a small address inside
    ``Executor::run_sync`` (seen in about 1 of 50 Ctrl-C during ``predict``; core dump read with gdb).
    Threads inherit the signal mask of the thread that creates them, so the first execution (one
    tiny CPU op) runs in a short-lived thread that blocks these signals; the main thread keeps
    receiving them. Returns whether the threads were started here (False when Jittor has executed
    something before, or not in the main interpreter's first call)."""
    global _COMPILE_THREADS_STARTED
    import signal
    import threading

    if _COMPILE_THREADS_STARTED or not hasattr(signal, "pthread_sigmask"):
        return False
    _COMPILE_THREADS_STARTED = True
    failure = []

    def first_execution():
        signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS)
        try:
            with jt.flag_scope(use_cuda=0):
                (jt.array([1.0], dtype="float32") + 1.0).sync()
        except Exception as exc:  # reported by the caller's first real operation, if it recurs
            failure.append(exc)

    worker = threading.Thread(target=first_execution, name="jittor-first-execution", daemon=True)
    worker.start()
    while worker.is_alive():  # short joins: a Ctrl-C in the main thread is still raised at once
        worker.join(0.05)
    return not failure


def import_jittor(device: Optional[str] = None):
    """Configure (first time only) and import jittor, setting ``use_cuda`` as decided."""
    info = configure(device)
    jt = _import_jittor_keeping_sigint()

    restore_python_signal_handlers()
    start_compile_threads_without_signals(jt)
    if info.cuda_view and info.cudnn is None:
        load_cudnn(jt, info)
        from jittor import compile_extern

        info.cublas = "loaded" if getattr(compile_extern, "cublas", None) is not None else "not loaded"

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
