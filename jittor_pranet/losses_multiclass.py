"""Deprecated path, kept for one release: the multi-class losses live in :mod:`jittor_pranet.losses.multiclass`."""
from .losses.multiclass import *  # noqa: F401,F403
from .losses.multiclass import multiclass_dsra_loss, multiclass_loss, multiclass_seg_loss  # noqa: F401
