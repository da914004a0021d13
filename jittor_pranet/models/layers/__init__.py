"""Layers shared by encoders and decoders: convolution helpers, attention gates, activations, stochastic
depth, LayerNorm2d (importing this package imports Jittor)."""
from .activation import ACTIVATIONS, activation, channel_shuffle
from .attention import CAB, SAB
from .conv import BasicConv2d, NearestUpsample2x
from .drop import DropPath
from .norm import LayerNorm2d

__all__ = ["ACTIVATIONS", "BasicConv2d", "CAB", "DropPath", "LayerNorm2d", "NearestUpsample2x", "SAB", "activation",
           "channel_shuffle"]
