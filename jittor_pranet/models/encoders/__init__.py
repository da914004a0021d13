"""Encoders (backbones): Res2Net-v1b and PVTv2, each variant under its official name."""
