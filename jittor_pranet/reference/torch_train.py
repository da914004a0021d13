"""PyTorch reference of the official training step (loss, clipping, multi-scale resize) for parity tests.

Written from the recipe in UPSTREAM_NOTES.md: weighted BCE + weighted IoU per side output with the
weight ``1 + 5|avg_pool2d(mask, 31, 1, 15) - mask|``, plus 0.8 x weighted BCE of each V2 background
map against ``1 - mask``; gradients clamped element-wise to [-clip, clip]; ``torch.optim.Adam``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..models.catalog import V2_OUTPUTS


def structure_loss(pred, mask, pred_bg=None, mask_bg=None, bg_weight: float = 0.8):
    weit = 1 + 5 * torch.abs(F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask)
    wbce = F.binary_cross_entropy_with_logits(pred, mask, reduction="none")
    wbce = (weit * wbce).sum(dim=(2, 3)) / weit.sum(dim=(2, 3))
    prob = torch.sigmoid(pred)
    inter = (prob * mask * weit).sum(dim=(2, 3))
    union = ((prob + mask) * weit).sum(dim=(2, 3))
    total = wbce + 1 - (inter + 1) / (union - inter + 1)
    if pred_bg is not None:
        bce_bg = F.binary_cross_entropy_with_logits(pred_bg, mask_bg, reduction="none")
        total = total + bg_weight * (weit * bce_bg).sum(dim=(2, 3)) / weit.sum(dim=(2, 3))
    return total.mean()


def pranet_loss(outputs: Sequence[torch.Tensor], mask: torch.Tensor, bg_weight: float = 0.8,
                dual: Optional[bool] = None):
    """``dual``: fg outputs then bg outputs (PraNet-V2); None reads the PraNet-V2 output layout."""
    if dual is None:
        dual = len(outputs) == len(V2_OUTPUTS)
    if dual:
        half = len(outputs) // 2
        bg = 1 - mask
        return sum(structure_loss(outputs[i], mask, outputs[i + half], bg, bg_weight) for i in range(half))
    return sum(structure_loss(o, mask) for o in outputs)


def train_step(model, optimizer, images, masks, clip: float = 0.5):
    """One official step: zero_grad, forward, loss, backward, clamp each grad element, Adam step."""
    optimizer.zero_grad()
    loss = pranet_loss(model(images), masks)
    loss.backward()
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.data.clamp_(-clip, clip)
    optimizer.step()
    return float(loss.detach())


def resize_batch(images, masks, size: int):
    """Multi-scale resize of the official loop (bilinear, align_corners=True for images and masks)."""
    return (F.interpolate(images, size=(size, size), mode="bilinear", align_corners=True),
            F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=True))
