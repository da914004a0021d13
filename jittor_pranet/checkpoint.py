"""One checkpoint API: read PyTorch/Jittor files without torch, validate every key and shape, write
Jittor or PyTorch-loadable files atomically.

Why our own reader: Jittor's ``jt.load`` converts tensors to ``jt.Var`` (float64 -> float32,
int64 -> int32), accepts only some extensions, and ``Module.load_state_dict`` silently skips missing
keys.  Here checkpoints become ``{name: numpy array}`` with dtypes preserved, through an unpickler
that only admits the handful of globals a tensor file needs (an untrusted ``.pth`` cannot run code).

Formats read (by content, not extension): PyTorch zip (``torch.save`` >= 1.6), PyTorch legacy
(magic-number stream), Jittor ``jt.save``/``Module.save`` pickles, and our own files.  Formats
written: ``.pkl`` (ours: state_dict + metadata) and ``.pth``/``.pt`` (a PyTorch zip that
``torch.load(..., weights_only=True)`` reads).
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from .errors import UserError

StateDict = Dict[str, np.ndarray]
FORMAT_TAG = "jittor-pranet"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_EXTENSIONS = (".pth", ".pt", ".bin")

# ---------------------------------------------------------------- reading

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _to_numpy_dtype(dtype) -> np.dtype:
    return np.dtype(np.uint16) if dtype == "bfloat16" else np.dtype(dtype)


def _finish_bfloat16(arr: np.ndarray, dtype) -> np.ndarray:
    if dtype == "bfloat16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


class _Storage:
    """A flat typed buffer; tensors are strided views into it."""

    def __init__(self, data: np.ndarray, dtype):
        self.data = data
        self.dtype = dtype


def _rebuild_tensor(storage: _Storage, offset: int, size, stride, *unused) -> np.ndarray:
    flat = storage.data
    size, stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)
    offset = int(offset)
    if len(size) != len(stride) or offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise ValueError(f"bad tensor layout: offset {offset}, size {size}, stride {stride}")
    if not all(size):  # an empty tensor reads nothing
        needed = offset
    else:  # the last element a strided view reaches (a scalar: the element at offset)
        needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if needed > len(flat):  # as_strided would read memory outside the storage: a corrupt or crafted file
        raise ValueError(f"tensor of size {size} at offset {offset} does not fit its storage of {len(flat)} elements")
    if not size:
        return _finish_bfloat16(flat[offset:offset + 1].reshape(()).copy(), storage.dtype)
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=tuple(s * item for s in stride))
    return _finish_bfloat16(np.ascontiguousarray(view), storage.dtype)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
    return data


def _jittor_var(data, *unused) -> np.ndarray:
    """``jt.save``/``Module.save`` pickle each ``jt.Var`` as ``Var(numpy_array)``: keep the array."""
    return np.asarray(data)


class _PlainUnpickler(pickle.Unpickler):
    """For the header records of PyTorch's legacy stream (magic number, protocol, sys info, storage
    keys): plain numbers, strings and containers only; any global or persistent id is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("unexpected persistent id in a checkpoint header record")


def _plain_load(f) -> Any:
    return _PlainUnpickler(f, encoding="utf-8").load()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals tensor files need; anything else is an error, never an import."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("numpy.core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): np.core.multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): np.core.multiarray.scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("_codecs", "encode"): __import__("codecs").encode,
        # Jittor's own files: jt.Var pickles as Var(ndarray); mapped to the array, Jittor is never imported
        # (module "jittor", qualified name "jittor_core.Var" with protocol 4)
        ("jittor", "Var"): _jittor_var,
        ("jittor", "jittor_core.Var"): _jittor_var,
        ("jittor.jittor_core", "Var"): _jittor_var,
    }

    def __init__(self, file, storage_loader=None, lazy_tensors: bool = False):
        super().__init__(file, encoding="utf-8")
        self._storage_loader = storage_loader
        self._lazy = lazy_tensors

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module.startswith("numpy.dtypes") and name.endswith("DType"):
            return lambda *a: np.dtype(name[:-5].lower())
        key = (module, name)
        if self._lazy and key in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _LazyTensor
        if key in self._ALLOWED:
            return self._ALLOWED[key]
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid):
        if self._storage_loader is None:
            raise pickle.UnpicklingError("unexpected persistent id in a plain pickle")
        return self._storage_loader(pid)


def _read_torch_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("data.pkl")), None)
        if pkl is None:
            raise UserError(f"{path}: a zip file but not a PyTorch checkpoint (no data.pkl)")
        prefix = pkl[: -len("data.pkl")]
        cache: Dict[str, _Storage] = {}

        def load_storage(pid):
            _, stype, key, _location, numel = pid[:5]
            if key not in cache:
                dtype = stype.dtype if isinstance(stype, _StorageType) else np.float32
                raw = zf.read(f"{prefix}data/{key}")
                arr = np.frombuffer(raw, dtype=_to_numpy_dtype(dtype))
                cache[key] = _Storage(arr, dtype)
            return cache[key]

        return _RestrictedUnpickler(io.BytesIO(zf.read(pkl)), load_storage).load()


def _read_torch_legacy(f) -> Any:
    """PyTorch's pre-1.6 stream: magic, protocol, sys info, pickle, storage keys, raw storages."""
    _plain_load(f)  # magic (checked by caller)
    _plain_load(f)  # protocol version
    _plain_load(f)  # sys info
    pending: Dict[str, Tuple[Any, int]] = {}
    storages: Dict[str, _Storage] = {}

    def load_storage(pid):
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid[0]!r}")
        stype, key, numel = pid[1], pid[2], pid[4]
        dtype = stype.dtype if isinstance(stype, _StorageType) else np.float32
        if key not in storages:
            storages[key] = _Storage(np.empty(0, _to_numpy_dtype(dtype)), dtype)
            pending[key] = (dtype, numel)
        return storages[key]

    result = _RestrictedUnpickler(f, load_storage, lazy_tensors=True).load()
    keys = _plain_load(f)
    if not isinstance(keys, list) or any(k not in pending for k in keys):
        raise pickle.UnpicklingError("storage key record does not match the tensors")
    for key in keys:
        dtype, numel = pending[key]
        (count,) = struct.unpack("<q", f.read(8))
        npd = _to_numpy_dtype(dtype)
        buf = f.read(count * npd.itemsize)
        if len(buf) != count * npd.itemsize:
            raise EOFError("truncated storage")
        storages[key].data = np.frombuffer(buf, dtype=npd)
    # tensors were rebuilt against empty storages; rebuild now that data is present
    return _relink_legacy(result)


class _LazyTensor:
    """Legacy files reference storages before their bytes: the view is built once data is read."""

    def __init__(self, storage, offset, size, stride, *unused):
        self.args = (storage, offset, size, stride)


def _relink_legacy(obj):
    if isinstance(obj, _LazyTensor):
        return _rebuild_tensor(*obj.args)
    if isinstance(obj, Mapping):
        return collections.OrderedDict((k, _relink_legacy(v)) for k, v in obj.items())
    return obj


def _read_pickle(data: bytes) -> Any:
    if data.endswith(b"HCAJSLHD"):  # jittor's safepickle trailer: sha1 + tag
        data = data[:-28]
    return _RestrictedUnpickler(io.BytesIO(data)).load()


def read_raw(path: os.PathLike) -> Any:
    """Load any supported checkpoint file into plain Python/numpy objects (no torch, no code)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == b"PK":
            return _read_torch_zip(path)
        with open(path, "rb") as f:
            try:
                first = _plain_load(f) if head[:1] == b"\x80" else None
            except Exception:  # not a pickle stream at all
                first = None
            if first == _TORCH_LEGACY_MAGIC:
                f.seek(0)
                return _read_torch_legacy(f)
        data = path.read_bytes()
        return _read_pickle(data)
    except UserError:
        raise
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, struct.error, ValueError, KeyError,
            IndexError, TypeError, AttributeError, MemoryError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:120]})") from None


def _is_array_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, (np.ndarray, np.generic)) for k, v in obj.items())


@dataclass
class LoadedCheckpoint:
    state_dict: StateDict
    meta: Dict[str, Any] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)  # e.g. num_batches_tracked
    extras: StateDict = field(default_factory=dict)  # values of dropped keys, kept for export


def read_state_dict(path: os.PathLike) -> LoadedCheckpoint:
    """Read a checkpoint and normalise it to ``{key: array}``.

    Unwraps ``{'state_dict': ...}`` / ``{'model': ...}`` nesting and ``module.`` prefixes
    (DataParallel); drops ``num_batches_tracked`` (not used by eval or by PyTorch's BN with a
    momentum) but keeps their values in ``extras`` so a ``.pth`` export reproduces them.
    """
    raw = read_raw(path)
    meta: Dict[str, Any] = {}
    obj = raw
    for _ in range(3):
        if isinstance(obj, Mapping) and obj.get("format") == FORMAT_TAG:
            meta = {k: v for k, v in obj.items() if k not in ("state_dict", "extras")}
            extras = obj.get("extras") or {}
            obj = obj["state_dict"]
            return _normalise(obj, path, meta, dict(extras))
        if _is_array_dict(obj):
            break
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in ("state_dict", "model", "model_state", "model_state_dict", "net")
                          if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is not None:
                obj = inner
                continue
        break
    return _normalise(obj, path, meta, {})


def _normalise(obj, path, meta, extras) -> LoadedCheckpoint:
    if not _is_array_dict(obj):
        raise UserError(f"{path}: no state_dict of tensors found in this file")
    keys = list(obj)
    if keys and all(k.startswith("module.") for k in keys):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    sd: StateDict = collections.OrderedDict()
    dropped = []
    for k, v in obj.items():
        arr = np.asarray(v)
        if k.endswith("num_batches_tracked"):
            dropped.append(k)
            extras[k] = arr
            continue
        sd[k] = arr
    return LoadedCheckpoint(sd, meta, dropped, extras)


# ---------------------------------------------------------------- validation


@dataclass
class LoadReport:
    """What matched, what did not: printed by ``convert`` and raised on by strict loading."""

    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)  # key, model, ckpt
    dropped: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def lines(self, limit: int = 8) -> List[str]:
        out = [f"loaded {len(self.loaded)} tensors"]
        if self.dropped:
            out.append(f"dropped {len(self.dropped)} num_batches_tracked entries (unused in Jittor)")
        for title, items in (("missing from checkpoint", self.missing), ("unexpected in checkpoint", self.unexpected)):
            if items:
                shown = ", ".join(items[:limit]) + (f", ... (+{len(items) - limit})" if len(items) > limit else "")
                out.append(f"{title}: {len(items)}: {shown}")
        if self.mismatched:
            shown = ", ".join(f"{k} model{m} vs ckpt{c}" for k, m, c in self.mismatched[:limit])
            out.append(f"shape mismatch: {len(self.mismatched)}: {shown}")
        return out

    def summary(self) -> str:
        parts = [f"{len(self.missing)} missing", f"{len(self.unexpected)} unexpected",
                 f"{len(self.mismatched)} shape mismatches"]
        return ", ".join(parts)


def model_shapes(model) -> Dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def compare(shapes: Mapping[str, tuple], sd: Mapping[str, np.ndarray]) -> LoadReport:
    rep = LoadReport()
    for k, shp in shapes.items():
        if k not in sd:
            rep.missing.append(k)
        elif tuple(sd[k].shape) != tuple(shp):
            rep.mismatched.append((k, tuple(shp), tuple(sd[k].shape)))
        else:
            rep.loaded.append(k)
    rep.unexpected = [k for k in sd if k not in shapes]
    return rep


def guess_encoder(sd: Mapping[str, np.ndarray]) -> Optional[str]:
    """The encoder variant a state_dict was made with, from its shapes and block counts (or None)."""
    from .models.catalog import identify_encoder

    return identify_encoder(sd)


def _num_classes_hint(model, rep: LoadReport, sd: Optional[Mapping[str, np.ndarray]] = None) -> str:
    from .models.catalog import MODELS

    heads = {i.head for i in MODELS if i.head}
    for key, model_shape, ckpt_shape in rep.mismatched:
        if key in heads or key[: -len("bias")] + "weight" in heads:
            return (f"; the checkpoint has num_classes={ckpt_shape[0]} but the model was built with "
                    f"num_classes={model_shape[0]} (pass --num-classes {ckpt_shape[0]})")
    ckpt_encoder = guess_encoder(sd) if sd is not None else None
    model_encoder = getattr(model, "encoder_name", None)
    if ckpt_encoder and model_encoder and ckpt_encoder != model_encoder:
        return (f"; the checkpoint's encoder is {ckpt_encoder} but the model was built with {model_encoder} "
                f"(pass --encoder {ckpt_encoder})")
    prefixes = {k.split(".")[0] for k in rep.unexpected}
    if rep.missing and rep.unexpected and len(rep.loaded) < len(rep.missing):
        return f"; this looks like a checkpoint of a different model (top-level names: {', '.join(sorted(prefixes)[:6])})"
    return ""


def assign_state_dict(model, sd: Mapping[str, np.ndarray], keys: Optional[Iterable[str]] = None) -> None:
    """Copy arrays into the model's variables (float32), in place."""
    import jittor as jt

    params = model.state_dict()
    assigned = []
    for k in (keys if keys is not None else sd.keys()):
        if k in params:
            params[k].assign(jt.array(np.ascontiguousarray(sd[k]).astype(np.float32)))
            assigned.append(params[k])
    jt.sync(assigned)  # materialise now, so later graphs see plain tensors, not pending array ops


def load_state_dict(model, sd: Mapping[str, np.ndarray], strict: bool = True, source: str = "state_dict") -> LoadReport:
    """Validate ``sd`` against the model and load the matching tensors. Strict: any mismatch raises."""
    rep = compare(model_shapes(model), sd)
    if strict and not rep.ok:
        raise UserError(f"{source}: does not match the model ({rep.summary()}){_num_classes_hint(model, rep, sd)}")
    if rep.mismatched and not strict:
        pass  # mismatched tensors are never loaded, even when partial loading was asked for
    assign_state_dict(model, sd, rep.loaded)
    return rep


def load_checkpoint(model, path: os.PathLike, strict: bool = True) -> LoadReport:
    """Load a PyTorch or Jittor checkpoint into ``model``, validating every key and shape.

    ``strict=True`` (default) raises :class:`UserError` on any missing, unexpected or mis-shaped key;
    ``strict=False`` loads what matches and reports the rest (mis-shaped tensors are never loaded).
    """
    ck = read_state_dict(path)
    rep = load_state_dict(model, ck.state_dict, strict=strict, source=str(path))
    rep.dropped = ck.dropped
    return rep


# ---------------------------------------------------------------- backbone-only mapping

def backbone_prefix(model, attr: Optional[str] = None) -> str:
    """The state_dict prefix of ``model``'s encoder (``attr``: another encoder attribute, e.g.
    MERIT's ``backbone2``)."""
    return (attr or getattr(model, "encoder_attr", "backbone")) + "."


def map_backbone_state_dict(model, sd: Mapping[str, np.ndarray], attr: Optional[str] = None
                            ) -> Tuple[StateDict, List[str]]:
    """Prefix an ImageNet encoder state_dict with the model's encoder attribute (``attr``: another one).

    Returns (mapped, ignored) where ``ignored`` are keys with no place in the model (e.g. PVT's or
    timm's ImageNet ``head.*``) — expected for classification checkpoints, reported, never fatal.
    """
    prefix = backbone_prefix(model, attr)
    shapes = model_shapes(model)
    if sd and all(k.startswith(prefix) for k in sd):
        sd = {k[len(prefix):]: v for k, v in sd.items()}
    mapped: StateDict = collections.OrderedDict()
    ignored = []
    for k, v in sd.items():
        if prefix + k in shapes:
            mapped[prefix + k] = v
        else:
            ignored.append(k)
    return mapped, ignored


def match_backbone(model, sd: Mapping[str, np.ndarray], attr: Optional[str] = None
                   ) -> Tuple[LoadReport, StateDict, List[str]]:
    """An ImageNet encoder file against the encoder at ``attr`` (None: the model's own): the report of
    the comparison with that encoder's keys, the mapped tensors and the file keys with no place."""
    mapped, ignored = map_backbone_state_dict(model, sd, attr)
    prefix = backbone_prefix(model, attr)
    shapes = {k: s for k, s in model_shapes(model).items() if k.startswith(prefix)}
    return compare(shapes, mapped), mapped, ignored


# ---------------------------------------------------------------- writing

def _atomic_write(path: Path, write_fn) -> None:
    """Checkpoints go through the package's one atomic writer; the folder must already exist (a
    mistyped destination is an error, not a new folder tree)."""
    from .utils.io import atomic_write_with

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{path}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{path}: output folder {parent} is not writable")
    try:
        atomic_write_with(path, write_fn, make_parents=False)
    except OSError as exc:
        raise UserError(f"{path}: could not be written ({exc.strerror or exc}); an earlier file there is "
                        "unchanged") from None


class _TorchGlobal:
    """A reference to a torch global written into the pickle by name (torch need not be installed)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *a):  # pragma: no cover - only here to satisfy pickle's callable check
        raise RuntimeError


class _TorchTensorStub:
    def __init__(self, storage_key: str, arr: np.ndarray):
        self.key, self.arr = storage_key, arr

    def __reduce__(self):
        a = self.arr
        stride = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
        storage = _StorageRef(self.key, a)
        return (_TorchGlobal("torch._utils", "_rebuild_tensor_v2"),
                (storage, 0, tuple(a.shape), stride, False, collections.OrderedDict()))


class _StorageRef:
    def __init__(self, key: str, arr: np.ndarray):
        self.key, self.arr = key, arr


_NUMPY_TO_STORAGE = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                     np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                     np.dtype(np.int32): "IntStorage", np.dtype(np.int16): "ShortStorage",
                     np.dtype(np.int8): "CharStorage", np.dtype(np.uint8): "ByteStorage",
                     np.dtype(np.bool_): "BoolStorage"}


class _TorchPickler(pickle._Pickler):  # the pure-python pickler lets us emit torch globals by name
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_torch_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_TorchGlobal] = _save_torch_global

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            stype = _TorchGlobal("torch", _NUMPY_TO_STORAGE[obj.arr.dtype])
            return ("storage", stype, obj.key, "cpu", int(obj.arr.size))
        return None


def write_torch_zip(f, sd: Mapping[str, np.ndarray]) -> None:
    """Serialise ``{key: array}`` in PyTorch's zip format (readable with ``weights_only=True``)."""
    arrays = collections.OrderedDict()
    for i, (k, v) in enumerate(sd.items()):
        arr = np.asarray(v)
        if not arr.flags.c_contiguous:  # (ascontiguousarray would turn 0-d scalars into 1-d)
            arr = arr.copy(order="C")
        if arr.dtype not in _NUMPY_TO_STORAGE:
            raise UserError(f"cannot export {k}: dtype {arr.dtype} has no PyTorch storage")
        arrays[k] = _TorchTensorStub(str(i), arr)
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(arrays)
    name = "archive"
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}/data.pkl", buf.getvalue())
        zf.writestr(f"{name}/byteorder", "little")
        for stub in arrays.values():
            zf.writestr(f"{name}/data/{stub.key}", stub.arr.tobytes())
        zf.writestr(f"{name}/version", "3\n")


def torch_export_state_dict(model_sd: Mapping[str, np.ndarray], extras: Optional[Mapping[str, np.ndarray]] = None) -> StateDict:
    """Model tensors plus a ``num_batches_tracked`` per BatchNorm (as PyTorch state_dicts have)."""
    extras = dict(extras or {})
    out: StateDict = collections.OrderedDict()
    for k, v in model_sd.items():
        out[k] = v
        if k.endswith(".running_var"):
            nbt = k[: -len("running_var")] + "num_batches_tracked"
            out[nbt] = np.asarray(extras.get(nbt, np.array(0, dtype=np.int64)), dtype=np.int64)
    return out


def model_numpy_state_dict(model) -> StateDict:
    return collections.OrderedDict((k, v.numpy().copy()) for k, v in model.state_dict().items())


def save_checkpoint(model_or_sd, path: os.PathLike, meta: Optional[Dict[str, Any]] = None,
                    extras: Optional[Mapping[str, np.ndarray]] = None) -> Path:
    """Write a checkpoint atomically (temp file, fsync, rename).

    ``.pth``/``.pt``/``.bin``: a PyTorch state_dict (zip format) that the official code can
    ``load_state_dict``; anything else: our pickle ``{"format", "state_dict", "extras", **meta}``
    which ``jt.load`` can also read.
    """
    path = Path(path)
    sd = model_or_sd if isinstance(model_or_sd, Mapping) else model_numpy_state_dict(model_or_sd)
    if path.suffix in _TORCH_EXTENSIONS:
        full = torch_export_state_dict(sd, extras)
        _atomic_write(path, lambda f: write_torch_zip(f, full))
    else:
        payload = {"format": FORMAT_TAG, "version": 1, **(meta or {}),
                   "state_dict": collections.OrderedDict((k, np.asarray(v)) for k, v in sd.items()),
                   "extras": dict(extras or {})}
        _atomic_write(path, lambda f: pickle.dump(payload, f, protocol=4))
    return path
