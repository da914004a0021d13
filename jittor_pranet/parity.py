"""Jittor-vs-PyTorch parity: same weights, same input, every intermediate and final tensor compared.

Shared by the test suite and ``jittor-pranet parity``.  The PyTorch side is the model's twin (named by
its catalog row, built by :mod:`jittor_pranet.reference.twins`), checked against the official classes;
weights are random with randomised BatchNorm statistics and affine parameters (so eval-mode
normalisation is not an identity), or come from the user's checkpoint.

The metric is ``max|jittor - torch| / max|torch|`` per tensor (scale-free; float32 noise through
these depths is ~1e-5).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import UserError
from .models.registry import V1_OUTPUTS, V2_OUTPUTS, model_info  # noqa: F401  (output names re-exported)

DEFAULT_TOLERANCE = 5e-5


@dataclass
class ParityRow:
    tensor: str
    shape: Tuple[int, ...]
    max_abs: float
    ref_max: float
    rel: float

    def passed(self, tol: float) -> bool:
        return bool(np.isfinite(self.rel)) and self.rel <= tol


def relative_error(ours: np.ndarray, ref: np.ndarray) -> Tuple[float, float, float]:
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return float("inf"), float(np.abs(ref).max()), float("inf")
    diff = float(np.abs(ours - ref).max())
    scale = float(np.abs(ref).max())
    return diff, scale, diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def _require_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("parity needs PyTorch: pip install 'jittor-pranet[torch]'") from None
    from .reference import torch_models

    return torch_models


def make_pair(name: str, num_classes: int = 1, seed: int = 0, checkpoint: Optional[str] = None,
              encoder: Optional[str] = None, gain: Optional[str] = None):
    """(jittor_model, torch_model) in eval mode holding identical weights (``encoder``/``gain``: other
    than the model's default)."""
    tm = _require_torch()
    from . import checkpoint as ck
    from .models import build_model
    from .reference.twins import build_twin

    torch_model = build_twin(name, num_classes, encoder, gain)
    kw = {k: v for k, v in (("encoder", encoder), ("gain", gain)) if v}
    if checkpoint:
        sd = ck.read_state_dict(checkpoint).state_dict
        rep = ck.compare({k: tuple(v.shape) for k, v in tm.state_dict_numpy(torch_model).items()}, sd)
        if not rep.ok:
            raise UserError(f"{checkpoint}: does not match {name} ({rep.summary()})")
        tm.load_state_dict_numpy(torch_model, sd, strict=False)
    else:
        tm.randomize_(torch_model, seed)
    arrays = tm.state_dict_numpy(torch_model)
    jt_model = build_model(name, num_classes=num_classes, **kw)
    ck.load_state_dict(jt_model, arrays, strict=True, source=f"{name} reference weights")
    torch_model.eval()
    jt_model.eval()
    return jt_model, torch_model


def compare_forward(jt_model, torch_model, x: np.ndarray, output_names: Sequence[str]) -> List[ParityRow]:
    """Run both models on ``x`` (NCHW float32) and compare intermediates then outputs."""
    import torch

    import jittor as jt

    with torch.no_grad():
        t_out, t_inter = torch_model(torch.from_numpy(x), return_intermediates=True)
    with jt.no_grad():
        j_out, j_inter = jt_model(jt.array(x), return_intermediates=True)
        jt.sync_all(True)
    rows = []
    missing = set(t_inter) ^ set(j_inter)
    if missing:
        raise RuntimeError(f"intermediate names differ between implementations: {sorted(missing)}")
    pairs = [(k, j_inter[k], t_inter[k]) for k in t_inter] + \
            [(f"out.{n}", j, t) for n, j, t in zip(output_names, j_out, t_out)]
    if len(j_out) != len(t_out):
        raise RuntimeError(f"output count differs: jittor {len(j_out)} vs torch {len(t_out)}")
    for key, j, t in pairs:
        tn = t.detach().cpu().numpy()
        diff, scale, rel = relative_error(j.numpy(), tn)
        rows.append(ParityRow(key, tuple(tn.shape), diff, scale, rel))
    return rows


def run_parity(name: str, num_classes: int = 1, sizes: Sequence[Tuple[int, int]] = ((352, 352),), batch: int = 2,
               seed: int = 0, checkpoint: Optional[str] = None, in_channels: Optional[int] = None
               ) -> Dict[str, List[ParityRow]]:
    """Parity rows per input size, e.g. ``{"2x3x352x352": [...]}`` (``in_channels``: default the model's)."""
    jt_model, torch_model = make_pair(name, num_classes, seed, checkpoint)
    names = model_info(name).outputs
    in_channels = model_info(name).in_channels if in_channels is None else in_channels
    rng = np.random.default_rng(seed + 1)
    results = {}
    for h, w in sizes:
        x = rng.standard_normal((batch, in_channels, h, w)).astype(np.float32)
        results[f"{batch}x{in_channels}x{h}x{w}"] = compare_forward(jt_model, torch_model, x, names)
    return results


def format_table(rows: List[ParityRow], tol: float) -> str:
    lines = ["| tensor | shape | max abs diff | max abs ref | relative | ok |", "|---|---|---:|---:|---:|:-:|"]
    for r in rows:
        lines.append(f"| {r.tensor} | {'x'.join(map(str, r.shape))} | {r.max_abs:.3e} | {r.ref_max:.3e} | "
                     f"{r.rel:.2e} | {'yes' if r.passed(tol) else 'NO'} |")
    return "\n".join(lines)


def rows_as_dicts(rows: List[ParityRow]) -> List[dict]:
    return [asdict(r) for r in rows]
