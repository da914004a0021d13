"""Model zoo: encoders, decoder blocks, DSRA, the four registered PraNet models and EMCAD(+DSRA)."""
from .dsra import DSRA, GAIN_MODES, dsra_fuse, reverse_gain
from .emcad import MODEL_FACTS as EMCAD_FACTS, EMCADNet, emcad_prediction_logits
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


@register_model
def emcad_b2(num_classes: int = 9, encoder: str = "pvt_v2_b2", **kw) -> EMCADNet:
    """EMCAD decoder on PVTv2-B2 (official ``EMCADNet``, training-script hyper-parameters)."""
    return EMCADNet(num_classes=num_classes, encoder=encoder, dual=False, **kw)


@register_model
def emcad_b2_dsra(num_classes: int = 9, encoder: str = "pvt_v2_b2", **kw) -> EMCADNet:
    """EMCAD-B2 with PraNet-V2's DSRA fg/bg heads per stage (official ``EMCADNet(dual=True)``)."""
    return EMCADNet(num_classes=num_classes, encoder=encoder, dual=True, **kw)


__all__ = ["build_model", "list_models", "register_model", "model_family", "PraNetV1", "PraNetV2", "DSRA",
           "EMCADNet", "EMCAD_FACTS", "emcad_prediction_logits", "dsra_fuse", "reverse_gain", "GAIN_MODES",
           "build_encoder", "prediction_logits"]
