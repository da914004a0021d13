"""Model zoo: encoders, decoder blocks, DSRA and the four registered PraNet models."""
from .dsra import DSRA, GAIN_MODES, dsra_fuse, reverse_gain
from .pranet import PraNetV1, PraNetV2, build_encoder, prediction_logits
from .registry import build_model, list_models, model_family, register_model


@register_model
def pranet_v1_res2net(num_classes: int = 1, encoder: str = "res2net50_v1b_26w_4s", **kw) -> PraNetV1:
    """PraNet-V1 on Res2Net-50-v1b-26w-4s (official ``PraNet``)."""
    return PraNetV1(encoder=encoder, num_classes=num_classes, **kw)


@register_model
def pranet_v1_pvt(num_classes: int = 1, encoder: str = "pvt_v2_b2", **kw) -> PraNetV1:
    """PraNet-V1 on PVTv2-B2 (official ``PVT_PraNet``)."""
    return PraNetV1(encoder=encoder, num_classes=num_classes, **kw)


@register_model
def pranet_v2_res2net(num_classes: int = 1, encoder: str = "res2net50_v1b_26w_4s", **kw) -> PraNetV2:
    """PraNet-V2 (DSRA) on Res2Net-50-v1b-26w-4s (official ``PraNet_V2``)."""
    return PraNetV2(encoder=encoder, num_classes=num_classes, **kw)


@register_model
def pranet_v2_pvt(num_classes: int = 1, encoder: str = "pvt_v2_b2", **kw) -> PraNetV2:
    """PraNet-V2 (DSRA) on PVTv2-B2 (official ``PVT_PraNet_V2``)."""
    return PraNetV2(encoder=encoder, num_classes=num_classes, **kw)


__all__ = ["build_model", "list_models", "register_model", "model_family", "PraNetV1", "PraNetV2", "DSRA",
           "dsra_fuse", "reverse_gain", "GAIN_MODES", "build_encoder", "prediction_logits"]
