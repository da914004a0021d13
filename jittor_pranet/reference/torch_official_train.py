"""PyTorch trainers that follow the official training scripts step for step (equivalence checks only).

* :class:`OfficialPraNetTrainer` is ``binary_seg/MyTrain_med.py``'s ``train``: per batch, for each rate
  of ``size_rates = [0.75, 1, 1.25]``: ``zero_grad``, resize images and masks to
  ``round(trainsize * rate / 32) * 32`` (bilinear, align_corners=True; rate 1 is not resized),
  ``bg_mask = 1 - gts``, the four structure losses (wBCE + wIoU + 0.8 wBCE of the background map)
  summed as ``loss2 + loss3 + loss4 + loss5``, ``backward``, every gradient element clamped to
  ``[-clip, clip]`` (``clip_gradient``), ``torch.optim.Adam(lr)`` step; ``adjust_lr`` per epoch
  (``lr * decay_rate ** (epoch // decay_epoch)``).
* :class:`OfficialEMCADTrainer` is ``multiclass_seg/EMCAD/trainer.py``'s loop: forward, the loss over
  the supervised subsets (``mutation``: all 15; dual: 0.5 CE + 0.7 Dice + 0.3 BCE of the background
  sums against the inverted one-hot; single: 0.3 CE + 0.7 Dice), ``zero_grad``, ``backward``,
  ``torch.optim.AdamW(lr, weight_decay=1e-4)`` step, constant learning rate, no clamp.

Both take numpy batches, so the caller decides the data (the same batches as the Jittor side).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .torch_train import structure_loss

SIZE_RATES = (0.75, 1, 1.25)


def official_train_size(trainsize: int, rate: float) -> int:
    """``int(round(opt.trainsize * rate / 32) * 32)`` of the official loop."""
    return int(round(trainsize * rate / 32) * 32)


class OfficialPraNetTrainer:
    """``MyTrain_med.train`` (module docstring) on a PraNet-V2 twin (8 outputs, fg then bg)."""

    def __init__(self, model: torch.nn.Module, lr: float = 1e-4, clip: float = 0.5, trainsize: int = 352,
                 size_rates: Sequence[float] = SIZE_RATES, decay_rate: float = 0.1, decay_epoch: int = 50):
        self.model, self.lr, self.clip, self.trainsize = model, lr, clip, trainsize
        self.size_rates = tuple(size_rates)
        self.decay_rate, self.decay_epoch = decay_rate, decay_epoch
        self.optimizer = torch.optim.Adam(model.parameters(), lr)

    def adjust_lr(self, epoch: int) -> None:
        """``utils.adjust_lr`` (epochs count from 1 in the official loop)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * self.decay_rate ** (epoch // self.decay_epoch)

    def train_batch(self, images: np.ndarray, gts: np.ndarray) -> Dict[int, float]:
        """One batch, one update per rate; returns ``{size: loss}``."""
        self.model.train()
        losses = {}
        for rate in self.size_rates:
            self.optimizer.zero_grad()
            x, y = torch.from_numpy(images), torch.from_numpy(gts)
            size = official_train_size(self.trainsize, rate)
            if rate != 1:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=True)
                y = F.interpolate(y, size=(size, size), mode="bilinear", align_corners=True)
            bg_mask = 1 - y
            fg2, fg3, fg4, fg5, bg2, bg3, bg4, bg5 = self.model(x)
            loss5 = structure_loss(fg2, y, bg2, bg_mask)
            loss4 = structure_loss(fg3, y, bg3, bg_mask)
            loss3 = structure_loss(fg4, y, bg4, bg_mask)
            loss2 = structure_loss(fg5, y, bg5, bg_mask)
            loss = loss2 + loss3 + loss4 + loss5
            loss.backward()
            for group in self.optimizer.param_groups:  # utils.clip_gradient
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.data.clamp_(-self.clip, self.clip)
            self.optimizer.step()
            losses[x.shape[-1]] = float(loss.detach())
        return losses


class OfficialEMCADTrainer:
    """The official EMCAD ``trainer_synapse`` loop (module docstring) on an EMCAD twin."""

    def __init__(self, model: torch.nn.Module, num_classes: int, dual: bool, lr: float = 1e-4,
                 weight_decay: float = 1e-4, supervision: str = "mutation"):
        if supervision != "mutation":
            raise ValueError("only the official default supervision='mutation' is reproduced here")
        self.model, self.num_classes, self.dual = model, num_classes, dual
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def loss(self, outputs: List[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        from .torch_emcad import multiclass_dsra_loss, multiclass_loss

        if self.dual:
            return multiclass_dsra_loss(list(outputs), labels, self.num_classes)
        return multiclass_loss(list(outputs), labels, self.num_classes)

    def train_batch(self, images: np.ndarray, labels: np.ndarray) -> Dict[int, float]:
        self.model.train()
        x = torch.from_numpy(np.ascontiguousarray(images))
        y = torch.from_numpy(np.ascontiguousarray(labels)).long()
        if y.ndim == 4:
            y = y[:, 0]
        loss = self.loss(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {x.shape[-1]: float(loss.detach())}
