"""What the benchmark measures: one model as its PyTorch twin and its Jittor variants, as callables.

:class:`ModelSet` builds, for one registered model, the PyTorch reference and every Jittor variant
(``jittor_plain``, ``jittor``, ``jittor_fused``, ``jittor[feature,...]``, see :func:`parse_variant`)
with the same weights; :func:`inference_calls`, :func:`train_calls` and
:func:`multiclass_train_calls` turn them into zero-argument callables that run one synchronised
inference or one training step of the official recipe; :func:`torch_loss` is the twin's loss and
:func:`count_flops` the FLOPs of its forward or training step (on the twin, with that loss).  The
timing loop of :mod:`.timing` sees only those callables, so a new variant or recipe is added here
without touching how it is timed.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ..models.registry import ModelInfo, model_info
from .timing import Env

INFER_VARIANTS = ("torch", "jittor_plain", "jittor", "jittor_fused")
TRAIN_VARIANTS = ("torch", "jittor_plain", "jittor")


def torch_loss(info: ModelInfo) -> Callable[[Any, Any], Any]:
    """(outputs, target) -> the official training loss of the model's twin: PraNet's structure loss on
    binary masks, EMCAD's CE + Dice (+ DSRA terms) on label maps."""
    if info.task == "multiclass":
        from ..reference import torch_emcad as te

        loss = te.multiclass_dsra_loss if info.loss == "dsra" else te.multiclass_loss
        return lambda outs, labels: loss(outs, labels, info.default_num_classes)
    from ..reference.torch_train import pranet_loss

    return lambda outs, mask: pranet_loss(outs, mask, dual=info.loss == "dsra")


def count_flops(env: Env, torch_model: Any, shape: Sequence[int], train: bool,
                info: Optional[ModelInfo] = None) -> Optional[float]:
    """FLOPs of one forward (``train=False``) or forward+backward of the loss on the torch reference
    (``info``: the model's catalog row, for its loss; default a PraNet model's)."""
    if env.torch is None:
        return None
    torch = env.torch
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover - torch < 2.1
        return None
    info = info if info is not None else model_info("pranet_v2_res2net")
    t_loss = torch_loss(info)

    x = torch.zeros(shape, device=env.tdev)
    was_training = torch_model.training
    torch_model.train(train)
    with FlopCounterMode(display=False) as fc:
        if train:
            if info.task == "multiclass":
                target = torch.zeros((shape[0],) + tuple(shape[2:]), dtype=torch.long, device=env.tdev)
            else:
                target = torch.zeros((shape[0], 1) + tuple(shape[2:]), device=env.tdev)
            t_loss(torch_model(x), target).backward()
        else:
            with torch.no_grad():
                torch_model(x)
    torch_model.train(was_training)
    torch_model.zero_grad(set_to_none=True)
    counts = {str(k): float(v) for k, v in fc.get_flop_counts().get("Global", {}).items()}
    if not train:
        return sum(counts.values())
    # FlopCounterMode counts a grouped (depth-wise) convolution's backward as if it were dense (PVTv2's
    # MLP: 65x too much), so convolution backward is taken as 2x the forward (data + weight grads).
    total = sum(v for k, v in counts.items() if "convolution_backward" not in k)
    return total + 2.0 * counts.get("aten.convolution", 0.0)


class ModelSet:
    """The PyTorch reference and the Jittor variants of one model, all holding the same weights."""

    def __init__(self, env: Env, name: str, seed: int) -> None:
        from .. import checkpoint as ck
        from ..models import build_model

        self.env, self.name = env, name
        self.info = model_info(name)
        self.tm = None
        kw = {"drop_path_rate": 0.0} if model_info(name).takes_drop_path() else {}  # deterministic steps
        self.kw = kw
        if env.torch is not None:
            from ..reference import torch_models as tmods
            from ..reference.twins import build_twin

            self.tmods = tmods
            self.tm = tmods.randomize_(build_twin(name), seed).to(env.tdev)  # twins are built without drop path
            self.state = tmods.state_dict_numpy(self.tm)
        else:
            self.state = None
        from ..engine.optim import trainable_parameters

        self._build, self._ck = build_model, ck
        self._cache: Dict[tuple, object] = {}
        probe = build_model(name, **kw)
        if self.state is not None:
            ck.load_state_dict(probe, self.state)
        else:
            self.state = {k: v.numpy() for k, v in probe.state_dict().items()}
        self.params = sum(int(np.prod(p.shape)) for p in trainable_parameters(probe))
        del probe

    def jittor_model(self, variant: str, train: bool) -> Any:
        key = (variant, train)
        if key not in self._cache:
            self._cache[key] = self._new_jittor_model(variant, train)
        return self._cache[key]

    def _new_jittor_model(self, variant: str, train: bool):
        m = self._build(self.name, **self.kw)
        self._ck.load_state_dict(m, self.state)
        flags = self.env.kernels.flags
        kind, feats, mode = parse_variant(variant)
        if train:
            m.train()
        else:
            m.eval()
            if variant == "jittor_fused":
                from ..fuse import fuse_for_inference

                m = fuse_for_inference(m)
        if kind == "jittor_plain":
            m = _Scoped(m, flags.disabled)
        elif kind == "jittor_features":
            m = _Scoped(m, lambda: flags.features(feats, mode))
        return m

    def torch_model(self, train: bool) -> Any:
        self.tm.train(train)
        return self.tm


class _Scoped:
    """Runs a model inside a context (graphs are built during the call, so the context decides
    which implementation every op of the step uses)."""

    def __init__(self, model, context):
        self.model, self.context = model, context

    def __call__(self, *a, **k):
        with self.context():
            return self.model(*a, **k)

    def __getattr__(self, item):
        return getattr(self.model, item)


def parse_variant(v: str) -> Tuple[str, Optional[Tuple[str, ...]], Optional[str]]:
    """``torch``, ``jittor_plain``, ``jittor``, ``jittor_fused`` or ``jittor[feat,...]`` with features
    from :data:`jittor_pranet.kernels.flags.FEATURES` and optionally ``conv=auto|nchw|onednn`` (e.g.
    ``jittor[conv,bn]``, ``jittor[conv=nchw]``): returns (kind, features, conv_mode); ValueError if bad."""
    if v in INFER_VARIANTS:
        return v, None, None
    if v.startswith("jittor[") and v.endswith("]"):
        from ..kernels.flags import CONV_MODES, FEATURES

        feats, mode = [], None
        for part in filter(None, (p.strip() for p in v[7:-1].split(","))):
            if part.startswith("conv="):
                mode = part[5:]
                if mode not in CONV_MODES:
                    raise ValueError(f"{v}: conv mode must be one of {sorted(CONV_MODES)}")
                part = "conv"
            if part not in FEATURES:
                raise ValueError(f"{v}: unknown feature {part!r}; choose from {', '.join(FEATURES)}")
            feats.append(part)
        return "jittor_features", tuple(feats), mode
    raise ValueError(f"unknown variant {v!r}: use torch, jittor_plain, jittor, jittor_fused or jittor[feature,...]")


def inference_calls(ms: ModelSet, variants: Sequence[str], x_np: np.ndarray) -> Dict[str, Callable[[], None]]:
    env = ms.env
    jt = env.jt
    calls: Dict[str, Callable[[], None]] = {}
    for v in variants:
        if v == "torch":
            if env.torch is None:
                continue
            torch = env.torch
            tm = ms.torch_model(False)
            tx = torch.from_numpy(x_np).to(env.tdev)

            def t_call(tm=tm, tx=tx):
                with torch.no_grad():
                    tm(tx)
                env.tsync()

            calls[v] = t_call
        else:
            m = ms.jittor_model(v, False)
            jx = jt.array(x_np)

            def j_call(m=m, jx=jx):
                with jt.no_grad():
                    outs = m(jx)
                    jt.sync(list(outs))
                env.jsync()

            calls[v] = j_call
    return calls


def multiclass_train_calls(ms: ModelSet, variants: Sequence[str], x_np: np.ndarray, labels_np: np.ndarray,
                            lr: float = 1e-4, weight_decay: float = 1e-4) -> Dict[str, Callable[[], None]]:
    """One call = one step of the official multi-class recipe: forward, CE + Dice (DSRA: the fg/bg subset
    loss), backward, AdamW (lr 1e-4, weight decay 1e-4)."""
    env = ms.env
    jt = env.jt
    calls: Dict[str, Callable[[], None]] = {}
    dual = ms.info.loss == "dsra"
    for v in variants:
        if v == "jittor_fused":
            continue
        if v == "torch":
            if env.torch is None:
                continue
            torch = env.torch
            tm = ms.torch_model(True)
            opt = torch.optim.AdamW(tm.parameters(), lr=lr, weight_decay=weight_decay)
            tx, tl = torch.from_numpy(x_np).to(env.tdev), torch.from_numpy(labels_np).long().to(env.tdev)
            t_loss = torch_loss(ms.info)

            def t_call(tm=tm, opt=opt, tx=tx, tl=tl):
                opt.zero_grad()
                t_loss(tm(tx), tl).backward()
                opt.step()
                env.tsync()

            calls[v] = t_call
        else:
            from ..engine.optim import TorchAdamW, trainable_parameters
            from ..losses.multiclass import multiclass_seg_loss

            m = ms.jittor_model(v, True)
            opt = TorchAdamW(trainable_parameters(m), lr=lr, weight_decay=weight_decay)
            jx, jl = jt.array(x_np), jt.array(labels_np)

            def j_call(m=m, opt=opt, jx=jx, jl=jl):
                opt.step(multiclass_seg_loss(m(jx), jl, dual=dual))
                env.jsync()

            calls[v] = j_call
    return calls


def train_calls(ms: ModelSet, variants: Sequence[str], x_np: np.ndarray, m_np: np.ndarray,
                 sizes: Sequence[int], lr: float = 1e-4, clip: float = 0.5) -> Dict[str, Callable[[], None]]:
    """One call = one step per size in ``sizes`` (the multi-scale recipe when several)."""
    env = ms.env
    jt = env.jt
    calls: Dict[str, Callable[[], None]] = {}
    base = x_np.shape[-1]
    for v in variants:
        if v == "jittor_fused":
            continue
        if v == "torch":
            if env.torch is None:
                continue
            torch = env.torch
            from ..reference import torch_train as tt

            tm = ms.torch_model(True)
            opt = torch.optim.Adam(tm.parameters(), lr=lr)
            tx, tmk = torch.from_numpy(x_np).to(env.tdev), torch.from_numpy(m_np).to(env.tdev)

            def t_call(tm=tm, opt=opt, tx=tx, tmk=tmk):
                for s in sizes:
                    xi, mi = (tx, tmk) if s == base else tt.resize_batch(tx, tmk, s)
                    tt.train_step(tm, opt, xi, mi, clip=clip)
                env.tsync()

            calls[v] = t_call
        else:
            from ..engine.optim import TorchAdam, trainable_parameters
            from ..losses import pranet_loss
            from ..ops import resize_bilinear

            dual = ms.info.loss == "dsra"
            m = ms.jittor_model(v, True)
            opt = TorchAdam(trainable_parameters(m), lr=lr, clip_value=clip)
            jx, jm = jt.array(x_np), jt.array(m_np)

            def j_call(m=m, opt=opt, jx=jx, jm=jm):
                for s in sizes:
                    if s == base:
                        xi, mi = jx, jm
                    else:
                        xi = resize_bilinear(jx, (s, s), align_corners=True)
                        mi = resize_bilinear(jm, (s, s), align_corners=True)
                    loss = pranet_loss(m(xi), mi, dual=dual)
                    opt.step(loss)
                env.jsync()

            calls[v] = j_call
    return calls
