"""Adam exactly as ``torch.optim.Adam`` and per-element gradient clipping, for Jittor.

Jittor's Adam adds eps as ``eps * sqrt(1 - beta2^t)`` (PyTorch: plain eps after bias-correcting
the second moment), so parameters drift apart where gradients are small.  Recipes and checkpoints
only carry over if the update is PyTorch's:

    m = beta1 m + (1 - beta1) g ;  v = beta2 v + (1 - beta2) g^2
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Gradients come from ``jt.grad`` so clipping (the official recipe clamps every element to
[-clip, clip]) can sit between backward and step.  In MPI mode gradients are averaged across ranks.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..ops import jt

_BUFFER_SUFFIXES = ("running_mean", "running_var")


def trainable_parameters(model) -> List["jt.Var"]:
    """Parameters that learn: everything but BatchNorm running statistics."""
    return [p for name, p in model.named_parameters() if not name.endswith(_BUFFER_SUFFIXES)]


def trainable_named_parameters(model):
    return [(n, p) for n, p in model.named_parameters() if not n.endswith(_BUFFER_SUFFIXES)]


class TorchAdam:
    """``torch.optim.Adam`` (no amsgrad) with optional per-element gradient clipping by value."""

    def __init__(self, params: Sequence["jt.Var"], lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, clip_value: Optional[float] = None):
        self.params = list(params)
        self.lr = lr
        self.betas = tuple(betas)
        self.eps = eps
        self.weight_decay = weight_decay
        self.clip_value = clip_value
        self.step_count = 0
        self.exp_avg = [jt.zeros(p.shape, p.dtype).stop_grad() for p in self.params]
        self.exp_avg_sq = [jt.zeros(p.shape, p.dtype).stop_grad() for p in self.params]

    def compute_grads(self, loss: "jt.Var") -> List["jt.Var"]:
        grads = jt.grad(loss, self.params)
        if jt.in_mpi:
            grads = [g.mpi_all_reduce("mean") for g in grads]
        if self.clip_value is not None:
            c = float(self.clip_value)
            grads = [jt.clamp(g, -c, c) for g in grads]
        return grads

    def apply(self, grads: Sequence["jt.Var"]) -> None:
        """One update from given gradients (already clipped)."""
        self.step_count += 1
        b1, b2 = self.betas
        t = self.step_count
        step_size = self.lr / (1 - b1 ** t)
        bc2_sqrt = math.sqrt(1 - b2 ** t)
        for i, (p, g) in enumerate(zip(self.params, grads)):
            g = g.stop_grad()  # the update must not enter autograd; never stop_grad the parameter itself
            if self.weight_decay:
                g = g + self.weight_decay * p
            m = self.exp_avg[i] + (g - self.exp_avg[i]) * (1 - b1)
            v = self.exp_avg_sq[i] * b2 + g * g * (1 - b2)
            denom = jt.sqrt(v) / bc2_sqrt + self.eps
            self.exp_avg[i].update(m.stop_grad())
            self.exp_avg_sq[i].update(v.stop_grad())
            p.update(p - step_size * (m / denom))
        jt.sync(self.params + self.exp_avg + self.exp_avg_sq)

    def step(self, loss: "jt.Var") -> List["jt.Var"]:
        grads = self.compute_grads(loss)
        self.apply(grads)
        return grads

    def state_dict(self) -> Dict:
        return {"step": self.step_count, "lr": self.lr, "betas": self.betas, "eps": self.eps,
                "weight_decay": self.weight_decay, "clip_value": self.clip_value,
                "exp_avg": [m.numpy().copy() for m in self.exp_avg],
                "exp_avg_sq": [v.numpy().copy() for v in self.exp_avg_sq]}

    def load_state_dict(self, state: Dict) -> None:
        if len(state["exp_avg"]) != len(self.params):
            raise ValueError("optimizer state does not match the model's parameters")
        self.step_count = int(state["step"])
        self.lr = float(state["lr"])
        for buf, arr in zip(self.exp_avg + self.exp_avg_sq, list(state["exp_avg"]) + list(state["exp_avg_sq"])):
            buf.assign(jt.array(np.asarray(arr, str(buf.dtype))))
        jt.sync(self.exp_avg + self.exp_avg_sq)


class TorchAdamW(TorchAdam):
    """``torch.optim.AdamW`` (no amsgrad): weight decay shrinks the parameter itself,
    ``p *= 1 - lr * weight_decay``, before the Adam update, instead of entering the gradient."""

    def apply(self, grads: Sequence["jt.Var"]) -> None:
        decay = self.weight_decay
        if decay:
            factor = 1.0 - self.lr * decay
            for p in self.params:
                p.update(p * factor)
        self.weight_decay = 0.0  # the Adam part must not add it to the gradient again
        try:
            super().apply(grads)
        finally:
            self.weight_decay = decay


OPTIMIZERS = {"adam": TorchAdam, "adamw": TorchAdamW}
