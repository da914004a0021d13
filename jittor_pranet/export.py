"""ONNX export through the PyTorch twin of each model, checked against the Jittor model.

Jittor cannot write ONNX, but every registered model has an exact PyTorch reference in
:mod:`jittor_pranet.reference` with identical parameter names.  :func:`export_onnx` loads a checkpoint
into that reference, exports it with PyTorch's TorchScript-based exporter (dynamic batch dimension, and
dynamic height/width where the model allows it), then runs the ONNX file in onnxruntime on CPU and
compares every output with the Jittor model's on the same inputs (``max|onnx - jittor| / max|jittor|``,
default bound 1e-4).  The file is only put in place when the check passes.

Which PyTorch class mirrors which registered model is the ``twin`` of its catalog row
(:mod:`jittor_pranet.models.catalog`), gathered in :data:`REFERENCE_MODELS`: a model whose row names a
twin is exportable.  Needs the ``export`` extra (torch, onnx,
onnxruntime).
"""
from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .engine.model_spec import ModelSpec
from .errors import UserError
from .models.registry import model_info
from .parity import relative_error
from .reference.twins import ReferenceModel, reference_entry, reference_models
from .utils.io import atomic_write_to

DEFAULT_TOLERANCE = 1e-4
DEFAULT_OPSET = 17
INPUT_NAME = "image"


#: registered model name -> its PyTorch twin, from the catalog rows (:mod:`jittor_pranet.reference.twins`)
REFERENCE_MODELS: Dict[str, ReferenceModel] = reference_models()


def require_export_deps():
    """(torch, onnx, onnxruntime), or a UserError saying how to install them."""
    missing = []
    modules = []
    for name in ("torch", "onnx", "onnxruntime"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise UserError(f"ONNX export needs {', '.join(missing)}: pip install 'jittor-pranet[export]'")
    return tuple(modules)


def build_reference(spec: ModelSpec, state_dict: Optional[Mapping[str, np.ndarray]] = None, source: str = "weights"):
    """The PyTorch twin of ``spec`` in eval mode, holding ``state_dict`` (every key and shape checked)."""
    import torch

    from . import checkpoint as ck

    entry = reference_entry(spec.name)
    module_name, _, attr = entry.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    model = factory(**entry.kwargs(spec))
    if state_dict is not None:
        want = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        report = ck.compare(want, state_dict)
        if not report.ok:
            raise UserError(f"{source}: does not fit the PyTorch reference of {spec.describe()} ({report.summary()})")
        tensors = {k: torch.from_numpy(np.ascontiguousarray(state_dict[k], dtype=np.float32)) for k in want}
        model.load_state_dict(tensors, strict=False)
    return model.eval()


@dataclass
class CheckRow:
    input_shape: Tuple[int, ...]
    output: str
    max_abs: float
    ref_max: float
    rel: float


@dataclass
class ExportReport:
    path: Path
    spec: ModelSpec
    dynamic_axes: Dict[str, Dict[int, str]]
    rows: List[CheckRow] = field(default_factory=list)
    tolerance: float = DEFAULT_TOLERANCE
    seconds: float = 0.0

    @property
    def worst(self) -> float:
        return max((r.rel for r in self.rows), default=0.0)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(np.isfinite(r.rel) and r.rel <= self.tolerance for r in self.rows)

    def table(self) -> str:
        lines = ["| input | output | max abs diff | max abs (Jittor) | relative | ok |", "|---|---|---:|---:|---:|---|"]
        for r in self.rows:
            ok = "yes" if np.isfinite(r.rel) and r.rel <= self.tolerance else "NO"
            lines.append(f"| {'x'.join(map(str, r.input_shape))} | {r.output} | {r.max_abs:.3e} | {r.ref_max:.3e} "
                         f"| {r.rel:.2e} | {ok} |")
        return "\n".join(lines)


def check_shapes(size: int, batch: int, entry: ReferenceModel) -> List[Tuple[int, int, int, int]]:
    """Inputs of the check: ``batch`` x size x size, and (dynamic models) one image of another shape."""
    c = entry.in_channels
    shapes = [(batch, c, size, size)]
    if entry.dynamic_spatial:
        shapes.append((1, c, size + entry.multiple, max(entry.multiple, size - entry.multiple)))
    elif batch != 1:
        shapes.append((1, c, size, size))
    return shapes


def compare_with_jittor(onnx_path: Union[str, os.PathLike], jittor_model, output_names: Sequence[str],
                        shapes: Sequence[Tuple[int, ...]], seed: int = 0) -> List[CheckRow]:
    """Run the ONNX file (onnxruntime, CPU) and the Jittor model on the same random inputs; one row per
    output and input shape."""
    import onnxruntime as ort

    from .ops import jt

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    rows = []
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        got = session.run(list(output_names), {INPUT_NAME: x})
        with jt.no_grad():
            ref = jittor_model(jt.array(x))
            ref = [v.numpy() for v in (ref if isinstance(ref, (list, tuple)) else [ref])]
        if len(ref) != len(got):
            raise RuntimeError(f"the Jittor model has {len(ref)} outputs, the ONNX model {len(got)}")
        for name, o, r in zip(output_names, got, ref):
            rows.append(CheckRow(tuple(shape), name, *relative_error(o, r)))
    return rows


def export_onnx(checkpoint: Union[str, os.PathLike], out: Union[str, os.PathLike], *, model: Optional[str] = None,
                num_classes: Optional[int] = None, size: Optional[int] = None, batch: int = 2,
                opset: int = DEFAULT_OPSET, tolerance: float = DEFAULT_TOLERANCE, check: bool = True,
                log: Callable[[str], None] = print) -> ExportReport:
    """Export a checkpoint's model to ``out`` (ONNX) and check it against the Jittor model.

    ``size``: the side of the check's input (and of the trace), default the checkpoint's test size or
    352.  Jittor must be configured (``cli.common.setup_device``).  A failed check is a UserError and
    leaves no file at ``out``.
    """
    import time

    from .checkpoint import read_state_dict
    from .engine.model_spec import load_model, resolve_model_spec
    from .engine.predictor import DEFAULT_SIZE

    start = time.perf_counter()
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{out}: is a folder; give the ONNX file name, e.g. {out / 'model.onnx'}")
    if not out.parent.is_dir():
        raise UserError(f"output folder {out.parent} does not exist; create it first")
    if not os.access(out.parent, os.W_OK):
        raise UserError(f"output folder {out.parent} is not writable")
    if batch < 1:
        raise UserError(f"--batch must be >= 1, not {batch}")
    if not 7 <= opset <= 23:
        raise UserError(f"--opset must be between 7 and 23, not {opset}")
    torch, onnx, _ = require_export_deps()
    loaded = read_state_dict(checkpoint)
    spec = resolve_model_spec(loaded.meta, loaded.state_dict, model=model, num_classes=num_classes,
                              source=str(checkpoint))
    entry = reference_entry(spec.name)
    side = int(size or spec.test_size or DEFAULT_SIZE)
    problem = model_info(spec.name).input.problem(side)
    if problem:
        raise UserError(f"--size {problem}")
    reference = build_reference(spec, loaded.state_dict, source=str(checkpoint))

    axes: Dict[str, Dict[int, str]] = {}
    for name in (INPUT_NAME,) + entry.outputs:
        axes[name] = {0: "batch", 2: "height", 3: "width"} if entry.dynamic_spatial else {0: "batch"}
    report = ExportReport(out, spec, axes, tolerance=tolerance)

    def write_checked(tmp: str) -> None:  # renamed to ``out`` only once the check has passed
        example = torch.zeros(batch, entry.in_channels, side, side)
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer warns about Python-side shape tests (constant for a given model) and that it is
            # the TorchScript exporter (chosen: it needs no onnxscript and exports these models exactly)
            warnings.simplefilter("ignore")
            torch.onnx.export(reference, (example,), tmp, input_names=[INPUT_NAME], output_names=list(entry.outputs),
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
        onnx.checker.check_model(tmp)
        log(f"exported {spec.describe()} from {checkpoint} (PyTorch reference, opset {opset}; dynamic: "
            f"{'batch, height, width' if entry.dynamic_spatial else 'batch'})")
        if check:
            net, _ = load_model(checkpoint, spec, loaded=loaded)
            report.rows = compare_with_jittor(tmp, net, entry.outputs, check_shapes(side, batch, entry))
            log(f"check against the Jittor model (onnxruntime, CPU; relative = max|onnx - jittor| / max|jittor|, "
                f"bound {tolerance:g}):\n{report.table()}")
            if not report.passed:
                raise UserError(f"the ONNX model differs from the Jittor model by {report.worst:.2e} relative "
                                f"(bound {tolerance:g}); {out} was not written")

    atomic_write_to(out, write_checked, make_parents=False)
    report.seconds = time.perf_counter() - start
    return report


__all__ = ["DEFAULT_OPSET", "DEFAULT_TOLERANCE", "ExportReport", "REFERENCE_MODELS", "ReferenceModel",
           "build_reference", "compare_with_jittor", "export_onnx", "reference_entry", "require_export_deps"]
