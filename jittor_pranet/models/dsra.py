"""Deprecated path of :mod:`jittor_pranet.models.decoders.dsra` (kept for one release)."""
from .decoders.dsra import DSRA, GAIN_MODES, dsra_fuse, reverse_gain, softmax_channels  # noqa: F401

__all__ = ["DSRA", "GAIN_MODES", "dsra_fuse", "reverse_gain", "softmax_channels"]
